"""The two published documents, built from the operation tables."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from simulator import __version__
from simulator.api import openapi, v1
from simulator.api import schemas as s
from simulator.control import faults as control_faults
from simulator.control import routes as control
from simulator.control import webhooks as control_webhooks
from simulator.domain.webhooks import EVENT_TYPES

PROVIDER_DESCRIPTION = """\
Sandbank's native provider API: embedded B2B credit (pay on terms at checkout) with buyers,
credit decisions, checkouts, orders, captures, refunds and cancellations.

Money is always an integer in minor units plus an ISO 4217 `currency`. Every response carries
`Request-Id`; every error is `application/problem+json`. POST and PATCH take an optional
`Idempotency-Key`. `/v1/test_helpers/*` exist only in the sandbox.

Webhooks (the `webhooks` section): every event is POSTed as JSON to each enabled endpoint that
subscribes to its type, signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`,
`webhook-signature`). The body is the event exactly as `GET /v1/events/{id}` returns it. Delivery
is at least once and in no guaranteed order: deduplicate on `webhook-id`, and order by the event's
`created_at`, not by arrival.
"""

SANDBOX_DESCRIPTION = """\
Sandbank's control plane: accounts, seeds, per-account virtual clocks, buyer and underwriter
actions, state dumps, fault rules and presets, the request journal, and webhook quirks,
deliveries, flush and replay. Authorised with the admin token (`Authorization: Bearer ...`).
Not part of the provider contract.
"""


# The public snapshot in `data`, per `object_type` (what `schemas.present` makes of the object).
SNAPSHOTS: dict[str, type[BaseModel]] = {
    "buyer": s.BuyerOut,
    "checkout": s.CheckoutOut,
    "order": s.OrderOut,
    "webhook_endpoint": s.WebhookEndpointPublic,
}

# When each event type is sent: (summary, description). One entry per `EVENT_TYPES`.
EVENTS: dict[str, tuple[str, str]] = {
    "buyer.created": (
        "A buyer was created",
        "Sent when a buyer is created, with `POST /v1/buyers` or inline with a checkout.",
    ),
    "buyer.credit_line.updated": (
        "A buyer's credit line changed",
        "Sent when the credit line's status, limit or available credit changes: a decision or a "
        "review, an authorization's hold, and releases by captures below the authorized amount, "
        "refunds, cancellations, expiries and amount changes.",
    ),
    "checkout.created": (
        "A checkout was created",
        "Sent when `POST /v1/checkouts` creates a checkout; the buyer is sent to its `url`.",
    ),
    "checkout.completed": (
        "The buyer accepted a checkout",
        "Sent when the buyer accepts the offer on the hosted page: `order_id` names the order, "
        "authorized or pending review (its own event precedes this one).",
    ),
    "checkout.declined": (
        "A checkout was declined",
        "Sent when the credit decision refuses the buyer, or the buyer turns the offer down.",
    ),
    "checkout.expired": (
        "A checkout expired",
        "Sent when an open checkout reaches `expires_at` without an answer from the buyer.",
    ),
    "order.pending_review": (
        "An order awaits manual review",
        "Sent when an accepted checkout's order goes to manual underwriting review; "
        "`order.authorized` or `order.declined` follows.",
    ),
    "order.authorized": (
        "An order was authorized",
        "Sent when an order is authorized (at checkout, or after a review): the credit is held "
        "until `authorization_expires_at`; capture it before then.",
    ),
    "order.declined": (
        "An order was declined",
        "Sent when a review declines an order (or approves too little credit for it).",
    ),
    "order.updated": (
        "An order was changed",
        "Sent when `PATCH /v1/orders/{id}` changes an order's amount, merchant order id, line "
        "items or metadata.",
    ),
    "order.captured": (
        "An order was captured",
        "Sent for every capture, partial or final; `captures` lists them all.",
    ),
    "order.refunded": (
        "An order was refunded",
        "Sent for every refund, partial or full; `refunds` lists them all.",
    ),
    "order.canceled": (
        "An order was canceled",
        "Sent when `POST /v1/orders/{id}/cancel` releases what was left uncaptured.",
    ),
    "order.expired": (
        "An order's authorization expired",
        "Sent when `authorization_expires_at` passes with credit still uncaptured; the rest is "
        "released.",
    ),
    "webhook_endpoint.disabled": (
        "A webhook endpoint was disabled",
        "Sent to the account's other endpoints when one is disabled: it answered 410 Gone, or "
        "failed for 5 days.",
    ),
}


def webhooks() -> list[openapi.Webhook]:
    """The `webhooks` section's entries, one per event type the simulator emits."""
    if set(EVENTS) != set(EVENT_TYPES):
        raise RuntimeError(f"describe exactly the event types: {set(EVENTS) ^ set(EVENT_TYPES)}")
    out = []
    for event_type in EVENT_TYPES:
        object_type = event_type.split(".", 1)[0]
        summary, description = EVENTS[event_type]
        out.append(
            openapi.Webhook(
                event_type=event_type,
                object_type=object_type,
                snapshot=SNAPSHOTS[object_type],
                summary=summary,
                description=description,
            )
        )
    return out


def provider_document() -> dict[str, Any]:
    return openapi.build(
        v1.OPERATIONS,
        title="Sandbank provider API",
        version=__version__,
        description=PROVIDER_DESCRIPTION,
        transient=True,
        webhooks=webhooks(),
    )


def sandbox_document() -> dict[str, Any]:
    doc = openapi.build(
        [*control.OPERATIONS, *control_faults.OPERATIONS, *control_webhooks.OPERATIONS],
        title="Sandbank control plane",
        version=__version__,
        description=SANDBOX_DESCRIPTION,
        idempotency=False,
    )
    doc["paths"]["/_sandbox/health"]["get"]["security"] = []
    return doc
