"""Properties of the money rules after the checkout (simulator/domain/finance.py and
simulator/finance.py): exact installment splits, half-up fees, business days, and, over random
sequences of captures, refunds, disputes and clock advances, settlements that add up."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest
from factories import Api, build_app
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from simulator.clock import ManualClock
from simulator.context import Ctx
from simulator.domain.errors import SandbankError
from simulator.domain.finance import (
    TERM_DAYS,
    Dispute,
    Settlement,
    SettlementLine,
    add_business_days,
    business_day_on_or_after,
    fee_for,
    midnight,
    split_installments,
)
from simulator.domain.models import DEFAULT_FEE_BPS, Order
from simulator.service import ProviderService

START = datetime.fromisoformat("2026-03-06T15:30:00+00:00")  # a Friday afternoon
# The explain phase re-runs a failing sequence hundreds of times; the shrunk example is enough.
NO_EXPLAIN = [p for p in Phase if p != Phase.explain]
days = st.dates(min_value=date(1990, 1, 1), max_value=date(2200, 12, 31))


# --- installments ------------------------------------------------------------------------------
@given(
    amount=st.integers(min_value=1, max_value=10**12),
    terms=st.sampled_from(sorted(TERM_DAYS)),
)
def test_installments_sum_exactly_to_the_amount(amount: int, terms: str) -> None:
    count = len(TERM_DAYS[terms])
    parts = split_installments(amount, count)
    assert len(parts) == count
    assert sum(parts) == amount
    assert all(p >= 0 for p in parts)
    assert max(parts) - min(parts) <= 1  # as equal as whole minor units allow
    assert parts == sorted(parts, reverse=True)  # the remainder's units go first


@given(
    amount=st.integers(min_value=0, max_value=10**12), count=st.integers(min_value=1, max_value=60)
)
def test_any_split_is_exact(amount: int, count: int) -> None:
    parts = split_installments(amount, count)
    assert sum(parts) == amount
    assert len(parts) == count


# --- fees ----------------------------------------------------------------------------------------
@given(
    gross=st.integers(min_value=0, max_value=10**13), bps=st.integers(min_value=0, max_value=10_000)
)
def test_fee_is_the_exact_fee_rounded_half_up(gross: int, bps: int) -> None:
    exact = Fraction(gross * bps, 10_000)
    fee = fee_for(gross, bps)
    assert exact - Fraction(1, 2) < fee <= exact + Fraction(1, 2)  # the nearest unit ...
    if exact - int(exact) == Fraction(1, 2):
        assert fee == int(exact) + 1  # ... and a half goes up
    assert 0 <= fee <= gross
    if bps == 10_000:
        assert fee == gross


@given(
    gross=st.integers(min_value=0, max_value=10**13), bps=st.integers(min_value=0, max_value=9_999)
)
def test_fee_grows_with_the_amount_and_the_rate(gross: int, bps: int) -> None:
    assert fee_for(gross, bps) <= fee_for(gross + 1, bps)
    assert fee_for(gross, bps) <= fee_for(gross, bps + 1)


# --- business days -------------------------------------------------------------------------------
@given(day=days)
def test_the_business_day_on_or_after_is_never_a_weekend(day: date) -> None:
    found = business_day_on_or_after(day)
    assert found.weekday() < 5
    assert day <= found <= day + timedelta(days=2)
    if day.weekday() < 5:
        assert found == day


@given(day=days, n=st.integers(min_value=0, max_value=40))
def test_adding_business_days_skips_weekends_and_counts_exactly(day: date, n: int) -> None:
    found = add_business_days(day, n)
    if n == 0:
        assert found == day
        return
    assert found.weekday() < 5
    between = [day + timedelta(days=i) for i in range(1, (found - day).days + 1)]
    assert sum(d.weekday() < 5 for d in between) == n
    assert (found - day).days <= n + 2 * (n // 5 + 1)


# --- random sequences of money movements ---------------------------------------------------------
# One operation: (kind, order index, amount: None = "all of it", detail). Evidence and accept
# pick a dispute opened so far by index. Advances are mostly short, so that authorizations
# do not all lapse before the captures.
Op = tuple[str, int, int | None, Any]
some_amount = st.none() | st.integers(1, 60_000)
capture_op = st.tuples(st.just("capture"), st.integers(0, 2), some_amount, st.booleans())
refund_op = st.tuples(st.just("refund"), st.integers(0, 2), some_amount, st.none())
dispute_op = st.tuples(st.just("dispute"), st.integers(0, 2), some_amount, st.none())
evidence_op = st.tuples(
    st.just("evidence"), st.integers(0, 5), st.none(), st.sampled_from(["+win", "+lose"])
)
accept_op = st.tuples(st.just("accept"), st.integers(0, 5), st.none(), st.none())
advance_op = st.tuples(
    st.just("advance"),
    st.integers(0, 2),
    st.none(),
    st.integers(1, 72) | st.integers(1, 45 * 24),  # hours
)
ops = st.lists(
    st.one_of(
        capture_op,
        refund_op,
        dispute_op,
        dispute_op,
        evidence_op,
        evidence_op,
        accept_op,
        advance_op,
    ),
    min_size=1,
    max_size=14,
)
# Each order placed: (amount, terms, repayment behaviour magic value, currency, captured in
# full at once).
orders = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=120_000),
        st.sampled_from(sorted(TERM_DAYS)),
        st.sampled_from(["", "+pays_late", "+defaults", "+pays_on_time"]),
        st.sampled_from(["USD", "USD", "EUR", "JPY"]),
        st.booleans(),
    ),
    min_size=1,
    max_size=3,
)
account_settings = st.fixed_dictionaries(
    {
        "settlement_delay_days": st.integers(0, 3),
        "late_probability": st.sampled_from([0.0, 0.3]),
        "default_probability": st.sampled_from([0.0, 0.2]),
        "discount_fee_bps": st.fixed_dictionaries(
            {t: st.sampled_from([0, 1, DEFAULT_FEE_BPS[t], 333, 10_000]) for t in sorted(TERM_DAYS)}
        ),
    }
)


class Book:
    """One account's money, driven through the service in-process."""

    def __init__(self, seed: int, settings_: dict[str, Any]) -> None:
        self.clock = ManualClock(START)
        self.app = build_app(seed=seed, clock=self.clock)
        self.api = Api(self.app, self.clock)
        self.svc: ProviderService = self.app.runtime.service
        self.account = self.api.new_account(seed=seed, **settings_)
        self.order_ids: list[str] = []
        self.dispute_ids: list[str] = []

    def close(self) -> None:
        self.api.close()

    def place(self, amount: int, terms: str, behaviour: str, currency: str = "USD") -> None:
        # A limit in major units that fits any amount drawn here, whatever the currency.
        tag = f"limit_999999{behaviour}"
        chk = self.api.checkout(self.account, amount, tag=tag, currency=currency)
        done = self.api.approve(chk["id"], terms)
        assert done["status"] == "completed", done
        self.order_ids.append(done["order_id"])

    def apply(self, op: Op) -> None:
        kind, index, amount, detail = op
        order_id = self.order_ids[index % len(self.order_ids)]
        try:
            with self.svc.scope(self.account.id) as ctx:
                if kind == "capture":
                    self.svc.capture(ctx, order_id, amount=amount, currency=None, final=detail)
                elif kind == "refund":
                    self.svc.refund(ctx, order_id, amount=amount, currency=None, reason=None)
                elif kind == "dispute":
                    d = self.svc.finance.open_dispute(
                        ctx, order_id, reason="fraudulent", amount=amount
                    )
                    self.dispute_ids.append(d.id)
                elif kind in {"evidence", "accept"} and self.dispute_ids:
                    dispute_id = self.dispute_ids[index % len(self.dispute_ids)]
                    if kind == "evidence":
                        self.svc.finance.submit_evidence(ctx, dispute_id, {"text": detail})
                    else:
                        self.svc.finance.accept_dispute(ctx, dispute_id)
                elif kind == "advance":
                    self.svc.advance_clock(ctx, by=timedelta(hours=detail), to=None)
        except SandbankError:
            pass  # rejected (409/422): nothing of it is kept

    def advance(self, by: timedelta) -> None:
        with self.svc.scope(self.account.id) as ctx:
            self.svc.advance_clock(ctx, by=by, to=None)

    def state(self) -> State:
        with self.svc.scope(self.account.id) as ctx:
            return State.read(ctx, self.order_ids)


