"""`make bench` (third part): kill -9 of `sandbank serve` under write load, again and again.

Each cycle starts `sandbank serve --workers N` on 127.0.0.1 (the same port and data directory
every time), drives idempotent writes (`POST /v1/buyers`, each with its own Idempotency-Key)
from a few threads, and SIGKILLs the server's main process mid-load. It then measures how long
until no process of that server is left (workers, dispatcher, scheduler: they must die with
their parent) and how long the restart on the same port takes to answer health 200. At the end
every write the server acknowledged (201) is read back from the last server: lost must be 0.

    .venv/bin/python bench/reliability.py [--cycles 5] [--workers 2] [--threads 8]

Bounded: at most --max-writes acknowledged writes per cycle and --load-seconds of load before
the kill; each server start waits at most 20 s. Only processes it started are killed, by pid.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from processes import alive, descendants, wait_for

from rehearsal.processes import NotReady, Server, free_port

ADMIN = "sbadm_bench_reliability"


class Load:
    """Threads writing buyers until stopped or `max_writes` are acknowledged."""

    def __init__(self, url: str, api_key: str, cycle: int, threads: int, max_writes: int) -> None:
        self.acknowledged: list[str] = []
        self.failed = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.max_writes = max_writes
        self.threads = [
            threading.Thread(target=self._run, args=(url, api_key, f"c{cycle}t{t}"), daemon=True)
            for t in range(threads)
        ]
        for thread in self.threads:
            thread.start()

    def _run(self, url: str, api_key: str, prefix: str) -> None:
        headers = {"Authorization": f"Bearer {api_key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=5.0) as client:
            for n in range(self.max_writes):
                if self.stop.is_set() or len(self.acknowledged) >= self.max_writes:
                    return
                body = {"legal_name": f"Bench {prefix}-{n} LLC", "email": f"{prefix}-{n}@b.test"}
                try:
                    r = client.post(
                        "/v1/buyers", json=body, headers={"Idempotency-Key": f"{prefix}-{n}"}
                    )
                except httpx.TransportError:
                    with self.lock:
                        self.failed += 1
                    if self.stop.is_set():
                        return
                    time.sleep(0.01)
                    continue
                if r.status_code == 201:
                    with self.lock:
                        self.acknowledged.append(r.json()["id"])

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)


def _start(data: Path, port: int, workers: int, log: Path) -> tuple[Server, float]:
    started = time.monotonic()
    server = Server(data, port, log, ["--admin-token", ADMIN, "--workers", str(workers)])
    server.wait_healthy()
    return server, (time.monotonic() - started) * 1000


def main() -> int:
    try:
        return _cycles()
    except NotReady as exc:
        print(f"bench/reliability.py: error: {exc}", file=sys.stderr)
        return 2


def _cycles() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cycles", type=int, default=5)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--load-seconds", type=float, default=1.5, help="load before each kill")
    p.add_argument("--max-writes", type=int, default=5000, help="acknowledged writes per cycle")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="sandbank-bench-rel-") as tmp:
        data, port = Path(tmp) / "data", free_port()
        server, _ = _start(data, port, args.workers, Path(tmp) / "server-0.log")
        auth = {"Authorization": f"Bearer {ADMIN}"}
        r = httpx.post(f"{server.url}/_sandbox/accounts", json={"name": "bench"}, headers=auth)
        r.raise_for_status()
        api_key = r.json()["api_key"]
        acknowledged: list[str] = []
        gone_ms: list[float] = []
        restart_ms: list[float] = []
        rates: list[float] = []
        left_over = 0
        try:
            for cycle in range(args.cycles):
                tree = descendants(server.proc.pid)
                load = Load(server.url, api_key, cycle, args.threads, args.max_writes)
                began = time.monotonic()
                wait_for(
                    lambda load=load, began=began: (
                        len(load.acknowledged) >= args.max_writes
                        or time.monotonic() - began >= args.load_seconds
                    ),
                    args.load_seconds + 1,
                    0.01,
                )
                os.kill(server.proc.pid, signal.SIGKILL)  # mid-load, no warning
                killed = time.monotonic()
                server.proc.wait(10)
                if not wait_for(lambda tree=tree: not alive(tree), 10, 0.005):
                    left_over += len(alive(tree))
                gone_ms.append((time.monotonic() - killed) * 1000)
                load.finish()
                acknowledged += load.acknowledged
                rates.append(len(load.acknowledged) / max(killed - began, 1e-9))
                server, took = _start(data, port, args.workers, Path(tmp) / f"s{cycle + 1}.log")
                restart_ms.append(took)
                print(
                    f"cycle {cycle + 1}: {len(tree)} child processes, "
                    f"{len(load.acknowledged)} writes acknowledged, all gone "
                    f"{gone_ms[-1]:.0f} ms after kill -9, restart healthy in {took:.0f} ms",
                    flush=True,
                )
            lost = 0
            with httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {api_key}"}, timeout=10
            ) as api:
                for buyer in acknowledged:
                    if api.get(f"/v1/buyers/{buyer}").status_code != 200:
                        lost += 1
        finally:
            server.kill()
    print(
        f"kill -9 under load: {args.cycles} cycles, {args.workers} workers, "
        f"{len(acknowledged)} acknowledged writes, lost = {lost}, processes left = {left_over}"
    )
    print(
        f"  no process left after kill -9: median {statistics.median(gone_ms):.0f} ms, "
        f"max {max(gone_ms):.0f} ms; restart on the same port healthy: median "
        f"{statistics.median(restart_ms):.0f} ms, max {max(restart_ms):.0f} ms; "
        f"load {statistics.median(rates):.0f} writes/s (median); load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    return 0 if lost == 0 and left_over == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
