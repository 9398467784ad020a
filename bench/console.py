"""`make bench`, the console's benchmark: what the console and the metrics cost the provider
API. Target: POST /v1/checkouts at most 3 % slower with them on and one browser-like client
streaming the whole request journal over Server-Sent Events.

Two `sandbank serve` processes on database files (so metrics are in prometheus_client's
multiprocess mode, as served), on 127.0.0.1:

- "off": `--no-metrics --no-console`;
- "on": metrics on, console on, and one client signed in to the console reading
  /_sandbox/console/traffic/stream (unfiltered: every request of the load goes down it) for as
  long as the load runs; it also scrapes /metrics every 5 s, as a Prometheus would.

wrk drives POST /v1/checkouts against each in interleaved rounds (best of each side, and the
median), with the server's CPU time per request, which other load on the machine disturbs
less than req/s. Every loop is bounded in time and count.

Then the same cost measured where it is paid, which a busy machine hardly disturbs: the
journal's listeners (metrics in multiprocess mode, and the live view with one stream open)
called for 100,000 journal entries in a fresh process, in CPU microseconds per request (CPU
time, as other processes do not inflate it), set against the server CPU time of one
POST /v1/checkouts measured above.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx
from harness import ADMIN, Comparison, ensure_wrk, fail, measure, prepare, write_scripts

from rehearsal.processes import NotReady, Server, free_port
from simulator.console.live import Live, LiveFilter
from simulator.domain.records import StoredCounts
from simulator.faults.journal import Entry, Journal
from simulator.metrics import Metrics

TARGET = 0.03
OBSERVED = 100_000  # journal entries the in-process measure feeds the listeners
SCRAPE_S = 5.0  # a short Prometheus scrape interval (the default is 15 s to a minute)
CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')
MAX_EVENTS = 10_000_000  # the SSE reader's bound in count (its bound in time: the stop event)


class JournalWatcher:
    """A client of the console: signs in, then reads the live journal (reconnecting where the
    server ends a stream, from the last id) and scrapes /metrics every SCRAPE_S, until stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.events = 0
        self.scrapes = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._scrape, daemon=True),
        ]

    def _login(self, c: httpx.Client) -> None:
        page = c.get("/_sandbox/console/login")
        found = CSRF.search(page.text)
        if found is None:
            raise RuntimeError("no login form")
        r = c.post(
            "/_sandbox/console/login",
            data={"csrf": found.group(1), "token": ADMIN},
            headers={"origin": self.url},
        )
        if "sandbank_console" not in c.cookies:
            raise RuntimeError(f"sign-in failed: {r.status_code}")

    def _read(self) -> None:
        last = "0"
        try:
            with httpx.Client(base_url=self.url, timeout=httpx.Timeout(30.0)) as c:
                self._login(c)
                while not self._stop.is_set() and self.events < MAX_EVENTS:
                    with c.stream(
                        "GET", "/_sandbox/console/traffic/stream", headers={"last-event-id": last}
                    ) as r:
                        for line in r.iter_lines():
                            if line.startswith("id: "):
                                last = line[4:]
                            elif line.startswith("data: "):
                                self.events += line.count('"seq":')
                            if self._stop.is_set() or self.events >= MAX_EVENTS:
                                return
        except (httpx.HTTPError, RuntimeError) as exc:
            self.error = f"the journal stream failed: {exc}"

    def _scrape(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10.0) as c:
            while not self._stop.wait(SCRAPE_S):
                if c.get("/metrics").status_code == 200:
                    self.scrapes += 1

    def __enter__(self) -> JournalWatcher:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=35)


