"""Credit Key's v1 "ecomm" endpoints: each parses the Credit Key request, calls the same service
methods the native `/v1` API calls, and answers in Credit Key's shape.

Credentials were checked by the edge (`edge.CreditKeyEdge`), which also parsed the JSON body
(numbers as `Decimal`) and turns every error into Credit Key's status and body. Here, errors
are the native ones (`NotFound`, `BadRequest`, `ValidationFailed`, ...), with messages in
dollars where they name an amount.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from simulator.api import problems
from simulator.api.operations import Op
from simulator.api.runtime import json_response, run, service_of
from simulator.context import Ctx
from simulator.dialects.creditkey import orders
from simulator.dialects.creditkey import schemas as ck
from simulator.dialects.creditkey.money import dollars
from simulator.domain.decisions import BusinessFacts, magic_tags
from simulator.domain.errors import BadRequest, NotFound, ValidationFailed
from simulator.domain.models import Checkout, Order

M = TypeVar("M", bound=BaseModel)
PREFIX = "/app/ecomm"  # the canonical path; the edge maps every configured prefix onto it
BODY = "sandbank.creditkey.body"  # the JSON body, parsed once by the edge
CREDENTIALS = ("public_key", "shared_secret")
CURRENCY = "USD"  # Credit Key is US dollars only
# Credit Key's form carries no business facts: a borrower without a magic value is underwritten
# as an established business (always approved, with the largest line; see the README).
ESTABLISHED = {"annual_revenue": 10_000_000 * 100, "years_in_business": 10}
HOSTED = "/hosted/creditkey"


# --- parsing ---------------------------------------------------------------------------------
def body(request: Request, model: type[M]) -> M:
    data = request.scope.get(BODY)
    return _validate(model, data if isinstance(data, dict) else {}, "body")


def query(request: Request, model: type[M]) -> M:
    data = {k: v for k, v in request.query_params.items() if k not in CREDENTIALS}
    return _validate(model, data, "query")


def _validate(model: type[M], data: dict[str, Any], where: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise problems.validation(exc, where) from None


def _required(value: object, path: str) -> None:
    if value is None or value == "":
        raise ValidationFailed([{"path": path, "type": "missing", "message": "is required"}])


def checkout_url(public_url: str, checkout: Checkout) -> str:
    mode = "redirect" if checkout.metadata.get(orders.MODE) in ("redirect", "link") else "modal"
    return f"{public_url}{HOSTED}/{mode}/{checkout.id}"


def _placed(order: Order | None, ck_id: str) -> Order:
    if order is None:
        raise BadRequest(
            f"order {ck_id} is new: the borrower has not finished the checkout yet "
            "(wait for complete_checkout to succeed)"
        )
    return order


def _exceeds(amount: int, open_amount: int, what: str) -> BadRequest:
    return BadRequest(
        f"{dollars(amount)} is more than the {dollars(open_amount)} {what} on this order"
    )


# --- endpoints ---------------------------------------------------------------------------------
async def authenticate(request: Request) -> Response:
    return json_response(ck.SuccessOut(success=True))


async def is_displayed_in_checkout(request: Request) -> Response:
    body(request, ck.IsDisplayedIn)
    return json_response(ck.DisplayedOut(is_displayed_in_checkout=True))


async def begin_checkout(request: Request) -> Response:
    b = body(request, ck.BeginCheckoutIn)
    _required(b.charges.grand_total, "body.charges.grand_total")
    _required(b.billing_address.email, "body.billing_address.email")
    assert b.charges.grand_total is not None
    assert b.billing_address.email is not None
    items, extras = orders.line_items(b.cart_items)
    metadata = {orders.ITEMS: extras, orders.CHARGES: orders.charges_metadata(b.charges)}
    if b.mode:
        metadata[orders.MODE] = b.mode
    if b.order_complete_url:
        metadata[orders.COMPLETE_URL] = b.order_complete_url
    if b.shipping_address is not None:
        metadata[orders.SHIPPING] = orders.address_metadata(b.shipping_address)
    if b.merchant_data:
        metadata[orders.MERCHANT_DATA] = orders.compact(b.merchant_data)
    customer = b.remote_customer_id if b.remote_customer_id not in (None, "", "0") else None
    if customer is not None:
        metadata[orders.REMOTE_CUSTOMER] = customer
    billing = b.billing_address
    email: str = b.billing_address.email
    name = " ".join(n for n in (billing.first_name, billing.last_name) if n)
    buyer: dict[str, Any] = {
        "legal_name": billing.company_name or name or email,
        "email": email,
        "external_id": customer,
    }
    facts = BusinessFacts(
        legal_name=buyer["legal_name"], email=email, annual_revenue=0, years_in_business=0
    )
    if not magic_tags(facts):
        buyer.update(ESTABLISHED, domain=email.rsplit("@", 1)[-1].lower())
    service = service_of(request)

    def op(ctx: Ctx) -> ck.BeginCheckoutOut:
        checkout = service.create_checkout(
            ctx,
            amount=b.charges.grand_total or 0,
            currency=CURRENCY,
            buyer_id=None,
            buyer=buyer,
            merchant_order_id=b.remote_id,
            line_items=items,
            return_url=b.return_url,
            cancel_url=b.cancel_url,
            metadata=metadata,
        )
        return ck.BeginCheckoutOut(
            id=checkout.id, checkout_url=checkout_url(service.public_url, checkout)
        )

    return await run(request, op)


async def complete_checkout(request: Request) -> Response:
    b = body(request, ck.IdIn)

    def op(ctx: Ctx) -> ck.SuccessOut:
        _, order = orders.find(ctx, service_of(request), b.id)
        # Approved: an order that holds credit (or did). Pending review or declined: not (yet).
        done = order is not None and order.status not in ("pending_review", "declined")
        return ck.SuccessOut(success=done)

    return await run(request, op)


async def cancel_checkout(request: Request) -> Response:
    b = body(request, ck.IdIn)
    service = service_of(request)

    def op(ctx: Ctx) -> ck.SuccessOut:
        checkout, _ = orders.find(ctx, service, b.id)
        if checkout.status == "open":
            service.decline_checkout(ctx, checkout.id)
        return ck.SuccessOut(success=checkout.status != "completed")

    return await run(request, op)


async def find_order(request: Request) -> Response:
    q = query(request, ck.IdIn)

    def op(ctx: Ctx) -> ck.OrderOut:
        return orders.present(*orders.find(ctx, service_of(request), q.id))

    return await run(request, op, reusable=True)


async def find_order_by_merchant_order_id(request: Request) -> Response:
    q = query(request, ck.FindByMerchantIn)
    service = service_of(request)

    def op(ctx: Ctx) -> ck.OrderOut:
        page = service.list_orders(
            ctx,
            status=None,
            merchant_order_id=q.merchant_order_id,
            buyer_id=None,
            limit=1,
            cursor=None,
        )
        if not page.items:
            missing = NotFound("order", q.merchant_order_id)
            missing.detail = f"no order with merchant_order_id {q.merchant_order_id!r}"
            raise missing
        order = page.items[0]
        return orders.present(service.get_checkout(ctx, order.checkout_id), order)

    return await run(request, op, reusable=True)


async def update_order(request: Request) -> Response:
    b = body(request, ck.UpdateOrderIn)
    service = service_of(request)

    def op(ctx: Ctx) -> ck.OrderOut:
        checkout, found = orders.find(ctx, service, b.id)
        order = _placed(found, b.id)
        metadata = dict(order.metadata)
        items = None
        if b.cart_items is not None:
            items, metadata[orders.ITEMS] = orders.line_items(b.cart_items)
        if b.charges is not None:
            metadata[orders.CHARGES] = orders.charges_metadata(b.charges)
        if b.shipping_address is not None:
            metadata[orders.SHIPPING] = orders.address_metadata(b.shipping_address)
        if b.merchant_status is not None:
            metadata[orders.MERCHANT_STATUS] = b.merchant_status
        order = service.update_order(
            ctx,
            order.id,
            amount=b.charges.grand_total if b.charges is not None else None,
            merchant_order_id=b.merchant_order_id,
            line_items=items,
            metadata=metadata,
        )
        return orders.present(checkout, order)

    return await run(request, op)


async def confirm_order(request: Request) -> Response:
    b = body(request, ck.ConfirmOrderIn)
    service = service_of(request)
    cart = b.cart_contents if b.cart_contents is not None else b.cart_items

    def op(ctx: Ctx) -> ck.OrderOut:
        checkout, found = orders.find(ctx, service, b.id)
        order = _placed(found, b.id)
        amount = b.charges.grand_total if b.charges is not None else None
        if amount is not None and order.capturable_amount and amount > order.capturable_amount:
            raise _exceeds(amount, order.capturable_amount, "still open (authorized, uncaptured)")
        metadata = dict(order.metadata)
        if b.merchant_status is not None:
            metadata[orders.MERCHANT_STATUS] = b.merchant_status
        items = None
        if cart is not None:
            items, metadata[orders.ITEMS] = orders.line_items(cart)
        changed = metadata != order.metadata or (
            b.merchant_order_id is not None and b.merchant_order_id != order.merchant_order_id
        )
        # The merchant's references change while nothing is captured yet; a later shipment
        # of the same order keeps the first ones (Sandbank's orders are fixed once captured).
        if changed and order.status == "authorized":
            service.update_order(
                ctx,
                order.id,
                merchant_order_id=b.merchant_order_id,
                line_items=items,
                metadata=metadata,
            )
        order, _ = service.capture(ctx, order.id, amount=amount, currency=CURRENCY, final=False)
        return orders.present(checkout, order)

    return await run(request, op)


async def cancel_order(request: Request) -> Response:
    b = body(request, ck.IdIn)
    service = service_of(request)

    def op(ctx: Ctx) -> ck.OrderOut:
        checkout, order = orders.find(ctx, service, b.id)
        if order is None:
            if checkout.status == "open":
                checkout = service.decline_checkout(ctx, checkout.id)
            return orders.present(checkout, None)
        if order.captured_amount:
            raise BadRequest(f"order {b.id} is shipped (confirm_order captured it): refund it")
        return orders.present(checkout, service.cancel_order(ctx, order.id))

    return await run(request, op)


async def refund(request: Request) -> Response:
    b = body(request, ck.RefundIn)
    service = service_of(request)
    if b.amount <= 0:
        raise ValidationFailed(
            [{"path": "body.amount", "type": "positive", "message": "must be more than 0"}]
        )

    def op(ctx: Ctx) -> ck.OrderOut:
        checkout, found = orders.find(ctx, service, b.id)
        order = _placed(found, b.id)
        if not order.captured_amount and order.status in ("authorized", "pending_review"):
            # Nothing shipped: refunding the whole order releases it, as a cancel does.
            if b.amount != order.amount:
                raise BadRequest(
                    f"nothing of order {b.id} is shipped: only a refund of the whole "
                    f"{dollars(order.amount)} (which cancels it) is possible before confirm_order"
                )
            return orders.present(checkout, service.cancel_order(ctx, order.id))
        if order.captured_amount and b.amount > order.refundable_amount:
            raise _exceeds(b.amount, order.refundable_amount, "refundable (captured, not refunded)")
        order, _ = service.refund(ctx, order.id, amount=b.amount, currency=CURRENCY, reason=None)
        return orders.present(checkout, order)

    return await run(request, op)


async def customer(request: Request) -> Response:
    b = body(request, ck.CustomerIn)
    service = service_of(request)

    def op(ctx: Ctx) -> ck.CustomerOut:
        # External ids are unique per account: one buyer at most.
        found = service.list_buyers(ctx, external_id=b.customer_id, limit=1, cursor=None)
        if not found.items:
            missing = NotFound("customer", b.customer_id)
            missing.detail = f"no customer with customer_id {b.customer_id!r}"
            raise missing
        line = found.items[0].credit_line
        if line.status == "active":
            return ck.CustomerOut(
                status="approved",
                amount=dollars(line.limit),
                amount_available=dollars(line.available),
            )
        if line.status in ("unreviewed", "in_review"):
            return ck.CustomerOut(
                status="pending", amount=dollars(line.limit), amount_available=dollars(0)
            )
        return ck.CustomerOut(status="declined")

    return await run(request, op)


# --- the operation table ---------------------------------------------------------------------
PUBLIC_KEY_ONLY = frozenset(
    {"creditkey.is_displayed_in_checkout", "creditkey.begin_checkout", "creditkey.customer"}
)
_ERRORS = (400, 401, 404)
_NO_ID = (400, 401)


def _op(
    action: str,
    method: str,
    endpoint: Any,
    summary: str,
    response: type[BaseModel],
    *,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    errors: tuple[int, ...] = _ERRORS,
    description: str = "",
) -> Op:
    return Op(
        f"creditkey.{action}",
        method,
        f"{PREFIX}/{action}",
        endpoint,
        summary,
        response,
        body=body,
        body_required=body is not None,
        query=query,
        errors=errors,
        tag="Credit Key v1",
        description=description,
    )


OPERATIONS: list[Op] = [
    _op(
        "authenticate", "POST", authenticate, "Check the credentials", ck.SuccessOut, errors=(401,)
    ),
    _op(
        "is_displayed_in_checkout",
        "POST",
        is_displayed_in_checkout,
        "Whether to offer Credit Key for this cart (always, in Sandbank)",
        ck.DisplayedOut,
        body=ck.IsDisplayedIn,
        errors=_NO_ID,
        description="The public key alone is enough (creditkey-js sends nothing else).",
    ),
    _op(
        "begin_checkout",
        "POST",
        begin_checkout,
        "Start a checkout; send the borrower to `checkout_url`",
        ck.BeginCheckoutOut,
        body=ck.BeginCheckoutIn,
        errors=_NO_ID,
        description="`charges.grand_total` is the amount; `remote_id` becomes the order's "
        "`merchant_order_id`. The public key alone is enough (creditkey-js).",
    ),
    _op(
        "begin_standalone_checkout",
        "POST",
        begin_checkout,
        "Start a pay-by-link checkout (`mode: link`); the link is `checkout_url`",
        ck.BeginCheckoutOut,
        body=ck.BeginCheckoutIn,
        errors=_NO_ID,
    ),
    _op(
        "complete_checkout",
        "POST",
        complete_checkout,
        "Whether the borrower finished and was approved (`success`)",
        ck.SuccessOut,
        body=ck.IdIn,
    ),
    _op(
        "cancel_checkout",
        "POST",
        cancel_checkout,
        "Abandon a checkout the borrower has not finished",
        ck.SuccessOut,
        body=ck.IdIn,
    ),
    _op("find_order", "GET", find_order, "Get an order", ck.OrderOut, query=ck.IdIn),
    _op(
        "find_order_by_merchant_order_id",
        "GET",
        find_order_by_merchant_order_id,
        "Get the newest order with this merchant order id",
        ck.OrderOut,
        query=ck.FindByMerchantIn,
    ),
    _op(
        "update_order",
        "POST",
        update_order,
        "Change the merchant's order id and status, items, charges (the amount) or shipping "
        "address before shipment",
        ck.OrderOut,
        body=ck.UpdateOrderIn,
    ),
    _op(
        "confirm_order",
        "POST",
        confirm_order,
        "Capture on shipment: `charges.grand_total` now (partial when lower), or everything",
        ck.OrderOut,
        body=ck.ConfirmOrderIn,
    ),
    _op(
        "cancel_order",
        "POST",
        cancel_order,
        "Cancel before shipment; releases the borrower's credit",
        ck.OrderOut,
        body=ck.IdIn,
    ),
    _op(
        "refund",
        "POST",
        refund,
        "Refund part or all of what was captured",
        ck.OrderOut,
        body=ck.RefundIn,
    ),
    _op(
        "customer",
        "POST",
        customer,
        "A customer's credit status by the merchant's customer id",
        ck.CustomerOut,
        body=ck.CustomerIn,
        description="The public key alone is enough (creditkey-js).",
    ),
]
