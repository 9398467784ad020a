"""Domain entities. Plain data with the rules that belong to one object; no I/O.

They are pydantic models only so the store can persist them as JSON cheaply; the public API
shape lives in `simulator/api/schemas/`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from simulator.domain import states
from simulator.domain.errors import (
    AmountExceedsCapturable,
    AmountExceedsRefundable,
    CurrencyMismatch,
    InsufficientCredit,
    InvalidAmount,
)

CAPTURABLE_STATES = frozenset({"authorized", "partially_captured", "partially_refunded"})


class Entity(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_assignment=False)


class LineItem(Entity):
    name: str
    sku: str | None = None
    quantity: int = 1
    unit_amount: int = 0


# The merchant discount fee per term, in basis points of the captured amount (per account).
DEFAULT_FEE_BPS: dict[str, int] = {
    "net30": 290,
    "net60": 350,
    "installments_3": 350,
    "installments_6": 400,
    "installments_12": 450,
}


class GatewayFees(Entity):
    """The gateway's price per transaction, an account setting: card `card_bps` of the amount
    plus `card_fixed`; ACH `ach_bps` of the amount, at most `ach_cap` (minor units)."""

    card_bps: int = Field(default=290, ge=0, le=2_000)
    card_fixed: int = Field(default=30, ge=0, le=10_000)
    ach_bps: int = Field(default=80, ge=0, le=2_000)
    ach_cap: int = Field(default=500, ge=0, le=1_000_000)
    ach_clearing_days: int = Field(default=3, ge=0, le=10)  # business days


class VcardFees(Entity):
    """What the merchant pays per virtual-card transaction, an account setting: the issuer's
    interchange (`interchange_bps` of the amount plus `interchange_fixed`) and the card
    scheme's fee (`scheme_bps` plus `scheme_fixed`), minor units; a captured card clears
    `clearing_days` business days later; a card the AP issues is valid `card_valid_days`
    (`expiring_card_days` for the AP that sends a card nobody uses in time)."""

    interchange_bps: int = Field(default=250, ge=0, le=2_000)
    interchange_fixed: int = Field(default=10, ge=0, le=10_000)
    scheme_bps: int = Field(default=13, ge=0, le=2_000)
    scheme_fixed: int = Field(default=2, ge=0, le=10_000)
    clearing_days: int = Field(default=2, ge=0, le=10)  # business days
    card_valid_days: int = Field(default=30, ge=1, le=365)
    expiring_card_days: int = Field(default=3, ge=1, le=365)


class AccountSettings(Entity):
    """Per-account knobs. Durations are seconds on the account's clock."""

    checkout_ttl: int = 24 * 3600
    authorization_ttl: int = 30 * 24 * 3600
    review_delay: int = 2 * 3600
    idempotency_ttl: int = 24 * 3600
    default_currency: str = "USD"
    allow_fault_header: bool = False  # accept one-off faults in the `Sandbank-Fault` header
    # Webhook retries: delays in seconds before each attempt (Svix's schedule), and how long
    # a receiver has to answer.
    webhook_schedule_s: list[int] = Field(
        default_factory=lambda: [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
    )
    webhook_timeout_ms: int = 15_000
    # Settlements: batches of each business day are paid out this many business days later,
    # minus the merchant discount fee per term (basis points of the captured amount).
    settlement_delay_days: int = 2
    discount_fee_bps: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_FEE_BPS))
    # Buyer repayment behaviour when no magic value decides (seeded dice per repayment).
    late_probability: float = 0.0
    default_probability: float = 0.0
    late_fee_bps: int = 150  # of the late installment
    late_payment_days: int = 10  # a late repayment is paid this many days after its due date
    default_after_days: int = 30  # an unpaid repayment defaults this many days after due
    # Disputes: the merchant answers within `dispute_response_days`; evidence is decided
    # `dispute_decision_days` later (won with `dispute_win_probability` without a magic value).
    dispute_response_days: int = 7
    dispute_decision_days: int = 14
    dispute_win_probability: float = 0.5
    # Gateway + net terms (`/gateway/v1`): the gateway's fees per transaction, ACH clearing.
    gateway_fees: GatewayFees = Field(default_factory=GatewayFees)
    # Virtual cards (`/vcards/v1`): interchange and scheme fees per card transaction, clearing.
    vcard_fees: VcardFees = Field(default_factory=VcardFees)
    # Traditional invoicing (`/invoicing/v1`): the lockbox's fee per remittance deposited.
    lockbox_fee: int = 0