@dataclass
class State:
    now: datetime
    orders: list[Order]
    settlements: list[Settlement]
    lines: list[SettlementLine]
    disputes: list[Dispute]
    used: dict[str, int]  # per buyer, the credit line's `used`

    @classmethod
    def read(cls, ctx: Ctx, order_ids: list[str]) -> State:
        tx = ctx.tx
        found = [tx.order(ctx.aid, i) for i in order_ids]
        orders_ = [f[1] for f in found if f is not None]
        used = {}
        for order in orders_:
            buyer = tx.buyer(ctx.aid, order.buyer_id)
            assert buyer is not None
            used[buyer.id] = buyer.credit_line.used
        return cls(
            ctx.now,
            orders_,
            tx.finance_all(Settlement, ctx.aid, "settlement"),
            tx.finance_all(SettlementLine, ctx.aid, "line"),
            tx.finance_all(Dispute, ctx.aid, "dispute"),
            used,
        )


def check_always(state: State) -> None:
    """What holds at every moment."""
    for s in state.settlements:
        # (a) a payout is the sum of its lines, never negative, and paid on its payout date
        assert s.amount == sum(line.net for line in s.lines), s
        assert s.amount >= 0, s
        assert s.line_count == len(s.lines)
        assert s.gross == sum(line.gross for line in s.lines)
        assert s.fees == sum(line.fee for line in s.lines)
        assert all(line.settlement_id == s.id for line in s.lines)
        assert (s.status == "paid") == (midnight(s.payout_date) <= state.now), s
    for line in state.lines:
        assert line.net == line.gross - line.fee
        assert line.batch_date.weekday() < 5
    # (d) the buyer's credit: what the authorizations still hold plus what is still owed
    owed: dict[str, int] = defaultdict(int)
    for order in state.orders:
        owed[order.buyer_id] += order.outstanding_hold
        owed[order.buyer_id] += sum(
            r.amount for r in order.repayments if r.status in {"scheduled", "late", "defaulted"}
        )
    for buyer_id, used in state.used.items():
        assert used >= 0
        assert used == owed[buyer_id], (buyer_id, used, owed[buyer_id])


