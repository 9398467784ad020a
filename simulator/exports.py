"""Account data exports: the whole dataset of an account as CSV or JSON-lines files.

`FILES` is the one description of what an export holds: its files, and per file its columns
in order, each with a type and a one-line meaning. The builder writes exactly those columns and
the API documentation (and the README table) is generated from the same table.

Rules every file follows:
- Money is integer minor units, with the ISO 4217 `currency` column on the same row.
- Times are RFC 3339 in UTC on the account clock (`2026-03-02T09:00:00Z`); dates `YYYY-MM-DD`.
- Rows are in a stable order: creation order, oldest first (see each file's description).
- CSV (RFC 4180, via the csv module): a header row, `\\r\\n` line ends, UTF-8; an empty field
  is a null, booleans are `true`/`false`, and nested values (line items, metadata, evidence,
  event data) are compact JSON text. JSON lines: one object per row with the same keys in the
  same order, nested values as JSON.
- Deterministic: the same account state gives byte-identical files (and `sha256`).

Building streams (issue #17: an export built in memory froze every account's requests for
seconds and doubled the server's memory): the store reads the account a page at a time from one
snapshot, off the event loop (`Store.build_export`, `simulator.store.export_rows`), this module
encodes each file as it goes, handing over about `CHUNK_BYTES` at a time to be kept as chunks,
and counts its rows, bytes and SHA-256 on the way; a download streams the chunks back.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal

import orjson

from simulator.domain.errors import NotFound
from simulator.domain.gateway import Invoice
from simulator.domain.invoicing import EdiInvoice, Remittance
from simulator.domain.models import Capture, Entity, Order, Refund
from simulator.domain.records import Page
from simulator.domain.vault import Token
from simulator.domain.vcards import Allocation, Vcard, VcardInvoice, VcardPayment
from simulator.store.export_rows import ExportRows

if TYPE_CHECKING:
    from simulator.context import Ctx

ExportFormat = Literal["csv", "jsonl"]
ColumnType = Literal["string", "integer", "boolean", "datetime", "date", "json"]
MEDIA: dict[str, str] = {"csv": "text/csv", "jsonl": "application/x-ndjson"}
# The kinds in the store's finance-objects table this module reads and writes.
EXPORT_KIND, SETTLEMENT_KIND, LINE_KIND, DISPUTE_KIND = "export", "settlement", "line", "dispute"
CHUNK_BYTES = 64 * 1024  # what the builder hands over at a time
Row = Callable[[Any], dict[str, Any]]
Sink = Callable[[str, bytes], None]  # (file name, chunk)
_SPOOLS = itertools.count(1)


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    description: str


@dataclass(frozen=True)
class FileSpec:
    description: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


def col(name: str, type_: ColumnType, description: str) -> Column:
    return Column(name, type_, description)


_CREATED = col("created_at", "datetime", "When it was created (account clock)")
_CURRENCY = col("currency", "string", "ISO 4217 code of the row's amounts")
_ORDER_ID = col("order_id", "string", "The order (`ord_...`)")

FILES: dict[str, FileSpec] = {
    "orders": FileSpec(
        "One row per order, oldest first.",
        (
            col("id", "string", "The order (`ord_...`)"),
            col("status", "string", "Order status, as `GET /v1/orders/{id}` gives it"),
            col("buyer_id", "string", "The buyer (`buy_...`)"),
            col("checkout_id", "string", "The checkout that created it"),
            col("merchant_order_id", "string", "Your order reference (empty when not given)"),
            col("terms", "string", "net30, net60, installments_3, installments_6, installments_12"),
            _CURRENCY,
            col("amount", "integer", "Authorized amount, minor units"),
            col("captured_amount", "integer", "Sum of captures, minor units"),
            col("refunded_amount", "integer", "Sum of refunds, minor units"),
            col("capturable_amount", "integer", "Still capturable, minor units"),
            col("refundable_amount", "integer", "Captured and not refunded, minor units"),
            col("decision_outcome", "string", "Underwriting outcome: approved, declined, review"),
            col("decision_reason", "string", "Why, when the decision gave a reason"),
            col("line_items", "json", "Line items: [{name, sku, quantity, unit_amount}]"),
            col("metadata", "json", "Your metadata: {key: value}"),
            _CREATED,
            col("updated_at", "datetime", "Last change (account clock)"),
            col("authorized_at", "datetime", "When it was authorized"),
            col("canceled_at", "datetime", "When it was canceled"),
            col("authorization_expires_at", "datetime", "When the uncaptured rest lapses"),
        ),
    ),
    "captures": FileSpec(
        "One row per capture, oldest first.",
        (
            col("id", "string", "The capture (`cap_...`)"),
            _ORDER_ID,
            _CURRENCY,
            col("amount", "integer", "Captured amount, minor units"),
            col("final", "boolean", "A final capture released the uncaptured rest"),
            _CREATED,
        ),
    ),
    "refunds": FileSpec(
        "One row per refund, oldest first.",
        (
            col("id", "string", "The refund (`ref_...`)"),
            _ORDER_ID,
            _CURRENCY,
            col("amount", "integer", "Refunded amount, minor units"),
            col("reason", "string", "The reason given (empty when none)"),
            _CREATED,
        ),
    ),
    "repayments": FileSpec(
        "One row per buyer repayment (installment) of a capture, oldest first.",
        (
            col("id", "string", "The repayment (`rpy_...`)"),
            _ORDER_ID,
            col("buyer_id", "string", "The buyer who owes it"),
            col("capture_id", "string", "The capture it repays"),
            col("terms", "string", "The order's terms"),
            col("installment", "integer", "1-based number of this installment"),
            col("installments", "integer", "How many installments the capture has"),
            _CURRENCY,
            col("amount", "integer", "Still owed, minor units (refunds and lost disputes cut it)"),
            col("original_amount", "integer", "Owed when scheduled, minor units"),
            col("late_fee", "integer", "Charged to the buyer for paying late, minor units"),
            col("status", "string", "scheduled, late, paid, defaulted or canceled"),
            col("due_at", "datetime", "Due date"),
            col("paid_at", "datetime", "When it was paid"),
            col("defaulted_at", "datetime", "When it defaulted"),
            _CREATED,
            col("updated_at", "datetime", "Last change (account clock)"),
        ),
    ),
    "settlements": FileSpec(
        "One row per settlement (payout), oldest first.",
        (
            col("id", "string", "The settlement (`stl_...`)"),
            col("status", "string", "pending or paid"),
            _CURRENCY,
            col("amount", "integer", "The payout, minor units: the sum of its lines' `net`"),
            col("gross", "integer", "Sum of its lines' `gross`, minor units"),
            col("fees", "integer", "Sum of its lines' `fee`, minor units"),
            col("line_count", "integer", "How many lines it pays"),
            col("batch_date", "date", "The business day whose movements it pays out"),
            col("payout_date", "date", "When it is (or was) paid out"),
            _CREATED,
            col("paid_at", "datetime", "When it was paid"),
        ),
    ),
    "settlement_lines": FileSpec(
        "One row per movement of the merchant balance: the true lines (never a drifted "
        "report), grouped by settlement oldest first in the settlement's order, then the "
        "lines not yet settled, oldest first.",
        (
            col("id", "string", "The line (`sln_...`)"),
            col("settlement_id", "string", "The settlement that pays it (empty: not yet settled)"),
            col("type", "string", "capture, refund, fee, dispute, dispute_reversal, carry_forward"),
            col("order_id", "string", "The order the money belongs to (null for carry_forward)"),
            col("source_id", "string", "The capture, refund, dispute or settlement behind it"),
            _CURRENCY,
            col("gross", "integer", "Minor units; negative for debits"),
            col("fee", "integer", "The merchant discount fee, minor units"),
            col("net", "integer", "gross - fee, minor units"),
            col("batch_date", "date", "The business day whose batch it belongs to"),
            _CREATED,
        ),
    ),
    "disputes": FileSpec(
        "One row per dispute, oldest first.",
        (
            col("id", "string", "The dispute (`dp_...`)"),
            _ORDER_ID,
            col("buyer_id", "string", "The buyer who disputed"),
            _CURRENCY,
            col("amount", "integer", "Disputed amount, minor units"),
            col("reason", "string", "The buyer's reason"),
            col("status", "string", "needs_response, under_review, won or lost"),
            col("accepted", "boolean", "The merchant accepted it"),
            col("evidence", "json", "The evidence submitted: {name: text}, or null"),
            col("evidence_submitted_at", "datetime", "When evidence was submitted"),
            col("respond_by", "datetime", "The deadline for a response"),
            col("decides_at", "datetime", "When submitted evidence is decided"),
            col("closed_at", "datetime", "When it was won or lost"),
            _CREATED,
            col("updated_at", "datetime", "Last change (account clock)"),
        ),
    ),
    "invoices": FileSpec(
        "One row per invoice of the gateway + net terms personality (`/gateway/v1`), oldest "
        "first. amount_due = issued - credited - written_off - (paid - refunded).",
        (
            col("id", "string", "The invoice (`inv_...`)"),
            col("number", "string", "The seller's invoice (order) number"),
            col("status", "string", "draft, open, paid, short_paid or void"),
            col("past_due", "boolean", "Past its due date with money still due"),
            col("customer_name", "string", "The customer's name"),
            col("customer_email", "string", "The customer's email"),
            col("customer_external_id", "string", "The seller's id for the customer"),
            col("payment_method", "string", "card or ach: what the customer pays with"),
            _CURRENCY,
            col("amount", "integer", "The order's total, minor units"),
            col("issued_amount", "integer", "Issued (shipped and invoiced), minor units"),
            col("credited_amount", "integer", "Taken back by credit notes, minor units"),
            col("paid_amount", "integer", "Cleared payments, minor units"),
            col("pending_amount", "integer", "Payments still clearing (ACH), minor units"),
            col("refunded_amount", "integer", "Paid money refunded, minor units"),
            col("written_off_amount", "integer", "Written off (short paid), minor units"),
            col("amount_due", "integer", "Still owed, minor units"),
            col("net_days", "integer", "Days from the first issue to the due date"),
            col("issued_at", "datetime", "The first issue"),
            col("due_date", "date", "When payment is due"),
            col("paid_at", "datetime", "When it was paid in full"),
            col("voided_at", "datetime", "When the draft was voided"),
            _CREATED,
            col("updated_at", "datetime", "Last change (account clock)"),
        ),
    ),
    "charges": FileSpec(
        "One row per gateway charge (a customer's payment against an invoice), oldest first.",
        (
            col("id", "string", "The charge (`ch_...`)"),
            col("invoice_id", "string", "The invoice paid (`inv_...`)"),
            col("method", "string", "card or ach"),
            col("status", "string", "pending (ACH clearing) or succeeded"),
            _CURRENCY,
            col("amount", "integer", "Charged, minor units"),
            col("fee", "integer", "The gateway's fee, minor units"),
            col("refunded_amount", "integer", "Refunded by credit notes, minor units"),
            col("initiated_by", "string", "customer (paid on the clock) or merchant (API)"),
            col("clears_at", "datetime", "When an ACH debit clears"),
            col("succeeded_at", "datetime", "When it was captured or cleared"),
            _CREATED,
        ),
    ),
    "token_migration": FileSpec(
        "The token vault as a network-token migration file: one row per payment token of every "
        "personality, oldest first. No card or account number: brand, last 4, expiry and the "
        "network's or bank's reference only. Tokens this provider imported name the source "
        "provider's token they replaced (`imported_from`): its old-token -> new-token map. "
        "`POST /_sandbox/accounts/{id}/token_import` on the receiving provider takes the rows.",
        (
            col("token", "string", "The token (`tok_...`)"),
            col(
                "imported_from",
                "string",
                "The source provider's token it replaced (empty: made here)",
            ),
            col("personality", "string", "Whose token: native (/v1), gateway (/gateway/v1), ..."),
            col("type", "string", "card, bank_account or credit_line"),
            col("owner", "string", "The buyer or customer whose instrument it is"),
            col("fingerprint", "string", "The instrument's identity, the same at any provider"),
            col("brand", "string", "Card network or bank name"),
            col("last4", "string", "Last 4 digits of the card or account"),
            col("exp_month", "integer", "Card expiry month (1-12)"),
            col("exp_year", "integer", "Card expiry year"),
            col(
                "network_reference",
                "string",
                "Network token, bank mandate or credit line reference",
            ),
            col("status", "string", "active, expired or revoked"),
            col("expires_at", "datetime", "When it expires (account clock)"),
            _CREATED,
            col("updated_at", "datetime", "Last change (account clock)"),
        ),
    ),
    "edi_invoices": FileSpec(
        "One row per EDI 810 invoice of the traditional-invoicing personality (`/invoicing/v1`), "
        "oldest first. amount_due = amount - credited - written_off - applied.",
        (
            col("id", "string", "The invoice (`einv_...`)"),
            col("number", "string", "BIG02: the seller's invoice number"),
            col("po_number", "string", "BIG04: the buyer's purchase order"),
            col("status", "string", "open, paid, collections, defaulted or written_off"),
            col("buyer_name", "string", "N1*BY: the buyer"),
            col("buyer_email", "string", "PER: the buyer's accounts payable"),
            col("buyer_external_id", "string", "N104: the buyer's id"),
            _CURRENCY,
            col("amount", "integer", "TDS01: the invoice total, minor units"),
            col("credited_amount", "integer", "Credit memos, minor units"),
            col("written_off_amount", "integer", "Written off, minor units"),
            col("applied_amount", "integer", "Remittance money applied, minor units"),
            col("amount_due", "integer", "Still owed, minor units"),
            col("dunning_level", "integer", "1-2 reminders, 3 collections, 4 defaulted"),
            col("net_days", "integer", "ITD07: days from the invoice date to the due date"),
            col("invoice_date", "date", "When it was received (account clock)"),
            col("due_date", "date", "When payment is due"),
            col("paid_at", "datetime", "When it was paid in full"),
            _CREATED,
            col("updated_at", "datetime", "Last change (account clock)"),
        ),
    ),
    "remittances": FileSpec(
        "One row per remittance (EDI 820) deposited, oldest first. applied + unapplied = amount.",
        (
            col("id", "string", "The remittance (`rmt_...`)"),
            col("trace", "string", "TRN02: the payment's trace number"),
            col("method", "string", "BPR04: ACH or CHK"),
            col("status", "string", "unmatched, partially_matched or matched"),
            col("buyer_name", "string", "N1*PR: who paid"),
            _CURRENCY,
            col("amount", "integer", "BPR02: deposited, minor units"),
            col("fee", "integer", "The lockbox's fee, minor units"),
            col("applied_amount", "integer", "Applied to invoices, minor units"),
            col("unapplied_amount", "integer", "Not applied yet (unapplied cash), minor units"),
            col(
                "lines",
                "json",
                "RMR lines: [{id, qualifier, reference, amount, adjustment, adjustment_reason, "
                "allocations: [{invoice_id, invoice_number, order_ref, amount, by, at}]}]",
            ),
            col("created_at", "datetime", "When it arrived and was deposited (account clock)"),
        ),
    ),
    "vcard_invoices": FileSpec(
        "One row per invoice of the virtual cards personality (`/vcards/v1`), oldest first. "
        "amount_due = issued - credited - written_off - (paid - refunded).",
        (
            col("id", "string", "The invoice (`vinv_...`)"),
            col("number", "string", "The seller's invoice (order) number"),
            col("status", "string", "draft, open, paid, short_paid or void"),
            col("past_due", "boolean", "Past due with money no card covers"),
            col("customer_name", "string", "The customer's name"),
            col("customer_email", "string", "The customer's email"),
            col("customer_external_id", "string", "The seller's id for the customer"),
            col("processing", "string", "automatic or manual: who processes its cards"),
            _CURRENCY,
            col("amount", "integer", "The order's total, minor units"),
            col("issued_amount", "integer", "Issued (shipped and invoiced), minor units"),
            col("credited_amount", "integer", "Taken back by credit notes, minor units"),
            col("paid_amount", "integer", "Cleared card payments, minor units"),
            col("pending_amount", "integer", "Captured, still clearing, minor units"),
            col("carded_amount", "integer", "On cards not captured yet, minor units"),
            col("refunded_amount", "integer", "Paid money refunded to cards, minor units"),
            col("written_off_amount", "integer", "Written off (short paid), minor units"),
            col("amount_due", "integer", "Still owed, minor units"),
            col("due_date", "date", "When payment is due"),
            col("paid_at", "datetime", "When it was paid in full"),
            _CREATED,
            col("updated_at", "datetime", "Last change (account clock)"),
        ),
    ),
    "vcards": FileSpec(
        "One row per virtual card the buyers' AP issued, oldest first (a token and the last "
        "four digits: never a card number).",
        (
            col("id", "string", "The card (`vcard_...`)"),
            col("token", "string", "`vcard_tok_...`"),
            col("last4", "string", "The card number's last four digits"),
            col("exp_month", "integer", "Expiry month"),
            col("exp_year", "integer", "Expiry year"),
            col("expires_at", "datetime", "When it expires (account clock)"),
            col("status", "string", "active, used or expired"),
            _CURRENCY,
            col("limit", "integer", "Spending limit, minor units"),
            col("authorized_amount", "integer", "Held, not captured, minor units"),
            col("captured_amount", "integer", "Captured, minor units"),
            col("declines", "integer", "Attempts it declined"),
            col("invoices", "json", "What it was issued for: [{invoice_id, amount}]"),
            col("payment_id", "string", "Its capture (`vcp_...`)"),
            _CREATED,
        ),
    ),
    "vcard_allocations": FileSpec(
        "One row per allocation of a card capture to an invoice (which card paid how much of "
        "which invoice), oldest capture first; each cleared one is a `payment` line.",
        (
            col("id", "string", "The allocation (`val_...`): the line's source_id"),
            col("payment_id", "string", "The capture (`vcp_...`)"),
            col("card_id", "string", "The card (`vcard_...`)"),
            col("invoice_id", "string", "The invoice paid (`vinv_...`)"),
            col("status", "string", "The capture's: pending or cleared"),
            _CURRENCY,
            col("amount", "integer", "Paid to the invoice, minor units"),
            col("fee", "integer", "Its share of interchange + scheme fee, minor units"),
            col("refunded_amount", "integer", "Refunded to the card, minor units"),
            col("created_at", "datetime", "When the card was captured (account clock)"),
            col("cleared_at", "datetime", "When the capture cleared"),
        ),
    ),
    "events": FileSpec(
        "One row per event (the webhook outbox), oldest first.",
        (
            col("id", "string", "The event (`evt_...`)"),
            col("type", "string", "Event type, e.g. `order.captured`"),
            col("object_type", "string", "The kind of object in `data`"),
            col("object_id", "string", "The object's id"),
            col("api_version", "string", "API version of `data`"),
            _CREATED,
            col("data", "json", "The object as it was when the event happened"),
        ),
    ),
}


class ExportFile(Entity):
    name: str  # `orders.csv`
    content_type: str
    rows: int
    bytes: int
    sha256: str
    content: str | None = None  # the bytes, in exports made before files were chunks


class Export(Entity):
    """A stored export: its files' metadata (the public object) and where their bytes are."""

    id: str
    format: ExportFormat
    status: Literal["succeeded"] = "succeeded"
    created_at: datetime
    spool: str | None = None  # its files' chunks (`Store.export_stream`); None: `content`
    files: list[ExportFile]

    def file(self, name: str) -> ExportFile | None:
        return next((f for f in self.files if f.name == name), None)


