"""Prometheus metrics of the simulator (`GET /metrics`) and the short in-memory history the
console charts.

Where each figure comes from, and why there:

- Requests, latency, idempotent replays: the request journal (`faults.journal`) already
  records every `/v1` request with its operation, status, fault and latency; `Metrics` listens
  to it (`observe_request`) instead of timing each request a second time.
- Webhook attempts by outcome and their latency: the dispatcher's `on_attempt` hook, in the
  process that sends them (the webhook process when serving on a database file).
- Clock advances and jobs run: `ProviderService`'s `on_advance` and `on_job` hooks.
- Backlog per endpoint, deliveries by status, disabled endpoints, settlements, disputes, drift
  injections: counted in the database at scrape time (`store.stats`); the database is what
  every process shares, so these are right whichever worker answers the scrape.

Several processes (`--workers > 1`, and the webhook process): `sandbank serve` points
`PROMETHEUS_MULTIPROC_DIR` at DATA_DIR/metrics, emptied at start, before anything imports
prometheus_client; every process's counters and histograms then live in memory-mapped files
there, and a scrape sums them (prometheus_client's multiprocess mode). Chosen over summing
per-worker figures through the store because it costs a request no database write, and the
only gauges are the stored counts above (multiprocess gauges need a mode each and go stale
with dead workers; these cannot).

Each `Metrics` has its own `CollectorRegistry` (never the process-wide default), so tests and
several apps in one process do not collide.

    sandbank_requests_total{operation,status,fault}     counter    /v1 requests answered
    sandbank_request_duration_seconds{operation}        histogram  time in the simulator
    sandbank_idempotent_replays_total{operation}        counter    answers replayed from a key
    sandbank_webhook_attempts_total{outcome}            counter    delivery attempts
    sandbank_webhook_attempt_duration_seconds           histogram  receiver's answer time
    sandbank_webhook_backlog{account,endpoint}          gauge      pending deliveries
    sandbank_webhook_deliveries{status}                 gauge      deliveries stored, by status
    sandbank_webhook_endpoints{status}                  gauge      endpoints (disabled ones too)
    sandbank_clock_advances_total                       counter    account clock advances
    sandbank_clock_advanced_seconds_total               counter    virtual time advanced
    sandbank_jobs_run_total{kind}                       counter    scheduled jobs run
    sandbank_reads_total{answer}                        counter    reusable GETs: reused, read
    sandbank_settlements{status}                        gauge      settlements stored
    sandbank_disputes{status}                           gauge      disputes stored
    sandbank_drift_injections{kind}                     gauge      drift injected into reports
"""

from __future__ import annotations

import asyncio
import glob
import math
import os
import struct
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response

from simulator.clock import WallClock
from simulator.domain.records import StoredCounts
from simulator.faults.journal import Entry
from simulator.metrics_dir import MULTIPROC_ENV

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# From a cached read (~1 ms) to a hang the client gives up on.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
WEBHOOK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
OUTCOMES = ("2xx", "4xx", "5xx", "faulted")
# The console's latency percentiles come from these per-minute buckets (upper bounds, ms).
RECENT_BOUNDS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 30_000, math.inf)
RECENT_MINUTES = 60
BACKLOG_SAMPLES = 360
BACKLOG_EVERY_S = 10.0


@dataclass(slots=True)
class _Minute:
    minute: int  # wall-clock minutes since the epoch
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    latency: list[int] = field(default_factory=lambda: [0] * len(RECENT_BOUNDS_MS))


def outcome_of(entry: Entry) -> str:
    if entry.fault is not None:
        return "faulted"
    if entry.status is None or entry.status >= 500:
        return "5xx"
    return "4xx" if entry.status >= 400 else "2xx"


