"""The ticket sink: collections and disputes become tickets at a support desk, and the desk's
answer comes back to the ERP.

Provider events arrive as they always do (webhooks, the poller); for each one the adapters
read as a collection fact (`integration.adapters.collection_fact`: an invoice overdue or
settled, a dispute opened or closed) the sink records what the desk must be told, durably and
before any call: a *case* per obligation (the invoice or dispute id, the ticket's key) and a
queue of *work* on it (open, escalate, solve), each kind at most once per obligation. So a
duplicate or replayed event never opens a second ticket, and a desk that is down loses
nothing: `flush()` sends the owed work in order, through the desk's `ResilientClient` (retries,
breaker, idempotent intents named after the work), and leaves what failed for the next run.

- **Open** on `overdue` (collections) and `dispute_opened` (disputes). Before creating, the
  desk is asked for a ticket with the obligation's key, so an open whose answer was lost is
  found, not repeated.
- **Escalate** (urgent, tagged `default`) a collection case still open `default_after_days`
  after its due date: the buyer has defaulted, as far as the seller can tell.
- **Solve** on `settled` (paid in full, written off) and `dispute_closed` (won, lost,
  accepted), with the outcome as the note.
- **Back to the ERP**: `sync()` reads the desk's status of every case not yet solved, so an
  agent solving or closing a ticket at the desk shows on the ERP order (`view`, in
  `GET /orders/{id}` as `tickets`).

Stdlib sqlite3 on the integration's file (tables `ticket_cases`, `ticket_work`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from integration.adapters import collection_fact
from integration.client import ProviderRejected, ProviderUnavailable
from integration.db import connect
from integration.model import CollectionFact, CollectionKind, ProviderEvent
from integration.ticketing import Ticket, TicketRequest, TicketStatus, TicketSystem, Urgency

log = logging.getLogger("sandbank.integration.tickets")


class CaseKind(StrEnum):
    COLLECTION = "collection"  # an overdue invoice the seller must collect
    DISPUTE = "dispute"


class Work(StrEnum):
    OPEN = "open"
    ESCALATE = "escalate"
    SOLVE = "solve"


_OPENS = {
    CollectionKind.OVERDUE: CaseKind.COLLECTION,
    CollectionKind.DISPUTE_OPENED: CaseKind.DISPUTE,
}
_CLOSES = {
    CollectionKind.SETTLED: CaseKind.COLLECTION,
    CollectionKind.DISPUTE_CLOSED: CaseKind.DISPUTE,
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ticket_cases (
    obligation_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    provider_order_id TEXT NOT NULL,
    merchant_order_id TEXT,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    detail TEXT NOT NULL,
    due_date TEXT,
    opened_at TEXT NOT NULL,
    system_id TEXT,
    reference TEXT,
    url TEXT,
    status TEXT,
    defaulted INTEGER NOT NULL DEFAULT 0,
    outcome TEXT,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ticket_work (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    obligation_id TEXT NOT NULL REFERENCES ticket_cases (obligation_id),
    action TEXT NOT NULL,
    note TEXT NOT NULL,
    created_at TEXT NOT NULL,
    done_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    UNIQUE (obligation_id, action)
);
CREATE INDEX IF NOT EXISTS ticket_work_owed ON ticket_work (done_at, id);
CREATE INDEX IF NOT EXISTS ticket_cases_by_order ON ticket_cases (merchant_order_id);
"""
_CASE_COLUMNS = (
    "obligation_id, kind, provider_order_id, merchant_order_id, amount, currency, detail, "
    "due_date, opened_at, system_id, reference, url, status, defaulted, outcome, updated_at"
)


@dataclass(frozen=True, slots=True)
class Case:
    obligation_id: str
    kind: CaseKind
    provider_order_id: str
    merchant_order_id: str | None
    amount: int
    currency: str
    detail: str
    due_date: date | None
    opened_at: datetime
    system_id: str | None  # None until the desk has the ticket
    reference: str | None
    url: str | None
    status: TicketStatus | None  # the desk's, as last read
    defaulted: bool
    outcome: str | None  # why it was solved from here (paid in full, won, ...)
    updated_at: datetime

    def json(self) -> dict[str, Any]:
        return {
            "obligation_id": self.obligation_id,
            "kind": self.kind.value,
            "amount": self.amount,
            "currency": self.currency,
            "ticket": self.reference,
            "ticket_url": self.url,
            "status": self.status.value if self.status else "owed",
            "defaulted": self.defaulted,
            "outcome": self.outcome,
        }


