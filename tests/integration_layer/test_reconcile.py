"""Reconciliation: a consistent world reconciles clean; every injected drift is found, with its
kind and key, and nothing else is; holds, disputes and late lines across batches."""

from __future__ import annotations

import ast
from collections import Counter
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import integration.reconcile as reconcile_module
from integration.model import Dispute, LineKind, Money, SettlementLine
from integration.reconcile import (
    Discrepancy,
    DiscrepancyKind,
    LedgerEntry,
    MatchKey,
    Report,
    reconcile,
)

K = DiscrepancyKind
BATCHES = ("stl_01", "stl_02", "stl_03", "stl_04")  # items land in all but the last
CURRENCIES = ("USD", "EUR", "JPY")
DRIFTS = ("drop", "duplicate", "off_by_one", "late", "ledger_missing")
ITEMS_PER_ORDER = ((LineKind.CAPTURE, 1, 3), (LineKind.REFUND, 0, 2), (LineKind.FEE, 0, 1))
CAP = LineKind.CAPTURE

# --- a generated world ---------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One settled item: the ledger's expectation and the provider's line, consistent."""

    entry: LedgerEntry
    line: SettlementLine

    @property
    def group(self) -> tuple[str | None, LineKind]:
        return (self.entry.provider_order_id, self.entry.kind)


@dataclass(frozen=True)
class World:
    items: tuple[Item, ...]
    orders: tuple[tuple[str, str], ...]  # (provider id, merchant id)

    @property
    def lines(self) -> list[SettlementLine]:
        return [i.line for i in self.items]

    @property
    def ledger(self) -> list[LedgerEntry]:
        return [i.entry for i in self.items]

    @property
    def known(self) -> set[str]:
        return {oid for pair in self.orders for oid in pair}


@st.composite
def worlds(draw: st.DrawFn) -> World:
    counter = iter(range(10_000))
    items: list[Item] = []
    orders: list[tuple[str, str]] = []

    def add(
        pid: str | None,
        mid: str | None,
        kind: LineKind,
        currency: str,
        amount: int,
        *,
        ledger_ids: str,
    ) -> None:
        n = next(counter)
        batch = draw(st.sampled_from(BATCHES[:-1]))
        fee, gross, ledger_fee, ledger_amount = 0, amount, None, amount
        if kind is LineKind.CAPTURE:
            fee = amount * 3 // 100
            ledger_fee = fee if draw(st.booleans()) else None
        elif kind is LineKind.REFUND:
            gross = ledger_amount = -amount
        elif kind is LineKind.FEE:  # the fee sits in `fee` or in `gross`; the net is the same
            gross, fee = (0, amount) if draw(st.booleans()) else (-amount, 0)
            ledger_amount = -amount
        line_ids = draw(st.sampled_from(["both", "provider", "merchant"]))
        if ledger_ids == "provider":
            line_ids = draw(st.sampled_from(["both", "provider"]))
        line = SettlementLine(
            settlement_id=batch,
            line_id=f"ln_{n:04d}",
            provider_order_id=pid if line_ids != "merchant" else None,
            merchant_order_id=mid if line_ids != "provider" else None,
            kind=kind,
            gross=gross,
            fee=fee,
            currency=currency,
        )
        entry = LedgerEntry(
            reference=f"je_{n:04d}",
            provider_order_id=pid,
            merchant_order_id=mid if ledger_ids == "both" else None,
            kind=kind,
            amount=ledger_amount,
            currency=currency,
            expected_batch=batch,
            fee=ledger_fee,
        )
        items.append(Item(entry, line))

    def distinct_amounts(n: int) -> list[int]:
        # multiples of 5: a one-cent drift never makes two items of a group look alike
        units = draw(st.lists(st.integers(1, 40_000), min_size=n, max_size=n, unique=True))
        return [5 * u for u in units]

    for o in range(draw(st.integers(1, 6))):
        pid, mid = f"bo_{o:03d}", f"PO-{o:03d}"
        orders.append((pid, mid))
        currency = draw(st.sampled_from(CURRENCIES))
        ledger_ids = draw(st.sampled_from(["both", "provider"]))
        for kind, low, high in ITEMS_PER_ORDER:
            for amount in distinct_amounts(draw(st.integers(low, high))):
                add(pid, mid, kind, currency, amount, ledger_ids=ledger_ids)
    for amount in distinct_amounts(draw(st.integers(0, 2))):  # batch-level fees, no order
        add(None, None, LineKind.FEE, "USD", amount, ledger_ids="both")
    return World(tuple(items), tuple(orders))


