"""Money after the checkout, on the account's clock: repayment schedules and buyer outcomes,
settlement batches and payouts, disputes, and injected settlement-report drift.

`FinanceService` works inside the `ProviderService` transaction scope (`Ctx`): the core calls
it when a capture or refund happens, and the clock runs its jobs in time order with the others
(`ProviderService._run_due`). Everything it writes, events included, commits with the operation
that caused it.

Money rules, in one place:
- A capture owes the provider its amount in repayments (one per term's due date, installments
  split exactly) and puts a `capture` line (gross, discount fee, net) on the merchant's balance.
- A refund reduces what the buyer still owes (latest installments first), gives the buyer's
  credit back, and puts a negative `refund` line on the balance (the discount fee is kept).
- Buyer defaults never touch the merchant's balance: the provider carries the credit risk.
- A dispute debits its amount from the balance when opened (`dispute` line); winning puts it
  back (`dispute_reversal`); losing leaves it debited and relieves the buyer like a refund.
- Each business day's lines (weekend lines join Monday's) form one settlement per currency at
  the end of that day, paid `settlement_delay_days` business days later. Its amount is the sum
  of its lines' `net`; a negative total is carried forward by a pair of `carry_forward` lines.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Literal, Protocol

from pydantic import Field

from simulator.clock import to_us
from simulator.context import Ctx
from simulator.domain.errors import Conflict, InvalidAmount, NotFound
from simulator.domain.finance import (
    DRIFT_KINDS,
    TERM_DAYS,
    Dispute,
    DriftInjection,
    DriftKind,
    DriftSettings,
    LineType,
    Settlement,
    SettlementLine,
    add_business_days,
    behaviour_tag,
    business_day_on_or_after,
    evidence_outcome,
    fee_for,
    midnight,
    settle,
    split_installments,
)
from simulator.domain.models import Buyer, Capture, Checkout, Entity, Order, Refund, Repayment
from simulator.domain.records import Page


class Core(Protocol):
    """What finance needs of the provider service (`ProviderService` is one): a Protocol, so
    that finance and the service it works for do not import each other."""

    def get_buyer(self, ctx: Ctx, buyer_id: str) -> Buyer: ...
    def get_order(self, ctx: Ctx, order_id: str) -> Order: ...
    def release(self, ctx: Ctx, buyer_id: str, amount: int) -> None: ...
    def emit(
        self, ctx: Ctx, type_: str, obj: Buyer | Checkout | Order | Repayment | Settlement | Dispute
    ) -> None: ...


LINE, SETTLEMENT, DISPUTE, DRIFT, INJECTION = (
    "line",
    "settlement",
    "dispute",
    "drift",
    "drift_injection",
)
JOB_REPAYMENT_DUE = "repayment.due"
JOB_REPAYMENT_LATE_PAID = "repayment.late_paid"
JOB_REPAYMENT_DEFAULT = "repayment.default"
JOB_BATCH = "settlement.batch"
JOB_PAYOUT = "settlement.pay"
JOB_DISPUTE_DEADLINE = "dispute.deadline"
JOB_DISPUTE_DECIDE = "dispute.decide"


class DriftState(Entity):
    """The account's drift switches, and true lines a `late_line` drift holds back from one
    report for the next one (stored as one document per account)."""

    id: str
    settings: DriftSettings
    held_back: list[SettlementLine] = Field(default_factory=list)


class FinanceService:
    def __init__(self, core: Core) -> None:
        self.core = core

    # --- captures and refunds (called by the core) --------------------------------------------
    def on_capture(self, ctx: Ctx, order: Order, capture: Capture) -> None:
        self._schedule_repayments(ctx, order, capture)
        bps = ctx.account.settings.discount_fee_bps.get(order.terms, 0)
        fee = fee_for(capture.amount, bps)
        self.add_line(
            ctx,
            "capture",
            order.id,
            capture.id,
            gross=capture.amount,
            fee=fee,
            currency=capture.currency,
        )

    def on_refund(self, ctx: Ctx, order: Order, refund: Refund) -> int:
        """Returns the credit to give back to the buyer: what the refund took off repayments
        still owed (a refund of money already repaid is the provider's to return)."""
        self.add_line(
            ctx, "refund", order.id, refund.id, gross=-refund.amount, currency=refund.currency
        )
        return self._relieve(ctx, order, refund.amount)

    def _relieve(self, ctx: Ctx, order: Order, amount: int) -> int:
        """Take `amount` off the order's open repayments, latest first; returns how much."""
        left = amount
        for repayment in sorted(order.repayments, key=lambda r: r.due_at, reverse=True):
            if left == 0:
                break
            if not repayment.open or repayment.amount == 0:
                continue
            cut = min(left, repayment.amount)
            repayment.amount -= cut
            left -= cut
            repayment.updated_at = ctx.now
            if repayment.amount == 0:
                repayment.apply("cancel", ctx.now)
        return amount - left

    # --- repayments ---------------------------------------------------------------------------
    def _schedule_repayments(self, ctx: Ctx, order: Order, capture: Capture) -> None:
        days = TERM_DAYS.get(order.terms, (30,))
        buyer = self.core.get_buyer(ctx, order.buyer_id)
        tagged = behaviour_tag(buyer.email, buyer.legal_name)
        settings = ctx.account.settings
        for n, (amount, offset) in enumerate(
            zip(split_installments(capture.amount, len(days)), days, strict=True), start=1
        ):
            behaviour = tagged
            if behaviour is None:
                behaviour = "on_time"
                if settings.default_probability or settings.late_probability:
                    roll = ctx.rng.random()
                    if roll < settings.default_probability:
                        behaviour = "default"
                    elif roll < settings.default_probability + settings.late_probability:
                        behaviour = "late"
            repayment = Repayment(
                id=ctx.new_id("rpy"),
                order_id=order.id,
                buyer_id=order.buyer_id,
                capture_id=capture.id,
                terms=order.terms,
                installment=n,
                installments=len(days),
                amount=amount,
                original_amount=amount,
                currency=order.currency,
                due_at=ctx.now + timedelta(days=offset),
                behaviour=behaviour,
                created_at=ctx.now,
                updated_at=ctx.now,
            )
            order.repayments.append(repayment)
            ref = f"{order.id}/{repayment.id}"
            ctx.tx.schedule(ctx.aid, to_us(repayment.due_at), JOB_REPAYMENT_DUE, ref)

    def _repayment_job(
        self, ctx: Ctx, ref: str, step: Callable[[Ctx, Order, Repayment], str | None]
    ) -> None:
        # ref: "<order id>/<repayment id>" (repayments live in their order's document)
        order_id, _, repayment_id = ref.partition("/")
        found = ctx.tx.order(ctx.aid, order_id)
        if found is None:
            return
        order = found[1]
        repayment = next((r for r in order.repayments if r.id == repayment_id), None)
        if repayment is None or not repayment.open:
            return
        event = step(ctx, order, repayment)
        repayment.updated_at = ctx.now
        ctx.tx.save_order(ctx.aid, order)
        if event is not None:
            self.core.emit(ctx, event, repayment)

    def _due(self, ctx: Ctx, order: Order, repayment: Repayment) -> str | None:
        settings = ctx.account.settings
        if repayment.behaviour == "on_time":
            return self._paid(ctx, order, repayment)
        repayment.apply("miss", ctx.now)
        ref = f"{order.id}/{repayment.id}"
        if repayment.behaviour == "late":
            repayment.late_fee = fee_for(repayment.amount, settings.late_fee_bps)
            at = ctx.now + timedelta(days=settings.late_payment_days)
            ctx.tx.schedule(ctx.aid, to_us(at), JOB_REPAYMENT_LATE_PAID, ref)
        else:
            at = ctx.now + timedelta(days=settings.default_after_days)
            ctx.tx.schedule(ctx.aid, to_us(at), JOB_REPAYMENT_DEFAULT, ref)
        return "buyer.payment.late"

    def _paid(self, ctx: Ctx, order: Order, repayment: Repayment) -> str:
        repayment.apply("pay", ctx.now)
        repayment.paid_at = ctx.now
        self.core.release(ctx, order.buyer_id, repayment.amount)
        return "buyer.payment.succeeded"

    def _defaulted(self, ctx: Ctx, order: Order, repayment: Repayment) -> str:
        repayment.apply("default", ctx.now)
        repayment.defaulted_at = ctx.now
        buyer = self.core.get_buyer(ctx, order.buyer_id)
        if buyer.credit_line.status != "suspended":
            buyer.credit_line.apply("suspend")
            buyer.updated_at = ctx.now
            ctx.tx.save_buyer(ctx.aid, buyer)
            self.core.emit(ctx, "buyer.credit_line.updated", buyer)
        return "buyer.payment.defaulted"

    def job_repayment_due(self, ctx: Ctx, ref: str) -> None:
        self._repayment_job(ctx, ref, self._due)

    def job_repayment_late_paid(self, ctx: Ctx, ref: str) -> None:
        self._repayment_job(ctx, ref, self._paid)

    def job_repayment_default(self, ctx: Ctx, ref: str) -> None:
        self._repayment_job(ctx, ref, self._defaulted)

    def buyer_repayments(self, ctx: Ctx, buyer_id: str) -> tuple[list[Repayment], int]:
        """The buyer's open repayments across its orders, soonest first, and the total it
        defaulted on."""
        open_: list[Repayment] = []
        defaulted = 0
        cursor: str | None = None
        while True:
            page = ctx.tx.list_orders(
                ctx.aid,
                status=None,
                merchant_order_id=None,
                buyer_id=buyer_id,
                limit=100,
                cursor=cursor,
            )
            for order in page.items:
                for repayment in order.repayments:
                    if repayment.open:
                        open_.append(repayment)
                    elif repayment.status == "defaulted":
                        defaulted += repayment.amount
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        return sorted(open_, key=lambda r: (r.due_at, r.id)), defaulted

    # --- balance lines and settlements --------------------------------------------------------
    def add_line(
        self,
        ctx: Ctx,
        type_: LineType,
        order_id: str | None,
        source_id: str,
        *,
        gross: int,
        currency: str,
        fee: int = 0,
        batch_date: date | None = None,
        schedule: bool = True,
    ) -> SettlementLine:
        """A movement of the merchant's balance (the gateway personality's charges and refunds
        too), paid out in the batch of `batch_date` (its business day by default)."""
        line = SettlementLine(
            id=ctx.new_id("sln"),
            type=type_,
            order_id=order_id,
            source_id=source_id,
            gross=gross,
            fee=fee,
            net=gross - fee,
            currency=currency,
            batch_date=batch_date or business_day_on_or_after(ctx.now.date()),
            created_at=ctx.now,
        )
        ctx.tx.save_finance(ctx.aid, LINE, line, ref=order_id, status="unsettled")
        if schedule:
            self._schedule_batch(ctx, line.batch_date)
        return line

    def _schedule_batch(self, ctx: Ctx, day: date) -> None:
        due = to_us(midnight(day + timedelta(days=1)))
        ref = day.isoformat()
        if not ctx.tx.job_scheduled(ctx.aid, due, JOB_BATCH, ref):
            ctx.tx.schedule(ctx.aid, due, JOB_BATCH, ref)

    def job_batch(self, ctx: Ctx, ref: str) -> None:
        day = date.fromisoformat(ref)
        pending = [
            line
            for line in ctx.tx.finance_all(SettlementLine, ctx.aid, LINE, status="unsettled")
            if line.batch_date <= day
        ]
        for currency in sorted({line.currency for line in pending}):
            lines = [line for line in pending if line.currency == currency]
            # A deficit carried forward waits for the currency's next real movement; alone,
            # it would make an empty settlement every business day.
            if all(line.type == "carry_forward" for line in lines):
                continue
            self._settle(ctx, day, currency, lines)

    def _settle(self, ctx: Ctx, day: date, currency: str, lines: list[SettlementLine]) -> None:
        settlement_id = ctx.new_id("stl")
        total = sum(line.net for line in lines)
        if total < 0:
            # Nothing is paid out: the deficit moves to the next business day's batch.
            next_day = add_business_days(day, 1)
            lines.append(self._carry(ctx, settlement_id, -total, currency, day, settled=True))
            self._carry(ctx, settlement_id, total, currency, next_day, settled=False)
        payout_date = add_business_days(day, ctx.account.settings.settlement_delay_days)
        amount, gross, fees = settle(lines)
        settlement = Settlement(
            id=settlement_id,
            currency=currency,
            amount=amount,
            gross=gross,
            fees=fees,
            batch_date=day,
            payout_date=payout_date,
            line_count=len(lines),
            lines=lines,
            created_at=ctx.now,
        )
        for line in lines:
            line.settlement_id = settlement_id
            ctx.tx.save_finance(ctx.aid, LINE, line, ref=line.order_id, status="settled")
        self._drift(ctx, settlement)
        ctx.tx.save_finance(ctx.aid, SETTLEMENT, settlement, status="pending")
        self.core.emit(ctx, "settlement.created", settlement)
        pay_at = max(to_us(midnight(payout_date)), ctx.now_us)
        ctx.tx.schedule(ctx.aid, pay_at, JOB_PAYOUT, settlement.id)

    def _carry(
        self, ctx: Ctx, settlement_id: str, net: int, currency: str, day: date, *, settled: bool
    ) -> SettlementLine:
        if settled:
            return SettlementLine(
                id=ctx.new_id("sln"),
                type="carry_forward",
                order_id=None,
                source_id=settlement_id,
                gross=net,
                fee=0,
                net=net,
                currency=currency,
                batch_date=day,
                created_at=ctx.now,
            )
        return self.add_line(
            ctx,
            "carry_forward",
            None,
            settlement_id,
            gross=net,
            currency=currency,
            batch_date=day,
            schedule=False,  # it joins the next batch that has movements of its own
        )

    def job_payout(self, ctx: Ctx, ref: str) -> None:
        settlement = ctx.tx.finance(Settlement, ctx.aid, SETTLEMENT, ref)
        if settlement is None or settlement.status != "pending":
            return
        settlement.pay(ctx.now)
        ctx.tx.save_finance(ctx.aid, SETTLEMENT, settlement, status="paid")
        self.core.emit(ctx, "settlement.paid", settlement)

    def list_settlements(
        self, ctx: Ctx, *, status: str | None, limit: int, cursor: str | None
    ) -> Page[Settlement]:
        return ctx.tx.finance_page(
            Settlement, ctx.aid, SETTLEMENT, status=status, limit=limit, cursor=cursor
        )

    def get_settlement(self, ctx: Ctx, settlement_id: str) -> Settlement:
        settlement = ctx.tx.finance(Settlement, ctx.aid, SETTLEMENT, settlement_id)
        if settlement is None:
            raise NotFound("settlement", settlement_id)
        return settlement

    # --- settlement-report drift --------------------------------------------------------------
    def drift_state(self, ctx: Ctx) -> DriftState:
        ident = f"drift:{ctx.aid}"
        state = ctx.tx.finance(DriftState, ctx.aid, DRIFT, ident)
        return state or DriftState(id=ident, settings=DriftSettings())

    def set_drift(self, ctx: Ctx, settings: DriftSettings) -> DriftState:
        state = self.drift_state(ctx)
        state.settings = settings
        ctx.tx.save_finance(ctx.aid, DRIFT, state)
        return state

    def injections(self, ctx: Ctx) -> list[DriftInjection]:
        return ctx.tx.finance_all(DriftInjection, ctx.aid, INJECTION)

    def _drift(self, ctx: Ctx, settlement: Settlement) -> None:
        """Make this settlement's report deviate from its true lines as the switches say, and
        record each deviation. The payout and the true lines are never changed."""
        state = self.drift_state(ctx)
        report = list(settlement.lines)
        changed = False
        # One deviation a line at most: a second one on the same line (a duplicate of the line
        # reported a cent off) would hide the first from the reconciliation that must find
        # each (the rehearsal's settlement-drift found 3 of 4 when two drew the same line).
        touched: set[str] = set()
        # Lines held back from an earlier report of this currency arrive now, one batch late.
        arriving = [x for x in state.held_back if x.currency == settlement.currency]
        if arriving:
            # As the report tells it, the line is paid in this settlement.
            report.extend(x.model_copy(update={"settlement_id": settlement.id}) for x in arriving)
            touched.update(x.id for x in arriving)
            state.held_back = [x for x in state.held_back if x.currency != settlement.currency]
            changed = True
        settings = state.settings
        for kind in DRIFT_KINDS:
            value = getattr(settings, kind)
            if isinstance(value, bool) or not value:
                continue
            if isinstance(value, int):
                if not self._inject(ctx, kind, settlement, report, state, touched=touched):
                    continue
                setattr(settings, kind, value - 1)
                changed = True
            elif ctx.rng.random() < value and self._inject(
                ctx, kind, settlement, report, state, touched=touched
            ):
                changed = True
        if changed:
            settlement.reported_lines = report
            ctx.tx.save_finance(ctx.aid, DRIFT, state)

    def _inject(
        self,
        ctx: Ctx,
        kind: DriftKind,
        settlement: Settlement,
        report: list[SettlementLine],
        state: DriftState,
        *,
        touched: set[str],
    ) -> bool:
        candidates = [
            x for x in report if x.type != "carry_forward" and x.order_id and x.id not in touched
        ]
        line: SettlementLine | None = None
        if kind != "unknown_order":
            if not candidates:
                return False
            line = candidates[ctx.rng.randint(0, len(candidates) - 1)]
        if kind == "missing_line":
            assert line is not None
            report.remove(line)
            detail = f"line {line.id} ({line.type}, net {line.net}) left out of the report"
        elif kind == "duplicate_line":
            assert line is not None
            report.insert(report.index(line) + 1, line)
            detail = f"line {line.id} reported twice"
        elif kind == "off_by_one_cent":
            assert line is not None
            wrong = line.model_copy(update={"gross": line.gross + 1, "net": line.net + 1})
            report[report.index(line)] = wrong
            detail = f"line {line.id} reported with net {wrong.net} instead of {line.net}"
        elif kind == "late_line":
            assert line is not None
            report.remove(line)
            state.held_back.append(line)
            detail = f"line {line.id} left out of this report; it arrives in the next one"
        else:
            gross = 100 * ctx.rng.randint(1, 500)
            invented = SettlementLine(
                id=ctx.new_id("sln"),
                type="capture",
                order_id=f"ord_{ctx.rng.token()}",
                source_id=f"cap_{ctx.rng.token()}",
                gross=gross,
                fee=0,
                net=gross,
                currency=settlement.currency,
                batch_date=settlement.batch_date,
                settlement_id=settlement.id,
                created_at=ctx.now,
            )
            report.append(invented)
            line = invented
            detail = f"line {invented.id} for order {invented.order_id}, which does not exist"
        touched.add(line.id)
        injection = DriftInjection(
            id=ctx.new_id("drf"),
            kind=kind,
            settlement_id=settlement.id,
            line_id=line.id,
            order_id=line.order_id,
            detail=detail,
            created_at=ctx.now,
        )
        ctx.tx.save_finance(ctx.aid, INJECTION, injection, ref=settlement.id)
        return True

    # --- disputes -----------------------------------------------------------------------------
    def disputed_amount(self, ctx: Ctx, order_id: str) -> int:
        return sum(
            d.amount
            for d in ctx.tx.finance_all(Dispute, ctx.aid, DISPUTE, ref=order_id)
            if d.status != "won"
        )

    def open_dispute(self, ctx: Ctx, order_id: str, *, reason: str, amount: int | None) -> Dispute:
        order = self.core.get_order(ctx, order_id)
        disputable = order.captured_amount - order.refunded_amount
        disputable -= self.disputed_amount(ctx, order_id)
        if disputable <= 0:
            raise Conflict(
                f"order {order_id} has nothing captured left to dispute (captured "
                f"{order.captured_amount}, refunded {order.refunded_amount}, disputed)"
            )
        amount = disputable if amount is None else amount
        if amount <= 0 or amount > disputable:
            raise InvalidAmount(f"a dispute amount must be between 1 and {disputable}")
        days = ctx.account.settings.dispute_response_days
        dispute = Dispute(
            id=ctx.new_id("dp"),
            order_id=order.id,
            buyer_id=order.buyer_id,
            amount=amount,
            currency=order.currency,
            reason=reason,
            respond_by=ctx.now + timedelta(days=days),
            created_at=ctx.now,
            updated_at=ctx.now,
        )
        self.add_line(ctx, "dispute", order.id, dispute.id, gross=-amount, currency=order.currency)
        self._save_dispute(ctx, dispute)
        ctx.tx.schedule(ctx.aid, to_us(dispute.respond_by), JOB_DISPUTE_DEADLINE, dispute.id)
        self.core.emit(ctx, "dispute.created", dispute)
        return dispute

    def list_disputes(
        self,
        ctx: Ctx,
        *,
        status: str | None,
        order_id: str | None,
        limit: int,
        cursor: str | None,
    ) -> Page[Dispute]:
        return ctx.tx.finance_page(
            Dispute, ctx.aid, DISPUTE, status=status, ref=order_id, limit=limit, cursor=cursor
        )

    def get_dispute(self, ctx: Ctx, dispute_id: str) -> Dispute:
        dispute = ctx.tx.finance(Dispute, ctx.aid, DISPUTE, dispute_id)
        if dispute is None:
            raise NotFound("dispute", dispute_id)
        return dispute

    def _save_dispute(self, ctx: Ctx, dispute: Dispute) -> None:
        ctx.tx.save_finance(ctx.aid, DISPUTE, dispute, ref=dispute.order_id, status=dispute.status)

    def _must_need_response(self, dispute: Dispute, action: str) -> None:
        if dispute.status != "needs_response":
            raise Conflict(f"dispute {dispute.id} is {dispute.status}: it can no longer {action}")

    def submit_evidence(self, ctx: Ctx, dispute_id: str, evidence: dict[str, str]) -> Dispute:
        dispute = self.get_dispute(ctx, dispute_id)
        self._must_need_response(dispute, "take evidence")
        dispute.apply("submit_evidence", ctx.now)
        dispute.evidence = evidence
        dispute.evidence_submitted_at = ctx.now
        dispute.decides_at = ctx.now + timedelta(days=ctx.account.settings.dispute_decision_days)
        self._save_dispute(ctx, dispute)
        ctx.tx.schedule(ctx.aid, to_us(dispute.decides_at), JOB_DISPUTE_DECIDE, dispute.id)
        self.core.emit(ctx, "dispute.updated", dispute)
        return dispute

    def accept_dispute(self, ctx: Ctx, dispute_id: str) -> Dispute:
        dispute = self.get_dispute(ctx, dispute_id)
        self._must_need_response(dispute, "be accepted")
        dispute.accepted = True
        self._close_dispute(ctx, dispute, "lost")
        return dispute

    def _close_dispute(self, ctx: Ctx, dispute: Dispute, outcome: Literal["won", "lost"]) -> None:
        dispute.apply("win" if outcome == "won" else "lose", ctx.now)
        dispute.closed_at = ctx.now
        if outcome == "won":
            self.add_line(
                ctx,
                "dispute_reversal",
                dispute.order_id,
                dispute.id,
                gross=dispute.amount,
                currency=dispute.currency,
            )
        else:
            # The buyer does not pay for what the merchant lost.
            found = ctx.tx.order(ctx.aid, dispute.order_id)
            if found is not None:
                order = found[1]
                released = self._relieve(ctx, order, dispute.amount)
                ctx.tx.save_order(ctx.aid, order)
                self.core.release(ctx, order.buyer_id, released)
        self._save_dispute(ctx, dispute)
        self.core.emit(ctx, f"dispute.{outcome}", dispute)

    def job_dispute_deadline(self, ctx: Ctx, ref: str) -> None:
        dispute = ctx.tx.finance(Dispute, ctx.aid, DISPUTE, ref)
        if dispute is not None and dispute.status == "needs_response":
            self._close_dispute(ctx, dispute, "lost")

    def job_dispute_decide(self, ctx: Ctx, ref: str) -> None:
        dispute = ctx.tx.finance(Dispute, ctx.aid, DISPUTE, ref)
        if dispute is None or dispute.status != "under_review":
            return
        outcome = evidence_outcome(dispute.evidence or {})
        if outcome is None:
            won = ctx.rng.random() < ctx.account.settings.dispute_win_probability
            outcome = "won" if won else "lost"
        self._close_dispute(ctx, dispute, outcome)

    JOBS: dict[str, Callable[[FinanceService, Ctx, str], None]]


FinanceService.JOBS = {
    JOB_REPAYMENT_DUE: FinanceService.job_repayment_due,
    JOB_REPAYMENT_LATE_PAID: FinanceService.job_repayment_late_paid,
    JOB_REPAYMENT_DEFAULT: FinanceService.job_repayment_default,
    JOB_BATCH: FinanceService.job_batch,
    JOB_PAYOUT: FinanceService.job_payout,
    JOB_DISPUTE_DEADLINE: FinanceService.job_dispute_deadline,
    JOB_DISPUTE_DECIDE: FinanceService.job_dispute_decide,
}
