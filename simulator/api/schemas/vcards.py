"""The public shapes of the virtual cards personality (`/vcards/v1`): invoices, the buyer's
virtual cards, their captures (payments) and allocations. Here (not in the dialect package)
because event snapshots (`schemas.present`) show these objects too. A card is shown by its
token and last four digits only: there is no card number to show."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal

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
from simulator.api.schemas.gateway import CreditNoteIn, IssueIn, NetDays, VoidIn, WriteOffIn
from simulator.domain.json_values import JSON_INTEGER
from simulator.domain.states import InvoiceStatus, VcardPaymentStatus, VcardStatus
from simulator.domain.vcards import ApBehaviour, Processing, Vcard, VcardInvoice, VcardPayment

__all__ = [
    "CreditNoteIn",
    "IssueIn",
    "VoidIn",
    "WriteOffIn",
]


class CustomerIn(RequestModel):
    name: Text
    email: Email
    external_id: Text | None = Field(
        None, description="Your customer id: the AP pays one customer's invoices per card."
    )


class InvoiceCreate(RequestModel):
    number: Text = Field(description="Your invoice (order) number; `?number=` finds it.")
    customer: CustomerIn
    amount: Amount = Field(description="The order's total: what may be issued in all.")
    currency: Currency | None = None
    net_days: NetDays = Field(30, description="Days from the first issue to the due date (net 30).")
    processing: Processing = Field(
        "automatic",
        description="`automatic`: your card processor authorizes and captures each card the "
        "AP sends at once; `manual`: you do (`/cards/{id}/authorize`, `/capture`).",
    )
    line_items: Annotated[list[LineItemIn], Field(max_length=100)] = Field(default_factory=list)
    metadata: Metadata = Field(default_factory=dict)


class IntendedIn(RequestModel):
    invoice: Text = Field(description="The invoice (`vinv_...`) the card pays.")
    amount: Amount | None = Field(None, description="What is collectible on it if absent.")


class CardCreate(RequestModel):
    invoices: Annotated[list[IntendedIn], Field(min_length=1, max_length=50)] = Field(
        description="The invoices (one customer's, one currency) this card pays."
    )
    limit: Amount | None = Field(
        None, description="The card's spending limit; their sum if absent."
    )
    valid_days: Annotated[int, Field(ge=1, le=365), JSON_INTEGER] | None = Field(
        None, description="Days until it expires; the account's `card_valid_days` if absent."
    )


class AuthorizeIn(RequestModel):
    amount: Amount = Field(description="The hold: at most what is left of the card's limit.")


class AllocationIn(RequestModel):
    invoice: Text
    amount: Amount


class CaptureIn(RequestModel):
    amount: Amount | None = Field(None, description="All that is held if absent.")
    allocations: Annotated[list[AllocationIn], Field(min_length=1, max_length=50)] | None = Field(
        None,
        description="Which invoice gets how much (summing to the capture); the card's own "
        "invoices in order if absent.",
    )


class InvoiceListQuery(ListQuery):
    status: InvoiceStatus | None = None
    number: Text | None = None


class CardListQuery(ListQuery):
    status: VcardStatus | None = None


class PaymentListQuery(ListQuery):
    card: Text | None = None


class CustomerOut(BaseModel):
    name: str
    email: str
    external_id: str | None


_MINOR = Annotated[int, JSON_INTEGER]


class AllocationOut(BaseModel):
    id: str = Field(description="`val_...`: the `payment` settlement line's `source_id`.")
    invoice_id: str
    card_id: str
    payment_id: str
    amount: _MINOR
    fee: _MINOR = Field(description="Its share of the capture's interchange and scheme fee.")
    refunded_amount: _MINOR
    cleared: bool


class InvoiceOut(BaseModel):
    id: str
    object: Literal["vcard_invoice"] = "vcard_invoice"
    number: str
    customer: CustomerOut
    status: InvoiceStatus
    past_due: bool
    currency: str
    amount: _MINOR
    issued_amount: _MINOR
    credited_amount: _MINOR
    paid_amount: _MINOR = Field(description="Cleared card payments.")
    pending_amount: _MINOR = Field(description="Captured, still clearing.")
    carded_amount: _MINOR = Field(description="On cards issued for it and not captured yet.")
    refunded_amount: _MINOR = Field(description="Paid money given back by credit notes.")
    written_off_amount: _MINOR
    amount_due: _MINOR = Field(
        description="issued - credited - written_off - (paid - refunded): still owed."
    )
    net_days: int
    processing: Processing
    behaviour: ApBehaviour = Field(
        description="What the buyer's AP will do when the invoice falls due (sandbox only)."
    )
    allocations: list[AllocationOut] = Field(
        description="Every card capture that paid part of it: which card, how much."
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
    def of(cls, invoice: VcardInvoice) -> InvoiceOut:
        return cls.model_validate({**invoice.model_dump(), "amount_due": invoice.due}, strict=False)


class IntendedOut(BaseModel):
    invoice_id: str
    amount: _MINOR


class CardOut(BaseModel):
    id: str
    object: Literal["vcard"] = "vcard"
    token: str = Field(description="`vcard_tok_...`: store this, never a card number.")
    vault_token: str | None = Field(
        description="The card in the token vault (`tok_...`, `/vcards/v1/tokens`): revoked "
        "by its capture, expired with it."
    )
    last4: str
    exp_month: int
    exp_year: int
    expires_at: datetime
    status: VcardStatus
    currency: str
    limit: _MINOR
    available: _MINOR = Field(description="limit - authorized - captured.")
    authorized_amount: _MINOR = Field(description="Held, not captured yet.")
    captured_amount: _MINOR
    declines: int = Field(description="Attempts the card declined (over its limit).")
    invoices: list[IntendedOut] = Field(description="What the AP issued it for.")
    processing: Processing
    payment_id: str | None = Field(description="Its capture (`vcp_...`), once captured.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, card: Vcard) -> CardOut:
        return cls.model_validate({**card.model_dump(), "available": card.available}, strict=False)


class RefundOut(BaseModel):
    id: str = Field(description="`vcr_...`: the negative `refund` line's `source_id`.")
    invoice_id: str
    allocation_id: str
    amount: _MINOR
    created_at: datetime


class PaymentOut(BaseModel):
    id: str
    object: Literal["vcard_payment"] = "vcard_payment"
    card_id: str
    status: VcardPaymentStatus
    currency: str
    amount: _MINOR
    interchange_fee: _MINOR
    scheme_fee: _MINOR
    fee: _MINOR = Field(description="interchange + scheme: shared over the allocations.")
    allocations: list[AllocationOut]
    refunded_amount: _MINOR
    refunds: list[RefundOut]
    initiated_by: Literal["processor", "merchant"]
    clears_at: datetime
    cleared_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, payment: VcardPayment) -> PaymentOut:
        return cls.model_validate(payment.model_dump(), strict=False)


def presenter(obj: object) -> Callable[[Any], BaseModel] | None:
    """How event snapshots show a virtual-card object (None for any other object)."""
    if isinstance(obj, VcardInvoice):
        return InvoiceOut.of
    if isinstance(obj, Vcard):
        return CardOut.of
    if isinstance(obj, VcardPayment):
        return PaymentOut.of
    return None
