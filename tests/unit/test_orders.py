"""Order rules, alone and through the service: amounts never go out of bounds and the buyer's
credit line always holds exactly what its orders still owe."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from factories import START, order_ops
from hypothesis import given
from hypothesis import strategies as st

from simulator.api.schemas import presenter
from simulator.clock import ManualClock
from simulator.domain.errors import (
    AmountExceedsCapturable,
    AmountExceedsRefundable,
    CurrencyMismatch,
    InvalidAmount,
    InvalidTransition,
    SandbankError,
)
from simulator.domain.models import Capture, DecisionRecord, Order, Refund
from simulator.rng import SeededRng
from simulator.service import ProviderService
from simulator.store.sqlite import SqliteStore

T0 = START


def authorized(amount: int = 1000, currency: str = "USD") -> Order:
    order = Order(
        id="ord_1",
        status="pending_review",
        amount=amount,
        currency=currency,
        terms="net30",
        buyer_id="buy_1",
        checkout_id="chk_1",
        decision=DecisionRecord(outcome="approved"),
        created_at=T0,
        updated_at=T0,
    )
    order.apply("approve", T0)
    return order


def cap(amount: int, *, final: bool = False, currency: str = "USD") -> Capture:
    return Capture(id="cap_x", amount=amount, currency=currency, final=final, created_at=T0)


def ref(amount: int, currency: str = "USD") -> Refund:
    return Refund(id="ref_x", amount=amount, currency=currency, created_at=T0)


# --- examples -------------------------------------------------------------------------------------
def test_partial_then_full_capture_walks_the_states() -> None:
    order = authorized(1000)
    order.capture(cap(400))
    assert (order.status, order.capturable_amount) == ("partially_captured", 600)
    order.capture(cap(600))
    assert (order.status, order.capturable_amount, order.captured_amount) == ("captured", 0, 1000)


def test_final_capture_releases_the_uncaptured_remainder() -> None:
    order = authorized(1000)
    assert order.capture(cap(300, final=True)) == 700
    assert (order.status, order.capturable_amount, order.released_amount) == ("captured", 0, 700)


def test_capture_more_than_capturable_is_rejected() -> None:
    order = authorized(1000)
    with pytest.raises(AmountExceedsCapturable):
        order.capture(cap(1001))
    assert order.status == "authorized"


def test_capture_after_cancel_is_rejected() -> None:
    order = authorized()
    assert order.cancel(T0) == 1000
    with pytest.raises(InvalidTransition):
        order.capture(cap(1))


def test_capture_of_nothing_on_a_canceled_order_is_a_state_conflict_not_an_amount_error() -> None:
    """The service captures `capturable_amount` (0 here) when no amount is given."""
    order = authorized()
    order.cancel(T0)
    with pytest.raises(InvalidTransition):
        order.capture(cap(0))


def test_refund_of_nothing_before_any_capture_is_a_state_conflict() -> None:
    order = authorized()
    with pytest.raises(InvalidTransition):
        order.refund(ref(0))


def test_cancel_after_a_capture_is_rejected() -> None:
    order = authorized()
    order.capture(cap(1))
    with pytest.raises(InvalidTransition):
        order.cancel(T0)


def test_refund_never_exceeds_captured() -> None:
    order = authorized(1000)
    order.capture(cap(300))
    with pytest.raises(AmountExceedsRefundable):
        order.refund(ref(301))
    order.refund(ref(300))
    assert (order.status, order.refundable_amount) == ("partially_refunded", 0)


def test_refunding_everything_of_a_fully_captured_order_ends_refunded() -> None:
    order = authorized(1000)
    order.capture(cap(1000))
    order.refund(ref(400))
    order.refund(ref(600))
    assert order.status == "refunded"


def test_expiry_after_everything_captured_was_refunded_ends_refunded() -> None:
    order = authorized(1000)
    order.capture(cap(200))
    order.refund(ref(200))
    assert order.expire(T0) == 800
    assert order.status == "refunded"


@pytest.mark.parametrize("amount", [0, -5])
def test_non_positive_capture_and_refund_amounts_are_rejected(amount: int) -> None:
    order = authorized(1000)
    with pytest.raises(InvalidAmount):
        order.capture(cap(amount))
    order.capture(cap(10))
    with pytest.raises(InvalidAmount):
        order.refund(ref(amount))


def test_capture_and_refund_in_another_currency_are_rejected() -> None:
    order = authorized(1000)
    with pytest.raises(CurrencyMismatch):
        order.capture(cap(10, currency="EUR"))
    order.capture(cap(10))
    with pytest.raises(CurrencyMismatch):
        order.refund(ref(10, currency="EUR"))


# --- properties -------------------------------------------------------------------------------
def check_amounts(order: Order) -> None:
    assert 0 <= order.refunded_amount <= order.captured_amount <= order.amount
    assert order.capturable_amount >= 0
    assert order.captured_amount + order.released_amount + order.capturable_amount <= order.amount
    assert order.outstanding_hold == order.capturable_amount


@given(ops=order_ops)
def test_random_order_operations_keep_amounts_in_bounds(ops: list[tuple[str, int | None]]) -> None:
    order = authorized(1000)
    for kind, amount in ops:
        try:
            if kind in ("capture", "capture_final"):
                order.capture(cap(amount or 0, final=kind == "capture_final"))
            elif kind == "refund":
                order.refund(ref(amount or 0))
            elif kind == "cancel":
                order.cancel(T0)
            elif kind == "expire" and order.capturable_amount > 0:
                order.expire(T0)
        except SandbankError:
            pass
        check_amounts(order)


# --- through the service -----------------------------------------------------------------------
class Harness:
    """A ProviderService on an in-memory store with one +approve buyer and its orders."""

    def __init__(self, tag: str = "approve") -> None:
        self.clock = ManualClock(START)
        self.store = SqliteStore(":memory:")
        self.service = ProviderService(
            self.store, self.clock, presenter, public_url="http://sandbank.test"
        )
        with self.store.transaction() as tx:
            account = self.service.create_account(tx, SeededRng("server", 1), name="t", seed=3)
        self.aid = account.id
        with self.service.scope(self.aid) as ctx:
            buyer = self.service.create_buyer(
                ctx, legal_name=f"Acme [{tag}]", email="ap@acme.test", annual_revenue=10**9
            )
        self.buyer_id = buyer.id
        self.orders: list[str] = []

    def do(self, fn: Callable[..., object], *args: object, **kw: object) -> object:
        """Run one operation the way the API does: domain errors roll back, nothing else."""
        with self.service.scope(self.aid) as ctx:
            try:
                with ctx.tx.savepoint():
                    return fn(ctx, *args, **kw)
            except SandbankError:
                return None

    def new_order(self, amount: int, terms: str = "net30") -> str | None:
        checkout = self.do(
            self.service.create_checkout,
            amount=amount,
            currency=None,
            buyer_id=self.buyer_id,
            buyer=None,
            merchant_order_id=None,
            line_items=[],
            return_url="https://shop.test/r",
            cancel_url="https://shop.test/c",
        )
        assert checkout is not None
        done = self.do(self.service.approve_checkout, checkout.id, terms)  # type: ignore[attr-defined]
        order_id = done.order_id if done is not None else None  # type: ignore[attr-defined]
        if order_id:
            self.orders.append(order_id)
        return order_id

    def advance(self, by: timedelta) -> datetime:
        return self.do(self.service.advance_clock, by=by, to=None)  # type: ignore[return-value]

    def snapshot(self) -> tuple[int, list[Order]]:
        with self.service.scope(self.aid) as ctx:
            used = self.service.get_buyer(ctx, self.buyer_id).credit_line.used
            return used, [self.service.get_order(ctx, oid) for oid in self.orders]


def check_credit(h: Harness) -> None:
    used, orders = h.snapshot()
    for order in orders:
        check_amounts(order)
    # Credit is used by what authorizations still hold and by what the buyer owes in
    # repayments (open, or defaulted on); repaid, refunded and lost-dispute money is released.
    owed = sum(
        o.outstanding_hold
        + sum(r.amount for r in o.repayments if r.open or r.status == "defaulted")
        for o in orders
    )
    assert used == owed


def test_credit_returns_exactly_on_cancel() -> None:
    h = Harness()
    oid = h.new_order(70_000)
    assert h.snapshot()[0] == 70_000
    h.do(h.service.cancel_order, oid)
    assert h.snapshot()[0] == 0


def test_credit_returns_exactly_on_expiry_keeping_what_was_captured() -> None:
    h = Harness()
    oid = h.new_order(70_000, "net60")  # the captured part is still owed after 31 days
    h.do(h.service.capture, oid, amount=20_000, currency=None, final=False)
    h.advance(timedelta(days=31))
    used, (order,) = h.snapshot()
    assert (order.status, used) == ("captured", 20_000)
    h.advance(timedelta(days=30))  # repaid on day 60: the rest comes back
    assert h.snapshot()[0] == 0


@given(
    tag=st.sampled_from(["approve", "review", "review_manual"]),
    amounts=st.lists(st.integers(1, 1_200), min_size=1, max_size=3),
    steps=st.lists(st.tuples(st.integers(0, 2), order_ops), max_size=3),
    days=st.lists(st.sampled_from([0, 1, 29, 31]), max_size=3),
)
def test_credit_line_used_always_equals_what_orders_owe(
    tag: str,
    amounts: list[int],
    steps: list[tuple[int, list[tuple[str, int | None]]]],
    days: list[int],
) -> None:
    """used == sum(outstanding authorization + captured - refunded) after every operation."""
    h = Harness(tag)
    for amount in amounts:
        h.new_order(amount)
    assert len(h.orders) == len(amounts)
    check_credit(h)
    svc = h.service
    for i, (which, ops) in enumerate(steps):
        oid = h.orders[which % len(h.orders)]
        for kind, amount in ops:
            if kind in ("capture", "capture_final"):
                h.do(svc.capture, oid, amount=amount, currency=None, final=kind == "capture_final")
            elif kind == "refund":
                h.do(svc.refund, oid, amount=amount, currency=None, reason=None)
            elif kind == "cancel":
                h.do(svc.cancel_order, oid)
            elif kind == "update":
                h.do(svc.update_order, oid, amount=amount)
            elif kind == "review":
                h.do(svc.review_order, oid, "approve" if amount else "decline")
            else:
                h.advance(timedelta(days=31))
            check_credit(h)
        if i < len(days):
            h.advance(timedelta(days=days[i]))
            check_credit(h)


def test_capture_with_nothing_left_to_capture_says_so() -> None:
    order = authorized(1000)
    order.capture(cap(200))
    order.refund(ref(100))
    order.expire(T0)  # the uncaptured 800 lapses; the order stays partially_refunded
    assert (order.status, order.capturable_amount) == ("partially_refunded", 0)
    with pytest.raises(AmountExceedsCapturable):
        order.capture(cap(0))


def test_refund_with_nothing_left_to_refund_says_so() -> None:
    order = authorized(1000)
    order.capture(cap(200))
    order.refund(ref(200))
    with pytest.raises(AmountExceedsRefundable):
        order.refund(ref(0))
