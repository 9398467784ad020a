"""The public shapes of the traditional-invoicing personality (`/invoicing/v1`): an EDI 810
invoice as JSON (its segments as fields), remittances (EDI 820 as JSON), cash application.
Here (not in the dialect package) because event snapshots (`schemas.present`) show these too."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from simulator.api.schemas.common import Amount, Currency, Email, ListQuery, RequestModel, Text
from simulator.domain.invoicing import (
    BuyerBehaviour,
    EdiInvoice,
    PurchaseOrder,
    Qualifier,
    Remittance,
)
from simulator.domain.json_values import JSON_INTEGER
from simulator.domain.states import EdiInvoiceStatus, RemittanceStatus
from simulator.domain.x12 import Invoice810, Line810

# An X12 element: no separators, no line breaks.
Element = Annotated[str, StringConstraints(min_length=1, max_length=80, pattern=r"^[^*~>\r\n]+$")]
NetDays = Annotated[int, Field(ge=0, le=365), JSON_INTEGER]
Quantity = Annotated[int, Field(ge=1, le=1_000_000), JSON_INTEGER]
_MINOR = Annotated[int, JSON_INTEGER]


class BigIn(RequestModel):
    """BIG: the invoice's number and the buyer's purchase order."""

    invoice_number: Element = Field(description="BIG02: your invoice number (unique).")
    po_number: Element | None = Field(None, description="BIG04: the buyer's PO number.")


class BuyerIn(RequestModel):
    """N1*BY (the buyer) and PER*AP (its accounts payable contact)."""

    name: Element = Field(description="N102. `[pays_late]` etc. picks the behaviour.")
    id: Element | None = Field(None, description="N104: the buyer's id (qualifier 92).")
    email: Email = Field(description="PER04 (EM). `ap+pays_late@...` picks the behaviour.")


class ItdIn(RequestModel):
    net_days: NetDays = Field(30, description="ITD07: days from today to the due date.")


class It1In(RequestModel):
    quantity: Quantity = Field(description="IT102")
    unit: Element = Field("EA", description="IT103: unit of measure.")
    unit_price: Amount = Field(description="IT104, in minor units here.")
    product_id: Element | None = Field(None, description="IT107 (VP: vendor part number).")


class TdsIn(RequestModel):
    amount: Amount = Field(description="TDS01: the invoice total; must equal the IT1 lines.")


class Invoice810In(RequestModel):
    """An X12 810 invoice as JSON. Or send the X12 text itself as `application/edi-x12`."""

    big: BigIn
    currency: Currency | None = Field(None, description="CUR02; the account's if absent.")
    buyer: BuyerIn | None = Field(
        None, description="N1*BY + PER; the PO's buyer when absent and BIG04 names a PO on file."
    )
    itd: ItdIn = Field(default_factory=ItdIn)
    it1: Annotated[list[It1In], Field(min_length=1, max_length=200)]
    tds: TdsIn

    def document(self, currency: str, today: date) -> Invoice810:
        return Invoice810(
            invoice_number=self.big.invoice_number,
            invoice_date=today,
            po_number=self.big.po_number,
            currency=self.currency or currency,
            buyer_name=self.buyer.name if self.buyer else "",
            buyer_id=self.buyer.id if self.buyer else None,
            buyer_email=self.buyer.email if self.buyer else "",
            net_days=self.itd.net_days,
            lines=tuple(
                Line810(
                    quantity=li.quantity,
                    unit=li.unit,
                    unit_price=li.unit_price,
                    product_id=li.product_id,
                )
                for li in self.it1
            ),
            total=self.tds.amount,
        )


class PurchaseOrderIn(RequestModel):
    number: Element = Field(description="The buyer's PO number; invoices name it in BIG04.")
    buyer: BuyerIn
    amount: Amount = Field(description="What may be invoiced against it in all.")
    currency: Currency | None = None
    net_days: NetDays = 30


class PurchaseOrderListQuery(ListQuery):
    number: Text | None = None


class CancelIn(RequestModel):
    reason: Text | None = None


class CreditMemoIn(RequestModel):
    amount: Amount
    reason: Text | None = None


class WriteOffIn(RequestModel):
    reason: Text | None = None


class AllocationIn(RequestModel):
    line: Text = Field(description="The remittance line (`rmt_...-1`).")
    invoice: Text = Field(description="The invoice (`einv_...`) it paid.")
    amount: Amount


class ApplyIn(RequestModel):
    allocations: Annotated[list[AllocationIn], Field(min_length=1, max_length=100)]


class InvoiceListQuery(ListQuery):
    status: EdiInvoiceStatus | None = None
    number: Text | None = None
    po_number: Text | None = None


class RemittanceListQuery(ListQuery):
    status: RemittanceStatus | None = None


class RemittanceGetQuery(RequestModel):
    format: Literal["json", "x12"] = "json"


class BuyerOut(BaseModel):
    name: str
    email: str
    external_id: str | None


class InvoiceLineOut(BaseModel):
    quantity: _MINOR
    unit: str
    unit_price: _MINOR
    product_id: str | None


class CreditMemoOut(BaseModel):
    id: str
    amount: _MINOR
    reason: str | None
    created_at: datetime


class EdiInvoiceOut(BaseModel):
    id: str
    object: Literal["edi_invoice"] = "edi_invoice"
    number: str
    po_number: str | None
    buyer: BuyerOut
    status: EdiInvoiceStatus
    past_due: bool
    dunning_level: int = Field(description="1-2: reminders sent, 3: in collections, 4: defaulted.")
    currency: str
    amount: _MINOR
    credited_amount: _MINOR
    written_off_amount: _MINOR
    applied_amount: _MINOR = Field(description="Remittance money applied to it.")
    amount_due: _MINOR = Field(description="amount - credited - written_off - applied.")
    net_days: int
    behaviour: BuyerBehaviour = Field(description="What the buyer will do (sandbox only).")
    invoice_date: date
    due_date: date
    lines: list[InvoiceLineOut]
    credit_memos: list[CreditMemoOut]
    paid_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, invoice: EdiInvoice) -> EdiInvoiceOut:
        return cls.model_validate(
            {**invoice.model_dump(), "amount_due": invoice.due, "past_due": invoice.past_due},
            strict=False,
        )


class PurchaseOrderOut(BaseModel):
    id: str
    object: Literal["purchase_order"] = "purchase_order"
    number: str
    buyer: BuyerOut
    status: Literal["open", "canceled"]
    currency: str
    amount: _MINOR
    invoiced_amount: _MINOR
    net_days: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, po: PurchaseOrder) -> PurchaseOrderOut:
        return cls.model_validate(po.model_dump(), strict=False)


class AllocationOut(BaseModel):
    invoice_id: str
    invoice_number: str
    order_ref: str = Field(description="The invoice's PO number, else the invoice id.")
    amount: _MINOR
    by: Literal["auto", "manual"]
    at: datetime


class RemittanceLineOut(BaseModel):
    id: str = Field(description="The settlement line's `source_id`.")
    qualifier: Qualifier = Field(description="RMR01: IV (invoice number) or PO.")
    reference: str = Field(description="RMR02 as the buyer sent it ('' when missing).")
    amount: _MINOR = Field(description="RMR04: paid.")
    invoice_amount: _MINOR | None = Field(description="RMR05: what the buyer says was billed.")
    adjustment: _MINOR = Field(description="ADX01: negative, a deduction.")
    adjustment_reason: str | None = Field(description="ADX02: why.")
    applied_amount: _MINOR
    unapplied_amount: _MINOR
    status: Literal["matched", "partially_matched", "unmatched"]
    allocations: list[AllocationOut]


class RemittanceOut(BaseModel):
    id: str
    object: Literal["remittance"] = "remittance"
    trace: str = Field(description="TRN02: the payment's trace number.")
    method: Literal["ACH", "CHK"]
    buyer: BuyerOut
    status: RemittanceStatus
    currency: str
    amount: _MINOR = Field(description="BPR02: deposited.")
    fee: _MINOR = Field(description="The lockbox's fee (account setting `lockbox_fee`).")
    payment_token: str | None = Field(
        description="The buyer's bank account in the vault (`GET /invoicing/v1/tokens/{id}`)."
    )
    applied_amount: _MINOR
    unapplied_amount: _MINOR = Field(description="Cash received not yet applied to invoices.")
    lines: list[RemittanceLineOut]
    received_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, r: Remittance) -> RemittanceOut:
        lines = [
            {
                **line.model_dump(),
                "applied_amount": line.applied,
                "unapplied_amount": line.unapplied,
                "status": "matched"
                if line.unapplied == 0
                else "partially_matched"
                if line.applied
                else "unmatched",
            }
            for line in r.lines
        ]
        return cls.model_validate(
            {
                **r.model_dump(),
                "lines": lines,
                "applied_amount": r.applied,
                "unapplied_amount": r.unapplied,
            },
            strict=False,
        )