# --- rows ---------------------------------------------------------------------------------------
def _order_row(o: Order) -> dict[str, Any]:
    return {
        "id": o.id,
        "status": o.status,
        "buyer_id": o.buyer_id,
        "checkout_id": o.checkout_id,
        "merchant_order_id": o.merchant_order_id,
        "terms": o.terms,
        "currency": o.currency,
        "amount": o.amount,
        "captured_amount": o.captured_amount,
        "refunded_amount": o.refunded_amount,
        "capturable_amount": o.capturable_amount,
        "refundable_amount": o.refundable_amount,
        "decision_outcome": o.decision.outcome,
        "decision_reason": o.decision.reason,
        "line_items": [i.model_dump(mode="json") for i in o.line_items],
        "metadata": dict(o.metadata),
        "created_at": o.created_at,
        "updated_at": o.updated_at,
        "authorized_at": o.authorized_at,
        "canceled_at": o.canceled_at,
        "authorization_expires_at": o.authorization_expires_at,
    }


def _capture_row(pair: tuple[str, Capture]) -> dict[str, Any]:
    order_id, c = pair
    return {
        "id": c.id,
        "order_id": order_id,
        "currency": c.currency,
        "amount": c.amount,
        "final": c.final,
        "created_at": c.created_at,
    }


