"""`make bench-scenarios`: the whole rehearsal catalogue at its default size, timed.

The issue's target: every scenario of `scenarios/` at its default size (its own workload and
speed, not the CI `--fast` variant) in under 5 minutes in total on this 2-core machine. One
simulator process serves them all (one account each); each scenario starts its own integration.
Scenarios run `--parallel` at a time (default 3): much of a rehearsal's wall time is the
integration's own wall-clock waits (client backoffs, breaker cooldowns), not CPU.

Prints, per scenario: status, wall seconds, account-clock span of the method and recovery,
the simulated-to-wall ratio, orders placed and shop requests; then the total wall time and
whether the target is met. Exit status 1 if a scenario did not pass or the target was missed.

    .venv/bin/python bench/scenarios.py [--fast] [--parallel 3] [--only NAME ...] [--target 300]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from rehearsal.cli import catalogue
from rehearsal.env import Simulator
from rehearsal.model import format_ms, load
from rehearsal.result import RunResult
from rehearsal.runner import Options, Runner


async def run_catalogue(
    paths: list[Path], *, fast: bool, parallel: int, work: Path, simulator: Simulator
) -> list[tuple[Path, RunResult]]:
    gate = asyncio.Semaphore(parallel)

    async def one(path: Path) -> tuple[Path, RunResult]:
        async with gate:
            options = Options(fast=fast, workdir=work / path.stem)
            return path, await Runner(load(path), str(path), options, simulator=simulator).run()

    return list(await asyncio.gather(*(one(p) for p in paths)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fast", action="store_true", help="the CI size instead of the default")
    p.add_argument("--parallel", type=int, default=3, help="scenarios at once (default 3)")
    p.add_argument("--only", nargs="*", default=None, metavar="NAME", help="these scenarios")
    p.add_argument("--target", type=float, default=300.0, help="seconds for the whole catalogue")
    args = p.parse_args()
    paths = [c for c in catalogue() if args.only is None or c.stem in args.only]
    if not paths:
        print("no scenarios", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-scenarios-") as tmp:
        work = Path(tmp)
        simulator = Simulator.start(work)
        try:
            started = time.monotonic()
            results = asyncio.run(
                run_catalogue(
                    paths, fast=args.fast, parallel=max(1, args.parallel), work=work,
                    simulator=simulator,
                )
            )  # fmt: skip
            total = time.monotonic() - started
        finally:
            simulator.stop()
    size = "fast (CI)" if args.fast else "default"
    print(f"Rehearsal catalogue, {size} size, {args.parallel} at a time, one simulator")
    print(f"{'scenario':<30} {'status':<10} {'wall s':>7} {'clock':>9} {'sim/wall':>9} "
          f"{'orders':>6} {'requests':>8}")  # fmt: skip
    ok = True
    for path, r in sorted(results, key=lambda pr: pr[0].stem):
        ok &= r.status == "passed"
        print(
            f"{path.stem:<30} {r.status:<10} {r.duration_s:>7.1f} "
            f"{format_ms(int(r.simulated_s) * 1000):>9} {r.figures.get('simulated_to_wall', 0):>9} "
            f"{r.figures.get('orders_placed', 0):>6} {r.figures.get('shop_requests', 0):>8}"
        )
    met = total < args.target
    print(
        f"total wall time {total:.1f} s; target < {args.target:g} s: {'met' if met else 'MISSED'}"
    )
    return 0 if ok and met else 1


if __name__ == "__main__":
    raise SystemExit(main())
