"""SQLite store: one file in WAL mode (or :memory:), numbered migrations, JSON documents with
indexed columns for the filters the API offers.

Durability: WAL with synchronous=NORMAL. A commit is in the WAL before the client is answered,
so a process crash (kill -9) loses nothing acknowledged; only an OS crash or power loss could
lose the last transactions, which a sandbox may accept.

Group commit: the API's operations run in `grouped()`, each in its own savepoint of a
transaction that stays open until the event loop's current turn is over; then one COMMIT
writes them all (the pages they share, such as the account row and the tails of the indexes,
once). Each operation awaits that COMMIT before its response is sent, so nothing is
acknowledged before it is in the WAL, and a failed COMMIT fails every operation in the group.
`transaction()` joins an open group and commits it at its end.

Lock waits never block the event loop (issue #17). SQLite's own busy handler sleeps inside
`BEGIN IMMEDIATE`, which on the API's one connection froze every request of the process while
another process (a worker, the dispatcher) held the write lock, and answered 500 after the 10 s
timeout. So once the app serves (`serving`), the busy timeout is 0: a write first awaits
`writable()`, which polls for the lock with short `asyncio.sleep`s (the loop serves everything
else meanwhile) and holds it as an open group; past `lock_wait_s` it raises `StoreBusy` (503
with Retry-After), never a 500. A write that did not await it and meets the lock taken gets
`StoreBusy` at once. Reads take no lock: `transaction(write=False)` is a deferred (snapshot)
transaction, which WAL never makes wait for a writer. Startup (migrations) and the dispatcher's
own process keep the blocking timeout: no request waits on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from simulator.domain.errors import StoreBusy
from simulator.domain.models import Account, Buyer, Checkout, Event, Order
from simulator.domain.records import Page, SavedResponse
from simulator.locks import busy, commits, is_busy
from simulator.store import checkpoints, dump, export_rows
from simulator.store.base import Job
from simulator.store.cursor import decode_cursor, encode_cursor
from simulator.store.finance import FINANCE_PREFIXES, FINANCE_TABLES, FinanceTxMixin
from simulator.store.finance import MIGRATION as FINANCE_MIGRATION
from simulator.store.runtime import RuntimeTxMixin
from simulator.store.shared import MIGRATION as SHARED_MIGRATION
from simulator.store.shared import SharedTxMixin
from simulator.store.webhooks import FANOUT_MIGRATION, WEBHOOK_TABLES, WebhookTxMixin
from simulator.store.webhooks import MIGRATION as WEBHOOK_MIGRATION

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
ExportBuild = Callable[[export_rows.ExportRows, Callable[[str, bytes], None]], T]
BLOCKING_BUSY_MS = 10_000  # startup and background processes: no request waits on them
LOCK_WAIT_S = 2.0  # how long a request awaits the write lock before a 503
_POLL_S = (0.0005, 0.001, 0.002, 0.004)  # then the last, until the wait is over
_BACKGROUND_POLL_S = (0.0005, 0.001)  # a background writer keeps looking for the gaps


# Most writes change nothing of their account but its RNG counter; rewriting the whole document
# for that (serialise, copy, UPDATE of a larger record) cost every POST more than the counter's
# own UPDATE. NULL: the counter is the document's (a row last written before migration 7).
RNG_COUNTER_MIGRATION = """
-- 7: the account's RNG counter in a column of its own (NULL: the document's)
ALTER TABLE accounts ADD COLUMN rng_counter INTEGER
"""

MIGRATIONS: list[str] = [
    # 1: the simulator core
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE accounts (
        id TEXT PRIMARY KEY, api_key TEXT NOT NULL UNIQUE, data TEXT NOT NULL);
    CREATE TABLE buyers (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, account_id TEXT NOT NULL, id TEXT NOT NULL UNIQUE,
        external_id TEXT, data TEXT NOT NULL);
    CREATE INDEX buyers_by_account ON buyers (account_id, seq);
    CREATE INDEX buyers_by_external ON buyers (account_id, external_id, seq);
    CREATE TABLE checkouts (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, account_id TEXT NOT NULL, id TEXT NOT NULL UNIQUE,
        data TEXT NOT NULL);
    CREATE INDEX checkouts_by_account ON checkouts (account_id, seq);
    CREATE TABLE orders (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, account_id TEXT NOT NULL, id TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL, merchant_order_id TEXT, buyer_id TEXT NOT NULL,
        data TEXT NOT NULL);
    CREATE INDEX orders_by_account ON orders (account_id, seq);
    CREATE INDEX orders_by_status ON orders (account_id, status, seq);
    CREATE INDEX orders_by_merchant_id ON orders (account_id, merchant_order_id, seq);
    CREATE INDEX orders_by_buyer ON orders (account_id, buyer_id, seq);
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, account_id TEXT NOT NULL, id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL, object_id TEXT NOT NULL, data TEXT NOT NULL);
    CREATE INDEX events_by_account ON events (account_id, seq);
    CREATE TABLE jobs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, account_id TEXT NOT NULL, due_us INTEGER NOT NULL,
        kind TEXT NOT NULL, ref TEXT NOT NULL);
    CREATE INDEX jobs_due ON jobs (account_id, due_us, seq);
    CREATE TABLE idempotency (
        account_id TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
        status INTEGER NOT NULL, content_type TEXT NOT NULL, body BLOB NOT NULL,
        created_us INTEGER NOT NULL, expires_us INTEGER NOT NULL,
        PRIMARY KEY (account_id, key));
    CREATE INDEX idempotency_expiry ON idempotency (account_id, expires_us);
    """,
    # 2: webhook endpoints and deliveries
    WEBHOOK_MIGRATION,
    # 3: repayments, settlements, disputes, drift records, exports
    FINANCE_MIGRATION,
    # 4: the webhook fan-out cursor
    FANOUT_MIGRATION,
    # 5: export files as chunks (streamed in and out)
    export_rows.MIGRATION,
    # 6: fault rules, attempt counts and the request journal, shared by the workers
    SHARED_MIGRATION,
    # 7: the RNG counter in a column of its own (`SqliteTx.save_rng_counter`)
    RNG_COUNTER_MIGRATION,
]

