"""Webhook endpoints and deliveries in SQLite (mixed into `SqliteTx`; migrations 2 and 4).

A delivery row keeps what the dispatcher needs to find work without loading JSON: its status,
when it is due on its account's clock (`due_us`), and a lease on the wall clock (`lease_us`)
that a worker takes before sending.

The fan-out cursor (`meta` row `webhook_fanout_seq`, migration 4) is the `events.seq` up to
which committed events have been fanned out into deliveries; it moves in the transaction that
inserts them (see `simulator.webhooks.fanout`).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from simulator.clock import to_us
from simulator.domain.models import Event
from simulator.domain.records import Page
from simulator.domain.webhooks import Delivery, WebhookEndpoint
from simulator.store.cursor import decode_cursor, encode_cursor

MIGRATION = """
CREATE TABLE webhook_endpoints (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, account_id TEXT NOT NULL, id TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL);
CREATE INDEX webhook_endpoints_by_account ON webhook_endpoints (account_id, seq);
CREATE TABLE webhook_deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, account_id TEXT NOT NULL, id TEXT NOT NULL UNIQUE,
    endpoint_id TEXT NOT NULL, event_id TEXT NOT NULL, status TEXT NOT NULL,
    due_us INTEGER, lease_us INTEGER, created_us INTEGER NOT NULL, data TEXT NOT NULL);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (due_us) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_account ON webhook_deliveries (account_id, seq);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, seq);
