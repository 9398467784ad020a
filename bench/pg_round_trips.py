"""`make bench`: what one POST /v1/checkouts costs on the PostgreSQL store, in process and one
request at a time (no load, so the machine's other work disturbs it little): milliseconds per
request, statements sent, and the round trips that waited for an answer (pipeline syncs and
statements outside a pipeline). Issue #16: a write transaction is pipelined, so statements
whose result nobody reads do not wait.

    .venv/bin/python bench/pg_round_trips.py [--requests 50]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "bench")]

import psycopg  # noqa: E402 - after the path set-up above, as every bench script
from factories import ADMIN_TOKEN, BACKEND, build_app, checkout_body  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402
from throwaway_pg import ThrowawayPostgres, unavailable  # noqa: E402

from simulator.store import postgres  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=50, help="measured POSTs (50)")
    args = p.parse_args()
    why = unavailable()
    if why is not None:
        print(f"pg_round_trips: skipped, {why}")
        return 0
    sent = waited = 0
    execute, sync = postgres.PgConn.execute, psycopg.Pipeline.sync

    def counting_execute(self: postgres.PgConn, sql: str, params: object = ()) -> object:
        nonlocal sent, waited
        sent += 1
        waited += getattr(self, "_pipe", None) is None  # outside a pipeline, each waits
        return execute(self, sql, params)

    def counting_sync(self: psycopg.Pipeline) -> None:
        nonlocal waited
        waited += 1
        sync(self)

    postgres.PgConn.execute = counting_execute  # type: ignore[method-assign]
    psycopg.Pipeline.sync = counting_sync  # type: ignore[method-assign]
    with ThrowawayPostgres() as server:
        BACKEND.fresh_db = server.fresh_url
        app = build_app()
        with TestClient(app) as client:
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            key = client.post("/_sandbox/accounts", json={"name": "b"}, headers=admin).json()
            api = {"Authorization": f"Bearer {key['api_key']}"}
            for _ in range(3):  # warm: caches, prepared plans
                client.post("/v1/checkouts", json=checkout_body(), headers=api)
            sent = waited = 0
            start = time.perf_counter()
            for _ in range(args.requests):
                r = client.post("/v1/checkouts", json=checkout_body(), headers=api)
                assert r.status_code == 201, r.text
            took = time.perf_counter() - start
        BACKEND.close_all()
    n = args.requests
    print(f"PostgreSQL, one POST /v1/checkouts at a time, in process ({n} requests)")
    print(f"  {took / n * 1000:8.2f} ms per request")
    print(f"  {sent / n:8.1f} statements per request")
    print(f"  {waited / n:8.1f} round trips that waited per request (+1 BEGIN and lock)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
