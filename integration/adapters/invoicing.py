"""Traditional invoicing (Sandbank's `/invoicing/v1`: EDI 810 invoices, EDI 820 remittances
into a lockbox) behind the canonical `ProviderAdapter`.

Everything invoicing-specific stays here: its paths, invoices, remittances, statuses and event
types. The canonical model reads it this way:

- An order is the buyer's purchase order, put on file at the provider (`create_checkout`):
  its buyer and amount. There is no buyer decision: the checkout completes at once. The
  order's provider id is the PO number (the merchant order id), which every invoice of the
  order carries in BIG04 and inherits its buyer from.
- A capture (shipment) sends an 810 invoice for that amount: its provider id is the invoice's.
  The invoice number is derived from the caller's intent id, so a retry after a lost answer
  sends the same number (the Idempotency-Key replays it; a different key gets 409). `final`
  is no EDI notion.
- A refund is a credit memo on the order's newest invoices that still have that much due (a
  refund split over invoices is one memo each); its provider id is the memo's. A cancel
  cancels the PO, which the provider refuses once it is invoiced.
- A buyer's payment is a remittance line applied to the order's invoices (on arrival, on an
  exact invoice number, or later by hand): the canonical `payment_received` of that line, whose
  deposit is one `payment` settlement line. A line nobody could apply is unidentified cash: its
  settlement line names no order, which reconciliation reports as needing manual work until the
  seller applies it (`POST /remittances/{id}/apply`); `get_settlement` then reads the order
  from the remittance.
- Settlements and events are Sandbank's own shapes under `/invoicing/v1`: read by the native
  adapter's parsers. There are no chargebacks: `list_disputes` is empty.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from integration.adapters.base import AuthorizationStatus, CheckoutRef, PlaceOrder
from integration.adapters.mounted import MountedAdapter, cancellation, completed_checkout
from integration.adapters.sandbank import (
    CAPTURES,
    READS,
    REFUNDS,
    ProviderDataError,
    _int,
    _list,
    _seg,
    _str,
    _time,
    event_settlement,
)
from integration.client import ProviderRejected
from integration.model import (
    Authorization,
    Cancellation,
    Capture,
    EventKind,
    LineKind,
    Money,
    Payment,
    ProviderEvent,
    Refund,
    Settlement,
)

PREFIX: Final = "/invoicing/v1"
NET_DAYS: Final = 30

EVENT_KIND: Final[Mapping[str, EventKind]] = {
    "purchase_order.created": EventKind.AUTHORIZED,
    "purchase_order.canceled": EventKind.CANCELED,
    "remittance.received": EventKind.PAYMENT_RECEIVED,
    "remittance.matched": EventKind.PAYMENT_RECEIVED,
    "settlement.paid": EventKind.PAYOUT,
}
OBJECT_TYPES: Final = frozenset({"edi_invoice", "remittance", "purchase_order"})


class InvoicingAdapter(MountedAdapter):
    name = "invoicing"
    prefix = PREFIX

    # --- checkouts -------------------------------------------------------------------------
    async def create_checkout(
        self, order: PlaceOrder, *, intent_id: str | None = None
    ) -> CheckoutRef:
        """Put the buyer's PO on file: no one decides, so it is completed at once."""
        buyer = order.buyer
        body = {
            "number": order.merchant_order_id,
            "buyer": {
                "name": buyer.legal_name,
                "email": buyer.email,
                **({"id": buyer.external_id} if buyer.external_id else {}),
            },
            "amount": order.amount.amount,
            "currency": order.amount.currency,
            "net_days": NET_DAYS,
        }
        data = await self._put_on_file(f"{PREFIX}/purchase_orders", body, order, intent_id)
        return _checkout(data, order.return_url)

    async def get_checkout(self, provider_checkout_id: str) -> CheckoutRef:
        return _checkout(await self._po(provider_checkout_id), "")

    # --- orders ----------------------------------------------------------------------------
    async def get_authorization(self, provider_order_id: str) -> Authorization:
        po = await self._po(provider_order_id)
        return authorization(po, await self._invoices(provider_order_id))

    async def find_by_merchant_order_id(self, merchant_order_id: str) -> list[Authorization]:
        found = await self._listed(f"{PREFIX}/purchase_orders", number=merchant_order_id)
        return [authorization(po, await self._invoices(merchant_order_id)) for po in found]

    async def capture(
        self, provider_order_id: str, amount: Money, *, intent_id: str, final: bool = False
    ) -> Capture:
        digest = hashlib.sha256(intent_id.encode()).hexdigest()[:8].upper()
        body = {  # the buyer (N1, PER) comes from the PO on file
            "big": {
                "invoice_number": f"{provider_order_id}-{digest}",
                "po_number": provider_order_id,
            },
            "currency": amount.currency,
            "itd": {"net_days": NET_DAYS},
            "it1": [{"quantity": 1, "unit_price": amount.amount}],
            "tds": {"amount": amount.amount},
        }
        data = await self._call(CAPTURES, "POST", f"{PREFIX}/invoices", body, intent_id=intent_id)
        return Capture(
            provider_id=_str(data, "id"),
            provider_order_id=provider_order_id,
            amount=amount,
            at=_time(data, "created_at"),
        )

    async def refund(
        self,
        provider_order_id: str,
        amount: Money,
        *,
        intent_id: str,
        reason: str | None = None,
    ) -> Refund:
        """Credit memos on the order's invoices, newest first, each for what it has due."""
        left = amount.amount
        memos: list[str] = []
        at: datetime | None = None
        for n, inv in enumerate(await self._invoices(provider_order_id)):
            cut = min(left, _int(inv, "amount_due"))
            if cut <= 0:
                continue
            body: dict[str, Any] = {"amount": cut, **({"reason": reason} if reason else {})}
            data = await self._call(
                REFUNDS,
                "POST",
                f"{PREFIX}/invoices/{_seg(_str(inv, 'id'))}/credit_memos",
                body,
                intent_id=f"{intent_id}:{n}" if n else intent_id,
            )
            memo = _list(data, "credit_memos")[-1]
            memos.append(_str(memo, "id"))
            at = _time(memo, "created_at")
            left -= cut
            if left == 0:
                break
        if left or at is None:
            raise ProviderRejected(
                "amount_exceeds_refundable",
                422,
                f"order {provider_order_id} has {amount.amount - left} due to credit, "
                f"{amount.amount} asked",
            )
        return Refund(
            provider_id="+".join(memos), provider_order_id=provider_order_id, amount=amount, at=at
        )

    async def cancel(
        self, provider_order_id: str, *, intent_id: str, reason: str | None = None
    ) -> Cancellation:
        po = await self._po(provider_order_id)
        path = f"{PREFIX}/purchase_orders/{_seg(_str(po, 'id'))}/cancel"
        return cancellation(
            await self._cancel(path, intent_id=intent_id, reason=reason), provider_order_id
        )

    # --- events ----------------------------------------------------------------------------
    def to_event(self, raw: Mapping[str, Any]) -> ProviderEvent:
        return to_event(raw)

    # --- settlements ------------------------------------------------------------------------
    async def get_settlement(self, provider_settlement_id: str) -> Settlement:
        """The report's lines; a deposit that named no order when it arrived names the one its
        cash was applied to since (read from its remittance)."""
        settlement = await super().get_settlement(provider_settlement_id)
        lines = list(settlement.lines)
        remittances: dict[str, dict[str, Any]] = {}
        for i, line in enumerate(lines):
            if line.kind is not LineKind.PAYMENT or line.provider_order_id or not line.source_id:
                continue
            rid = line.source_id.rpartition("-")[0]
            if rid not in remittances:
                remittances[rid] = await self._call(
                    READS, "GET", f"{PREFIX}/remittances/{_seg(rid)}"
                )
            order = _line_orders(remittances[rid]).get(line.source_id)
            if order is not None:
                lines[i] = dataclasses.replace(line, provider_order_id=order)
        return dataclasses.replace(settlement, lines=tuple(lines))

    # --- plumbing --------------------------------------------------------------------------
    async def _po(self, po_number: str) -> dict[str, Any]:
        found = await self._listed(f"{PREFIX}/purchase_orders", number=po_number, limit=1)
        if not found:
            raise ProviderRejected("not_found", 404, f"no purchase order {po_number!r} on file")
        return found[0]

    async def _invoices(self, po_number: str) -> list[dict[str, Any]]:
        """The order's invoices, newest first."""
        return await self._listed(f"{PREFIX}/invoices", po_number=po_number)