class Account(Entity):
    id: str
    name: str
    api_key: str
    seed: int
    rng_counter: int = 0
    # True while no id the account's RNG can still draw is already stored: from creation and
    # after a reset. Setting a seed again restarts the sequence, so it turns this off and new
    # ids are checked against the stored ones (accounts stored before this field: checked).
    fresh_ids: bool = False
    clock_offset_us: int = 0
    clock_frozen_at_us: int | None = None
    settings: AccountSettings = Field(default_factory=AccountSettings)
    created_at: datetime


class CreditLine(Entity):
    status: states.CreditLineStatus = "unreviewed"
    limit: int = 0
    used: int = 0
    currency: str = "USD"
    decided_at: datetime | None = None

    @property
    def available(self) -> int:
        return max(0, self.limit - self.used) if self.status == "active" else 0

    def apply(self, event: str) -> None:
        self.status = states.CREDIT_LINE.transition(self.status, event)

    def hold(self, amount: int) -> None:
        if amount > self.available:
            raise InsufficientCredit(
                f"{amount} exceeds the available credit of {self.available} "
                f"({self.currency} minor units)"
            )
        self.used += amount

    def release(self, amount: int) -> None:
        self.used = max(0, self.used - amount)


class Buyer(Entity):
    id: str
    external_id: str | None = None
    legal_name: str
    email: str
    tax_id: str | None = None
    domain: str | None = None
    annual_revenue: int = 0
    years_in_business: int = 0
    currency: str = "USD"
    credit_line: CreditLine = Field(default_factory=CreditLine)
    metadata: dict[str, str] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime


class DecisionRecord(Entity):
    outcome: Literal["approved", "declined", "review"]
    reason: str | None = None
    score: int | None = None
    magic: str | None = None


class Review(Entity):
    reason: str
    resolves_at: datetime | None = None  # None: waits for the underwriter (control plane)
    outcome: Literal["approved", "declined"] | None = None  # what it resolves to on its own
    limit: int | None = None


class Checkout(Entity):
    id: str
    status: states.CheckoutStatus = "open"
    amount: int
    currency: str
    merchant_order_id: str | None = None
    buyer_id: str
    line_items: list[LineItem] = Field(default_factory=list)
    return_url: str
    cancel_url: str
    url: str
    metadata: dict[str, str] = Field(default_factory=dict)
    order_id: str | None = None
    terms: str | None = None
    decision: DecisionRecord | None = None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    completed_at: datetime | None = None

    def apply(self, event: str, at: datetime) -> None:
        self.status = states.CHECKOUT.transition(self.status, event)
        self.updated_at = at
        if event == "complete":
            self.completed_at = at


class Capture(Entity):
    id: str
    amount: int
    currency: str
    final: bool = False
    created_at: datetime


class Refund(Entity):
    id: str
    amount: int
    currency: str
    reason: str | None = None
    created_at: datetime


BuyerBehaviour = Literal["on_time", "late", "default"]


class Repayment(Entity):
    """One amount the buyer owes the provider for a capture, due on a date."""

    id: str
    order_id: str
    buyer_id: str
    capture_id: str
    terms: str
    installment: int  # 1-based
    installments: int
    amount: int  # what is still owed of this installment (refunds reduce it)
    original_amount: int
    currency: str
    due_at: datetime
    status: states.RepaymentStatus = "scheduled"
    behaviour: BuyerBehaviour = "on_time"  # drawn when scheduled; what happens at due_at
    late_fee: int = 0
    paid_at: datetime | None = None
    defaulted_at: datetime | None = None
    created_at: datetime
    updated_at: datetime

    @property
    def open(self) -> bool:
        return self.status in {"scheduled", "late"}

    def apply(self, event: str, at: datetime) -> None:
        self.status = states.REPAYMENT.transition(self.status, event)
        self.updated_at = at


