"""The p99 under 64 connections, and what the server was doing meanwhile (issue #18, item 3).

Runs `sandbank serve` (SQLite file, one worker; this tree, or another with `--tree`) under
`bench/tail_hooks.py`, drives it with wrk -t2 -c64 (POST /v1/checkouts with an inline buyer, or
GET /v1/checkouts/{id}) for a warm-up and `--rounds` runs, and prints, beside each run's
p50/p99 and CPU per request, what the hooks saw over the whole load: full collections, the
checkpoint thread's rounds, the WAL frames written per request, the WAL restarts past the
bound and the longest event-loop turns. A request's latency under a closed loop of 64 is
about the turns it waits through, so a p99 far above the p50 points at the longest pauses
listed here.

    .venv/bin/python bench/tail.py [--kind post|get] [--rounds 3] [--duration 8]
                                   [--tree PATH]   # PATH/.venv/bin/python, PATH's code

Every process it starts it also stops (by pid); every load run is bounded.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from harness import BENCH, WARMUP_SECONDS, ensure_wrk, measure, simulator, wrk
from peers import sandbank_peer, scripts


def summary(trace: Path, requests: int) -> list[str]:
    """What the hooks recorded, over `requests` requests (warm-up included)."""
    rows: dict[str, list[tuple[float, str]]] = {}
    for line in trace.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3:
            rows.setdefault(parts[1], []).append((float(parts[2]), " ".join(parts[3:])))

    def stats(kind: str) -> str:
        found = [ms for ms, _ in rows.get(kind, [])]
        if not found:
            return "none"
        return (
            f"{len(found):>4}  mean {statistics.fmean(found):6.1f} ms"
            f"  max {max(found):6.1f} ms  total {sum(found):7.0f} ms"
        )

    frames, last = 0, 0
    for _, extra in rows.get("checkpoint", []):
        now = int(extra)
        frames += now - last if now >= last else now  # smaller: the WAL restarted meanwhile
        last = now
    turns = sorted((ms for ms, _ in rows.get("turn", [])), reverse=True)
    longest = ", ".join(f"{t:.0f}" for t in turns[:5])
    return [
        f"  full collections     {stats('gc2')}",
        f"  checkpoint rounds    {stats('checkpoint')}",
        f"  WAL frames/request   {frames / requests:6.2f}  ({frames:,} frames, "
        f"{requests:,} requests)"
        if requests
        else "  WAL frames/request   -",
        f"  WAL restarts         {stats('restart')}",
        f"    writes held up     {stats('stall')}",
        f"  loop turns > 10 ms   {len(turns):>4}  longest {longest} ms",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("post", "get"), default="post")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tree", type=Path, help="another checkout with its own .venv")
    args = parser.parse_args(argv)
    if args.rounds < 1 or not 1 <= args.duration <= 120:
        parser.error("--rounds must be >= 1 and --duration 1..120")
    python = str(args.tree / ".venv" / "bin" / "python") if args.tree else sys.executable
    binary = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="sandbank-tail-") as name:
        tmp = Path(name)
        trace = tmp / "trace.txt"
        hooks = [python, "-P", str(BENCH / "tail_hooks.py"), str(trace)]
        with simulator(tmp / "data", tmp / "sim.log", python=hooks) as sim:
            sim.wait_components()
            peer = sandbank_peer(sim.url, pid=sim.proc.pid)
            post, get = scripts(tmp, peer)
            url, script = (peer.post_url, post) if args.kind == "post" else (peer.get_url, get)
            load = f"wrk -t{args.threads} -c{args.connections}"
            print(f"tail: {args.kind.upper()} under {load}, {args.rounds} runs of "
                  f"{args.duration} s after a warm-up", flush=True)  # fmt: skip
            requests = wrk(binary, url, script, args, seconds=WARMUP_SECONDS,
                           scenario="warm-up").requests  # fmt: skip
            runs = []
            for n in range(args.rounds):
                runs.append(measure(binary, url, script, args, f"{args.kind} run {n + 1}",
                                    warm_up=False, cpu_of=sim.proc.pid))  # fmt: skip
                requests += runs[-1].requests
        print(f"  p99 median of the runs {statistics.median(r.p99_ms for r in runs):.1f} ms")
        print("\n".join(summary(trace, requests)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