# --- invoicing JSON -> canonical ---------------------------------------------------------------
def authorization(po: Mapping[str, Any], invoices: list[dict[str, Any]]) -> Authorization:
    """The order as its PO and invoices (newest first) show it: captured = invoiced, refunded
    = credited by memos."""
    number, currency = _str(po, "number"), _str(po, "currency")
    oldest = list(reversed(invoices))
    captures = tuple(
        Capture(_str(i, "id"), number, Money(_int(i, "amount"), currency), _time(i, "created_at"))
        for i in oldest
    )
    refunds = tuple(
        Refund(_str(m, "id"), number, Money(_int(m, "amount"), currency), _time(m, "created_at"))
        for i in oldest
        for m in _list(i, "credit_memos")
    )
    captured = sum(c.amount.amount for c in captures)
    refunded = sum(r.amount.amount for r in refunds)
    if _str(po, "status") == "canceled":
        status = AuthorizationStatus.CANCELED
    elif not captures:
        status = AuthorizationStatus.AUTHORIZED
    else:
        status = AuthorizationStatus.REFUNDED if refunded else AuthorizationStatus.CAPTURED
    return Authorization(
        provider_order_id=number,
        merchant_order_id=number,
        amount=Money(_int(po, "amount"), currency),
        status=status,
        captured=captured,
        refunded=refunded,
        captures=captures,
        refunds=refunds,
    )