# --- drifts and what they should produce -------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """A discrepancy the report must hold: where it is observed, and how it is identified."""

    batch: str
    kind: DiscrepancyKind
    reference: str | None
    settlement_id: str | None
    line_id: str | None
    order: str | None
    line_kind: LineKind
    occurrence: int | None = None  # None: not checked (keys of lines the ledger lacks)


@dataclass(frozen=True)
class Drifted:
    lines: list[SettlementLine]
    ledger: list[LedgerEntry]
    holds: frozenset[str]
    expected: list[Expected]


def _later(batch: str) -> str:
    return BATCHES[BATCHES.index(batch) + 1]


class Injector:
    """Applies drifts to a copy of a consistent world and records what each should produce."""

    def __init__(self, draw: st.DrawFn, world: World, holds: frozenset[str]) -> None:
        self.draw = draw
        self.holds = holds
        self.lines = {i.line.line_id: i.line for i in world.items}
        self.extra: list[SettlementLine] = []
        self.ledger = {i.entry.reference: i.entry for i in world.items}
        self.expected: list[Expected] = []
        self.copies = iter(range(9000, 10_000))  # the provider numbers on: a copy sorts after

    def expect(self, kind: DiscrepancyKind, e: LedgerEntry, at: SettlementLine | None) -> None:
        """A finding about ledger item `e` (and line `at`), keyed by the item's position."""
        siblings = sorted(
            (
                x
                for x in self.ledger.values()
                if (x.provider_order_id, x.kind) == (e.provider_order_id, e.kind)
            ),
            key=lambda x: (x.expected_batch, x.reference),
        )
        batch = str(e.expected_batch) if at is None else at.settlement_id
        self.expected.append(
            Expected(
                batch,
                kind,
                e.reference,
                None if at is None else at.settlement_id,
                None if at is None else at.line_id,
                e.provider_order_id,
                e.kind,
                siblings.index(e),
            )
        )

    def drop(self, item: Item) -> None:
        del self.lines[item.line.line_id]
        if item.entry.provider_order_id not in self.holds:
            self.expect(K.MISSING_AT_PROVIDER, item.entry, None)

    def duplicate(self, item: Item) -> None:
        variant = self.draw(st.sampled_from(["same_identity", "new_line", "later_batch"]))
        copy = item.line
        if variant != "same_identity":
            copy = replace(copy, line_id=f"ln_{next(self.copies):04d}")
        if variant == "later_batch":
            copy = replace(copy, settlement_id=_later(copy.settlement_id))
        self.extra.append(copy)
        self.expect(K.DUPLICATE, item.entry, copy)

    def off_by_one(self, item: Item) -> None:
        ln, delta = item.line, self.draw(st.sampled_from([-1, 1]))
        if ln.kind is LineKind.FEE and ln.gross == 0:
            self.lines[ln.line_id] = replace(ln, fee=ln.fee + delta)
        else:
            self.lines[ln.line_id] = replace(ln, gross=ln.gross + delta)
        self.expect(K.AMOUNT_MISMATCH, item.entry, ln)

    def late(self, item: Item) -> None:
        moved = replace(item.line, settlement_id=_later(item.line.settlement_id))
        self.lines[moved.line_id] = moved
        self.expect(K.LATE, item.entry, moved)
        if item.entry.provider_order_id not in self.holds:  # when its own batch is alone
            self.expect(K.MISSING_AT_PROVIDER, item.entry, None)

    def ledger_missing(self, item: Item) -> None:
        # Applied before the others (occurrences are positions in the final ledger). The
        # order stays known: the ERP knows its orders (`known_orders`).
        e, ln = item.entry, item.line
        order = e.provider_order_id
        if order is not None and ln.provider_order_id is None:
            linked = any(
                x.provider_order_id == order and x.merchant_order_id is not None
                for x in self.ledger.values()
            )
            order = order if linked else ln.merchant_order_id
        self.expected.append(
            Expected(
                ln.settlement_id,
                K.MISSING_IN_LEDGER,
                None,
                ln.settlement_id,
                ln.line_id,
                order,
                e.kind,
            )
        )

    def unknown_order(self, n: int) -> None:
        batch, order = self.draw(st.sampled_from(BATCHES)), f"xx_{n:03d}"
        amount = self.draw(st.integers(1, 10**6))
        unknown = SettlementLine(batch, f"unk_{n}", order, None, CAP, amount, 0, "USD")
        self.extra.append(unknown)
        self.expected.append(
            Expected(batch, K.UNKNOWN_ORDER, None, batch, unknown.line_id, order, CAP, 0)
        )


