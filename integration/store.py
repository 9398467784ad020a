"""Durable intents: what the integration means to do to the provider, written down *before* the
first attempt, with the Idempotency-Key every attempt of it sends.

- `record_intent` persists the intent and its key in one transaction before the client makes
  any request. Calling it again with the same intent id (a retry, or the same business action
  after a restart) returns the stored intent and so the same key; a different request under the
  same id is refused (`IntentConflict`): one intent, one body, one key.
- Keys come from an injected `new_key` source (no `uuid4` at import or behind the caller's
  back), so tests are deterministic and production passes `lambda: uuid.uuid4().hex`.
- Status: `pending` (not sent, or sent and definitely not processed), `ambiguous` (an attempt
  may have reached the provider: only a retry with the same key, or a read, resolves it),
  `succeeded` and `failed` (final answers, with the provider's status and body in `result`).
  `pending_intents` lists what a resumer must drive to an end after a restart.
- Storage is stdlib sqlite3 in WAL mode, one file (or `:memory:`). Only the intents table lives
  here; the ledger and the webhook inbox keep their own.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any

from integration.db import connect
from integration.errors import IntegrationError


class IntentStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    AMBIGUOUS = "ambiguous"


class IntentConflict(IntegrationError):
    """The intent id is already recorded with another operation, target or request."""


class UnknownIntent(IntegrationError, KeyError):
    """No intent has that id."""


@dataclass(frozen=True, slots=True)
class Intent:
    id: str
    operation: str
    target: str
    request: Any  # the JSON body the intent sends (None for a bodiless POST)
    idempotency_key: str
    status: IntentStatus
    attempts: int
    last_error: str | None
    result: dict[str, Any] | None  # {"status": int, "body": ...} once settled
    created_at: datetime
    updated_at: datetime


_SCHEMA = """
CREATE TABLE IF NOT EXISTS intents (
    id TEXT PRIMARY KEY,
    operation TEXT NOT NULL,
    target TEXT NOT NULL,
    request TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'ambiguous')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    result TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS intents_unsettled ON intents (status, created_at)
    WHERE status IN ('pending', 'ambiguous');
"""

_INSERT = """
INSERT INTO intents (id, operation, target, request, idempotency_key, status, attempts,
                     last_error, result, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, 0, NULL, NULL, ?, ?)
"""
_SELECT_ONE = """
SELECT id, operation, target, request, idempotency_key, status, attempts, last_error, result,
       created_at, updated_at
FROM intents WHERE id = ?
"""
_SELECT_UNSETTLED = """
SELECT id, operation, target, request, idempotency_key, status, attempts, last_error, result,
       created_at, updated_at
FROM intents WHERE status IN ('pending', 'ambiguous') ORDER BY created_at, rowid
"""


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class IntegrationStore:
    """The intents table on one SQLite file. Safe to share between threads (one lock)."""

    def __init__(
        self,
        path: str | Path,
        *,
        new_key: Callable[[], str],
        now: Callable[[], datetime],
    ) -> None:
        self._new_key = new_key
        self._now = now
        self._lock = threading.Lock()
        self._db = connect(path)  # full sync: an intent must survive the crash after it
        self._db.executescript(_SCHEMA)

    # --- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> IntegrationStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- intents ---------------------------------------------------------------------------
    def new_key(self) -> str:
        """A fresh key from the injected source (also names intents recorded ad hoc)."""
        return self._new_key()

    def record_intent(self, intent_id: str, operation: str, target: str, request: Any) -> Intent:
        """The intent under `intent_id`, written (with a fresh key) if it is new. Committed
        before returning, so the key is durable before the first attempt is made."""
        body = _dump(request)
        with self._lock:
            found = self._get(intent_id)
            if found is None:
                key = self._new_key()
                at = self._stamp()
                self._db.execute(
                    _INSERT,
                    (intent_id, operation, target, body, key, IntentStatus.PENDING.value, at, at),
                )
                found = self._get(intent_id)
                assert found is not None
                return found
        if (found.operation, found.target, _dump(found.request)) != (operation, target, body):
            raise IntentConflict(
                f"intent {intent_id!r} is recorded as {found.operation} {found.target} "
                "with another request"
            )
        return found

    def intent(self, intent_id: str) -> Intent | None:
        with self._lock:
            return self._get(intent_id)

    def pending_intents(self) -> list[Intent]:
        """Intents not settled yet (pending or ambiguous), oldest first: the resumer's work."""
        with self._lock:
            rows = self._db.execute(_SELECT_UNSETTLED).fetchall()
        return [_intent(r) for r in rows]

    def note_attempt(self, intent_id: str) -> Intent:
        """Count one attempt, written before it is made."""
        with self._lock:
            self._require(intent_id)
            self._db.execute(
                "UPDATE intents SET attempts = attempts + 1, updated_at = ? WHERE id = ?",
                (self._stamp(), intent_id),
            )
            return self._require(intent_id)

    def settle(
        self,
        intent_id: str,
        status: IntentStatus,
        *,
        result: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> Intent:
        """Record where the intent stands after a call: its status, the provider's answer when
        there was a definite one, and the last error seen. A succeeded intent stays succeeded
        (a late, concurrent failure of the same intent cannot undo what the provider did)."""
        with self._lock:
            current = self._require(intent_id)
            if current.status is IntentStatus.SUCCEEDED and status is not IntentStatus.SUCCEEDED:
                return current
            self._db.execute(
                "UPDATE intents SET status = ?, result = COALESCE(?, result), last_error = ?, "
                "updated_at = ? WHERE id = ?",
                (
                    status.value,
                    None if result is None else _dump(dict(result)),
                    error,
                    self._stamp(),
                    intent_id,
                ),
            )
            return self._require(intent_id)

    # --- internals -------------------------------------------------------------------------
    def _stamp(self) -> str:
        at = self._now()
        if at.tzinfo is None:
            raise ValueError("the store's clock must return aware datetimes")
        return at.astimezone(UTC).isoformat()

    def _get(self, intent_id: str) -> Intent | None:
        row = self._db.execute(_SELECT_ONE, (intent_id,)).fetchone()
        return None if row is None else _intent(row)

    def _require(self, intent_id: str) -> Intent:
        found = self._get(intent_id)
        if found is None:
            raise UnknownIntent(intent_id)
        return found


def _intent(row: tuple[Any, ...]) -> Intent:
    (iid, operation, target, request, key, status, attempts, error, result, created, updated) = row
    return Intent(
        id=iid,
        operation=operation,
        target=target,
        request=json.loads(request),
        idempotency_key=key,
        status=IntentStatus(status),
        attempts=int(attempts),
        last_error=error,
        result=None if result is None else json.loads(result),
        created_at=datetime.fromisoformat(created),
        updated_at=datetime.fromisoformat(updated),
    )
