"""Money after the checkout: the buyer's single pane (open repayments, credit usage),
settlements (with their report query), disputes and injected report drift."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from simulator.api.schemas.buyers import BuyerOut
from simulator.api.schemas.common import ListQuery, LongText, RequestModel, Text
from simulator.api.schemas.orders import RepaymentOut
from simulator.domain.finance import (
    Dispute,
    DriftInjection,
    DriftKind,
    LineType,
    Settlement,
    SettlementLine,
)
from simulator.domain.models import (
    Buyer,
    Repayment,
)
from simulator.domain.states import (
    DisputeStatus,
    SettlementStatus,
)


class AcceptDispute(RequestModel):
    note: LongText | None = None


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


LineTypeOut = LineType


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
    kind: DriftKind
    settlement_id: str
    line_id: str | None
    order_id: str | None
    detail: str
    created_at: datetime

    @classmethod
    def of(cls, d: DriftInjection) -> DriftInjectionOut:
        return cls.model_validate(d.model_dump(), strict=False)