@st.composite
def drifted(draw: st.DrawFn, world: World) -> Drifted:
    """Inject drifts into a consistent world: at most one per (order, kind) group (two drifts
    in one group can be indistinguishable from two others, e.g. a missing line and a one-cent
    drift on its sibling), plus lines for unknown orders; some orders may be on hold."""
    by_group: dict[tuple[str | None, LineKind], list[Item]] = {}
    for item in world.items:
        by_group.setdefault(item.group, []).append(item)
    groups = sorted(by_group, key=lambda g: (g[0] or "", g[1]))
    chosen = draw(st.lists(st.sampled_from(groups), unique=True))
    held = st.lists(st.sampled_from([pid for pid, _ in world.orders]), unique=True, max_size=2)
    inject = Injector(draw, world, frozenset(draw(held)))
    drifts = [(draw(st.sampled_from(by_group[g])), draw(st.sampled_from(DRIFTS))) for g in chosen]
    for item, drift in drifts:
        if drift == "ledger_missing":
            del inject.ledger[item.entry.reference]
    for item, drift in drifts:
        getattr(inject, drift)(item)
    for n in range(draw(st.integers(0, 2))):
        inject.unknown_order(n)
    return Drifted(
        [*inject.lines.values(), *inject.extra],
        list(inject.ledger.values()),
        inject.holds,
        inject.expected,
    )


def _seen(report: Report) -> Counter[tuple[object, ...]]:
    return Counter(
        (d.kind, d.reference, d.settlement_id, d.line_id, d.key.order, d.key.kind)
        for d in report.discrepancies
    )


def _wanted(expected: list[Expected]) -> Counter[tuple[object, ...]]:
    return Counter(
        (x.kind, x.reference, x.settlement_id, x.line_id, x.order, x.line_kind) for x in expected
    )


def _check(report: Report, expected: list[Expected]) -> None:
    assert _seen(report) == _wanted(expected), report.render_text()
    for x in expected:
        if x.occurrence is None:
            continue
        [d] = [
            d
            for d in report.discrepancies
            if (d.kind, d.reference, d.line_id) == (x.kind, x.reference, x.line_id)
        ]
        assert d.key == MatchKey(x.order, x.line_kind, x.occurrence)


# --- properties ----------------------------------------------------------------------------


@given(world=worlds())
def test_a_consistent_world_reconciles_clean_per_batch_and_as_a_window(world: World) -> None:
    for batch in BATCHES:
        report = reconcile(world.lines, world.ledger, batch=batch, known_orders=world.known)
        assert report.discrepancies == (), report.render_text()
        assert report.mismatch_rate == 0
    window = reconcile(
        world.lines, world.ledger, batch=BATCHES[-1], since=BATCHES[0], known_orders=world.known
    )
    assert window.ok
    assert window.lines == len(world.items)
    for totals in window.totals:
        lines_net = sum(i.line.net for i in world.items if i.line.currency == totals.currency)
        assert totals.provider_payout == lines_net


@given(data=st.data(), world=worlds())
def test_every_injected_drift_is_found_in_the_window_and_nothing_else(
    data: st.DataObject, world: World
) -> None:
    d = data.draw(drifted(world))
    report = reconcile(
        d.lines,
        d.ledger,
        batch=BATCHES[-1],
        since=BATCHES[0],
        holds=d.holds,
        known_orders=world.known,
    )
    # Over the whole window a late line is late, not also missing.
    wanted = [
        x
        for x in d.expected
        if not (
            x.kind is K.MISSING_AT_PROVIDER
            and any(y.kind is K.LATE and y.reference == x.reference for y in d.expected)
        )
    ]
    _check(report, wanted)


