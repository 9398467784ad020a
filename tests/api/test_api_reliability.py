"""Issue #17, request level: lock contention is a 503 (never a stall or a 500), heavy work runs
in steps with the same results, every error is problem+json, and the body rules (duplicate
keys, U+0000, charsets, whitespace), account paging and webhook metadata hosts."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from factories import (
    ADMIN,
    Account,
    Api,
    build_app,
    checkout_body,
    file_app,
)
from test_api_errors import assert_problem

from simulator import stepping
from simulator.clock import ManualClock
from simulator.store.sqlite import SqliteStore

JSON = {"Content-Type": "application/json"}


# --- body rules ----------------------------------------------------------------------------
def test_a_duplicate_json_key_is_refused_naming_the_key(api: Api, account: Account) -> None:
    r = api.post(
        "/v1/orders/ord_x/captures",
        headers={**account.headers, **JSON},
        content=b'{"amount": -5, "amount": 1}',
    )
    doc = assert_problem(r, 400, "duplicate_key")
    assert "'amount'" in doc["detail"]


def test_a_duplicate_key_in_a_nested_object_is_refused(api: Api, account: Account) -> None:
    raw = (
        b'{"amount": 1000, "currency": "USD", "buyer": {"legal_name": "A", "legal_name": "B"}, '
        b'"return_url": "https://s.test/r", "cancel_url": "https://s.test/c"}'
    )
    doc = assert_problem(
        api.post("/v1/checkouts", headers={**account.headers, **JSON}, content=raw), 400
    )
    assert doc["code"] == "duplicate_key"
    assert "'legal_name'" in doc["detail"]


def test_a_nul_character_in_a_string_is_kept_as_sent(api: Api, account: Account) -> None:
    """U+0000 is valid JSON and the published schemas allow it: stored and given back as sent,
    in the answer, a later read and the CSV export."""
    body = checkout_body()
    body["buyer"]["legal_name"] = "Acme\u0000Co"
    body["metadata"] = {"k\u0000ey": "v\u0000"}
    r = api.post("/v1/checkouts", headers=account.headers, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["metadata"] == {"k\u0000ey": "v\u0000"}
    buyer = api.buyer(account, r.json()["buyer_id"])
    assert buyer["legal_name"] == "Acme\u0000Co"
    export = api.post("/v1/exports", headers=account.headers, json={"format": "csv"})
    assert export.status_code == 201, export.text


def test_a_body_in_another_charset_is_415(api: Api, account: Account) -> None:
    body = '{"amount": 1}'
    for charset, status in (("utf-16", 415), ("latin-1", 415), ("UTF-8", 404), ('"utf-8"', 404)):
        r = api.post(
            "/v1/orders/ord_missing/captures",
            headers={**account.headers, "Content-Type": f"application/json; charset={charset}"},
            content=body.encode("utf-16" if charset == "utf-16" else "utf-8"),
        )
        assert_problem(r, status, "unsupported_media_type" if status == 415 else "not_found")


@pytest.mark.parametrize("raw", [b"\x0b", b"\x0c", b" \x0c\n"])
def test_a_body_of_non_json_whitespace_is_malformed_not_empty(api: Api, raw: bytes) -> None:
    r = api.post("/_sandbox/accounts", headers={**ADMIN, **JSON}, content=raw)
    assert_problem(r, 400, "malformed_json")


def test_a_body_of_json_whitespace_is_empty(api: Api) -> None:
    r = api.post("/_sandbox/accounts", headers={**ADMIN, **JSON}, content=b" \t\r\n")
    assert r.status_code == 201, r.text


# --- paging --------------------------------------------------------------------------------
def test_the_account_listing_pages_with_limit_and_cursor(api: Api) -> None:
    made = [api.new_account(seed=n).id for n in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/_sandbox/accounts", headers=ADMIN, params=params).json()
        assert len(page["data"]) <= 2
        seen += [a["id"] for a in page["data"]]
        cursor = page["next_cursor"]
        assert page["has_more"] == (cursor is not None)
        if cursor is None:
            break
    assert seen[-5:] == made
    assert len(set(seen)) == len(seen)
    assert_problem(api.get("/_sandbox/accounts?limit=101", headers=ADMIN), 422)
    assert_problem(api.get("/_sandbox/accounts?cursor=nope", headers=ADMIN), 422)


# --- webhook hosts -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://[fd00:ec2::254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://0xa9fea9fe/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fe80::1]/hook",
    ],
)
def test_a_wildcard_webhook_host_never_allows_cloud_metadata(clock: ManualClock, url: str) -> None:
    api = Api(build_app(clock=clock, webhook_allowed_hosts=("*", "169.254.169.254")), clock)
    try:
        account = api.new_account()
        r = api.post("/v1/webhook_endpoints", headers=account.headers, json={"url": url})
        doc = assert_problem(r, 422, "webhook_url_not_allowed")
        assert "metadata" in doc["detail"]
        ok = api.post(
            "/v1/webhook_endpoints", headers=account.headers, json={"url": "http://shop.test/h"}
        )
        assert ok.status_code == 201, ok.text
    finally:
        api.close()


# --- errors are problems ---------------------------------------------------------------------
def test_an_unexpected_exception_is_a_500_problem_not_a_plain_page(
    api: Api, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(api.app.runtime.service, "list_orders", broken)
    assert_problem(api.get("/v1/orders", headers=account.headers), 500, "internal_error")
    assert_problem(api.get("/no/such/page"), 404)
    assert_problem(api.request("DELETE", "/v1/orders", headers=account.headers), 405)


def test_a_database_lock_not_ours_is_a_503_problem(
    api: Api, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    def locked(*args: Any, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(api.app.runtime.service, "list_orders", locked)
    r = api.get("/v1/orders", headers=account.headers)
    assert_problem(r, 503, "store_busy")
    assert r.headers["retry-after"] == "1"


# --- lock contention across connections (a file database) -----------------------------------
async def _lock_held(
    path: Path, hold_s: float, locked: asyncio.Event, release: asyncio.Event | None = None
) -> bool:
    """Another process's writer: holds the write lock for `hold_s`, or until `release` is set
    if one is given (then True if it was set in time). Its own connection, on the loop: BEGIN
    IMMEDIATE and ROLLBACK do not wait."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    locked.set()
    released = False
    if release is None:
        await asyncio.sleep(hold_s)
    else:
        with contextlib.suppress(TimeoutError):
            released = await asyncio.wait_for(release.wait(), hold_s)
    other.execute("ROLLBACK")
    other.close()
    return released