def _refund_row(pair: tuple[str, Refund]) -> dict[str, Any]:
    order_id, r = pair
    return {
        "id": r.id,
        "order_id": order_id,
        "currency": r.currency,
        "amount": r.amount,
        "reason": r.reason,
        "created_at": r.created_at,
    }


def _invoice_row(i: Invoice) -> dict[str, Any]:
    customer = {
        "customer_name": i.customer.name,
        "customer_email": i.customer.email,
        "customer_external_id": i.customer.external_id,
        "payment_method": i.customer.payment_method,
    }
    derived = {"amount_due": i.due, **customer}
    return {
        name: derived[name] if name in derived else getattr(i, name)
        for name in FILES["invoices"].names
    }


def _token_row(t: Token) -> dict[str, Any]:
    renamed = {"token": t.id}
    return {
        n: renamed[n] if n in renamed else getattr(t, n) for n in FILES["token_migration"].names
    }


def _edi_invoice_row(i: EdiInvoice) -> dict[str, Any]:
    derived = {
        "amount_due": i.due,
        "buyer_name": i.buyer.name,
        "buyer_email": i.buyer.email,
        "buyer_external_id": i.buyer.external_id,
    }
    return {
        name: derived[name] if name in derived else getattr(i, name)
        for name in FILES["edi_invoices"].names
    }