@given(data=st.data(), world=worlds())
def test_every_injected_drift_is_found_in_the_batch_it_becomes_visible_in(
    data: st.DataObject, world: World
) -> None:
    d = data.draw(drifted(world))
    for batch in BATCHES:
        report = reconcile(d.lines, d.ledger, batch=batch, holds=d.holds, known_orders=world.known)
        _check(report, [x for x in d.expected if x.batch == batch])


@given(data=st.data(), world=worlds())
def test_the_report_does_not_depend_on_input_order(data: st.DataObject, world: World) -> None:
    d = data.draw(drifted(world))
    lines = data.draw(st.permutations(d.lines))
    ledger = data.draw(st.permutations(d.ledger))
    one, other = (
        reconcile(ls, es, batch=BATCHES[-1], since=BATCHES[0], holds=d.holds, known_orders=known)
        for ls, es, known in [
            (d.lines, d.ledger, world.known),
            (lines, ledger, sorted(world.known, reverse=True)),
        ]
    )
    assert one == other


# --- examples ------------------------------------------------------------------------------


def line(
    batch: str,
    line_id: str,
    amount: int,
    *,
    order: str | None = "bo_1",
    merchant: str | None = None,
    kind: LineKind = CAP,
    fee: int = 0,
    currency: str = "USD",
) -> SettlementLine:
    return SettlementLine(batch, line_id, order, merchant, kind, amount, fee, currency)


def entry(
    ref: str,
    batch: str | date,
    amount: int,
    *,
    order: str | None = "bo_1",
    merchant: str | None = "PO-1",
    kind: LineKind = CAP,
    fee: int | None = None,
    currency: str = "USD",
) -> LedgerEntry:
    return LedgerEntry(ref, order, merchant, kind, amount, currency, batch, fee)


def kinds(report: Report) -> list[tuple[DiscrepancyKind, str | None, str | None]]:
    return [(d.kind, d.reference, d.line_id) for d in report.discrepancies]


def dispute(amount: int, status: str = "open", order: str = "bo_1") -> Dispute:
    return Dispute("dp_1", order, Money(amount, "USD"), status, "product_not_received")


def test_a_missing_capture_is_reported_unless_the_order_is_on_hold() -> None:
    ledger = [entry("je_1", "s1", 10_000)]
    assert kinds(reconcile([], ledger, batch="s1")) == [(K.MISSING_AT_PROVIDER, "je_1", None)]
    assert reconcile([], ledger, batch="s1", holds={"bo_1"}).ok
    assert reconcile([], ledger, batch="s1", holds={"PO-1"}).ok  # by merchant id too


def test_a_held_orders_line_that_does_arrive_is_matched_normally() -> None:
    ledger = [entry("je_1", "s1", 10_000)]
    assert reconcile([line("s1", "l1", 10_000)], ledger, batch="s1", holds={"bo_1"}).ok
    report = reconcile([line("s1", "l1", 10_001)], ledger, batch="s1", holds={"bo_1"})
    assert kinds(report) == [(K.AMOUNT_MISMATCH, "je_1", "l1")]


def test_held_items_are_left_out_of_the_expected_total() -> None:
    ledger = [entry("je_1", "s1", 10_000), entry("je_2", "s1", 500, order="bo_2", merchant="x")]
    [totals] = reconcile([], ledger, batch="s1", holds={"bo_1"}).totals
    assert (totals.provider_payout, totals.ledger_expected, totals.difference) == (0, 500, -500)


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param([line("s1", "l1", 6_000)], id="capture-short-by-the-disputed-amount"),
        pytest.param(
            [line("s1", "l1", 10_000), line("s1", "l2", -4_000, kind=LineKind.DISPUTE)],
            id="separate-dispute-line",
        ),
        pytest.param([], id="whole-capture-held-back"),
        pytest.param([line("s1", "l1", 10_000)], id="not-yet-withheld"),
    ],
)
def test_an_open_dispute_explains_what_the_provider_holds_back(
    lines: list[SettlementLine],
) -> None:
    report = reconcile(lines, [entry("je_1", "s1", 10_000)], batch="s1", disputes=[dispute(4_000)])
    assert report.ok, report.render_text()


