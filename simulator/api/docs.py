"""The two published documents, built from the operation tables."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from simulator import __version__
from simulator.api import openapi, v1
from simulator.api import schemas as s
from simulator.control import operations as control
from simulator.domain.webhooks import NATIVE_EVENT_TYPES, event_object_type

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


PROVIDER_TAGS = {
    "Buyers": "The businesses that buy on terms, and their credit lines.",
    "Prequalifications": "Soft credit checks before a checkout: no order, no hold on credit.",
    "Checkouts": "Offers of credit to a buyer for one purchase; the buyer answers on a hosted "
    "page.",
    "Orders": "Accepted checkouts: capture as you ship, refund, cancel.",
    "Settlements": "Payouts to the merchant, their lines and report files.",
    "Disputes": "Buyers contesting captured orders; answer with evidence or accept.",
    "Exports": "The account's data as CSV or JSON lines files.",
    "Tokens": "The token vault: the buyers' payment tokens (credit line references), with "
    "their lifecycle (active, expired on the account clock, revoked).",
    "Events": "Everything that happened, in order: the outbox webhooks are sent from.",
    "Webhooks": "Endpoints that receive events, their secrets and delivery attempts; the "
    "`webhooks` section describes each event's payload.",
    "Test helpers": "Sandbox-only shortcuts that act as the buyer.",
}
SANDBOX_TAGS = {
    "Health": "Is the server up (no token needed).",
    "Accounts": "Sandbox accounts: create, list, reset, seed, dump.",
    "Clock": "Each account's virtual clock: read, advance (running what falls due), freeze.",
    "Buyer and underwriter": "Act as the buyer on a checkout or the underwriter on a review.",
    "Faults": "Fault rules and presets: errors, latency and broken connections on /v1.",
    "Journal": "The request journal: what clients sent and got, to verify.",
    "Webhooks": "Delivery quirks, the delivery log, flush and replay.",
    "Money": "Disputes opened as the buyer, and settlement-report drift.",
    "Tokens": "Import another provider's payment tokens (a token-migration file).",
}

# The public snapshot in `data`, per `object_type` (what `schemas.present` makes of the object).
SNAPSHOTS: dict[str, type[BaseModel]] = {
    "buyer": s.BuyerOut,
    "checkout": s.CheckoutOut,
    "order": s.OrderOut,
    "webhook_endpoint": s.WebhookEndpointPublic,
    "repayment": s.RepaymentOut,
    "settlement": s.SettlementSummaryOut,
    "dispute": s.DisputeOut,
}

# When each event type is sent: (summary, description). One entry per `NATIVE_EVENT_TYPES`.
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
    "buyer.payment.succeeded": (
        "A buyer paid a repayment",
        "Sent when a repayment is paid: on its due date, or later for a late payer (with "
        "`late_fee`). The buyer's credit is given back (a `buyer.credit_line.updated` follows).",
    ),
    "buyer.payment.late": (
        "A buyer missed a due date",
        "Sent when a repayment's due date passes unpaid; `buyer.payment.succeeded` or "
        "`buyer.payment.defaulted` follows. Merchant settlements are not affected.",
    ),
    "buyer.payment.defaulted": (
        "A buyer defaulted on a repayment",
        "Sent when a late repayment stays unpaid past the default window; the buyer's credit "
        "line is suspended. The provider carries the loss: merchant settlements are unaffected.",
    ),
    "settlement.created": (
        "A settlement (payout) was created",
        "Sent at the end of a business day for each currency with movements: captures net of "
        "the discount fee, refunds, dispute debits and reversals. `GET /v1/settlements/{id}` "
        "gives its lines; `/report` the report file.",
    ),
    "settlement.paid": (
        "A settlement was paid out",
        "Sent on the settlement's `payout_date` (T+N business days after its `batch_date`).",
    ),
    "dispute.created": (
        "A buyer disputed an order",
        "Sent when a dispute opens: its amount is debited from the next settlement until it is "
        "decided. Respond by `respond_by` with evidence, or accept it.",
    ),
    "dispute.updated": (
        "Evidence was submitted for a dispute",
        "Sent when the merchant submits evidence; the dispute is `under_review` until "
        "`decides_at`.",
    ),
    "dispute.won": (
        "A dispute was won",
        "Sent when the decision goes the merchant's way: the disputed amount is credited back "
        "(a `dispute_reversal` settlement line).",
    ),
    "dispute.lost": (
        "A dispute was lost",
        "Sent when the merchant accepts a dispute, misses `respond_by`, or the evidence does not "
        "convince: the debit stands.",
    ),
    "webhook_endpoint.disabled": (
        "A webhook endpoint was disabled",
        "Sent to the account's other endpoints when one is disabled: it answered 410 Gone, or "
        "failed for 5 days.",
    ),
}


def webhooks(
    types: tuple[str, ...] = NATIVE_EVENT_TYPES,
    described: dict[str, tuple[str, str]] = EVENTS,
    snapshots: dict[str, type[BaseModel]] = SNAPSHOTS,
) -> list[openapi.Webhook]:
    """The `webhooks` section's entries, one per event type of a document (the native API's
    by default; the gateway personality passes its own)."""
    if set(described) != set(types):
        raise RuntimeError(f"describe exactly the event types: {set(described) ^ set(types)}")
    out = []
    for event_type in types:
        object_type = event_object_type(event_type)
        summary, description = described[event_type]
        out.append(
            openapi.Webhook(
                event_type=event_type,
                object_type=object_type,
                snapshot=snapshots[object_type],
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
        tags=PROVIDER_TAGS,
    )


def sandbox_document() -> dict[str, Any]:
    doc = openapi.build(
        control.OPERATIONS,
        title="Sandbank control plane",
        version=__version__,
        description=SANDBOX_DESCRIPTION,
        idempotency=False,
        tags=SANDBOX_TAGS,
    )
    doc["paths"]["/_sandbox/health"]["get"]["security"] = []
    return doc
