"""ProviderService: one method per API operation, each inside one account transaction.

A transaction loads the account (its clock and RNG counter), first runs whatever became due on
its clock, then does the operation; the objects, their events (the outbox) and the advanced RNG
counter are committed together, or not at all. API writes use `shared_scope`: the same, with
the COMMIT shared by the operations of one event-loop turn (`Store.grouped`), each still all or
nothing and answered only once committed.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

from simulator import vault
from simulator.clock import WallClock, from_us, to_us, virtual_now
from simulator.context import Ctx, Emitted, Presenter
from simulator.domain import decisions
from simulator.domain.errors import (
    AmountExceedsRefundable,
    ClockWouldGoBackwards,
    Conflict,
    CurrencyMismatch,
    InvalidAmount,
    NotFound,
    ValidationFailed,
)
from simulator.domain.finance import Dispute, Settlement
from simulator.domain.gateway import Charge, Invoice
from simulator.domain.invoicing import EdiInvoice, PurchaseOrder, Remittance
from simulator.domain.models import (
    Account,
    AccountSettings,
    Buyer,
    Capture,
    Checkout,
    DecisionRecord,
    Event,
    LineItem,
    Order,
    Refund,
    Repayment,
    Review,
)
from simulator.domain.money import MAX_AMOUNT, check_currency
from simulator.domain.records import Page, SavedResponse
from simulator.domain.webhooks import WebhookEndpoint
from simulator.finance import FinanceService
from simulator.gateway import GatewayService
from simulator.invoicing import InvoicingService
from simulator.rng import SeededRng
from simulator.stepping import STEP_SECONDS, DueWork, defers_due
from simulator.store.base import Store, Tx
from simulator.vcards import VcardObject, VcardService

# The account clock stays far enough from datetime.max that every TTL and duration added to
# it still fits (an overflow there would be a 500 on the next request).
CLOCK_LIMIT = datetime(9000, 1, 1, tzinfo=UTC)
EVENT_BATCH = 1000


@dataclass(frozen=True)
class Prequalification:
    id: str
    decision: str
    reason: str | None
    estimated_limit: int
    currency: str
    offered_terms: list[str]
    created_at: datetime


class ProviderService:
    def __init__(
        self,
        store: Store,
        wall: WallClock,
        presenter: Presenter,
        *,
        public_url: str,
        on_events: Callable[[Ctx], None] | None = None,
    ) -> None:
        self.store = store
        self.wall = wall
        self.presenter = presenter
        self.public_url = public_url.rstrip("/")
        # Called with each committing context that wrote events (the app wakes the webhook
        # dispatcher with it, which fans the committed events out into deliveries).
        self.on_events = on_events
        # Observers for the metrics (set by `create_app`): a job run, a clock advance (seconds).
        self.on_job: Callable[[str], None] | None = None
        self.on_advance: Callable[[float, bool], None] | None = None
        self.finance = FinanceService(self)
        self.gateway = GatewayService(self)
        self.vcards = VcardService(self)
        self.invoicing = InvoicingService(self)

    # --- transaction scope --------------------------------------------------------------
    def account_now(self, account: Account) -> datetime:
        return virtual_now(self.wall.now(), account.clock_offset_us, account.clock_frozen_at_us)

    @contextmanager
    def scope(
        self, account_id: str, *, step: int | None = None, write: bool = True
    ) -> Iterator[Ctx]:
        """The account transaction. `step`: run at most that many due jobs first (see
        `Ctx.due_left`); `write=False`: a snapshot that takes no lock (for reads; it refuses,
        with `DueWork`, to run due work)."""
        with self.store.transaction(write=write) as tx:
            ctx = self._open(tx, account_id, step=0 if not write and step is None else step)
            yield ctx
            self._close(ctx)

    @contextmanager
    def shared_scope(self, account_id: str) -> Iterator[tuple[Ctx, Awaitable[None]]]:
        """`scope`, committed together with the other operations of this event-loop turn
        (`Store.grouped`): await the second value before answering."""
        with self.store.grouped() as (tx, committed):
            ctx = self._open(tx, account_id)
            yield ctx, committed
            self._close(ctx)

    def _open(self, tx: Tx, account_id: str, *, step: int | None = None) -> Ctx:
        found = tx.account_due(account_id)
        if found is None:
            raise NotFound("account", account_id)
        account, next_due = found
        ctx = Ctx(
            tx,
            account,
            SeededRng(account.id, account.seed, account.rng_counter),
            self.account_now(account),
        )
        ctx.next_due_us = next_due
        if step is None and defers_due():
            step = 0  # an API request: due work runs first, in steps (`simulator.stepping`)
        ctx.due_left = self._run_due(ctx, next_due, ctx.now_us, step)
        if ctx.due_left and step == 0:
            raise DueWork(account_id)
        return ctx

    def _close(self, ctx: Ctx) -> None:
        """The outbox (the events) and the advanced RNG counter go into the same
        transaction."""
        account = ctx.account
        self._write_events(ctx)
        if ctx.rng.counter != account.rng_counter:
            account.rng_counter = ctx.rng.counter
            ctx.tx.save_rng_counter(account.id, account.rng_counter)

    def _write_events(self, ctx: Ctx) -> None:
        """Write the context's events (the outbox) into its transaction."""
        for event in ctx.events:
            ctx.tx.add_event(ctx.aid, event.id, event.type, event.object_id, event.document)
        if ctx.events and self.on_events is not None:
            self.on_events(ctx)
        ctx.events.clear()
        ctx.forget_snapshots()

    @contextmanager
    def scope_for(
        self, kind: Literal["checkout", "order", "webhook_endpoint", "event"], object_id: str
    ) -> Iterator[Ctx]:
        """The scope of the account that holds an object found by id alone (control plane,
        hosted page)."""
        with self.store.transaction() as tx:
            account_id = _account_of(tx, kind, object_id)
        if account_id is None:
            raise NotFound(kind.replace("_", " "), object_id)
        with self.scope(account_id) as ctx:
            yield ctx

    def emit(
        self,
        ctx: Ctx,
        type_: str,
        obj: Buyer
        | Checkout
        | Order
        | WebhookEndpoint
        | Repayment
        | Settlement
        | Dispute
        | Invoice
        | Charge
        | VcardObject
        | EdiInvoice
        | Remittance
        | PurchaseOrder,
    ) -> None:
        # The object is shown once per state: the answer of the operation reuses this snapshot
        # when nothing changed after it (`Ctx.shown`), and the event document is built around
        # its JSON (`Emitted`).
        snap = ctx.snapshot(obj, self.presenter(obj))
        ctx.events.append(Emitted.of(ctx.new_id("evt"), type_, _object_type(obj), ctx.now, snap))

    # --- scheduled work ---------------------------------------------------------------------
    def _run_due(
        self, ctx: Ctx, next_due: int | None, until_us: int, budget: int | None = None
    ) -> bool:
        """Run every job due up to `until_us` in time order, each at its own due time; at most
        `budget` of them when given (0: none), and no more once `STEP_SECONDS` have passed
        (where a step ends changes no result). True when due jobs are left. `next_due`: the
        account's `Tx.next_due`, read by the caller in this transaction."""
        if next_due is None or next_due > until_us:
            return False
        if budget == 0:
            return True
        real_now = ctx.now
        ran = 0
        limit = budget if budget is not None else -1  # -1: no limit
        ends = time.perf_counter() + STEP_SECONDS
        while ran != limit and (limit < 0 or ran == 0 or time.perf_counter() < ends):
            job = ctx.tx.pop_due(ctx.aid, until_us)
            if job is None:
                break
            ran += 1
            ctx.ran_until_us = job.due_us
            if len(ctx.events) >= EVENT_BATCH:
                # A long advance writes its events as it goes, not all at the end: memory
                # stays flat (same transaction, same order).
                self._write_events(ctx)
            ctx.now = from_us(job.due_us)
            if self.on_job is not None:
                self.on_job(job.kind)
            self._run_job(ctx, job.kind, job.ref)
        ctx.now = real_now
        if budget is None:
            return False
        next_due = ctx.tx.next_due(ctx.aid)
        return next_due is not None and next_due <= until_us

    def _run_job(self, ctx: Ctx, kind: str, ref: str) -> None:
        """One due job, by its kind: the core's own, a personality's (its service's `JOBS`
        table) or the token vault's."""
        handler = self._jobs.get(kind)
        if handler is not None:
            handler(self, ctx, ref)
            return
        services: tuple[tuple[Mapping[str, Callable[..., None]], object], ...] = (
            (FinanceService.JOBS, self.finance),
            (GatewayService.JOBS, self.gateway),
            (VcardService.JOBS, self.vcards),
            (InvoicingService.JOBS, self.invoicing),
        )
        for jobs, service in services:
            if (run := jobs.get(kind)) is not None:
                run(service, ctx, ref)
                return
        if (vaulted := vault.JOBS.get(kind)) is not None:
            vaulted(ctx, ref)

    def _job_expire_checkout(self, ctx: Ctx, checkout_id: str) -> None:
        found = ctx.tx.checkout(ctx.aid, checkout_id)
        if found and found[1].status == "open":
            checkout = found[1]
            checkout.apply("expire", ctx.now)
            ctx.tx.save_checkout(ctx.aid, checkout)
            self.emit(ctx, "checkout.expired", checkout)

    def _job_resolve_review(self, ctx: Ctx, order_id: str) -> None:
        found = ctx.tx.order(ctx.aid, order_id)
        if found and found[1].status == "pending_review" and found[1].review:
            order = found[1]
            assert order.review is not None
            self._resolve_review(ctx, order, order.review.outcome or "declined")

    def _job_expire_order(self, ctx: Ctx, order_id: str) -> None:
        found = ctx.tx.order(ctx.aid, order_id)
        if found and found[1].capturable_amount > 0:
            order = found[1]
            released = order.expire(ctx.now)
            self.release(ctx, order.buyer_id, released)
            ctx.tx.save_order(ctx.aid, order)
            self.emit(ctx, "order.expired", order)

    _jobs: ClassVar[dict[str, Callable[[ProviderService, Ctx, str], None]]] = {
        "checkout.expire": _job_expire_checkout,
        "order.review": _job_resolve_review,
        "order.expire": _job_expire_order,
    }

    # --- buyers -------------------------------------------------------------------------------
    def create_buyer(
        self,
        ctx: Ctx,
        *,
        legal_name: str,
        email: str,
        tax_id: str | None = None,
        domain: str | None = None,
        annual_revenue: int = 0,
        years_in_business: int = 0,
        currency: str | None = None,
        external_id: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Buyer:
        currency = check_currency(currency or ctx.account.settings.default_currency)
        if external_id is not None and ctx.tx.buyer_by_external_id(ctx.aid, external_id):
            raise Conflict(f"a buyer with external_id {external_id!r} already exists")
        buyer = Buyer(
            id=ctx.new_id("buy"),
            external_id=external_id,
            legal_name=legal_name,
            email=email,
            tax_id=tax_id,
            domain=domain,
            annual_revenue=annual_revenue,
            years_in_business=years_in_business,
            currency=currency,
            metadata=metadata or {},
            created_at=ctx.now,
            updated_at=ctx.now,
        )
        buyer.credit_line.currency = currency
        ctx.tx.save_buyer(ctx.aid, buyer)
        self.emit(ctx, "buyer.created", buyer)
        return buyer

    def get_buyer(self, ctx: Ctx, buyer_id: str) -> Buyer:
        buyer = ctx.tx.buyer(ctx.aid, buyer_id)
        if buyer is None:
            raise NotFound("buyer", buyer_id)
        return buyer

    def list_buyers(
        self, ctx: Ctx, *, external_id: str | None, limit: int, cursor: str | None
    ) -> Page[Buyer]:
        return ctx.tx.list_buyers(ctx.aid, external_id=external_id, limit=limit, cursor=cursor)

    # --- pre-qualification --------------------------------------------------------------
    def prequalify(
        self,
        ctx: Ctx,
        *,
        buyer_id: str | None,
        facts: decisions.BusinessFacts | None,
        currency: str | None,
    ) -> Prequalification:
        if buyer_id is not None:
            buyer = self.get_buyer(ctx, buyer_id)
            facts = _facts(buyer)
            currency = buyer.currency
        assert facts is not None
        currency = check_currency(currency or ctx.account.settings.default_currency)
        facts = dataclasses.replace(facts, currency=currency)
        decision = decisions.decide(facts, ctx.rng)
        return Prequalification(
            id=ctx.rng.id("pq"),
            decision=decision.outcome,
            reason=decision.reason,
            estimated_limit=decision.limit or 0,
            currency=currency,
            offered_terms=decisions.offered_terms(decision),
            created_at=ctx.now,
        )

    # --- checkouts ----------------------------------------------------------------------------
    def create_checkout(
        self,
        ctx: Ctx,
        *,
        amount: int,
        currency: str | None,
        buyer_id: str | None,
        buyer: dict[str, Any] | None,
        merchant_order_id: str | None,
        line_items: list[LineItem],
        return_url: str,
        cancel_url: str,
        metadata: dict[str, str] | None = None,
    ) -> Checkout:
        currency = check_currency(currency or ctx.account.settings.default_currency)
        _check_amount(amount)
        if buyer_id is not None:
            the_buyer = self.get_buyer(ctx, buyer_id)
        else:
            assert buyer is not None
            existing = (
                ctx.tx.buyer_by_external_id(ctx.aid, buyer["external_id"])
                if buyer.get("external_id")
                else None
            )
            the_buyer = existing or self.create_buyer(
                ctx,
                currency=buyer.get("currency") or currency,
                **{k: v for k, v in buyer.items() if k != "currency"},
            )
        if the_buyer.currency != currency:
            raise CurrencyMismatch(the_buyer.currency, currency)
        checkout_id = ctx.new_id("chk")
        checkout = Checkout(
            id=checkout_id,
            amount=amount,
            currency=currency,
            merchant_order_id=merchant_order_id,
            buyer_id=the_buyer.id,
            line_items=line_items,
            return_url=return_url,
            cancel_url=cancel_url,
            url=f"{self.public_url}/hosted/checkouts/{checkout_id}",
            metadata=metadata or {},
            created_at=ctx.now,
            updated_at=ctx.now,
            expires_at=ctx.now + timedelta(seconds=ctx.account.settings.checkout_ttl),
        )
        ctx.tx.save_checkout(ctx.aid, checkout)
        ctx.tx.schedule(ctx.aid, to_us(checkout.expires_at), "checkout.expire", checkout.id)
        self.emit(ctx, "checkout.created", checkout)
        return checkout

    def get_checkout(self, ctx: Ctx, checkout_id: str) -> Checkout:
        found = ctx.tx.checkout(ctx.aid, checkout_id)
        if found is None:
            raise NotFound("checkout", checkout_id)
        return found[1]

    def approve_checkout(self, ctx: Ctx, checkout_id: str, terms: str) -> Checkout:
        """The buyer accepts on the hosted page with the chosen terms; underwriting decides."""
        checkout = self.get_checkout(ctx, checkout_id)
        if checkout.status != "open":
            checkout.apply("complete", ctx.now)  # raises the 409 for the state it is in
        if terms not in decisions.TERMS:
            raise ValidationFailed(
                [
                    {
                        "path": "body.terms",
                        "type": "enum",
                        "message": f"must be one of {', '.join(decisions.TERMS)}",
                    }
                ]
            )
        buyer = self.get_buyer(ctx, checkout.buyer_id)
        line = buyer.credit_line
        facts = _facts(buyer)
        if line.status == "active" and not decisions.magic_tags(facts):
            decision = decisions.Decision("approved", limit=line.limit)
        else:
            decision = decisions.decide(facts, ctx.rng)
        record = DecisionRecord(
            outcome=decision.outcome,
            reason=decision.reason,
            score=decision.score,
            magic=decision.magic,
        )
        checkout.decision = record
        checkout.terms = terms
        line_before = line.model_dump()

        if decision.outcome == "approved":
            line.apply("approve")
            line.limit = decision.limit if decision.limit is not None else line.limit
            line.decided_at = ctx.now
            if checkout.amount > line.available:
                checkout.decision = record.model_copy(
                    update={"outcome": "declined", "reason": "insufficient_credit"}
                )
                checkout.apply("decline", ctx.now)
            else:
                order = self._new_order(ctx, checkout, buyer, terms, record)
                self._authorize(ctx, order, buyer)
                self._place(ctx, checkout, order)
        elif decision.outcome == "review":
            line.apply("review")
            order = self._new_order(ctx, checkout, buyer, terms, record)
            resolves = (
                ctx.now + timedelta(seconds=ctx.account.settings.review_delay)
                if decision.review_auto
                else None
            )
            order.review = Review(
                reason=decision.reason or "manual_review",
                resolves_at=resolves,
                outcome=decision.review_outcome,
                limit=decision.limit,
            )
            if resolves is not None:
                ctx.tx.schedule(ctx.aid, to_us(resolves), "order.review", order.id)
            self.emit(ctx, "order.pending_review", order)
            self._place(ctx, checkout, order)
        else:
            line.apply("decline")
            line.decided_at = ctx.now
            checkout.apply("decline", ctx.now)
        if line.model_dump() != line_before:
            buyer.updated_at = ctx.now
            ctx.tx.save_buyer(ctx.aid, buyer)
            self.emit(ctx, "buyer.credit_line.updated", buyer)
        ctx.tx.save_checkout(ctx.aid, checkout)
        self.emit(ctx, f"checkout.{checkout.status}", checkout)
        return checkout

    @staticmethod
    def _new_order(
        ctx: Ctx, checkout: Checkout, buyer: Buyer, terms: str, record: DecisionRecord
    ) -> Order:
        return Order(
            id=ctx.new_id("ord"),
            status="pending_review",
            amount=checkout.amount,
            currency=checkout.currency,
            terms=terms,
            buyer_id=buyer.id,
            checkout_id=checkout.id,
            merchant_order_id=checkout.merchant_order_id,
            line_items=checkout.line_items,
            metadata=checkout.metadata,
            decision=record,
            created_at=ctx.now,
            updated_at=ctx.now,
        )

    @staticmethod
    def _place(ctx: Ctx, checkout: Checkout, order: Order) -> None:
        ctx.tx.save_order(ctx.aid, order)
        checkout.order_id = order.id
        checkout.apply("complete", ctx.now)

    def decline_checkout(self, ctx: Ctx, checkout_id: str) -> Checkout:
        """The buyer turns the offer down (or leaves) on the hosted page."""
        checkout = self.get_checkout(ctx, checkout_id)
        checkout.apply("decline", ctx.now)
        checkout.decision = DecisionRecord(outcome="declined", reason="buyer_declined")
        ctx.tx.save_checkout(ctx.aid, checkout)
        self.emit(ctx, "checkout.declined", checkout)
        return checkout

    # --- orders -------------------------------------------------------------------------------
    def _authorize(self, ctx: Ctx, order: Order, buyer: Buyer) -> None:
        buyer.credit_line.hold(order.amount)
        order.apply("approve", ctx.now)
        order.authorized_at = ctx.now
        order.authorization_expires_at = ctx.now + timedelta(
            seconds=ctx.account.settings.authorization_ttl
        )
        ctx.tx.schedule(ctx.aid, to_us(order.authorization_expires_at), "order.expire", order.id)
        # The buyer's credit line reference is the payment token of embedded credit.
        vault.register_instrument(ctx, personality="native", type_="credit_line", owner=buyer.id)
        self.emit(ctx, "order.authorized", order)

    def release(self, ctx: Ctx, buyer_id: str, amount: int) -> None:
        if amount <= 0:
            return
        buyer = self.get_buyer(ctx, buyer_id)
        buyer.credit_line.release(amount)
        buyer.updated_at = ctx.now
        ctx.tx.save_buyer(ctx.aid, buyer)
        self.emit(ctx, "buyer.credit_line.updated", buyer)

    def _resolve_review(self, ctx: Ctx, order: Order, outcome: str) -> None:
        buyer = self.get_buyer(ctx, order.buyer_id)
        line = buyer.credit_line
        assert order.review is not None
        if outcome == "approved":
            if line.status != "active" or order.review.limit is not None:
                line.apply("approve")
                line.limit = max(line.limit, order.review.limit or 0) or (
                    decisions.MIN_LIMIT_MAJOR * decisions.minor_per_major(buyer.currency)
                )
                line.decided_at = ctx.now
            if order.amount > line.available:
                order.decision = order.decision.model_copy(
                    update={"outcome": "declined", "reason": "insufficient_credit"}
                )
                order.apply("decline", ctx.now)
                self.emit(ctx, "order.declined", order)
            else:
                order.decision = order.decision.model_copy(update={"outcome": "approved"})
                self._authorize(ctx, order, buyer)
        else:
            if line.status == "in_review":
                line.apply("decline")
                line.decided_at = ctx.now
            order.decision = order.decision.model_copy(
                update={"outcome": "declined", "reason": order.decision.reason or "credit_declined"}
            )
            order.apply("decline", ctx.now)
            self.emit(ctx, "order.declined", order)
        buyer.updated_at = ctx.now
        ctx.tx.save_buyer(ctx.aid, buyer)
        self.emit(ctx, "buyer.credit_line.updated", buyer)
        ctx.tx.save_order(ctx.aid, order)

    def review_order(
        self, ctx: Ctx, order_id: str, decision: Literal["approve", "decline"]
    ) -> Order:
        """The underwriter decides a pending review now (control plane)."""
        order = self.get_order(ctx, order_id)
        if order.status != "pending_review" or order.review is None:
            order.apply(decision, ctx.now)  # raises the 409
        self._resolve_review(ctx, order, "approved" if decision == "approve" else "declined")
        return order

    def get_order(self, ctx: Ctx, order_id: str) -> Order:
        found = ctx.tx.order(ctx.aid, order_id)
        if found is None:
            raise NotFound("order", order_id)
        return found[1]

    def list_orders(
        self,
        ctx: Ctx,
        *,
        status: str | None,
        merchant_order_id: str | None,
        buyer_id: str | None,
        limit: int,
        cursor: str | None,
    ) -> Page[Order]:
        return ctx.tx.list_orders(
            ctx.aid,
            status=status,
            merchant_order_id=merchant_order_id,
            buyer_id=buyer_id,
            limit=limit,
            cursor=cursor,
        )

    def update_order(
        self,
        ctx: Ctx,
        order_id: str,
        *,
        amount: int | None = None,
        merchant_order_id: str | None = None,
        line_items: list[LineItem] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Order:
        order = self.get_order(ctx, order_id)
        order.apply("update", ctx.now)
        if amount is not None and amount != order.amount:
            _check_amount(amount)
            if order.status == "authorized":
                buyer = self.get_buyer(ctx, order.buyer_id)
                if amount > order.amount:
                    buyer.credit_line.hold(amount - order.amount)
                else:
                    buyer.credit_line.release(order.amount - amount)
                buyer.updated_at = ctx.now
                ctx.tx.save_buyer(ctx.aid, buyer)
                self.emit(ctx, "buyer.credit_line.updated", buyer)
            order.amount = amount
        if merchant_order_id is not None:
            order.merchant_order_id = merchant_order_id
        if line_items is not None:
            order.line_items = line_items
        if metadata is not None:
            order.metadata = metadata
        ctx.tx.save_order(ctx.aid, order)
        self.emit(ctx, "order.updated", order)
        return order

    def capture(
        self, ctx: Ctx, order_id: str, *, amount: int | None, currency: str | None, final: bool
    ) -> tuple[Order, Capture]:
        order = self.get_order(ctx, order_id)
        if currency is not None:
            check_currency(currency)
        capture = Capture(
            id=ctx.rng.id("cap"),
            amount=order.capturable_amount if amount is None else amount,
            currency=currency or order.currency,
            final=final,
            created_at=ctx.now,
        )
        released = order.capture(capture)
        self.release(ctx, order.buyer_id, released)
        self.finance.on_capture(ctx, order, capture)
        ctx.tx.save_order(ctx.aid, order)
        self.emit(ctx, "order.captured", order)
        return order, capture

    def refund(
        self,
        ctx: Ctx,
        order_id: str,
        *,
        amount: int | None,
        currency: str | None,
        reason: str | None,
    ) -> tuple[Order, Refund]:
        order = self.get_order(ctx, order_id)
        if currency is not None:
            check_currency(currency)
        # Money a dispute holds (open or lost) is already on its way back to the buyer.
        disputed = self.finance.disputed_amount(ctx, order.id) if order.refundable_amount else 0
        refundable = order.refundable_amount - disputed
        if disputed and (refundable <= 0 or (amount is not None and amount > refundable)):
            raise AmountExceedsRefundable(
                f"{'nothing' if refundable <= 0 else refundable} is left to refund: "
                f"{disputed} of what was captured is disputed"
            )
        refund = Refund(
            id=ctx.rng.id("ref"),
            amount=refundable if amount is None else amount,
            currency=currency or order.currency,
            reason=reason,
            created_at=ctx.now,
        )
        order.refund(refund)
        self.release(ctx, order.buyer_id, self.finance.on_refund(ctx, order, refund))
        ctx.tx.save_order(ctx.aid, order)
        self.emit(ctx, "order.refunded", order)
        return order, refund

    def cancel_order(self, ctx: Ctx, order_id: str) -> Order:
        order = self.get_order(ctx, order_id)
        released = order.cancel(ctx.now)
        self.release(ctx, order.buyer_id, released)
        ctx.tx.save_order(ctx.aid, order)
        self.emit(ctx, "order.canceled", order)
        return order

    def list_events(
        self,
        ctx: Ctx,
        *,
        type_: str | None,
        object_id: str | None,
        created_gte: datetime | None,
        created_lt: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> Page[Event]:
        return ctx.tx.list_events(
            ctx.aid,
            type_=type_,
            object_id=object_id,
            created_gte=created_gte,
            created_lt=created_lt,
            limit=limit,
            cursor=cursor,
        )

    def get_event(self, ctx: Ctx, event_id: str) -> Event:
        event = ctx.tx.event(ctx.aid, event_id)
        if event is None:
            raise NotFound("event", event_id)
        return event

    # --- idempotency records ---------------------------------------------------------------
    def saved_response(self, ctx: Ctx, key: str) -> SavedResponse | None:
        return ctx.tx.saved_response(ctx.aid, key, ctx.now_us)

    def save_response(self, ctx: Ctx, key: str, saved: SavedResponse) -> None:
        ttl = timedelta(seconds=ctx.account.settings.idempotency_ttl)
        ctx.tx.save_response(ctx.aid, key, saved, ctx.now_us, to_us(ctx.now + ttl))

    # --- clock and account control ---------------------------------------------------------
    def advance_clock(self, ctx: Ctx, *, by: timedelta | None, to: datetime | None) -> datetime:
        """Move the account clock forward, running everything due on the way in time order
        (in one transaction: `simulator.stepping.advance_clock` does it in bounded steps)."""
        target = self.advance_target(ctx, by=by, to=to)
        self.advance_step(ctx, target, None)
        return target

    def advance_target(self, ctx: Ctx, *, by: timedelta | None, to: datetime | None) -> datetime:
        """Where an advance by `by` or to `to` takes the clock (checked, in UTC)."""
        if by is not None and by > CLOCK_LIMIT - ctx.now:
            raise _beyond_clock_limit("body.by")
        target = ctx.now + by if by is not None else to
        assert target is not None
        if target < ctx.now:
            raise ClockWouldGoBackwards(
                f"the account clock is at {ctx.now.isoformat()}; {target.isoformat()} is earlier"
            )
        if target > CLOCK_LIMIT:
            raise _beyond_clock_limit("body.to")
        return target.astimezone(UTC)  # `to` may carry any offset; the clock speaks UTC

    def advance_step(self, ctx: Ctx, target: datetime, budget: int | None) -> bool:
        """Run at most `budget` jobs due up to `target` (all when None) and move the clock to
        the last one's time, or to `target` once none is left (True). The clock never goes
        back, and between steps it reads a time whose due work is all done."""
        left = self._run_due(ctx, ctx.tx.next_due(ctx.aid), to_us(target), budget)
        if left:
            assert ctx.ran_until_us is not None
            self._set_clock(ctx, from_us(ctx.ran_until_us), finished=False)
            return False
        ctx.tx.expire_responses(ctx.aid, to_us(target))
        self._set_clock(ctx, target, finished=True)
        return True

    def _set_clock(self, ctx: Ctx, when: datetime, *, finished: bool) -> None:
        if self.on_advance is not None:  # seconds per step; one advance when it is finished
            self.on_advance(max(0, to_us(when) - ctx.now_us) / 1_000_000, finished)
        if when <= ctx.now:
            return
        account = ctx.account
        if account.clock_frozen_at_us is not None:
            account.clock_frozen_at_us = to_us(when)
        else:
            account.clock_offset_us += to_us(when) - ctx.now_us
        ctx.tx.save_account(account)
        ctx.now = when

    def freeze_clock(self, ctx: Ctx, frozen: bool) -> datetime:
        account = ctx.account
        if frozen and account.clock_frozen_at_us is None:
            account.clock_frozen_at_us = ctx.now_us
        elif not frozen and account.clock_frozen_at_us is not None:
            account.clock_offset_us = account.clock_frozen_at_us - to_us(self.wall.now())
            account.clock_frozen_at_us = None
        ctx.tx.save_account(account)
        return ctx.now

    def set_seed(self, ctx: Ctx, seed: int) -> Account:
        """A new seed restarts the account's random sequence from its beginning."""
        ctx.account.seed = seed
        ctx.rng = SeededRng(ctx.account.id, seed, 0)
        ctx.account.rng_counter = 0
        ctx.account.fresh_ids = False  # the sequence restarts: drawn ids may be taken
        ctx.tx.save_account(ctx.account)
        return ctx.account

    def reset(self, ctx: Ctx) -> Account:
        """Forget every object; keep id, key, seed and settings; restart RNG and clock."""
        ctx.tx.wipe_account(ctx.aid)
        account = ctx.account
        account.rng_counter = 0
        account.clock_offset_us = 0
        account.clock_frozen_at_us = None
        account.fresh_ids = True  # nothing of the account is stored any more
        ctx.rng = SeededRng(account.id, account.seed, 0)
        ctx.events.clear()
        ctx.tx.save_account(account)
        return account

    def dump_head(self, ctx: Ctx) -> dict[str, Any]:
        """The `account` part of a dump (the rest streams from the store)."""
        return _public_account(ctx.account, ctx.now)

    def create_account(
        self,
        tx: Tx,
        rng: SeededRng,
        *,
        name: str,
        seed: int | None,
        settings: AccountSettings | None = None,
    ) -> Account:
        account = Account(
            id=rng.id("acct"),
            name=name,
            api_key=f"sk_test_{rng.token(32)}",
            seed=seed if seed is not None else rng.randint(0, 2**31 - 1),
            settings=settings or AccountSettings(),
            fresh_ids=True,
            created_at=self.wall.now(),
        )
        tx.save_account(account)
        return account


# The event `object_type` of each class (a class attribute or the class's name), found once:
# `getattr` of a name a pydantic model lacks goes through its `__getattr__` and an exception,
# microseconds on every event otherwise.
_OBJECT_TYPES: dict[type, str] = {}


def _object_type(obj: object) -> str:
    kind = _OBJECT_TYPES.get(type(obj))
    if kind is None:
        kind = (
            "webhook_endpoint"
            if isinstance(obj, WebhookEndpoint)
            else getattr(obj, "OBJECT_TYPE", None) or type(obj).__name__.lower()
        )
        _OBJECT_TYPES[type(obj)] = kind
    return kind


def _account_of(tx: Tx, kind: str, object_id: str) -> str | None:
    if kind == "webhook_endpoint":
        return tx.webhook_endpoint_account(object_id)
    if kind == "event":
        return tx.event_account(object_id)
    found = tx.checkout(None, object_id) if kind == "checkout" else tx.order(None, object_id)
    return None if found is None else found[0]


def _public_account(account: Account, now: datetime) -> dict[str, Any]:
    return {
        "id": account.id,
        "name": account.name,
        "seed": account.seed,
        # The same RFC 3339 form ("...Z") as every other timestamp the API sends.
        "clock": {
            "now": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "frozen": account.clock_frozen_at_us is not None,
        },
        "settings": account.settings.model_dump(),
    }


def _facts(buyer: Buyer) -> decisions.BusinessFacts:
    return decisions.BusinessFacts(
        currency=buyer.currency,
        legal_name=buyer.legal_name,
        email=buyer.email,
        annual_revenue=buyer.annual_revenue,
        years_in_business=buyer.years_in_business,
        tax_id=buyer.tax_id,
        domain=buyer.domain,
    )


def _beyond_clock_limit(path: str) -> ValidationFailed:
    return ValidationFailed(
        [
            {
                "path": path,
                "type": "clock_limit",
                "message": f"the account clock cannot go past {CLOCK_LIMIT.isoformat()}",
            }
        ]
    )


def _check_amount(amount: int) -> None:
    if amount <= 0 or amount > MAX_AMOUNT:
        raise InvalidAmount(f"amount must be between 1 and {MAX_AMOUNT} minor units")
