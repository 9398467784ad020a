"""The one way the integration opens its SQLite file (intents, ERP orders, the inbox and the
ledger may all share it)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect(path: str | Path) -> sqlite3.Connection:
    """Autocommit (callers open their own transactions), usable from several threads behind
    the caller's lock, WAL on a file, full sync (what was acknowledged survives a crash), and
    a busy timeout for the other tables' writers in the same file."""
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    if str(path) != ":memory:":
        db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=5000")
    return db
