"""PostgreSQL store: several `sandbank serve` processes, on one or more hosts, share one database
and behave as one server (`sandbank serve --db postgresql://...`; docs/shared-sandbox.md).

Why it is built as it is:

- The same code as SQLite. Every query of the SQLite store (simulator/store/sqlite.py and its
  mixins) is written once; this module runs it through `PgConn`, which rewrites the few
  SQLite spellings (`?` marks, `json_extract`, `INSERT OR IGNORE`, `rowid`, `INDEXED BY`) into
  PostgreSQL's, once per statement text. The schema is the SQLite migrations translated the
  same way (plus an ordering column on `accounts` for `rowid`). So a migration, a query or a
  protocol method added for SQLite serves PostgreSQL too, and the two cannot drift apart.
- The same write semantics. SQLite lets one writer at a time in (BEGIN IMMEDIATE), and the
  services are written for that: an operation reads its account, its idempotency record and
  its objects, then writes, and no other writer can come between. Here every write
  transaction first takes one advisory lock (`WRITE_LOCK`, mixed with the schema's name), so
  writes from every replica are serialized exactly as SQLite's are: an Idempotency-Key
  replayed on another replica while the first request is in flight waits for its commit and
  replays it; a webhook attempt's claim (a conditional UPDATE of its lease), a clock job's
  deletion and the scheduler's lease are each taken by one process only. Reads take no lock
  (a REPEATABLE READ snapshot, or autocommit statements), as WAL reads do.
- Lock waits off the event loop, and in turn. Once serving (and in the webhook dispatcher's
  process), `writable()` waits for the write lock in a worker thread, on a connection of its
  own (`_locker`, a session-level advisory lock on the same key): PostgreSQL grants waiters in
  the order they asked, so two replicas under write load take turns, a group commit each.
  (Polling with `pg_try_advisory_xact_lock` instead, as SQLite must, let the replica holding
  the lock take it again before the other's next try: 31 POST/s across two replicas.) The
  group then runs on the loop's connection without a lock of its own and the lock is released
  after its COMMIT. (When nobody else has been writing for a second, a writer first tries
  the lock with its BEGIN, one round trip, and queues only if that fails.) Past
  `lock_wait_s`, a 503 (`StoreBusy`); a request cancelled meanwhile
  leaves nothing held (the lock, once granted, opens a group that commits at the end of that
  loop turn). Startup and other background writers wait in `pg_advisory_xact_lock`, bounded
  by `lock_timeout`: in the same queue.
- Migrations once: under a session advisory lock (`MIGRATE_LOCK`), so replicas starting
  together apply each migration exactly once.
- A connection pool (psycopg_pool): the event loop's connection is held for the process's
  life (its statements are sub-millisecond round trips, run inline like SQLite's); dumps,
  export builds and export downloads each run on a pooled connection of their own in a worker
  thread (where SQLite opens a connection on the file).
- Exports: built in one REPEATABLE READ transaction that reads the snapshot and writes the
  chunks, committed at the end (a failed build leaves nothing). The chunk inserts take no
  write lock (no other writer cares about a spool nobody references yet), so a long export
  never holds up the API's writes; SQLite's short chunk transactions are for its one writer.
  The nested items (captures, refunds, repayments) are sorted by PostgreSQL from `jsonb`
  (`PgExportRows`), read through a server-side cursor a page at a time.
- No checkpoint thread (`checkpoint_in_background` is SQLite's WAL); the dispatcher's
  `poll_lock` polls the advisory lock as SQLite's polls its lock.
- Webhook leases are never released wholesale: another replica may be sending. An attempt cut
  off by a crashed replica is sent again when its lease runs out (`dispatcher.LEASE`).
- Durability: a commit is acknowledged only once PostgreSQL has committed it (synchronous
  commit, the server's default), so killing a replica loses no acknowledged write.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from typing import Any, cast

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from simulator.domain.errors import StoreBusy, ValidationFailed
from simulator.locks import busy, is_busy
from simulator.store import dump, export_rows
from simulator.store.shared import SharedTxMixin
from simulator.store.sqlite import (
    MIGRATIONS,
    ExportBuild,
    SqliteStore,
    SqliteTx,
    T,
)

# Advisory lock keys (any 64-bit numbers; these spell "sandbank" and "migrate"), each mixed
# with the schema's name (`lock_key`): advisory locks are database-wide, and two sandboxes in two
# schemas of one database (the tests' throwaway server, or teams sharing a cluster) must not
# serialize each other's writes.
WRITE_LOCK = 0x73616E6462616E6B
MIGRATE_LOCK = 0x6D696772617465
BLOCKING_LOCK_TIMEOUT = "10s"  # startup and background processes: no request waits on them
BLOCKING_LOCK_S = 10.0
POOL_MAX = 6  # the loop's connection, and one per dump, export build or download under way
CONTENDED_S = 1.0  # after a failed try, queue without trying for this long
POOL_WAIT_S = 5.0  # then a 503 (StoreBusy): every pooled connection is streaming something

_JSON = re.compile(r"json_extract\(([\w.]+), '\$\.(\w+)'\)")


def lock_key(base: int, schema: str) -> int:
    """`base` mixed with the schema's name: a signed 64-bit advisory lock key of that schema."""
    digest = int.from_bytes(hashlib.blake2b(schema.encode(), digest_size=8).digest(), "big")
    mixed = (base ^ digest) & 0xFFFF_FFFF_FFFF_FFFF
    return mixed - (1 << 64) if mixed >= 1 << 63 else mixed


