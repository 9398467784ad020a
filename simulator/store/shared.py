"""The state every worker process must share (issue #16), in SQLite (mixed into `SqliteTx`;
migration 6): fault rules with their fired counts, the attempt counts of Idempotency-Keys, and
the request journal.

Each worker of `sandbank serve --workers N` used to keep these in its own memory, so a
`times: 30` rule fired up to 30 times per worker and the journal of one worker missed the
requests of the others. Here they live in the database all workers share, written in the
transactions (and group commits) the workers already make:

- A rule is stored once, as JSON, with its `times` bound and its `fired` count in columns. A
  firing is claimed with one conditional UPDATE ... RETURNING under the write lock, so across
  any number of processes a rule fires at most `times` times.
- Attempt counts are one upsert (INSERT ... ON CONFLICT DO UPDATE ... RETURNING).
- The journal is one row per request (its entry as JSON), trimmed to the newest N per account.

Plain SQL only (no JSON functions, no SQLite-only statements), so that another backend
implements the same methods with the same statements.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from simulator.store.base import StoredRule

MIGRATION = """
-- 6: state shared by the worker processes: fault rules, attempt counts, the request journal
CREATE TABLE fault_rules (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, account_id TEXT,
    times INTEGER, fired INTEGER NOT NULL DEFAULT 0, origin TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE fault_attempts (
    account_id TEXT NOT NULL, key TEXT NOT NULL, n INTEGER NOT NULL, seen_us INTEGER NOT NULL,
    PRIMARY KEY (account_id, key));
CREATE INDEX fault_attempts_seen ON fault_attempts (seen_us);
CREATE TABLE request_journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, account_id TEXT, data TEXT NOT NULL);
CREATE INDEX request_journal_by_account ON request_journal (account_id, seq)
"""


class SharedTxMixin:
    c: sqlite3.Connection

    # --- fault rules ---------------------------------------------------------------------------
    def fault_rules(self) -> list[StoredRule]:
        rows = self.c.execute(
            "SELECT id, account_id, times, fired, origin, data, seq FROM fault_rules ORDER BY seq"
        )
        return [StoredRule(r[0], r[1], r[2], int(r[3]), r[4], r[5], int(r[6])) for r in rows]

    def add_fault_rule(self, rule: StoredRule) -> None:
        self.c.execute(
            "INSERT INTO fault_rules (id, account_id, times, fired, origin, data) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (rule.id, rule.account_id, rule.times, rule.fired, rule.origin, rule.data),
        )

    def delete_fault_rules(self, rule_ids: Sequence[str]) -> int:
        deleted = 0
        for rule_id in rule_ids:
            deleted += self.c.execute("DELETE FROM fault_rules WHERE id = ?", (rule_id,)).rowcount
        return deleted

    def claim_fault_rule(self, rule_id: str) -> int | None:
        row = self.c.execute(
            "UPDATE fault_rules SET fired = fired + 1 "
            "WHERE id = ? AND (times IS NULL OR fired < times) RETURNING fired",
            (rule_id,),
        ).fetchone()
        return int(row[0]) if row else None

    # --- attempts ------------------------------------------------------------------------------
    def count_attempt(self, account_id: str, key: str, now_us: int) -> int:
        row = self.c.execute(
            "INSERT INTO fault_attempts (account_id, key, n, seen_us) VALUES (?, ?, 1, ?) "
            "ON CONFLICT (account_id, key) DO UPDATE "
            "SET n = fault_attempts.n + 1, seen_us = excluded.seen_us RETURNING n",
            (account_id, key, now_us),
        ).fetchone()
        return int(row[0])

    def forget_attempts(self, account_id: str | None, *, seen_before_us: int | None = None) -> int:
        where, args = _where(("account_id = ?", account_id), ("seen_us < ?", seen_before_us))
        sql = "DELETE FROM fault_attempts" + where  # noqa: S608 - our conditions, values bound
        return self.c.execute(sql, args).rowcount

    # --- the request journal -------------------------------------------------------------------
    def add_request(self, account_id: str | None, data: str) -> int:
        row = self.c.execute(
            "INSERT INTO request_journal (account_id, data) VALUES (?, ?) RETURNING seq",
            (account_id, data),
        ).fetchone()
        return int(row[0])

    def add_requests(self, rows: Sequence[tuple[str | None, str]]) -> list[int]:
        return [self.add_request(account_id, data) for account_id, data in rows]

    def requests(
        self, account_id: str | None, *, before_seq: int | None, limit: int
    ) -> list[tuple[int, str]]:
        where, args = _where(("account_id = ?", account_id), ("seq < ?", before_seq))
        rows = self.c.execute(
            f"SELECT seq, data FROM request_journal{where} ORDER BY seq DESC LIMIT ?",  # noqa: S608 - our conditions, values bound
            [*args, limit],
        )
        return [(int(seq), str(data)) for seq, data in rows]

    def forget_requests(self, account_id: str | None, *, keep: int = 0) -> int:
        if account_id is None:
            return self.c.execute("DELETE FROM request_journal").rowcount
        if keep <= 0:
            return self.c.execute(
                "DELETE FROM request_journal WHERE account_id = ?", (account_id,)
            ).rowcount
        return self.c.execute(
            "DELETE FROM request_journal WHERE account_id = ? AND seq <= ("
            "  SELECT seq FROM request_journal WHERE account_id = ?"
            "  ORDER BY seq DESC LIMIT 1 OFFSET ?)",
            (account_id, account_id, keep),
        ).rowcount


def _where(*conditions: tuple[str, str | int | None]) -> tuple[str, list[str | int]]:
    """` WHERE a AND b` of the conditions whose value is given (or ""), and those values."""
    given = [(sql, value) for sql, value in conditions if value is not None]
    if not given:
        return "", []
    return " WHERE " + " AND ".join(sql for sql, _ in given), [value for _, value in given]
