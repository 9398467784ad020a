"""Buyers, pre-qualification and underwriting decisions: requests, and the buyer, credit
line and decision as shown."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from simulator.api.schemas.common import (
    Currency,
    Email,
    ListQuery,
    Metadata,
    MinorUnits,
    RequestModel,
    Terms,
    Text,
    _one_of,
)
from simulator.domain.json_values import JSON_INTEGER
from simulator.domain.models import (
    Buyer,
)
from simulator.domain.states import (
    CreditLineStatus,
)
from simulator.service import Prequalification


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


class PrequalificationCreate(RequestModel):
    model_config = ConfigDict(json_schema_extra=_one_of("buyer_id", "business"))
    buyer_id: Text | None = None
    business: BusinessIn | None = None
    currency: Currency | None = None


class BuyerListQuery(ListQuery):
    external_id: Text | None = None


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
