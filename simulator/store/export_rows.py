"""An account export's rows read a page at a time, and its files kept as numbered chunks
(issue #17: an export built in memory froze every account's requests for seconds and took
hundreds of MiB).

`ExportRows` reads what `simulator.exports` writes into the files, as domain objects, from one
connection: keyset pages by `seq`, never the whole table. Captures, refunds and repayments live
inside their orders and are exported by creation time across orders; SQLite sorts them
(`json_each`, with an instant key from `_instant_us`), spilling to its temporary files past its
cache, so memory stays flat however many there are.

A file's bytes go to `export_chunks` (`ChunkWriter`: about `FLUSH_BYTES` per short write
transaction, so the write lock is never held long), under the export's `spool` name, and come
back with `chunks`, one page of chunks at a time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from simulator.domain.finance import Dispute, Settlement, SettlementLine
from simulator.domain.gateway import Charge, Invoice
from simulator.domain.invoicing import EdiInvoice, Remittance
from simulator.domain.models import Capture, Event, Order, Refund, Repayment
from simulator.domain.vault import Token
from simulator.domain.vcards import Allocation, Vcard, VcardInvoice, VcardPayment

PAGE = 200  # rows per read
CHUNK_PAGE = 16  # chunks per read when downloading
FLUSH_BYTES = 1 << 20  # bytes of chunks per write transaction

MIGRATION = """
CREATE TABLE export_chunks (
    account_id TEXT NOT NULL, spool TEXT NOT NULL, file TEXT NOT NULL, n INTEGER NOT NULL,
    data BLOB NOT NULL, PRIMARY KEY (spool, file, n));
