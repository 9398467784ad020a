"""The canonical, provider-neutral model. Business logic, the ledger and reconciliation speak
only this; adapters translate each provider's names into it (and never let them leak past).

Money is integer minor units plus an ISO 4217 currency, always.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum


class EventKind(StrEnum):
    """What happened, in the integration's words (the GL mapping is keyed by these)."""

    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    REFUNDED = "refunded"
    CANCELED = "canceled"
    EXPIRED = "expired"
    DECLINED = "declined"
    SETTLEMENT_FEE = "settlement_fee"
    PAYOUT = "payout"
    DISPUTE_OPENED = "dispute_opened"
    DISPUTE_WON = "dispute_won"
    DISPUTE_LOST = "dispute_lost"
    # The buyer paid (part of) an order through the provider: approaches where the seller
    # carries the credit risk (gateway + net terms) settle these, not the captures.
    PAYMENT_RECEIVED = "payment_received"
    PAYMENT_REFUNDED = "payment_refunded"  # part of such a payment given back to the buyer


@dataclass(frozen=True, slots=True)
class Money:
    amount: int  # minor units
    currency: str  # ISO 4217

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError("money is an integer number of minor units")
        if len(self.currency) != 3 or not self.currency.isupper():
            raise ValueError(f"{self.currency!r} is not an ISO 4217 code")


@dataclass(frozen=True, slots=True)
class Capture:
    provider_id: str
    provider_order_id: str
    amount: Money
    at: datetime


@dataclass(frozen=True, slots=True)
class Refund:
    provider_id: str
    provider_order_id: str
    amount: Money
    at: datetime


@dataclass(frozen=True, slots=True)
class Authorization:
    provider_order_id: str
    merchant_order_id: str
    amount: Money
    status: str  # canonical: pending, authorized, captured, refunded, canceled, expired, declined
    captured: int = 0
    refunded: int = 0
    # Each money movement, oldest first, when the provider lists them (empty when it does not).
    captures: tuple[Capture, ...] = ()
    refunds: tuple[Refund, ...] = ()


@dataclass(frozen=True, slots=True)
class Cancellation:
    provider_order_id: str
    released: Money
    at: datetime


class LineKind(StrEnum):
    CAPTURE = "capture"
    REFUND = "refund"
    FEE = "fee"
    DISPUTE = "dispute"  # a dispute's debit (negative) or, when it is won, its reversal
    # A deficit moved from one payout to the next (a pair of lines that cancel out; no order).
    CARRY_FORWARD = "carry_forward"
    PAYMENT = "payment"  # a buyer's payment collected by a gateway (fee: the gateway's)


@dataclass(frozen=True, slots=True)
class SettlementLine:
    """One line of a provider's payout report. `gross` and `fee` are signed from the
    merchant's side (a refund's gross is negative); `net = gross - fee`."""

    settlement_id: str
    line_id: str
    provider_order_id: str | None
    merchant_order_id: str | None
    kind: LineKind
    gross: int
    fee: int
    currency: str
    source_id: str | None = None  # the provider's id of the movement (capture, refund, dispute)
    at: datetime | None = None  # when that movement happened

    @property
    def net(self) -> int:
        return self.gross - self.fee


@dataclass(frozen=True, slots=True)
class Settlement:
    """A payout. `payout`, `gross` and `fees` are the provider's headline figures (the truth
    of what is paid); `lines` are the lines as its report gives them (empty in a listing), each
    with `settlement_id` = this settlement, the one it was reported in."""

    provider_id: str
    currency: str
    payout: int  # the sum of the (true) lines' net, in minor units
    paid_at: datetime | None
    lines: tuple[SettlementLine, ...] = field(default_factory=tuple)
    status: str = "pending"  # canonical: pending, paid
    batch: date | None = None  # the business day whose movements it pays out
    payout_date: date | None = None  # when it is (to be) paid
    gross: int = 0
    fees: int = 0


@dataclass(frozen=True, slots=True)
class Dispute:
    provider_id: str
    provider_order_id: str
    amount: Money
    status: str  # open, won, lost, accepted
    reason: str
    opened_at: datetime | None = None
    closed_at: datetime | None = None  # when it was won, lost or accepted


@dataclass(frozen=True, slots=True)
class Payment:
    """A buyer's payment against an order, collected by the provider (a gateway charge)."""

    provider_id: str
    provider_order_id: str
    amount: Money
    fee: int  # what the provider keeps, minor units
    at: datetime


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """An event as the integration understands it; `raw` keeps the provider's own payload."""

    provider_event_id: str
    kind: EventKind | None  # None: a type this integration does not act on
    provider_order_id: str | None
    at: datetime
    raw: dict[str, object]
    # What the event says, in canonical terms, when it carries a full snapshot (None: thin):
    order: Authorization | None = None  # the order as it stood after the event
    provider_checkout_id: str | None = None  # the checkout the event (or its order) is about
    checkout_status: str | None = None  # canonical: open, completed, in_review, declined, expired
    settlement: Settlement | None = None  # a payout event's settlement (without its lines)
    payment: Payment | None = None  # a payment event's payment
    # A payment event that pays several orders at once (one card captured for several
    # invoices, one remittance paying several invoices): one payment per order, each posted
    # like `payment` by its own provider id.
    payments: tuple[Payment, ...] = ()
    # A payment's refunds, as its event lists them (each by its own provider id; fee 0).
    payment_refunds: tuple[Payment, ...] = ()


class CollectionKind(StrEnum):
    """What a provider event says about money someone must chase (the ticket sink's input)."""

    OVERDUE = "overdue"  # the buyer has not paid what it owes the seller by its due date
    SETTLED = "settled"  # nothing is owed any more (paid in full, or written off: `detail`)
    DISPUTE_OPENED = "dispute_opened"  # the buyer disputes money the seller was paid
    DISPUTE_CLOSED = "dispute_closed"  # decided: `detail` is won, lost or accepted


@dataclass(frozen=True, slots=True)
class CollectionFact:
    """An obligation's turn, in canonical terms: `obligation_id` is the provider's id of what
    is owed or disputed (an invoice, a dispute), the one key a ticket is opened under."""

    kind: CollectionKind
    obligation_id: str
    provider_order_id: str
    amount: Money  # what is due, or disputed
    at: datetime
    detail: str = ""
    due_date: date | None = None