def test_a_capture_short_by_something_other_than_the_dispute_is_a_mismatch() -> None:
    report = reconcile(
        [line("s1", "l1", 6_500)],
        [entry("je_1", "s1", 10_000)],
        batch="s1",
        disputes=[dispute(4_000)],
    )
    [d] = report.discrepancies
    assert (d.kind, d.expected, d.actual) == (
        K.AMOUNT_MISMATCH,
        Money(10_000, "USD"),
        Money(6_500, "USD"),
    )


def test_a_dispute_line_that_differs_from_the_dispute_is_a_mismatch() -> None:
    lines = [line("s1", "l1", 10_000), line("s1", "l2", -3_999, kind=LineKind.DISPUTE)]
    report = reconcile(lines, [entry("je_1", "s1", 10_000)], batch="s1", disputes=[dispute(4_000)])
    [d] = report.discrepancies
    assert (d.kind, d.line_id, d.expected) == (K.AMOUNT_MISMATCH, "l2", Money(-4_000, "USD"))


def test_a_dispute_line_without_a_dispute_is_missing_in_the_ledger() -> None:
    lines = [line("s1", "l1", 10_000), line("s1", "l2", -4_000, kind=LineKind.DISPUTE)]
    report = reconcile(lines, [entry("je_1", "s1", 10_000)], batch="s1")
    assert kinds(report) == [(K.MISSING_IN_LEDGER, None, "l2")]


def test_a_won_dispute_withholds_nothing_but_explains_its_reversal_line() -> None:
    won = [dispute(4_000, status="won")]
    ledger = [entry("je_1", "s1", 10_000)]
    assert kinds(reconcile([], ledger, batch="s1", disputes=won)) == [
        (K.MISSING_AT_PROVIDER, "je_1", None)
    ]
    lines = [
        line("s1", "l1", 10_000),
        line("s1", "l2", -4_000, kind=LineKind.DISPUTE),
        line("s1", "l3", 4_000, kind=LineKind.DISPUTE),
    ]
    assert reconcile(lines, ledger, batch="s1", disputes=won).ok


def test_a_line_one_batch_late_is_missing_in_its_batch_then_late_in_the_next() -> None:
    ledger = [entry("je_1", "s1", 10_000), entry("je_2", "s2", 2_500)]
    lines = [line("s2", "l1", 10_000), line("s2", "l2", 2_500)]
    first = reconcile(lines, ledger, batch="s1")
    assert kinds(first) == [(K.MISSING_AT_PROVIDER, "je_1", None)]
    assert first.lines == 0  # the s2 lines have not arrived yet
    second = reconcile(lines, ledger, batch="s2")
    assert kinds(second) == [(K.LATE, "je_1", "l1")]
    [late] = second.discrepancies
    assert late.detail == "expected in batch s1, arrived in batch s2"
    # over both batches: late, and not also missing
    assert kinds(reconcile(lines, ledger, batch="s2", since="s1")) == [(K.LATE, "je_1", "l1")]


def test_a_late_line_with_a_different_amount_is_late_and_a_mismatch() -> None:
    report = reconcile([line("s2", "l1", 10_001)], [entry("je_1", "s1", 10_000)], batch="s2")
    assert kinds(report) == [(K.AMOUNT_MISMATCH, "je_1", "l1"), (K.LATE, "je_1", "l1")]


def test_an_early_line_that_fits_is_not_a_discrepancy_and_settles_its_item() -> None:
    ledger = [entry("je_1", "s2", 10_000)]
    lines = [line("s1", "l1", 10_000)]
    assert reconcile(lines, ledger, batch="s1").ok
    assert reconcile(lines, ledger, batch="s2").ok


def test_a_missing_capture_among_several_does_not_shift_the_others() -> None:
    ledger = [entry("je_1", "s1", 1_000), entry("je_2", "s1", 2_000), entry("je_3", "s1", 3_000)]
    lines = [line("s1", "l2", 2_000), line("s1", "l3", 3_001)]
    report = reconcile(lines, ledger, batch="s1")
    assert kinds(report) == [
        (K.MISSING_AT_PROVIDER, "je_1", None),
        (K.AMOUNT_MISMATCH, "je_3", "l3"),
    ]
    assert [d.key for d in report.discrepancies] == [
        MatchKey("bo_1", CAP, 0),
        MatchKey("bo_1", CAP, 2),
    ]