@dataclass(frozen=True, slots=True)
class Owed:
    id: int
    obligation_id: str
    action: Work
    note: str
    attempts: int
    last_error: str | None


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def _money(amount: int, currency: str) -> str:
    return f"{amount // 100:,}.{amount % 100:02d} {currency}"


class TicketSink:
    """Cases and their owed desk work on one SQLite file; a `TicketSystem` to send it to.
    `clock` is the service's (escalation and the stored times); thread-safe behind one lock."""

    def __init__(
        self,
        system: TicketSystem,
        path: str | Path,
        *,
        clock: Callable[[], datetime],
        default_after_days: int = 30,
    ) -> None:
        self.system = system
        self.clock = clock
        self.default_after = timedelta(days=default_after_days)
        self._lock = threading.Lock()
        self._db = connect(path)
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- what the desk must be told (recorded before any call) -------------------------------
    def observe(
        self,
        event: ProviderEvent,
        merchant_order_id: Callable[[str], str | None] = lambda provider_order_id: None,
    ) -> str:
        """Record what `event` asks of the desk (`merchant_order_id` names the ERP order of
        a provider order). Returns opened, solving, duplicate or ignored (no collection fact,
        or a close of a case never opened)."""
        fact = collection_fact(event.raw)
        if fact is None:
            return "ignored"
        return self.record(fact, merchant_order_id(fact.provider_order_id))

    def record(self, fact: CollectionFact, merchant_order_id: str | None = None) -> str:
        now = _iso(self.clock())
        with self._lock, self._transaction() as db:
            known = db.execute(
                "SELECT kind FROM ticket_cases WHERE obligation_id = ?", (fact.obligation_id,)
            ).fetchone()
            if fact.kind in _OPENS:
                if known is not None:
                    return "duplicate"
                db.execute(
                    f"INSERT INTO ticket_cases ({_CASE_COLUMNS}) "  # noqa: S608 - constant columns
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL, 0, NULL, ?)",
                    (
                        fact.obligation_id,
                        _OPENS[fact.kind].value,
                        fact.provider_order_id,
                        merchant_order_id,
                        fact.amount.amount,
                        fact.amount.currency,
                        fact.detail,
                        fact.due_date.isoformat() if fact.due_date else None,
                        _iso(fact.at),
                        now,
                    ),
                )
                self._owe(db, fact.obligation_id, Work.OPEN, fact.detail, now)
                return "opened"
            if known is None or known[0] != _CLOSES[fact.kind].value:
                return "ignored"
            db.execute(
                "UPDATE ticket_cases SET outcome = ?, updated_at = ? WHERE obligation_id = ?",
                (fact.detail, now, fact.obligation_id),
            )
            added = self._owe(db, fact.obligation_id, Work.SOLVE, fact.detail, now)
            return "solving" if added else "duplicate"

    def escalate_defaults(self) -> int:
        """Owe an escalation for every collection case still not settled `default_after_days`
        after its due date (or its opening). Returns how many."""
        now = self.clock()
        escalated = 0
        with self._lock, self._transaction() as db:
            rows = db.execute(
                "SELECT obligation_id, due_date, opened_at FROM ticket_cases "
                "WHERE kind = ? AND defaulted = 0 AND outcome IS NULL",
                (CaseKind.COLLECTION.value,),
            ).fetchall()
            for obligation_id, due, opened in rows:
                since = (
                    datetime.fromisoformat(due).replace(tzinfo=UTC)
                    if due
                    else datetime.fromisoformat(opened)
                )
                if now - since < self.default_after:
                    continue
                days = (now - since).days
                db.execute(
                    "UPDATE ticket_cases SET defaulted = 1, updated_at = ? WHERE obligation_id = ?",
                    (_iso(now), obligation_id),
                )
                self._owe(
                    db, obligation_id, Work.ESCALATE, f"unpaid {days} days after due", _iso(now)
                )
                escalated += 1
        return escalated

    # --- telling the desk ---------------------------------------------------------------------
    async def flush(self) -> int:
        """Send the owed work, oldest first; stop at the first `ProviderUnavailable` or
        unreadable answer (the desk is down, its breaker open, or it answered nonsense:
        everything stays owed for the next run). A final refusal
        ends that piece of work with its error recorded. Returns how many were done."""
        done = 0
        for owed in self.owed():
            case = self.case(owed.obligation_id)
            if owed.action is not Work.OPEN and case.system_id is None:
                continue  # its open is still owed (it failed finally: see its error)
            try:
                ticket = await self._send(owed, case)
            except (ProviderUnavailable, ValueError, KeyError, TypeError) as exc:
                # Down, or an answer it cannot read (was the ticket made? the next round's
                # find tells): everything stays owed.
                self._failed(owed, str(exc) or type(exc).__name__, finished=False)
                log.warning(
                    "ticket desk unavailable; %d pieces of work stay owed", len(self.owed())
                )
                return done
            except ProviderRejected as exc:
                self._failed(owed, f"refused: {exc}", finished=True)
                continue
            self._done(owed, ticket)
            done += 1
        return done

    async def sync(self) -> int:
        """Read the desk's status of every case with a ticket not yet solved; returns how many
        changed. An unavailable desk ends the round (read again next time)."""
        changed = 0
        for case in self.cases():
            if case.system_id is None or case.status is TicketStatus.SOLVED:
                continue
            try:
                ticket = await self.system.get(case.system_id)
            except (ProviderUnavailable, ValueError, KeyError, TypeError):
                return changed  # down or unreadable: read again next round
            except ProviderRejected as exc:
                log.warning(
                    "ticket %s of %s unreadable: %s", case.reference, case.obligation_id, exc
                )
                continue
            if ticket.status is not case.status:
                self._store_ticket(case.obligation_id, ticket)
                changed += 1
        return changed

    async def run(self) -> int:
        """One round: escalate defaults, send what is owed, read the desk's statuses back.
        Returns how many pieces of work were sent."""
        self.escalate_defaults()
        done = await self.flush()
        await self.sync()
        return done

    async def _send(self, owed: Owed, case: Case) -> Ticket:
        intent = f"ticket:{case.obligation_id}:{owed.action.value}"
        if owed.action is Work.OPEN:
            found = await self.system.find(case.obligation_id)
            if found is not None:
                return found
            return await self.system.open(self._request(case), intent_id=intent)
        assert case.system_id is not None
        assert case.reference is not None
        current = Ticket(case.system_id, case.reference, case.status or TicketStatus.OPEN, case.url)
        if owed.action is Work.ESCALATE:
            return await self.system.update(
                current,
                intent_id=intent,
                note=f"Escalated: {owed.note}. Treat as a default.",
                urgency=Urgency.URGENT,
                tags=("default",),
            )
        if case.status is TicketStatus.SOLVED:
            return current  # solved at the desk already
        return await self.system.update(
            current, intent_id=intent, note=f"Closed: {owed.note}.", status=TicketStatus.SOLVED
        )

    def _request(self, case: Case) -> TicketRequest:
        order = case.merchant_order_id or case.provider_order_id
        money = _money(case.amount, case.currency)
        if case.kind is CaseKind.DISPUTE:
            subject = f"Dispute on order {order}: {money} ({case.detail})"
            body = (
                f"The buyer disputes {money} of order {order} (reason: {case.detail}). "
                f"Gather the evidence and respond. Obligation {case.obligation_id}."
            )
            return TicketRequest(
                case.obligation_id, subject, body, Urgency.HIGH, ("dispute", "erp_sink")
            )
        due = f", due {case.due_date.isoformat()}" if case.due_date else ""
        subject = f"Overdue invoice for order {order}: {money} due"
        body = (
            f"Order {order}: {money} is {case.detail}{due}. Contact the buyer's accounts "
            f"payable. Obligation {case.obligation_id}."
        )
        return TicketRequest(
            case.obligation_id, subject, body, Urgency.NORMAL, ("collections", "erp_sink")
        )

    # --- what the ERP reads --------------------------------------------------------------------
    def view(self, merchant_order_id: str) -> list[dict[str, Any]]:
        return [c.json() for c in self.cases(merchant_order_id)]

    def cases(self, merchant_order_id: str | None = None) -> list[Case]:
        query = f"SELECT {_CASE_COLUMNS} FROM ticket_cases"  # noqa: S608 - constant columns
        args: tuple[str, ...] = ()
        if merchant_order_id is not None:
            query += " WHERE merchant_order_id = ?"
            args = (merchant_order_id,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY opened_at, obligation_id", args).fetchall()
        return [_case(r) for r in rows]

    def case(self, obligation_id: str) -> Case:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_CASE_COLUMNS} FROM ticket_cases WHERE obligation_id = ?",  # noqa: S608
                (obligation_id,),
            ).fetchone()
        if row is None:
            raise KeyError(obligation_id)
        return _case(row)

    def owed(self) -> list[Owed]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, obligation_id, action, note, attempts, last_error FROM ticket_work "
                "WHERE done_at IS NULL ORDER BY id"
            ).fetchall()
        return [Owed(r[0], r[1], Work(r[2]), r[3], r[4], r[5]) for r in rows]

    # --- plumbing ------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One committed write transaction (the caller holds the lock)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @staticmethod
    def _owe(db: sqlite3.Connection, obligation_id: str, action: Work, note: str, at: str) -> bool:
        cur = db.execute(
            "INSERT OR IGNORE INTO ticket_work (obligation_id, action, note, created_at) "
            "VALUES (?, ?, ?, ?)",
            (obligation_id, action.value, note, at),
        )
        return cur.rowcount == 1

    def _done(self, owed: Owed, ticket: Ticket) -> None:
        now = _iso(self.clock())
        with self._lock, self._transaction():
            self._db.execute(
                "UPDATE ticket_work SET done_at = ?, attempts = attempts + 1, last_error = NULL "
                "WHERE id = ?",
                (now, owed.id),
            )
            self._update_case(owed.obligation_id, ticket, now)

    def _failed(self, owed: Owed, error: str, *, finished: bool) -> None:
        now = _iso(self.clock())
        with self._lock, self._transaction():
            self._db.execute(
                "UPDATE ticket_work SET attempts = attempts + 1, last_error = ?, "
                "done_at = CASE WHEN ? THEN ? ELSE NULL END WHERE id = ?",
                (error[:500], finished, now, owed.id),
            )

    def _store_ticket(self, obligation_id: str, ticket: Ticket) -> None:
        with self._lock, self._transaction():
            self._update_case(obligation_id, ticket, _iso(self.clock()))

    def _update_case(self, obligation_id: str, ticket: Ticket, now: str) -> None:
        self._db.execute(
            "UPDATE ticket_cases SET system_id = ?, reference = ?, url = COALESCE(?, url), "
            "status = ?, updated_at = ? WHERE obligation_id = ?",
            (
                ticket.system_id,
                ticket.reference,
                ticket.url,
                ticket.status.value,
                now,
                obligation_id,
            ),
        )


def _case(row: tuple[Any, ...]) -> Case:
    return Case(
        obligation_id=row[0],
        kind=CaseKind(row[1]),
        provider_order_id=row[2],
        merchant_order_id=row[3],
        amount=row[4],
        currency=row[5],
        detail=row[6],
        due_date=date.fromisoformat(row[7]) if row[7] else None,
        opened_at=datetime.fromisoformat(row[8]),
        system_id=row[9],
        reference=row[10],
        url=row[11],
        status=TicketStatus(row[12]) if row[12] else None,
        defaulted=bool(row[13]),
        outcome=row[14],
        updated_at=datetime.fromisoformat(row[15]),
    )


__all__ = ["Case", "CaseKind", "TicketSink", "Work"]