def _remittance_row(r: Remittance) -> dict[str, Any]:
    derived = {
        "buyer_name": r.buyer.name,
        "created_at": r.received_at,
        "applied_amount": r.applied,
        "unapplied_amount": r.unapplied,
        "lines": [line.model_dump(mode="json") for line in r.lines],
    }
    return {
        name: derived[name] if name in derived else getattr(r, name)
        for name in FILES["remittances"].names
    }


def _vcard_invoice_row(i: VcardInvoice) -> dict[str, Any]:
    derived = {
        "amount_due": i.due,
        "customer_name": i.customer.name,
        "customer_email": i.customer.email,
        "customer_external_id": i.customer.external_id,
    }
    return {
        name: derived[name] if name in derived else getattr(i, name)
        for name in FILES["vcard_invoices"].names
    }


def _vcard_row(card: Vcard) -> dict[str, Any]:
    invoices = [i.model_dump() for i in card.invoices]
    return {
        name: invoices if name == "invoices" else getattr(card, name)
        for name in FILES["vcards"].names
    }


def _allocation_row(pair: tuple[VcardPayment, Allocation]) -> dict[str, Any]:
    p, a = pair
    return {
        "id": a.id,
        "payment_id": p.id,
        "card_id": a.card_id,
        "invoice_id": a.invoice_id,
        "status": p.status,
        "currency": p.currency,
        "amount": a.amount,
        "fee": a.fee,
        "refunded_amount": a.refunded_amount,
        "created_at": p.created_at,
        "cleared_at": p.cleared_at,
    }


