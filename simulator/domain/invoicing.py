"""Traditional invoicing: the seller sends EDI 810 invoices on its own net terms; the buyer's
accounts payable pays when it pays, by ACH or check into the seller's lockbox, with an EDI 820
remittance advice whose references may be partial, missing or wrong. Matching remittances to
invoices is the work. Plain data and pure rules; no I/O (the service is `simulator.invoicing`).

Money is integer minor units with its ISO currency. Every figure is a running total; what is
still owed and what is still unapplied are derived, never stored:

    invoice due       = amount - credited - written_off - applied
    remittance unapplied = amount - sum(allocations)
"""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar, Literal

from pydantic import Field

from simulator.domain import states
from simulator.domain.gateway import magic_tags
from simulator.domain.models import Entity

# What the buyer's AP does when an invoice falls due (magic value, else the account's dice).
BuyerBehaviour = Literal[
    "on_time",
    "late",
    "partial",
    "short",
    "batched",
    "typo",
    "po_reference",
    "no_reference",
    "default",
]
_BEHAVIOUR_TAGS: dict[str, BuyerBehaviour] = {
    "pays_on_time": "on_time",
    "pays_late": "late",
    "pays_partial": "partial",
    "pays_short": "short",
    "pays_batched": "batched",
    "typo_reference": "typo",
    "po_reference": "po_reference",
    "no_reference": "no_reference",
    "defaults": "default",
}
SHORT_PAY_BPS = 500  # a short payment deducts 5 % of what was due
# Deduction reason codes a short-paying buyer gives (the simulator's, after X12 ADX02's role).
DEDUCTION_REASONS = ("PRICING", "DAMAGED", "SHORTAGE")
# Dunning, days after the due date: a reminder on the day, another at +7, collections at +30,
# default at +90 (each only while something is still due).
DUNNING_DAYS = (0, 7, 30, 90)
Qualifier = Literal["IV", "PO"]
Method = Literal["ACH", "CHK"]


def behaviour_tag(email: str, name: str) -> BuyerBehaviour | None:
    """`+pays_late` in the email's sub-address or `[pays_late]` in the name."""
    return next((_BEHAVIOUR_TAGS[t] for t in magic_tags(email, name) if t in _BEHAVIOUR_TAGS), None)


def short_by(due: int) -> int:
    return max(1, (due * SHORT_PAY_BPS + 5_000) // 10_000) if due > 1 else 0


def typo(reference: str) -> str:
    """The invoice number as a buyer mis-keys it: its last two characters swapped (or one
    character added when they are equal), so it never equals the original."""
    if len(reference) >= 2 and reference[-1] != reference[-2]:
        return reference[:-2] + reference[-1] + reference[-2]
    return reference + "1"


class Buyer(Entity):
    name: str
    email: str
    external_id: str | None = None

    @property
    def key(self) -> str:
        """Who pays: the external id, else the email (invoices of one buyer share it)."""
        return self.external_id or self.email.lower()


class InvoiceLine(Entity):
    quantity: int
    unit_price: int
    unit: str = "EA"
    product_id: str | None = None


class CreditMemo(Entity):
    id: str
    amount: int
    reason: str | None = None
    created_at: datetime


class EdiInvoice(Entity):
    # Its events' `object_type`, as the contract publishes it (not the class name).
    OBJECT_TYPE: ClassVar[str] = "edi_invoice"

    id: str
    number: str  # BIG02, the seller's invoice number
    po_number: str | None  # BIG04, the buyer's purchase order
    buyer: Buyer
    currency: str
    amount: int  # TDS01
    net_days: int
    behaviour: BuyerBehaviour
    status: states.EdiInvoiceStatus = "open"
    invoice_date: date
    due_date: date
    credited_amount: int = 0
    written_off_amount: int = 0
    applied_amount: int = 0  # remittance money applied to it
    dunning_level: int = 0  # reminders sent (1, 2), collections (3), defaulted (4)
    lines: list[InvoiceLine] = Field(default_factory=list)
    credit_memos: list[CreditMemo] = Field(default_factory=list)
    paid_at: datetime | None = None
    created_at: datetime
    updated_at: datetime

    @property
    def due(self) -> int:
        return self.amount - self.credited_amount - self.written_off_amount - self.applied_amount

    @property
    def past_due(self) -> bool:
        return self.dunning_level > 0 and self.due > 0

    @property
    def order_ref(self) -> str:
        """What a deposit line names as its order: the PO, else the invoice."""
        return self.po_number or self.id

    def apply(self, event: str, at: datetime) -> None:
        self.status = states.EDI_INVOICE.transition(self.status, event)
        self.updated_at = at

    def settle_if_done(self, at: datetime) -> bool:
        if self.status in ("open", "collections", "defaulted") and self.due <= 0:
            self.apply("settle", at)
            self.paid_at = at
            return True
        return False


class PurchaseOrder(Entity):
    """The buyer's purchase order on file (an EDI 850 received and acknowledged): who the
    buyer is and how much may be invoiced against it. Invoices naming it (BIG04) inherit its
    buyer and may not invoice more than it."""

    OBJECT_TYPE: ClassVar[str] = "purchase_order"

    id: str
    number: str  # the buyer's PO number: what invoices name in BIG04
    buyer: Buyer
    currency: str
    amount: int
    net_days: int
    status: Literal["open", "canceled"] = "open"
    invoiced_amount: int = 0
    created_at: datetime
    updated_at: datetime


class Allocation(Entity):
    invoice_id: str
    invoice_number: str
    order_ref: str  # the invoice's PO, else the invoice id: the order the money paid
    amount: int
    by: Literal["auto", "manual"]
    at: datetime


class RemittanceLine(Entity):
    """One RMR: a reference and what is paid against it, and where the money went."""

    id: str  # `<remittance id>-<n>`: the deposit line's source_id
    qualifier: Qualifier
    reference: str
    amount: int
    invoice_amount: int | None = None
    adjustment: int = 0  # negative: a deduction
    adjustment_reason: str | None = None
    allocations: list[Allocation] = Field(default_factory=list)

    @property
    def applied(self) -> int:
        return sum(a.amount for a in self.allocations)

    @property
    def unapplied(self) -> int:
        return self.amount - self.applied


class Remittance(Entity):
    id: str
    trace: str  # TRN02
    method: Method
    buyer: Buyer
    currency: str
    amount: int  # BPR02: what was deposited
    fee: int = 0  # the lockbox's fee on this deposit
    payment_token: str | None = None  # the buyer's bank account in the vault (`tok_...`)
    status: states.RemittanceStatus = "unmatched"
    lines: list[RemittanceLine]
    received_at: datetime
    updated_at: datetime

    @property
    def applied(self) -> int:
        return sum(line.applied for line in self.lines)

    @property
    def unapplied(self) -> int:
        return self.amount - self.applied

    def restate(self, at: datetime) -> None:
        """Status from the figures: matched (nothing unapplied), partially_matched, unmatched."""
        status: states.RemittanceStatus = (
            "matched"
            if self.unapplied == 0
            else "partially_matched"
            if self.applied
            else "unmatched"
        )
        self.status = status
        self.updated_at = at
