"""Checkouts: the create request, the buyer's approval, and the checkout as shown."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
)

from simulator.api.schemas.buyers import BuyerCreate, DecisionOut
from simulator.api.schemas.common import (
    Amount,
    Currency,
    LineItemIn,
    LineItemOut,
    Metadata,
    RequestModel,
    Terms,
    Text,
    Url,
    _one_of,
)
from simulator.domain.models import (
    Checkout,
)
from simulator.domain.states import (
    CheckoutStatus,
)


class CheckoutCreate(RequestModel):
    model_config = ConfigDict(json_schema_extra=_one_of("buyer_id", "buyer"))
    amount: Amount
    currency: Currency | None = None
    merchant_order_id: Text | None = None
    buyer_id: Text | None = Field(None, description="An existing buyer. Give this or `buyer`.")
    buyer: BuyerCreate | None = Field(
        None, description="A buyer created inline (or, with a known external_id, reused)."
    )
    line_items: Annotated[list[LineItemIn], Field(max_length=100)] = []  # noqa: RUF012 - a pydantic field: copied per instance
    return_url: Url
    cancel_url: Url
    metadata: Metadata | None = None


class BuyerApproval(RequestModel):
    terms: Terms = "net30"


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