def bench(args: argparse.Namespace) -> int:
    binary = ensure_wrk()
    tmp = Path(tempfile.mkdtemp(prefix="sandbank-bench-console-"))
    print(
        f"bench/console.py: the console and metrics on POST /v1/checkouts; wrk -c"
        f"{args.connections} -t{args.threads}, {args.duration} s runs, {args.rounds} rounds",
        flush=True,
    )
    common = ["--admin-token", ADMIN, "--seed", "7"]
    with ExitStack() as stack:
        off = stack.enter_context(
            Server(
                tmp / "off",
                free_port(),
                tmp / "off.log",
                [*common, "--no-metrics", "--no-console"],
            )
        )
        on = stack.enter_context(Server(tmp / "on", free_port(), tmp / "on.log", common))
        scripts = {}
        for name, server in (("off", off), ("on", on)):
            (tmp / name / "wrk").mkdir()
            scripts[name] = write_scripts(tmp / name / "wrk", prepare(server.url))["post"]
        comparison = Comparison("POST /v1/checkouts", [], [])
        events = 0
        for i in range(args.rounds):
            print(f" round {i + 1}/{args.rounds}", flush=True)
            comparison.without.append(
                measure(
                    binary,
                    f"{off.url}/v1/checkouts",
                    scripts["off"],
                    args,
                    "metrics and console off",
                    cpu_of=off.proc.pid,
                )
            )
            with JournalWatcher(on.url) as watcher:
                time.sleep(0.3)  # signed in and streaming before the load starts
                comparison.with_rules.append(
                    measure(
                        binary,
                        f"{on.url}/v1/checkouts",
                        scripts["on"],
                        args,
                        "on, one SSE client on the journal",
                        cpu_of=on.proc.pid,
                    )
                )
            if watcher.error:
                fail(watcher.error)
            events += watcher.events
            print(f"   SSE client: {watcher.events:,} journal entries, {watcher.scrapes} scrapes")
    streamed = sum(r.requests for r in comparison.with_rules)
    if events < streamed:
        fail(f"the SSE client got {events:,} entries of {streamed:,} requests")
    overhead = comparison.overhead()
    cpu = comparison.cpu_overhead()
    print()
    print(f"console + metrics cost: {overhead:+.1%} req/s ({comparison.figures('off', 'on')})")
    if cpu is not None:
        print(
            f"  server CPU per request: {comparison.median_cpu(False):.0f} -> "
            f"{comparison.median_cpu(True):.0f} us ({cpu:+.1%}, medians)"
        )
    median_p99 = statistics.median(r.p99_ms for r in comparison.with_rules)
    print(f"  p99 with the console streaming: {median_p99:.2f} ms (median of rounds)")
    verdict = "PASS" if overhead <= TARGET else "FAIL"
    print(f"  {verdict}: target <= {TARGET:.0%} of throughput (best of {args.rounds} each)")
    per_request = measure_observers(tmp)
    server_cpu = comparison.median_cpu(False)
    share = f" = {per_request / server_cpu:.1%} of the {server_cpu:.0f} us" if server_cpu else ""
    print(
        f"  listeners per request (metrics in multiprocess mode + one open stream, in-process,"
        f" {OBSERVED:,} entries): {per_request:.1f} us{share} a POST costs the server"
    )
    return 0


def _checkout_entry(i: int, at: datetime) -> Entry:
    """The journal entry of one successful POST /v1/checkouts (what the listeners observe)."""
    return Entry(
        i, at, "req", "acct", "POST", "/v1/checkouts", "createCheckout", 201, 1.5,
        None, None, False, None,
    )  # fmt: skip


def observer_cost() -> float:
    """Microseconds per journal entry of the listeners `create_app` installs with metrics and
    the console on, one stream open (run in a process whose PROMETHEUS_MULTIPROC_DIR is set)."""
    journal = Journal(10_000)
    metrics = Metrics(StoredCounts, _Wall())
    live = Live(journal)
    journal.listeners += [metrics.observe_request, live.publish]
    at = datetime(2026, 3, 1, tzinfo=UTC)

    async def run() -> float:
        stream = live.stream(LiveFilter(), 0)
        await anext(stream)  # subscribed: every entry goes to its queue too
        started = time.process_time()
        for i in range(OBSERVED):
            journal.record(_checkout_entry(i, at))
            if i % 1000 == 999:  # the stream takes its batches meanwhile, as it would
                while not live._queues[0].empty():
                    live._queues[0].get_nowait()
        spent = time.process_time() - started
        baseline_started = time.process_time()
        bare = Journal(10_000)
        for i in range(OBSERVED):
            bare.record(_checkout_entry(i, at))
        baseline = time.process_time() - baseline_started
        await stream.aclose()
        return (spent - baseline) / OBSERVED * 1e6

    return asyncio.run(run())


class _Wall:
    def now(self) -> datetime:
        return datetime(2026, 3, 1, tzinfo=UTC)


def measure_observers(tmp: Path) -> float:
    metrics_dir = tmp / "observer-metrics"
    metrics_dir.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    done = subprocess.run(
        [sys.executable, __file__, "--observer-cost"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        fail(f"the observer measure failed: {done.stderr.strip()}")
    return float(done.stdout.strip())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="the console and metrics' cost, with wrk")
    p.add_argument("--duration", type=int, default=5, help="seconds per load run (default 5)")
    p.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    p.add_argument("--threads", type=int, default=1, help="wrk -t (default 1)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--observer-cost", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.observer_cost:
        print(f"{observer_cost():.3f}")
        return 0
    if not 1 <= args.duration <= 60:
        fail("--duration must be 1..60 seconds")
    if not 1 <= args.rounds <= 10:
        fail("--rounds must be 1..10")
    try:
        return bench(args)
    except NotReady as e:
        fail(str(e))


if __name__ == "__main__":
    sys.exit(main())
