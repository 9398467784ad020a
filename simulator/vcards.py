"""Virtual cards, on the account's clock: the seller's invoices paid by the buyer's AP with
single-use virtual cards, their authorizations, captures, clearing and refunds (the personality
served at `/vcards/v1`).

Same account, clock, RNG, store, events (the outbox, so webhooks) and balance as the native
API: `VcardService` works inside the `ProviderService` transaction scope (`Ctx`), and its jobs
run in time order with the others. Records are finance rows by kind (`vcard_invoice`, `vcard`,
`vcard_payment`): no store of its own. The invoice lifecycle (create, issue, void, credit
notes, write-offs) is the one it shares with the gateway (`simulator.invoices`); what is the
cards' own is here: cards, captures and their allocations, and how a credit note finds them.

Money rules, in one place:
- Issuing an invoice or a card moves no money. A capture is `pending` until it clears
  (`clearing_days` business days later); then each of its allocations (the part of the capture
  that pays one invoice) is a `payment` line on the merchant's balance: gross = the allocation,
  fee = its share of the capture's interchange + scheme fee, net = what the merchant gets.
- A hold (authorization) never exceeds what is left of the card's limit, and a capture never
  exceeds its hold; a card past its expiry, used, or asked for more than its limit allows,
  declines (`CardDeclined`, 402): the decline is recorded on the card, as a network would. A
  single-use card is used up by its capture (the rest of the hold is released); one never
  captured expires on the clock and its invoices are due again.
- A credit note takes money off what is due first; beyond that (the buyer had paid), the card
  is refunded: a negative `refund` line per allocation it reaches, newest first; the merchant
  does not get the fee back.

The buyer's AP (magic value on the customer, else the account's seeded dice, see
`simulator.domain.vcards`) acts on the due date; cards of `automatic` invoices are processed by
the merchant's card processor as soon as they arrive (hold for what the card was issued for,
capture); `manual` invoices wait for the merchant's own authorize and capture calls.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from simulator import vault
from simulator.clock import to_us
from simulator.context import Ctx
from simulator.domain.errors import (
    CardDeclined,
    CardExpired,
    CardOverLimit,
    CardUsed,
    Conflict,
    CurrencyMismatch,
    InvalidAmount,
    NotFound,
)
from simulator.domain.finance import add_business_days, midnight
from simulator.domain.gateway import Customer
from simulator.domain.money import MAX_AMOUNT
from simulator.domain.records import Page
from simulator.domain.vcards import (
    Allocation,
    ApBehaviour,
    Intended,
    Vcard,
    VcardInvoice,
    VcardPayment,
    VcardRefund,
    ap_tag,
    card_fees,
    over_limit,
    split_fee,
)
from simulator.finance import FinanceService
from simulator.invoices import InvoiceKind, InvoiceLifecycle

INVOICE, CARD, PAYMENT = "vcard_invoice", "vcard", "vcard_payment"
PERSONALITY = "vcards"  # the token vault's name for this API
JOB_INVOICE_DUE = "vcard_invoice.due"
JOB_INVOICE_LATE_PAY = "vcard_invoice.late_pay"
JOB_CARD_EXPIRE = "vcard.expire"
JOB_PAYMENT_CLEAR = "vcard_payment.clear"

VcardObject = VcardInvoice | Vcard | VcardPayment


class Core(Protocol):
    """What the cards need of the provider service (`ProviderService` is one)."""

    finance: FinanceService

    def emit(self, ctx: Ctx, type_: str, obj: VcardObject) -> None: ...


def _customer_key(customer: Customer) -> str:
    """Who the AP pays for: the customer's own id, else its email (consolidated cards)."""
    return customer.external_id or customer.email.lower()


