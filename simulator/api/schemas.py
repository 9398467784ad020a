"""The public shapes of `/v1`: request models (strict: integers are integers, unknown fields
are errors) and response models. `contracts/openapi.yaml` is generated from these, so what is
validated and what is published cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

from simulator.domain import decisions
from simulator.domain import webhooks as wh
from simulator.domain.finance import Dispute, DriftInjection, Settlement, SettlementLine
from simulator.domain.json_values import JSON_INTEGER
from simulator.domain.models import (
    Buyer,
    Capture,
    Checkout,
    Event,
    LineItem,
    Order,
    Refund,
    Repayment,
)
from simulator.domain.money import CURRENCIES, MAX_AMOUNT
from simulator.domain.records import CURSOR_PATTERN, Page
from simulator.domain.states import (
    CheckoutStatus,
    CreditLineStatus,
    DisputeStatus,
    EndpointStatus,
    OrderStatus,
    RepaymentStatus,
    SettlementStatus,
)
from simulator.service import Prequalification

# Patterns spell their character classes out: `\s` means different things to Python and to
# the ECMA-262 regexes JSON Schema specifies, and the document must mean what the server does.
_VISIBLE = r"[^@\x00-\x20\x7f]"
Text = Annotated[str, StringConstraints(min_length=1, max_length=255)]
LongText = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Url = Annotated[str, StringConstraints(pattern=r"^https?://[^\x00-\x20\x7f]+$", max_length=2048)]
Email = Annotated[
    str, StringConstraints(pattern=rf"^{_VISIBLE}+@{_VISIBLE}+\.{_VISIBLE}+$", max_length=254)
]
# Validated as three capitals here and against the ISO list by the domain (422
# `unknown_currency`); published as that list, which is exactly what is accepted.
Currency = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{3}$"),
    WithJsonSchema(
        {
            "type": "string",
            "enum": sorted(CURRENCIES),
            "description": "ISO 4217 code, upper case. Defaults to the account currency (USD).",
        }
    ),
]
Amount = Annotated[
    int, Field(ge=1, le=MAX_AMOUNT, description="Minor units (cents for USD)."), JSON_INTEGER
]
MinorUnits = Annotated[int, Field(ge=0, le=MAX_AMOUNT, description="Minor units."), JSON_INTEGER]
Metadata = Annotated[
    dict[
        Annotated[str, StringConstraints(min_length=1, max_length=40)],
        Annotated[str, StringConstraints(max_length=500)],
    ],
    Field(max_length=50, description="Up to 50 string pairs, stored and echoed back."),
]
Terms = Literal["net30", "net60", "installments_3", "installments_6", "installments_12"]
assert set(Terms.__args__) == set(decisions.TERMS)  # type: ignore[attr-defined]


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# --- requests -------------------------------------------------------------------------------
class LineItemIn(RequestModel):
    name: Text
    sku: Text | None = None
    quantity: Annotated[int, Field(ge=1, le=1_000_000), JSON_INTEGER] = 1
    unit_amount: MinorUnits = 0

    def domain(self) -> LineItem:
        return LineItem(**self.model_dump())


class BusinessIn(RequestModel):
    legal_name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    email: Email
    tax_id: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z-]{2,20}$")] | None = None
    domain: (
        Annotated[
            str, StringConstraints(pattern=r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$", max_length=253)
        ]
        | None
    ) = None
    annual_revenue: Annotated[MinorUnits, Field(description="Minor units of `currency`.")] = 0
    years_in_business: Annotated[int, Field(ge=0, le=500), JSON_INTEGER] = 0


class BuyerCreate(BusinessIn):
    external_id: Text | None = Field(None, description="Your id for this business; unique.")
    currency: Currency | None = None
    metadata: Metadata | None = None


def _one_of(*names: str) -> dict[str, Any]:
    """Exactly one of `names` is given; `null` counts as not given, as the server reads it."""
    return {
        "oneOf": [{"required": [n], "properties": {n: {"not": {"type": "null"}}}} for n in names]
    }


class CheckoutCreate(RequestModel):
    model_config = ConfigDict(json_schema_extra=_one_of("buyer_id", "buyer"))
    amount: Amount
    currency: Currency | None = None
    merchant_order_id: Text | None = None
    buyer_id: Text | None = Field(None, description="An existing buyer. Give this or `buyer`.")
    buyer: BuyerCreate | None = Field(
        None, description="A buyer created inline (or, with a known external_id, reused)."
    )
    line_items: Annotated[list[LineItemIn], Field(max_length=100)] = []
    return_url: Url
    cancel_url: Url
    metadata: Metadata | None = None


class PrequalificationCreate(RequestModel):
    model_config = ConfigDict(json_schema_extra=_one_of("buyer_id", "business"))
    buyer_id: Text | None = None
    business: BusinessIn | None = None
    currency: Currency | None = None


class OrderUpdate(RequestModel):
    amount: Amount | None = None
    merchant_order_id: Text | None = None
    line_items: Annotated[list[LineItemIn], Field(max_length=100)] | None = None
    metadata: Metadata | None = None


class CaptureCreate(RequestModel):
    amount: Amount | None = Field(None, description="Defaults to everything still capturable.")
    currency: Currency | None = None
    final: bool = Field(False, description="Release whatever stays uncaptured after this one.")


class RefundCreate(RequestModel):
    amount: Amount | None = Field(None, description="Defaults to everything still refundable.")
    currency: Currency | None = None
    reason: LongText | None = None


class CancelOrder(RequestModel):
    reason: LongText | None = None


class AcceptDispute(RequestModel):
    note: LongText | None = None


class BuyerApproval(RequestModel):
    terms: Terms = "net30"


class ListQuery(RequestModel):
    model_config = ConfigDict(extra="forbid", strict=False)  # query strings are text
    limit: Annotated[int, Field(ge=1, le=100)] = 10
    cursor: (
        Annotated[
            str,
            StringConstraints(pattern=CURSOR_PATTERN),
            Field(description="`next_cursor` of the previous page."),
        ]
        | None
    ) = None


class BuyerListQuery(ListQuery):
    external_id: Text | None = None


class OrderListQuery(ListQuery):
    status: OrderStatus | None = None
    merchant_order_id: Text | None = None
    buyer_id: Text | None = None


# --- responses ------------------------------------------------------------------------------
class LineItemOut(BaseModel):
    name: str
    sku: str | None
    quantity: int
    unit_amount: int


class CreditLineOut(BaseModel):
    status: CreditLineStatus
    limit: int
    used: int
    available: int
    currency: str
    decided_at: datetime | None


class BuyerOut(BaseModel):
    id: str
    object: Literal["buyer"] = "buyer"
    external_id: str | None
    legal_name: str
    email: str
    tax_id: str | None
    domain: str | None
    annual_revenue: int
    years_in_business: int
    currency: str
    credit_line: CreditLineOut
    metadata: dict[str, str]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, b: Buyer) -> BuyerOut:
        line = b.credit_line
        return cls(
            id=b.id,
            external_id=b.external_id,
            legal_name=b.legal_name,
            email=b.email,
            tax_id=b.tax_id,
            domain=b.domain,
            annual_revenue=b.annual_revenue,
            years_in_business=b.years_in_business,
            currency=b.currency,
            metadata=b.metadata,
            credit_line=CreditLineOut(
                status=line.status,
                limit=line.limit,
                used=line.used,
                available=line.available,
                currency=line.currency,
                decided_at=line.decided_at,
            ),
            created_at=b.created_at,
            updated_at=b.updated_at,
        )


class DecisionOut(BaseModel):
    outcome: Literal["approved", "declined", "review"]
    reason: str | None
    score: int | None
    magic: str | None = Field(description="The magic value that forced this decision, if any.")


class CheckoutOut(BaseModel):
    id: str
    object: Literal["checkout"] = "checkout"
    status: CheckoutStatus
    amount: int
    currency: str
    merchant_order_id: str | None
    buyer_id: str
    line_items: list[LineItemOut]
    return_url: str
    cancel_url: str
    url: str = Field(description="The hosted page where the buyer accepts or declines.")
    order_id: str | None
    terms: str | None
    decision: DecisionOut | None
    metadata: dict[str, str]
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    completed_at: datetime | None

    @classmethod
    def of(cls, c: Checkout) -> CheckoutOut:
        return cls.model_validate(c.model_dump(), strict=False)


class ReviewOut(BaseModel):
    reason: str
    resolves_at: datetime | None


class CaptureOut(BaseModel):
    id: str
    object: Literal["capture"] = "capture"
    order_id: str
    amount: int
    currency: str
    final: bool
    created_at: datetime


class RefundOut(BaseModel):
    id: str
    object: Literal["refund"] = "refund"
    order_id: str
    amount: int
    currency: str
    reason: str | None
    created_at: datetime


class RepaymentOut(BaseModel):
    """What the buyer owes the provider for one capture, due on a date (the merchant is paid
    in settlements whatever the buyer does)."""

    id: str
    object: Literal["repayment"] = "repayment"
    order_id: str
    buyer_id: str
    capture_id: str
    terms: Terms
    installment: int = Field(description="1-based number of this installment.")
    installments: int
    amount: int = Field(description="Still owed (refunds and lost disputes reduce it).")
    original_amount: int
    currency: str
    due_at: datetime
    status: RepaymentStatus
    late_fee: int = Field(description="Charged to the buyer when paid late; minor units.")
    paid_at: datetime | None
    defaulted_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, r: Repayment) -> RepaymentOut:
        return cls.model_validate(r.model_dump(), strict=False)


class OrderOut(BaseModel):
    id: str
    object: Literal["order"] = "order"
    status: OrderStatus
    amount: int
    currency: str
    captured_amount: int
    refunded_amount: int
    capturable_amount: int
    refundable_amount: int
    terms: Terms
    buyer_id: str
    checkout_id: str
    merchant_order_id: str | None
    line_items: list[LineItemOut]
    metadata: dict[str, str]
    decision: DecisionOut
    review: ReviewOut | None
    captures: list[CaptureOut]
    refunds: list[RefundOut]
    repayments: list[RepaymentOut] = Field(
        description="The buyer's repayment schedule: one per due date of each capture."
    )
    created_at: datetime
    updated_at: datetime
    authorized_at: datetime | None
    canceled_at: datetime | None
    authorization_expires_at: datetime | None

    @classmethod
    def of(cls, o: Order) -> OrderOut:
        data = o.model_dump(exclude={"released_amount"})
        data["capturable_amount"] = o.capturable_amount
        data["refundable_amount"] = o.refundable_amount
        data["captures"] = [{**c, "order_id": o.id} for c in data["captures"]]
        data["refunds"] = [{**r, "order_id": o.id} for r in data["refunds"]]
        return cls.model_validate(data, strict=False)


class CaptureResult(CaptureOut):
    order: OrderOut

    @classmethod
    def of(cls, o: Order, c: Capture) -> CaptureResult:
        return cls(
            id=c.id,
            order_id=o.id,
            amount=c.amount,
            currency=c.currency,
            final=c.final,
            created_at=c.created_at,
            order=OrderOut.of(o),
        )


class RefundResult(RefundOut):
    order: OrderOut

    @classmethod
    def of(cls, o: Order, r: Refund) -> RefundResult:
        return cls(
            id=r.id,
            order_id=o.id,
            amount=r.amount,
            currency=r.currency,
            reason=r.reason,
            created_at=r.created_at,
            order=OrderOut.of(o),
        )


class PrequalificationOut(BaseModel):
    id: str
    object: Literal["prequalification"] = "prequalification"
    decision: Literal["approved", "declined", "review"]
    reason: str | None
    estimated_limit: int
    currency: str
    offered_terms: list[Terms]
    created_at: datetime

    @classmethod
    def of(cls, p: Prequalification) -> PrequalificationOut:
        return cls.model_validate(p.__dict__, strict=False)


class EventOut(BaseModel):
    id: str
    object: Literal["event"] = "event"
    type: str
    object_type: str
    object_id: str
    created_at: datetime
    api_version: str
    data: dict[str, Any]

    @classmethod
    def of(cls, e: Event) -> EventOut:
        return cls.model_validate(e.model_dump(), strict=False)


T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class ListOut(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool
    next_cursor: str | None


def listed(page: Page[Any], of: Callable[[Any], M]) -> ListOut[M]:
    """One page of objects as a list response, each object shown by `of`."""
    out: ListOut[M] = ListOut[Any](
        data=[of(item) for item in page.items],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )
    return out


class FieldError(BaseModel):
    path: str
    message: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details, as every error is sent."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    request_id: str
    errors: list[FieldError] | None = None


# --- webhooks -------------------------------------------------------------------------------
def _rfc3339_only(value: Any) -> Any:
    """pydantic would read `0.5` or `1700000000` as unix time; the contract says RFC 3339."""
    if not isinstance(value, str) or "T" not in value.upper():
        raise ValueError("an RFC 3339 date-time such as 2026-03-01T09:00:00Z")
    try:
        return datetime.fromisoformat(value)  # strict validation wants a datetime after this
    except ValueError:
        raise ValueError("an RFC 3339 date-time such as 2026-03-01T09:00:00Z") from None


Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_rfc3339_only)]


EventType = Annotated[
    str,
    Field(min_length=1, max_length=64),
    WithJsonSchema({"type": "string", "enum": ["*", *wh.EVENT_TYPES]}),
]


def _known_events(names: list[str]) -> list[str]:
    unknown = [n for n in names if n != "*" and n not in wh.EVENT_TYPES]
    if unknown:
        raise ValueError(
            f"unknown event types {unknown}; use '*' or some of: {', '.join(wh.EVENT_TYPES)}"
        )
    return names


EnabledEvents = Annotated[
    list[EventType],
    Field(min_length=1, max_length=50, description='`["*"]` for every type, or a list.'),
    AfterValidator(_known_events),
]


class WebhookEndpointCreate(RequestModel):
    url: Url
    enabled_events: EnabledEvents = Field(default_factory=lambda: ["*"])
    description: LongText | None = None


class WebhookEndpointUpdate(RequestModel):
    url: Url | None = None
    enabled_events: EnabledEvents | None = None
    description: LongText | None = None
    status: EndpointStatus | None = None


class RotateSecret(RequestModel):
    overlap: Annotated[
        str,
        StringConstraints(min_length=2, max_length=40, pattern=r"^([0-9]{1,9}(ms|s|m|h|d|w))+$"),
        Field(examples=["24h"], description="How long the old secret keeps signing too."),
    ] = "24h"


class RecoverIn(RequestModel):
    since: Rfc3339


class WebhookEndpointPublic(BaseModel):
    """An endpoint as events show it: everything but its secrets."""

    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    url: str
    description: str | None
    enabled_events: list[str]
    status: EndpointStatus
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, e: wh.WebhookEndpoint) -> WebhookEndpointPublic:
        return cls.model_validate(e.model_dump(), strict=False)


class WebhookEndpointOut(WebhookEndpointPublic):
    secret: str = Field(description="`whsec_…`: verify signatures with it (Standard Webhooks).")
    previous_secret_expires_at: datetime | None = Field(
        description="Until then the previous secret signs too (after a rotation)."
    )

    @classmethod
    def of(cls, e: wh.WebhookEndpoint) -> WebhookEndpointOut:
        return cls.model_validate(e.model_dump(), strict=False)


class WebhookEndpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[WebhookEndpointOut]


class AttemptOut(BaseModel):
    object: Literal["webhook_attempt"] = "webhook_attempt"
    delivery_id: str
    event_id: str
    event_type: str
    n: int
    at: datetime
    url: str
    status: int | None
    response_excerpt: str | None
    latency_ms: float
    outcome: str
    next_attempt_at: datetime | None

    @classmethod
    def of(cls, d: wh.Delivery, a: wh.Attempt) -> AttemptOut:
        return cls(
            delivery_id=d.id,
            event_id=d.event_id,
            event_type=d.event_type,
            n=a.n,
            at=a.at,
            url=a.url,
            status=a.status,
            response_excerpt=a.response_excerpt,
            latency_ms=a.latency_ms,
            outcome=a.outcome,
            next_attempt_at=a.next_attempt_at,
        )


class AttemptList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AttemptOut]


class AttemptQuery(RequestModel):
    model_config = ConfigDict(extra="forbid", strict=False)  # query strings are text
    limit: Annotated[int, Field(ge=1, le=100)] = 20


class Recovered(BaseModel):
    recovered: int = Field(description="Failed deliveries queued to be sent again now.")


class Deleted(BaseModel):
    id: str
    object: str
    deleted: Literal[True] = True


class EventListQuery(ListQuery):
    type: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    object_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    created_gte: Rfc3339 | None = None
    created_lt: Rfc3339 | None = None


def present(obj: Any) -> dict[str, Any]:
    """Event snapshots: the same public shape a GET of the object returns."""
    out: BaseModel
    if isinstance(obj, Order):
        out = OrderOut.of(obj)
    elif isinstance(obj, Checkout):
        out = CheckoutOut.of(obj)
    elif isinstance(obj, Buyer):
        out = BuyerOut.of(obj)
    elif isinstance(obj, wh.WebhookEndpoint):
        out = WebhookEndpointPublic.of(obj)
    elif isinstance(obj, Repayment):
        out = RepaymentOut.of(obj)
    elif isinstance(obj, Settlement):
        out = SettlementSummaryOut.of(obj)
    elif isinstance(obj, Dispute):
        out = DisputeOut.of(obj)
    else:  # pragma: no cover - the service only snapshots these
        raise TypeError(type(obj))
    return out.model_dump(mode="json")


# --- buyers' single pane, settlements, disputes ------------------------------------------------
class CreditUsageOut(BaseModel):
    limit: int
    used: int = Field(description="Held by authorizations plus owed in open repayments.")
    available: int
    outstanding: int = Field(description="Owed in open repayments (scheduled and late).")
    overdue: int = Field(description="Owed in repayments past their due date.")
    defaulted: int = Field(description="Owed in repayments the buyer defaulted on.")
    currency: str


class BuyerDetailOut(BuyerOut):
    credit_usage: CreditUsageOut
    upcoming_repayments: list[RepaymentOut] = Field(
        description="Open repayments across the buyer's orders, soonest first (at most 100)."
    )

    @classmethod
    def detail(cls, b: Buyer, open_repayments: list[Repayment], defaulted: int) -> BuyerDetailOut:
        line = b.credit_line
        base = BuyerOut.of(b).model_dump()
        return cls.model_validate(
            {
                **base,
                "credit_usage": {
                    "limit": line.limit,
                    "used": line.used,
                    "available": line.available,
                    "outstanding": sum(r.amount for r in open_repayments),
                    "overdue": sum(r.amount for r in open_repayments if r.status == "late"),
                    "defaulted": defaulted,
                    "currency": line.currency,
                },
                "upcoming_repayments": [
                    RepaymentOut.of(r).model_dump() for r in open_repayments[:100]
                ],
            },
            strict=False,
        )


LineTypeOut = Literal["capture", "refund", "fee", "dispute", "dispute_reversal", "carry_forward"]


class SettlementLineOut(BaseModel):
    id: str
    object: Literal["settlement_line"] = "settlement_line"
    type: LineTypeOut
    order_id: str | None
    source_id: str = Field(description="The capture, refund, dispute or settlement behind it.")
    gross: int
    fee: int
    net: int = Field(description="gross - fee; minor units, negative for debits.")
    currency: str
    batch_date: date
    settlement_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, x: SettlementLine) -> SettlementLineOut:
        return cls.model_validate(x.model_dump(), strict=False)


class SettlementSummaryOut(BaseModel):
    id: str
    object: Literal["settlement"] = "settlement"
    status: SettlementStatus
    currency: str
    amount: int = Field(description="The payout: the sum of the lines' `net`, never negative.")
    gross: int
    fees: int
    batch_date: date = Field(description="The business day whose movements it pays out.")
    payout_date: date
    line_count: int
    created_at: datetime
    paid_at: datetime | None

    @classmethod
    def of(cls, x: Settlement) -> SettlementSummaryOut:
        return cls.model_validate(x.model_dump(exclude={"lines", "reported_lines"}), strict=False)


class SettlementOut(SettlementSummaryOut):
    lines: list[SettlementLineOut] = Field(
        description="The lines as the settlement report gives them."
    )

    @classmethod
    def of(cls, x: Settlement) -> SettlementOut:
        data = x.model_dump(exclude={"lines", "reported_lines"})
        data["lines"] = [line.model_dump() for line in x.report_lines]
        return cls.model_validate(data, strict=False)


class SettlementListQuery(ListQuery):
    status: SettlementStatus | None = None


class ReportQuery(RequestModel):
    model_config = ConfigDict(extra="forbid", strict=False)
    format: Literal["csv", "jsonl"] = "csv"


class DisputeOut(BaseModel):
    id: str
    object: Literal["dispute"] = "dispute"
    order_id: str
    buyer_id: str
    amount: int
    currency: str
    reason: str
    status: DisputeStatus
    evidence: dict[str, str] | None
    evidence_submitted_at: datetime | None
    respond_by: datetime
    decides_at: datetime | None
    accepted: bool
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, d: Dispute) -> DisputeOut:
        return cls.model_validate(d.model_dump(), strict=False)


class DisputeListQuery(ListQuery):
    status: DisputeStatus | None = None
    order_id: Text | None = None


class EvidenceIn(RequestModel):
    evidence: Annotated[
        dict[
            Annotated[str, StringConstraints(min_length=1, max_length=40)],
            Annotated[str, StringConstraints(max_length=5000)],
        ],
        Field(
            min_length=1,
            max_length=20,
            description="Named texts (`shipping_tracking`, `invoice`, ...). In the sandbox, "
            "`+win` or `+lose` in a text decides the outcome.",
        ),
    ]


class DriftInjectionOut(BaseModel):
    id: str
    kind: Literal["missing_line", "duplicate_line", "off_by_one_cent", "late_line", "unknown_order"]
    settlement_id: str
    line_id: str | None
    order_id: str | None
    detail: str
    created_at: datetime

    @classmethod
    def of(cls, d: DriftInjection) -> DriftInjectionOut:
        return cls.model_validate(d.model_dump(), strict=False)
