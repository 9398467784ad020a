"""The public shapes of the gateway + net terms personality (`/gateway/v1`): invoices, charges,
credit notes and write-offs. Here (not in the dialect package) because event snapshots
(`schemas.present`) show these objects too."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from simulator.api.schemas.common import (
    Amount,
    Currency,
    Email,
    LineItemIn,
    LineItemOut,
    ListQuery,
    Metadata,
    RequestModel,
    Text,
)
from simulator.domain.gateway import Charge, CustomerBehaviour, Invoice, PaymentMethod
from simulator.domain.json_values import JSON_INTEGER
from simulator.domain.states import ChargeStatus, InvoiceStatus

NetDays = Annotated[int, Field(ge=0, le=365), JSON_INTEGER]


class CustomerIn(RequestModel):
    name: Text
    email: Email
    external_id: Text | None = None
    payment_method: PaymentMethod = Field(
        "card", description="What the customer pays with (on file at the gateway)."
    )


class InvoiceCreate(RequestModel):
    number: Text = Field(description="Your invoice (order) number; `?number=` finds it.")
    customer: CustomerIn
    amount: Amount = Field(description="The order's total: what may be issued in all.")
    currency: Currency | None = None
    net_days: NetDays = Field(30, description="Days from the first issue to the due date (net 30).")
    line_items: Annotated[list[LineItemIn], Field(max_length=100)] = Field(default_factory=list)
    metadata: Metadata = Field(default_factory=dict)


class IssueIn(RequestModel):
    amount: Amount | None = Field(
        None, description="What this shipment invoices; all that is not issued yet if absent."
    )


class CreditNoteIn(RequestModel):
    amount: Amount
    reason: Text | None = None


class WriteOffIn(RequestModel):
    amount: Amount | None = Field(
        None, description="Must be everything collectible, when given (a write-off closes)."
    )
    reason: Text | None = None


class VoidIn(RequestModel):
    reason: Text | None = None


class ChargeCreate(RequestModel):
    invoice: Text = Field(description="The invoice (`inv_...`) the payment is against.")
    amount: Amount | None = Field(None, description="Everything collectible if absent.")
    method: PaymentMethod | None = Field(
        None, description="The customer's method on file if absent."
    )


class InvoiceListQuery(ListQuery):
    status: InvoiceStatus | None = None
    number: Text | None = None


class ChargeListQuery(ListQuery):
    invoice: Text | None = None


class CustomerOut(BaseModel):
    name: str
    email: str
    external_id: str | None
    payment_method: PaymentMethod


_MINOR = Annotated[int, JSON_INTEGER]


class InvoiceOut(BaseModel):
    id: str
    object: Literal["invoice"] = "invoice"
    number: str
    customer: CustomerOut
    status: InvoiceStatus
    past_due: bool
    currency: str
    amount: _MINOR
    issued_amount: _MINOR
    credited_amount: _MINOR
    paid_amount: _MINOR = Field(description="Cleared payments.")
    pending_amount: _MINOR = Field(description="Payments still clearing (ACH).")
    refunded_amount: _MINOR = Field(description="Paid money given back by credit notes.")
    written_off_amount: _MINOR
    amount_due: _MINOR = Field(
        description="issued - credited - written_off - (paid - refunded): still owed."
    )
    net_days: int
    behaviour: CustomerBehaviour = Field(
        description="What the customer will do when the invoice falls due (sandbox only)."
    )
    issued_at: datetime | None
    due_date: date | None
    paid_at: datetime | None
    voided_at: datetime | None
    line_items: list[LineItemOut]
    metadata: dict[str, str]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, invoice: Invoice) -> InvoiceOut:
        return cls.model_validate({**invoice.model_dump(), "amount_due": invoice.due}, strict=False)


class ChargeRefundOut(BaseModel):
    id: str = Field(description="`chr_...`: the settlement line's `source_id`.")
    amount: _MINOR
    created_at: datetime


class ChargeOut(BaseModel):
    id: str
    object: Literal["charge"] = "charge"
    invoice_id: str
    method: PaymentMethod
    status: ChargeStatus
    currency: str
    amount: _MINOR
    fee: _MINOR = Field(description="The gateway's fee, itemised on the settlement line.")
    refunded_amount: _MINOR
    refunds: list[ChargeRefundOut]
    initiated_by: Literal["customer", "merchant"]
    clears_at: datetime | None
    succeeded_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, charge: Charge) -> ChargeOut:
        return cls.model_validate(charge.model_dump(), strict=False)
