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
    sandbank_integration_requests_total{route,outcome}  counter    the shop's requests answered
    sandbank_integration_request_seconds{route}         histogram  time to answer the shop
    sandbank_integration_held_work_seconds{kind}        histogram  possible again -> hold done
    sandbank_integration_event_to_state_seconds         histogram  provider event -> ERP change
    sandbank_integration_reconciliation_mismatch_rate   gauge      of the last reconciliation
    sandbank_integration_settlement_lag_seconds         histogram  capture -> payout
    sandbank_integration_disputed_ratio                 gauge      disputed / captured orders

The last three are recorded by a reconciliation run (`integration.settlements`).

What the incident SLOs read (issue #11), and why each is measured where it is:

- **Answered held vs ok**: `requests_total` by route (`POST /orders`,
  `POST /orders/{order_id}/ship`, ...) and `outcome`: `ok` (2xx done), `held` (202: the work is
  owed), `rejected` (4xx), `refused` (502: the provider said no), `unavailable` (503), `error`.
  `request_seconds` is the time to answer (the service's injected timer): during a total
  outage the shop must still get its 202 within the request budget (`--budget-ms`).
- **Held work after recovery**: `held_work_seconds` observes, for every hold the resumer or an
  event finishes, the seconds from when the work became possible again to its end. "Possible
  again" is the first deliberate answer (2xx or final 4xx) the provider gave after it was
  unavailable (retryable failures), as this service saw it, or the hold's creation if later.
  The detection delay (breaker cool-down, resumer pace) is therefore excluded here; a runner
  that knows when it ended the outage subtracts that from the holds' `resolved_at` instead.
- **Event to ERP**: `event_to_state_seconds` observes, for every provider event that changed
  an ERP order (its state or figures, or finished its held work), the seconds from the event's
  `created_at` (the provider's clock) to the change (the service's clock). The two clocks must
  agree for it to mean latency: against a simulator account on a virtual clock it measures
  the clocks' offset too.
- Open holds: `holds_open` above. `GET /status` (`Metrics.status`) gives the same figures as
  JSON: open holds by kind and the oldest one's age, breaker states, provider reachability,
  and request outcomes by route.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from integration.breaker import Breakers, State
from integration.client import ResilientClient
from integration.orders import HoldKind, OrderBook
from integration.reconcile import Report
from integration.retry import Verdict

# An answer to the shop: milliseconds normally, the request budget (~1 s) in an outage.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)
# Held work after recovery, and event -> ERP change: seconds to an hour.
CATCH_UP_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
DELIBERATE = frozenset({Verdict.SUCCESS, Verdict.FINAL})  # the provider answered on purpose

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
        self.requests = Counter(
            f"{PREFIX}_requests",
            "The shop's requests, by route and outcome: ok, held (202, the work is owed), "
            "rejected (4xx), refused (502), unavailable (503), error.",
            ["route", "outcome"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            f"{PREFIX}_request_seconds",
            "Seconds to answer the shop, by route.",
            ["route"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.held_work_seconds = Histogram(
            f"{PREFIX}_held_work_seconds",
            "Seconds from when held work became possible again (the provider's first deliberate "
            "answer after it was unavailable, or the hold's creation if later) to its end, by "
            "hold kind.",
            ["kind"],
            buckets=CATCH_UP_BUCKETS,
            registry=self.registry,
        )
        self.event_to_state_seconds = Histogram(
            f"{PREFIX}_event_to_state_seconds",
            "Seconds from a provider event's created_at to the ERP change it caused.",
            buckets=CATCH_UP_BUCKETS,
            registry=self.registry,
        )
        self._outcomes: dict[str, Tally[str]] = {}
        self._clock: Callable[[], datetime] | None = None
        self._reachable: bool | None = None  # None: no attempt seen yet
        self._possible_since: datetime | None = None
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

    def watch_holds(self, book: OrderBook, clock: Callable[[], datetime]) -> None:
        """Report the book's open holds; `clock` (the service's) stamps provider recovery."""
        self._book = book
        self._clock = clock

    # --- events ------------------------------------------------------------------------------
    def order_entered(self, state: str) -> None:
        self.orders.labels(state=str(state)).inc()

    def approved_after(self, seconds: float) -> None:
        self.approval_seconds.observe(max(seconds, 0.0))

    def attempt(self, family: str, verdict: Verdict) -> None:
        """`integration.client.CallObserver`: one HTTP attempt and its verdict; the first
        deliberate answer after failures marks when held work became possible again."""
        self.attempts.labels(family=family, verdict=verdict.value).inc()
        reachable = verdict in DELIBERATE
        if reachable and self._reachable is not True and self._clock is not None:
            self._possible_since = self._clock()
        self._reachable = reachable

    def request_answered(self, route: str, outcome: str, seconds: float) -> None:
        self.requests.labels(route=route, outcome=outcome).inc()
        self.request_seconds.labels(route=route).observe(max(seconds, 0.0))
        self._outcomes.setdefault(route, Tally())[outcome] += 1

    def held_work_done(self, kind: str, created_at: datetime, done_at: datetime) -> None:
        """A hold the resumer (or an event) finished at `done_at`."""
        since = created_at
        if self._possible_since is not None and self._possible_since > since:
            since = self._possible_since
        self.held_work_seconds.labels(kind=kind).observe(max((done_at - since).total_seconds(), 0))

    def event_applied(self, created_at: datetime, changed_at: datetime) -> None:
        """A provider event created at `created_at` changed an ERP order at `changed_at`."""
        seconds = (changed_at - created_at).total_seconds()
        self.event_to_state_seconds.observe(max(seconds, 0.0))

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

    def status(self) -> dict[str, Any]:
        """`GET /status`: what an SRE (or a scenario runner) polls during an incident."""
        holds = [] if self._book is None else self._book.holds(open_only=True)
        oldest = min((h.created_at for h in holds), default=None)
        now = None if self._clock is None else self._clock()
        return {
            "holds_open": {kind.value: sum(h.kind is kind for h in holds) for kind in HoldKind},
            "holds_open_total": len(holds),
            "oldest_open_hold_at": None if oldest is None else oldest.isoformat(),
            "oldest_open_hold_age_s": (
                None if oldest is None or now is None else (now - oldest).total_seconds()
            ),
            "breakers": {
                family: str(state)
                for group in self._breakers
                for family, state in group.states().items()
            },
            "provider": {
                "reachable": self._reachable,
                "possible_since": (
                    None if self._possible_since is None else self._possible_since.isoformat()
                ),
            },
            "requests": {
                route: dict(sorted(t.items())) for route, t in sorted(self._outcomes.items())
            },
        }


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
