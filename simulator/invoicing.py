"""Traditional invoicing, on the account's clock: EDI 810 invoices on the seller's net terms,
the buyers' EDI 820 remittances into the seller's lockbox, cash application (automatic on exact
invoice numbers, by hand otherwise), dunning, credit memos and write-offs (the personality served
at `/invoicing/v1`).

Same account, clock, RNG, store, events (the outbox, so webhooks) and balance as the native API:
`InvoicingService` works inside the `ProviderService` transaction scope (`Ctx`), and its jobs run
in time order with the others. Records are finance rows by kind (`edi_invoice`, `remittance`).

Money rules, in one place:
- The seller carries the credit risk; sending an invoice moves no money.
- A remittance is money deposited: one `payment` line on the merchant's balance per remittance
  line (RMR), gross = what that line paid, the lockbox's fee (account setting `lockbox_fee`) on
  the remittance's first line, net = what the merchant gets. The line names the order (the
  invoice's PO, else the invoice) it was applied to on arrival, or none: unidentified cash.
- Applying cash never moves money: it only says which invoices the deposited money paid.
  For every remittance, applied + unapplied = received; no invoice is applied beyond what is due.
- A credit memo takes money off what is due (never more); a write-off closes the rest.

What the buyer does when an invoice falls due (magic value on the buyer, else the account's
seeded dice `late_probability` / `default_probability`) is `BuyerBehaviour`: on time, late,
half now and half late, short with a deduction reason, batched with its other invoices due
within a week, with a typo'd invoice number, with the PO number instead, with no reference,
or never. Dunning follows the due date: reminders on the day and a week later, collections at
30 days, default at 90 (`DUNNING_DAYS`), each only while money is still due.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from simulator import vault
from simulator.clock import to_us
from simulator.context import Ctx
from simulator.domain.errors import Conflict, CurrencyMismatch, InvalidAmount, NotFound
from simulator.domain.invoicing import (
    DEDUCTION_REASONS,
    DUNNING_DAYS,
    Allocation,
    Buyer,
    BuyerBehaviour,
    CreditMemo,
    EdiInvoice,
    InvoiceLine,
    PurchaseOrder,
    Qualifier,
    Remittance,
    RemittanceLine,
    behaviour_tag,
    short_by,
    typo,
)
from simulator.domain.money import MAX_AMOUNT
from simulator.domain.records import Page
from simulator.domain.x12 import Invoice810, Remittance820, Rmr820, invalid
from simulator.finance import FinanceService
from simulator.finance_rows import FinanceRows
from simulator.gateway import dice_behaviour

INVOICE, REMITTANCE, PURCHASE_ORDER = "edi_invoice", "remittance", "purchase_order"
INVOICES = FinanceRows(EdiInvoice, INVOICE, "invoice")
REMITTANCES = FinanceRows(Remittance, REMITTANCE, "remittance")
PURCHASE_ORDERS = FinanceRows(PurchaseOrder, PURCHASE_ORDER, "purchase order")
JOB_DUE = "edi_invoice.due"
JOB_LATE_PAY = "edi_invoice.late_pay"
JOB_DUNNING = "edi_invoice.dunning"  # ref: "<invoice id>:<days after due>"
BATCH_WINDOW = timedelta(days=7)  # a batching buyer pays what falls due within a week at once


class Core(Protocol):
    finance: FinanceService

    def emit(self, ctx: Ctx, type_: str, obj: EdiInvoice | Remittance | PurchaseOrder) -> None: ...


class InvoicingService:
    def __init__(self, core: Core) -> None:
        self.core = core

    # --- purchase orders ----------------------------------------------------------------------
    def create_purchase_order(
        self, ctx: Ctx, *, number: str, buyer: Buyer, amount: int, currency: str, net_days: int
    ) -> PurchaseOrder:
        if not 1 <= amount <= MAX_AMOUNT:
            raise InvalidAmount(f"a purchase order amount must be between 1 and {MAX_AMOUNT}")
        if self.purchase_order_by_number(ctx, number) is not None:
            raise Conflict(f"purchase order {number!r} is already on file")
        po = PurchaseOrder(
            id=ctx.new_id("po"),
            number=number,
            buyer=buyer,
            currency=currency,
            amount=amount,
            net_days=net_days,
            created_at=ctx.now,
            updated_at=ctx.now,
        )
        self._save_po(ctx, po, "purchase_order.created")
        return po

    def purchase_order_by_number(self, ctx: Ctx, number: str) -> PurchaseOrder | None:
        found = PURCHASE_ORDERS.all(ctx, ref=number)
        return found[0] if found else None

    def get_purchase_order(self, ctx: Ctx, po_id: str) -> PurchaseOrder:
        return PURCHASE_ORDERS.get(ctx, po_id)

    def list_purchase_orders(
        self, ctx: Ctx, *, number: str | None, limit: int, cursor: str | None
    ) -> Page[PurchaseOrder]:
        return PURCHASE_ORDERS.page(ctx, ref=number, limit=limit, cursor=cursor)

    def cancel_purchase_order(self, ctx: Ctx, po_id: str) -> PurchaseOrder:
        po = self.get_purchase_order(ctx, po_id)
        if po.status == "canceled":
            return po
        if po.invoiced_amount:
            raise Conflict(f"purchase order {po_id} is invoiced: credit its invoices instead")
        po.status = "canceled"
        self._save_po(ctx, po, "purchase_order.canceled")
        return po

    def _save_po(self, ctx: Ctx, po: PurchaseOrder, event: str | None) -> None:
        po.updated_at = ctx.now
        PURCHASE_ORDERS.save(ctx, po, ref=po.number, status=po.status)
        if event is not None:
            self.core.emit(ctx, event, po)

    # --- invoices -----------------------------------------------------------------------------
    def create_invoice(self, ctx: Ctx, doc: Invoice810) -> EdiInvoice:
        """An 810 received: checked (the lines add up to TDS; the number is new; a PO on file
        is open, in the same currency and not invoiced beyond its amount; the buyer is the
        document's, else the PO's), then open with its due date `net_days` from today on the
        account's clock."""
        if not 1 <= doc.total <= MAX_AMOUNT:
            raise invalid("TDS01", f"the invoice total must be between 1 and {MAX_AMOUNT}")
        lines_total = sum(line.quantity * line.unit_price for line in doc.lines)
        if lines_total != doc.total:
            raise invalid("TDS01", f"is {doc.total}, the IT1 lines add up to {lines_total}")
        if INVOICES.all(ctx, ref=doc.invoice_number):
            raise Conflict(f"invoice number {doc.invoice_number!r} was already sent")
        po = self.purchase_order_by_number(ctx, doc.po_number) if doc.po_number else None
        if po is not None:
            self._invoice_po(po, doc)
        if doc.buyer_name:
            buyer = Buyer(name=doc.buyer_name, email=doc.buyer_email, external_id=doc.buyer_id)
        elif po is not None:
            buyer = po.buyer
        else:
            raise invalid(
                "N1", "the buyer (N1*BY, PER) is required unless BIG04 names a PO on file"
            )
        if po is not None:
            po.invoiced_amount += doc.total
            self._save_po(ctx, po, None)
        today = ctx.now.date()
        invoice = EdiInvoice(
            id=ctx.new_id("einv"),
            number=doc.invoice_number,
            po_number=doc.po_number,
            buyer=buyer,
            currency=doc.currency,
            amount=doc.total,
            net_days=doc.net_days,
            behaviour=self._behaviour(ctx, buyer),
            invoice_date=today,
            due_date=today + timedelta(days=doc.net_days),
            lines=[
                InvoiceLine(
                    quantity=li.quantity,
                    unit_price=li.unit_price,
                    unit=li.unit,
                    product_id=li.product_id,
                )
                for li in doc.lines
            ],
            created_at=ctx.now,
            updated_at=ctx.now,
        )
        self._save(ctx, invoice, "edi_invoice.created")
        due_at = ctx.now + timedelta(days=doc.net_days)
        ctx.tx.schedule(ctx.aid, to_us(due_at), JOB_DUE, invoice.id)
        return invoice

    @staticmethod
    def _invoice_po(po: PurchaseOrder, doc: Invoice810) -> None:
        if po.status != "open":
            raise Conflict(f"purchase order {po.number!r} is {po.status}: it cannot be invoiced")
        if po.currency != doc.currency:
            raise CurrencyMismatch(po.currency, doc.currency)
        if po.invoiced_amount + doc.total > po.amount:
            raise InvalidAmount(
                f"purchase order {po.number!r} has {po.amount - po.invoiced_amount} left to "
                f"invoice: an invoice of {doc.total} is more"
            )

    def _behaviour(self, ctx: Ctx, buyer: Buyer) -> BuyerBehaviour:
        tagged = behaviour_tag(buyer.email, buyer.name)
        return tagged if tagged is not None else dice_behaviour(ctx)

    def get_invoice(self, ctx: Ctx, invoice_id: str) -> EdiInvoice:
        return INVOICES.get(ctx, invoice_id)

    def list_invoices(
        self,
        ctx: Ctx,
        *,
        status: str | None,
        number: str | None,
        po_number: str | None,
        limit: int,
        cursor: str | None,
    ) -> Page[EdiInvoice]:
        if po_number is not None:
            # A PO has a handful of invoices: all of them, newest first, on one page.
            found = INVOICES.all(ctx, owner=po_number)
            found = [i for i in reversed(found) if status is None or i.status == status]
            found = [i for i in found if number is None or i.number == number]
            return Page(found[:limit], len(found) > limit, None)
        return INVOICES.page(ctx, status=status, ref=number, limit=limit, cursor=cursor)

    def _save(self, ctx: Ctx, invoice: EdiInvoice, event: str | None = None) -> None:
        invoice.updated_at = ctx.now
        INVOICES.save(
            ctx, invoice, ref=invoice.number, owner=invoice.po_number, status=invoice.status
        )
        if event is not None:
            self.core.emit(ctx, event, invoice)

    def credit(self, ctx: Ctx, invoice_id: str, amount: int, reason: str | None) -> EdiInvoice:
        """A credit memo: off what is due, never more (no money moves back)."""
        invoice = self.get_invoice(ctx, invoice_id)
        if invoice.status in ("paid", "written_off") or not 1 <= amount <= invoice.due:
            raise InvalidAmount(
                f"a credit memo must be between 1 and {max(invoice.due, 0)}, what is still due "
                f"on invoice {invoice_id} ({invoice.status})"
            )
        invoice.credited_amount += amount
        invoice.credit_memos.append(
            CreditMemo(id=ctx.new_id("cm"), amount=amount, reason=reason, created_at=ctx.now)
        )
        invoice.settle_if_done(ctx.now)
        self._save(ctx, invoice, "edi_invoice.credited")
        return invoice

    def write_off(self, ctx: Ctx, invoice_id: str, reason: str | None) -> EdiInvoice:
        invoice = self.get_invoice(ctx, invoice_id)
        if invoice.status in ("paid", "written_off") or invoice.due <= 0:
            raise Conflict(
                f"invoice {invoice_id} is {invoice.status} with {invoice.due} due: only an "
                "unpaid invoice can be written off"
            )
        invoice.written_off_amount += invoice.due
        invoice.apply("write_off", ctx.now)
        self._save(ctx, invoice, "edi_invoice.written_off")
        return invoice

    # --- remittances --------------------------------------------------------------------------
    def get_remittance(self, ctx: Ctx, remittance_id: str) -> Remittance:
        return REMITTANCES.get(ctx, remittance_id)

    def list_remittances(
        self, ctx: Ctx, *, status: str | None, limit: int, cursor: str | None
    ) -> Page[Remittance]:
        return REMITTANCES.page(ctx, status=status, limit=limit, cursor=cursor)

    def _save_remittance(self, ctx: Ctx, remittance: Remittance, event: str | None) -> None:
        remittance.restate(ctx.now)
        REMITTANCES.save(
            ctx,
            remittance,
            ref=remittance.trace,
            owner=remittance.buyer.key,
            status=remittance.status,
        )
        if event is not None:
            self.core.emit(ctx, event, remittance)

    def receive(
        self, ctx: Ctx, buyer: Buyer, currency: str, lines: list[tuple[Qualifier, str, int, int]]
    ) -> Remittance:
        """A buyer's payment arrives: deposited (a `payment` line per RMR), then auto-matched
        where a line names an open invoice's number exactly. `lines`: (qualifier, reference,
        paid, deduction) each."""
        rid = ctx.new_id("rmt")
        # The bank account the buyer pays from, as the lockbox's vault keeps it.
        token = vault.register_instrument(
            ctx, personality="invoicing", type_="bank_account", owner=buyer.key
        )
        amount = sum(paid for _, _, paid, _ in lines)
        fee = min(ctx.account.settings.lockbox_fee, amount)
        remittance = Remittance(
            id=rid,
            trace=f"TRN{rid.removeprefix('rmt_').upper()}",
            method="ACH",
            buyer=buyer,
            currency=currency,
            amount=amount,
            fee=fee,
            payment_token=token.id,
            lines=[
                RemittanceLine(
                    id=f"{rid}-{n}",
                    qualifier=qualifier,
                    reference=reference,
                    amount=paid,
                    invoice_amount=paid + deduction if deduction else None,
                    adjustment=-deduction,
                    adjustment_reason=self._reason(ctx) if deduction else None,
                )
                for n, (qualifier, reference, paid, deduction) in enumerate(lines, 1)
            ],
            received_at=ctx.now,
            updated_at=ctx.now,
        )
        for line in remittance.lines:
            invoice = self._exact(ctx, line, currency)
            if invoice is not None:
                self._allocate(ctx, line, invoice, min(line.amount, invoice.due), "auto")
        for n, line in enumerate(remittance.lines):
            order = self._order_of(line)
            self.core.finance.add_line(
                ctx,
                "payment",
                order,
                line.id,
                gross=line.amount,
                fee=fee if n == 0 else 0,
                currency=currency,
            )
        self._save_remittance(ctx, remittance, "remittance.received")
        matched = remittance.unapplied == 0
        self._save_remittance(
            ctx, remittance, "remittance.matched" if matched else "remittance.unmatched"
        )
        return remittance

    def _reason(self, ctx: Ctx) -> str:
        return DEDUCTION_REASONS[ctx.rng.randint(0, len(DEDUCTION_REASONS) - 1)]

    def _exact(self, ctx: Ctx, line: RemittanceLine, currency: str) -> EdiInvoice | None:
        if line.qualifier != "IV" or not line.reference:
            return None
        found = INVOICES.all(ctx, ref=line.reference)
        open_ = [i for i in found if i.currency == currency and i.due > 0]
        return open_[0] if len(open_) == 1 else None

    @staticmethod
    def _order_of(line: RemittanceLine) -> str | None:
        orders = {a.order_ref for a in line.allocations}
        return orders.pop() if len(orders) == 1 else None

    def _allocate(
        self, ctx: Ctx, line: RemittanceLine, invoice: EdiInvoice, amount: int, by: str
    ) -> None:
        if amount <= 0:
            return
        line.allocations.append(
            Allocation(
                invoice_id=invoice.id,
                invoice_number=invoice.number,
                order_ref=invoice.order_ref,
                amount=amount,
                by="auto" if by == "auto" else "manual",
                at=ctx.now,
            )
        )
        invoice.applied_amount += amount
        paid = invoice.settle_if_done(ctx.now)
        self._save(ctx, invoice, "edi_invoice.paid" if paid else "edi_invoice.payment_applied")

    def apply(
        self, ctx: Ctx, remittance_id: str, allocations: list[tuple[str, str, int]]
    ) -> Remittance:
        """Cash application by hand: (remittance line id, invoice id, amount) each. All or
        nothing: no line applied beyond what it has unapplied, no invoice beyond what it has
        due, the same currency."""
        remittance = self.get_remittance(ctx, remittance_id)
        lines = {line.id: line for line in remittance.lines}
        want_line: dict[str, int] = {}
        want_invoice: dict[str, int] = {}
        invoices: dict[str, EdiInvoice] = {}
        for line_id, invoice_id, amount in allocations:
            if line_id not in lines:
                raise NotFound("remittance line", line_id)
            invoice = invoices.get(invoice_id) or self.get_invoice(ctx, invoice_id)
            invoices[invoice_id] = invoice
            if invoice.currency != remittance.currency:
                raise CurrencyMismatch(remittance.currency, invoice.currency)
            want_line[line_id] = want_line.get(line_id, 0) + amount
            want_invoice[invoice_id] = want_invoice.get(invoice_id, 0) + amount
        for line_id, amount in want_line.items():
            if amount > lines[line_id].unapplied:
                raise InvalidAmount(
                    f"line {line_id} has {lines[line_id].unapplied} unapplied: {amount} asked"
                )
        for invoice_id, amount in want_invoice.items():
            invoice = invoices[invoice_id]
            if invoice.status in ("paid", "written_off") or amount > invoice.due:
                raise InvalidAmount(
                    f"invoice {invoice_id} has {max(invoice.due, 0)} due ({invoice.status}): "
                    f"{amount} asked"
                )
        for line_id, invoice_id, amount in allocations:
            self._allocate(ctx, lines[line_id], invoices[invoice_id], amount, "manual")
        self._save_remittance(ctx, remittance, "remittance.matched")
        return remittance

    def x12(self, ctx: Ctx, remittance: Remittance) -> str:
        """The remittance as the buyer's bank sent it: an X12 820."""
        doc = Remittance820(
            trace=remittance.trace,
            method=remittance.method,
            paid_on=remittance.received_at.date(),
            currency=remittance.currency,
            total=remittance.amount,
            payer=remittance.buyer.name,
            lines=tuple(
                Rmr820(
                    qualifier=line.qualifier,
                    reference=line.reference,
                    paid=line.amount,
                    invoice_amount=line.invoice_amount,
                    adjustment=line.adjustment,
                    adjustment_reason=line.adjustment_reason,
                )
                for line in remittance.lines
            ),
        )
        return doc.render()

    # --- jobs on the clock --------------------------------------------------------------------
    def _unpaid(self, ctx: Ctx, ref: str) -> EdiInvoice | None:
        invoice = INVOICES.find(ctx, ref)
        if invoice is None or invoice.status in ("paid", "written_off") or invoice.due <= 0:
            return None
        return invoice

    def _pay(self, ctx: Ctx, invoice: EdiInvoice, amount: int, deduction: int = 0) -> None:
        """The buyer remits `amount` for `invoice`, referenced the way it does."""
        qualifier: Qualifier = "IV"
        reference = invoice.number
        if invoice.behaviour == "typo":
            reference = typo(invoice.number)
        elif invoice.behaviour == "po_reference":
            qualifier, reference = "PO", invoice.po_number or ""
        elif invoice.behaviour == "no_reference":
            reference = ""
        self.receive(
            ctx, invoice.buyer, invoice.currency, [(qualifier, reference, amount, deduction)]
        )

    def job_due(self, ctx: Ctx, ref: str) -> None:
        invoice = self._unpaid(ctx, ref)
        if invoice is None:
            return
        due = invoice.due
        behaviour = invoice.behaviour
        if behaviour == "batched":
            self._pay_batch(ctx, invoice)
        elif behaviour in ("on_time", "typo", "po_reference", "no_reference"):
            self._pay(ctx, invoice, due)
        elif behaviour == "partial":
            self._pay(ctx, invoice, due // 2)
        elif behaviour == "short":
            self._pay(ctx, invoice, due - short_by(due), short_by(due))
        if behaviour in ("late", "partial"):
            late = ctx.now + timedelta(days=ctx.account.settings.late_payment_days)
            ctx.tx.schedule(ctx.aid, to_us(late), JOB_LATE_PAY, invoice.id)
        for days in DUNNING_DAYS:
            ctx.tx.schedule(
                ctx.aid, to_us(ctx.now + timedelta(days=days)), JOB_DUNNING, f"{ref}:{days}"
            )

    def _pay_batch(self, ctx: Ctx, invoice: EdiInvoice) -> None:
        """One remittance for every invoice of the buyer's falling due within a week."""
        horizon = (ctx.now + BATCH_WINDOW).date()
        mine = [
            i
            for i in INVOICES.all(ctx, status="open")
            if i.buyer.key == invoice.buyer.key
            and i.currency == invoice.currency
            and i.due > 0
            and i.due_date <= horizon
        ]
        self.receive(
            ctx, invoice.buyer, invoice.currency, [("IV", i.number, i.due, 0) for i in mine]
        )

    def job_late_pay(self, ctx: Ctx, ref: str) -> None:
        invoice = self._unpaid(ctx, ref)
        if invoice is not None:
            self._pay(ctx, invoice, invoice.due)

    def job_dunning(self, ctx: Ctx, ref: str) -> None:
        invoice_id, _, days = ref.rpartition(":")
        invoice = self._unpaid(ctx, invoice_id)
        if invoice is None:
            return
        step = DUNNING_DAYS.index(int(days)) + 1
        invoice.dunning_level = max(invoice.dunning_level, step)
        if step == 3 and invoice.status == "open":
            invoice.apply("escalate", ctx.now)
            self._save(ctx, invoice, "collections.escalated")
        elif step == 4 and invoice.status == "collections":
            invoice.apply("default", ctx.now)
            self._save(ctx, invoice, "collections.defaulted")
        elif step <= 2:
            self._save(ctx, invoice, "collections.reminder")
        else:
            self._save(ctx, invoice)

    JOBS: dict[str, Callable[[InvoicingService, Ctx, str], None]]


InvoicingService.JOBS = {
    JOB_DUE: InvoicingService.job_due,
    JOB_LATE_PAY: InvoicingService.job_late_pay,
    JOB_DUNNING: InvoicingService.job_dunning,
}
