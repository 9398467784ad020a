"""How cheap POST /v1/checkouts could be on this store: the SQL it must run, replayed alone.

Issue #18 item 3 asks for the inline-buyer POST at 0.3x a bare uvicorn app's throughput. On
one CPU-bound process throughput is the inverse of CPU per request, so 0.3x is a budget of
`bare CPU per request / 0.3` (bare uvicorn answers in ~24 µs here: ~80 µs per POST). This
bench measures the part of that budget no Python above the store can give back: the SQLite
statements one POST issues today (the account, the due-work check, the buyer, the checkout,
its two events, the RNG counter, the journal row, the turn's BEGIN/SAVEPOINT/COMMIT), recorded
with their parameters from the real app and replayed, in the same order and groups, on a copy
of the same database with the same pragmas. The replay is the floor of this schema and these
statements: what a POST would cost if everything else (HTTP, routing, validation, pydantic,
events' shapes, middleware) were free.

    .venv/bin/python bench/floor.py                  # CPU µs per POST: app, SQL replay, JSON
    .venv/bin/python bench/floor.py --bare-us 24     # + the budget left for 0.3x bare uvicorn

`--bare-us` is bare uvicorn's CPU per request from `bench/peers.py` in the same session.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PER_TURN = 16


class _Recorder:
    """The store's connection, recording every statement and its parameters in order."""

    def __init__(self, conn: sqlite3.Connection, log: list[tuple[str, Any]]) -> None:
        self._conn = conn
        self._log = log

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        self._log.append((sql, params))
        return self._conn.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


async def _record(tmp: str, warmup: int, requests: int) -> tuple[list[tuple[str, Any]], float]:
    """Run the app in process (as bench/post_cost.py does); return the statements of the
    measured POSTs and the app's CPU seconds per POST."""
    import httpx  # noqa: PLC0415 - bench-only import, after sys.path is set
    from peers import INLINE_BODY  # noqa: PLC0415 - see above

    from simulator.app import create_app  # noqa: PLC0415 - see above
    from simulator.settings import Settings  # noqa: PLC0415 - see above

    body = json.dumps(INLINE_BODY, separators=(",", ":")).encode()
    db = os.path.join(tmp, "bench.db")
    app = create_app(
        Settings(
            db=db,
            admin_token="bench_admin",  # noqa: S106 - a throwaway local server's
            seed=7,
            public_url="http://bench.test",
            webhook_process=True,
        )
    )
    admin = {"Authorization": "Bearer bench_admin"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bench.test"
    ) as c:
        key = (await c.post("/_sandbox/accounts", json={"name": "b"}, headers=admin)).json()[
            "api_key"
        ]
    headers = [
        (b"host", b"bench.test"),
        (b"authorization", f"Bearer {key}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    statuses: list[int] = []

    async def one() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/checkouts",
            "raw_path": b"/v1/checkouts",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 8080),
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(60)  # bounded: the response is complete long before
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(scope, receive, send)

    async def turns(n: int) -> None:
        for _ in range(n // PER_TURN):
            await asyncio.gather(*(one() for _ in range(PER_TURN)))

    store = app.runtime.store
    await turns(warmup)
    store.flush()
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    shutil.copyfile(db, os.path.join(tmp, "replay.db"))  # the state the recording starts from
    log: list[tuple[str, Any]] = []
    real = store.conn
    store.conn = _Recorder(real, log)
    started = time.process_time()
    await turns(requests)
    store.flush()
    cpu = time.process_time() - started
    store.conn = real
    store.close()
    bad = [s for s in statuses if s != 201]
    if bad:
        raise SystemExit(f"floor: {len(bad)} of {len(statuses)} requests did not answer 201")
    return log, cpu / requests


def _replay(path: str, log: list[tuple[str, Any]], requests: int) -> float:
    """CPU seconds per POST of the recorded statements on a copy of the starting database."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")  # as the serving store: checkpoints apart
    started = time.process_time()
    for sql, params in log:
        conn.execute(sql, params).fetchall()
    cpu = time.process_time() - started
    conn.close()
    return cpu / requests


def _by_statement(path: str, log: list[tuple[str, Any]], requests: int) -> list[tuple[str, float]]:
    """µs per POST of each kind of statement (its first words), largest first: one more
    replay, each statement timed (the timer adds ~0.1 µs a statement)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    spent: dict[str, int] = {}
    for sql, params in log:
        words = sql.split()
        kind = " ".join(words[:3] if words[0] in {"INSERT", "UPDATE", "SELECT"} else words[:2])
        if words[0] == "SELECT":
            # A label for the table, never executed.
            kind = "SELECT … FROM " + words[words.index("FROM") + 1] if "FROM" in words else kind  # noqa: S608
        started = time.perf_counter_ns()
        conn.execute(sql, params).fetchall()
        spent[kind] = spent.get(kind, 0) + time.perf_counter_ns() - started
    conn.close()
    rows = [(kind, ns / 1000 / requests) for kind, ns in spent.items()]
    return sorted(rows, key=lambda row: -row[1])


def _json_floor(requests: int) -> float:
    """CPU seconds per POST to parse the request body and write a response of the real size
    with orjson (the fastest JSON on the registry): the least any server must do."""
    import orjson  # noqa: PLC0415 - bench-only import
    from peers import INLINE_BODY  # noqa: PLC0415 - bench-only import

    body = orjson.dumps(INLINE_BODY)
    response = {**INLINE_BODY, "id": "chk_" + "x" * 24, "status": "pending", "links": {}}
    started = time.process_time()
    for _ in range(requests):
        orjson.dumps({**orjson.loads(body), **response})
    return (time.process_time() - started) / requests


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=2048, help="recorded POSTs (2048)")
    p.add_argument("--bare-us", type=float, help="bare uvicorn's CPU µs per request (peers.py)")
    args = p.parse_args()
    sys.path.insert(0, str(HERE))
    requests = max(PER_TURN, args.requests // PER_TURN * PER_TURN)
    with tempfile.TemporaryDirectory() as tmp:
        log, app_cpu = asyncio.run(_record(tmp, 512, requests))
        replays = [_replay(_fresh(tmp, i), log, requests) for i in range(3)]
        kinds = _by_statement(_fresh(tmp, 3), log, requests)
    sql = sorted(replays)[1]
    js = _json_floor(20_000)
    print(f"floor: {requests} inline-buyer POSTs, {len(log) / requests:.1f} statements per POST")
    print(f"  the app, in process (no HTTP)         {app_cpu * 1e6:7.1f} µs CPU per POST")
    print(f"  its SQL alone, replayed (median of 3) {sql * 1e6:7.1f} µs CPU per POST")
    print(f"  JSON in and out with orjson           {js * 1e6:7.1f} µs CPU per POST")
    for kind, us in kinds:
        print(f"    {kind[:44]:<44} {us:6.1f} µs")
    if args.bare_us:
        budget = args.bare_us / 0.3
        floor = args.bare_us + sql * 1e6 + js * 1e6
        print(f"  budget for 0.3x bare uvicorn          {budget:7.1f} µs ({args.bare_us:g} / 0.3)")
        print(f"  floor: bare HTTP + SQL + JSON         {floor:7.1f} µs ({floor / budget:.2f}x it)")
        print(f"  left for everything else              {budget - floor:7.1f} µs")
    return 0


def _fresh(tmp: str, i: int) -> str:
    path = os.path.join(tmp, f"replay{i}.db")
    shutil.copyfile(os.path.join(tmp, "replay.db"), path)
    return path


if __name__ == "__main__":
    sys.exit(main())
