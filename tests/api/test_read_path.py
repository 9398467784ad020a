"""The read path made cheaper (issue #18, third pass) keeps its promises: the request journal
stores every entry of a turn (a cancelled request's too) with the seq of its row, and a read
that meets another connection's write lock still answers, its entry stored once the lock is
free."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from factories import (
    ADMIN,
    START,
    Api,
    file_app,
    journal_entry,
)

from simulator.app import SandbankApp
from simulator.clock import ManualClock
from simulator.faults.journal import Journal, RequestFilter
from simulator.store.sqlite import SqliteStore


def test_a_cancelled_request_leaves_every_entry_of_its_turn_stored_with_its_rows_seq(
    tmp_path: Path,
) -> None:
    store = SqliteStore(str(tmp_path / "journal.db"))
    journal = Journal(100, store)
    entries = [journal_entry(n) for n in range(3)]

    async def scenario() -> list[BaseException | None]:
        saves = [asyncio.create_task(journal.save(e)) for e in entries]
        await asyncio.sleep(0)  # each save has queued its entry and awaits the turn's commit
        saves[1].cancel()
        done = await asyncio.gather(*saves, return_exceptions=True)
        return [d if isinstance(d, BaseException) else None for d in done]

    loop = asyncio.new_event_loop()
    try:
        outcomes = loop.run_until_complete(scenario())
    finally:
        loop.close()
    assert outcomes[0] is None
    assert outcomes[2] is None
    assert isinstance(outcomes[1], asyncio.CancelledError)
    stored = journal.find(RequestFilter(account="acct_a"), limit=10).items
    assert [(e.seq, e.request_id) for e in stored] == [
        (e.seq, e.request_id) for e in reversed(entries)
    ]
    assert 0 < entries[0].seq < entries[1].seq < entries[2].seq
    store.close()


def _drained(api: Api, app: SandbankApp) -> None:
    """Run the loop until the journal's backlog (entries that met the lock) is stored."""

    async def drained() -> None:
        for _ in range(500):
            if app.runtime.journal._drain is None:
                return
            await asyncio.sleep(0.01)

    api.loop.run_until_complete(drained())
    assert app.runtime.journal._drain is None


def test_a_read_answers_while_another_connection_writes_and_its_entry_follows(
    tmp_path: Path,
) -> None:
    clock = ManualClock(START)
    db = tmp_path / "sandbank.db"
    app = file_app(tmp_path, clock, lock_wait_s=5.0)
    api = Api(app, clock)
    account = api.new_account()

    def journaled() -> int:
        r = api.post("/_sandbox/requests/count", headers=ADMIN, json={"account": account.id})
        assert r.status_code == 200, r.text
        return int(r.json()["count"])

    before = journaled()
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        r = api.get("/v1/orders", headers=account.headers)
        assert r.status_code == 200, r.text
        assert app.runtime.journal._drain is not None  # its entry waits for the lock
        other.execute("ROLLBACK")
        _drained(api, app)  # the journal stores its backlog once the lock is free
        assert journaled() == before + 1
    finally:
        other.close()
        api.close()
        app.runtime.store.close()


def test_a_head_request_reads_as_its_get_does_without_the_write_lock(tmp_path: Path) -> None:
    """HEAD on a GET operation is a read too: it answers while another connection holds the
    write lock, where the write path would wait for the lock and answer 503."""
    clock = ManualClock(START)
    db = tmp_path / "sandbank.db"
    app = file_app(tmp_path, clock, lock_wait_s=0.2)
    api = Api(app, clock)
    account = api.new_account()
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        got = api.get("/v1/orders", headers=account.headers)
        head = api.request("HEAD", "/v1/orders", headers=account.headers)
        assert (got.status_code, head.status_code) == (200, 200), head.text
        assert head.content == b""
        assert head.headers["content-length"] == got.headers["content-length"]
        other.execute("ROLLBACK")
        _drained(api, app)  # both entries are stored once the lock is free
    finally:
        other.close()
        api.close()
        app.runtime.store.close()