def _json(match: re.Match[str]) -> str:
    column, key = match.group(1), match.group(2)
    expr = f"(({column})::jsonb ->> '{key}')"
    return f"{expr}::bigint" if key.endswith("_us") else expr  # times are integer µs


@lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """A statement of the SQLite store in PostgreSQL's spelling."""
    out = sql.replace("?", "%s")
    out = _JSON.sub(_json, out)
    out = re.sub(r"\s+INDEXED BY \w+", "", out)
    out = re.sub(r"\browid\b", "seq", out)
    out = out.replace("AS INTEGER)", "AS BIGINT)").replace("MAX(COALESCE(", "GREATEST(COALESCE(")
    if "INSERT OR IGNORE INTO" in out:
        out = (
            out.replace("INSERT OR IGNORE INTO", "INSERT INTO").rstrip() + " ON CONFLICT DO NOTHING"
        )
    if "INSERT OR REPLACE" in out:  # needs a conflict target: write an upsert instead
        raise NotImplementedError(f"no PostgreSQL spelling of: {sql.strip()[:80]}")
    return out


def translate_ddl(script: str) -> list[str]:
    """A SQLite migration as PostgreSQL statements."""
    script = script.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
    script = re.sub(r"\bINTEGER\b", "BIGINT", script).replace("BLOB", "BYTEA")
    # `rowid` orders accounts in SQLite: a column of its own here.
    script = script.replace(
        "CREATE TABLE accounts (", "CREATE TABLE accounts (seq BIGSERIAL UNIQUE,"
    )
    return [translate(s) for s in script.split(";") if _code(s)]


def _code(statement: str) -> bool:
    return any(
        line.strip() and not line.strip().startswith("--") for line in statement.splitlines()
    )


def _nul() -> ValidationFailed:
    message = "text may not contain NUL (\\u0000) characters"
    return ValidationFailed([{"path": "", "message": message, "type": "string"}])


class PgConn:
    """The slice of `sqlite3.Connection` the SQLite store's queries use, on a psycopg
    connection in autocommit mode (transactions are the store's explicit BEGIN/COMMIT).

    A write transaction runs in psycopg's pipeline mode (`pipelined`, from its BEGIN to its
    COMMIT): a statement whose result nobody reads (an INSERT, an UPDATE, a SAVEPOINT) is sent
    without waiting for its answer, so an operation costs a round trip per result it reads
    rather than one per statement. The results still arrive in order; reading one (a fetch,
    `rowcount`) waits for it. A statement's error surfaces no later than the RELEASE of the
    savepoint it ran in (each RELEASE first syncs), so it fails the operation that sent it, and
    COMMIT is acknowledged only once PostgreSQL answered every statement before it."""

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw
        self._pipeline: contextlib.AbstractContextManager[psycopg.Pipeline] | None = None
        self._pipe: psycopg.Pipeline | None = None

    def pipelined(self) -> None:
        """Pipeline the statements from now to the transaction's COMMIT or ROLLBACK."""
        self._pipeline = self.raw.pipeline()
        self._pipe = self._pipeline.__enter__()

    def _end(self) -> None:
        """Leave pipeline mode: wait for every answer; raise the first statement's error."""
        pipeline, self._pipeline, self._pipe = self._pipeline, None, None
        if pipeline is not None:
            pipeline.__exit__(None, None, None)

    def execute(self, sql: str, args: Any = ()) -> Any:
        if args and any(isinstance(a, str) and "\x00" in a for a in args):
            raise _nul()  # PostgreSQL's text cannot hold it (SQLite's can): a 422, not a 500
        pipe = self._pipe
        if pipe is None:
            return self.raw.execute(translate(sql), args or None)
        if sql == "COMMIT":
            try:
                self.raw.execute(sql)
            finally:
                self._end()  # one round trip for the last statements and the COMMIT
            return None
        if sql == "ROLLBACK":
            with contextlib.suppress(psycopg.Error):  # the error being rolled back
                self._end()
            return self.raw.execute(sql)
        if sql.startswith("ROLLBACK TO"):
            with contextlib.suppress(psycopg.Error):  # the error being rolled back
                pipe.sync()
        elif sql.startswith("RELEASE"):
            pipe.sync()  # an error of the savepoint's statements fails it, not a later one
        return _Pending(self.raw.execute(translate(sql), args or None), pipe)

    def executemany(self, sql: str, rows: Any) -> None:
        with self.raw.cursor() as cur:
            cur.executemany(translate(sql), rows)


