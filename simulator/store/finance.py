"""Repayments, settlement lines, settlements, disputes, drift records and exports in SQLite
(mixed into `SqliteTx`; migration 3).

One table of JSON documents keyed by `kind`, with the columns the service filters on: `ref`
(the order, or the settlement a drift record belongs to), `owner` (the buyer) and `status`.
"""

from __future__ import annotations

import sqlite3
from typing import Any, TypeVar

from pydantic import BaseModel

from simulator.domain.records import Page
from simulator.store.cursor import decode_cursor, encode_cursor

M = TypeVar("M", bound=BaseModel)

MIGRATION = """
CREATE TABLE finance_objects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, account_id TEXT NOT NULL, kind TEXT NOT NULL,
    id TEXT NOT NULL UNIQUE, ref TEXT, owner TEXT, status TEXT, data TEXT NOT NULL);
CREATE INDEX finance_by_kind ON finance_objects (account_id, kind, status, seq);
CREATE INDEX finance_by_ref ON finance_objects (account_id, kind, ref, seq);
CREATE INDEX finance_by_owner ON finance_objects (account_id, kind, owner, status, seq);
"""
FINANCE_TABLES = ("finance_objects",)
# Id prefixes stored here (for `id_taken`).
FINANCE_PREFIXES = (
    "rpy",
    "sln",
    "stl",
    "dp",
    "drf",
    "exp",
    "inv",
    "ch",
    "tok",
    "einv",
    "rmt",
    "po",
)


class FinanceTxMixin:
    c: sqlite3.Connection

    def save_finance(
        self,
        account_id: str,
        kind: str,
        obj: BaseModel,
        *,
        ref: str | None = None,
        owner: str | None = None,
        status: str | None = None,
    ) -> None:
        ident = getattr(obj, "id")  # noqa: B009 - every finance object has an id
        self.c.execute(
            "INSERT INTO finance_objects (account_id, kind, id, ref, owner, status, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "ref = excluded.ref, owner = excluded.owner, status = excluded.status, "
            "data = excluded.data",
            (account_id, kind, ident, ref, owner, status, obj.model_dump_json()),
        )

    def finance(self, model: type[M], account_id: str, kind: str, ident: str) -> M | None:
        row = self.c.execute(
            "SELECT data FROM finance_objects WHERE id = ? AND account_id = ? AND kind = ?",
            (ident, account_id, kind),
        ).fetchone()
        return model.model_validate_json(row[0]) if row else None

    def finance_all(
        self,
        model: type[M],
        account_id: str,
        kind: str,
        *,
        ref: str | None = None,
        owner: str | None = None,
        status: str | tuple[str, ...] | None = None,
    ) -> list[M]:
        """Every match, oldest first."""
        where, args = _where(account_id, kind, ref, owner, status)
        rows = self.c.execute(
            f"SELECT data FROM finance_objects WHERE {where} ORDER BY seq",  # noqa: S608 - ours
            args,
        ).fetchall()
        return [model.model_validate_json(r[0]) for r in rows]

    def finance_page(
        self,
        model: type[M],
        account_id: str,
        kind: str,
        *,
        status: str | None = None,
        ref: str | None = None,
        limit: int,
        cursor: str | None,
    ) -> Page[M]:
        """Newest first, from `cursor` on."""
        where, args = _where(account_id, kind, ref, None, status)
        if cursor is not None:
            where += " AND seq < ?"
            args.append(decode_cursor(cursor))
        rows = self.c.execute(
            f"SELECT seq, data FROM finance_objects WHERE {where} "  # noqa: S608 - ours
            "ORDER BY seq DESC LIMIT ?",
            (*args, limit + 1),
        ).fetchall()
        has_more = len(rows) > limit
        rows = rows[:limit]
        items = [model.model_validate_json(r[1]) for r in rows]
        return Page(items, has_more, encode_cursor(rows[-1][0]) if has_more else None)

    def job_scheduled(self, account_id: str, due_us: int, kind: str, ref: str) -> bool:
        return (
            self.c.execute(
                "SELECT 1 FROM jobs WHERE account_id = ? AND due_us = ? AND kind = ? AND ref = ?",
                (account_id, due_us, kind, ref),
            ).fetchone()
            is not None
        )


def _where(
    account_id: str,
    kind: str,
    ref: str | None,
    owner: str | None,
    status: str | tuple[str, ...] | None,
) -> tuple[str, list[Any]]:
    where = "account_id = ? AND kind = ?"
    args: list[Any] = [account_id, kind]
    if ref is not None:
        where += " AND ref = ?"
        args.append(ref)
    if owner is not None:
        where += " AND owner = ?"
        args.append(owner)
    if isinstance(status, str):
        where += " AND status = ?"
        args.append(status)
    elif status is not None:
        where += f" AND status IN ({', '.join('?' * len(status))})"
        args.extend(status)
    return where, args