def _by_names(file: str) -> Callable[[Any], dict[str, Any]]:
    names = FILES[file].names
    return lambda obj: {name: getattr(obj, name) for name in names}


def _sources(rows: ExportRows) -> dict[str, tuple[Callable[[], Iterable[Any]], Row]]:
    """Per file: its objects (read when the file is written), and how one becomes a row."""
    return {
        "orders": (rows.orders, _order_row),
        "captures": (rows.captures, _capture_row),
        "refunds": (rows.refunds, _refund_row),
        "repayments": (rows.repayments, _by_names("repayments")),
        "settlements": (rows.settlements, _by_names("settlements")),
        "settlement_lines": (rows.settlement_lines, _by_names("settlement_lines")),
        "disputes": (rows.disputes, _by_names("disputes")),
        "invoices": (rows.invoices, _invoice_row),
        "charges": (rows.charges, _by_names("charges")),
        "vcard_invoices": (rows.vcard_invoices, _vcard_invoice_row),
        "vcards": (rows.vcards, _vcard_row),
        "vcard_allocations": (rows.vcard_allocations, _allocation_row),
        "edi_invoices": (rows.edi_invoices, _edi_invoice_row),
        "remittances": (rows.remittances, _remittance_row),
        "token_migration": (rows.tokens, _token_row),
        "events": (rows.events, _by_names("events")),
    }


