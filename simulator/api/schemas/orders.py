"""Orders: update, capture, refund and cancel requests; the order with its captures, refunds
and repayments as shown."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    Field,
)

from simulator.api.schemas.buyers import DecisionOut
from simulator.api.schemas.common import (
    Amount,
    Currency,
    LineItemIn,
    LineItemOut,
    ListQuery,
    LongText,
    Metadata,
    RequestModel,
    Terms,
    Text,
)
from simulator.domain.models import (
    Capture,
    Order,
    Refund,
    Repayment,
)
from simulator.domain.states import (
    OrderStatus,
    RepaymentStatus,
)


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


class OrderListQuery(ListQuery):
    status: OrderStatus | None = None
    merchant_order_id: Text | None = None
    buyer_id: Text | None = None


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
