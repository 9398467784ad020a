"""An account's dump as a stream of JSON bytes, read a page at a time (issue #17: a 22 MB dump
built in memory froze every account's requests and doubled the server's memory).

On a database file the dump reads from a connection of its own, in one read transaction (a
consistent snapshot that takes no lock), and Starlette pulls the pages in a worker thread, so
the event loop only forwards bytes. `:memory:` has no second connection: there the pages are
read on the loop, one per turn (tests and throwaway runs). The document is the same as the old
one: `account`, `buyers`, `checkouts`, `orders`, `events`, `scheduled`, `money`, each list
oldest first; rows are the stored JSON as is.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson

PAGE = 500
_TABLES = ("buyers", "checkouts", "orders", "events")


def _pages(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> Iterator[list[Any]]:
    """Keyset pages of `sql` (which selects `seq` first and takes `seq > ?` and a LIMIT last)."""
    after = -1
    while True:
        rows = conn.execute(sql, (*args, after, PAGE)).fetchall()
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def chunks(conn: sqlite3.Connection, account_id: str, head: dict[str, Any]) -> Iterator[bytes]:
    yield b'{"account":' + orjson.dumps(head)
    for table in _TABLES:
        sql = (
            f"SELECT seq, data FROM {table} WHERE account_id = ? AND seq > ? "  # noqa: S608 - fixed names
            "ORDER BY seq LIMIT ?"
        )
        yield from _list(table, (r[1] for page in _pages(conn, sql, (account_id,)) for r in page))
    sql = (
        "SELECT seq, due_us, kind, ref FROM jobs WHERE account_id = ? AND seq > ? "
        "ORDER BY seq LIMIT ?"
    )
    jobs: list[tuple[int, int, str, str]] = []
    for page in _pages(conn, sql, (account_id,)):  # jobs are few: sorted by due time here
        jobs.extend(page)
    jobs.sort(key=lambda j: (j[1], j[0]))
    scheduled = (orjson.dumps({"due_us": j[1], "kind": j[2], "ref": j[3]}) for j in jobs)
    yield from _list("scheduled", scheduled)
    yield from _money(conn, account_id)
    yield b"}"


def _list(name: str, items: Iterator[str | bytes]) -> Iterator[bytes]:
    out = bytearray(b',"%s":[' % name.encode())
    first = True
    for item in items:
        if not first:
            out += b","
        out += item.encode() if isinstance(item, str) else item
        first = False
        if len(out) >= 64 * 1024:
            yield bytes(out)
            out.clear()
    out += b"]"
    yield bytes(out)


def _money(conn: sqlite3.Connection, account_id: str) -> Iterator[bytes]:
    """Finance objects by kind (sorted), oldest first; exports are left out (whole files)."""
    kinds = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT kind FROM finance_objects WHERE account_id = ? AND kind != 'export' "
            "ORDER BY kind",
            (account_id,),
        )
    ]
    yield b',"money":['
    for n, kind in enumerate(kinds):
        yield (b"," if n else b"") + b'{"kind":' + orjson.dumps(kind)
        sql = (
            "SELECT seq, data FROM finance_objects WHERE account_id = ? AND kind = ? AND seq > ? "
            "ORDER BY seq LIMIT ?"
        )
        rows = (r[1] for page in _pages(conn, sql, (account_id, kind)) for r in page)
        yield from _list("objects", rows)
        yield b"}"
    yield b"]"


def from_file(path: str, account_id: str, head: dict[str, Any]) -> Iterator[bytes]:
    """On a connection of its own, in one snapshot; pulled from a worker thread."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    try:
        conn.execute("BEGIN")
        yield from chunks(conn, account_id, head)
    finally:
        conn.close()


async def on_loop(
    conn: sqlite3.Connection, account_id: str, head: dict[str, Any]
) -> AsyncIterator[bytes]:
    """On the shared connection, one chunk per event-loop turn (`:memory:` only)."""
    for chunk in chunks(conn, account_id, head):
        yield chunk
        await asyncio.sleep(0)