# --- encoding -----------------------------------------------------------------------------------
def rfc3339(value: datetime) -> str:
    """UTC, `Z`-suffixed; fractions of a second only when there are any (as the API writes)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _json_value(value: Any, type_: ColumnType) -> Any:
    if value is None:
        return None
    if type_ == "datetime":
        return rfc3339(value)
    if type_ == "date":
        assert isinstance(value, date)
        return value.isoformat()
    return value


def _csv_value(value: Any, type_: ColumnType) -> str:
    if value is None:
        return ""
    if type_ == "json":
        return orjson.dumps(value).decode()
    if type_ == "boolean":
        return "true" if value else "false"
    return str(_json_value(value, type_))


def _lines(spec: FileSpec, items: Iterable[Any], row: Row, fmt: ExportFormat) -> Iterator[bytes]:
    """The file's bytes, about `CHUNK_BYTES` at a time."""
    if fmt == "jsonl":
        out = bytearray()
        for item in items:
            values = _checked(spec, row(item))
            out += orjson.dumps({c.name: _json_value(values[c.name], c.type) for c in spec.columns})
            out += b"\n"
            if len(out) >= CHUNK_BYTES:
                yield bytes(out)
                out.clear()
        yield bytes(out)
        return
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(spec.names)
    for item in items:
        values = _checked(spec, row(item))
        writer.writerow([_csv_value(values[c.name], c.type) for c in spec.columns])
        if text.tell() >= CHUNK_BYTES:
            yield text.getvalue().encode()
            text.seek(0)
            text.truncate()
    yield text.getvalue().encode()


