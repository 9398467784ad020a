"""Virtual cards: the buyer's accounts-payable department pays the seller's invoices with
single-use virtual cards. Plain data and pure rules; no I/O (the service is `simulator.vcards`).

The seller's invoice is the gateway personality's (draft on order, issued on shipment, due
`net_days` later, credited, written off: `VcardInvoice` extends `Invoice`); what differs is how
the money comes. On the due date the buyer's AP issues a card for what is due (a token, the last
four digits, an expiry and a spending limit; never a card number), and the merchant's card
processor authorizes a hold on it and captures it; the capture clears a few business days later
and only then reaches the merchant's balance, less the issuer's interchange and the scheme's
fee. A card may pay several invoices and an invoice may be paid by several cards: every capture
says which invoice got how much (its `allocations`), and each allocation is a `payment` line
of its own, so the integration matches money to invoices without guessing.

Money is integer minor units with its ISO currency; what is due is derived as the gateway's:

    due = issued - credited - written_off - (paid - refunded)
    collectible = due - pending (captured, clearing) - carded (on cards not captured yet)
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

from simulator.domain import states
from simulator.domain.gateway import Invoice, magic_tag
from simulator.domain.models import Entity, VcardFees

# What the buyer's AP does when an invoice falls due (magic value or the account's dice): one
# card for what is due, on time or late; two cards for it (a split); one card for every invoice
# of the customer then due (consolidated); a card nobody can use in time (it expires, the AP
# issues another one late); a card whose limit is below what is due (the processor's attempt
# for the full amount is declined, then it takes what the limit allows); no card at all (the
# buyer defaults: until a card is captured the seller carries the risk).
ApBehaviour = Literal[
    "on_time", "late", "split", "consolidated", "expires", "over_limit", "default"
]
_AP_TAGS: dict[str, ApBehaviour] = {
    "pays_on_time": "on_time",
    "pays_late": "late",
    "splits": "split",
    "consolidates": "consolidated",
    "card_expires": "expires",
    "over_limit": "over_limit",
    "defaults": "default",
}
# Who processes the cards the AP sends: the merchant's card processor at once (automatic), or
# the merchant through the API (authorize, then capture).
Processing = Literal["automatic", "manual"]
OVER_LIMIT_BPS = 500  # an over-limit card's limit is 5 % short of what is due


def ap_tag(email: str, name: str) -> ApBehaviour | None:
    """`+splits` (and the others above) in the email's sub-address or `[splits]` in the name."""
    return magic_tag(email, name, _AP_TAGS)


def _bps(amount: int, bps: int) -> int:
    return (amount * bps + 5_000) // 10_000  # rounded half up to a whole minor unit


def card_fees(amount: int, fees: VcardFees) -> tuple[int, int]:
    """(interchange, scheme fee) on one card transaction of `amount`; together never more than
    the amount itself."""
    interchange = min(_bps(amount, fees.interchange_bps) + fees.interchange_fixed, amount)
    scheme = min(_bps(amount, fees.scheme_bps) + fees.scheme_fixed, amount - interchange)
    return interchange, scheme


def split_fee(fee: int, amounts: list[int]) -> list[int]:
    """`fee` shared over `amounts` in proportion, summing exactly to `fee` and never above an
    amount (the fee is at most their sum): floors first, the units left on the first parts that
    have room."""
    total = sum(amounts)
    if not 0 <= fee <= total:
        raise ValueError("a fee must be between 0 and the amounts' sum")
    shares = [fee * a // total if total else 0 for a in amounts]
    left = fee - sum(shares)
    while left:
        for i, amount in enumerate(amounts):
            if left and shares[i] < amount:
                shares[i] += 1
                left -= 1
    return shares


def over_limit(due: int) -> int:
    """The limit of an over-limit card for `due`: `OVER_LIMIT_BPS` short of it, at least 1."""
    return max(1, due - max(1, _bps(due, OVER_LIMIT_BPS)))


class VcardInvoice(Invoice):
    """The seller's invoice, paid with the buyer's virtual cards."""

    OBJECT_TYPE: ClassVar[str] = "vcard_invoice"

    behaviour: ApBehaviour  # type: ignore[assignment]  # the AP's, not the gateway customer's
    processing: Processing = "automatic"
    carded_amount: int = 0  # on cards issued for it and not captured (or expired) yet
    allocations: list[Allocation] = Field(default_factory=list)

    @property
    def collectible(self) -> int:
        """What a new card (or a manual capture) may still pay."""
        return max(0, self.due - self.pending_amount - self.carded_amount)

    @property
    def on_its_way(self) -> int:
        """Captured and clearing, or on a card not captured yet."""
        return self.pending_amount + self.carded_amount


class Allocation(Entity):
    """Part of one card capture paying one invoice: a `payment` line of its own."""

    id: str  # `val_...`: the settlement line's `source_id`
    invoice_id: str
    card_id: str
    payment_id: str
    amount: int
    fee: int  # its share of the capture's interchange and scheme fee
    refunded_amount: int = 0
    cleared: bool = False


class Intended(Entity):
    """What the AP issued a card for: `amount` of an invoice."""

    invoice_id: str
    amount: int


class Vcard(Entity):
    """A single-use virtual card the buyer's AP issued: one capture uses it up."""

    OBJECT_TYPE: ClassVar[str] = "vcard"

    id: str
    token: str  # `vcard_tok_...`: what the merchant stores instead of a card number
    vault_token: str | None = None  # the card in the account's token vault (`tok_...`)
    last4: str
    exp_month: int
    exp_year: int
    expires_at: datetime
    currency: str
    limit: int  # the spending limit: holds and the capture never exceed it
    invoices: list[Intended]
    customer_key: str
    processing: Processing
    status: states.VcardStatus = "active"
    authorized_amount: int = 0  # held, not captured yet
    captured_amount: int = 0
    declines: int = 0
    payment_id: str | None = None
    created_at: datetime
    updated_at: datetime

    @property
    def available(self) -> int:
        return self.limit - self.authorized_amount - self.captured_amount

    def apply(self, event: str, at: datetime) -> None:
        self.status = states.VCARD.transition(self.status, event)
        self.updated_at = at


class VcardRefund(Entity):
    """Part of a cleared capture given back to the card (a credit note beyond what was due)."""

    id: str  # `vcr_...`: the negative `refund` line's `source_id`
    invoice_id: str
    allocation_id: str
    amount: int
    created_at: datetime


class VcardPayment(Entity):
    """One capture of a card, allocated to the invoices it pays; clears later."""

    OBJECT_TYPE: ClassVar[str] = "vcard_payment"

    id: str
    card_id: str
    currency: str
    amount: int
    interchange_fee: int
    scheme_fee: int
    fee: int  # interchange + scheme: what the merchant pays, itemised per allocation
    allocations: list[Allocation]
    status: states.VcardPaymentStatus = "pending"
    refunded_amount: int = 0
    refunds: list[VcardRefund] = Field(default_factory=list)
    initiated_by: Literal["processor", "merchant"]
    clears_at: datetime
    cleared_at: datetime | None = None
    created_at: datetime
    updated_at: datetime

    def apply(self, event: str, at: datetime) -> None:
        self.status = states.VCARD_PAYMENT.transition(self.status, event)
        self.updated_at = at


VcardInvoice.model_rebuild()