def test_a_write_waits_for_another_connections_lock_without_blocking_reads(
    tmp_path: Path, clock: ManualClock
) -> None:
    """While another connection holds the write lock, writes wait for it off the loop (then all
    succeed once it is let go) and reads of the same process answer meanwhile. Ordered by
    events, not by timings: the holder keeps the lock until the reads are done (a read that
    waited for it would keep it until the holder's 10 s deadline, and fail the test)."""
    app = file_app(tmp_path, clock, lock_wait_s=30.0)
    api = Api(app, clock)
    account = api.new_account()

    async def scenario() -> tuple[bool, bool, bool, set[int]]:
        locked, release = asyncio.Event(), asyncio.Event()
        holder = asyncio.create_task(
            _lock_held(tmp_path / "sandbank.db", 10.0, locked, release=release)
        )
        await locked.wait()
        writes = [
            asyncio.create_task(
                api.client.post("/v1/checkouts", headers=account.headers, json=checkout_body())
            )
            for _ in range(3)  # several waiting at once: the first to get the lock holds it
        ]
        for _ in range(5):
            r = await api.client.get("/v1/orders", headers=account.headers)
            assert r.status_code == 200, r.text
        await asyncio.sleep(0.05)  # the writes' polls get turns, and find the lock taken
        held_through_reads = not holder.done()
        writes_waited = not any(write.done() for write in writes)
        release.set()
        statuses = {(await write).status_code for write in writes}
        held_until_released = await holder
        return held_through_reads, writes_waited, held_until_released, statuses

    try:
        held_through_reads, writes_waited, held_until_released, statuses = (
            api.loop.run_until_complete(scenario())
        )
        assert held_through_reads  # the five reads answered while the lock was taken ...
        assert writes_waited  # ... the writes waited for it ...
        assert held_until_released  # ... (not let go by the holder's deadline) ...
        assert statuses == {201}  # ... and went through once it was free
    finally:
        api.close()
        app.runtime.store.close()


