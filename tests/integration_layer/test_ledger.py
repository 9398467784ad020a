"""The reference integration's ledger and GL mapping: double entry, append-only, idempotent,
configured by YAML. Property tests drive random event sequences (with reversals and
corrections) through the in-memory and SQLite stores side by side."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from integration import gl_mapping
from integration.gl_mapping import DEFAULT_MAPPING_PATH, GlMapping, GlMappingError
from integration.ledger import (
    REVERSAL,
    InvalidEntry,
    Ledger,
    Leg,
    MemoryLedgerStore,
    NotReversible,
    Posting,
    SqliteLedgerStore,
    UnbalancedPosting,
    _assert_balanced,
    trial_balances,
)
from integration.model import EventKind

AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
RECEIVABLE = "1210 Receivable - Credit provider"
REVENUE = "4000 Revenue - Sales"
CASH = "1010 Cash - Operating account"
FEES = "6100 Merchant discount fees - Credit provider"
INSTALLMENT_FEES = "6110 Merchant discount fees - Installments"
TAX = "2300 Sales tax payable"
MEMO_ONLY = {
    EventKind.AUTHORIZED,
    EventKind.DECLINED,
    EventKind.EXPIRED,
    EventKind.CANCELED,
    EventKind.PAYMENT_RECEIVED,  # the provider collects from the buyer (embedded credit)
    EventKind.PAYMENT_REFUNDED,
}

DEFAULT = gl_mapping.load()

currencies = st.sampled_from(["USD", "EUR", "JPY", "KWD"])
amounts = st.integers(min_value=0, max_value=10**12)
references = st.sampled_from([f"ord_{n}" for n in range(6)])
terms_codes = st.sampled_from([None, "net30", "installments_12", "not_configured"])
kinds = st.sampled_from(list(EventKind))

post_ops = st.tuples(st.just("post"), kinds, amounts, amounts, currencies, references, terms_codes)
reverse_ops = st.tuples(st.just("reverse"), st.integers(min_value=0, max_value=50))
correct_ops = st.tuples(
    st.just("correct"), st.integers(min_value=0, max_value=50), amounts, amounts
)
operations = st.lists(st.one_of(post_ops, post_ops, reverse_ops, correct_ops), max_size=30)


def apply(ledger: Ledger, ops: list[tuple[Any, ...]]) -> None:
    """Run a random sequence of posts, reversals and corrections (invalid targets skipped)."""
    for step, op in enumerate(ops):
        at = AT + timedelta(minutes=step)
        if op[0] == "post":
            _, kind, gross, fee, currency, reference, terms = op
            ledger.post(kind, {"gross": gross, "fee": fee}, currency, reference, at=at, terms=terms)
            continue
        existing = [p for p in ledger.postings() if p.reverses is None]
        if not existing:
            continue
        target = existing[op[1] % len(existing)]
        if op[0] == "reverse":
            ledger.reverse(target.id, "entered in error", at)
        else:
            ledger.correct(target.id, "wrong amount", {"gross": op[2], "fee": op[3]}, at)


def books(ledger: Ledger) -> dict[str, dict[str, int]]:
    """Every currency's non-empty trial balance."""
    return {currency: tb for currency, tb in trial_balances(ledger).items() if tb}


def assert_balanced_books(ledger: Ledger) -> None:
    for posting in ledger.postings():
        _assert_balanced(posting)
        assert sum(leg.debit for leg in posting.legs) == sum(leg.credit for leg in posting.legs)
    for currency, balances in trial_balances(ledger).items():
        assert sum(balances.values()) == 0, currency
        assert all(amount != 0 for amount in balances.values())


@pytest.fixture
def ledger() -> Iterator[Ledger]:
    with Ledger.in_memory() as book:
        yield book


