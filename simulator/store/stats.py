"""Counts over the stored state for the metrics and the console: webhook backlog per endpoint,
deliveries by status, disabled endpoints, settlements, disputes and drift injections.

Read at scrape time from the database every process shares, so they are the same whichever
worker answers and need no cross-process bookkeeping. Each is one indexed or grouped query.
"""

from __future__ import annotations

import sqlite3

from simulator.domain.records import StoredCounts


def stored_counts(conn: sqlite3.Connection) -> StoredCounts:
    backlog = {
        (str(a), str(e)): int(n)
        for a, e, n in conn.execute(
            "SELECT account_id, endpoint_id, COUNT(*) FROM webhook_deliveries "
            "WHERE status = 'pending' GROUP BY account_id, endpoint_id"
        )
    }
    return StoredCounts(
        backlog=backlog,
        deliveries=_grouped(
            conn, "SELECT status, COUNT(*) FROM webhook_deliveries GROUP BY status"
        ),
        endpoints=_grouped(
            conn,
            "SELECT json_extract(data, '$.status'), COUNT(*) FROM webhook_endpoints GROUP BY 1",
        ),
        settlements=_grouped(
            conn,
            "SELECT status, COUNT(*) FROM finance_objects WHERE kind = 'settlement' "
            "GROUP BY status",
        ),
        disputes=_grouped(
            conn,
            "SELECT status, COUNT(*) FROM finance_objects WHERE kind = 'dispute' GROUP BY status",
        ),
        drift_injections=_grouped(
            conn,
            "SELECT json_extract(data, '$.kind'), COUNT(*) FROM finance_objects "
            "WHERE kind = 'drift_injection' GROUP BY 1",
        ),
    )


def _grouped(conn: sqlite3.Connection, sql: str) -> dict[str, int]:
    return {str(key): int(n) for key, n in conn.execute(sql) if key is not None}