class _Pending:
    """A pipelined statement's cursor: reading its `rowcount` waits for its answer (a fetch
    does so by itself)."""

    __slots__ = ("_cur", "_pipe")

    def __init__(self, cur: psycopg.Cursor[Any], pipe: psycopg.Pipeline) -> None:
        self._cur, self._pipe = cur, pipe

    @property
    def rowcount(self) -> int:
        self._pipe.sync()
        return self._cur.rowcount

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall()

    def fetchmany(self, size: int = 0) -> list[Any]:
        return self._cur.fetchmany(size)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cur)


class PgExportRows(export_rows.ExportRows):
    """`ExportRows` with the nested items sorted by PostgreSQL (SQLite's `json_each` and its
    Python sort key have no spelling here), through a server-side cursor."""

    def __init__(self, conn: PgConn, account_id: str) -> None:
        self.c = cast(sqlite3.Connection, conn)
        self.raw = conn.raw
        self.aid = account_id

    def _nested(self, field: str) -> Iterator[tuple[str, str]]:
        # By creation instant (timestamptz, µs), ties in order creation order, then position:
        # the SQLite store's order.
        sql = (
            "SELECT o.id, j.value::text FROM orders o, "
            "jsonb_array_elements(o.data::jsonb -> %s) WITH ORDINALITY AS j(value, pos) "
            "WHERE o.account_id = %s "
            "ORDER BY (j.value ->> 'created_at')::timestamptz, o.seq, j.pos"
        )
        with self.raw.cursor(name=f"export_{field}") as cur:
            cur.itersize = export_rows.PAGE
            cur.execute(sql, (field, self.aid))
            while rows := cur.fetchmany(export_rows.PAGE):
                yield from rows


class PgTx(SqliteTx):
    """`SqliteTx`, but for what a shared database must not do."""

    # One INSERT ... RETURNING seq a row (psycopg has no lastrowid).
    add_request = SharedTxMixin.add_request
    add_requests = SharedTxMixin.add_requests

    def release_leases(self) -> int:
        """Nothing: other replicas may hold leases for attempts they are sending (a dead one's
        run out on their own)."""
        return 0


