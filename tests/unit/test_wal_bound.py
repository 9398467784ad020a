"""The SQLite WAL's bound under continuous writes and its truncation once they stop
(`simulator.store.checkpoints`; issue #18, sustained load).

A writer process commits groups back to back, as the API does under saturation (its next
group begins a fraction of a millisecond after each COMMIT, so a checkpoint running beside it
never finishes in a gap). It reports every `BATCH` groups through a pipe that holds one report,
from inside its open transaction, so it never stops between two groups and never runs more
than two reports ahead of the test, which runs one checkpoint round per report: the rounds are
ordered by the writes, not by time.
"""

from __future__ import annotations

import asyncio
import fcntl
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from simulator.settings import Settings
from simulator.store import SqliteStore, checkpoints

GROUPS = 2_000
ROWS = 4  # per group, ~1 KB each: ~4 WAL frames a group, ~30 MB of WAL without a bound
BATCH = 50
LIMIT = 256 * 1024
PIPE = 4096  # one report fills the pipe: the writer waits until the test has read it

WRITER = """
import sqlite3, sys, time
path, groups, rows, batch, limit, pipe = sys.argv[1], *map(int, sys.argv[2:])
c = sqlite3.connect(path, isolation_level=None)
c.execute("PRAGMA busy_timeout = 10000")
c.execute("PRAGMA wal_autocheckpoint = 0")
c.execute(f"PRAGMA journal_size_limit = {limit or -1}")
for n in range(1, groups + 1):
    c.execute("BEGIN IMMEDIATE")
    for _ in range(rows):
        c.execute("INSERT INTO t (x) VALUES (randomblob(1000))")
    if n % batch == 0:
        sys.stdout.write(str(n).ljust(pipe - 1) + "\\n")
        sys.stdout.flush()
    c.execute("COMMIT")
    time.sleep(0.0001)  # the API's gap between two groups: a request's parsing, a loop turn
"""


def _database(tmp_path: Path) -> str:
    path = str(tmp_path / "wal.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, x BLOB)")
    conn.close()
    return path


def _write_while_checkpointing(path: str, limit: int) -> tuple[list[int], checkpoints.Checkpointer]:
    """The WAL file's size after each round, while the writer writes `GROUPS` groups."""
    checkpointer = checkpoints.Checkpointer(path, limit)
    args = [str(v) for v in (GROUPS, ROWS, BATCH, limit, PIPE)]
    writer = subprocess.Popen([sys.executable, "-c", WRITER, path, *args], stdout=subprocess.PIPE)
    assert writer.stdout is not None
    fcntl.fcntl(writer.stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE)
    sizes = []
    try:
        while writer.stdout.read(PIPE):
            checkpointer.step()
            sizes.append(checkpoints.wal_size(path))
    finally:
        assert writer.wait() == 0
    return sizes, checkpointer


@pytest.mark.slow
def test_the_wal_stays_within_its_bound_while_writes_never_stop(tmp_path: Path) -> None:
    path = _database(tmp_path)
    sizes, checkpointer = _write_while_checkpointing(path, LIMIT)
    assert len(sizes) == GROUPS // BATCH
    assert checkpointer.holds >= 1
    # Past the limit, each round restarts the WAL; between two rounds the writer adds at most
    # three reports' worth (~2.5 MB): far below what it writes in all (~30 MB, next test).
    assert max(sizes) < 8 * 1024 * 1024
    assert sizes[-1] <= 4 * 1024 * 1024
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == GROUPS * ROWS
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    checkpointer.close()


@pytest.mark.slow
def test_without_a_bound_the_wal_grows_with_every_write(tmp_path: Path) -> None:
    """The case the bound exists for (and what makes the test above able to fail)."""
    path = _database(tmp_path)
    sizes, checkpointer = _write_while_checkpointing(path, 0)
    assert checkpointer.holds == 0
    assert sizes[-1] > 16 * 1024 * 1024
    checkpointer.close()


def test_once_writes_stop_the_wal_file_is_truncated(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "sandbank.db"))
    checkpointer = checkpoints.Checkpointer(store.path, LIMIT)
    try:
        with store.transaction():
            store.set_meta("big", "x" * 400_000)
        checkpointer.step()  # copies it: the WAL keeps its frames until a writer restarts it
        assert checkpoints.wal_size(store.path) > 400_000
        checkpointer.step()  # nothing new since the last round: the load has stopped
        assert checkpoints.wal_size(store.path) == 0
        assert checkpointer.truncations == 1
        assert store.meta("big") == "x" * 400_000
    finally:
        checkpointer.close()
        store.close()


def test_one_checkpoint_thread_per_file_leads_and_another_takes_over_when_it_ends(
    tmp_path: Path,
) -> None:
    """Each worker of `--workers N` runs a checkpoint thread on the one file: the first to
    take the file's lock checkpoints, the others' rounds do nothing until it closes (its
    worker ended), then the next round of another leads."""
    store = SqliteStore(str(tmp_path / "sandbank.db"))
    first = checkpoints.Checkpointer(store.path, LIMIT)
    second = checkpoints.Checkpointer(store.path, LIMIT)
    try:
        with store.transaction():
            store.set_meta("big", "x" * 400_000)
        second_wal = checkpoints.wal_size(store.path)
        first.step()  # leads: copies the WAL
        second.step()  # does nothing: were it a round, it would truncate the WAL copied above
        second.step()
        assert (first.leads, second.leads) == (True, False)
        assert checkpoints.wal_size(store.path) == second_wal
        assert second.truncations == 0
        first.close()  # its worker ended
        second.step()  # leads now: the copied, idle WAL is truncated in its next round
        second.step()
        assert second.leads
        assert checkpoints.wal_size(store.path) == 0
        assert second.truncations == 1
    finally:
        second.close()
        store.close()


