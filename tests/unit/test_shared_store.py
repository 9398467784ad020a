"""The store methods behind the state the worker processes share (simulator/store/shared.py):
fault rules and their claimed firings, attempt counts, the request journal. Two connections to
one file stand in for two workers; and two stores on one PostgreSQL schema for two servers
(the same statements, simulator/store/postgres.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.store import open_store
from simulator.store.base import StoredRule
from simulator.store.sqlite import SqliteStore


@pytest.fixture(params=["sqlite", "postgres"])
def two(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[SqliteStore, SqliteStore]]:
    if request.param == "sqlite":
        db = str(tmp_path / "shared.db")
    else:
        db = request.getfixturevalue("pg_server").fresh_url("shared")
    pair = open_store(db), open_store(db)
    yield pair
    for store in pair:
        store.close()


def a_rule(rule_id: str, times: int | None, account: str | None = None) -> StoredRule:
    return StoredRule(rule_id, account, times, 0, "api", f'{{"id": "{rule_id}"}}')


def test_a_rule_fires_at_most_times_across_connections(
    two: tuple[SqliteStore, SqliteStore],
) -> None:
    a, b = two
    with a.transaction() as tx:
        tx.add_fault_rule(a_rule("flt_1", 3))
    claims = []
    for store in (a, b, a, b, a):
        with store.transaction() as tx:
            claims.append(tx.claim_fault_rule("flt_1"))
    assert claims == [1, 2, 3, None, None]
    with b.transaction(write=False) as tx:
        assert [(r.id, r.fired) for r in tx.fault_rules()] == [("flt_1", 3)]


def test_a_rule_without_times_counts_every_firing_and_a_deleted_one_none(
    two: tuple[SqliteStore, SqliteStore],
) -> None:
    a, b = two
    with a.transaction() as tx:
        tx.add_fault_rule(a_rule("flt_1", None))
        tx.add_fault_rule(a_rule("flt_2", None, "acct_x"))
    with b.transaction() as tx:
        assert [tx.claim_fault_rule("flt_1") for _ in range(4)] == [1, 2, 3, 4]
        assert tx.delete_fault_rules(["flt_1", "flt_unknown"]) == 1
        assert tx.claim_fault_rule("flt_1") is None
    with a.transaction(write=False) as tx:
        assert [(r.id, r.account_id, r.origin) for r in tx.fault_rules()] == [
            ("flt_2", "acct_x", "api")
        ]


def test_attempts_count_per_account_and_key_and_are_forgotten(
    two: tuple[SqliteStore, SqliteStore],
) -> None:
    a, b = two
    with a.transaction() as tx:
        assert tx.count_attempt("acct_a", "k1", 100) == 1
        assert tx.count_attempt("acct_b", "k1", 100) == 1
    with b.transaction() as tx:
        assert tx.count_attempt("acct_a", "k1", 200) == 2
        assert tx.count_attempt("acct_a", "k2", 300) == 1
        assert tx.forget_attempts(None, seen_before_us=250) == 2  # acct_b/k1 and acct_a/k1
        assert tx.count_attempt("acct_a", "k1", 400) == 1
        assert tx.forget_attempts("acct_a") == 2
        assert tx.count_attempt("acct_a", "k2", 500) == 1


def test_the_journal_lists_every_connections_rows_newest_first_in_pages(
    two: tuple[SqliteStore, SqliteStore],
) -> None:
    a, b = two
    with a.transaction() as tx:
        assert tx.add_request("acct_a", '{"n": 1}') < tx.add_request("acct_b", '{"n": 2}')
    with b.transaction() as tx:
        tx.add_request("acct_a", '{"n": 3}')
    with a.transaction(write=False) as tx:
        everyone = tx.requests(None, before_seq=None, limit=10)
        assert [d for _, d in everyone] == ['{"n": 3}', '{"n": 2}', '{"n": 1}']
        first = tx.requests("acct_a", before_seq=None, limit=1)
        assert [d for _, d in first] == ['{"n": 3}']
        rest = tx.requests("acct_a", before_seq=first[0][0], limit=10)
        assert [d for _, d in rest] == ['{"n": 1}']


def test_a_batch_of_journal_rows_gets_the_seqs_of_its_stored_rows_in_order(
    two: tuple[SqliteStore, SqliteStore],
) -> None:
    a, b = two
    with b.transaction() as tx:
        tx.add_request("acct_b", '{"n": -1}')
    rows = [("acct_a" if i % 3 else None, f'{{"n": {i}}}') for i in range(101)]  # 64+32+4+1
    with a.transaction() as tx:
        seqs = tx.add_requests(rows)
    with b.transaction() as tx:
        tx.add_request("acct_b", '{"n": 101}')
    with a.transaction(write=False) as tx:
        stored = dict(tx.requests(None, before_seq=None, limit=200))
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(rows)
    assert [stored[seq] for seq in seqs] == [data for _, data in rows]
    with a.transaction(write=False) as tx:
        assert [d for _, d in tx.requests("acct_a", before_seq=None, limit=1)] == ['{"n": 100}']


def test_the_journal_is_trimmed_to_the_newest_rows_of_one_account(
    two: tuple[SqliteStore, SqliteStore],
) -> None:
    a, _ = two
    with a.transaction() as tx:
        for i in range(5):
            tx.add_request("acct_a", f'{{"n": {i}}}')
        tx.add_request("acct_b", '{"n": 9}')
        assert tx.forget_requests("acct_a", keep=2) == 3
        assert [d for _, d in tx.requests("acct_a", before_seq=None, limit=10)] == [
            '{"n": 4}',
            '{"n": 3}',
        ]
        assert tx.forget_requests("acct_a") == 2
        assert tx.forget_requests(None) == 1
        assert tx.requests(None, before_seq=None, limit=10) == []


def test_the_shared_state_survives_reopening_the_file(tmp_path: Path) -> None:
    path = str(tmp_path / "kept.db")
    first = SqliteStore(path)
    with first.transaction() as tx:
        tx.add_fault_rule(a_rule("flt_1", 2))
        tx.claim_fault_rule("flt_1")
        tx.add_request("acct_a", "{}")
    first.close()
    again = SqliteStore(path)
    with again.transaction() as tx:
        assert [(r.id, r.fired, r.times) for r in tx.fault_rules()] == [("flt_1", 1, 2)]
        assert len(tx.requests(None, before_seq=None, limit=10)) == 1