class Recent:
    """The last hour, minute by minute, in this process: request outcomes and a latency
    histogram per minute (bounded deques), and webhook backlog samples."""

    def __init__(self, minutes: int = RECENT_MINUTES) -> None:
        self.minutes: deque[_Minute] = deque(maxlen=minutes)
        self.backlog: deque[tuple[float, int]] = deque(maxlen=BACKLOG_SAMPLES)

    def add(self, entry: Entry) -> None:
        minute = int(entry.at.timestamp()) // 60
        last = self.minutes[-1] if self.minutes else None
        if last is None or minute > last.minute:
            last = _Minute(minute)
            self.minutes.append(last)
        last.outcomes[outcome_of(entry)] += 1
        last.latency[bisect_left(RECENT_BOUNDS_MS, entry.latency_ms)] += 1

    def series(self, now_s: float) -> dict[str, Any]:
        """The last hour up to `now_s` (empty minutes as zeros), for the charts."""
        end = int(now_s) // 60
        start = end - self.minutes.maxlen + 1 if self.minutes.maxlen else end
        by_minute = {m.minute: m for m in self.minutes if m.minute >= start}
        minutes = list(range(start, end + 1))
        out: dict[str, Any] = {
            "minutes": [m * 60 for m in minutes],
            "outcomes": {o: [0] * len(minutes) for o in OUTCOMES},
            "latency_ms": {"p50": [], "p95": [], "p99": []},
        }
        for i, m in enumerate(minutes):
            found = by_minute.get(m)
            for o in OUTCOMES:
                out["outcomes"][o][i] = found.outcomes[o] if found else 0
            for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
                out["latency_ms"][name].append(percentile(found.latency, q) if found else None)
        out["backlog"] = [[t, n] for t, n in self.backlog if t >= start * 60]
        return out


def percentile(counts: list[int], q: float) -> float | None:
    """The upper bound (ms) of the bucket holding the q-th request; None without requests.
    (The open last bucket reports its lower bound.)"""
    total = sum(counts)
    if not total:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(counts):
        seen += n
        if seen >= rank and n:
            bound = RECENT_BOUNDS_MS[i]
            return float(bound if bound != math.inf else RECENT_BOUNDS_MS[i - 1])
    return float(RECENT_BOUNDS_MS[-2])


