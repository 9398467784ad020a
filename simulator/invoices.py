"""The seller's invoice lifecycle that the gateway (`/gateway/v1`) and the virtual cards
(`/vcards/v1`) share: create, read, list, issue on shipment, void, credit notes, write-offs.

Why one core: both personalities keep the same `Invoice` (`simulator.domain.gateway`; the cards'
`VcardInvoice` extends it) through the same lifecycle, and two copies of it drifted only in
wording. What really differs is declared by each personality (`InvoiceKind` and three hooks):
the finance row kind and id prefix, who owns an invoice (the customer's id, or its email where
cards consolidate), how a buyer with no magic value behaves, what a credit note that reaches
paid money says while that money is not back yet, and how the money is found and given back
(the gateway's charges; the cards' allocations). The payments themselves (charges; cards,
captures, clearing) stay with each personality.

Money rules: a credit note takes money off what is still collectible first; beyond that it
refunds paid money (never more than is paid and not yet refunded: the rest is still clearing
or on its way, `Conflict`); writing off closes an underpaid invoice (`Invoice.close_short`).
Events: `invoice.created`, `.issued`, `.voided`, `.credited`, `.written_off`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from simulator.clock import to_us
from simulator.context import Ctx
from simulator.domain.errors import Conflict, InvalidAmount
from simulator.domain.gateway import Customer, Invoice
from simulator.domain.models import LineItem
from simulator.domain.money import MAX_AMOUNT, check_currency
from simulator.domain.records import Page
from simulator.finance import FinanceService
from simulator.finance_rows import FinanceRows

InvoiceT = TypeVar("InvoiceT", bound=Invoice)
InvoiceT_contra = TypeVar("InvoiceT_contra", bound=Invoice, contravariant=True)


class InvoiceCore(Protocol[InvoiceT_contra]):
    """What the invoice lifecycle needs of the provider service (`ProviderService` is one)."""

    finance: FinanceService

    def emit(self, ctx: Ctx, type_: str, obj: InvoiceT_contra) -> None: ...


@dataclass(frozen=True, slots=True)
class InvoiceKind(Generic[InvoiceT]):
    """How one personality stores its invoices."""

    model: type[InvoiceT]
    row: str  # the finance row kind (`ctx.tx.save_finance`)
    id_prefix: str
    job_due: str  # the clock job run on an issued term's due date
    # A credit note beyond what its paid money allows, formatted with `invoice_id` and `most`
    # (what it may credit until the rest of the money is back).
    still_clearing: str


class InvoiceLifecycle(ABC, Generic[InvoiceT]):
    """An invoice's life at the seller: the part the gateway and the cards share."""

    kind: InvoiceKind[InvoiceT]
    core: InvoiceCore[InvoiceT]  # a personality names its own, wider `Core`

    def __init__(self, core: InvoiceCore[InvoiceT]) -> None:
        self.core = core
        self.rows = FinanceRows(self.kind.model, self.kind.row, "invoice")

    # --- what each personality decides -------------------------------------------------------
    @abstractmethod
    def _behaviour(self, ctx: Ctx, customer: Customer) -> Any:
        """What the customer does when an invoice falls due (its magic value, else the dice)."""

    @abstractmethod
    def _owner(self, invoice: InvoiceT) -> str | None:
        """Whom the invoice is stored under (`owner` of its finance row)."""

    @abstractmethod
    def _refund(self, ctx: Ctx, invoice: InvoiceT, amount: int) -> None:
        """Give `amount` of the invoice's paid money back (and count it refunded)."""

    def _created(self, ctx: Ctx, invoice: InvoiceT) -> None:
        """A new invoice, before it is saved (e.g. the customer's payment method vaulted)."""

    # --- the lifecycle -------------------------------------------------------------------------
    def create_invoice(
        self,
        ctx: Ctx,
        *,
        number: str,
        customer: Customer,
        amount: int,
        currency: str,
        net_days: int,
        line_items: list[LineItem],
        metadata: dict[str, str],
        **extra: Any,
    ) -> InvoiceT:
        """A draft invoice for an order of `amount`; `extra`: the personality's own fields."""
        check_currency(currency)
        if amount <= 0 or amount > MAX_AMOUNT:
            raise InvalidAmount(f"an invoice amount must be between 1 and {MAX_AMOUNT}")
        invoice = self.kind.model(
            id=ctx.new_id(self.kind.id_prefix),
            number=number,
            customer=customer,
            currency=currency,
            amount=amount,
            net_days=net_days,
            behaviour=self._behaviour(ctx, customer),
            line_items=line_items,
            metadata=metadata,
            created_at=ctx.now,
            updated_at=ctx.now,
            **extra,
        )
        self._created(ctx, invoice)
        self._save(ctx, invoice, "invoice.created")
        return invoice

    def get_invoice(self, ctx: Ctx, invoice_id: str) -> InvoiceT:
        return self.rows.get(ctx, invoice_id)

    def list_invoices(
        self, ctx: Ctx, *, status: str | None, number: str | None, limit: int, cursor: str | None
    ) -> Page[InvoiceT]:
        return self.rows.page(ctx, status=status, ref=number, limit=limit, cursor=cursor)

    def _save(self, ctx: Ctx, invoice: InvoiceT, event: str | None = None) -> None:
        invoice.updated_at = ctx.now
        self.rows.save(
            ctx, invoice, ref=invoice.number, owner=self._owner(invoice), status=invoice.status
        )
        if event is not None:
            self.core.emit(ctx, event, invoice)

    def issue(self, ctx: Ctx, invoice_id: str, amount: int | None) -> InvoiceT:
        """Invoice a shipment (`Invoice.ship`): a new term falls due on the clock."""
        invoice = self.get_invoice(ctx, invoice_id)
        due_at = invoice.ship(amount, ctx.now)
        if due_at is not None:
            ctx.tx.schedule(ctx.aid, to_us(due_at), self.kind.job_due, invoice.id)
        self._save(ctx, invoice, "invoice.issued")
        return invoice

    def void(self, ctx: Ctx, invoice_id: str) -> InvoiceT:
        invoice = self.get_invoice(ctx, invoice_id)
        invoice.apply("void", ctx.now)
        invoice.voided_at = ctx.now
        self._save(ctx, invoice, "invoice.voided")
        return invoice

    def credit(self, ctx: Ctx, invoice_id: str, amount: int) -> InvoiceT:
        """A credit note: off what is collectible first; paid money beyond that goes back
        (`_refund`), never more than is paid and not yet refunded."""
        invoice = self.get_invoice(ctx, invoice_id)
        if amount <= 0 or amount > invoice.creditable:
            raise InvalidAmount(
                f"a credit note must be between 1 and {invoice.creditable}, what is issued and "
                f"not yet credited or written off on invoice {invoice_id}"
            )
        refund = max(0, amount - invoice.collectible)
        refundable = invoice.paid_amount - invoice.refunded_amount
        if refund > refundable:
            most = amount - refund + refundable
            raise Conflict(self.kind.still_clearing.format(invoice_id=invoice_id, most=most))
        invoice.credited_amount += amount
        if refund:
            self._refund(ctx, invoice, refund)
        if invoice.status == "open":
            invoice.settle_if_done(ctx.now)
        self._save(ctx, invoice, "invoice.credited")
        return invoice

    def write_off(self, ctx: Ctx, invoice_id: str, amount: int | None) -> InvoiceT:
        """Close an underpaid invoice: the rest (`amount` must be all of it) is no longer owed
        (not while money for it is on its way, `Invoice.close_short`)."""
        invoice = self.get_invoice(ctx, invoice_id)
        invoice.close_short(amount, ctx.now)
        self._save(ctx, invoice, "invoice.written_off")
        return invoice


__all__ = ["InvoiceCore", "InvoiceKind", "InvoiceLifecycle"]
