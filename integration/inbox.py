"""The webhook inbox: a durable queue of raw provider events and the order state they build.

One SQLite file (stdlib `sqlite3`, WAL, `synchronous=FULL`), or `:memory:` for tests.

`raw_events` — every provider event exactly as received, before anything interprets it:
  `webhook_id` (UNIQUE: the dedupe key; the provider's event id), `received_at`, `headers`
  (JSON), `body` (BLOB, byte for byte), `source` ('webhook' | 'poll'), `status`
  (queued | processed | failed), `attempts`, `last_error`, `next_attempt_at`.
  - `accept()` inserts one row in its own committed transaction and only then returns, so
    the receiver answers 2xx only for what is on disk: an acknowledged event survives
    `kill -9`. A repeat of a known `webhook_id` writes nothing and returns False.
  - `next_batch()` hands out queued rows, and failed rows whose retry has fallen due, oldest
    first. `mark_failed(retry=True)` schedules the next try with exponential backoff
    (1 s, 2 s, 4 s … capped at an hour) until `max_attempts`; `retry=False` quarantines the row
    (it stays `failed` with no next attempt: a signed body that is not an event will not parse
    better tomorrow).
  - Processing is at-least-once: a crash between `apply` and `mark_processed` replays the
    row, and `apply` is idempotent. `transaction()` lets a caller do both in one commit.
    One processor at a time is assumed (the service's background task); two would only do
    duplicate, harmless work.

`cursors` — where a poller of the provider's event list stopped (`name` -> `value`, e.g. the
newest event id accepted), so a restart reads on from there. `set_cursor` joins an open
`transaction()`, so the events a poll accepts and the cursor past them commit together.

`order_state` — the normalized state of each provider order, from the order snapshots the
events carry (`data` of an event whose `object_type` is "order").
  NEVER BACKWARDS: webhooks arrive at least once and in any order, so a snapshot replaces the
  stored status only if its status ranks higher, or ranks the same and the event is newer
  (`created_at`; a tie keeps what is stored). Amounts (`captured`, `refunded`) only grow: each
  is the maximum of everything seen, whatever the snapshot's rank. An older snapshot is still
  recorded in `raw_events`; it just does not overwrite newer state.

The inbox names no provider: each provider's adapter declares how its events' order snapshots
read in the states below, its own status names among them (`integration.adapters.order_state`,
by the event's object type in `ORDER_STATES`). Each state's rank (`RANK`):

    state                rank
    pending              0
    authorized           1
    partially_captured   2
    captured             3
    partially_refunded   4
    refunded             5
    canceled             6  (terminal)
    expired              6  (terminal)
    declined             6  (terminal)

The terminal three never follow a capture at the provider (an order that expires after a
partial capture becomes `captured`), so ranking them above everything is safe and makes them
stick. A status the adapter does not declare is not guessed at: the event is recorded, the
state is not touched (`Applied.outcome == "ignored"`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Literal

from integration.adapters import order_state
from integration.db import connect
from integration.model import ProviderEvent

Source = Literal["webhook", "poll"]
RawStatus = Literal["queued", "processed", "failed"]
Outcome = Literal["created", "advanced", "merged", "stale", "ignored"]

RANK: Final[Mapping[str, int]] = {
    "pending": 0,
    "authorized": 1,
    "partially_captured": 2,
    "captured": 3,
    "partially_refunded": 4,
    "refunded": 5,
    "canceled": 6,
    "expired": 6,
    "declined": 6,
}

DEFAULT_MAX_ATTEMPTS = 10
MAX_BACKOFF = timedelta(hours=1)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS raw_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      TEXT    NOT NULL UNIQUE,
    received_at     TEXT    NOT NULL,
    headers         TEXT    NOT NULL,
    body            BLOB    NOT NULL,
    source          TEXT    NOT NULL CHECK (source IN ('webhook', 'poll')),
    status          TEXT    NOT NULL DEFAULT 'queued'
                            CHECK (status IN ('queued', 'processed', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at TEXT
);
CREATE INDEX IF NOT EXISTS raw_events_pending ON raw_events (status, next_attempt_at, id);
CREATE TABLE IF NOT EXISTS cursors (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS order_state (
    provider_order_id TEXT    PRIMARY KEY,
    status            TEXT    NOT NULL,
    rank              INTEGER NOT NULL,
    captured          INTEGER NOT NULL,
    refunded          INTEGER NOT NULL,
    currency          TEXT    NOT NULL,
    last_event_id     TEXT    NOT NULL,
    last_event_at     TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL
);
"""


