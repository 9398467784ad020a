"""`contracts/vcards.yaml`: the virtual cards personality's published contract, built by the
native `openapi.build` from the same operation table the routes come from, with its own events
in the `webhooks` section."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel

from simulator import __version__
from simulator.api import openapi
from simulator.api.docs import SNAPSHOTS, webhooks
from simulator.api.schemas import vcards as vc
from simulator.dialects.vcards.api import OPERATIONS
from simulator.domain.vcards import VcardInvoice
from simulator.domain.webhooks import VCARD_EVENT_TYPES

DESCRIPTION = """\
Sandbank's *virtual cards* personality: the buyer's accounts-payable department pays the
seller's invoices with single-use virtual cards; the seller's card processor authorizes and
captures them; the issuer's interchange and the card scheme's fee come off every payment.

An invoice is created as a `draft` (the order), issued on shipment (the first issue sets
`due_date`, `net_days` later). On the due date the buyer's AP issues a card (`vcard_tok_...`
token, `last4`, expiry, spending `limit`; never a card number): on time, late, split over two
cards, one card for all of the customer's invoices then due, a card that expires before use,
one whose limit is below what is due, or never a card (magic values `+pays_late`, `+splits`,
`+consolidates`, `+card_expires`, `+over_limit`, `+defaults` on the customer's email, else the
account's seeded dice). `processing: automatic` invoices have their cards authorized and captured at
once; `manual` ones wait for `POST /cards/{id}/authorize` and `/capture`. A hold beyond the
card's limit, or on an expired or used card, is declined: `402` with `code` `card_over_limit`,
`card_expired` or `card_used`; the card records it (`declines`, `vcard.declined`).

A capture is allocated to invoices (`allocations`: which card paid how much of which invoice)
and clears `clearing_days` business days later; then every allocation is a `payment` line on
the account's balance (gross, its share of the `fee`, net). Money is integer minor units with
an ISO 4217 `currency`. Authenticate with the account's API key; errors are
`application/problem+json`; POST takes an optional `Idempotency-Key`. Fault rules match these
operations by their ids (`vcards.captureCard`) or paths (`/vcards/v1/*`).
"""

_EVENTS: dict[str, tuple[str, str]] = {
    "invoice.created": ("An invoice was created", "A draft: nothing issued, nothing owed yet."),
    "invoice.issued": (
        "An invoice was issued (a shipment)",
        "`issued_amount` grew; the first issue sets `due_date`.",
    ),
    "invoice.payment_received": (
        "A card payment cleared on an invoice that is still open",
        "Split or over-limit payments: `amount_due` is still above 0.",
    ),
    "invoice.paid": ("An invoice was paid in full", "Nothing is due and nothing is clearing."),
    "invoice.overdue": (
        "An invoice is past due with money no card covers",
        "On the due date (the AP sent nothing, or less than due), or when its card expired.",
    ),
    "invoice.credited": (
        "A credit note was applied",
        "Off what is due; any excess was refunded to the cards (`vcard.refunded`).",
    ),
    "invoice.written_off": (
        "An underpaid invoice was closed",
        "Status `short_paid`: what was still due is no longer owed.",
    ),
    "invoice.voided": ("A draft invoice was voided", "Nothing had been issued."),
    "vcard.issued": (
        "The buyer's AP issued a virtual card",
        "Its `invoices` say what it pays; `limit`, `expires_at`, the token and last4.",
    ),
    "vcard.authorized": ("A hold was placed on a card", "`authorized_amount` grew."),
    "vcard.declined": (
        "A hold on a card was declined",
        "Over its limit, expired or used (the caller got a 402); the processor's automatic "
        "attempt then takes what the limit allows.",
    ),
    "vcard.expired": (
        "A card expired unused",
        "Its invoices are due again (`invoice.overdue`); the AP sends another card, late.",
    ),
    "vcard.captured": (
        "A card was captured (single use)",
        "A `vcard_payment` with its `allocations`; it clears `clearing_days` later.",
    ),
    "vcard.cleared": (
        "A card capture cleared",
        "Each allocation is now a `payment` settlement line with its share of the fee.",
    ),
    "vcard.refunded": (
        "Part of a capture went back to the card",
        "A credit note beyond what was due: a negative `refund` line per refund; the "
        "merchant keeps paying the fee.",
    ),
}
TAGS = {
    "Invoices": "The seller's invoices: a draft per order, issued on shipment, credited, "
    "written off; each lists the card allocations that paid it.",
    "Cards": "The buyer's single-use virtual cards: issued by the AP, authorized and captured "
    "by the seller's processor.",
    "Payments": "Card captures, allocated to invoices, with interchange and scheme fees.",
    "Tokens": "The token vault: each virtual card the buyers' AP issued (never a card number), "
    "revoked by its capture, expired with the card.",
    "Settlements": "Payouts to the merchant, their lines and report files (the account's own).",
    "Events": "Everything that happened, in order: the outbox webhooks are sent from.",
    "Webhooks": "The `webhooks` section describes each virtual-card event's payload.",
}
_SNAPSHOTS: dict[str, type[BaseModel]] = {
    **SNAPSHOTS,
    "invoice": vc.InvoiceOut,
    "vcard": vc.CardOut,
    "vcard_payment": vc.PaymentOut,
}
assert set(_EVENTS) == set(VCARD_EVENT_TYPES)


def vcards_document() -> dict[str, Any]:
    hooks = [
        # The invoice events snapshot this personality's invoices (`vcard_invoice`).
        dataclasses.replace(h, object_type=VcardInvoice.OBJECT_TYPE)
        if h.object_type == "invoice"
        else h
        for h in webhooks(VCARD_EVENT_TYPES, _EVENTS, _SNAPSHOTS)
    ]
    return openapi.build(
        OPERATIONS,
        title="Sandbank: virtual cards",
        version=__version__,
        description=DESCRIPTION,
        transient=True,
        webhooks=hooks,
        tags=TAGS,
    )