class PgStore(SqliteStore):
    """Implements `simulator.store.base.Store` on PostgreSQL (see the module docstring)."""

    errors: tuple[type[Exception], ...] = (psycopg.Error,)

    def __init__(self, url: str, *, pool_max: int = POOL_MAX) -> None:
        self.path = url
        self.lock_wait_s: float | None = None
        self.poll_lock = False  # the dispatcher's process: `writable` polls the lock
        self._polling = False
        self._group = None
        self._checkpointer = None
        self._locker: psycopg.Connection[Any] | None = None  # holds the queued write lock
        self._locker_timeout_ms = 0
        self._held = False  # the locker holds the write lock (for the open group)
        self._grants = 0
        self._trying = False  # `_begin` tries the lock instead of waiting in it
        self._contended_until = 0.0  # until then, writes queue without trying first
        self._acquiring: asyncio.Future[None] | None = None
        self._waiting: Future[None] | None = None  # the same wait, as the thread sees it
        self._lock_thread: ThreadPoolExecutor | None = None
        self.pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_max,
            kwargs={"autocommit": True, "application_name": f"sandbank-{os.getpid()}"},
            open=False,
            name="sandbank",
        )
        self.pool.open(wait=True, timeout=10)
        self._raw = self.pool.getconn()
        row = self._raw.execute("SELECT current_schema()").fetchone()
        schema = str(row[0]) if row and row[0] else "public"
        self.write_lock = lock_key(WRITE_LOCK, schema)
        self.migrate_lock = lock_key(MIGRATE_LOCK, schema)
        self._raw.execute(f"SET lock_timeout = '{BLOCKING_LOCK_TIMEOUT}'")
        # The SQLite store's code, on this connection (see `PgConn`).
        self.conn = cast(sqlite3.Connection, PgConn(self._raw))
        self._migrate()

    def data_version(self) -> tuple[int, int] | None:
        """Unknown: PostgreSQL has no cheap counter of other sessions' commits, so answers of
        reads are never reused on it."""
        return None

    @contextlib.contextmanager
    def quietly(self) -> Iterator[None]:
        yield

    def _migrate(self) -> None:
        """Apply the migrations not yet applied, once across every replica (advisory lock)."""
        if self._current():
            return
        raw = self._raw
        raw.execute("SELECT pg_advisory_lock(%s)", (self.migrate_lock,))
        try:
            with raw.transaction():
                raw.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations "
                    "(version BIGINT PRIMARY KEY, name TEXT NOT NULL)"
                )
                done = {r[0] for r in raw.execute("SELECT version FROM schema_migrations")}
                for version, script in enumerate(MIGRATIONS, start=1):
                    if version in done:
                        continue
                    for statement in translate_ddl(script):
                        raw.execute(statement)
                    raw.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (version, script.strip().splitlines()[0][:60]),
                    )
        finally:
            raw.execute("SELECT pg_advisory_unlock(%s)", (self.migrate_lock,))

    def _current(self) -> bool:
        row = self._raw.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return False
        applied = self._raw.execute(
            "SELECT COUNT(*) FROM schema_migrations WHERE version <= %s", (len(MIGRATIONS),)
        ).fetchone()
        return applied is not None and int(applied[0]) >= len(MIGRATIONS)  # none missing

    def _tx(self) -> PgTx:
        return PgTx(self.conn)

    def serving(self, lock_wait_s: float = 2.0) -> None:
        """From now on requests use this connection: writes wait for the lock off the loop,
        on the locker connection (taken now: connecting on a first contended write would make
        that write wait for a new connection while the other writers go on)."""
        self.lock_wait_s = lock_wait_s
        if self._locker is None:
            self._locker = self.pool.getconn(timeout=POOL_WAIT_S)

    async def writable(self) -> None:
        """Hold the write lock for the rest of this event-loop turn (see `SqliteStore`),
        waiting for it in turn with the other processes (the module docstring)."""
        if self.lock_wait_s is None and not self.poll_lock:
            return  # startup: `_begin` waits in the lock itself
        background = self.lock_wait_s is None
        deadline = time.monotonic() + (BLOCKING_LOCK_S if background else self.lock_wait_s or 0)
        while self._group is None:
            if self._held:  # granted: the first request of this process to resume opens it
                try:
                    self._open_group()
                except BaseException:
                    self._release()
                    raise
                return
            if (
                self._acquiring is None
                and time.monotonic() >= self._contended_until
                and self._try_group()
            ):
                return  # the lock was free: taken with BEGIN, in one round trip
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise busy()
                await self._queued(left)
            except StoreBusy:
                if background:
                    return  # the write waits for the lock its own way (`_begin`)
                raise

    def _try_group(self) -> bool:
        """Open the group if the lock is free now: when nobody else is writing, that saves
        the queued wait's thread hop and two round trips. Once a try fails, the process
        queues for `CONTENDED_S`: a writer that tries again right after its own commit
        would win against one whose queued request is still on its way (measured: runs of
        20 commits by one of two writers), so under contention everyone queues."""
        self._trying = True
        try:
            self._open_group()
        except StoreBusy:
            self._contended_until = time.monotonic() + CONTENDED_S
            return False
        finally:
            self._trying = False
        return True

    async def _queued(self, wait_s: float) -> None:
        """Wait for the write lock in a worker thread, one wait at a time per process. A
        grant nobody takes up (every waiter cancelled) is given back two loop turns later."""
        acquiring = self._acquiring
        if acquiring is None:
            if self._lock_thread is None:
                self._lock_thread = ThreadPoolExecutor(1, thread_name_prefix="sandbank-lock")
            self._waiting = self._lock_thread.submit(self._lock_blocking, wait_s)
            self._waiting.add_done_callback(self._orphaned(asyncio.get_running_loop()))
            acquiring = self._acquiring = asyncio.wrap_future(self._waiting)
            acquiring.add_done_callback(self._granted)
        elif acquiring.done():
            # Over, but `_granted` has not run yet (it is next on the loop): awaiting a done
            # future would not yield, and the caller's loop would spin without letting it.
            await asyncio.sleep(0)
            return
        await asyncio.shield(acquiring)

    def _orphaned(self, loop: asyncio.AbstractEventLoop) -> Callable[[Future[None]], None]:
        """In the lock thread, once the wait is over: a grant whose event loop has closed
        meanwhile (the process shutting down, a test's loop) would never be taken up nor given
        back, so it is given back here (nothing else uses the locker once its loop is gone)."""

        def check(waiting: Future[None]) -> None:
            if loop.is_closed() and not waiting.cancelled() and waiting.exception() is None:
                self._held = True
                self._release()

        return check

    def _lock_blocking(self, wait_s: float) -> None:
        """In a worker thread: the session-level write lock on the locker connection, waited
        for up to `wait_s` (then `StoreBusy`)."""
        if self._locker is None:
            self._locker = self.pool.getconn(timeout=POOL_WAIT_S)
        timeout_ms = max(1, int(wait_s * 1000))
        try:
            if timeout_ms != self._locker_timeout_ms:
                self._locker.execute(f"SET lock_timeout = {timeout_ms}")
                self._locker_timeout_ms = timeout_ms
            self._locker.execute("SELECT pg_advisory_lock(%s)", (self.write_lock,))
        except psycopg.Error as exc:
            if is_busy(exc):
                raise busy(exc) from None
            self._drop_locker()
            raise

    def _granted(self, future: asyncio.Future[None]) -> None:
        """On the loop, once the wait is over: the lock is this process's until the group
        its waiters open is committed (`flush`)."""
        self._acquiring = self._waiting = None
        if future.cancelled() or future.exception() is not None:
            return
        self._held = True  # (already, if `_begin` waited for this grant itself)
        self._grants += 1
        loop = asyncio.get_running_loop()
        loop.call_soon(loop.call_soon, self._unused, self._grants)  # after the waiters ran

    def _unused(self, grant: int) -> None:
        if grant == self._grants and self._held and self._group is None:
            self._release()

    def _release(self) -> None:
        """Give the queued write lock back (closing its connection if that fails: a closed
        session holds no lock)."""
        if not self._held:
            return
        self._held = False
        try:
            assert self._locker is not None
            self._locker.execute("SELECT pg_advisory_unlock(%s)", (self.write_lock,))
        except psycopg.Error:
            self._drop_locker()

    def _drop_locker(self) -> None:
        locker, self._locker, self._locker_timeout_ms = self._locker, None, 0
        if locker is not None:
            with contextlib.suppress(psycopg.Error):
                locker.close()
            with contextlib.suppress(Exception):
                self.pool.putconn(locker)

    def flush(self) -> Exception | None:
        """Commit the open group (`SqliteStore.flush`), then release the queued lock."""
        try:
            return super().flush()
        finally:
            self._release()

    def checkpoint_in_background(self, interval_s: float = 0.0) -> None:
        """Nothing: PostgreSQL checkpoints on its own, off every client's path."""

    def bound_wal(self, limit_mb: int) -> None:
        """Nothing: PostgreSQL bounds its WAL itself (`max_wal_size`)."""

    def leave_checkpoints(self) -> None:
        """Nothing: no client of PostgreSQL checkpoints."""

    async def _poll_blocking(self) -> None:
        """`writable` for a background process (`poll_lock`): try the lock every millisecond
        or so, the loop free meanwhile (as SQLite's); past the blocking timeout the write
        waits for the lock itself, bounded by `lock_timeout`."""
        self._polling = True
        try:
            await self._poll_group(BLOCKING_LOCK_S)
        finally:
            self._polling = False

    def _begin(self, mode: str) -> None:
        raw = self._raw
        if mode != "IMMEDIATE":  # a snapshot for readers: no lock
            raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            return
        trying = self.lock_wait_s is not None or self._polling or self._trying
        if not self._held and not trying and self._waiting is not None:
            # A write that waits in the lock (a background process's), while this process's
            # locker waits in the same queue ahead of it: waiting here, on the loop, for a lock
            # only the loop can give back would wait for itself. Wait for the locker's turn.
            try:
                self._waiting.result(timeout=BLOCKING_LOCK_S)
            except (StoreBusy, TimeoutError, psycopg.Error) as exc:
                raise busy(exc) from None
            self._held = True  # given back by `_unused` or the group's flush, as any grant
        if self._held:  # the locker holds the write lock for this transaction
            raw.execute("BEGIN")
            cast(PgConn, self.conn).pipelined()
            return
        # One round trip: BEGIN and the lock (the waiting kind before `serving`, unless polling).
        lock = "pg_try_advisory_xact_lock" if trying else "pg_advisory_xact_lock"
        try:
            cur = raw.execute(f"BEGIN; SELECT {lock}({self.write_lock})::text")
            cur.nextset()
            row = cur.fetchone()
        except psycopg.Error as exc:
            with contextlib.suppress(psycopg.Error):
                raw.execute("ROLLBACK")
            if is_busy(exc):
                raise busy(exc) from None
            raise
        if not row or row[0] == "false":
            raw.execute("ROLLBACK")
            raise busy()
        cast(PgConn, self.conn).pipelined()

    @contextlib.contextmanager
    def _pooled(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection for work off the loop; `StoreBusy` if none frees up in time."""
        try:
            raw = self.pool.getconn(timeout=POOL_WAIT_S)
        except PoolTimeout as exc:
            raise busy(exc) from None
        try:
            yield raw
        finally:
            self.pool.putconn(raw)  # rolled back first if left in a transaction

    def schema_version(self) -> int:
        row = self._raw.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0) if row else 0

    def dump_stream(
        self, account_id: str, head: dict[str, Any]
    ) -> Iterator[bytes] | AsyncIterator[bytes]:
        """On a pooled connection of its own, in one snapshot; pulled from a worker thread."""
        return self._dump(account_id, head)

    def _dump(self, account_id: str, head: dict[str, Any]) -> Iterator[bytes]:
        with self._pooled() as raw:
            raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield from dump.chunks(cast(sqlite3.Connection, PgConn(raw)), account_id, head)
            finally:
                with contextlib.suppress(psycopg.Error):
                    raw.execute("ROLLBACK")

    async def build_export(self, account_id: str, spool: str, build: ExportBuild[T]) -> T:
        """In a worker thread, on a pooled connection: one transaction reads the snapshot and
        writes the chunks (see the module docstring)."""
        return await asyncio.to_thread(self._build_export, account_id, spool, build)

    def _build_export(self, account_id: str, spool: str, build: ExportBuild[T]) -> T:
        with self._pooled() as raw:
            conn = PgConn(raw)
            raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            try:
                chunks = export_rows.ChunkWriter(
                    cast(sqlite3.Connection, conn), account_id, spool, own_transactions=False
                )
                result = build(PgExportRows(conn, account_id), chunks)
                chunks.flush()
            except BaseException:
                with contextlib.suppress(psycopg.Error):
                    raw.execute("ROLLBACK")
                raise
            raw.execute("COMMIT")
            return result

    async def drop_export(self, spool: str) -> None:
        await asyncio.to_thread(self._drop_export, spool)

    def _drop_export(self, spool: str) -> None:
        with self._pooled() as raw:
            export_rows.drop(cast(sqlite3.Connection, PgConn(raw)), spool)

    def export_stream(self, spool: str, file: str) -> Iterator[bytes] | AsyncIterator[bytes]:
        """On a pooled connection of its own, pulled from a worker thread (as `dump_stream`)."""
        return self._export(spool, file)

    def _export(self, spool: str, file: str) -> Iterator[bytes]:
        with self._pooled() as raw:
            yield from export_rows.chunks(cast(sqlite3.Connection, PgConn(raw)), spool, file)

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.flush()
        if self._lock_thread is not None:
            self._lock_thread.shutdown(wait=False, cancel_futures=True)
        self._drop_locker()
        with contextlib.suppress(psycopg.Error):
            self.pool.putconn(self._raw)
        self.pool.close()
