"""The SQLite WAL under sustained POST load, with and without its bound (`--wal-limit-mb`;
docs/performance.md, "Fourth pass — WAL bound and the POST tail").

Runs one `sandbank serve` per limit (default: 0, i.e. no bound, and the default 256 MB) and
loads them in turns, `wrk -t2 -c64` POST /v1/checkouts (inline buyer) for `--duration`
seconds each, `--rounds` times: the same machine, the same moments, so compare the servers
of one run. Prints per server: req/s, p99 (median over the rounds), the API process's CPU
per POST and its background processes' (dispatcher and scheduler; warm-up included), the
largest WAL file seen while loaded (sampled every 0.1 s), the WAL right after its last run,
the database's size, and the WAL file once the load has stopped for 2 s.

    .venv/bin/python bench/wal_bound.py [--duration 20] [--rounds 2] [--limits 0,256]
                                        [--baseline-python /work/wt/base/.venv/bin/python]

Every process it starts it also stops (by pid); every wait and load run is bounded.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import cpu_seconds, ensure_wrk, measure, simulator
from peers import Peer, sandbank_peer, scripts

MB = 1024 * 1024
SAMPLE_S = 0.1
IDLE_S = 2.0


def _children_cpu(pid: int) -> float:
    """CPU seconds of a server's child processes (the dispatcher and the scheduler)."""
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    return sum(cpu_seconds(int(kid)) or 0.0 for kid in kids)


@dataclass
class Run:
    label: str
    db: Path
    p99: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    background: list[float] = field(default_factory=list)  # children's CPU per POST
    wal_max: int = 0
    wal_end: int = 0  # right after its last run

    def wal(self) -> int:
        path = self.db.with_name(self.db.name + "-wal")
        return path.stat().st_size if path.exists() else 0


def _sample(run: Run, stop: threading.Event) -> None:
    while not stop.wait(SAMPLE_S):
        run.wal_max = max(run.wal_max, run.wal())


def _load(binary: str, args: argparse.Namespace, run: Run, peer: Peer, post: Path) -> None:
    """One measured POST run against one server, its WAL sampled meanwhile."""
    stop = threading.Event()
    sampler = threading.Thread(target=_sample, args=(run, stop))
    sampler.start()
    assert peer.pid is not None
    before = _children_cpu(peer.pid)
    try:
        result = measure(binary, peer.post_url, post, args,
                         f"{run.label} POST", cpu_of=peer.pid)  # fmt: skip
    finally:
        stop.set()
        sampler.join()
    run.wal_end = run.wal()
    spent = _children_cpu(peer.pid) - before  # includes the warm-up second
    run.background.append(spent / max(result.requests, 1) * 1e6)
    run.p99.append(result.p99_ms)
    run.rps.append(result.rps)
    run.cpu.append(result.cpu_us or 0.0)


def _report(runs: list[Run]) -> None:
    print(f"\n{'limit':>8} {'POST req/s':>10} {'p99 ms':>7} {'CPU us':>7} {'bg us':>6} "
          f"{'WAL max MB':>10} {'WAL end':>8} {'DB MB':>6} {'WAL idle':>9}")  # fmt: skip
    for run in runs:
        print(f"{run.label:>8} {statistics.median(run.rps):>10,.0f} "
              f"{statistics.median(run.p99):>7.1f} {statistics.median(run.cpu):>7.0f} "
              f"{statistics.median(run.background):>6.0f} "
              f"{run.wal_max / MB:>10.1f} {run.wal_end / MB:>8.1f} "
              f"{run.db.stat().st_size / MB:>6.1f} "
              f"{run.wal() / MB:>9.1f}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--limits", default="0,256", help="comma-separated --wal-limit-mb")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--baseline-python", help="also another tree's serve (no --wal-limit-mb), as 'base'"
    )
    args = parser.parse_args(argv)
    limits = [int(v) for v in args.limits.split(",")]
    binary = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="sandbank-wal-") as name:
        tmp = Path(name)
        servers = [
            simulator(tmp / f"d{mb}", tmp / f"d{mb}.log", more=["--wal-limit-mb", str(mb)])
            for mb in limits
        ]
        labels = [f"{mb} MB" if mb else "none" for mb in limits]
        dirs = [tmp / f"d{mb}" for mb in limits]
        if args.baseline_python:
            servers.append(
                simulator(tmp / "base", tmp / "base.log", python=[args.baseline_python, "-P"])
            )
            labels.append("base")
            dirs.append(tmp / "base")
        started = []
        try:
            for server in servers:
                started.append(server.__enter__())
            for server in started:
                server.wait_components()
            runs = [Run(label, d / "sandbank.db") for label, d in zip(labels, dirs, strict=True)]
            peers = [sandbank_peer(s.url, f"wal{i}", s.proc.pid) for i, s in enumerate(started)]
            posts = [scripts(tmp, p)[0] for p in peers]
            for round_ in range(args.rounds):
                print(f"round {round_ + 1}", flush=True)
                turn = list(zip(runs, peers, posts, strict=True))
                turn = turn[round_ % len(turn) :] + turn[: round_ % len(turn)]  # no fixed order
                for run, peer, post in turn:
                    _load(binary, args, run, peer, post)
            time.sleep(IDLE_S)
            _report(runs)
        finally:
            for server in reversed(started):
                server.__exit__(None, None, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