def _iso(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("times are timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass(frozen=True, slots=True)
class RawEvent:
    """One row of `raw_events`."""

    id: int
    webhook_id: str
    received_at: datetime
    headers: dict[str, str]
    body: bytes
    source: Source
    status: RawStatus
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class OrderState:
    """One row of `order_state`: canonical status, amounts in minor units."""

    provider_order_id: str
    status: str
    rank: int
    captured: int
    refunded: int
    currency: str
    last_event_id: str
    last_event_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class OrderSnapshot:
    """What an order event says about its order, in canonical terms."""

    provider_order_id: str
    status: str
    captured: int
    refunded: int
    currency: str


@dataclass(frozen=True, slots=True)
class Applied:
    """What `Inbox.apply` did.

    - created: the first snapshot of this order
    - advanced: the snapshot ranked higher (or the same, and was newer) and replaced the state
    - merged: the status stayed, but an amount grew
    - stale: an older or lower-ranked snapshot; nothing changed
    - ignored: not an order snapshot (another object, a thin payload, an unknown status)
    """

    outcome: Outcome
    state: OrderState | None


def order_snapshot(event: ProviderEvent) -> OrderSnapshot | None:
    """The order snapshot an event carries, or None (not an order, thin, unknown status)."""
    if event.provider_order_id is None:
        return None
    state = order_state(event.raw)
    return None if state is None else OrderSnapshot(event.provider_order_id, *state)


class Inbox:
    """The durable inbox. Thread-safe (one connection behind a lock)."""

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        clock: Callable[[], datetime],
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self.path = str(path)
        self.clock = clock
        self.max_attempts = max_attempts
        self._lock = threading.RLock()
        self._depth = 0
        self._db = connect(self.path)
        with self.transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Inbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One committed write transaction; nested calls join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._db
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._depth = 0

    # --- raw events ---------------------------------------------------------------------------
    def accept(
        self, webhook_id: str, headers: Mapping[str, str], body: bytes, source: Source
    ) -> bool:
        """Store one event as received; True if new, False if `webhook_id` was already known
        (nothing written). Committed before it returns."""
        if not webhook_id:
            raise ValueError("webhook_id is required")
        if source not in ("webhook", "poll"):
            raise ValueError(f"unknown source {source!r}")
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO raw_events (webhook_id, received_at, headers, body, source)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (webhook_id) DO NOTHING",
                (
                    webhook_id,
                    _iso(self.clock()),
                    json.dumps(dict(headers), sort_keys=True),
                    bytes(body),
                    source,
                ),
            )
            return cursor.rowcount == 1

    def next_batch(self, limit: int = 100) -> list[RawEvent]:
        """Queued rows and failed rows due for a retry, oldest first."""
        now = _iso(self.clock())
        with self._lock:
            rows = self._db.execute(
                "SELECT id, webhook_id, received_at, headers, body, source, status, attempts,"
                " last_error, next_attempt_at FROM raw_events"
                " WHERE status = 'queued'"
                "    OR (status = 'failed' AND next_attempt_at IS NOT NULL"
                "        AND next_attempt_at <= ?)"
                " ORDER BY id LIMIT ?",
                (now, limit),
            ).fetchall()
        return [_raw(row) for row in rows]

    def mark_processed(self, raw_id: int) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE raw_events SET status = 'processed', attempts = attempts + 1,"
                " last_error = NULL, next_attempt_at = NULL WHERE id = ?",
                (raw_id,),
            )

    def mark_failed(self, raw_id: int, error: str, *, retry: bool = True) -> None:
        """Record a failure; retried later with backoff unless `retry` is False or the row has
        used up `max_attempts` (then it stays failed: quarantined for a human)."""
        with self.transaction() as db:
            row = db.execute("SELECT attempts FROM raw_events WHERE id = ?", (raw_id,)).fetchone()
            if row is None:
                raise KeyError(raw_id)
            attempts = int(row[0]) + 1
            next_at: str | None = None
            if retry and attempts < self.max_attempts:
                delay = min(timedelta(seconds=2 ** (attempts - 1)), MAX_BACKOFF)
                next_at = _iso(self.clock() + delay)
            db.execute(
                "UPDATE raw_events SET status = 'failed', attempts = ?, last_error = ?,"
                " next_attempt_at = ? WHERE id = ?",
                (attempts, error[:2000], next_at, raw_id),
            )

    def raw_events(self, status: RawStatus | None = None) -> list[RawEvent]:
        """Every stored row (optionally of one status), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, webhook_id, received_at, headers, body, source, status, attempts,"
                " last_error, next_attempt_at FROM raw_events"
                " WHERE ? IS NULL OR status = ? ORDER BY id",
                (status, status),
            ).fetchall()
        return [_raw(row) for row in rows]

    def raw_event(self, webhook_id: str) -> RawEvent | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, webhook_id, received_at, headers, body, source, status, attempts,"
                " last_error, next_attempt_at FROM raw_events WHERE webhook_id = ?",
                (webhook_id,),
            ).fetchone()
        return None if row is None else _raw(row)

    # --- poll cursors -------------------------------------------------------------------------
    def cursor(self, name: str) -> str | None:
        """The stored cursor `name`, or None (never polled)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_cursor(self, name: str, value: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO cursors (name, value, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value,"
                " updated_at = excluded.updated_at",
                (name, value, _iso(self.clock())),
            )

    # --- order state --------------------------------------------------------------------------
    def apply(self, event: ProviderEvent) -> Applied:
        """Fold one event's order snapshot into `order_state`, never moving it backwards."""
        snap = order_snapshot(event)
        if snap is None:
            return Applied("ignored", None)
        rank = RANK[snap.status]
        now = self.clock()
        with self.transaction() as db:
            current = self._order(db, snap.provider_order_id)
            if current is None:
                state = OrderState(
                    snap.provider_order_id,
                    snap.status,
                    rank,
                    snap.captured,
                    snap.refunded,
                    snap.currency,
                    event.provider_event_id,
                    event.at,
                    now,
                )
                outcome: Outcome = "created"
            else:
                newer = rank > current.rank or (
                    rank == current.rank and event.at > current.last_event_at
                )
                captured = max(current.captured, snap.captured)
                refunded = max(current.refunded, snap.refunded)
                grew = (captured, refunded) != (current.captured, current.refunded)
                if newer:
                    state = OrderState(
                        current.provider_order_id,
                        snap.status,
                        rank,
                        captured,
                        refunded,
                        current.currency,
                        event.provider_event_id,
                        event.at,
                        now,
                    )
                    outcome = "advanced"
                elif grew:
                    state = OrderState(
                        current.provider_order_id,
                        current.status,
                        current.rank,
                        captured,
                        refunded,
                        current.currency,
                        current.last_event_id,
                        current.last_event_at,
                        now,
                    )
                    outcome = "merged"
                else:
                    return Applied("stale", current)
            db.execute(
                "INSERT INTO order_state (provider_order_id, status, rank, captured, refunded,"
                " currency, last_event_id, last_event_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (provider_order_id) DO UPDATE SET status = excluded.status,"
                " rank = excluded.rank, captured = excluded.captured,"
                " refunded = excluded.refunded, last_event_id = excluded.last_event_id,"
                " last_event_at = excluded.last_event_at, updated_at = excluded.updated_at",
                (
                    state.provider_order_id,
                    state.status,
                    state.rank,
                    state.captured,
                    state.refunded,
                    state.currency,
                    state.last_event_id,
                    _iso(state.last_event_at),
                    _iso(state.updated_at),
                ),
            )
        return Applied(outcome, state)

    def order(self, provider_order_id: str) -> OrderState | None:
        with self._lock:
            return self._order(self._db, provider_order_id)

    def orders(self) -> list[OrderState]:
        with self._lock:
            rows = self._db.execute(
                "SELECT provider_order_id, status, rank, captured, refunded, currency,"
                " last_event_id, last_event_at, updated_at FROM order_state"
                " ORDER BY provider_order_id"
            ).fetchall()
        return [_order(row) for row in rows]

    @staticmethod
    def _order(db: sqlite3.Connection, provider_order_id: str) -> OrderState | None:
        row = db.execute(
            "SELECT provider_order_id, status, rank, captured, refunded, currency,"
            " last_event_id, last_event_at, updated_at FROM order_state"
            " WHERE provider_order_id = ?",
            (provider_order_id,),
        ).fetchone()
        return None if row is None else _order(row)


def _raw(row: Sequence[object]) -> RawEvent:
    headers = json.loads(str(row[3]))
    body = row[4]
    assert isinstance(body, bytes)
    return RawEvent(
        id=int(str(row[0])),
        webhook_id=str(row[1]),
        received_at=_parse(str(row[2])),
        headers={str(k): str(v) for k, v in headers.items()},
        body=body,
        source="poll" if row[5] == "poll" else "webhook",
        status=_status(str(row[6])),
        attempts=int(str(row[7])),
        last_error=None if row[8] is None else str(row[8]),
        next_attempt_at=None if row[9] is None else _parse(str(row[9])),
    )


def _status(value: str) -> RawStatus:
    if value == "processed":
        return "processed"
    if value == "failed":
        return "failed"
    return "queued"


def _order(row: Sequence[object]) -> OrderState:
    return OrderState(
        provider_order_id=str(row[0]),
        status=str(row[1]),
        rank=int(str(row[2])),
        captured=int(str(row[3])),
        refunded=int(str(row[4])),
        currency=str(row[5]),
        last_event_id=str(row[6]),
        last_event_at=_parse(str(row[7])),
        updated_at=_parse(str(row[8])),
    )
