"""`make bench`: the simulator's HTTP benchmarks on 127.0.0.1, one module each, run in order
and summed up in one table with the verdicts against the targets.

1. throughput.py: `sandbank serve` against the ceiling of its own server stack (a bare ASGI
   app under the same uvicorn settings), POST and GET, with an Idempotency-Key, access log on.
2. fault_overhead.py (against the same simulator process): 0 vs 20 non-matching fault rules,
   and 500 ms of injected latency under 500 connections.
3. webhook_delivery.py (a fresh simulator and a local receiver): commit -> delivery latency at
   200 events/s, the sustained delivery rate of a burst, API req/s with webhooks on vs off.

harness.py holds what they share (servers, prepared data, wrk); `rehearsal.processes` starts and
stops the processes, for these benchmarks, the rehearsals and the end-to-end tests alike.

    .venv/bin/python bench/run.py [--duration 10] [--connections 32] [--threads 1]
    .venv/bin/python bench/run.py --skip-faults    # only the scenarios without fault rules
    .venv/bin/python bench/run.py --skip-webhooks  # without the webhook scenarios
    .venv/bin/python bench/run.py --profile        # where the time goes during a POST run

Every process it starts it also stops (by pid); every wait and every load run is bounded.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import fault_overhead
import throughput
import uvicorn
import webhook_delivery
from fault_overhead import LATENCY_CONNECTIONS, LATENCY_MS
from harness import (
    WARMUP_SECONDS,
    Comparison,
    Result,
    bench_app,
    ensure_wrk,
    fail,
    prepare,
    simulator,
    write_scripts,
)
from profiling import profile
from webhook_delivery import HookReport

from rehearsal.processes import NotReady


def stack() -> str:
    def has(module: str) -> bool:
        try:
            __import__(module)
        except ImportError:
            return False
        return True

    loop = "uvloop" if has("uvloop") else "asyncio"
    http = "httptools" if has("httptools") else "h11"
    return f"uvicorn {uvicorn.__version__} ({loop}, {http}), 1 worker"


def bench(args: argparse.Namespace) -> int:
    binary = ensure_wrk()
    load = (
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s (+{WARMUP_SECONDS}s warm-up)"
    )
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {stack()}; {load}")
    latency = not args.skip_faults and fault_overhead.raise_open_files(args.latency_connections)
    comparisons: list[Comparison] = []
    with tempfile.TemporaryDirectory(prefix="sandbank-bench-") as name:
        tmp = Path(name)
        with (
            bench_app("bare_app.py", tmp / "bare.log") as bare,
            simulator(tmp / "data", tmp / "sim.log") as sim,
        ):
            fx = prepare(sim.url)
            scripts = write_scripts(tmp, fx)
            results = throughput.run(binary, fx, scripts, args, bare=bare, sim=sim)
            if not args.skip_faults:
                comparisons = fault_overhead.run(
                    binary, fx, scripts, args, sim=sim, results=results, latency=latency
                )
        results["post_log"] = throughput.access_log(binary, tmp, args)
        journal = throughput.journal_cost(binary, tmp, args)
        for cmp in journal:
            results[f"{cmp.label}_off"] = cmp.row(loaded=False, tag="off")
            results[f"{cmp.label}_on"] = cmp.row(loaded=True, tag="on")
        hooks = None if args.skip_webhooks else webhook_delivery.run(binary, tmp, args, results)
    report(results, comparisons, args, hooks, journal)
    return 0


def report(
    results: dict[str, Result],
    comparisons: list[Comparison],
    args: argparse.Namespace,
    hooks: HookReport | None,
    journal: list[Comparison],
) -> None:
    print()
    print(
        f"{'scenario':<46} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'sock err':>8}"
        f" {'CPU us/req':>10}"
    )
    print("-" * 103)
    for r in results.values():
        cpu = f"{r.cpu_us:>10.0f}" if r.cpu_us is not None else f"{'':>10}"
        print(
            f"{r.scenario:<46} {r.rps:>9,.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f}"
            f" {r.non_2xx:>8} {r.socket_errors:>8} {cpu}"
        )
    print()
    throughput.report(results)
    throughput.report_journal(journal)
    if not args.skip_faults:
        fault_overhead.report(comparisons, results.get("latency"), args)
    if hooks is not None:
        webhook_delivery.report(hooks)
    if any(r.non_2xx or r.socket_errors for r in results.values()):
        print("warning: some requests failed; see the non-2xx and socket error columns")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="sandbank vs a bare ASGI ceiling, with wrk")
    p.add_argument("--duration", type=int, default=10, help="seconds per load run (default 10)")
    p.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    p.add_argument("--threads", type=int, default=1, help="wrk -t (default 1)")
    p.add_argument("--skip-faults", action="store_true", help="skip the fault-rule scenarios")
    p.add_argument("--skip-webhooks", action="store_true", help="skip the webhook scenarios")
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved rounds of each A/B: 0 vs 20 rules, webhooks off vs on (default 3)",
    )
    p.add_argument(
        "--latency-connections",
        type=int,
        default=LATENCY_CONNECTIONS,
        help=f"wrk -c of the {LATENCY_MS} ms latency run (default {LATENCY_CONNECTIONS})",
    )
    p.add_argument("--profile", action="store_true", help="profile a POST run instead")
    p.add_argument("--profiler", choices=["auto", "py-spy", "cprofile"], default="auto")
    p.add_argument("--top", type=int, default=15, help="profile lines to print (default 15)")
    p.add_argument(
        "--profile-request",
        choices=["post", "post-inline", "get-checkout"],
        default="post",
        help="what --profile loads: POST with a buyer id (default), with an inline buyer, GET",
    )
    args = p.parse_args(argv)
    if not 1 <= args.duration <= 60:
        fail("--duration must be 1..60 seconds")
    if not 1 <= args.rounds <= 10:
        fail("--rounds must be 1..10")
    if not 1 <= args.latency_connections <= 10_000:
        fail("--latency-connections must be 1..10000")
    try:
        return profile(args) if args.profile else bench(args)
    except NotReady as e:
        fail(str(e))


if __name__ == "__main__":
    raise SystemExit(main())