def check_settled(state: State, fee_bps: dict[str, int]) -> None:
    """What holds once everything has settled and been paid."""
    assert not [d for d in state.disputes if d.open]
    unsettled = [line for line in state.lines if line.settlement_id is None]
    # Only a deficit still being carried forward may wait for the next batch (one a currency).
    assert all(line.type == "carry_forward" for line in unsettled), unsettled
    deficit: dict[str, int] = defaultdict(int)
    for line in unsettled:
        assert deficit[line.currency] == 0, unsettled
        assert line.net < 0
        deficit[line.currency] += line.net
    # (b) per order: captured - refunded - fees - lost disputes
    net: dict[str | None, int] = defaultdict(int)
    carried: dict[str, int] = defaultdict(int)
    for s in state.settlements:
        for line in s.lines:
            assert line.currency == s.currency
            net[line.order_id] += line.net
            if line.order_id is None:
                carried[line.currency] += line.net
    lost: dict[str, int] = defaultdict(int)
    for d in state.disputes:
        if d.status == "lost":
            lost[d.order_id] += d.amount
    earned: dict[str, int] = defaultdict(int)
    for order in state.orders:
        fees = sum(fee_for(c.amount, fee_bps[order.terms]) for c in order.captures)
        expected = order.captured_amount - order.refunded_amount - fees - lost[order.id]
        assert net[order.id] == expected, (order.id, net[order.id], expected)
        earned[order.currency] += expected
    # (c) per currency, what was paid out is what the orders earned plus the deficit still
    # carried forward (owed by the merchant, not paid): the settled carry_forward lines cancel
    # in pairs but for the one whose partner waits for the next batch
    for currency in {s.currency for s in state.settlements} | set(earned):
        paid = sum(s.amount for s in state.settlements if s.currency == currency)
        assert paid == earned[currency] - deficit[currency], currency
        assert carried[currency] == -deficit[currency], currency


def run_book(seed: int, settings_: dict[str, Any], placed: list[Any], script: list[Op]) -> None:
    book = Book(seed, settings_)
    try:
        for amount, terms, behaviour, currency, captured in placed:
            book.place(amount, terms, behaviour, currency)
            if captured:
                book.apply(("capture", len(book.order_ids) - 1, None, True))
        for op in script:
            book.apply(op)
            check_always(book.state())
        book.advance(timedelta(days=40))  # dispute deadlines and decisions, batches, payouts
        state = book.state()
        check_always(state)
        check_settled(state, settings_["discount_fee_bps"])
    finally:
        book.close()


@settings(max_examples=50, phases=NO_EXPLAIN)
@given(seed=st.integers(0, 2**31), settings_=account_settings, placed=orders, script=ops)
def test_random_money_movements_settle_exactly(
    seed: int, settings_: dict[str, Any], placed: list[Any], script: list[Op]
) -> None:
    run_book(seed, settings_, placed, script)


@pytest.mark.slow
@settings(max_examples=200, phases=NO_EXPLAIN)
@given(seed=st.integers(0, 2**31), settings_=account_settings, placed=orders, script=ops)
def test_random_money_movements_settle_exactly_thorough(
    seed: int, settings_: dict[str, Any], placed: list[Any], script: list[Op]
) -> None:
    run_book(seed, settings_, placed, script)


def gives_back(state: State, order: Order) -> int:
    """What the merchant gives back on an order: refunds, and disputes not won."""
    disputed = sum(d.amount for d in state.disputes if d.order_id == order.id and d.status != "won")
    return order.refunded_amount + disputed


def test_a_refund_cannot_take_back_money_a_dispute_already_took() -> None:
    book = Book(1, {"discount_fee_bps": dict(DEFAULT_FEE_BPS)})
    try:
        book.place(10_000, "net30", "")
        book.apply(("capture", 0, None, False))
        book.apply(("dispute", 0, None, None))  # debits 100.00
        book.apply(("refund", 0, None, None))  # must be refused: nothing is left to refund
        book.apply(("accept", 0, None, None))
        book.advance(timedelta(days=10))
        state = book.state()
        order = state.orders[0]
        assert gives_back(state, order) <= order.captured_amount
    finally:
        book.close()