_OBJECT_TABLES = (
    "buyers",
    "checkouts",
    "orders",
    "events",
    "jobs",
    "idempotency",
    *WEBHOOK_TABLES,
    *FINANCE_TABLES,
    *export_rows.TABLES,
)
_ID_TABLES = {
    "buy": "buyers",
    "chk": "checkouts",
    "ord": "orders",
    "evt": "events",
    **dict.fromkeys(FINANCE_PREFIXES, "finance_objects"),
}


def _load(model: type[M], data: str | bytes) -> M:
    return model.model_validate_json(data)


# Every operation loads its account, whose document seldom changes (the RNG counter has a
# column of its own), so the row's text is parsed once: the text a save wrote, or a load read,
# maps to its parsed model.
# Keyed by the whole text, a stale entry can never be returned (another process's write is
# new text); each caller gets its own shallow copy (top-level fields are what services set).
_ACCOUNTS: dict[str, Account] = {}
_ACCOUNTS_MAX = 256


def _remember_account(data: str, account: Account) -> None:
    if len(_ACCOUNTS) >= _ACCOUNTS_MAX:
        _ACCOUNTS.clear()
    _ACCOUNTS[data] = account


def _account(data: str, rng_counter: int | None) -> Account:
    """The account of a row: its document, with the counter of its column when set."""
    found = _ACCOUNTS.get(data)
    if found is None:
        found = _load(Account, data)
        _remember_account(data, found)
    account = found.model_copy()
    if rng_counter is not None:
        account.rng_counter = rng_counter
    return account


_ACCOUNT_DUE = (
    "SELECT data, rng_counter, (SELECT due_us FROM jobs WHERE account_id = accounts.id "
    "ORDER BY due_us, seq LIMIT 1) FROM accounts WHERE id = ?"
)

_JOURNAL_CHUNK = 64  # rows per journal INSERT at most (a power of two)


@functools.cache
def _journal_insert(rows: int) -> str:
    values = ", ".join(["(?, ?)"] * rows)  # placeholders only: every value is bound
    return f"INSERT INTO request_journal (account_id, data) VALUES {values}"  # noqa: S608


