"""The fan-out from the outbox (simulator.webhooks.fanout) against a SQLite file: every event
is fanned out once, whoever fans out and however many do it at the same time; the cursor is
durable and moves with the deliveries; delivery ids are a function of event and endpoint."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from factories import ADMIN, ADMIN_TOKEN, BASE_URL, START, Api, deterministic_entropy

from simulator.app import create_app
from simulator.clock import ManualClock
from simulator.settings import Settings
from simulator.store.sqlite import MIGRATIONS, SqliteStore, SqliteTx
from simulator.webhooks import fanout

HOOK = "http://127.0.0.1:9/hook"


def _api(path: Path) -> Api:
    wall = ManualClock(START)
    app = create_app(
        Settings(
            db=str(path), data_dir=path.parent, admin_token=ADMIN_TOKEN, seed=1, public_url=BASE_URL
        ),
        wall_clock=wall,
        entropy=deterministic_entropy(),
        webhook_transport=httpx.MockTransport(lambda r: httpx.Response(204)),
    )
    return Api(app, wall)


def _buyer(api: Api, headers: dict[str, str], n: int) -> None:
    r = api.post(
        "/v1/buyers",
        headers=headers,
        json={"legal_name": f"Buyer {n}", "email": f"ap+approve@b{n}.test"},
    )
    assert r.status_code == 201, r.text


def _deliveries_per_event(store: SqliteStore) -> Counter[str]:
    rows = store.conn.execute("SELECT event_id FROM webhook_deliveries").fetchall()
    return Counter(str(r[0]) for r in rows)


def test_concurrent_fan_outs_make_one_delivery_per_event_and_endpoint(tmp_path: Path) -> None:
    """Two other connections (two dispatchers) fan out in a loop while the API writes."""
    path = tmp_path / "sandbank.db"
    api = _api(path)
    try:
        account = api.new_account(seed=5)
        r = api.post("/v1/webhook_endpoints", headers=account.headers, json={"url": HOOK})
        assert r.status_code == 201, r.text
        stop = threading.Event()
        made: list[int] = []
        errors: list[BaseException] = []

        def dispatcher() -> None:
            store = SqliteStore(str(path))
            deadline = time.monotonic() + 20
            try:
                for _ in range(10_000):
                    if stop.is_set() or time.monotonic() > deadline:
                        break
                    with store.transaction() as tx:
                        made.append(fanout.fan_out(tx))
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                store.close()

        threads = [threading.Thread(target=dispatcher) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            for n in range(60):
                _buyer(api, account.headers, n)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        assert errors == []
        store = api.app.runtime.store
        with store.transaction() as tx:
            made.append(fanout.fan_out(tx))  # what the dispatchers had not reached yet
        per_event = _deliveries_per_event(store)
        events = store.conn.execute("SELECT count(*), max(seq) FROM events").fetchone()
        assert len(per_event) == events[0] == 60
        assert set(per_event.values()) == {1}
        assert sum(made) == 60  # counted as made once each: none fanned out twice
        assert int(store.meta("webhook_fanout_seq")) == events[1]
    finally:
        api.app.runtime.store.close()
        api.close()


def test_a_cursor_set_back_makes_no_second_delivery(tmp_path: Path) -> None:
    path = tmp_path / "sandbank.db"
    api = _api(path)
    try:
        account = api.new_account(seed=5)
        r = api.post("/v1/webhook_endpoints", headers=account.headers, json={"url": HOOK})
        assert r.status_code == 201, r.text
        for n in range(3):
            _buyer(api, account.headers, n)
        store = api.app.runtime.store
        with store.transaction() as tx:
            assert fanout.fan_out(tx) == 3
            assert fanout.fan_out(tx) == 0  # the cursor moved with them
        before = store.conn.execute("SELECT id, data FROM webhook_deliveries").fetchall()
        with store.transaction() as tx:
            tx.set_fanout_cursor(0)
            fanout.fan_out(tx)
        after = store.conn.execute("SELECT id, data FROM webhook_deliveries").fetchall()
        assert after == before
    finally:
        api.app.runtime.store.close()
        api.close()


def test_a_database_from_before_the_cursor_starts_it_after_its_last_event(
    tmp_path: Path,
) -> None:
    """Migration 4 on a database whose deliveries were written with their events."""
    path = tmp_path / "sandbank.db"
    store = SqliteStore(str(path))
    store.conn.execute("DELETE FROM meta WHERE key = 'webhook_fanout_seq'")
    store.conn.execute("DELETE FROM schema_migrations WHERE version = 4")  # re-applied alone
    for n in range(3):
        store.conn.execute(
            "INSERT INTO events (account_id, id, type, object_id, data) VALUES (?, ?, ?, ?, ?)",
            ("acct_old", f"evt_old{n}", "buyer.created", f"buy_{n}", "{}"),
        )
    store.close()
    store = SqliteStore(str(path))
    try:
        assert store.schema_version() == len(MIGRATIONS)
        assert store.meta("webhook_fanout_seq") == "3"
    finally:
        store.close()


def test_a_delivery_id_is_a_function_of_its_event_and_endpoint() -> None:
    a = fanout.delivery_id("acct_1", "evt_1", "we_1")
    assert a == fanout.delivery_id("acct_1", "evt_1", "we_1")
    assert a.startswith("whd_")
    assert len(a) == len("whd_") + 20
    assert len({a, fanout.delivery_id("acct_1", "evt_2", "we_1")}) == 2
    assert len({a, fanout.delivery_id("acct_1", "evt_1", "we_2")}) == 2
    assert len({a, fanout.delivery_id("acct_2", "evt_1", "we_1")}) == 2


def test_a_batch_planned_before_a_change_is_not_written_over_it(tmp_path: Path) -> None:
    """The dispatcher plans a batch from reads, then writes it under the lock only if the
    cursor has not moved and the accounts' endpoints read the same."""
    path = tmp_path / "sandbank.db"
    api = _api(path)
    try:
        account = api.new_account(seed=5)
        r = api.post("/v1/webhook_endpoints", headers=account.headers, json={"url": HOOK})
        assert r.status_code == 201, r.text
        endpoint_id = r.json()["id"]
        _buyer(api, account.headers, 1)
        store = api.app.runtime.store
        with store.read() as tx:
            stale = fanout.plan(tx, after=0, limit=10)
            assert stale is not None
            assert len(stale.deliveries) == 1
        r = api.post(f"/v1/webhook_endpoints/{endpoint_id}/rotate_secret", headers=account.headers)
        assert r.status_code == 200, r.text  # changes the endpoint, not the cursor
        with store.transaction() as tx:
            assert not fanout.apply(tx, stale)
        assert _deliveries_per_event(store) == Counter()
        with store.read() as tx:
            fresh = fanout.plan(tx, after=0, limit=10)
            assert fresh is not None
        with store.transaction() as tx:
            assert fanout.fan_out(tx) == 1  # someone else fanned out: the cursor moved
            assert not fanout.apply(tx, fresh)
        assert sum(_deliveries_per_event(store).values()) == 1
    finally:
        api.app.runtime.store.close()
        api.close()