def test_a_line_repeated_in_a_later_batch_is_a_duplicate_not_late() -> None:
    ledger = [entry("je_1", "s1", 10_000)]
    lines = [line("s1", "l1", 10_000), line("s2", "l9", 10_000)]
    report = reconcile(lines, ledger, batch="s2")
    assert kinds(report) == [(K.DUPLICATE, "je_1", "l9")]
    assert report.discrepancies[0].key == MatchKey("bo_1", CAP, 0)
    assert reconcile(lines, ledger, batch="s1").ok


def test_a_line_without_ledger_item_repeated_is_one_missing_and_one_duplicate() -> None:
    report = reconcile(
        [line("s1", "l1", 700), line("s1", "l2", 700)],
        [entry("je_1", "s1", 10_000, kind=LineKind.REFUND)],
        batch="s1",
        known_orders={"bo_1"},
    )
    # the refund is missing too; the capture lines are new to the ledger
    assert kinds(report) == [
        (K.MISSING_IN_LEDGER, None, "l1"),
        (K.MISSING_AT_PROVIDER, "je_1", None),
        (K.DUPLICATE, None, "l2"),
    ]


def test_two_unmatched_deposits_of_one_amount_from_different_remittances_are_not_duplicates() -> (
    None
):
    """Two remittances that happen to pay the same amount and name no order are two pieces of
    unidentified cash (the EDI approach's manual work), not one deposit seen twice."""
    pay = LineKind.PAYMENT
    lines = [
        replace(line("s1", "l1", 4_800, order=None, kind=pay), source_id="rem_1-1"),
        replace(line("s2", "l2", 4_800, order=None, kind=pay), source_id="rem_2-1"),
    ]
    report = reconcile(lines, [], batch="s2", since="s1")
    assert kinds(report) == [(K.MISSING_IN_LEDGER, None, "l1"), (K.MISSING_IN_LEDGER, None, "l2")]
    again = replace(lines[0], settlement_id="s2", line_id="l3")  # the same deposit, reported again
    assert kinds(reconcile([*lines, again], [], batch="s2", since="s1")) == [
        (K.MISSING_IN_LEDGER, None, "l1"),
        (K.MISSING_IN_LEDGER, None, "l2"),
        (K.DUPLICATE, None, "l3"),
    ]


def test_a_second_movement_with_the_content_of_a_settled_one_is_missing_not_a_duplicate() -> None:
    """Lines that name their movement (`source_id`) are duplicates only of the same movement: a
    second capture of the same amount the ledger lacks is new to the ledger."""
    ledger = [entry("je_1", "s1", 10_000)]
    first = replace(line("s1", "l1", 10_000), source_id="cap_1")
    second = replace(line("s1", "l2", 10_000), source_id="cap_2")
    assert kinds(reconcile([first, second], ledger, batch="s1", known_orders={"bo_1"})) == [
        (K.MISSING_IN_LEDGER, None, "l2")
    ]
    copy = replace(first, line_id="l3")  # the same capture under a new line id
    assert kinds(reconcile([first, copy], ledger, batch="s1")) == [(K.DUPLICATE, "je_1", "l3")]


def test_a_line_for_an_order_known_only_outside_the_ledger_is_missing_in_the_ledger() -> None:
    lines = [line("s1", "l1", 700, order=None, merchant="PO-9")]
    assert kinds(reconcile(lines, [], batch="s1")) == [(K.UNKNOWN_ORDER, None, "l1")]
    assert kinds(reconcile(lines, [], batch="s1", known_orders={"PO-9"})) == [
        (K.MISSING_IN_LEDGER, None, "l1")
    ]


def test_a_line_naming_only_the_merchant_order_finds_the_order_through_the_ledger() -> None:
    lines = [line("s1", "l1", 10_000, order=None, merchant="PO-1")]
    assert reconcile(lines, [entry("je_1", "s1", 10_000)], batch="s1").ok


def test_the_fee_is_compared_only_when_the_ledger_predicts_it() -> None:
    lines = [line("s1", "l1", 10_000, fee=290)]
    assert reconcile(lines, [entry("je_1", "s1", 10_000)], batch="s1").ok
    report = reconcile(lines, [entry("je_1", "s1", 10_000, fee=300)], batch="s1")
    [d] = report.discrepancies
    assert (d.kind, d.expected, d.actual, d.detail) == (
        K.AMOUNT_MISMATCH,
        Money(300, "USD"),
        Money(290, "USD"),
        "fee differs by -10",
    )