class SqliteTx(WebhookTxMixin, FinanceTxMixin, RuntimeTxMixin, SharedTxMixin):
    """Implements `simulator.store.base.Tx` on one connection inside BEGIN IMMEDIATE."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.c = conn
        self._sp = 0

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        self._sp += 1
        name = f"sp{self._sp}"
        self.c.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.c.execute(f"ROLLBACK TO {name}")
            self.c.execute(f"RELEASE {name}")
            raise
        self.c.execute(f"RELEASE {name}")

    def id_taken(self, object_id: str) -> bool:
        table = _ID_TABLES.get(object_id.split("_", 1)[0])
        if table is None:
            return False
        sql = f"SELECT 1 FROM {table} WHERE id = ?"  # noqa: S608 - table names are ours
        return self.c.execute(sql, (object_id,)).fetchone() is not None

    # --- accounts ------------------------------------------------------------------------
    def account(self, account_id: str) -> Account | None:
        row = self.c.execute(
            "SELECT data, rng_counter FROM accounts WHERE id = ?", (account_id,)
        ).fetchone()
        return _account(row[0], row[1]) if row else None

    def account_due(self, account_id: str) -> tuple[Account, int | None] | None:
        # One statement instead of `account` and `next_due`: each costs its own round through
        # the sqlite3 module, and every scope (every GET's read snapshot) opens with both.
        row = self.c.execute(_ACCOUNT_DUE, (account_id,)).fetchone()
        if row is None:
            return None
        return _account(row[0], row[1]), None if row[2] is None else int(row[2])

    def account_by_key(self, api_key: str) -> Account | None:
        row = self.c.execute(
            "SELECT data, rng_counter FROM accounts WHERE api_key = ?", (api_key,)
        ).fetchone()
        return _account(row[0], row[1]) if row else None

    def accounts(self, *, limit: int, cursor: str | None = None) -> Page[Account]:
        """Oldest first (the demo account, made at the first start, leads), from `cursor` on."""
        after = decode_cursor(cursor) if cursor is not None else 0
        rows = self.c.execute(
            "SELECT rowid, data, rng_counter FROM accounts WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (after, limit + 1),
        ).fetchall()
        has_more = len(rows) > limit
        rows = rows[:limit]
        items = [_account(r[1], r[2]) for r in rows]
        return Page(items, has_more, encode_cursor(rows[-1][0]) if has_more else None)

    def save_account(self, account: Account) -> None:
        data = account.model_dump_json()
        _remember_account(data, account.model_copy())
        # The usual case (clock, settings) writes only the row: setting `api_key`, even to
        # the same value, would rewrite its index page too, one more page in every commit.
        if self.c.execute(
            "UPDATE accounts SET data = ?, rng_counter = ? WHERE id = ? AND api_key = ?",
            (data, account.rng_counter, account.id, account.api_key),
        ).rowcount:
            return
        self.c.execute(
            "INSERT INTO accounts (id, api_key, data, rng_counter) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET api_key = excluded.api_key, data = excluded.data, "
            "rng_counter = excluded.rng_counter",
            (account.id, account.api_key, data, account.rng_counter),
        )

    def add_request(self, account_id: str | None, data: str) -> int:
        cur = self.c.execute(_journal_insert(1), (account_id, data))
        assert cur.lastrowid is not None  # an INSERT into a rowid table always has one
        return cur.lastrowid

    def add_requests(self, rows: Sequence[tuple[str | None, str]]) -> list[int]:
        """`SharedTxMixin.add_requests` in multi-row INSERTs of 64, 32, ... 1 rows (a few
        statement texts, so the statement cache keeps them), without RETURNING: the rowid of
        a statement's last row is `lastrowid`, and its rows' are the ones before it (each row
        gets the largest seq so far + 1, and no other writer runs within a statement). The
        sqlite3 module runs a row 3 times as fast so: 3.0 us against 13.4 us with RETURNING
        (16 rows a commit, the commit included)."""
        if len(rows) == 1:  # a write's own entry (`Journal.write`)
            return [self.add_request(*rows[0])]
        seqs: list[int] = []
        at = 0
        while at < len(rows):
            n = _JOURNAL_CHUNK
            while n > len(rows) - at:
                n //= 2
            cur = self.c.execute(_journal_insert(n), [v for row in rows[at : at + n] for v in row])
            assert cur.lastrowid is not None  # an INSERT into a rowid table always has one
            seqs.extend(range(cur.lastrowid - n + 1, cur.lastrowid + 1))
            at += n
        return seqs

    def save_rng_counter(self, account_id: str, counter: int) -> None:
        """Only the account's RNG counter (what most operations change of it)."""
        self.c.execute("UPDATE accounts SET rng_counter = ? WHERE id = ?", (counter, account_id))

    def wipe_account(self, account_id: str) -> None:
        for table in _OBJECT_TABLES:
            self.c.execute(f"DELETE FROM {table} WHERE account_id = ?", (account_id,))  # noqa: S608 - fixed table names

    # --- buyers ----------------------------------------------------------------------------
    def buyer(self, account_id: str, buyer_id: str) -> Buyer | None:
        row = self.c.execute(
            "SELECT data FROM buyers WHERE id = ? AND account_id = ?", (buyer_id, account_id)
        ).fetchone()
        return _load(Buyer, row[0]) if row else None

    def buyer_by_external_id(self, account_id: str, external_id: str) -> Buyer | None:
        row = self.c.execute(
            "SELECT data FROM buyers WHERE account_id = ? AND external_id = ? ORDER BY seq LIMIT 1",
            (account_id, external_id),
        ).fetchone()
        return _load(Buyer, row[0]) if row else None

    def save_buyer(self, account_id: str, buyer: Buyer) -> None:
        self.c.execute(
            "INSERT INTO buyers (account_id, id, external_id, data) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET "
            "external_id = excluded.external_id, data = excluded.data",
            (account_id, buyer.id, buyer.external_id, buyer.model_dump_json()),
        )

    def _page(
        self,
        model: type[M],
        table: str,
        account_id: str,
        filters: dict[str, Any],
        *,
        limit: int,
        cursor: str | None,
    ) -> Page[M]:
        where = ["account_id = ?"]
        args: list[Any] = [account_id]
        for column, value in filters.items():
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if cursor is not None:
            where.append("seq < ?")
            args.append(decode_cursor(cursor))
        sql = (
            f"SELECT seq, data FROM {table} WHERE {' AND '.join(where)} "  # noqa: S608 - columns are ours
            "ORDER BY seq DESC LIMIT ?"
        )
        rows = self.c.execute(sql, (*args, limit + 1)).fetchall()
        has_more = len(rows) > limit
        rows = rows[:limit]
        items = [_load(model, r[1]) for r in rows]
        return Page(items, has_more, encode_cursor(rows[-1][0]) if has_more else None)

    def list_buyers(
        self, account_id: str, *, external_id: str | None, limit: int, cursor: str | None
    ) -> Page[Buyer]:
        return self._page(
            Buyer, "buyers", account_id, {"external_id": external_id}, limit=limit, cursor=cursor
        )

    # --- checkouts and orders ------------------------------------------------------------
    def checkout(self, account_id: str | None, checkout_id: str) -> tuple[str, Checkout] | None:
        row = self.c.execute(
            "SELECT account_id, data FROM checkouts WHERE id = ?", (checkout_id,)
        ).fetchone()
        if not row or (account_id is not None and row[0] != account_id):
            return None
        return row[0], _load(Checkout, row[1])

    def save_checkout(self, account_id: str, checkout: Checkout) -> None:
        self.c.execute(
            "INSERT INTO checkouts (account_id, id, data) VALUES (?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET data = excluded.data",
            (account_id, checkout.id, checkout.model_dump_json()),
        )

    def order(self, account_id: str | None, order_id: str) -> tuple[str, Order] | None:
        row = self.c.execute(
            "SELECT account_id, data FROM orders WHERE id = ?", (order_id,)
        ).fetchone()
        if not row or (account_id is not None and row[0] != account_id):
            return None
        return row[0], _load(Order, row[1])

    def save_order(self, account_id: str, order: Order) -> None:
        self.c.execute(
            "INSERT INTO orders (account_id, id, status, merchant_order_id, buyer_id, data) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
            "merchant_order_id = excluded.merchant_order_id, data = excluded.data",
            (
                account_id,
                order.id,
                order.status,
                order.merchant_order_id,
                order.buyer_id,
                order.model_dump_json(),
            ),
        )

    def list_orders(
        self,
        account_id: str,
        *,
        status: str | None,
        merchant_order_id: str | None,
        buyer_id: str | None,
        limit: int,
        cursor: str | None,
    ) -> Page[Order]:
        filters = {"status": status, "merchant_order_id": merchant_order_id, "buyer_id": buyer_id}
        return self._page(Order, "orders", account_id, filters, limit=limit, cursor=cursor)

    # --- events (the outbox) ---------------------------------------------------------------
    def add_event(
        self, account_id: str, event_id: str, type_: str, object_id: str, document: str
    ) -> None:
        self.c.execute(
            "INSERT INTO events (account_id, id, type, object_id, data) VALUES (?, ?, ?, ?, ?)",
            (account_id, event_id, type_, object_id, document),
        )

    def list_events(
        self,
        account_id: str,
        *,
        type_: str | None = None,
        object_id: str | None = None,
        created_gte: datetime | None = None,
        created_lt: datetime | None = None,
        limit: int,
        cursor: str | None,
    ) -> Page[Event]:
        """Newest first. Type and object filter in SQL; a created range in Python (times are
        stored as RFC 3339 text, which stops sorting by instant once fractions appear)."""
        filters = {"type": type_, "object_id": object_id}
        if created_gte is None and created_lt is None:
            return self._page(Event, "events", account_id, filters, limit=limit, cursor=cursor)
        where, args = ["account_id = ?"], [account_id]
        for column, value in filters.items():
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if cursor is not None:
            where.append("seq < ?")
            args.append(str(decode_cursor(cursor)))
        rows = self.c.execute(
            f"SELECT seq, data FROM events WHERE {' AND '.join(where)} "  # noqa: S608 - our columns
            "ORDER BY seq DESC",
            args,
        )
        found: list[tuple[int, Event]] = []
        for seq, data in rows:
            event = _load(Event, data)
            if created_gte is not None and event.created_at < created_gte:
                continue
            if created_lt is not None and event.created_at >= created_lt:
                continue
            if len(found) == limit:
                return Page([e for _, e in found], True, encode_cursor(found[-1][0]))
            found.append((int(seq), event))
        return Page([e for _, e in found], False, None)

    # --- jobs ------------------------------------------------------------------------------------
    def schedule(self, account_id: str, due_us: int, kind: str, ref: str) -> None:
        self.c.execute(
            "INSERT INTO jobs (account_id, due_us, kind, ref) VALUES (?, ?, ?, ?)",
            (account_id, due_us, kind, ref),
        )

    def next_due(self, account_id: str) -> int | None:
        row = self.c.execute(
            "SELECT due_us FROM jobs WHERE account_id = ? ORDER BY due_us, seq LIMIT 1",
            (account_id,),
        ).fetchone()
        return int(row[0]) if row else None

    def pop_due(self, account_id: str, until_us: int) -> Job | None:
        row = self.c.execute(
            "SELECT seq, due_us, kind, ref FROM jobs WHERE account_id = ? AND due_us <= ? "
            "ORDER BY due_us, seq LIMIT 1",
            (account_id, until_us),
        ).fetchone()
        if row is None:
            return None
        self.c.execute("DELETE FROM jobs WHERE seq = ?", (row[0],))
        return Job(row[0], row[1], row[2], row[3])

    # --- idempotency -----------------------------------------------------------------------
    def saved_response(self, account_id: str, key: str, now_us: int) -> SavedResponse | None:
        row = self.c.execute(
            "SELECT fingerprint, status, body, content_type FROM idempotency "
            "WHERE account_id = ? AND key = ? AND expires_us > ?",
            (account_id, key, now_us),
        ).fetchone()
        return SavedResponse(row[0], row[1], bytes(row[2]), row[3]) if row else None

    def save_response(
        self, account_id: str, key: str, saved: SavedResponse, now_us: int, expires_us: int
    ) -> None:
        self.c.execute(
            "INSERT INTO idempotency "
            "(account_id, key, fingerprint, status, content_type, body, created_us, expires_us) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account_id, key) DO UPDATE SET "
            "fingerprint = excluded.fingerprint, status = excluded.status, "
            "content_type = excluded.content_type, body = excluded.body, "
            "created_us = excluded.created_us, expires_us = excluded.expires_us",
            (
                account_id,
                key,
                saved.fingerprint,
                saved.status,
                saved.content_type,
                saved.body,
                now_us,
                expires_us,
            ),
        )

    def expire_responses(self, account_id: str, now_us: int) -> int:
        cur = self.c.execute(
            "DELETE FROM idempotency WHERE account_id = ? AND expires_us <= ?", (account_id, now_us)
        )
        return cur.rowcount


