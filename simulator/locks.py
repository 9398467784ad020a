"""What a request knows of database locks, shared by the store (which meets them) and the API
(which answers for them) without the API importing the store: whether an error is another
connection's lock, the `StoreBusy` it becomes (503, Retry-After), and the commits the current
request attempt made (so that a busy attempt is retried only while it has changed nothing).
"""

from __future__ import annotations

import sqlite3
from contextvars import ContextVar

from simulator.domain.errors import StoreBusy

# Commits made by the current request attempt (a list the caller set; None outside requests),
# so that a request that met a busy lock is retried only while it has changed nothing.
commits: ContextVar[list[int] | None] = ContextVar("sandbank_commits", default=None)


def is_busy(exc: BaseException) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED (any extended code): another connection has the lock."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (5, 6)
    return "locked" in str(exc) or "busy" in str(exc)


def busy(exc: BaseException | None = None) -> StoreBusy:
    return StoreBusy("the database is busy with other work; retry shortly")
