"""`make bench` (second part): advancing an account's clock over a large book of captured orders.

The issue's target: advancing 90 days on an account with 10,000 captured orders completes in
< 10 s on this machine, with peak memory reported.

1. Build: a file-backed SQLite store in a temporary directory (as `sandbank serve` uses), one
   account, and N orders created in-process through `ProviderService` (not over HTTP, so the
   build takes seconds): buyers with ample credit, checkouts approved with terms cycling over
   net30 / net60 / installments_3 / 6 / 12, each captured in full; about 1 in 10 partially
   refunded; about 1 in 100 disputed (evidence `+win`, evidence `+lose`, accepted, or left to
   its deadline); seeded late (5 %) and default (2 %) repayments. All of it at the account's
   current time, so the advance sees every job kind: repayment due / late paid / default,
   settlement batch and payout, dispute deadline and decision (and expiry no-ops).
2. The database file is copied twice, and each copy is advanced in a fresh child process by
   ONE `POST /_sandbox/accounts/{id}/clock/advance {"by": "<days>d"}` through the real ASGI
   pipeline (in-process httpx, no socket): the first run is timed with nothing else watching;
   the second runs under tracemalloc for the peak of Python allocations during the advance
   (tracemalloc slows Python down, so its time is not the one reported). Each child reports
   its max RSS (`resource.getrusage`).

    .venv/bin/python bench/advance.py [--orders 10000] [--days 90] [--profile]

`--profile` adds a third child that runs the advance under cProfile and prints where the time
goes. Every child is bounded by --timeout seconds; the temporary directory is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from fixed_entropy import deterministic_entropy

from simulator.app import create_app
from simulator.clock import ManualClock
from simulator.domain.models import AccountSettings, LineItem
from simulator.settings import Settings
from simulator.store.sqlite import SqliteTx

ADMIN = "sbadm_bench_advance"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning
TARGET_SECONDS = 10.0
CHUNK = 250  # orders per build transaction
TERMS = ("net30", "net60", "installments_3", "installments_6", "installments_12")
ORDERS_PER_BUYER = 50


def fail(message: str) -> None:
    print(f"bench: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _app(data_dir: Path, db: Path) -> Any:
    settings = Settings(
        data_dir=data_dir,
        db=str(db),
        seed=1,
        admin_token=ADMIN,
        public_url="http://127.0.0.1:8080",
        demo_account=False,
        webhook_process=True,  # no in-process dispatcher (none runs without a lifespan anyway)
    )
    return create_app(
        settings, wall_clock=ManualClock(START), entropy=deterministic_entropy("bench-advance")
    )


# --- 1. build ---------------------------------------------------------------------------------
def build(data_dir: Path, db: Path, orders: int, *, endpoint: bool) -> dict[str, Any]:
    app = _app(data_dir, db)
    service = app.runtime.service
    account = app.runtime.accounts.create(
        name="bench-advance",
        seed=7,
        settings=AccountSettings(late_probability=0.05, default_probability=0.02),
    )
    item = [LineItem(name="Pallet of widgets", quantity=1, unit_amount=100)]
    started = time.perf_counter()
    buyers: list[str] = []
    order_ids: list[str] = []
    counts: Counter[str] = Counter()
    for chunk_start in range(0, orders, CHUNK):
        with service.scope(account.id) as ctx:
            for n in range(chunk_start, min(orders, chunk_start + CHUNK)):
                if n % ORDERS_PER_BUYER == 0:
                    buyer = service.create_buyer(
                        ctx,
                        legal_name=f"Bench Buyer {n // ORDERS_PER_BUYER}",
                        email=f"ap+limit_900000000@buyer{n // ORDERS_PER_BUYER}.test",
                        annual_revenue=900_000_000,
                        years_in_business=9,
                    )
                    buyers.append(buyer.id)
                amount = 10_000 + (n * 7_919) % 990_000  # 100.00 .. 10,000.00
                terms = TERMS[n % len(TERMS)]
                checkout = service.create_checkout(
                    ctx,
                    amount=amount,
                    currency=None,
                    buyer_id=buyers[-1],
                    buyer=None,
                    merchant_order_id=f"SO-{n}",
                    line_items=[item[0].model_copy(update={"unit_amount": amount})],
                    return_url="https://shop.test/return",
                    cancel_url="https://shop.test/cancel",
                )
                done = service.approve_checkout(ctx, checkout.id, terms)
                if done.order_id is None:
                    fail(f"checkout {n} was not approved: {done.decision}")
                service.capture(ctx, done.order_id, amount=None, currency=None, final=True)
                counts[terms] += 1
                order_ids.append(done.order_id)
                if n % 10 == 3:
                    service.refund(
                        ctx, done.order_id, amount=amount // 4, currency=None, reason=None
                    )
                    counts["refunded"] += 1
                if n % 100 == 7:
                    dispute = service.finance.open_dispute(
                        ctx, done.order_id, reason="fraudulent", amount=amount // 2
                    )
                    kind = (n // 100) % 4
                    if kind == 0:
                        service.finance.submit_evidence(ctx, dispute.id, {"text": "+win"})
                    elif kind == 1:
                        service.finance.submit_evidence(ctx, dispute.id, {"text": "+lose"})
                    elif kind == 2:
                        service.finance.accept_dispute(ctx, dispute.id)
                    counts["disputed"] += 1
    seconds = time.perf_counter() - started
    if endpoint:  # after the build: only the advance's events fan out to it
        with service.scope(account.id) as ctx:
            app.runtime.webhooks.create_endpoint(
                ctx, url="http://127.0.0.1:9/webhooks", enabled_events=["*"], description=None
            )
    app.runtime.store.close()  # checkpoints the WAL into the file
    return {
        "account": account.id,
        "orders": len(order_ids),
        "buyers": len(buyers),
        "seconds": seconds,
        "counts": dict(counts),
    }


# --- 2. one advance, in a child process ----------------------------------------------------
def _count(db: Path, account: str) -> dict[str, int]:
    conn = sqlite3.connect(db)
    try:

        def one(sql: str, *args: object) -> int:
            return int(conn.execute(sql, (account, *args)).fetchone()[0])

        return {
            "jobs": one("SELECT COUNT(*) FROM jobs WHERE account_id = ?"),
            "events": one("SELECT COUNT(*) FROM events WHERE account_id = ?"),
            "settlements": one(
                "SELECT COUNT(*) FROM finance_objects WHERE account_id = ? AND kind = ?",
                "settlement",
            ),
            "lines": one(
                "SELECT COUNT(*) FROM finance_objects WHERE account_id = ? AND kind = ?", "line"
            ),
            "deliveries": one("SELECT COUNT(*) FROM webhook_deliveries WHERE account_id = ?"),
        }
    finally:
        conn.close()


def _rss_now_kb() -> int:
    with open("/proc/self/status") as status:
        for row in status:
            if row.startswith("VmRSS:"):
                return int(row.split()[1])
    return 0


def child(mode: str, data_dir: Path, db: Path, account: str, days: int) -> dict[str, Any]:
    before = _count(db, account)
    # Jobs run, by kind: one counting wrapper around the store's pop (a dict update per job).
    ran: Counter[str] = Counter()
    pop = SqliteTx.pop_due

    def counting_pop(self: SqliteTx, account_id: str, until_us: int) -> Any:
        job = pop(self, account_id, until_us)
        if job is not None:
            ran[job.kind] += 1
        return job

    SqliteTx.pop_due = counting_pop  # type: ignore[method-assign]
    app = _app(data_dir, db)

    async def advance() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench.test") as client:
            return await client.post(
                f"/_sandbox/accounts/{account}/clock/advance",
                headers={"Authorization": f"Bearer {ADMIN}"},
                json={"by": f"{days}d"},
                timeout=None,
            )

    loop = asyncio.new_event_loop()
    rss_before = _rss_now_kb()
    profiler = cProfile.Profile() if mode == "profile" else None
    if mode == "memory":
        tracemalloc.start()
    if profiler is not None:
        profiler.enable()
    started = time.perf_counter()
    response = loop.run_until_complete(advance())
    seconds = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
    peak = 0
    if mode == "memory":
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    loop.close()
    if response.status_code != 200:
        fail(f"advance answered {response.status_code}: {response.text[:500]}")
    app.runtime.store.close()
    after = _count(db, account)
    out: dict[str, Any] = {
        "mode": mode,
        "seconds": seconds,
        "clock": response.json()["now"],
        "jobs_run": dict(ran),
        "events": after["events"] - before["events"],
        "settlements": after["settlements"] - before["settlements"],
        "lines": after["lines"] - before["lines"],
        "deliveries": after["deliveries"] - before["deliveries"],
        "jobs_left": after["jobs"],
        "tracemalloc_peak": peak,
        "rss_before_kb": rss_before,
        "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    if profiler is not None:
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("cumulative").print_stats(35)
        stats.sort_stats("tottime").print_stats(25)
        out["profile"] = text.getvalue()
    return out


def run_child(
    mode: str, *, data_dir: Path, db: Path, account: str, days: int, timeout: float
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        mode,
        "--data-dir",
        str(data_dir),
        "--db",
        str(db),
        "--account",
        account,
        "--days",
        str(days),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBANK_")}
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        fail(f"the {mode} run did not finish within {timeout:.0f}s")
    if done.returncode != 0:
        fail(f"the {mode} run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- report ---------------------------------------------------------------------------------
def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:,.1f} MiB"


def report(built: dict[str, Any], timed: dict[str, Any], memory: dict[str, Any], days: int) -> None:
    jobs: dict[str, int] = timed["jobs_run"]
    rows = [
        ("orders captured (build)", f"{built['orders']:,} for {built['buyers']:,} buyers"),
        (
            "mix",
            ", ".join(f"{k} {v:,}" for k, v in sorted(built["counts"].items())),
        ),
        ("build time (in-process service)", f"{built['seconds']:.1f} s"),
        ("advance", f"{days} days, one POST .../clock/advance (in-process ASGI)"),
        ("advance wall time", f"{timed['seconds']:.2f} s"),
        ("jobs run", f"{sum(jobs.values()):,}"),
        *((f"  {kind}", f"{n:,}") for kind, n in sorted(jobs.items())),
        ("events written", f"{timed['events']:,}"),
        ("settlements created", f"{timed['settlements']:,}"),
        ("settlement lines written", f"{timed['lines']:,}"),
        ("webhook deliveries written", f"{timed['deliveries']:,}"),
        ("jobs still scheduled after", f"{timed['jobs_left']:,}"),
        ("jobs per second", f"{sum(jobs.values()) / timed['seconds']:,.0f}"),
        ("peak Python memory (tracemalloc)", _mb(memory["tracemalloc_peak"])),
        (
            "process max RSS (timed run)",
            f"{_mb(timed['max_rss_kb'] * 1024)} (RSS before the advance "
            f"{_mb(timed['rss_before_kb'] * 1024)})",
        ),
        ("process max RSS (traced run)", _mb(memory["max_rss_kb"] * 1024)),
    ]
    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 40}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    met = timed["seconds"] < TARGET_SECONDS
    verdict = "met" if met else "NOT met"
    print(
        f"\ntarget: {days} days over {built['orders']:,} captured orders in < "
        f"{TARGET_SECONDS:.0f} s -> {verdict} ({timed['seconds']:.2f} s)"
    )
    if memory["events"] != timed["events"] or memory["jobs_run"] != timed["jobs_run"]:
        print("warning: the traced run did different work from the timed run", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--orders", type=int, default=10_000, help="captured orders (default 10000)")
    p.add_argument("--days", type=int, default=90, help="days to advance (default 90)")
    p.add_argument("--timeout", type=float, default=600, help="seconds per step (default 600)")
    p.add_argument("--profile", action="store_true", help="also print a cProfile of the advance")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument(
        "--webhook-endpoint",
        action="store_true",
        help="give the account a webhook endpoint for every event type first, so the advance "
        "also writes one delivery per event (nothing is sent)",
    )
    # Internal: one advance in a child process.
    p.add_argument("--child", choices=["time", "memory", "profile"], help=argparse.SUPPRESS)
    p.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--account", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.orders < 1 or args.days < 1:
        fail("--orders and --days must be at least 1")
    if args.child:
        print(json.dumps(child(args.child, args.data_dir, args.db, args.account, args.days)))
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="sandbank-bench-advance-"))
    try:
        print(f"bench advance: building {args.orders:,} captured orders in {tmp}", flush=True)
        base = tmp / "base.db"
        built = build(tmp, base, args.orders, endpoint=args.webhook_endpoint)
        print(f"  built in {built['seconds']:.1f} s; advancing {args.days} days", flush=True)
        modes = ["time", "memory", *(["profile"] if args.profile else [])]
        results: dict[str, dict[str, Any]] = {}
        for mode in modes:
            db = tmp / f"{mode}.db"
            shutil.copyfile(base, db)
            results[mode] = run_child(
                mode,
                data_dir=tmp,
                db=db,
                account=built["account"],
                days=args.days,
                timeout=args.timeout,
            )
            print(f"  {mode} run: {results[mode]['seconds']:.2f} s", flush=True)
        report(built, results["time"], results["memory"], args.days)
        if args.profile:
            print("\ncProfile of the advance (profiled run; cProfile adds overhead):")
            print(results["profile"]["profile"])
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