def default_data() -> dict[str, Any]:
    data = yaml.safe_load(DEFAULT_MAPPING_PATH.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


# -- ledger properties ---------------------------------------------------------------------------


@given(ops=operations)
def test_every_posting_balances_and_each_currencys_trial_balance_sums_to_zero(
    ops: list[tuple[Any, ...]],
) -> None:
    with Ledger.in_memory() as memory, Ledger.sqlite(":memory:") as sql:
        apply(memory, ops)
        apply(sql, ops)
        assert_balanced_books(memory)
        assert_balanced_books(sql)
        assert trial_balances(memory) == trial_balances(sql)
        assert [p.id for p in memory.postings()] == [p.id for p in sql.postings()]
        assert memory.postings() == sql.postings()


@given(ops=operations, kind=kinds, gross=amounts, fee=amounts, currency=currencies)
def test_a_reversal_brings_every_affected_balance_back(
    ops: list[tuple[Any, ...]], kind: EventKind, gross: int, fee: int, currency: str
) -> None:
    with Ledger.in_memory() as ledger:
        apply(ledger, ops)
        before = books(ledger)
        posting = ledger.post(kind, {"gross": gross, "fee": fee}, currency, "probe", at=AT)
        if posting is None:
            assert books(ledger) == before
            return
        touched = {leg.account for leg in posting.legs}
        reversal = ledger.reverse(posting.id, "probe", AT)
        assert reversal.reverses == posting.id
        assert reversal.event_kind == REVERSAL
        assert books(ledger) == before
        for account in touched:
            assert ledger.balance(account, currency) == before.get(currency, {}).get(account, 0)


@given(ops=operations, kind=kinds, gross=amounts, fee=amounts, other=amounts, currency=currencies)
def test_posting_the_same_event_and_reference_twice_is_a_no_op(
    *, ops: list[tuple[Any, ...]], kind: EventKind, gross: int, fee: int, other: int, currency: str
) -> None:
    """At-least-once webhooks: a redelivery returns the posting already written, and once a
    posting exists even different figures for the same (event, reference) write nothing."""
    with Ledger.in_memory() as ledger:
        apply(ledger, ops)
        figures = {"gross": gross, "fee": fee}
        once = ledger.post(kind, figures, currency, "cap_dup", at=AT)
        count, balances = len(ledger.postings()), books(ledger)
        assert ledger.post(kind, figures, currency, "cap_dup", at=AT) == once
        if once is not None:
            later = AT + timedelta(days=1)
            assert ledger.post(kind, {"gross": other}, "EUR", "cap_dup", at=later) == once
        assert len(ledger.postings()) == count
        assert books(ledger) == balances


@given(ops=operations)
def test_the_sqlite_ledger_survives_reopening_with_the_same_books(
    tmp_path: Path, ops: list[tuple[Any, ...]]
) -> None:
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "ledger.db"
    with Ledger.sqlite(path) as ledger:
        apply(ledger, ops)
        books, postings = trial_balances(ledger), ledger.postings()
    with Ledger.sqlite(path) as reopened:
        assert trial_balances(reopened) == books
        assert reopened.postings() == postings
        # Idempotency is durable too: replaying every event after the restart writes nothing.
        apply(reopened, [op for op in ops if op[0] == "post"])
        assert len(reopened.postings()) == len(postings)


def test_the_sqlite_tables_refuse_updates_and_deletes(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.sqlite(path) as ledger:
        ledger.post(EventKind.CAPTURED, {"gross": 100_00}, "USD", "cap_1", at=AT)
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        for sql in (
            "UPDATE legs SET debit = debit + 1",
            "DELETE FROM legs",
            "UPDATE postings SET currency = 'EUR'",
            "DELETE FROM postings",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.execute(sql)
    finally:
        db.close()


# -- ledger behaviour ----------------------------------------------------------------------------


def test_capture_fee_and_payout_clear_the_provider_receivable(ledger: Ledger) -> None:
    """The worked example in gl_mapping.yaml, installments_12 terms."""
    terms = "installments_12"
    ledger.post(EventKind.CAPTURED, {"gross": 100_000}, "USD", "cap_1", at=AT, terms=terms)
    ledger.post(EventKind.SETTLEMENT_FEE, {"fee": 3_500}, "USD", "stl_1:fee", at=AT, terms=terms)
    ledger.post(EventKind.PAYOUT, {"net": 96_500}, "USD", "stl_1", at=AT)
    assert ledger.trial_balance("USD") == {
        CASH: 96_500,
        REVENUE: -100_000,
        INSTALLMENT_FEES: 3_500,
    }
    assert ledger.balance(RECEIVABLE, "USD") == 0


def test_memo_only_events_post_nothing(ledger: Ledger) -> None:
    for kind in MEMO_ONLY:
        assert ledger.post(kind, {"gross": 5_000}, "USD", "ord_1", at=AT) is None
    assert ledger.postings() == []


def test_an_all_zero_event_posts_nothing(ledger: Ledger) -> None:
    assert ledger.post(EventKind.CAPTURED, {"gross": 0}, "USD", "cap_0", at=AT) is None
    assert ledger.postings() == []


def test_a_negative_payout_posts_the_other_way_round(ledger: Ledger) -> None:
    posting = ledger.post(EventKind.PAYOUT, {"net": -2_500}, "USD", "stl_neg", at=AT)
    assert posting is not None
    assert set(posting.legs) == {Leg(CASH, 0, 2_500), Leg(RECEIVABLE, 2_500, 0)}


def test_a_correction_reverses_and_reposts_and_answers_later_redeliveries(ledger: Ledger) -> None:
    wrong = ledger.post(EventKind.CAPTURED, {"gross": 10_000}, "USD", "cap_7", at=AT)
    assert wrong is not None
    reversal, fixed = ledger.correct(wrong.id, "invoice was 120.00", {"gross": 12_000}, AT)
    assert reversal.reverses == wrong.id
    assert fixed is not None
    assert fixed.replaces == wrong.id
    assert ledger.balance(RECEIVABLE, "USD") == 12_000
    # The webhook for the original capture arrives again: nothing new, the correction stands.
    assert ledger.post(EventKind.CAPTURED, {"gross": 10_000}, "USD", "cap_7", at=AT) == fixed
    assert ledger.correct(wrong.id, "retry", {"gross": 12_000}, AT) == (reversal, fixed)
    assert len(ledger.postings(reference="cap_7")) == 3


def test_reversing_twice_returns_the_first_reversal(ledger: Ledger) -> None:
    posting = ledger.post(EventKind.CAPTURED, {"gross": 10_000}, "USD", "cap_8", at=AT)
    assert posting is not None
    first = ledger.reverse(posting.id, "duplicate order", AT)
    assert ledger.reverse(posting.id, "again", AT + timedelta(hours=1)) == first
    assert len(ledger.postings()) == 2


def test_a_reversal_cannot_itself_be_reversed(ledger: Ledger) -> None:
    posting = ledger.post(EventKind.CAPTURED, {"gross": 10_000}, "USD", "cap_9", at=AT)
    assert posting is not None
    reversal = ledger.reverse(posting.id, "error", AT)
    with pytest.raises(NotReversible):
        ledger.reverse(reversal.id, "undo", AT)


def test_tax_is_carved_out_of_revenue_with_half_even_rounding() -> None:
    data = default_data()
    data["events"]["captured"]["tax"]["rate_bp"] = 825
    with Ledger.in_memory(gl_mapping.parse(data)) as ledger:
        ledger.post(EventKind.CAPTURED, {"gross": 100_000}, "USD", "cap_t", at=AT)
        assert ledger.trial_balance("USD") == {
            RECEIVABLE: 100_000,
            REVENUE: -92_379,
            TAX: -7_621,
        }
        ledger.post(EventKind.CAPTURED, {"gross": 1_000, "tax": 80}, "USD", "cap_u", at=AT)
        assert ledger.balance(TAX, "USD") == -7_701


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [(5, 2, 2), (7, 2, 4), (1, 3, 0), (2, 3, 1), (25, 10, 2), (35, 10, 4), (0, 7, 0)],
)
def test_round_half_even(numerator: int, denominator: int, expected: int) -> None:
    assert gl_mapping.round_half_even(numerator, denominator) == expected


@pytest.mark.parametrize(
    ("figures", "currency", "reference", "at", "match"),
    [
        ({"gross": 1.5}, "USD", "r", AT, "integer"),
        ({"gross": True}, "USD", "r", AT, "integer"),
        ({"grosss": 100}, "USD", "r", AT, "unknown figure"),
        ({"gross": 100, "fee": 1, "net": 50}, "USD", "r", AT, "net 50 is not"),
        ({"fee": 1}, "USD", "r", AT, "needs the 'gross' figure"),
        ({}, "USD", "r", AT, "needs the 'gross' figure"),
        ({"gross": 100, "tax": 5}, "USD", "r", AT, "no tax treatment"),
        ({"gross": 100}, "usd", "r", AT, "ISO 4217"),
        ({"gross": 100}, "USD", "", AT, "reference"),
        ({"gross": 100}, "USD", "r", AT.replace(tzinfo=None), "timezone"),
    ],
)
def test_bad_requests_are_refused_before_anything_is_written(
    *,
    ledger: Ledger,
    figures: dict[str, Any],
    currency: str,
    reference: str,
    at: datetime,
    match: str,
) -> None:
    data = default_data()
    data["events"]["captured"].pop("tax")
    data["events"]["captured"]["legs"][1].pop("taxable")
    with Ledger.in_memory(gl_mapping.parse(data)) as book, pytest.raises(InvalidEntry, match=match):
        book.post(EventKind.CAPTURED, figures, currency, reference, at=at)
    assert ledger.postings() == []


def _posting(*legs: Leg, currency: str = "USD") -> Posting:
    return Posting("pst_x", AT, EventKind.CAPTURED, "ref", currency, legs)


@pytest.mark.parametrize(
    ("posting", "match"),
    [
        (_posting(), "at least one leg"),
        (_posting(Leg("A", 100, 0), Leg("B", 0, 99)), "debits 100 != credits 99"),
        (_posting(Leg("A", -5, 0), Leg("B", 0, -5)), "never negative"),
        (_posting(Leg("A", 5, 5)), "exactly one"),
        (_posting(Leg("A", 0, 0)), "exactly one"),
        (_posting(Leg("A", 1.0, 0), Leg("B", 0, 1)), "integer"),  # type: ignore[arg-type]
        (_posting(Leg("", 1, 0), Leg("B", 0, 1)), "empty"),
        (_posting(Leg("A", 1, 0), Leg("B", 0, 1), currency="dollars"), "ISO 4217"),
    ],
)
@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
def test_stores_refuse_postings_that_do_not_balance(
    posting: Posting, match: str, store_kind: str
) -> None:
    store = MemoryLedgerStore() if store_kind == "memory" else SqliteLedgerStore(":memory:")
    good = replace(_posting(Leg("A", 1, 0), Leg("B", 0, 1)), id="pst_good")
    with pytest.raises(UnbalancedPosting, match=match):
        store.append([good, posting])
    assert store.postings() == []  # all or nothing
    store.close()


# -- the mapping file ----------------------------------------------------------------------------


def test_the_packaged_default_mapping_loads_and_lists_every_event() -> None:
    mapping = gl_mapping.load(DEFAULT_MAPPING_PATH)
    assert set(mapping.events) == set(EventKind)
    assert {kind for kind, rule in mapping.events.items() if not rule.legs} == MEMO_ONLY
    assert all(rule.memo for rule in mapping.events.values())


@given(
    kind=kinds,
    gross=st.integers(min_value=-(10**12), max_value=10**12),
    fee=amounts,
    rate_bp=st.integers(min_value=0, max_value=10_000),
    terms=terms_codes,
)
def test_mapped_legs_balance_for_any_figures_and_tax_rate(
    kind: EventKind, gross: int, fee: int, rate_bp: int, terms: str | None
) -> None:
    data = default_data()
    data["events"]["captured"]["tax"]["rate_bp"] = rate_bp
    data["events"]["refunded"]["tax"]["rate_bp"] = rate_bp
    legs = gl_mapping.parse(data).resolve(kind, {"gross": gross, "fee": fee}, terms)
    assert all(leg.amount > 0 for leg in legs)
    debits = sum(leg.amount for leg in legs if leg.side == "debit")
    assert debits == sum(leg.amount for leg in legs if leg.side == "credit")


def _mutate(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is _DELETE:
        del node[int(last) if isinstance(node, list) else last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("events.captured.legs.1.side", "debet", "events.captured.legs[1].side: "),
        ("events.captured.legs.1.amount", "net", "events.captured.legs: debits and credits differ"),
        ("events.payout.legs.0.account", "  ", "events.payout.legs[0].account: "),
        ("events.payout.legs.0.colour", "red", "events.payout.legs[0].colour: "),
        ("events.captured.tax.rate_bp", "825", "events.captured.tax.rate_bp: "),
        ("events.captured.tax.rate_bp", 10_001, "events.captured.tax.rate_bp: "),
        ("events.captured.tax", _DELETE, "events.captured: a leg is taxable"),
        ("events.settlement_fee.tax", {"rate_bp": 0, "account": "X"}, "no leg is marked"),
        ("events.shipped", {"memo": "?"}, "events.shipped: unknown event kind"),
        ("events.dispute_won", _DELETE, "events: every event must be listed"),
        ("version", 2, "version: "),
        ("terms.net30.accounts", {"1299 Typo": "1298 Other"}, "terms.net30.accounts: '1299 Typo'"),
    ],
)
def test_mapping_errors_are_one_line_naming_file_entry_and_field(
    tmp_path: Path, path: str, value: Any, expected: str
) -> None:
    data = default_data()
    _mutate(data, path, value)
    target = tmp_path / "gl_mapping.yaml"
    target.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(GlMappingError) as caught:
        gl_mapping.load(target)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{target}: ")
    assert expected in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("events: [unclosed", "not valid YAML at line"),
        ("- just\n- a list\n", "top level must be a mapping"),
    ],
)
def test_unreadable_mapping_files_are_one_line_errors(
    tmp_path: Path, text: str, expected: str
) -> None:
    target = tmp_path / "broken.yaml"
    target.write_text(text, encoding="utf-8")
    with pytest.raises(GlMappingError, match=expected) as caught:
        gl_mapping.load(target)
    assert "\n" not in str(caught.value)
    with pytest.raises(GlMappingError, match="cannot read"):
        gl_mapping.load(tmp_path / "missing.yaml")


def test_terms_swap_accounts_only_for_those_terms() -> None:
    mapping: GlMapping = DEFAULT
    plain = mapping.resolve(EventKind.SETTLEMENT_FEE, {"fee": 10}, None)
    installments = mapping.resolve(EventKind.SETTLEMENT_FEE, {"fee": 10}, "installments_12")
    unknown = mapping.resolve(EventKind.SETTLEMENT_FEE, {"fee": 10}, "net90")
    assert {leg.account for leg in plain} == {FEES, RECEIVABLE}
    assert {leg.account for leg in installments} == {INSTALLMENT_FEES, RECEIVABLE}
    assert unknown == plain