class SqliteStore:
    """Implements `simulator.store.base.Store`. One connection per process, used from the
    event-loop thread; statements are microseconds, so they run inline rather than in a pool
    (the lock waits are what must not, see the module docstring)."""

    # What a failed statement raises (the PostgreSQL store, a subclass, has its own).
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, path: str) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute(f"PRAGMA busy_timeout = {BLOCKING_BUSY_MS}")
        self.lock_wait_s: float | None = None  # None: blocking (startup, background)
        # A background process (the webhook dispatcher's): `writable` polls for the lock
        # instead of leaving the wait to SQLite, while other writes still block.
        self.poll_lock = False
        if path != ":memory:":
            self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self._group: list[asyncio.Future[None]] | None = None  # waiters of the open group
        self._quiet = 0  # rows the request journal changed on this connection (`quietly`)
        self._checkpointer: checkpoints.Running | None = None
        self._wal_limit = checkpoints.limit_bytes(checkpoints.DEFAULT_WAL_LIMIT_MB)
        if path != ":memory:":
            checkpoints.set_journal_size_limit(self.conn, self._wal_limit)
        self._migrate()

    def _migrate(self) -> None:
        """Apply the migrations not yet applied. `sandbank serve` migrates once, before any
        worker or background process starts; these then find the schema current with a read
        and never take the write lock here (a busy API would make them wait for it)."""
        c = self.conn
        if self._current():
            return
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL)"
            )
            done = {r[0] for r in c.execute("SELECT version FROM schema_migrations")}
            for version, script in enumerate(MIGRATIONS, start=1):
                if version in done:
                    continue
                for statement in script.split(";"):
                    if statement.strip():
                        c.execute(statement)
                c.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                    (version, script.strip().splitlines()[0][:60]),
                )
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def _current(self) -> bool:
        try:
            row = self.conn.execute(
                "SELECT COUNT(*) FROM schema_migrations WHERE version <= ?", (len(MIGRATIONS),)
            ).fetchone()
        except sqlite3.OperationalError:  # no such table: a new database
            return False
        return int(row[0]) >= len(MIGRATIONS)  # every one applied, none missing in between

    def _tx(self) -> SqliteTx:
        return SqliteTx(self.conn)

    def serving(self, lock_wait_s: float = LOCK_WAIT_S) -> None:
        """From now on requests use this connection: never sleep in SQLite for a lock, nor
        in a checkpoint's fsync (`checkpoint_in_background`)."""
        self.lock_wait_s = lock_wait_s
        self.conn.execute("PRAGMA busy_timeout = 0")
        self.checkpoint_in_background()

    def bound_wal(self, limit_mb: int) -> None:
        """The WAL's bound (`--wal-limit-mb`; 0: none), for the checkpoint thread and this
        connection's `journal_size_limit` (`simulator.store.checkpoints`)."""
        self._wal_limit = checkpoints.limit_bytes(limit_mb)
        if self.path != ":memory:":
            checkpoints.set_journal_size_limit(self.conn, self._wal_limit)

    def leave_checkpoints(self) -> None:
        """No checkpoint in this connection's commits, nor a thread of its own: for a
        background process of `sandbank serve`, whose API process runs the checkpoint thread
        on the same file (a second one only found the first busy)."""
        if self.path != ":memory:":
            self.conn.execute("PRAGMA wal_autocheckpoint = 0")

    def checkpoint_in_background(self, interval_s: float = checkpoints.CHECKPOINT_S) -> None:
        """Move the WAL into the database from a thread of its own, never from a commit, and
        keep it within the bound (`simulator.store.checkpoints`). Durability is unchanged: a
        commit is in the WAL before it is acknowledged, as before."""
        if self.path == ":memory:" or self._checkpointer is not None:
            return
        self.conn.execute("PRAGMA wal_autocheckpoint = 0")
        self._checkpointer = checkpoints.start(self.path, self._wal_limit, interval_s)

    @property
    def checkpointer(self) -> checkpoints.Checkpointer | None:
        """The checkpoint thread's rounds, if it runs (its counts: bench and tests)."""
        return self._checkpointer[2] if self._checkpointer is not None else None

    def _begin(self, mode: str) -> None:
        try:
            self.conn.execute(f"BEGIN {mode}")
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                raise busy(exc) from None
            raise

    def _open_group(self) -> None:
        """BEGIN IMMEDIATE as a group committed at the end of this event-loop turn; "busy"
        while the checkpoint thread waits for the lock to restart the WAL (it gets it when the
        group in progress commits: `simulator.store.checkpoints`)."""
        if self._checkpointer is not None and self._checkpointer[2].wants_lock.is_set():
            raise busy()
        self._begin("IMMEDIATE")
        self._group = []
        asyncio.get_running_loop().call_soon(self.flush)

    async def writable(self) -> None:
        """Hold the write lock for the rest of this event-loop turn, awaiting it without
        blocking the loop for at most `lock_wait_s` (then `StoreBusy`). A `transaction()` or
        `grouped()` entered right after (no await between) uses it."""
        if self._group is not None:
            return
        if self.lock_wait_s is None:
            if self.poll_lock:
                await self._poll_blocking()
            return
        deadline = time.monotonic() + self.lock_wait_s
        for attempt in range(1_000_000):
            if self._group is not None:  # another request of this turn got the lock meanwhile
                return
            try:
                self._open_group()
            except StoreBusy:
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(_POLL_S[min(attempt, len(_POLL_S) - 1)])
            else:
                return

    async def _poll_blocking(self) -> None:
        """`writable` for a background process (`poll_lock`): SQLite's own busy handler backs
        off to 100 ms sleeps, and against an API that takes the lock again a few microseconds
        after each group's COMMIT it loses nearly every time (issue #18: webhooks fell
        seconds behind under load). Polling every millisecond or so finds the gaps; past the
        blocking timeout, SQLite's own wait takes over (no error of ours)."""
        self.conn.execute("PRAGMA busy_timeout = 0")
        try:
            await self._poll_group(BLOCKING_BUSY_MS / 1000)
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {BLOCKING_BUSY_MS}")

    async def _poll_group(self, wait_s: float) -> None:
        """Open the group as soon as the lock is free, trying every millisecond or so; past
        `wait_s`, return without it (the write then waits in its own, blocking way)."""
        deadline = time.monotonic() + wait_s
        for attempt in range(1_000_000):
            try:
                self._open_group()
            except StoreBusy:
                if time.monotonic() >= deadline:
                    return
                await asyncio.sleep(_BACKGROUND_POLL_S[min(attempt, 1)])
            else:
                return

    def schema_version(self) -> int:
        row = self.conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[SqliteTx]:
        """All or nothing, committed when the block ends. `write=False`: a deferred
        transaction, a consistent snapshot that waits for no writer (it may still write, if
        the lock is free). A write joins the open group, if any, and commits it with itself."""
        if write and self._group is not None:
            self.conn.execute("SAVEPOINT joined")
            try:
                yield self._tx()
            except BaseException:
                self.conn.execute("ROLLBACK TO joined")
                self.conn.execute("RELEASE joined")
                raise
            self.conn.execute("RELEASE joined")
            error = self.flush()
            if error is not None:
                raise busy(error) if is_busy(error) else error
            self._committed()
            return
        if self._group is not None:
            self.flush()  # a read sees committed data only
        self._begin("IMMEDIATE" if write else "DEFERRED")
        try:
            yield self._tx()
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        try:
            self.conn.execute("COMMIT")
        except self.errors as exc:
            with contextlib.suppress(*self.errors):
                self.conn.execute("ROLLBACK")
            if is_busy(exc):  # a snapshot that wrote after another writer: nothing was kept
                raise busy(exc) from None
            raise
        self._committed()

    @staticmethod
    def _committed() -> None:
        made = commits.get()
        if made is not None:
            made.append(1)

    @contextmanager
    def read(self) -> Iterator[SqliteTx]:
        """Committed data only, without taking the write lock (autocommit reads)."""
        if self._group is not None:
            self.flush()
        yield self._tx()

    @contextmanager
    def grouped(self) -> Iterator[tuple[SqliteTx, Awaitable[None]]]:
        """One operation in the group committed at the end of this event-loop turn (see the
        module docstring). All or nothing of it is kept; await the awaitable, which completes
        once the group is committed (or raises why it was not), before answering."""
        loop = asyncio.get_running_loop()
        if self._group is None:
            self._open_group()
        assert self._group is not None
        waiter: asyncio.Future[None] = loop.create_future()
        self._group.append(waiter)
        self.conn.execute("SAVEPOINT grouped")
        try:
            yield self._tx(), waiter
        except BaseException:
            self.conn.execute("ROLLBACK TO grouped")
            self.conn.execute("RELEASE grouped")
            raise
        self.conn.execute("RELEASE grouped")

    def flush(self) -> Exception | None:
        """Commit the open group, if any, and tell its operations how that went (the error,
        if the COMMIT failed, is also returned)."""
        waiters, self._group = self._group, None
        if waiters is None:
            return None
        error: Exception | None = None
        try:
            self.conn.execute("COMMIT")
        except self.errors as exc:
            error = exc
            with contextlib.suppress(*self.errors):
                self.conn.execute("ROLLBACK")
        for waiter in waiters:
            _settle(waiter, error)
        return error

    def dump_stream(
        self, account_id: str, head: dict[str, Any]
    ) -> Iterator[bytes] | AsyncIterator[bytes]:
        """The account's dump as JSON bytes, a page at a time (`simulator.store.dump`)."""
        if self.path == ":memory:":
            return dump.on_loop(self.conn, account_id, head)
        return dump.from_file(self.path, account_id, head)

    async def build_export(self, account_id: str, spool: str, build: ExportBuild[T]) -> T:
        """Run `build` over the account's rows with a writer of chunks under `spool`
        (`simulator.store.export_rows`). On a database file: in a worker thread, reading one
        snapshot on a connection of its own and writing on another, in short transactions, so
        neither the event loop nor the write lock is held for long. `:memory:` has no second
        connection: there it runs on the loop, at once (tests and throwaway runs)."""
        if self.path == ":memory:":
            writer = export_rows.ChunkWriter(self.conn, account_id, spool, own_transactions=False)
            result = build(export_rows.ExportRows(self.conn, account_id), writer)
            writer.flush()
            return result
        return await asyncio.to_thread(_build_export, self.path, account_id, spool, build)

    async def drop_export(self, spool: str) -> None:
        """Delete the chunks written under `spool` (an export that was not kept)."""
        if self.path == ":memory:":
            export_rows.drop(self.conn, spool)
            return
        await asyncio.to_thread(_drop_export, self.path, spool)

    def export_stream(self, spool: str, file: str) -> Iterator[bytes] | AsyncIterator[bytes]:
        """A stored export file's bytes, a page of chunks at a time (as `dump_stream`)."""
        if self.path == ":memory:":
            return _on_loop(export_rows.chunks(self.conn, spool, file))
        return _export_from_file(self.path, spool, file)

    def data_version(self) -> tuple[int, int] | None:
        """This connection's own row changes other than the journal's (`total_changes` counts
        every INSERT, UPDATE and DELETE it ran, committed or not, so it never misses one) and
        SQLite's `data_version`, which moves with every commit of another connection (another
        worker, the dispatcher or scheduler process, a tool on the file). Taken before a read
        begins, a change committed after it shows in the next value: a cached answer is
        thrown away when in doubt, never kept. A statement, autocommit: a few µs."""
        row = self.conn.execute("PRAGMA data_version").fetchone()
        return self.conn.total_changes - self._quiet, int(row[0])

    @contextmanager
    def quietly(self) -> Iterator[None]:
        """The journal's rows change on every request, reads included; counted apart, they
        leave `data_version` as it was (each row a request logged, not data an answer shows)."""
        before = self.conn.total_changes
        try:
            yield
        finally:
            self._quiet += self.conn.total_changes - before

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def close(self) -> None:
        self.flush()
        if self._checkpointer is not None:
            thread, stop, _ = self._checkpointer
            stop.set()
            thread.join(timeout=5)
            self._checkpointer = None
        self.conn.close()


