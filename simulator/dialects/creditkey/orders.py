"""Credit Key's order, read off Sandbank's checkout and order (one model, two views).

A Credit Key order exists from `begin_checkout`: its id is the checkout's id (`chk_...`), the
value `%CKKEY%` becomes and the one the merchant keeps. Until the borrower finishes, only the
checkout exists (`new`); once they do, the order it made carries the money. What Credit Key
keeps that Sandbank's model has no field for (merchant status, shipping address, charges
breakdown, item ids, sizes and colours, the completion URL) rides in the objects' metadata
under `creditkey_*` keys, so the native API shows the same order with its Credit Key facts.
"""

from __future__ import annotations

import json
from typing import Any

from simulator.context import Ctx
from simulator.dialects.creditkey import schemas as ck
from simulator.dialects.creditkey.money import dollars
from simulator.domain.errors import NotFound
from simulator.domain.models import Checkout, LineItem, Order
from simulator.service import ProviderService

# Metadata keys (strings; structured values as compact JSON).
MODE = "creditkey_mode"
COMPLETE_URL = "creditkey_order_complete_url"
MERCHANT_STATUS = "creditkey_merchant_status"
SHIPPING = "creditkey_shipping_address"
CHARGES = "creditkey_charges"
ITEMS = "creditkey_items"
REMOTE_CUSTOMER = "creditkey_remote_customer_id"
MERCHANT_DATA = "creditkey_merchant_data"

STATUS = {
    "pending_review": "placed",
    "authorized": "authorized",
    "partially_captured": "shipped",
    "captured": "shipped",
    "partially_refunded": "returned",
    "refunded": "returned",
    "canceled": "canceled",
    "expired": "canceled",
    "declined": "canceled",
}


def find(ctx: Ctx, service: ProviderService, ck_id: str) -> tuple[Checkout, Order | None]:
    """The checkout behind a Credit Key id and its order, if the borrower finished. A native
    order id (`ord_...`) is taken too."""
    if ck_id.startswith("ord_"):
        order = service.get_order(ctx, ck_id)
        return service.get_checkout(ctx, order.checkout_id), order
    try:
        checkout = service.get_checkout(ctx, ck_id)
    except NotFound:
        raise NotFound("order", ck_id) from None  # to Credit Key, it is the order's id
    order_id = checkout.order_id
    return checkout, (service.get_order(ctx, order_id) if order_id else None)


def line_items(items: list[ck.CartItemIn]) -> tuple[list[LineItem], str]:
    """Sandbank line items, and what only Credit Key keeps of them (ids, sizes, colours)."""
    native = [
        LineItem(
            name=i.name or i.merchant_id or "item",
            sku=i.sku,
            quantity=i.quantity or 1,
            unit_amount=i.price or 0,
        )
        for i in items
    ]
    extras = [[i.merchant_id, i.size, i.color] for i in items]
    return native, compact(extras)


def charges_metadata(charges: ck.ChargesIn) -> str:
    discount = charges.discount_amount if charges.discount_amount is not None else charges.discount
    return compact([charges.total, charges.shipping, charges.tax, discount])


def address_metadata(address: ck.AddressIn) -> str:
    return compact(address.model_dump(exclude_none=True))


def present(checkout: Checkout, order: Order | None) -> ck.OrderOut:
    meta = order.metadata if order is not None else checkout.metadata
    items = order.line_items if order is not None else checkout.line_items
    amount = order.amount if order is not None else checkout.amount
    if order is not None:
        status = STATUS[order.status]
    else:
        status = "new" if checkout.status == "open" else "canceled"
    extras = _loads(meta.get(ITEMS), [])
    extras = extras if isinstance(extras, list) else []
    shipping = _loads(meta.get(SHIPPING), None)
    total, shipping_fee, tax, discount = _charges(meta.get(CHARGES))
    return ck.OrderOut(
        id=checkout.id,
        status=status,
        capture_status="captured" if order is not None and order.captured_amount else "uncaptured",
        amount=dollars(amount),
        refunded_amount=dollars(order.refunded_amount if order is not None else 0),
        items=[_item(item, extras[n] if n < len(extras) else None) for n, item in enumerate(items)],
        merchant_order_id=(order or checkout).merchant_order_id,
        merchant_status=meta.get(MERCHANT_STATUS),
        shipping_address=_address(shipping),
        charges=ck.ChargesOut(
            total=dollars(total if total is not None else amount),
            shipping=dollars(shipping_fee or 0),
            tax=dollars(tax or 0),
            discount_amount=dollars(discount or 0),
            grand_total=dollars(amount),
        ),
    )


def _charges(text: str | None) -> list[int | None]:
    found = _loads(text, None)
    if isinstance(found, list) and len(found) == 4:
        return [v if isinstance(v, int) and not isinstance(v, bool) else None for v in found]
    return [None] * 4


def _address(found: object) -> ck.AddressOut | None:
    if not isinstance(found, dict):
        return None
    return ck.AddressOut(**{k: v for k, v in found.items() if isinstance(v, str)})


def _item(item: LineItem, extra: object) -> ck.ItemOut:
    fields = extra if isinstance(extra, list) and len(extra) == 3 else [None, None, None]
    merchant_id, size, color = (None if v is None else str(v) for v in fields)
    return ck.ItemOut(
        merchant_product_id=merchant_id,
        name=item.name,
        price=dollars(item.unit_amount),
        sku=item.sku,
        quantity=item.quantity,
        size=size,
        color=color,
    )


def compact(value: object) -> str:
    # Merchant data may hold numbers with fractions (Decimals here): kept as their text.
    return json.dumps(value, separators=(",", ":"), default=str)


def _loads(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:  # metadata changed by hand through the native API
        return default
