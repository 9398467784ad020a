"""Gateway + net terms, on the account's clock: the seller's invoices, the customers' payments
through a gateway, credit notes and write-offs (the personality served at `/gateway/v1`).

Same account, clock, RNG, store, events (the outbox, so webhooks) and balance as the native
API: `GatewayService` works inside the `ProviderService` transaction scope (`Ctx`), and its
jobs run in time order with the others. The invoice lifecycle (create, issue, void, credit
notes, write-offs) is the one it shares with the virtual cards (`simulator.invoices`); what is
the gateway's own is here: charges, and how a credit note finds the charges to refund.

Money rules, in one place:
- The seller carries the credit risk. Issuing an invoice moves no money; only a customer's
  payment does, as a `payment` line on the merchant's balance (gross = the charge, fee = the
  gateway's fee for that transaction, net = what the merchant gets). A customer who pays late,
  short or never changes what the merchant is paid: nothing comes in.
- A card charge succeeds at once; an ACH debit clears `ach_clearing_days` business days later
  (only then does it count as paid and reach the balance).
- A credit note takes money off what is due first; beyond that (the customer had paid), the
  gateway refunds the customer: a negative `refund` line; the gateway keeps its fee.
- Writing off closes an underpaid invoice (`short_paid`): what was due is no longer owed.
- Settlement batches, payouts and reports are the native ones (`FinanceService`).

Customer behaviour when an invoice falls due (magic value on the customer, else the account's
seeded dice `late_probability` / `default_probability`): `on_time` pays what is due on the due
date; `late` pays it `late_payment_days` later; `partial` pays half on the due date and the rest
late; `short` pays all but `SHORT_PAY_BPS` of it on the due date (the rest stays due until the
seller writes it off or charges it); `default` never pays. Whatever is still due after the due
date's payment makes the invoice past due (`invoice.overdue`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Literal, Protocol

from simulator import vault
from simulator.clock import to_us
from simulator.context import Ctx
from simulator.domain.errors import Conflict, InvalidAmount, NotFound
from simulator.domain.finance import add_business_days, midnight
from simulator.domain.gateway import (
    Charge,
    ChargeRefund,
    Customer,
    CustomerBehaviour,
    Invoice,
    PaymentMethod,
    behaviour_tag,
    gateway_fee,
    short_by,
)
from simulator.domain.records import Page
from simulator.finance import FinanceService
from simulator.invoices import InvoiceKind, InvoiceLifecycle

INVOICE, CHARGE = "invoice", "charge"
JOB_INVOICE_DUE = "invoice.due"
JOB_INVOICE_LATE_PAY = "invoice.late_pay"
JOB_CHARGE_CLEAR = "charge.clear"


class Core(Protocol):
    """What the gateway needs of the provider service (`ProviderService` is one)."""

    finance: FinanceService

    def emit(self, ctx: Ctx, type_: str, obj: Invoice | Charge) -> None: ...


class GatewayService(InvoiceLifecycle[Invoice]):
    """Invoices (the shared lifecycle, `simulator.invoices`), charges, and the clock's jobs."""

    kind = InvoiceKind(
        model=Invoice,
        row=INVOICE,
        id_prefix="inv",
        job_due=JOB_INVOICE_DUE,
        still_clearing="invoice {invoice_id} has charges still clearing: credit at most {most} "
        "until they do",
    )

    core: Core

    def __init__(self, core: Core) -> None:
        super().__init__(core)

    # --- invoices: what the gateway decides -------------------------------------------------
    def _created(self, ctx: Ctx, invoice: Invoice) -> None:
        # The customer's card or bank account on file, as the gateway's vault keeps it.
        customer = invoice.customer
        vault.register_instrument(
            ctx,
            personality="gateway",
            type_="card" if customer.payment_method == "card" else "bank_account",
            owner=customer.external_id or customer.email,
        )

    def _behaviour(self, ctx: Ctx, customer: Customer) -> CustomerBehaviour:
        tagged = behaviour_tag(customer.email, customer.name)
        return tagged if tagged is not None else dice_behaviour(ctx)

    def _owner(self, invoice: Invoice) -> str | None:
        return invoice.customer.external_id

    def _refund(self, ctx: Ctx, invoice: Invoice, amount: int) -> None:
        """Give `amount` of the invoice's cleared charges back, newest charge first."""
        invoice.refunded_amount += amount
        left = amount
        charges = ctx.tx.finance_all(Charge, ctx.aid, CHARGE, ref=invoice.id, status="succeeded")
        for charge in reversed(charges):
            cut = min(left, charge.amount - charge.refunded_amount)
            if cut <= 0:
                continue
            refund = ChargeRefund(id=ctx.new_id("chr"), amount=cut, created_at=ctx.now)
            charge.refunds.append(refund)
            charge.refunded_amount += cut
            charge.updated_at = ctx.now
            left -= cut
            self.core.finance.add_line(
                ctx, "refund", invoice.id, refund.id, gross=-cut, currency=charge.currency
            )
            self._save_charge(ctx, charge, "charge.refunded")
            if left == 0:
                break

    # --- charges ------------------------------------------------------------------------------
    def charge(
        self,
        ctx: Ctx,
        invoice_id: str,
        *,
        amount: int | None,
        method: PaymentMethod | None,
        initiated_by: str = "merchant",
    ) -> Charge:
        """Charge the customer's payment method against an invoice: `amount` of what is
        collectible (None: all of it). A card succeeds at once; ACH clears later."""
        invoice = self.get_invoice(ctx, invoice_id)
        collectible = invoice.collectible
        if invoice.status != "open" or collectible == 0:
            raise Conflict(
                f"invoice {invoice_id} is {invoice.status} with nothing collectible: "
                "nothing to charge"
            )
        amount = collectible if amount is None else amount
        if amount <= 0 or amount > collectible:
            raise InvalidAmount(f"a charge must be between 1 and {collectible}, what is due")
        method = method or invoice.customer.payment_method
        fees = ctx.account.settings.gateway_fees
        charge = Charge(
            id=ctx.new_id("ch"),
            invoice_id=invoice.id,
            method=method,
            currency=invoice.currency,
            amount=amount,
            fee=gateway_fee(amount, method, fees),
            initiated_by="merchant" if initiated_by == "merchant" else "customer",
            created_at=ctx.now,
            updated_at=ctx.now,
        )
        if method == "card":
            self._clear(ctx, invoice, charge)
            return charge
        clears = add_business_days(ctx.now.date(), fees.ach_clearing_days)
        charge.clears_at = max(midnight(clears), ctx.now)
        invoice.pending_amount += amount
        self._save(ctx, invoice)
        self._save_charge(ctx, charge, "charge.pending")
        ctx.tx.schedule(ctx.aid, to_us(charge.clears_at), JOB_CHARGE_CLEAR, charge.id)
        return charge

    def _clear(self, ctx: Ctx, invoice: Invoice, charge: Charge) -> None:
        charge.apply("clear", ctx.now)
        charge.succeeded_at = ctx.now
        invoice.paid_amount += charge.amount
        self.core.finance.add_line(
            ctx,
            "payment",
            invoice.id,
            charge.id,
            gross=charge.amount,
            fee=charge.fee,
            currency=charge.currency,
        )
        self._save_charge(ctx, charge, "charge.succeeded")
        paid = invoice.status == "open" and invoice.settle_if_done(ctx.now)
        self._save(ctx, invoice, "invoice.paid" if paid else "invoice.payment_received")

    def _save_charge(self, ctx: Ctx, charge: Charge, event: str) -> None:
        ctx.tx.save_finance(ctx.aid, CHARGE, charge, ref=charge.invoice_id, status=charge.status)
        self.core.emit(ctx, event, charge)

    def get_charge(self, ctx: Ctx, charge_id: str) -> Charge:
        charge = ctx.tx.finance(Charge, ctx.aid, CHARGE, charge_id)
        if charge is None:
            raise NotFound("charge", charge_id)
        return charge

    def list_charges(
        self, ctx: Ctx, *, invoice_id: str | None, limit: int, cursor: str | None
    ) -> Page[Charge]:
        return ctx.tx.finance_page(
            Charge, ctx.aid, CHARGE, ref=invoice_id, limit=limit, cursor=cursor
        )

    # --- jobs on the clock --------------------------------------------------------------------
    def job_charge_clear(self, ctx: Ctx, ref: str) -> None:
        charge = ctx.tx.finance(Charge, ctx.aid, CHARGE, ref)
        if charge is None or charge.status != "pending":
            return
        invoice = self.get_invoice(ctx, charge.invoice_id)
        invoice.pending_amount -= charge.amount
        self._clear(ctx, invoice, charge)

    def job_invoice_due(self, ctx: Ctx, ref: str) -> None:
        invoice = ctx.tx.finance(Invoice, ctx.aid, INVOICE, ref)
        if invoice is None or invoice.status != "open":
            return
        due = invoice.collectible
        late = ctx.now + timedelta(days=ctx.account.settings.late_payment_days)
        pays_now = {"on_time": due, "partial": due // 2, "short": due - short_by(due)}
        now = pays_now.get(invoice.behaviour, 0)
        if now:
            self.charge(ctx, invoice.id, amount=now, method=None, initiated_by="customer")
            invoice = self.get_invoice(ctx, invoice.id)
        if invoice.behaviour in ("late", "partial"):
            ctx.tx.schedule(ctx.aid, to_us(late), JOB_INVOICE_LATE_PAY, invoice.id)
        if invoice.status == "open" and invoice.collectible:
            invoice.past_due = True
            self._save(ctx, invoice, "invoice.overdue")

    def job_invoice_late_pay(self, ctx: Ctx, ref: str) -> None:
        invoice = ctx.tx.finance(Invoice, ctx.aid, INVOICE, ref)
        if invoice is None or invoice.status != "open" or not invoice.collectible:
            return
        self.charge(ctx, invoice.id, amount=None, method=None, initiated_by="customer")

    JOBS: dict[str, Callable[[GatewayService, Ctx, str], None]]


GatewayService.JOBS = {
    JOB_INVOICE_DUE: GatewayService.job_invoice_due,
    JOB_INVOICE_LATE_PAY: GatewayService.job_invoice_late_pay,
    JOB_CHARGE_CLEAR: GatewayService.job_charge_clear,
}


def dice_behaviour(ctx: Ctx) -> Literal["default", "late", "on_time"]:
    """A customer with no magic value: the account's seeded dice (`default_probability`,
    `late_probability`), rolled only when either is set (so the RNG does not move otherwise)."""
    settings = ctx.account.settings
    if settings.default_probability or settings.late_probability:
        roll = ctx.rng.random()
        if roll < settings.default_probability:
            return "default"
        if roll < settings.default_probability + settings.late_probability:
            return "late"
    return "on_time"