def test_a_lock_held_past_the_wait_is_a_503_with_retry_after_and_changes_nothing(
    tmp_path: Path, clock: ManualClock
) -> None:
    app = file_app(tmp_path, clock, lock_wait_s=0.2)
    api = Api(app, clock)
    account = api.new_account()

    async def scenario() -> httpx.Response:
        locked = asyncio.Event()
        holder = asyncio.create_task(_lock_held(tmp_path / "sandbank.db", 1.0, locked))
        await locked.wait()
        r = await api.client.post(
            "/v1/checkouts",
            headers={**account.headers, "Idempotency-Key": "k1"},
            json=checkout_body(),
        )
        await holder
        return r

    try:
        r = api.loop.run_until_complete(scenario())
        assert_problem(r, 503, "store_busy")
        assert r.headers["retry-after"] == "1"
        # Nothing stored, not even the idempotent answer: the retry creates the checkout.
        retry = api.post(
            "/v1/checkouts",
            headers={**account.headers, "Idempotency-Key": "k1"},
            json=checkout_body(),
        )
        assert retry.status_code == 201
        assert "idempotent-replayed" not in retry.headers
    finally:
        api.close()
        app.runtime.store.close()


# --- heavy work in steps ---------------------------------------------------------------------
def _book(api: Api, account: Account, orders: int) -> None:
    for n in range(orders):
        order = api.approved_order(account, amount=10_000 + n, terms="installments_3")
        r = api.post(
            f"/v1/orders/{order['id']}/captures", headers=account.headers, json={"final": True}
        )
        assert r.status_code == 201, r.text


def _state(api: Api, account: Account) -> dict[str, Any]:
    dump = api.get(f"/_sandbox/accounts/{account.id}/dump", headers=ADMIN).json()
    return {k: v for k, v in dump.items() if k != "account"} | {"clock": dump["account"]["clock"]}


