"""Prometheus metrics of the order-to-cash service: the domain KPIs and the provider's health.

Each `Metrics` has its own `CollectorRegistry` (never the process-wide default one), so tests
and several services in one process do not collide. Counters and histograms move where the
events happen (`OrderToCash`, the `ResilientClient` through its observer hook); breaker states
and open holds are read at scrape time from the `Breakers` and the `OrderBook` themselves, so
they can never drift from the truth. A KPI that nothing has measured yet exposes its HELP and
TYPE but no sample: no made-up zero.

    sandbank_integration_approval_seconds               histogram  order placed -> authorization
    sandbank_integration_orders_total{state}            counter    ERP state transitions, by state
    sandbank_integration_provider_attempts_total{family,verdict}  counter  HTTP attempts
    sandbank_integration_provider_retries_total{family} counter    retries the client decided on
    sandbank_integration_breaker_state{family}          gauge      0 closed, 1 half-open, 2 open
    sandbank_integration_holds_open{kind}               gauge      held provider work, by kind
    sandbank_integration_reconciliation_mismatch_rate   gauge      of the last reconciliation
    sandbank_integration_settlement_lag_seconds         histogram  capture -> payout
    sandbank_integration_disputed_ratio                 gauge      disputed / captured orders

The last three are recorded by a reconciliation run (`integration.settlements`).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from integration.breaker import Breakers, State
from integration.client import ResilientClient
from integration.orders import HoldKind, OrderBook
from integration.reconcile import Report
from integration.retry import Verdict

PREFIX = "sandbank_integration"
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # text/plain; version=0.0.4; charset=utf-8
BREAKER_LEVELS = {State.CLOSED: 0.0, State.HALF_OPEN: 1.0, State.OPEN: 2.0}

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
# A buyer accepts in seconds (instant decision) to days (a manual review, an AP approval).
APPROVAL_BUCKETS = (1.0, 5.0, 15.0, MINUTE, 5 * MINUTE, 15 * MINUTE, HOUR, 4 * HOUR, DAY, 3 * DAY)
# A capture settles (is paid out) in hours to weeks.
SETTLEMENT_BUCKETS = (HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 3 * DAY, 5 * DAY, 7 * DAY, 14 * DAY)

NOT_YET = " No sample until a reconciliation has run."


class Metrics:
    """The service's metrics on a registry of their own; `render()` is the scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.approval_seconds = Histogram(
            f"{PREFIX}_approval_seconds",
            "Approval velocity: seconds from placing an order to seeing it authorized "
            "(the service's injected clock).",
            buckets=APPROVAL_BUCKETS,
            registry=self.registry,
        )
        self.orders = Counter(
            f"{PREFIX}_orders",
            "ERP orders entering each state (one count per transition into it).",
            ["state"],
            registry=self.registry,
        )
        self.attempts = Counter(
            f"{PREFIX}_provider_attempts",
            "HTTP attempts at the provider, by operation family and retry verdict "
            "(success, retry, retry_ambiguous, final).",
            ["family", "verdict"],
            registry=self.registry,
        )
        self.retries = Counter(
            f"{PREFIX}_provider_retries",
            "Retries the resilient client decided on (an attempt followed by a backoff wait).",
            ["family"],
            registry=self.registry,
        )
        self.settlement_lag_seconds = Histogram(
            f"{PREFIX}_settlement_lag_seconds",
            "Seconds from a capture to the payout of the settlement that carries it, one "
            "observation per capture line of each paid settlement a reconciliation reads. "
            "Empty (count 0) until a reconciliation has run.",
            buckets=SETTLEMENT_BUCKETS,
            registry=self.registry,
        )
        self._breakers: list[Breakers] = []
        self._book: OrderBook | None = None
        self._mismatch_rate: float | None = None
        self._disputed_ratio: float | None = None
        self._lagged: set[str] = set()  # settlements whose lags were observed
        self.registry.register(_ScrapeTime(self))

    # --- wiring ------------------------------------------------------------------------------
    def watch_client(self, client: ResilientClient) -> None:
        """Count the client's attempts and retries, and report its breakers' states."""
        client.observer = self
        self.watch_breakers(client.breakers)

    def watch_breakers(self, breakers: Breakers) -> None:
        if all(b is not breakers for b in self._breakers):
            self._breakers.append(breakers)

    def watch_holds(self, book: OrderBook) -> None:
        self._book = book

    # --- events ------------------------------------------------------------------------------
    def order_entered(self, state: str) -> None:
        self.orders.labels(state=str(state)).inc()

    def approved_after(self, seconds: float) -> None:
        self.approval_seconds.observe(max(seconds, 0.0))

    def attempt(self, family: str, verdict: Verdict) -> None:
        """`integration.client.CallObserver`: one HTTP attempt and its verdict."""
        self.attempts.labels(family=family, verdict=verdict.value).inc()

    def retry(self, family: str) -> None:
        """`integration.client.CallObserver`: the client waits and tries again."""
        self.retries.labels(family=family).inc()

    def record_reconciliation(self, report: Report) -> None:
        """Whoever runs `reconcile` reports here; the gauge shows the last run's rate."""
        self._mismatch_rate = report.mismatch_rate

    def observe_settlement_lag(self, seconds: float) -> None:
        self.settlement_lag_seconds.observe(max(seconds, 0.0))

    def observe_settlement_lags(self, settlement_id: str, seconds: Iterable[float]) -> None:
        """The lags of one paid settlement's captures, once per settlement (a second
        reconciliation that reads it again observes nothing)."""
        if settlement_id in self._lagged:
            return
        self._lagged.add(settlement_id)
        for value in seconds:
            self.observe_settlement_lag(value)

    def record_disputes(self, disputed: int, captured: int) -> None:
        """Orders disputed among those captured (nothing is recorded for no captured order)."""
        if captured > 0:
            self._disputed_ratio = disputed / captured

    # --- the scrape --------------------------------------------------------------------------
    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ScrapeTime:
    """The gauges read when scraped (breakers, holds) or known only once measured."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        breakers, holds, mismatch, disputed = self._families()
        m = self.metrics
        for group in m._breakers:
            for family, state in group.states().items():
                breakers.add_metric([family], BREAKER_LEVELS[state])
        if m._book is not None:
            found = Tally(h.kind for h in m._book.holds(open_only=True))
            for kind in HoldKind:
                holds.add_metric([kind.value], float(found[kind]))
        if m._mismatch_rate is not None:
            mismatch.add_metric([], m._mismatch_rate)
        if m._disputed_ratio is not None:
            disputed.add_metric([], m._disputed_ratio)
        return [breakers, holds, mismatch, disputed]

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                f"{PREFIX}_breaker_state",
                "Circuit breaker per provider operation family: 0 closed, 1 half-open, 2 open.",
                labels=["family"],
            ),
            GaugeMetricFamily(
                f"{PREFIX}_holds_open",
                "Open ERP holds (provider work owed, e.g. credit_pending in degraded mode), "
                "by kind.",
                labels=["kind"],
            ),
            GaugeMetricFamily(
                f"{PREFIX}_reconciliation_mismatch_rate",
                "Discrepancies per provider settlement line in the last reconciliation. "
                "No sample until a reconciliation has run.",
            ),
            GaugeMetricFamily(
                f"{PREFIX}_disputed_ratio",
                "Disputed orders / captured orders (ERP orders with a shipment), as of the last "
                "reconciliation." + NOT_YET,
            ),
        )


__all__ = ["CONTENT_TYPE", "Metrics"]
