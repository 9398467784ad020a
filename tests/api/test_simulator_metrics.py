"""GET /metrics of the simulator: each listed metric moves with what it counts, and the
console's in-memory history (charts) follows the same requests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest
from factories import ADMIN, Account, Api, build_app, journal_entry
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from simulator.clock import ManualClock
from simulator.metrics import LATENCY_BUCKETS, RECENT_BOUNDS_MS, _observe_all, percentile

Scrape = Callable[[], dict[tuple[str, tuple[tuple[str, str], ...]], float]]


@pytest.fixture
def scrape(api: Api) -> Scrape:
    def read() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        r = api.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text)
            for s in family.samples
        }

    return read


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_are_counted_by_operation_status_and_fault(
    api: Api, account: Account, scrape: Scrape
) -> None:
    api.get("/v1/buyers", headers=account.headers)
    api.post("/v1/checkouts", headers=account.headers, json={})
    r = api.post(
        "/_sandbox/faults",
        headers=ADMIN,
        json={"match": {"operation": "listBuyers"}, "effect": {"type": "status", "status": 503}},
    )
    assert r.status_code == 201
    api.get("/v1/buyers", headers=account.headers)
    s = scrape()
    total = "sandbank_requests_total"
    assert value(s, total, operation="listBuyers", status="200", fault="none") == 1
    assert value(s, total, operation="createCheckout", status="422", fault="none") == 1
    assert value(s, total, operation="listBuyers", status="503", fault="status") == 1
    assert value(s, "sandbank_request_duration_seconds_count", operation="listBuyers") == 2


def test_a_burst_of_concurrent_requests_is_counted_exactly(
    api: Api, account: Account, scrape: Scrape
) -> None:
    """Requests answered in the same event-loop turns are counted together at each turn's
    end: a scrape right after the burst sees every one of them, by status."""

    async def burst() -> list[int]:
        gets = [
            api.client.get(path, headers=account.headers)
            for path in ["/v1/buyers"] * 30 + ["/v1/buyers/buy_missing"] * 7
        ]
        return [r.status_code for r in await asyncio.gather(*gets)]

    statuses = api.loop.run_until_complete(burst())
    assert sorted(statuses) == [200] * 30 + [404] * 7
    s = scrape()
    total = "sandbank_requests_total"
    assert value(s, total, operation="listBuyers", status="200", fault="none") == 30
    assert value(s, total, operation="getBuyer", status="404", fault="none") == 7
    duration = "sandbank_request_duration_seconds"
    assert value(s, f"{duration}_count", operation="listBuyers") == 30
    assert value(s, f"{duration}_bucket", operation="listBuyers", le="+Inf") == 30
    assert value(s, f"{duration}_sum", operation="listBuyers") > 0
    assert sum(api.app.runtime.metrics.recent.minutes[-1].outcomes.values()) == 37


def test_a_scrape_counts_what_was_observed_earlier_in_its_own_turn(api: Api) -> None:
    metrics = api.app.runtime.metrics
    assert metrics is not None
    entry = journal_entry(
        account="acct_1", path="/v1/buyers", operation="listBuyers", latency_ms=2.0, replayed=True
    )

    async def same_turn() -> bytes:
        metrics.observe_request(entry)  # counted at the turn's end, or by a scrape before
        return metrics.exposition()

    text = api.loop.run_until_complete(same_turn()).decode()
    s = {
        (x.name, tuple(sorted(x.labels.items()))): x.value
        for family in text_string_to_metric_families(text)
        for x in family.samples
    }
    assert value(s, "sandbank_requests_total", operation="listBuyers", status="200", fault="none")
    assert value(s, "sandbank_idempotent_replays_total", operation="listBuyers") == 1
    assert value(s, "sandbank_request_duration_seconds_bucket", operation="listBuyers", le="0.0025")
    metrics.observe_request(entry)  # outside any event loop: at once
    assert metrics.recent.minutes[-1].outcomes["2xx"] == 2


def test_a_turns_latencies_fill_the_same_buckets_as_one_observe_each() -> None:
    amounts = [0.0, 0.001, 0.0011, 0.25, 0.3, 59.9, 60.0, 61.0, 1e9, 0.001]
    one_by_one, together = CollectorRegistry(), CollectorRegistry()
    a = Histogram("lat", "h", ["op"], buckets=LATENCY_BUCKETS, registry=one_by_one)
    b = Histogram("lat", "h", ["op"], buckets=LATENCY_BUCKETS, registry=together)
    for amount in amounts:
        a.labels("x").observe(amount)
    _observe_all(b.labels("x"), amounts)

    def samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
        text = generate_latest(registry).decode()
        return {
            (s.name, s.labels.get("le", "")): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if not s.name.endswith("_created")
        }

    expected = samples(one_by_one)
    assert samples(together) == {**expected, ("lat_sum", ""): pytest.approx(sum(amounts))}
    assert expected[("lat_bucket", "0.001")] == 3  # a bound holds what equals it


def test_idempotent_replays_are_counted(api: Api, account: Account, scrape: Scrape) -> None:
    headers = {**account.headers, "Idempotency-Key": "k-1"}
    body = {"legal_name": "Acme", "email": "ap+approve@acme.test"}
    for _ in range(3):
        api.post("/v1/buyers", headers=headers, json=body)
    assert value(scrape(), "sandbank_idempotent_replays_total", operation="createBuyer") == 2


def test_clock_advances_and_the_jobs_they_run_are_counted(
    api: Api, account: Account, scrape: Scrape
) -> None:
    api.checkout(account)  # expires after 24 h: one job
    api.advance(account, "2d")
    s = scrape()
    assert value(s, "sandbank_clock_advances_total") == 1
    assert value(s, "sandbank_clock_advanced_seconds_total") == 2 * 86400
    assert value(s, "sandbank_jobs_run_total", kind="checkout.expire") == 1


def test_webhook_attempts_backlog_and_endpoints_are_exposed(
    api: Api, account: Account, scrape: Scrape
) -> None:
    r = api.post(
        "/v1/webhook_endpoints", headers=account.headers, json={"url": "http://127.0.0.1:9/h"}
    )
    endpoint = r.json()["id"]
    api.checkout(account)
    api.post("/_sandbox/webhooks/flush", headers=ADMIN, json={})
    s = scrape()
    assert value(s, "sandbank_webhook_attempts_total", outcome="connection_error") >= 1
    assert value(s, "sandbank_webhook_backlog", account=account.id, endpoint=endpoint) >= 1
    assert value(s, "sandbank_webhook_endpoints", status="enabled") == 1
    assert value(s, "sandbank_webhook_deliveries", status="pending") >= 1


def test_settlements_and_disputes_are_counted_from_the_store(
    api: Api, account: Account, scrape: Scrape
) -> None:
    order = api.approved_order(account)
    api.post(f"/v1/orders/{order['id']}/captures", headers=account.headers, json={"amount": 1000})
    api.advance(account, "10d")
    s = scrape()
    assert sum(v for (n, _), v in s.items() if n == "sandbank_settlements") >= 1
    r = api.post(f"/_sandbox/orders/{order['id']}/disputes", headers=ADMIN, json={})
    assert r.status_code == 201
    assert value(scrape(), "sandbank_disputes", status="needs_response") == 1


def test_metrics_can_be_switched_off(clock: ManualClock) -> None:
    api = Api(build_app(clock=clock, metrics=False), clock)
    try:
        assert api.get("/metrics").status_code == 404
        assert api.app.runtime.metrics is None
    finally:
        api.close()


def test_the_charts_history_counts_outcomes_per_minute(
    api: Api, account: Account, clock: ManualClock
) -> None:
    api.get("/v1/buyers", headers=account.headers)
    clock.advance(timedelta(minutes=1))
    api.post("/v1/checkouts", headers=account.headers, json={})
    metrics = api.app.runtime.metrics
    assert metrics is not None
    charts = metrics.charts()
    assert len(charts["minutes"]) == 60
    assert charts["outcomes"]["2xx"][-2:] == [1, 0]
    assert charts["outcomes"]["4xx"][-2:] == [0, 1]
    assert charts["latency_ms"]["p50"][-1] is not None
    assert charts["latency_ms"]["p50"][0] is None
    assert charts["backlog"][-1][1] == 0


def test_percentiles_come_from_the_bucket_holding_the_rank() -> None:
    counts = [0] * len(RECENT_BOUNDS_MS)
    counts[0] = 90  # <= 1 ms
    counts[5] = 10  # <= 50 ms
    assert percentile(counts, 0.5) == 1
    assert percentile(counts, 0.95) == 50
    assert percentile([0] * len(RECENT_BOUNDS_MS), 0.5) is None