def test_a_clock_advance_in_small_steps_has_the_same_results_as_in_one(
    make_app: Any, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    states = []
    for step in (stepping.STEP_JOBS, 2):
        monkeypatch.setattr(stepping, "STEP_JOBS", step)
        api = Api(make_app(), clock)
        try:
            account = api.new_account(seed=11)
            _book(api, account, 4)
            r = api.advance(account, "95d")
            assert r.status_code == 200, r.text
            states.append(_state(api, account))
        finally:
            api.close()
    assert states[0] == states[1]
    assert len(states[0]["events"]) > 20  # repayments, settlements and payouts ran


def test_work_due_on_a_running_clock_is_caught_up_in_steps_before_a_read(
    api: Api, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wall clock passes 95 days without a request: the next read first runs the due
    work (in steps of 2 jobs, committed one by one) and shows its results."""
    monkeypatch.setattr(stepping, "STEP_JOBS", 2)
    account = api.new_account(seed=5)
    _book(api, account, 3)
    steps: list[int] = []
    catch_up = stepping.catch_up

    async def counting(service: Any, account_id: str) -> None:
        steps.append(1)
        await catch_up(service, account_id)

    monkeypatch.setattr(stepping, "catch_up", counting)
    clock.advance(timedelta(days=95))
    events = api.get("/v1/events?limit=100&type=settlement.paid", headers=account.headers)
    assert events.status_code == 200
    assert events.json()["data"], "the payouts that fell due were made before the read"
    assert steps == [1]


def test_an_advance_of_one_account_lets_requests_of_another_through(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the steps of a long advance the loop serves other accounts (counted, not
    timed: the timed figure is in bench/contention.py)."""
    monkeypatch.setattr(stepping, "STEP_JOBS", 1)
    busy, other = api.new_account(seed=1), api.new_account(seed=2)
    _book(api, busy, 3)
    order = api.approved_order(other)

    async def scenario() -> tuple[int, int]:
        advance = asyncio.create_task(
            api.client.post(
                f"/_sandbox/accounts/{busy.id}/clock/advance", headers=ADMIN, json={"by": "95d"}
            )
        )
        served = 0
        for _ in range(100_000):  # bounded; the advance takes a few hundred of these
            if advance.done():
                break
            r = await api.client.get(f"/v1/orders/{order['id']}", headers=other.headers)
            assert r.status_code == 200
            served += 1
            await asyncio.sleep(0)  # the in-process transport itself never yields
        return (await advance).status_code, served

    status, served = api.loop.run_until_complete(scenario())
    assert status == 200
    assert served >= 5


def test_no_store_busy_waits_in_the_dispatcher_process_settings() -> None:
    """The webhook process keeps SQLite's blocking wait (it serves no requests)."""
    store = SqliteStore(":memory:")
    assert store.lock_wait_s is None
    store.serving(0.5)
    assert store.lock_wait_s == 0.5
    assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 0
    store.close()


def test_the_dispatcher_process_polls_for_the_lock_off_its_loop(tmp_path: Path) -> None:
    """Issue #18: the webhook process awaits the write lock in short polls (its loop runs on
    meanwhile), takes it as soon as it is free, and its other writes keep SQLite's wait."""
    path = tmp_path / "sandbank.db"
    store = SqliteStore(str(path))
    store.poll_lock = True  # as simulator/webhooks/worker.py sets it

    async def scenario() -> tuple[bool, bool]:
        locked, release = asyncio.Event(), asyncio.Event()
        holder = asyncio.create_task(_lock_held(path, 10.0, locked, release=release))
        await locked.wait()
        waiting = asyncio.create_task(store.writable())
        for _ in range(20):  # the loop runs on while the lock is taken ...
            await asyncio.sleep(0.001)
        waited = not waiting.done()  # ... and the poll has not got it
        release.set()
        await asyncio.wait_for(waiting, 10.0)  # ... until it is let go
        with store.transaction() as tx:  # joins the group it opened
            tx.c.execute("INSERT INTO meta (key, value) VALUES ('polled', 'yes')")
        return waited, await holder

    try:
        waited, released_in_time = asyncio.run(scenario())
        assert waited  # SQLite's own busy wait would have frozen the loop: no ticks
        assert released_in_time
        assert store.meta("polled") == "yes"
        assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
    finally:
        store.close()


def test_a_served_store_checkpoints_in_a_thread_never_in_a_commit(tmp_path: Path) -> None:
    """Issue #18: no COMMIT of the API stops its loop for a checkpoint's fsync; a thread of
    the store's own moves the WAL into the database file, and stops with the store."""
    path = tmp_path / "sandbank.db"
    others = set(threading.enumerate())  # other tests' stores may still run theirs
    store = SqliteStore(str(path))
    store.serving(0.5)
    (ours,) = [
        t for t in threading.enumerate() if t.name == "sandbank-checkpoint" and t not in others
    ]
    assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    before = path.stat().st_size
    with store.transaction():
        store.set_meta("big", "x" * 400_000)  # ~100 WAL pages, in the WAL only at commit
    deadline = time.monotonic() + 10
    while path.stat().st_size < before + 400_000 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.stat().st_size >= before + 400_000  # copied into the database file
    store.close()
    assert not ours.is_alive()


def test_the_settings_default_lock_wait_is_bounded() -> None:
    app = build_app()
    assert 0 < app.runtime.store.lock_wait_s <= 5