class Order(Entity):
    id: str
    status: states.OrderStatus
    amount: int
    currency: str
    captured_amount: int = 0
    refunded_amount: int = 0
    released_amount: int = 0  # authorized but given back uncaptured (final capture, expiry)
    terms: str
    buyer_id: str
    checkout_id: str
    merchant_order_id: str | None = None
    line_items: list[LineItem] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)
    decision: DecisionRecord
    review: Review | None = None
    captures: list[Capture] = Field(default_factory=list)
    refunds: list[Refund] = Field(default_factory=list)
    # What the buyer owes the provider for the captures: one schedule per capture, by terms.
    repayments: list[Repayment] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime
    authorized_at: datetime | None = None
    canceled_at: datetime | None = None
    authorization_expires_at: datetime | None = None

    # --- derived amounts -------------------------------------------------------------------
    @property
    def capturable_amount(self) -> int:
        if self.status not in CAPTURABLE_STATES:
            return 0
        return self.amount - self.captured_amount - self.released_amount

    @property
    def refundable_amount(self) -> int:
        return self.captured_amount - self.refunded_amount

    @property
    def outstanding_hold(self) -> int:
        """Credit this order still holds on the buyer's line for what is not yet captured."""
        return self.capturable_amount if self.status in CAPTURABLE_STATES else 0

    # --- rules ---------------------------------------------------------------------------------
    def apply(self, event: str, at: datetime) -> None:
        self.status = states.ORDER.transition(self.status, event)
        self.updated_at = at

    def _same_currency(self, currency: str | None) -> None:
        if currency is not None and currency != self.currency:
            raise CurrencyMismatch(self.currency, currency)

    def capture(self, capture: Capture) -> int:
        """Record a capture; returns credit to release (the remainder of a final capture)."""
        # The state first: capturing a canceled order is a 409 whatever the amount (the
        # service passes 0 for "everything capturable" when that is nothing).
        if self.status not in CAPTURABLE_STATES:
            states.ORDER.transition(self.status, "capture_partial")  # raises the 409
        self._same_currency(capture.currency)
        if self.capturable_amount == 0:
            raise AmountExceedsCapturable("nothing is left to capture on this order")
        if capture.amount <= 0:
            raise InvalidAmount("a capture amount must be positive")
        if capture.amount > self.capturable_amount:
            raise AmountExceedsCapturable(
                f"{capture.amount} exceeds the capturable amount of {self.capturable_amount}"
            )
        remainder = self.capturable_amount - capture.amount
        released = remainder if capture.final else 0
        full = remainder == 0 or capture.final
        self.apply("capture_full" if full else "capture_partial", capture.created_at)
        self.captured_amount += capture.amount
        self.released_amount += released
        self.captures.append(capture)
        return released

    def refund(self, refund: Refund) -> None:
        if self.status not in {"partially_captured", "captured", "partially_refunded"}:
            states.ORDER.transition(self.status, "refund_partial")  # raises the 409
        self._same_currency(refund.currency)
        if self.refundable_amount == 0:
            raise AmountExceedsRefundable("nothing captured is left to refund on this order")
        if refund.amount <= 0:
            raise InvalidAmount("a refund amount must be positive")
        if refund.amount > self.refundable_amount:
            raise AmountExceedsRefundable(
                f"{refund.amount} exceeds the refundable amount of {self.refundable_amount}"
            )
        all_back = refund.amount == self.refundable_amount and self.capturable_amount == 0
        self.apply("refund_full" if all_back else "refund_partial", refund.created_at)
        self.refunded_amount += refund.amount
        self.refunds.append(refund)

    def expire(self, at: datetime) -> int:
        """The authorization lapses; returns the uncaptured amount to release."""
        remainder = self.capturable_amount
        event = "expire"
        if self.status == "partially_refunded" and self.refunded_amount == self.captured_amount:
            event = "expire_all_refunded"
        self.apply(event, at)
        self.released_amount += remainder
        return remainder

    def cancel(self, at: datetime) -> int:
        """Cancel before any capture; returns the held credit to release."""
        held = self.amount if self.status == "authorized" else 0
        self.apply("cancel", at)
        self.canceled_at = at
        if held:
            self.released_amount = held
        return held


class Event(Entity):
    id: str
    type: str
    object_type: str
    object_id: str
    created_at: datetime
    data: dict[str, Any]
    api_version: str