CREATE INDEX export_chunks_by_account ON export_chunks (account_id, spool);
"""
TABLES = ("export_chunks",)


def _instant_us(text: str) -> int:
    """A stored RFC 3339 time as microseconds since the epoch: the text stops sorting by
    instant once fractions of a second appear (`09:00:00.5Z` sorts before `09:00:00Z`)."""
    moment = datetime.fromisoformat(text)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def _keyset(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> Iterator[str]:
    """The `data` of `sql` (selecting `seq, data`, taking `seq > ?` and a LIMIT last), paged."""
    after = -1
    while True:
        rows = conn.execute(sql, (*args, after, PAGE)).fetchall()
        if not rows:
            return
        for row in rows:
            yield row[1]
        after = rows[-1][0]


class ExportRows:
    """Everything an export holds of one account, oldest first, read from `conn` (which the
    caller keeps in one read transaction, for a consistent snapshot)."""

    def __init__(self, conn: sqlite3.Connection, account_id: str) -> None:
        self.c = conn
        self.aid = account_id
        conn.create_function("sandbank_instant_us", 1, _instant_us, deterministic=True)

    def _table(self, table: str, where: str = "", args: tuple[Any, ...] = ()) -> Iterator[str]:
        sql = (
            f"SELECT seq, data FROM {table} WHERE account_id = ? {where} "  # noqa: S608 - ours
            "AND seq > ? ORDER BY seq LIMIT ?"
        )
        return _keyset(self.c, sql, (self.aid, *args))

    def _nested(self, field: str) -> Iterator[tuple[str, str]]:
        """(order id, item JSON) of every item of `field` in every order: by creation time,
        ties in order creation order, then position (a stable sort of the orders' items)."""
        cursor = self.c.execute(
            f"SELECT o.id, j.value FROM orders o, json_each(o.data, '$.{field}') j "  # noqa: S608 - ours
            "WHERE o.account_id = ? "
            "ORDER BY sandbank_instant_us(json_extract(j.value, '$.created_at')), o.seq, j.key",
            (self.aid,),
        )
        while rows := cursor.fetchmany(PAGE):
            yield from rows

    def orders(self) -> Iterator[Order]:
        return (Order.model_validate_json(d) for d in self._table("orders"))

    def captures(self) -> Iterator[tuple[str, Capture]]:
        return ((o, Capture.model_validate_json(d)) for o, d in self._nested("captures"))

    def refunds(self) -> Iterator[tuple[str, Refund]]:
        return ((o, Refund.model_validate_json(d)) for o, d in self._nested("refunds"))

    def repayments(self) -> Iterator[Repayment]:
        return (Repayment.model_validate_json(d) for _, d in self._nested("repayments"))

    def _finance(self, kind: str, status: str | None = None) -> Iterator[str]:
        if status is None:
            return self._table("finance_objects", "AND kind = ?", (kind,))
        return self._table("finance_objects", "AND kind = ? AND status = ?", (kind, status))

    def settlements(self) -> Iterator[Settlement]:
        return (Settlement.model_validate_json(d) for d in self._finance("settlement"))

    def settlement_lines(self) -> Iterator[SettlementLine]:
        """The true lines: each settlement's own, then those still waiting for a batch."""
        for settlement in self.settlements():
            yield from settlement.lines
        for data in self._finance("line", "unsettled"):
            yield SettlementLine.model_validate_json(data)

    def disputes(self) -> Iterator[Dispute]:
        return (Dispute.model_validate_json(d) for d in self._finance("dispute"))

    def invoices(self) -> Iterator[Invoice]:
        """The gateway + net terms personality's invoices."""
        return (Invoice.model_validate_json(d) for d in self._finance("invoice"))

    def charges(self) -> Iterator[Charge]:
        return (Charge.model_validate_json(d) for d in self._finance("charge"))

    def vcard_invoices(self) -> Iterator[VcardInvoice]:
        """The virtual cards personality's invoices, cards and card captures."""
        return (VcardInvoice.model_validate_json(d) for d in self._finance("vcard_invoice"))

    def vcards(self) -> Iterator[Vcard]:
        return (Vcard.model_validate_json(d) for d in self._finance("vcard"))

    def vcard_allocations(self) -> Iterator[tuple[VcardPayment, Allocation]]:
        for data in self._finance("vcard_payment"):
            payment = VcardPayment.model_validate_json(data)
            yield from ((payment, a) for a in payment.allocations)

    def edi_invoices(self) -> Iterator[EdiInvoice]:
        """The traditional-invoicing personality's invoices and remittances."""
        return (EdiInvoice.model_validate_json(d) for d in self._finance("edi_invoice"))

    def remittances(self) -> Iterator[Remittance]:
        return (Remittance.model_validate_json(d) for d in self._finance("remittance"))

    def tokens(self) -> Iterator[Token]:
        """The token vault, every personality's."""
        return (Token.model_validate_json(d) for d in self._finance("token"))

    def events(self) -> Iterator[Event]:
        return (Event.model_validate_json(d) for d in self._table("events"))


class ChunkWriter:
    """Appends a file's chunks to `export_chunks`, committing about every `FLUSH_BYTES`.

    `own_transactions`: the connection is the writer's own (each flush is a short write
    transaction); otherwise the statements run in whatever the connection is doing."""

    def __init__(
        self, conn: sqlite3.Connection, account_id: str, spool: str, *, own_transactions: bool
    ) -> None:
        self.c, self.aid, self.spool, self.own = conn, account_id, spool, own_transactions
        self._pending: list[tuple[str, str, str, int, bytes]] = []
        self._size = 0
        self._next: dict[str, int] = {}

    def __call__(self, file: str, data: bytes) -> None:
        n = self._next.get(file, 0)
        self._next[file] = n + 1
        self._pending.append((self.aid, self.spool, file, n, data))
        self._size += len(data)
        if self._size >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        sql = "INSERT INTO export_chunks (account_id, spool, file, n, data) VALUES (?, ?, ?, ?, ?)"
        if self.own:
            self.c.execute("BEGIN IMMEDIATE")
            try:
                self.c.executemany(sql, self._pending)
            except BaseException:
                self.c.execute("ROLLBACK")
                raise
            self.c.execute("COMMIT")
        else:
            self.c.executemany(sql, self._pending)
        self._pending.clear()
        self._size = 0


def drop(conn: sqlite3.Connection, spool: str) -> None:
    conn.execute("DELETE FROM export_chunks WHERE spool = ?", (spool,))


def chunks(conn: sqlite3.Connection, spool: str, file: str) -> Iterator[bytes]:
    """A file's bytes, `CHUNK_PAGE` chunks per read."""
    after = -1
    while True:
        rows = conn.execute(
            "SELECT n, data FROM export_chunks WHERE spool = ? AND file = ? AND n > ? "
            "ORDER BY n LIMIT ?",
            (spool, file, after, CHUNK_PAGE),
        ).fetchall()
        if not rows:
            return
        for row in rows:
            yield bytes(row[1])
        after = rows[-1][0]