def _writer(path: str) -> sqlite3.Connection:
    """A connection of a worker thread's own: it may wait for the lock (no loop is blocked)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BLOCKING_BUSY_MS}")
    return conn


def _build_export(path: str, account_id: str, spool: str, build: ExportBuild[T]) -> T:
    reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    writer = _writer(path)
    try:
        reader.execute("BEGIN")  # one snapshot for every file
        chunks = export_rows.ChunkWriter(writer, account_id, spool, own_transactions=True)
        try:
            result = build(export_rows.ExportRows(reader, account_id), chunks)
            chunks.flush()
        except BaseException:
            export_rows.drop(writer, spool)
            raise
        return result
    finally:
        reader.close()
        writer.close()


def _drop_export(path: str, spool: str) -> None:
    conn = _writer(path)
    try:
        export_rows.drop(conn, spool)
    finally:
        conn.close()


def _export_from_file(path: str, spool: str, file: str) -> Iterator[bytes]:
    """On a connection of its own, pulled from a worker thread (Starlette iterates a plain
    iterator there)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    try:
        yield from export_rows.chunks(conn, spool, file)
    finally:
        conn.close()


async def _on_loop(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """One chunk per event-loop turn (`:memory:`)."""
    for chunk in chunks:
        yield chunk
        await asyncio.sleep(0)


def _settle(waiter: asyncio.Future[None], error: Exception | None) -> None:
    """Complete a group waiter, from its loop's thread or (a test's direct call) another."""

    def settle() -> None:
        if waiter.done():  # its request was cancelled meanwhile
            return
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)

    loop = waiter.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        settle()
    elif not loop.is_closed():
        loop.call_soon_threadsafe(settle)
