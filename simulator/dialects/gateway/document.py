"""`contracts/gateway.yaml`: the gateway + net terms personality's published contract, built by
the native `openapi.build` from the same operation table the routes come from, with its own
events in the `webhooks` section."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from simulator import __version__
from simulator.api import openapi
from simulator.api.docs import SNAPSHOTS, webhooks
from simulator.api.schemas import gateway as g
from simulator.dialects.gateway.api import OPERATIONS
from simulator.domain.webhooks import GATEWAY_EVENT_TYPES

DESCRIPTION = """\
Sandbank's *gateway + net terms* personality: the seller sells on its own net terms and
carries the credit risk; a payment gateway captures the customers' card and ACH payments
against the seller's invoices and keeps a fee per transaction.

An invoice is created as a `draft` (the order), issued on shipment (partial shipments issue
part; the first issue sets `due_date`, `net_days` later), paid by the customer (on time, late,
in part or short: the `+pays_late`, `+pays_partial`, `+pays_short`, `+defaults` magic values
on the customer's email, else the account's seeded dice), credited by credit notes (beyond
what is due, the gateway refunds the customer) and, when underpaid for good, written off.
Money is integer minor units with an ISO 4217 `currency`; `amount_due` is always
`issued - credited - written_off - (paid - refunded)`.

Every successful charge is a `payment` line on the account's balance (gross, the gateway's
`fee`, net); the settlements, their reports and the events are the account's own (the same as
`/v1` shows). Authenticate with the account's API key (`Authorization: Bearer sk_test_...`);
errors are `application/problem+json`; POST takes an optional `Idempotency-Key`. Fault rules
match these operations by their ids (`gateway.createCharge`).
"""

_EVENTS: dict[str, tuple[str, str]] = {
    "invoice.created": ("An invoice was created", "A draft: nothing issued, nothing owed yet."),
    "invoice.issued": (
        "An invoice was issued (a shipment)",
        "`issued_amount` grew; the first issue sets `due_date`.",
    ),
    "invoice.payment_received": (
        "A payment cleared on an invoice that is still open",
        "Partial or short payments: `amount_due` is still above 0.",
    ),
    "invoice.paid": ("An invoice was paid in full", "Nothing is due and nothing is clearing."),
    "invoice.overdue": (
        "An invoice is past its due date with money still due",
        "Sent on the due date, after the customer's payment of that day (if any).",
    ),
    "invoice.credited": (
        "A credit note was applied",
        "Off what is due; any excess was refunded to the customer (`charge.refunded`).",
    ),
    "invoice.written_off": (
        "An underpaid invoice was closed",
        "Status `short_paid`: what was still due is no longer owed.",
    ),
    "invoice.voided": ("A draft invoice was voided", "Nothing had been issued."),
    "charge.pending": (
        "An ACH debit was initiated",
        "It clears `ach_clearing_days` business days later (then `charge.succeeded`).",
    ),
    "charge.succeeded": (
        "A payment was captured",
        "A card charge at once, an ACH debit when it clears: a `payment` settlement line "
        "with the gateway's fee.",
    ),
    "charge.refunded": (
        "Part or all of a charge went back to the customer",
        "A credit note beyond what was due: a negative `refund` settlement line; the gateway "
        "keeps its fee.",
    ),
}
TAGS = {
    "Invoices": "The seller's invoices: a draft per order, issued on shipment, credited, "
    "written off.",
    "Charges": "The buyers' card and ACH payments against invoices, with the gateway's fee.",
    "Settlements": "Payouts to the merchant, their lines and report files (the account's own).",
    "Tokens": "The token vault: the customers' cards and bank accounts on file (never a "
    "number), with their lifecycle (active, expired on the account clock, revoked).",
    "Events": "Everything that happened, in order: the outbox webhooks are sent from.",
    "Webhooks": "The `webhooks` section describes each gateway event's payload.",
}
_SNAPSHOTS: dict[str, type[BaseModel]] = {
    **SNAPSHOTS,
    "invoice": g.InvoiceOut,
    "charge": g.ChargeOut,
}
assert set(_EVENTS) == set(GATEWAY_EVENT_TYPES)


def gateway_document() -> dict[str, Any]:
    return openapi.build(
        OPERATIONS,
        title="Sandbank: gateway + net terms",
        version=__version__,
        description=DESCRIPTION,
        transient=True,
        webhooks=webhooks(GATEWAY_EVENT_TYPES, _EVENTS, _SNAPSHOTS),
        tags=TAGS,
    )
