"""`make bench`: the scaling figure of issue #16, throughput with 1 and 2 workers on SQLite and
on PostgreSQL, side by side in one run.

Four servers, one after the other (each stopped before the next starts, so they never share
the machine): `sandbank serve --workers N` for N in 1, 2, on a database file and on a
throwaway PostgreSQL server (bench/throwaway_pg.py, an empty schema each), then one more row:
two separate `sandbank serve` processes on one PostgreSQL database with the load split
between them (wrk on each, at the same time), the shared-sandbox deployment. Each is
measured with the same bounded wrk load as bench/throughput.py: POST /v1/checkouts and
GET /v1/orders/{id}. 127.0.0.1 only.

On 2 cores, the client (wrk) and the servers compete for the CPU: the figures compare the
stores under the same conditions; they are not the most a bigger machine would serve.

    .venv/bin/python bench/scaling.py [--duration 5] [--connections 32]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from harness import ADMIN, Result, ensure_wrk, measure, prepare, write_scripts
from throwaway_pg import ThrowawayPostgres, unavailable

from rehearsal.processes import Server, free_port


@contextlib.contextmanager
def server(tmp: Path, name: str, db: str | None, workers: int) -> Iterator[Server]:
    extra = ["--admin-token", ADMIN, "--seed", "7", "--workers", str(workers)]
    if db is not None:
        extra += ["--db", db]
    with Server(tmp / name, free_port(), tmp / f"{name}.log", extra) as sim:
        yield sim


def load(binary: str, sims: list[Server], tmp: Path, args: argparse.Namespace) -> dict[str, float]:
    """POST then GET req/s, the load split evenly over `sims` (run at the same time)."""
    fx = prepare(sims[0].url)
    scripts = write_scripts(tmp, fx)
    out: dict[str, float] = {}
    for key, path, script in (
        ("post", "/v1/checkouts", "post"),
        ("get", f"/v1/orders/{fx.order_id}", "get"),
    ):
        results: list[Result] = []

        def one(
            sim: Server, found: list[Result] = results, p: str = path, s: str = script, k: str = key
        ) -> None:
            found.append(
                measure(
                    binary,
                    sim.url + p,
                    scripts[s],
                    args,
                    f"{k.upper()} on {sim.url}",
                    connections=max(1, args.connections // len(sims)),
                )
            )

        threads = [threading.Thread(target=one, args=(sim,)) for sim in sims]
        for t in threads:
            t.start()
        for t in threads:
            t.join(args.duration + 60)
        out[key] = sum(r.rps for r in results)
        out[f"{key}_errors"] = sum(r.non_2xx + r.socket_errors for r in results)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--duration", type=int, default=5, help="seconds per measured run (5)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections in all (32)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads per run (1)")
    args = p.parse_args()
    binary = ensure_wrk()
    rows: list[tuple[str, dict[str, float]]] = []
    why = unavailable()
    with tempfile.TemporaryDirectory(prefix="sandbank-scaling-") as tmp_name:
        tmp = Path(tmp_name)
        pg = ThrowawayPostgres().start() if why is None else None
        try:
            plans: list[tuple[str, str | None, int, int]] = [
                ("SQLite, 1 worker", None, 1, 1),
                ("SQLite, 2 workers", None, 2, 1),
            ]
            if pg is not None:
                plans += [
                    ("PostgreSQL, 1 worker", "pg", 1, 1),
                    ("PostgreSQL, 2 workers", "pg", 2, 1),
                    ("PostgreSQL, 2 servers x 1 worker", "pg", 1, 2),
                ]
            for n, (label, kind, workers, servers) in enumerate(plans):
                print(f"{label}:", flush=True)
                db = pg.fresh_url("bench") if pg is not None and kind == "pg" else None
                with contextlib.ExitStack() as stack:
                    sims = [
                        stack.enter_context(server(tmp, f"s{n}-{i}", db, workers))
                        for i in range(servers)
                    ]
                    rows.append((label, load(binary, sims, tmp, args)))
        finally:
            if pg is not None:
                pg.stop()
    print()
    print(f"Scaling ({args.duration} s per run, {args.connections} connections, 127.0.0.1)")
    print(f"  {'store, processes':<36} {'POST req/s':>11} {'GET req/s':>11} {'errors':>7}")
    for label, r in rows:
        errors = int(r["post_errors"] + r["get_errors"])
        print(f"  {label:<36} {r['post']:>11,.0f} {r['get']:>11,.0f} {errors:>7}")
    if why is not None:
        print(f"  PostgreSQL rows left out: {why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