@pytest.mark.parametrize(("gross", "fee"), [(0, 150), (-150, 0)])
def test_a_batch_fee_line_without_order_matches_on_its_net(gross: int, fee: int) -> None:
    ledger = [entry("je_f", "s1", -150, order=None, merchant=None, kind=LineKind.FEE)]
    fee_line = line("s1", "f1", gross, order=None, kind=LineKind.FEE, fee=fee)
    assert reconcile([fee_line], ledger, batch="s1").ok


def test_a_line_in_another_currency_does_not_match() -> None:
    report = reconcile(
        [line("s1", "l1", 10_000, currency="EUR")], [entry("je_1", "s1", 10_000)], batch="s1"
    )
    assert sorted(d.kind for d in report.discrepancies) == sorted(
        [K.MISSING_IN_LEDGER, K.MISSING_AT_PROVIDER]
    )
    assert [t.currency for t in report.totals] == ["EUR", "USD"]


def test_batches_may_be_dates_given_a_settlement_to_date_mapping() -> None:
    d1, d2 = date(2026, 3, 2), date(2026, 3, 9)
    ledger = [entry("je_1", d1, 10_000)]
    lines = [line("stl_b", "l1", 10_000)]
    batch_of = {"stl_a": d1, "stl_b": d2}
    assert kinds(reconcile(lines, ledger, batch=d1, batch_of=batch_of)) == [
        (K.MISSING_AT_PROVIDER, "je_1", None)
    ]
    assert kinds(reconcile(lines, ledger, batch=d2, batch_of=batch_of)) == [(K.LATE, "je_1", "l1")]
    with pytest.raises(ValueError, match="no batch for settlement"):
        reconcile(lines, ledger, batch=d2, batch_of={"stl_a": d1})


def test_inconsistent_inputs_are_rejected() -> None:
    with pytest.raises(TypeError, match="same type"):
        reconcile([], [entry("je_1", date(2026, 1, 1), 1)], batch="s1")
    with pytest.raises(ValueError, match="not unique"):
        reconcile([], [entry("je_1", "s1", 1), entry("je_1", "s1", 2)], batch="s1")
    with pytest.raises(ValueError, match="after batch"):
        reconcile([], [], batch="s1", since="s2")


def test_the_report_counts_every_kind_and_renders_for_the_cli() -> None:
    ledger = [entry("je_1", "s1", 10_000), entry("je_2", "s1", 2_000)]
    lines = [line("s1", "l1", 10_001, fee=300), line("s1", "l5", 50, order="bo_zz")]
    report = reconcile(lines, ledger, batch="s1")
    assert report.counts == {
        K.MISSING_IN_LEDGER: 0,
        K.MISSING_AT_PROVIDER: 1,
        K.DUPLICATE: 0,
        K.AMOUNT_MISMATCH: 1,
        K.LATE: 0,
        K.UNKNOWN_ORDER: 1,
    }
    assert report.mismatch_rate == 1.5
    [totals] = report.totals
    assert (totals.provider_payout, totals.ledger_expected) == (9_751, 12_000)
    text = report.render_text()
    assert "Reconciliation of s1" in text
    assert "mismatch rate: 150.00%" in text
    assert "provider payout 97.51 USD  ledger expected 120.00 USD  difference -22.49 USD" in text
    assert "amount_mismatch     bo_1/capture#0  expected 100.00 USD  actual 100.01 USD" in text
    assert "unknown_order       bo_zz/capture#0" in text
    assert "no discrepancies" in reconcile([], [], batch="s1").render_text()


def test_discrepancies_carry_both_sides_as_money() -> None:
    [d] = reconcile([line("s1", "l1", 99, currency="JPY")], [], batch="s1").discrepancies
    assert d == Discrepancy(
        K.UNKNOWN_ORDER,
        MatchKey("bo_1", CAP, 0),
        None,
        Money(99, "JPY"),
        "order not known",
        settlement_id="s1",
        line_id="l1",
    )


def test_the_reconciliation_module_never_imports_the_simulator() -> None:
    tree = ast.parse(Path(reconcile_module.__file__).read_text())
    imported = {
        name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        )
    }
    assert not {n for n in imported if n.split(".")[0] == "simulator"}