def test_a_large_fan_out_is_written_in_bounded_batches_each_event_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #17: 12 events to 7 endpoints (84 deliveries) with batches bounded at 20
    deliveries: a flush writes them in several short transactions, none bigger than the bound
    plus one event's worth, and every event reaches every endpoint once."""
    monkeypatch.setattr(fanout, "MAX_DELIVERIES", 20)
    sizes: list[int] = []
    insert = SqliteTx.insert_fanned_out

    def counted(self: SqliteTx, rows: list[Any]) -> None:
        sizes.append(len(rows))
        insert(self, rows)

    monkeypatch.setattr(SqliteTx, "insert_fanned_out", counted)
    path = tmp_path / "sandbank.db"
    api = _api(path)
    try:
        account = api.new_account(seed=5)
        for _ in range(7):
            r = api.post("/v1/webhook_endpoints", headers=account.headers, json={"url": HOOK})
            assert r.status_code == 201, r.text
        for n in range(12):
            _buyer(api, account.headers, n)
        assert api.post("/_sandbox/webhooks/flush", headers=ADMIN, json={}).status_code == 200
        assert sum(sizes) == 84
        assert len(sizes) >= 4
        assert max(sizes) <= 20 + 7
        assert set(_deliveries_per_event(api.app.runtime.store).values()) == {7}
    finally:
        api.app.runtime.store.close()
        api.close()


def test_an_endpoint_created_during_a_fan_out_backlog_gets_none_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before an endpoint is created, the events not yet fanned out are, in bounded batches
    (small here) of their own transactions; the new endpoint gets none of them."""
    monkeypatch.setattr(fanout, "MAX_DELIVERIES", 3)
    path = tmp_path / "sandbank.db"
    api = _api(path)
    try:
        account = api.new_account(seed=5)
        for _ in range(2):
            r = api.post("/v1/webhook_endpoints", headers=account.headers, json={"url": HOOK})
            assert r.status_code == 201, r.text
        for n in range(6):
            _buyer(api, account.headers, n)
        r = api.post("/v1/webhook_endpoints", headers=account.headers, json={"url": HOOK})
        assert r.status_code == 201, r.text
        store = api.app.runtime.store
        assert set(_deliveries_per_event(store).values()) == {2}
        late = store.conn.execute(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE endpoint_id = ?", (r.json()["id"],)
        ).fetchone()[0]
        assert late == 0
    finally:
        api.app.runtime.store.close()
        api.close()