def _checkout(po: Mapping[str, Any], return_url: str) -> CheckoutRef:
    canceled = _str(po, "status") == "canceled"
    return completed_checkout(_str(po, "number"), declined=canceled, return_url=return_url)


def order_of(invoice: Mapping[str, Any]) -> str:
    """The order an invoice belongs to: its PO, else itself."""
    po = invoice.get("po_number")
    return po if isinstance(po, str) and po else _str(invoice, "id")


def _line_orders(remittance: Mapping[str, Any]) -> dict[str, str]:
    """Each remittance line applied to exactly one order: line id -> that order."""
    out: dict[str, str] = {}
    for line in _list(remittance, "lines"):
        orders = {_str(a, "order_ref") for a in _list(line, "allocations")}
        if len(orders) == 1:
            out[_str(line, "id")] = orders.pop()
    return out


def event_facts(raw: Mapping[str, Any]) -> tuple[str | None, tuple[Payment, ...]]:
    """(the order an invoice event is about, the payments a remittance event carries): one
    per remittance line applied to one order, by the line's id, dated when it was deposited,
    the lockbox's fee on the first line. Nothing when the body says neither."""
    data = raw.get("data")
    object_type = raw.get("object_type")
    if not isinstance(data, Mapping) or object_type not in OBJECT_TYPES:
        return None, ()
    try:
        if object_type == "purchase_order":
            return _str(data, "number"), ()
        if object_type == "edi_invoice":
            return order_of(data), ()
        currency, at = _str(data, "currency"), _time(data, "received_at")
        orders = _line_orders(data)
        payments = tuple(
            Payment(
                provider_id=_str(line, "id"),
                provider_order_id=orders[_str(line, "id")],
                amount=Money(_int(line, "amount"), currency),
                fee=_int(data, "fee") if n == 0 else 0,
                at=at,
            )
            for n, line in enumerate(_list(data, "lines"))
            if _str(line, "id") in orders
        )
    except (ProviderDataError, TypeError, ValueError):
        return None, ()
    return None, payments


def to_event(raw: Mapping[str, Any]) -> ProviderEvent:
    """An invoicing event (webhook body or listed) in canonical terms."""
    order_id, payments = event_facts(raw)
    return ProviderEvent(
        provider_event_id=_str(raw, "id"),
        kind=EVENT_KIND.get(_str(raw, "type")),
        provider_order_id=order_id,
        at=_time(raw, "created_at"),
        raw=dict(raw),
        settlement=event_settlement(raw),
        payments=payments,
    )


__all__ = [
    "EVENT_KIND",
    "OBJECT_TYPES",
    "InvoicingAdapter",
    "authorization",
    "event_facts",
    "order_of",
    "to_event",
]
