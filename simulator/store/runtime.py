"""What the server's background processes read from SQLite (mixed into `SqliteTx`): accounts
with clock work due (the scheduler) and the webhook backlog (health)."""

from __future__ import annotations

import sqlite3

# A health check counts at most this many pending deliveries (it stays cheap on any backlog).
BACKLOG_CAP = 100_000


class RuntimeTxMixin:
    c: sqlite3.Connection

    def due_accounts(self, wall_us: int, after_rowid: int, limit: int) -> list[tuple[int, str]]:
        """(rowid, id) of accounts whose clock runs (not frozen) and whose earliest job is due
        on it at the wall time `wall_us`, in rowid order after `after_rowid`."""
        rows = self.c.execute(
            "SELECT a.rowid, a.id FROM accounts a "
            "WHERE a.rowid > ? AND json_extract(a.data, '$.clock_frozen_at_us') IS NULL "
            "AND (SELECT MIN(j.due_us) FROM jobs j WHERE j.account_id = a.id) "
            "    <= ? + COALESCE(json_extract(a.data, '$.clock_offset_us'), 0) "
            "ORDER BY a.rowid LIMIT ?",
            (after_rowid, wall_us, limit),
        ).fetchall()
        return [(int(r[0]), str(r[1])) for r in rows]

    def pending_deliveries(self) -> int:
        """Webhook deliveries not yet succeeded or given up (retries not yet due included),
        counted up to `BACKLOG_CAP`."""
        row = self.c.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM webhook_deliveries WHERE status = 'pending' "
            "LIMIT ?)",
            (BACKLOG_CAP,),
        ).fetchone()
        return int(row[0])