"""
# Deliveries are written by the dispatcher's fan-out (not in the API's transactions), but under
# the same write lock the API's commits wait for: the due index holds pending rows only, and
# deliveries of one event are found through their account or endpoint.

WEBHOOK_TABLES = ("webhook_endpoints", "webhook_deliveries")
FANOUT_KEY = "webhook_fanout_seq"
# 4: the fan-out cursor. A database made before it had every event's deliveries written with
# the event, so its cursor starts after the last event there is.
FANOUT_MIGRATION = """
-- 4: the webhook fan-out cursor (events.seq fanned out so far)
INSERT OR IGNORE INTO meta (key, value)
SELECT 'webhook_fanout_seq', CAST(COALESCE(MAX(seq), 0) AS TEXT) FROM events
"""


class WebhookTxMixin:
    c: sqlite3.Connection

    # --- endpoints ---------------------------------------------------------------------------
    def save_webhook_endpoint(self, account_id: str, endpoint: WebhookEndpoint) -> None:
        data = endpoint.model_dump_json()
        if not self.c.execute(
            "UPDATE webhook_endpoints SET data = ? WHERE id = ? AND account_id = ?",
            (data, endpoint.id, account_id),
        ).rowcount:
            self.c.execute(
                "INSERT INTO webhook_endpoints (account_id, id, data) VALUES (?, ?, ?)",
                (account_id, endpoint.id, data),
            )

    def webhook_endpoint(self, account_id: str | None, endpoint_id: str) -> WebhookEndpoint | None:
        if account_id is None:
            row = self.c.execute(
                "SELECT data FROM webhook_endpoints WHERE id = ?", (endpoint_id,)
            ).fetchone()
        else:
            row = self.c.execute(
                "SELECT data FROM webhook_endpoints WHERE id = ? AND account_id = ?",
                (endpoint_id, account_id),
            ).fetchone()
        return WebhookEndpoint.model_validate_json(row[0]) if row else None

    def webhook_endpoint_account(self, endpoint_id: str) -> str | None:
        row = self.c.execute(
            "SELECT account_id FROM webhook_endpoints WHERE id = ?", (endpoint_id,)
        ).fetchone()
        return str(row[0]) if row else None

    def webhook_endpoints(self, account_id: str) -> list[WebhookEndpoint]:
        rows = self.c.execute(
            "SELECT data FROM webhook_endpoints WHERE account_id = ? ORDER BY seq", (account_id,)
        ).fetchall()
        return [WebhookEndpoint.model_validate_json(r[0]) for r in rows]

    def webhook_endpoint_page(
        self, account_id: str, *, limit: int, cursor: str | None
    ) -> Page[WebhookEndpoint]:
        """Oldest first (the order they fire in), from `cursor` on."""
        after = decode_cursor(cursor) if cursor is not None else 0
        rows = self.c.execute(
            "SELECT seq, data FROM webhook_endpoints WHERE account_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (account_id, after, limit + 1),
        ).fetchall()
        items = [WebhookEndpoint.model_validate_json(r[1]) for r in rows[:limit]]
        more = len(rows) > limit
        return Page(items, more, encode_cursor(rows[limit - 1][0]) if more else None)

    def delete_webhook_endpoint(self, account_id: str, endpoint_id: str) -> None:
        self.c.execute(
            "DELETE FROM webhook_endpoints WHERE id = ? AND account_id = ?",
            (endpoint_id, account_id),
        )
        self.c.execute(
            "UPDATE webhook_deliveries SET status = 'failed', due_us = NULL "
            "WHERE endpoint_id = ? AND account_id = ? AND status = 'pending'",
            (endpoint_id, account_id),
        )

    # --- deliveries ----------------------------------------------------------------------------
    def insert_delivery(self, account_id: str, d: Delivery, created_us: int) -> None:
        """A new delivery (a replay): one INSERT, no lookup first."""
        due = int(d.next_attempt_at.timestamp() * 1_000_000) if d.next_attempt_at else None
        self.c.execute(
            "INSERT INTO webhook_deliveries (account_id, id, endpoint_id, event_id, status, "
            "due_us, created_us, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                account_id,
                d.id,
                d.endpoint_id,
                d.event_id,
                d.status,
                due if d.status == "pending" else None,
                created_us,
                d.model_dump_json(),
            ),
        )

    def save_delivery(self, account_id: str, d: Delivery, created_us: int) -> None:
        due = int(d.next_attempt_at.timestamp() * 1_000_000) if d.next_attempt_at else None
        if d.status != "pending":
            due = None
        data = d.model_dump_json()
        if not self.c.execute(
            "UPDATE webhook_deliveries SET status = ?, due_us = ?, lease_us = NULL, data = ? "
            "WHERE id = ? AND account_id = ?",
            (d.status, due, data, d.id, account_id),
        ).rowcount:
            self.c.execute(
                "INSERT INTO webhook_deliveries (account_id, id, endpoint_id, event_id, status, "
                "due_us, created_us, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (account_id, d.id, d.endpoint_id, d.event_id, d.status, due, created_us, data),
            )

    def save_delivery_data(
        self, account_id: str, delivery_id: str, status: str, due_us: int | None, data: str
    ) -> None:
        """`save_delivery` of an existing row, its document already made (and its lease let go)."""
        self.c.execute(
            "UPDATE webhook_deliveries SET status = ?, due_us = ?, lease_us = NULL, data = ? "
            "WHERE id = ? AND account_id = ?",
            (status, due_us, data, delivery_id, account_id),
        )

    def delivery(self, account_id: str, delivery_id: str) -> tuple[Delivery, int | None] | None:
        """The delivery and its lease (wall-clock µs), if any."""
        row = self.c.execute(
            "SELECT data, lease_us FROM webhook_deliveries WHERE id = ? AND account_id = ?",
            (delivery_id, account_id),
        ).fetchone()
        return (Delivery.model_validate_json(row[0]), row[1]) if row else None

    def lease_delivery(self, account_id: str, delivery_id: str, until_us: int) -> None:
        self.c.execute(
            "UPDATE webhook_deliveries SET lease_us = ? WHERE id = ? AND account_id = ?",
            (until_us, delivery_id, account_id),
        )

    def attempt_inputs(
        self, ids: list[str]
    ) -> list[tuple[str, str, str, int | None, str | None, str | None]]:
        """What the dispatcher needs to claim and send each delivery, in one read: (account,
        delivery id, its data, its lease, its endpoint's data, its event's data); a missing
        endpoint or event reads None."""
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))
        rows = self.c.execute(
            "SELECT d.account_id, d.id, d.data, d.lease_us, e.data, ev.data "  # noqa: S608 - marks only
            "FROM webhook_deliveries d "
            "LEFT JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.account_id = d.account_id "
            "LEFT JOIN events ev ON ev.id = d.event_id AND ev.account_id = d.account_id "
            f"WHERE d.id IN ({marks})",
            ids,
        ).fetchall()
        return [(str(r[0]), str(r[1]), str(r[2]), r[3], r[4], r[5]) for r in rows]

    def claim_delivery(
        self, account_id: str, delivery_id: str, data: str, wall_us: int, until_us: int
    ) -> bool:
        """Lease a delivery for an attempt if it is as the caller read it (`data`) and no live
        lease holds it; True when this caller has it."""
        return bool(
            self.c.execute(
                "UPDATE webhook_deliveries SET lease_us = ? WHERE id = ? AND account_id = ? "
                "AND status = 'pending' AND (lease_us IS NULL OR lease_us < ?) AND data = ?",
                (until_us, delivery_id, account_id, wall_us, data),
            ).rowcount
        )

    def endpoint_data(self, account_id: str, endpoint_id: str) -> str | None:
        """An endpoint's stored document, unparsed (callers cache the parse by its text)."""
        row = self.c.execute(
            "SELECT data FROM webhook_endpoints WHERE id = ? AND account_id = ?",
            (endpoint_id, account_id),
        ).fetchone()
        return str(row[0]) if row else None

    def leased_deliveries(self, wall_us: int, account_id: str | None) -> int:
        """Pending deliveries some process is sending right now (their lease holds)."""
        sql = "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending' AND lease_us >= ?"
        args: list[Any] = [wall_us]
        if account_id is not None:
            sql += " AND account_id = ?"
            args.append(account_id)
        return int(self.c.execute(sql, args).fetchone()[0])

    def release_leases(self) -> int:
        """Forget every lease (a lone server starting: any lease is a dead process's)."""
        return self.c.execute(
            "UPDATE webhook_deliveries SET lease_us = NULL WHERE lease_us IS NOT NULL"
        ).rowcount

    def due_deliveries(
        self,
        wall_us: int,
        account_id: str | None,
        *,
        limit: int,
        skip_endpoints: frozenset[str] = frozenset(),
    ) -> list[tuple[str, str, str]]:
        """(account, delivery, endpoint) due on their account's clock and not leased, leaving
        out `skip_endpoints` (those with all the attempts in flight they may have)."""
        sql = (
            "SELECT d.account_id, d.id, d.endpoint_id FROM webhook_deliveries d "
            "INDEXED BY webhook_deliveries_due JOIN accounts a "
            "ON a.id = d.account_id WHERE d.status = 'pending' AND d.due_us IS NOT NULL "
            "AND d.due_us <= COALESCE(json_extract(a.data, '$.clock_frozen_at_us'), "
            "? + COALESCE(json_extract(a.data, '$.clock_offset_us'), 0)) "
            "AND (d.lease_us IS NULL OR d.lease_us < ?)"
        )
        args: list[Any] = [wall_us, wall_us]
        if account_id is not None:
            sql += " AND d.account_id = ?"
            args.append(account_id)
        if skip_endpoints:
            sql += f" AND d.endpoint_id NOT IN ({', '.join('?' * len(skip_endpoints))})"
            args.extend(sorted(skip_endpoints))
        sql += " ORDER BY d.due_us, d.seq LIMIT ?"
        args.append(limit)
        return [(str(r[0]), str(r[1]), str(r[2])) for r in self.c.execute(sql, args).fetchall()]

    def deliveries(
        self,
        account_id: str | None,
        *,
        endpoint_id: str | None = None,
        event_id: str | None = None,
        status: str | None = None,
        since_us: int | None = None,
        limit: int = 100,
        cursor_seq: int | None = None,
    ) -> list[tuple[int, Delivery]]:
        where: list[str] = ["1 = 1"]
        args: list[Any] = []
        for column, value in (
            ("account_id", account_id),
            ("endpoint_id", endpoint_id),
            ("event_id", event_id),
            ("status", status),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since_us is not None:
            where.append("created_us >= ?")
            args.append(since_us)
        if cursor_seq is not None:
            where.append("seq < ?")
            args.append(cursor_seq)
        rows = self.c.execute(
            f"SELECT seq, data FROM webhook_deliveries WHERE {' AND '.join(where)} "  # noqa: S608 - our columns
            "ORDER BY seq DESC LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [(int(r[0]), Delivery.model_validate_json(r[1])) for r in rows]

    # --- the fan-out (simulator.webhooks.fanout) ----------------------------------------------
    def fanout_cursor(self) -> int:
        row = self.c.execute("SELECT value FROM meta WHERE key = ?", (FANOUT_KEY,)).fetchone()
        return int(row[0]) if row else 0

    def set_fanout_cursor(self, seq: int) -> None:
        self.c.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (FANOUT_KEY, str(seq)),
        )

    def webhook_endpoint_texts(self, account_id: str) -> list[str]:
        """The account's endpoints as stored (unparsed), oldest first."""
        rows = self.c.execute(
            "SELECT data FROM webhook_endpoints WHERE account_id = ? ORDER BY seq", (account_id,)
        ).fetchall()
        return [str(r[0]) for r in rows]

    def last_event_seq(self) -> int:
        row = self.c.execute("SELECT MAX(seq) FROM events").fetchone()
        return int(row[0] or 0)

    def fanout_backlog(self, after: int) -> tuple[int, int, bool]:
        """(the cursor, the last event's seq, whether an event after both `after` and the
        cursor belongs to an account with an endpoint), in one statement (one snapshot), without
        the write lock: the dispatcher's cheap look before it takes the lock to fan out. Only
        rows after `after` are read (the dispatcher passes what it already looked at)."""
        row = self.c.execute(
            "WITH c AS (SELECT MAX(COALESCE((SELECT CAST(value AS INTEGER) FROM meta "
            "WHERE key = ?), 0), ?) AS s) "
            "SELECT (SELECT COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?), 0)),"
            " (SELECT COALESCE(MAX(seq), 0) FROM events), "
            "EXISTS (SELECT 1 FROM events e, c WHERE e.seq > c.s "
            "AND e.account_id IN (SELECT account_id FROM webhook_endpoints))",
            (FANOUT_KEY, after, FANOUT_KEY),
        ).fetchone()
        return int(row[0]), int(row[1]), bool(row[2])

    def events_to_fan_out(
        self, after: int, until: int, limit: int
    ) -> list[tuple[int, str, str, str, str]]:
        """(seq, account, event id, type, created_at) of the events in (after, until] of the
        accounts that have an endpoint, in seq order. Read through the account index, so the
        events of accounts without endpoints cost nothing however many there are."""
        rows = self.c.execute(
            "SELECT seq, account_id, id, type, json_extract(data, '$.created_at') "
            "FROM events INDEXED BY events_by_account "
            "WHERE account_id IN (SELECT account_id FROM webhook_endpoints) "
            "AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            (after, until, limit),
        ).fetchall()
        return [(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]

    def insert_fanned_out(self, rows: list[tuple[str, Delivery]]) -> None:
        """New deliveries of the fan-out, (account, delivery) each. A delivery id is derived
        from its event and endpoint, so one that exists already is this very delivery: it is
        left as it is (the fan-out never makes a delivery twice)."""
        self.c.executemany(
            "INSERT OR IGNORE INTO webhook_deliveries (account_id, id, endpoint_id, event_id, "
            "status, due_us, created_us, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    account_id,
                    d.id,
                    d.endpoint_id,
                    d.event_id,
                    d.status,
                    int(d.next_attempt_at.timestamp() * 1_000_000)
                    if d.next_attempt_at is not None and d.status == "pending"
                    else None,
                    to_us(d.created_at),
                    d.model_dump_json(),
                )
                for account_id, d in rows
            ],
        )

    # --- events ------------------------------------------------------------------------------
    def event(self, account_id: str, event_id: str) -> Event | None:
        row = self.c.execute(
            "SELECT data FROM events WHERE id = ? AND account_id = ?", (event_id, account_id)
        ).fetchone()
        return Event.model_validate_json(row[0]) if row else None

    def event_account(self, event_id: str) -> str | None:
        row = self.c.execute("SELECT account_id FROM events WHERE id = ?", (event_id,)).fetchone()
        return str(row[0]) if row else None
