"""`contracts/invoicing.yaml`: the traditional-invoicing personality's published contract, built
by the native `openapi.build` from the same operation table the routes come from, with its own
events in the `webhooks` section."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from simulator import __version__
from simulator.api import openapi
from simulator.api.docs import SNAPSHOTS, webhooks
from simulator.api.schemas import invoicing as e
from simulator.dialects.invoicing.api import OPERATIONS
from simulator.domain.webhooks import INVOICING_EVENT_TYPES

DESCRIPTION = """\
Sandbank's *traditional invoicing* personality: the seller sends EDI 810 invoices on its own
net terms and carries the credit risk; buyers pay into the seller's lockbox by ACH with EDI 820
remittance advices whose references may be partial, missing or wrong, so applying cash to
invoices is the work.

Send an invoice as JSON shaped on the 810 (`big`, `buyer` = N1*BY + PER, `itd`, `it1`, `tds`)
or as the X12 text itself (`Content-Type: application/edi-x12`); a malformed document is a 400
or 422 problem naming the segment. The due date is `net_days` from today on the account's
clock. On the due date the buyer remits (on time, late, half, short with a deduction reason,
batched with its other invoices, with a typo'd invoice number, with the PO number instead, with
no reference, or never: the `+pays_late` ... magic values on the buyer's email, else the
account's seeded dice). Each remittance line is deposited as a `payment` settlement line (the
lockbox's `fee` on the first) and applied automatically when it names an open invoice's number
exactly; apply the rest by hand (`POST /remittances/{id}/apply`). Unpaid invoices are dunned:
reminders on the due date and 7 days later, collections at 30 days, default at 90.

Money is integer minor units with an ISO 4217 `currency`. Authenticate with the account's API
key; errors are `application/problem+json`; POST takes an optional `Idempotency-Key`. Fault
rules match these operations by their ids (`invoicing.applyRemittance`).
"""

_EVENTS: dict[str, tuple[str, str]] = {
    "purchase_order.created": (
        "A buyer's purchase order was put on file",
        "Invoices naming it (BIG04) inherit its buyer, up to its amount.",
    ),
    "purchase_order.canceled": ("A purchase order was canceled", "Nothing was invoiced."),
    "edi_invoice.created": (
        "An 810 invoice was received",
        "Open, with its due date `net_days` from today.",
    ),
    "edi_invoice.payment_applied": (
        "Remittance money was applied to an invoice that is still not paid in full",
        "`applied_amount` grew; `amount_due` is still above 0.",
    ),
    "edi_invoice.paid": ("An invoice was paid in full", "Applied cash and credits cover it."),
    "edi_invoice.credited": ("A credit memo was applied", "Off what was due."),
    "edi_invoice.written_off": ("An unpaid invoice was written off", "Nothing is due any more."),
    "collections.reminder": (
        "A dunning reminder was sent",
        "On the due date and 7 days later while money is due (`dunning_level` 1, 2).",
    ),
    "collections.escalated": (
        "An invoice went to collections",
        "30 days past due with money still due (status `collections`).",
    ),
    "collections.defaulted": (
        "An invoice defaulted",
        "90 days past due with money still due (status `defaulted`).",
    ),
    "remittance.received": (
        "A remittance (EDI 820) arrived and was deposited",
        "One `payment` settlement line per remittance line.",
    ),
    "remittance.matched": (
        "Remittance money was applied to invoices",
        "Automatically on arrival (exact invoice numbers) or by hand; `unapplied_amount` says "
        "what is left.",
    ),
    "remittance.unmatched": (
        "A remittance arrived with cash that could not be applied",
        "A missing, mistyped or PO reference, or more paid than due: apply it by hand.",
    ),
}
TAGS = {
    "Purchase orders": "The buyers' purchase orders on file (EDI 850 received): who the buyer "
    "is and how much may be invoiced.",
    "Invoices": "The seller's EDI 810 invoices: sent, credited, written off, dunned.",
    "Remittances": "The buyers' EDI 820 remittances and cash application.",
    "Settlements": "Payouts to the merchant, their lines and report files (the account's own).",
    "Events": "Everything that happened, in order: the outbox webhooks are sent from.",
    "Tokens": "The vault's tokens of the buyers' bank accounts remittances come from.",
    "Webhooks": "The `webhooks` section describes each traditional-invoicing event's payload.",
}
_SNAPSHOTS: dict[str, type[BaseModel]] = {
    **SNAPSHOTS,
    "edi_invoice": e.EdiInvoiceOut,
    "remittance": e.RemittanceOut,
    "purchase_order": e.PurchaseOrderOut,
}
assert set(_EVENTS) == set(INVOICING_EVENT_TYPES)


def invoicing_document() -> dict[str, Any]:
    return openapi.build(
        OPERATIONS,
        title="Sandbank: traditional invoicing (EDI 810/820)",
        version=__version__,
        description=DESCRIPTION,
        transient=True,
        webhooks=webhooks(INVOICING_EVENT_TYPES, _EVENTS, _SNAPSHOTS),
        tags=TAGS,
    )