def _checked(spec: FileSpec, row: dict[str, Any]) -> dict[str, Any]:
    if list(row) != spec.names:  # pragma: no cover - a builder out of step with FILES
        raise AssertionError(f"row keys {list(row)} are not the columns {spec.names}")
    return row


def encode(spec: FileSpec, items: list[Any], row: Row, fmt: ExportFormat) -> bytes:
    """A small file's bytes at once (a settlement's report)."""
    return b"".join(_lines(spec, items, row, fmt))


def build(rows: ExportRows, fmt: ExportFormat, write: Sink) -> list[ExportFile]:
    """Every file of `FILES`, in that order, from the account's rows: each file's bytes go to
    `write(name, chunk)` as they are encoded (nothing holds a whole file); its size, row count
    and hash are counted on the way."""
    sources = _sources(rows)
    files: list[ExportFile] = []
    for name, spec in FILES.items():
        read, row = sources[name]
        counted = _Counted(read())
        digest, size, file = hashlib.sha256(), 0, f"{name}.{fmt}"
        for chunk in _lines(spec, counted, row, fmt):
            if chunk:
                digest.update(chunk)
                size += len(chunk)
                write(file, chunk)
        files.append(
            ExportFile(
                name=file,
                content_type=MEDIA[fmt],
                rows=counted.count,
                bytes=size,
                sha256=digest.hexdigest(),
            )
        )
    return files


class _Counted:
    """An iterable that counts what it gave."""

    def __init__(self, items: Iterable[Any]) -> None:
        self.items, self.count = items, 0

    def __iter__(self) -> Iterator[Any]:
        for item in self.items:
            self.count += 1
            yield item


# --- the export object ----------------------------------------------------------------------
def spool_name(aid: str) -> str:
    """Where an export's chunks are kept while it is built and after: unique per process and
    build (the export's id is drawn from the account's RNG only once its files are done)."""
    return f"{aid}.{os.getpid()}.{next(_SPOOLS)}"


def create_export(ctx: Ctx, fmt: ExportFormat, spool: str, files: list[ExportFile]) -> Export:
    """Store the export whose files `build` wrote under `spool`."""
    export = Export(id=ctx.new_id("exp"), format=fmt, created_at=ctx.now, spool=spool, files=files)
    ctx.tx.save_finance(ctx.aid, EXPORT_KIND, export, status=export.status, ref=spool)
    return export


def get_export(ctx: Ctx, export_id: str) -> Export:
    export = ctx.tx.finance(Export, ctx.aid, EXPORT_KIND, export_id)
    if export is None:
        raise NotFound("export", export_id)
    return export


def export_file(export: Export, name: str) -> ExportFile:
    found = export.file(name)
    if found is None:
        raise NotFound(f"file in export {export.id}", name)
    return found


def list_exports(ctx: Ctx, *, limit: int, cursor: str | None) -> Page[Export]:
    """Newest first."""
    return ctx.tx.finance_page(Export, ctx.aid, EXPORT_KIND, limit=limit, cursor=cursor)