def test_every_store_connection_cuts_a_restarted_wal_back_to_the_limit(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "sandbank.db"))
    try:
        store.bound_wal(3)
        assert store.conn.execute("PRAGMA journal_size_limit").fetchone()[0] == 3 * 1024 * 1024
        assert Settings().wal_limit_mb == checkpoints.DEFAULT_WAL_LIMIT_MB
    finally:
        store.close()


def test_a_background_process_leaves_checkpoints_to_the_api_process(tmp_path: Path) -> None:
    """The dispatcher's and the scheduler's processes: no thread of their own beside the
    API's, and no checkpoint inside their commits either."""
    store = SqliteStore(str(tmp_path / "sandbank.db"))
    try:
        assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] > 0
        store.leave_checkpoints()
        assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        assert store.checkpointer is None
    finally:
        store.close()


def _serving_store(tmp_path: Path) -> SqliteStore:
    """A store as the API process uses it (polling for the lock, never waiting in SQLite),
    with its checkpoint thread started but idle: the test runs the rounds."""
    store = SqliteStore(str(tmp_path / "sandbank.db"))
    store.lock_wait_s = 60.0  # a request's wait for the lock: longer than any stall of the machine
    store.conn.execute("PRAGMA busy_timeout = 0")
    store.checkpoint_in_background(interval_s=3600)
    assert store.checkpointer is not None
    return store


def test_while_the_checkpoint_thread_wants_the_lock_no_request_takes_it(tmp_path: Path) -> None:
    """Before, the thread had to find a gap between two groups, which the API closed again
    microseconds after each COMMIT: it took up to half a second, and everything written
    meanwhile was copied with the lock held (writes stopped 30-65 ms under load)."""
    store = _serving_store(tmp_path)
    checkpointer = store.checkpointer
    assert checkpointer is not None
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("PRAGMA busy_timeout = 0")

    async def scenario() -> None:
        checkpointer.wants_lock.set()
        waiting = asyncio.ensure_future(store.writable())
        for _ in range(20):
            await asyncio.sleep(0.001)
        assert not waiting.done()
        other.execute("BEGIN IMMEDIATE")  # the lock is free for the thread's connection
        other.execute("ROLLBACK")
        checkpointer.wants_lock.clear()
        await waiting
        with store.grouped() as (tx, committed):
            tx.c.execute("INSERT INTO meta (key, value) VALUES ('after', 'x')")
        await committed

    try:
        asyncio.run(scenario())
        assert store.meta("after") == "x"
    finally:
        other.close()
        store.close()


def test_a_restart_past_the_bound_gets_the_lock_between_two_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API's store writing groups back to back, the thread's round past the bound beside
    it: the round holds the lock once, and the next group writes the WAL from its start."""
    # However slowly the machine runs the thread, its round neither gives up nor lets the
    # writes go on: the lock is got because the store waits, not by a lucky gap.
    monkeypatch.setattr(checkpoints, "LOCK_TRY_S", 60.0)
    monkeypatch.setattr(checkpoints, "WANT_LOCK_S", 60.0)
    store = _serving_store(tmp_path)
    checkpointer = store.checkpointer
    assert checkpointer is not None

    async def scenario() -> int:
        groups = 0

        async def write() -> None:
            nonlocal groups
            await store.writable()
            with store.grouped() as (tx, committed):
                tx.c.execute(
                    "INSERT INTO meta (key, value) VALUES (?, randomblob(4000))", (f"k{groups}",)
                )
            await committed
            groups += 1

        for _ in range(50):
            await write()
        frames = checkpointer.wal_frames()
        restart = asyncio.ensure_future(asyncio.to_thread(checkpointer._restart, frames))
        while not restart.done():
            await write()
        await restart
        await write()
        return frames

    try:
        frames = asyncio.run(scenario())
        assert checkpointer.holds == 1
        assert 0 < checkpointer.wal_frames() < frames // 4
        assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        store.close()


def test_while_another_process_keeps_the_lock_this_one_stops_waiting_for_the_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another worker of `--workers N` writing: this process's writes wait `WANT_LOCK_S` at
    most, and the round still gets the lock once the other lets go."""
    monkeypatch.setattr(checkpoints, "LOCK_TRY_S", 60.0)  # the round outlasts the test's steps
    store = _serving_store(tmp_path)
    checkpointer = store.checkpointer
    assert checkpointer is not None
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    let_go = threading.Event()
    stop_wanting = checkpointer.wants_lock.clear

    def clear_and_note() -> None:
        stop_wanting()
        let_go.set()

    checkpointer.wants_lock.clear = clear_and_note  # type: ignore[method-assign]
    restart = threading.Thread(target=checkpointer._restart, args=(checkpointer.wal_frames(),))
    try:
        restart.start()
        assert let_go.wait(timeout=10)  # this process writes on while the round looks on
        assert restart.is_alive()
        assert not checkpointer.wants_lock.is_set()
        other.execute("ROLLBACK")
        restart.join()
        assert checkpointer.holds == 1
    finally:
        other.close()
        store.close()
