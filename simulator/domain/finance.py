"""Money after the checkout: repayment schedules, settlement (payout) lines and batches,
disputes and settlement-report drift. Plain data and pure rules; no I/O.

All amounts are integers in minor units with their ISO currency. Calendar rules (due dates,
business days) work on UTC dates of the account's clock.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from simulator.domain import states
from simulator.domain.errors import InvalidAmount
from simulator.domain.models import BuyerBehaviour, Entity

# --- terms and repayment -------------------------------------------------------------------
# Days from the capture to the due date of each repayment (installments: monthly, 30 days).
TERM_DAYS: dict[str, tuple[int, ...]] = {
    "net30": (30,),
    "net60": (60,),
    "installments_3": (30, 60, 90),
    "installments_6": tuple(30 * (i + 1) for i in range(6)),
    "installments_12": tuple(30 * (i + 1) for i in range(12)),
}
_BEHAVIOUR_TAG = re.compile(r"^(pays_on_time|pays_late|defaults)$")


def split_installments(amount: int, count: int) -> list[int]:
    """`amount` in `count` parts that sum exactly: equal shares, the remainder's units on the
    first installments (10000 in 3 -> 3334, 3333, 3333)."""
    if count < 1:
        raise ValueError("count must be at least 1")
    if amount < 0:
        raise InvalidAmount("an amount to split cannot be negative")
    share, rest = divmod(amount, count)
    return [share + (1 if i < rest else 0) for i in range(count)]


def behaviour_tag(email: str, legal_name: str) -> BuyerBehaviour | None:
    """The repayment magic value on a buyer: `+pays_late`, `+defaults` or `+pays_on_time` in the
    email sub-address or `[pays_late]` in the legal name (as the underwriting tags)."""
    tags = email.split("@", 1)[0].lower().split("+")[1:]
    tags += [t.strip().lower() for t in re.findall(r"\[([^\]]*)\]", legal_name)]
    for tag in tags:
        if _BEHAVIOUR_TAG.match(tag):
            return {"pays_on_time": "on_time", "pays_late": "late", "defaults": "default"}[tag]  # type: ignore[return-value]
    return None


def business_day_on_or_after(day: date) -> date:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def add_business_days(day: date, days: int) -> date:
    for _ in range(days):
        day = business_day_on_or_after(day + timedelta(days=1))
    return day


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def fee_for(gross: int, bps: int) -> int:
    """The discount fee on `gross`, rounded half up to a whole minor unit."""
    return (gross * bps + 5_000) // 10_000


# --- settlements -----------------------------------------------------------------------------
# `payment`: a customer's payment through the gateway (gateway + net terms; its fee is the
# gateway's per-transaction fee).
LineType = Literal[
    "capture", "refund", "fee", "dispute", "dispute_reversal", "carry_forward", "payment"
]


class SettlementLine(Entity):
    """One movement of the merchant's balance: its money is paid out in the batch of the
    business day it happened on (`batch_date`)."""

    id: str
    type: LineType
    order_id: str | None
    source_id: str  # the capture, refund, dispute, charge or settlement it comes from
    gross: int
    fee: int
    net: int  # gross - fee
    currency: str
    batch_date: date
    settlement_id: str | None = None
    created_at: datetime


class Settlement(Entity):
    """A payout: every line of one business day's batch in one currency. `amount` (the payout)
    is always the sum of the lines' `net`; a negative total is carried to the next batch by a
    pair of `carry_forward` lines, so no payout is negative."""

    id: str
    status: states.SettlementStatus = "pending"
    currency: str
    amount: int
    gross: int
    fees: int
    batch_date: date
    payout_date: date
    line_count: int
    lines: list[SettlementLine]
    # What the settlement report says when drift was injected into it; None: the truth.
    reported_lines: list[SettlementLine] | None = None
    created_at: datetime
    paid_at: datetime | None = None

    @property
    def report_lines(self) -> list[SettlementLine]:
        return self.lines if self.reported_lines is None else self.reported_lines

    def pay(self, at: datetime) -> None:
        self.status = states.SETTLEMENT.transition(self.status, "pay")
        self.paid_at = at


def settle(lines: list[SettlementLine]) -> tuple[int, int, int]:
    """(amount, gross, fees) of a batch: sums of the lines; the payout is the sum of `net`."""
    return (sum(x.net for x in lines), sum(x.gross for x in lines), sum(x.fee for x in lines))


# --- disputes --------------------------------------------------------------------------------
DISPUTE_REASONS = (
    "fraudulent",
    "product_not_received",
    "product_unacceptable",
    "duplicate",
    "credit_not_processed",
    "general",
)


class Dispute(Entity):
    id: str
    order_id: str
    buyer_id: str
    amount: int
    currency: str
    reason: str
    status: states.DisputeStatus = "needs_response"
    evidence: dict[str, str] | None = None
    evidence_submitted_at: datetime | None = None
    respond_by: datetime
    decides_at: datetime | None = None
    accepted: bool = False
    closed_at: datetime | None = None
    created_at: datetime
    updated_at: datetime

    @property
    def open(self) -> bool:
        return self.status in {"needs_response", "under_review"}

    def apply(self, event: str, at: datetime) -> None:
        self.status = states.DISPUTE.transition(self.status, event)
        self.updated_at = at


def evidence_outcome(evidence: dict[str, str]) -> Literal["won", "lost"] | None:
    """Magic values in the evidence text: `+win` or `+lose` decide the dispute; None: the
    account's seeded dice decide."""
    text = " ".join(evidence.values()).lower()
    if "+lose" in text:
        return "lost"
    if "+win" in text:
        return "won"
    return None


# --- settlement-report drift -----------------------------------------------------------------
DriftKind = Literal[
    "missing_line", "duplicate_line", "off_by_one_cent", "late_line", "unknown_order"
]
DRIFT_KINDS: tuple[DriftKind, ...] = (
    "missing_line",
    "duplicate_line",
    "off_by_one_cent",
    "late_line",
    "unknown_order",
)


class DriftSettings(Entity):
    """Per kind: an int is how many of the next settlements get one such deviation (counted
    down), a float in [0, 1] the probability that each settlement gets one."""

    missing_line: int | float = 0
    duplicate_line: int | float = 0
    off_by_one_cent: int | float = 0
    late_line: int | float = 0
    unknown_order: int | float = 0


class DriftInjection(Entity):
    """A record of one deviation put into a settlement report (what a test expects its
    reconciliation to find)."""

    id: str
    kind: DriftKind
    settlement_id: str
    line_id: str | None  # the true line affected (None for an invented line)
    order_id: str | None
    detail: str
    created_at: datetime