class ProcessFilesCollector:
    """Every process's counters and histograms, summed from DATA_DIR/metrics — skipping a file
    that cannot be read yet.

    prometheus_client's own `MultiProcessCollector` fails the whole scrape on one unreadable
    file, and a process that has just created its file (a worker starting, the webhook process
    sending its first attempt) leaves it empty for a moment: the scrape then raised
    `struct.error` and `/metrics` answered 500. A file only grows once written, so one that
    reads whole now is merged; one that does not is left out of this scrape and counted by the
    next (its process has counted nothing yet, or at most the request in flight).
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def readable(self) -> list[str]:
        files = []
        for name in sorted(glob.glob(os.path.join(self.path, "*.db"))):
            try:
                MmapedDict.read_all_values_from_file(name)  # type: ignore[no-untyped-call]
            except (OSError, struct.error, ValueError, UnicodeDecodeError):
                continue  # being created, or gone (a file of an earlier run removed at start)
            files.append(name)
        return files

    def collect(self) -> Iterator[Metric]:
        merged: Iterator[Metric] = MultiProcessCollector.merge(self.readable(), accumulate=True)  # type: ignore[no-untyped-call]
        yield from merged


class StoreCollector:
    """The gauges counted in the database at scrape time."""

    def __init__(self, stored: Callable[[], StoredCounts]) -> None:
        self.stored = stored

    def collect(self) -> Iterator[Metric]:
        counts = self.stored()
        backlog = GaugeMetricFamily(
            "sandbank_webhook_backlog",
            "Webhook deliveries waiting to be sent (pending), per endpoint",
            labels=["account", "endpoint"],
        )
        for (account, endpoint), n in sorted(counts.backlog.items()):
            backlog.add_metric([account, endpoint], n)
        yield backlog
        for name, help_text, label, values in (
            ("webhook_deliveries", "Webhook deliveries stored", "status", counts.deliveries),
            ("webhook_endpoints", "Webhook endpoints", "status", counts.endpoints),
            ("settlements", "Settlements stored", "status", counts.settlements),
            ("disputes", "Disputes stored", "status", counts.disputes),
            (
                "drift_injections",
                "Deviations injected into reports",
                "kind",
                counts.drift_injections,
            ),
        ):
            family = GaugeMetricFamily(f"sandbank_{name}", help_text, labels=[label])
            for key, n in sorted(values.items()):
                family.add_metric([key], n)
            yield family


class ReadCounts(Protocol):
    """What the metrics read of `simulator.api.reads.ReadCache` (a protocol: no import)."""

    hits: int
    misses: int


class Metrics:
    def __init__(self, stored: Callable[[], StoredCounts], wall: WallClock) -> None:
        self.stored = stored
        self.wall = wall
        self.recent = Recent()
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "sandbank_requests",
            "/v1 requests answered, by operation, status and fault effect",
            ["operation", "status", "fault"],
            registry=r,
        )
        self.latency = Histogram(
            "sandbank_request_duration_seconds",
            "Time a /v1 request spent in the simulator (injected latency included)",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.replays = Counter(
            "sandbank_idempotent_replays",
            "Answers replayed from a saved Idempotency-Key result",
            ["operation"],
            registry=r,
        )
        self.webhook_attempts = Counter(
            "sandbank_webhook_attempts",
            "Webhook delivery attempts by outcome",
            ["outcome"],
            registry=r,
        )
        self.webhook_latency = Histogram(
            "sandbank_webhook_attempt_duration_seconds",
            "Time a webhook receiver took to answer an attempt",
            buckets=WEBHOOK_BUCKETS,
            registry=r,
        )
        self.clock_advances = Counter(
            "sandbank_clock_advances", "Account clock advances", registry=r
        )
        self.clock_advanced = Counter(
            "sandbank_clock_advanced_seconds",
            "Virtual seconds the account clocks advanced",
            registry=r,
        )
        self.jobs = Counter(
            "sandbank_jobs_run", "Scheduled jobs run, by kind", ["kind"], registry=r
        )
        self.reads = Counter(
            "sandbank_reads",
            "GETs whose answer may be reused: answered from the last read (reused) or read",
            ["answer"],
            registry=r,
        )
        # The app's `ReadCache` (`simulator.api.reads`): its counts are added at each flush.
        self.read_cache: ReadCounts | None = None
        self._reads_seen = (0, 0)
        r.register(StoreCollector(stored))
        # Labelled children, cached: `labels()` takes a lock and builds a key every call.
        self._request_children: dict[tuple[str, str, str], Any] = {}
        self._latency_children: dict[str, Any] = {}
        self._pending: list[Entry] | None = None  # observed this turn, not yet counted
        self._pending_loop: asyncio.AbstractEventLoop | None = None  # whose turn that is
        self._last_backlog_s = -math.inf

    # --- observers (hot path: a list append; counted once per event-loop turn) --------------
    def observe_request(self, entry: Entry) -> None:
        """Count the request with the others of this event-loop turn, at its end (`flush`).

        Each increment of prometheus_client's multiprocess values takes a lock, checks the
        pid and writes the memory-mapped file, and a request made three (count, latency sum,
        latency bucket): a turn under load serves dozens of requests, which now share them.
        Every scrape and chart flushes first, so what they show counts every request
        answered; another process's scrape sees a request at most one turn after its
        response (it was counted after the response before, too)."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # outside an event loop: at once
            loop = None
        if self._pending is not None and loop is self._pending_loop:
            self._pending.append(entry)
            return
        self.flush()  # what another loop left (one stopped before its turn ended)
        self._pending = [entry]
        if loop is None:
            self.flush()
            return
        self._pending_loop = loop
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Apply the requests observed since the last flush: one increment per label set."""
        self._count_reads()
        pending, self._pending = self._pending, None
        if not pending:
            return
        counts: dict[tuple[str, str, str], int] = {}
        latencies: dict[str, list[float]] = {}
        replays: dict[str, int] = {}
        for entry in pending:
            operation = entry.operation or "unmatched"
            status = str(entry.status) if entry.status is not None else "closed"
            fault = entry.fault["effect"] if entry.fault is not None else "none"
            key = (operation, status, fault)
            counts[key] = counts.get(key, 0) + 1
            latencies.setdefault(operation, []).append(entry.latency_ms / 1000)
            if entry.replayed:
                replays[operation] = replays.get(operation, 0) + 1
            self.recent.add(entry)
        for key, n in counts.items():
            child = self._request_children.get(key)
            if child is None:
                child = self._request_children[key] = self.requests.labels(*key)
            child.inc(n)
        for operation, seconds in latencies.items():
            histogram = self._latency_children.get(operation)
            if histogram is None:
                histogram = self._latency_children[operation] = self.latency.labels(operation)
            _observe_all(histogram, seconds)
        for operation, n in replays.items():
            self.replays.labels(operation).inc(n)

    def _count_reads(self) -> None:
        if self.read_cache is None:
            return
        now = (self.read_cache.hits, self.read_cache.misses)
        seen, self._reads_seen = self._reads_seen, now
        for answer, n in (("reused", now[0] - seen[0]), ("read", now[1] - seen[1])):
            if n:
                self.reads.labels(answer).inc(n)

    def observe_attempt(self, outcome: str, latency_ms: float) -> None:
        self.webhook_attempts.labels(outcome).inc()
        self.webhook_latency.observe(latency_ms / 1000)

    def observe_advance(self, seconds: float, finished: bool = True) -> None:
        """A clock advance runs in steps (`simulator.stepping`): each adds its seconds, and the
        advance counts once, at its last step."""
        if finished:
            self.clock_advances.inc()
        self.clock_advanced.inc(seconds)

    def observe_job(self, kind: str) -> None:
        self.jobs.labels(kind).inc()

    # --- reading -----------------------------------------------------------------------------
    def sample_backlog(self) -> StoredCounts:
        """The stored counts now; also a backlog sample for the chart, at most every 10 s."""
        counts = self.stored()
        now = self.wall.now().timestamp()
        if now - self._last_backlog_s >= BACKLOG_EVERY_S:
            self._last_backlog_s = now
            self.recent.backlog.append((now, sum(counts.backlog.values())))
        return counts

    def charts(self) -> dict[str, Any]:
        self.flush()
        self.sample_backlog()
        return self.recent.series(self.wall.now().timestamp())

    def exposition(self) -> bytes:
        """The text format: this registry, or every process's files in multiprocess mode."""
        self.flush()
        self.sample_backlog()
        path = os.environ.get(MULTIPROC_ENV)
        if not path:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        registry.register(ProcessFilesCollector(path))
        registry.register(StoreCollector(self.stored))
        return generate_latest(registry)


def _observe_all(histogram: Any, amounts: list[float]) -> None:
    """`histogram.observe(a)` for each of `amounts`, with one increment per bucket hit and one
    of the sum (prometheus_client's `Histogram` child: `_upper_bounds` ends with +Inf, a value
    counts in the first bucket whose bound is >= it, as `observe` does)."""
    bounds = histogram._upper_bounds
    hits = [0] * len(bounds)
    for amount in amounts:
        hits[bisect_left(bounds, amount)] += 1
    histogram._sum.inc(math.fsum(amounts))
    for bucket, n in zip(histogram._buckets, hits, strict=True):
        if n:
            bucket.inc(n)


def endpoint(metrics: Metrics | None) -> Callable[[Request], Any]:
    """`GET /metrics` (no token: what it shows names no secret and no account's data beyond
    endpoint ids; 404 when the server runs with `--no-metrics`)."""

    async def serve(request: Request) -> Response:
        if metrics is None:
            return Response("metrics are off (--no-metrics)\n", 404, media_type="text/plain")
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    return serve
