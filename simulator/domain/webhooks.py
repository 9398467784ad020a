"""Webhook endpoints, deliveries and attempts, the retry schedule and the quirks; pure Python.

A delivery is one event for one endpoint (`whd_…`); it is attempted until a 2xx, a 410, or the
schedule runs out. Every time here is on the account's clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from simulator.domain import states
from simulator.domain.models import Entity

# Svix's schedule: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h after the
# previous attempt; each delay jittered by ±20 % from the account's seeded RNG.
DEFAULT_SCHEDULE_S: tuple[int, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
JITTER = 0.2
DISABLE_AFTER = timedelta(days=5)  # an endpoint failing that long is disabled
THROTTLE_FLOOR_S = 60  # 429 or a timeout: the next attempt no sooner than this

# Every event type of the native API. `EVENT_TYPES` (below): every type the simulator emits,
# which is what an endpoint's `enabled_events` may list.
EVENT_TYPES: tuple[str, ...] = (
    "buyer.created",
    "buyer.credit_line.updated",
    "checkout.created",
    "checkout.completed",
    "checkout.declined",
    "checkout.expired",
    "order.pending_review",
    "order.authorized",
    "order.declined",
    "order.updated",
    "order.captured",
    "order.refunded",
    "order.canceled",
    "order.expired",
    "buyer.payment.succeeded",
    "buyer.payment.late",
    "buyer.payment.defaulted",
    "settlement.created",
    "settlement.paid",
    "dispute.created",
    "dispute.updated",
    "dispute.won",
    "dispute.lost",
    "webhook_endpoint.disabled",
)
# The gateway + net terms personality's (`/gateway/v1`, contracts/gateway.yaml); settlements are
# the same as the native API's.
GATEWAY_EVENT_TYPES: tuple[str, ...] = (
    "invoice.created",
    "invoice.issued",
    "invoice.payment_received",
    "invoice.paid",
    "invoice.overdue",
    "invoice.credited",
    "invoice.written_off",
    "invoice.voided",
    "charge.pending",
    "charge.succeeded",
    "charge.refunded",
)
# The virtual cards personality's (`/vcards/v1`, contracts/vcards.yaml): the invoice events are
# named as the gateway's (their object is a `vcard_invoice`), the cards' and captures' its own.
VCARD_EVENT_TYPES: tuple[str, ...] = (
    *(t for t in GATEWAY_EVENT_TYPES if t.startswith("invoice.")),
    "vcard.issued",
    "vcard.authorized",
    "vcard.declined",
    "vcard.expired",
    "vcard.captured",
    "vcard.cleared",
    "vcard.refunded",
)
# Traditional invoicing's (`/invoicing/v1`, contracts/invoicing.yaml): EDI invoices (not the
# gateway's `invoice`), remittances and dunning.
INVOICING_EVENT_TYPES: tuple[str, ...] = (
    "purchase_order.created",
    "purchase_order.canceled",
    "edi_invoice.created",
    "edi_invoice.payment_applied",
    "edi_invoice.paid",
    "edi_invoice.credited",
    "edi_invoice.written_off",
    "collections.reminder",
    "collections.escalated",
    "collections.defaulted",
    "remittance.received",
    "remittance.matched",
    "remittance.unmatched",
)
NATIVE_EVENT_TYPES = EVENT_TYPES
EVENT_TYPES = (
    NATIVE_EVENT_TYPES
    + GATEWAY_EVENT_TYPES
    + tuple(t for t in VCARD_EVENT_TYPES if t not in GATEWAY_EVENT_TYPES)
    + INVOICING_EVENT_TYPES
)
# The object an event's `data` snapshots, where its type's first word does not say it.
EVENT_OBJECT_TYPES: dict[str, str] = {
    "buyer.payment.succeeded": "repayment",
    "buyer.payment.late": "repayment",
    "buyer.payment.defaulted": "repayment",
    "vcard.captured": "vcard_payment",
    "vcard.cleared": "vcard_payment",
    "vcard.refunded": "vcard_payment",
    **{f"collections.{step}": "edi_invoice" for step in ("reminder", "escalated", "defaulted")},
}


def event_object_type(event_type: str) -> str:
    return EVENT_OBJECT_TYPES.get(event_type) or event_type.split(".", 1)[0]


Outcome = Literal[
    "succeeded",  # 2xx within the timeout
    "failed",  # any other status (3xx included)
    "timeout",
    "connection_error",
    "gone",  # 410: the endpoint is disabled
    "dropped",  # a `drop` quirk: never sent
    "endpoint_disabled",
]


class Probability(BaseModel):
    model_config = ConfigDict(extra="forbid")
    probability: Annotated[float, Field(ge=0, le=1)] = 1.0


class Duplicate(Probability):
    copies: Annotated[int, Field(ge=1, le=10)] = 1


class Reorder(BaseModel):
    """Hold deliveries for `window_ms` and release them shuffled."""

    model_config = ConfigDict(extra="forbid")
    window_ms: Annotated[int, Field(ge=1, le=3_600_000)] = 1000


class Delay(BaseModel):
    """Extra delay before the first attempt: fixed `ms`, or uniform `min_ms`..`max_ms`."""

    model_config = ConfigDict(extra="forbid")
    ms: Annotated[int, Field(ge=0, le=86_400_000)] | None = None
    min_ms: Annotated[int, Field(ge=0, le=86_400_000)] = 0
    max_ms: Annotated[int, Field(ge=0, le=86_400_000)] | None = None


class Drop(BaseModel):
    """Never send: the first N deliveries, or each with a probability. The event stays in
    `GET /v1/events`."""

    model_config = ConfigDict(extra="forbid")
    first: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    probability: Annotated[float, Field(ge=0, le=1)] | None = None


class Quirks(BaseModel):
    model_config = ConfigDict(extra="forbid")
    duplicate: Duplicate | None = None
    reorder: Reorder | None = None
    delay: Delay | None = None
    drop: Drop | None = None
    stale_timestamp: Probability | None = None
    bad_signature: Probability | None = None
    old_secret: Probability | None = None
    thin_payload: bool = False


class WebhookEndpoint(Entity):
    id: str
    url: str
    description: str | None = None
    enabled_events: list[str] = Field(default_factory=lambda: ["*"])
    status: states.EndpointStatus = "enabled"
    disabled_reason: str | None = None
    secret: str
    previous_secret: str | None = None
    previous_secret_expires_at: datetime | None = None
    quirks: Quirks = Field(default_factory=Quirks)
    dropped: int = 0  # deliveries dropped so far (for `drop.first`)
    failing_since: datetime | None = None
    created_at: datetime
    updated_at: datetime

    def apply(self, event: str) -> None:
        self.status = states.ENDPOINT.transition(self.status, event)

    def wants(self, event_type: str) -> bool:
        return self.status == "enabled" and (
            "*" in self.enabled_events or event_type in self.enabled_events
        )

    def secrets(self, now: datetime) -> list[str]:
        """The secrets to sign with: the current one, and the previous one during overlap."""
        if (
            self.previous_secret is not None
            and self.previous_secret_expires_at is not None
            and now < self.previous_secret_expires_at
        ):
            return [self.secret, self.previous_secret]
        return [self.secret]


class Attempt(Entity):
    n: int
    at: datetime  # account clock
    wall_at: datetime
    url: str
    request_headers: dict[str, str]
    request_body: str
    status: int | None = None
    response_excerpt: str | None = None
    latency_ms: float = 0.0
    outcome: Outcome
    quirks: list[str] = Field(default_factory=list)
    next_attempt_at: datetime | None = None


class Delivery(Entity):
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    status: states.DeliveryStatus = "pending"
    attempts: list[Attempt] = Field(default_factory=list)
    next_attempt_at: datetime | None = None
    created_at: datetime

    def apply(self, event: str) -> None:
        self.status = states.DELIVERY.transition(self.status, event)


def next_delay(attempts_made: int, schedule: tuple[int, ...], jitter: float) -> timedelta | None:
    """The delay before attempt `attempts_made + 1` (jitter: a draw in [-1, 1) times ±20 %);
    None once the schedule is exhausted."""
    if attempts_made >= len(schedule):
        return None
    base = schedule[attempts_made]
    return timedelta(seconds=base * (1 + JITTER * jitter))


def retry_after_delay(
    scheduled: timedelta, retry_after_s: int | None, throttled: bool
) -> timedelta:
    """Svix: `Retry-After` is honoured but clamped to [scheduled, 2 x scheduled]; a 429 or a
    timeout waits at least a minute."""
    delay = scheduled
    if retry_after_s is not None:
        delay = min(max(timedelta(seconds=retry_after_s), scheduled), 2 * scheduled)
    if throttled:
        delay = max(delay, timedelta(seconds=THROTTLE_FLOOR_S))
    return delay
