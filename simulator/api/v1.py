"""`/v1`: the provider API. Each endpoint parses, calls one service method, serialises."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from simulator.api import exports, finance, webhooks
from simulator.api import schemas as s
from simulator.api.operations import Op
from simulator.api.runtime import parse, path_id, query, run, service_of
from simulator.api.tokens import token_operations
from simulator.context import Ctx
from simulator.domain.decisions import BusinessFacts
from simulator.domain.errors import ValidationFailed


async def create_buyer(request: Request) -> Response:
    body = await parse(request, s.BuyerCreate)
    return await run(
        request,
        lambda ctx: ctx.shown(
            s.BuyerOut.of, service_of(request).create_buyer(ctx, **body.model_dump())
        ),
        201,
    )


async def list_buyers(request: Request) -> Response:
    q = query(request, s.BuyerListQuery)

    def op(ctx: Ctx) -> s.ListOut[s.BuyerOut]:
        page = service_of(request).list_buyers(
            ctx, external_id=q.external_id, limit=q.limit, cursor=q.cursor
        )
        return s.listed(page, s.BuyerOut.of)

    return await run(request, op, reusable=True)


async def create_prequalification(request: Request) -> Response:
    body = await parse(request, s.PrequalificationCreate)
    _exactly_one(body.buyer_id, body.business, "buyer_id", "business")
    facts = BusinessFacts(**body.business.model_dump()) if body.business else None
    return await run(
        request,
        lambda ctx: s.PrequalificationOut.of(
            service_of(request).prequalify(
                ctx, buyer_id=body.buyer_id, facts=facts, currency=body.currency
            )
        ),
        201,
    )


async def create_checkout(request: Request) -> Response:
    body = await parse(request, s.CheckoutCreate)
    _exactly_one(body.buyer_id, body.buyer, "buyer_id", "buyer")
    buyer = body.buyer.model_dump() if body.buyer else None
    items = [i.domain() for i in body.line_items]
    return await run(
        request,
        lambda ctx: ctx.shown(
            s.CheckoutOut.of,
            service_of(request).create_checkout(
                ctx,
                amount=body.amount,
                currency=body.currency,
                buyer_id=body.buyer_id,
                buyer=buyer,
                merchant_order_id=body.merchant_order_id,
                line_items=items,
                return_url=body.return_url,
                cancel_url=body.cancel_url,
                metadata=body.metadata,
            ),
        ),
        201,
    )


async def get_checkout(request: Request) -> Response:
    return await run(
        request,
        lambda ctx: s.CheckoutOut.of(service_of(request).get_checkout(ctx, path_id(request))),
        reusable=True,
    )


async def approve_checkout(request: Request) -> Response:
    body = await parse(request, s.BuyerApproval, optional=True)
    return await run(
        request,
        lambda ctx: ctx.shown(
            s.CheckoutOut.of,
            service_of(request).approve_checkout(ctx, path_id(request), body.terms),
        ),
    )


async def decline_checkout(request: Request) -> Response:
    return await run(
        request,
        lambda ctx: ctx.shown(
            s.CheckoutOut.of, service_of(request).decline_checkout(ctx, path_id(request))
        ),
    )


async def list_orders(request: Request) -> Response:
    q = query(request, s.OrderListQuery)

    def op(ctx: Ctx) -> s.ListOut[s.OrderOut]:
        page = service_of(request).list_orders(
            ctx,
            status=q.status,
            merchant_order_id=q.merchant_order_id,
            buyer_id=q.buyer_id,
            limit=q.limit,
            cursor=q.cursor,
        )
        return s.listed(page, s.OrderOut.of)

    return await run(request, op, reusable=True)


async def get_order(request: Request) -> Response:
    return await run(
        request,
        lambda ctx: s.OrderOut.of(service_of(request).get_order(ctx, path_id(request))),
        reusable=True,
    )


async def update_order(request: Request) -> Response:
    body = await parse(request, s.OrderUpdate)
    items = [i.domain() for i in body.line_items] if body.line_items is not None else None
    return await run(
        request,
        lambda ctx: ctx.shown(
            s.OrderOut.of,
            service_of(request).update_order(
                ctx,
                path_id(request),
                amount=body.amount,
                merchant_order_id=body.merchant_order_id,
                line_items=items,
                metadata=body.metadata,
            ),
        ),
    )


async def create_capture(request: Request) -> Response:
    body = await parse(request, s.CaptureCreate, optional=True)
    return await run(
        request,
        lambda ctx: s.CaptureResult.of(
            *service_of(request).capture(
                ctx, path_id(request), amount=body.amount, currency=body.currency, final=body.final
            )
        ),
        201,
    )


async def create_refund(request: Request) -> Response:
    body = await parse(request, s.RefundCreate, optional=True)
    return await run(
        request,
        lambda ctx: s.RefundResult.of(
            *service_of(request).refund(
                ctx,
                path_id(request),
                amount=body.amount,
                currency=body.currency,
                reason=body.reason,
            )
        ),
        201,
    )


async def cancel_order(request: Request) -> Response:
    await parse(request, s.CancelOrder, optional=True)
    return await run(
        request,
        lambda ctx: ctx.shown(
            s.OrderOut.of, service_of(request).cancel_order(ctx, path_id(request))
        ),
    )


def _exactly_one(a: object, b: object, name_a: str, name_b: str) -> None:
    if (a is None) == (b is None):
        raise ValidationFailed(
            [
                {
                    "path": "body",
                    "type": "one_of",
                    "message": f"give exactly one of '{name_a}' and '{name_b}'",
                }
            ]
        )


_ORDER_LINK = {"operationId": "getOrder", "parameters": {"id": "$response.body#/order_id"}}
_READ = (401, 404, 422)
_WRITE = (400, 401, 404, 409, 413, 415, 422)

OPERATIONS: list[Op] = [
    Op(
        "createBuyer",
        "POST",
        "/v1/buyers",
        create_buyer,
        "Create a buyer (a business)",
        s.BuyerOut,
        201,
        body=s.BuyerCreate,
        errors=_WRITE,
        tag="Buyers",
        links={"GetBuyer": {"operationId": "getBuyer", "parameters": {"id": "$response.body#/id"}}},
    ),
    Op(
        "listBuyers",
        "GET",
        "/v1/buyers",
        list_buyers,
        "List buyers, newest first",
        s.ListOut[s.BuyerOut],
        query=s.BuyerListQuery,
        errors=(401, 422),
        tag="Buyers",
    ),
    Op(
        "getBuyer",
        "GET",
        "/v1/buyers/{id}",
        finance.get_buyer,
        "Get a buyer: its credit line, credit usage and upcoming repayments",
        s.BuyerDetailOut,
        errors=_READ,
        tag="Buyers",
    ),
    Op(
        "createPrequalification",
        "POST",
        "/v1/prequalifications",
        create_prequalification,
        "Soft-check a business: decision, estimated limit, offered terms; creates no order",
        s.PrequalificationOut,
        201,
        body=s.PrequalificationCreate,
        errors=_WRITE,
        tag="Prequalifications",
    ),
    Op(
        "createCheckout",
        "POST",
        "/v1/checkouts",
        create_checkout,
        "Start a checkout; send the buyer to its `url`",
        s.CheckoutOut,
        201,
        body=s.CheckoutCreate,
        errors=_WRITE,
        tag="Checkouts",
        links={
            "GetCheckout": {
                "operationId": "getCheckout",
                "parameters": {"id": "$response.body#/id"},
            },
            "ApproveCheckout": {
                "operationId": "approveCheckout",
                "parameters": {"id": "$response.body#/id"},
            },
            "DeclineCheckout": {
                "operationId": "declineCheckout",
                "parameters": {"id": "$response.body#/id"},
            },
        },
    ),
    Op(
        "getCheckout",
        "GET",
        "/v1/checkouts/{id}",
        get_checkout,
        "Get a checkout; `order_id` is set once the buyer completed it",
        s.CheckoutOut,
        errors=_READ,
        tag="Checkouts",
    ),
    Op(
        "approveCheckout",
        "POST",
        "/v1/test_helpers/checkouts/{id}/approve",
        approve_checkout,
        "Test helper: act as the buyer and accept the checkout with the chosen terms",
        s.CheckoutOut,
        body=s.BuyerApproval,
        body_required=False,
        errors=_WRITE,
        tag="Test helpers",
        links={
            "GetOrder": _ORDER_LINK,
            "CaptureOrder": {
                "operationId": "createCapture",
                "parameters": {"id": "$response.body#/order_id"},
            },
            "CancelOrder": {
                "operationId": "cancelOrder",
                "parameters": {"id": "$response.body#/order_id"},
            },
            "UpdateOrder": {
                "operationId": "updateOrder",
                "parameters": {"id": "$response.body#/order_id"},
            },
        },
    ),
    Op(
        "declineCheckout",
        "POST",
        "/v1/test_helpers/checkouts/{id}/decline",
        decline_checkout,
        "Test helper: act as the buyer and decline the checkout",
        s.CheckoutOut,
        errors=_WRITE,
        tag="Test helpers",
    ),
    Op(
        "listOrders",
        "GET",
        "/v1/orders",
        list_orders,
        "List orders, newest first",
        s.ListOut[s.OrderOut],
        query=s.OrderListQuery,
        errors=(401, 422),
        tag="Orders",
    ),
    Op(
        "getOrder",
        "GET",
        "/v1/orders/{id}",
        get_order,
        "Get an order",
        s.OrderOut,
        errors=_READ,
        tag="Orders",
    ),
    Op(
        "updateOrder",
        "PATCH",
        "/v1/orders/{id}",
        update_order,
        "Change amount, merchant_order_id, line items or metadata before any capture",
        s.OrderOut,
        body=s.OrderUpdate,
        errors=_WRITE,
        tag="Orders",
    ),
    Op(
        "createCapture",
        "POST",
        "/v1/orders/{id}/captures",
        create_capture,
        "Capture (on shipment); partial and repeated captures allowed",
        s.CaptureResult,
        201,
        body=s.CaptureCreate,
        body_required=False,
        errors=_WRITE,
        tag="Orders",
        links={
            "RefundOrder": {
                "operationId": "createRefund",
                "parameters": {"id": "$response.body#/order_id"},
            },
            "GetOrder": _ORDER_LINK,
        },
    ),
    Op(
        "createRefund",
        "POST",
        "/v1/orders/{id}/refunds",
        create_refund,
        "Refund captured money; partial and repeated refunds up to what was captured",
        s.RefundResult,
        201,
        body=s.RefundCreate,
        body_required=False,
        errors=_WRITE,
        tag="Orders",
        links={"GetOrder": _ORDER_LINK},
    ),
    Op(
        "cancelOrder",
        "POST",
        "/v1/orders/{id}/cancel",
        cancel_order,
        "Cancel an order before any capture; releases the held credit",
        s.OrderOut,
        body=s.CancelOrder,
        body_required=False,
        errors=_WRITE,
        tag="Orders",
    ),
    Op(
        "listEvents",
        "GET",
        "/v1/events",
        webhooks.list_events,
        "List events (the outbox webhooks are delivered from), newest first; filter by type, "
        "object and created range",
        s.ListOut[s.EventOut],
        query=s.EventListQuery,
        errors=(401, 422),
        tag="Events",
    ),
    *webhooks.OPERATIONS,
    *finance.OPERATIONS,
    *exports.OPERATIONS,
    *token_operations("/v1", "native"),  # the buyers' credit line references (the vault)
]