class VcardService(InvoiceLifecycle[VcardInvoice]):
    """Invoices (the shared lifecycle, `simulator.invoices`), the AP's cards, the merchant's
    processor, and the clock's jobs."""

    kind = InvoiceKind(
        model=VcardInvoice,
        row=INVOICE,
        id_prefix="vinv",
        job_due=JOB_INVOICE_DUE,
        still_clearing="invoice {invoice_id} has card payments still clearing or cards not "
        "captured yet: credit at most {most} until they are done",
    )

    core: Core

    def __init__(self, core: Core) -> None:
        super().__init__(core)

    # --- invoices: what the cards decide ------------------------------------------------------
    def _behaviour(self, ctx: Ctx, customer: Customer) -> ApBehaviour:
        tagged = ap_tag(customer.email, customer.name)
        if tagged is not None:
            return tagged
        settings = ctx.account.settings
        if settings.default_probability or settings.late_probability:
            roll = ctx.rng.random()
            if roll < settings.default_probability:
                return "over_limit"
            if roll < settings.default_probability + settings.late_probability:
                return "late"
        return "on_time"

    def _owner(self, invoice: VcardInvoice) -> str:
        return _customer_key(invoice.customer)

    def _refund(self, ctx: Ctx, invoice: VcardInvoice, amount: int) -> None:
        """Give `amount` of the invoice's cleared allocations back, newest first."""
        invoice.refunded_amount += amount
        left = amount
        for mine in reversed(invoice.allocations):
            cut = min(left, mine.amount - mine.refunded_amount) if mine.cleared else 0
            if cut <= 0:
                continue
            payment = self.get_payment(ctx, mine.payment_id)
            refund = VcardRefund(
                id=ctx.new_id("vcr"),
                invoice_id=invoice.id,
                allocation_id=mine.id,
                amount=cut,
                created_at=ctx.now,
            )
            mine.refunded_amount += cut
            for theirs in payment.allocations:
                if theirs.id == mine.id:
                    theirs.refunded_amount += cut
            payment.refunds.append(refund)
            payment.refunded_amount += cut
            payment.updated_at = ctx.now
            left -= cut
            self.core.finance.add_line(
                ctx, "refund", invoice.id, refund.id, gross=-cut, currency=payment.currency
            )
            self._save_payment(ctx, payment, "vcard.refunded")
            if left == 0:
                break

    # --- cards: the buyer's AP issues them -----------------------------------------------------
    def issue_card(
        self,
        ctx: Ctx,
        intended: list[tuple[str, int | None]],
        *,
        limit: int | None = None,
        valid_days: int | None = None,
        process: bool = True,
    ) -> Vcard:
        """The buyer's AP issues one single-use card for `amount` of each invoice (None: what is
        collectible). `limit` defaults to their sum; `process=False` keeps the card from the
        merchant's processor even on automatic invoices (it was sent where nobody reads it)."""
        if not intended:
            raise InvalidAmount("a card pays at least one invoice")
        invoices: list[VcardInvoice] = []
        parts: list[Intended] = []
        for invoice_id, asked in intended:
            invoice = self.get_invoice(ctx, invoice_id)
            if any(i.id == invoice.id for i in invoices):
                raise InvalidAmount(f"invoice {invoice_id} is named twice on one card")
            if invoices and invoice.currency != invoices[0].currency:
                raise CurrencyMismatch(invoices[0].currency, invoice.currency)
            if invoices and _customer_key(invoice.customer) != _customer_key(invoices[0].customer):
                raise Conflict("one card pays the invoices of one customer only")
            collectible = invoice.collectible if invoice.status == "open" else 0
            amount = collectible if asked is None else asked
            if amount <= 0 or amount > collectible:
                raise InvalidAmount(
                    f"a card may pay between 1 and {collectible} of invoice {invoice_id}, what "
                    "is collectible (issued, not paid, clearing or on another card)"
                )
            invoices.append(invoice)
            parts.append(Intended(invoice_id=invoice.id, amount=amount))
        total = sum(p.amount for p in parts)
        limit = total if limit is None else limit
        if limit <= 0 or limit > MAX_AMOUNT:
            raise InvalidAmount(f"a card's limit must be between 1 and {MAX_AMOUNT}")
        fees = ctx.account.settings.vcard_fees
        expires_at = ctx.now + timedelta(days=valid_days or fees.card_valid_days)
        card = Vcard(
            id=ctx.new_id("vcard"),
            token=f"vcard_tok_{ctx.rng.token()}",
            last4=f"{ctx.rng.randint(0, 9999):04d}",
            exp_month=expires_at.month,
            exp_year=expires_at.year,
            expires_at=expires_at,
            currency=invoices[0].currency,
            limit=limit,
            invoices=parts,
            customer_key=_customer_key(invoices[0].customer),
            processing=(
                "automatic"
                if process and all(i.processing == "automatic" for i in invoices)
                else "manual"
            ),
            created_at=ctx.now,
            updated_at=ctx.now,
        )
        # The vault keeps each single-use card as an instrument of its own (owner: the card),
        # with the card's own details; it expires with the card, and a capture revokes it.
        card.vault_token = vault.register_instrument(
            ctx,
            personality=PERSONALITY,
            type_="card",
            owner=card.id,
            details={
                "last4": card.last4,
                "exp_month": card.exp_month,
                "exp_year": card.exp_year,
                "expires_at": card.expires_at,
                "network_reference": card.token,
            },
        ).id
        for invoice, part in zip(invoices, parts, strict=True):
            invoice.carded_amount += part.amount
            self._save(ctx, invoice)
        self._save_card(ctx, card, "vcard.issued")
        ctx.tx.schedule(ctx.aid, to_us(expires_at), JOB_CARD_EXPIRE, card.id)
        if card.processing == "automatic":
            self._process(ctx, card)
        return card

    def _process(self, ctx: Ctx, card: Vcard) -> None:
        """The merchant's processor: a hold for what the card was issued for, then a capture;
        over the limit, the attempt is declined and it takes what the limit allows."""
        wanted = sum(p.amount for p in card.invoices)
        if wanted > card.available:
            self.authorize(ctx, card.id, wanted)  # declined, and recorded
            card = self.get_card(ctx, card.id)
        self.authorize(ctx, card.id, min(wanted, card.available))
        self.capture(ctx, card.id, None, None, initiated_by="processor")

    def get_card(self, ctx: Ctx, card_id: str) -> Vcard:
        card = ctx.tx.finance(Vcard, ctx.aid, CARD, card_id)
        if card is None:
            raise NotFound("card", card_id)
        return card

    def list_cards(
        self, ctx: Ctx, *, status: str | None, limit: int, cursor: str | None
    ) -> Page[Vcard]:
        return ctx.tx.finance_page(Vcard, ctx.aid, CARD, status=status, limit=limit, cursor=cursor)

    def _save_card(self, ctx: Ctx, card: Vcard, event: str | None = None) -> None:
        card.updated_at = ctx.now
        ctx.tx.save_finance(
            ctx.aid, CARD, card, ref=card.token, owner=card.customer_key, status=card.status
        )
        if event is not None:
            self.core.emit(ctx, event, card)

    # --- the merchant's processor: authorize, capture ----------------------------------------
    def authorize(self, ctx: Ctx, card_id: str, amount: int) -> Vcard | CardDeclined:
        """A hold on the card. After its expiry, after its capture, or beyond what is left of
        its limit, the card declines: the decline is recorded (`declines`, `vcard.declined`)
        and returned, for the caller to answer 402 with it."""
        card = self.get_card(ctx, card_id)
        if amount <= 0:
            raise InvalidAmount("a hold must be at least 1")
        declined: CardDeclined | None = None
        if card.status == "used":
            declined = CardUsed(f"card {card_id} was captured: a single-use card takes one capture")
        elif card.status == "expired" or ctx.now >= card.expires_at:
            declined = CardExpired(f"card {card_id} expired at {card.expires_at.isoformat()}")
        elif amount > card.available:
            declined = CardOverLimit(
                f"card {card_id} has {card.available} of its {card.limit} limit left: a hold "
                f"of {amount} is declined",
            )
        if declined is not None:
            card.declines += 1
            self._save_card(ctx, card, "vcard.declined")
            return declined
        card.authorized_amount += amount
        self._save_card(ctx, card, "vcard.authorized")
        return card

    def capture(
        self,
        ctx: Ctx,
        card_id: str,
        amount: int | None,
        allocations: list[tuple[str, int]] | None,
        *,
        initiated_by: str = "merchant",
    ) -> VcardPayment:
        """Capture `amount` of the hold (None: all of it), allocated to invoices (None: the
        card's own invoices in order, each up to what it was issued for). The card is used up;
        the rest of the hold and of what it was issued for is released."""
        card = self.get_card(ctx, card_id)
        if card.status != "active" or card.authorized_amount == 0:
            raise Conflict(f"card {card_id} is {card.status} with no hold: nothing to capture")
        amount = card.authorized_amount if amount is None else amount
        if amount <= 0 or amount > card.authorized_amount:
            raise InvalidAmount(f"a capture must be between 1 and {card.authorized_amount}, held")
        # Release what the card was issued for, so the invoices' collectible is what it covers.
        invoices: dict[str, VcardInvoice] = {}
        for part in card.invoices:
            invoice = self.get_invoice(ctx, part.invoice_id)
            invoice.carded_amount -= part.amount
            invoices[invoice.id] = invoice
        split = self._allocate(ctx, card, amount, allocations, invoices)
        interchange, scheme = card_fees(amount, ctx.account.settings.vcard_fees)
        shares = split_fee(interchange + scheme, [a for _, a in split])
        fees = ctx.account.settings.vcard_fees
        clears = add_business_days(ctx.now.date(), fees.clearing_days)
        payment_id = ctx.new_id("vcp")
        payment = VcardPayment(
            id=payment_id,
            card_id=card.id,
            currency=card.currency,
            amount=amount,
            interchange_fee=interchange,
            scheme_fee=scheme,
            fee=interchange + scheme,
            allocations=[
                Allocation(
                    id=ctx.new_id("val"),
                    invoice_id=invoice.id,
                    card_id=card.id,
                    payment_id=payment_id,
                    amount=part,
                    fee=fee,
                )
                for (invoice, part), fee in zip(split, shares, strict=True)
            ],
            initiated_by="processor" if initiated_by == "processor" else "merchant",
            clears_at=max(midnight(clears), ctx.now),
            created_at=ctx.now,
            updated_at=ctx.now,
        )
        for allocation in payment.allocations:
            invoice = invoices[allocation.invoice_id]
            invoice.pending_amount += allocation.amount
            invoice.allocations.append(allocation)
        for invoice in invoices.values():
            self._save(ctx, invoice)
        card.authorized_amount = 0
        card.captured_amount = amount
        card.payment_id = payment.id
        card.apply("capture", ctx.now)
        if card.vault_token is not None:  # spent: the single-use credential is no more
            vault.revoke(ctx, PERSONALITY, card.vault_token)
        self._save_card(ctx, card)
        self._save_payment(ctx, payment, "vcard.captured")
        ctx.tx.schedule(ctx.aid, to_us(payment.clears_at), JOB_PAYMENT_CLEAR, payment.id)
        return payment

    def _allocate(
        self,
        ctx: Ctx,
        card: Vcard,
        amount: int,
        allocations: list[tuple[str, int]] | None,
        invoices: dict[str, VcardInvoice],
    ) -> list[tuple[VcardInvoice, int]]:
        if allocations is None:
            split, left = [], amount
            for part in card.invoices:
                cut = min(left, part.amount, invoices[part.invoice_id].collectible)
                if cut > 0:
                    split.append((invoices[part.invoice_id], cut))
                    left -= cut
            if left:
                raise InvalidAmount(
                    f"a capture of {amount} is more than the card's invoices still collect: "
                    "allocate it explicitly"
                )
            return split
        split = []
        for invoice_id, share in allocations:
            if invoice_id not in invoices:
                invoices[invoice_id] = self.get_invoice(ctx, invoice_id)
            invoice = invoices[invoice_id]
            if invoice.currency != card.currency:
                raise CurrencyMismatch(card.currency, invoice.currency)
            if _customer_key(invoice.customer) != card.customer_key:
                raise Conflict(f"invoice {invoice_id} is another customer's: not this card's")
            if any(i.id == invoice_id for i, _ in split):
                raise InvalidAmount(f"invoice {invoice_id} is allocated twice")
            collectible = invoice.collectible if invoice.status == "open" else 0
            if share <= 0 or share > collectible:
                raise InvalidAmount(
                    f"an allocation to invoice {invoice_id} must be between 1 and "
                    f"{collectible}, what it still collects"
                )
            split.append((invoice, share))
        if sum(p for _, p in split) != amount:
            raise InvalidAmount(f"the allocations must sum to the capture, {amount}")
        return split

    def get_payment(self, ctx: Ctx, payment_id: str) -> VcardPayment:
        payment = ctx.tx.finance(VcardPayment, ctx.aid, PAYMENT, payment_id)
        if payment is None:
            raise NotFound("payment", payment_id)
        return payment

    def list_payments(
        self, ctx: Ctx, *, card_id: str | None, limit: int, cursor: str | None
    ) -> Page[VcardPayment]:
        return ctx.tx.finance_page(
            VcardPayment, ctx.aid, PAYMENT, ref=card_id, limit=limit, cursor=cursor
        )

    def _save_payment(self, ctx: Ctx, payment: VcardPayment, event: str) -> None:
        ctx.tx.save_finance(ctx.aid, PAYMENT, payment, ref=payment.card_id, status=payment.status)
        self.core.emit(ctx, event, payment)

    # --- jobs on the clock --------------------------------------------------------------------
    def job_payment_clear(self, ctx: Ctx, ref: str) -> None:
        payment = ctx.tx.finance(VcardPayment, ctx.aid, PAYMENT, ref)
        if payment is None or payment.status != "pending":
            return
        payment.apply("clear", ctx.now)
        payment.cleared_at = ctx.now
        touched: list[VcardInvoice] = []
        for allocation in payment.allocations:
            allocation.cleared = True
            invoice = self.get_invoice(ctx, allocation.invoice_id)
            invoice.pending_amount -= allocation.amount
            invoice.paid_amount += allocation.amount
            for mine in invoice.allocations:
                if mine.id == allocation.id:
                    mine.cleared = True
            self.core.finance.add_line(
                ctx,
                "payment",
                invoice.id,
                allocation.id,
                gross=allocation.amount,
                fee=allocation.fee,
                currency=payment.currency,
            )
            touched.append(invoice)
        self._save_payment(ctx, payment, "vcard.cleared")
        for invoice in touched:
            paid = invoice.status == "open" and invoice.settle_if_done(ctx.now)
            self._save(ctx, invoice, "invoice.paid" if paid else "invoice.payment_received")

    def job_card_expire(self, ctx: Ctx, ref: str) -> None:
        card = ctx.tx.finance(Vcard, ctx.aid, CARD, ref)
        if card is None or card.status != "active":
            return
        card.apply("expire", ctx.now)
        card.authorized_amount = 0
        self._save_card(ctx, card, "vcard.expired")
        late = ctx.now + timedelta(days=ctx.account.settings.late_payment_days)
        for part in card.invoices:
            invoice = self.get_invoice(ctx, part.invoice_id)
            invoice.carded_amount -= part.amount
            if invoice.status == "open" and invoice.collectible:
                invoice.past_due = True  # the AP sends another card, late
                ctx.tx.schedule(ctx.aid, to_us(late), JOB_INVOICE_LATE_PAY, invoice.id)
                self._save(ctx, invoice, "invoice.overdue")
            else:
                self._save(ctx, invoice)

    def job_invoice_due(self, ctx: Ctx, ref: str) -> None:
        invoice = ctx.tx.finance(VcardInvoice, ctx.aid, INVOICE, ref)
        if invoice is None or invoice.status != "open":
            return
        due = invoice.collectible
        behaviour = invoice.behaviour
        fees = ctx.account.settings.vcard_fees
        if due and behaviour == "on_time":
            self.issue_card(ctx, [(invoice.id, due)])
        elif due and behaviour == "split":
            half = due // 2
            for part in (half, due - half) if half else (due,):
                self.issue_card(ctx, [(invoice.id, part)])
        elif due and behaviour == "consolidated":
            self._consolidated(ctx, invoice)
        elif due and behaviour == "expires":
            self.issue_card(
                ctx, [(invoice.id, due)], valid_days=fees.expiring_card_days, process=False
            )
        elif due and behaviour == "over_limit":
            self.issue_card(ctx, [(invoice.id, due)], limit=over_limit(due))
        elif due and behaviour == "late":
            late = ctx.now + timedelta(days=ctx.account.settings.late_payment_days)
            ctx.tx.schedule(ctx.aid, to_us(late), JOB_INVOICE_LATE_PAY, invoice.id)
        # "default": no card, ever; the invoice goes past due and stays so.
        invoice = self.get_invoice(ctx, invoice.id)
        if invoice.status == "open" and invoice.collectible:
            invoice.past_due = True
            self._save(ctx, invoice, "invoice.overdue")

    def _consolidated(self, ctx: Ctx, invoice: VcardInvoice) -> None:
        """One card for every open invoice of this customer that is due by today, in the same
        currency, that the AP also pays this way."""
        others = ctx.tx.finance_all(
            VcardInvoice, ctx.aid, INVOICE, owner=_customer_key(invoice.customer), status="open"
        )
        batch = [
            i
            for i in others
            if i.behaviour == "consolidated"
            and i.currency == invoice.currency
            and i.collectible
            and i.due_date is not None
            and i.due_date <= ctx.now.date()
        ]
        batch.sort(key=lambda i: (i.due_date, i.created_at, i.number, i.id))
        self.issue_card(ctx, [(i.id, i.collectible) for i in batch])

    def job_invoice_late_pay(self, ctx: Ctx, ref: str) -> None:
        invoice = ctx.tx.finance(VcardInvoice, ctx.aid, INVOICE, ref)
        if invoice is None or invoice.status != "open" or not invoice.collectible:
            return
        self.issue_card(ctx, [(invoice.id, invoice.collectible)])

    JOBS: dict[str, Callable[[VcardService, Ctx, str], None]]


VcardService.JOBS = {
    JOB_INVOICE_DUE: VcardService.job_invoice_due,
    JOB_INVOICE_LATE_PAY: VcardService.job_invoice_late_pay,
    JOB_CARD_EXPIRE: VcardService.job_card_expire,
    JOB_PAYMENT_CLEAR: VcardService.job_payment_clear,
}
