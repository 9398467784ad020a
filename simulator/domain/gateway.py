"""Gateway + net terms: the seller extends its own terms and carries the credit risk; a payment
gateway only moves the money. Plain data and pure rules; no I/O (the service is
`simulator.gateway`).

The seller's invoice is the unit of credit: issued (on shipment) with a due date `net_days`
later, paid by the customer by card or ACH (in full, late, in part, or short), credited by
credit notes, and, when the customer will not pay the rest, written off. The gateway keeps a
fee per transaction, which is what the settlement report itemises.

Money is integer minor units with its ISO currency. Every figure of an invoice is kept as a
total, and what is still due is derived from them, never stored:

    due = issued - credited - written_off - (paid - refunded)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Literal, TypeVar

from pydantic import Field

from simulator.domain import states
from simulator.domain.errors import Conflict, InvalidAmount
from simulator.domain.models import Entity, GatewayFees, LineItem

T = TypeVar("T")
PaymentMethod = Literal["card", "ach"]
PAYMENT_METHODS: tuple[PaymentMethod, ...] = ("card", "ach")
# What the customer does when an invoice falls due (magic value or the account's dice):
# pay in full on the due date, pay late, pay half on time and the rest late, pay short (a
# deduction the seller must chase or write off), or never pay.
CustomerBehaviour = Literal["on_time", "late", "partial", "short", "default"]
_BEHAVIOUR_TAGS: dict[str, CustomerBehaviour] = {
    "pays_on_time": "on_time",
    "pays_late": "late",
    "pays_partial": "partial",
    "pays_short": "short",
    "defaults": "default",
}
SHORT_PAY_BPS = 500  # a short payment leaves 5 % of what was due unpaid (a "deduction")


def gateway_fee(amount: int, method: PaymentMethod, fees: GatewayFees) -> int:
    """The gateway's fee on one charge, rounded half up to a whole minor unit; never more than
    the charge itself."""
    if method == "card":
        fee = (amount * fees.card_bps + 5_000) // 10_000 + fees.card_fixed
    else:
        fee = min((amount * fees.ach_bps + 5_000) // 10_000, fees.ach_cap)
    return min(fee, amount)


def short_by(due: int) -> int:
    """What a short payment of `due` leaves unpaid: `SHORT_PAY_BPS` of it, at least 1 unit."""
    return max(1, (due * SHORT_PAY_BPS + 5_000) // 10_000) if due > 1 else 0


def magic_tags(email: str, name: str) -> list[str]:
    """The magic values a customer carries: the email's sub-addresses (`ap+pays_late@...`),
    then `[pays_late]` in the name, lower-cased (every personality reads them alike)."""
    tags = email.split("@", 1)[0].lower().split("+")[1:]
    return tags + [t.strip().lower() for t in re.findall(r"\[([^\]]*)\]", name)]


def magic_tag(email: str, name: str, table: Mapping[str, T]) -> T | None:
    """The first of `table`'s tags the customer carries (`magic_tags`), as the native API's
    magic values."""
    return next((table[t] for t in magic_tags(email, name) if t in table), None)


def behaviour_tag(email: str, name: str) -> CustomerBehaviour | None:
    """`+pays_late` (and the others above) on the customer."""
    return magic_tag(email, name, _BEHAVIOUR_TAGS)


class Customer(Entity):
    name: str
    email: str
    external_id: str | None = None
    payment_method: PaymentMethod = "card"  # what the customer pays with (on file)


class Invoice(Entity):
    id: str
    number: str  # the seller's invoice (order) number
    customer: Customer
    currency: str
    amount: int  # the order's total: what may be issued in all
    net_days: int
    behaviour: CustomerBehaviour
    status: states.InvoiceStatus = "draft"
    issued_amount: int = 0
    credited_amount: int = 0
    paid_amount: int = 0  # cleared charges
    pending_amount: int = 0  # charges not cleared yet (ACH)
    refunded_amount: int = 0  # paid money given back (a credit note beyond what was due)
    written_off_amount: int = 0
    past_due: bool = False
    line_items: list[LineItem] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)
    issued_at: datetime | None = None
    due_date: date | None = None
    paid_at: datetime | None = None
    voided_at: datetime | None = None
    created_at: datetime
    updated_at: datetime

    @property
    def due(self) -> int:
        """What the customer still owes (pending charges not counted off yet)."""
        return (
            self.issued_amount
            - self.credited_amount
            - self.written_off_amount
            - (self.paid_amount - self.refunded_amount)
        )

    @property
    def collectible(self) -> int:
        """What may still be charged: due, less charges on their way."""
        return max(0, self.due - self.pending_amount)

    @property
    def issuable(self) -> int:
        return self.amount - self.issued_amount

    @property
    def creditable(self) -> int:
        """Issued and not yet credited or written off: what a credit note may take back."""
        return self.issued_amount - self.credited_amount - self.written_off_amount

    @property
    def on_its_way(self) -> int:
        """Money that is coming but not paid yet (a write-off must wait for it)."""
        return self.pending_amount

    def apply(self, event: str, at: datetime) -> None:
        self.status = states.INVOICE.transition(self.status, event)
        self.updated_at = at

    def ship(self, amount: int | None, at: datetime) -> datetime | None:
        """Issue `amount` of what is not issued yet (None: all of it), on shipment. The first
        issue dates the invoice and sets its due date, `net_days` later; a shipment before the
        due date joins it, one after it starts a new term (the buyer acts again on the new due
        date, for everything then due). Returns when a new term falls due, else None."""
        if self.status == "void":
            raise Conflict(f"invoice {self.id} is void: it can no longer be issued")
        amount = self.issuable if amount is None else amount
        if amount <= 0 or amount > self.issuable:
            raise InvalidAmount(
                f"an issue must be between 1 and {self.issuable}, what is not issued yet "
                f"of invoice {self.id}"
            )
        self.apply("issue", at)
        self.issued_amount += amount
        self.paid_at = None
        if self.issued_at is None:
            self.issued_at = at
        if self.due_date is None or at.date() > self.due_date:
            due_at = at + timedelta(days=self.net_days)
            self.due_date = due_at.date()
            return due_at
        return None

    def close_short(self, amount: int | None, at: datetime) -> None:
        """Write off what is still collectible (`amount`, when given, must be all of it): only
        an open invoice with something due and nothing on its way."""
        rest = self.collectible
        if self.status != "open" or rest == 0 or self.on_its_way:
            raise Conflict(
                f"invoice {self.id} is {self.status} with {rest} collectible and "
                f"{self.on_its_way} on its way: only an open invoice with nothing on its way "
                "and something due can be written off"
            )
        if amount is not None and amount != rest:
            raise InvalidAmount(f"a write-off closes the invoice: it must be {rest}, all due")
        self.written_off_amount += rest
        self.apply("write_off", at)
        self.past_due = False

    def settle_if_done(self, at: datetime) -> bool:
        """Open with nothing due and nothing pending: paid. True when it changed."""
        if self.status == "open" and self.due <= 0 and self.pending_amount == 0:
            self.apply("settle", at)
            self.paid_at = at
            self.past_due = False
            return True
        return False


class ChargeRefund(Entity):
    """Part of a charge given back to the customer (a credit note beyond what was due)."""

    id: str
    amount: int
    created_at: datetime


class Charge(Entity):
    """One payment through the gateway against an invoice."""

    id: str
    invoice_id: str
    method: PaymentMethod
    currency: str
    amount: int
    fee: int  # the gateway's, itemised on the settlement line
    refunded_amount: int = 0
    refunds: list[ChargeRefund] = Field(default_factory=list)
    status: states.ChargeStatus = "pending"
    initiated_by: Literal["customer", "merchant"]
    clears_at: datetime | None = None
    succeeded_at: datetime | None = None
    created_at: datetime
    updated_at: datetime

    def apply(self, event: str, at: datetime) -> None:
        self.status = states.CHARGE.transition(self.status, event)
        self.updated_at = at
