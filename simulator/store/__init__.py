"""Persistence behind a protocol: SQLite (file or :memory:), the embedded default, or
PostgreSQL for a sandbox shared by several servers (simulator/store/postgres.py)."""

import re

from simulator.domain.records import Page
from simulator.store.base import Store, Tx
from simulator.store.sqlite import SqliteStore

__all__ = ["Page", "SqliteStore", "Store", "Tx", "is_url", "open_store", "redacted"]


def is_url(db: str) -> bool:
    """Whether `--db` names a PostgreSQL database rather than a SQLite file."""
    return db.startswith(("postgresql://", "postgres://"))


def open_store(db: str) -> SqliteStore:
    """The store `--db` names: a PostgreSQL URL, or a SQLite file (or `:memory:`)."""
    if not is_url(db):
        return SqliteStore(db)
    try:
        from simulator.store.postgres import PgStore  # noqa: PLC0415 - psycopg only when used
    except ModuleNotFoundError as exc:
        raise ValueError(
            f"a PostgreSQL database needs {exc.name}: pip install 'sandbank[postgres]'"
        ) from None
    try:
        return PgStore(db)
    except Exception as exc:  # the driver's and the pool's errors: one line for the CLI
        raise ValueError(f"cannot open {redacted(db)}: {str(exc).strip()}") from exc


def redacted(db: str) -> str:
    """`--db` as printed: a URL's password left out."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", db)
