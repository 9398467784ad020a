"""GET /metrics of the order-to-cash service, against the real simulator in-process.

The harness of `test_order_to_cash.py` (`shop_harness.Shop`), with a wall clock the test moves,
so approval velocity is a real duration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from factories import ADMIN
from prometheus_client.parser import text_string_to_metric_families
from shop_harness import NOW, Shop, order_body

from integration.metrics import Metrics
from integration.model import LineKind, Money
from integration.reconcile import Discrepancy, DiscrepancyKind, MatchKey, Report

P = "sandbank_integration_"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Clocks:
    wall: datetime = NOW


class MetricsShop(Shop):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.clocks = Clocks()
        super().__init__(*args, wall=lambda: self.clocks.wall, **kwargs)

    def scrape(self) -> Samples:
        r = self.get("/metrics")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        return samples(r.text)


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((P + name, frozenset(labels.items())))


@pytest.fixture
def make_shop(new_shop: Callable[..., Shop]) -> Callable[..., MetricsShop]:
    def make(*, failure_threshold: int = 50, max_attempts: int = 3) -> MetricsShop:
        shop: MetricsShop = new_shop(
            MetricsShop,
            # Room for the outage's Retry-After: 30 between attempts, with no request budget
            # to cut them short (the retries are what these tests count).
            retry={"max_attempts": max_attempts, "max_total_s": 600.0},
            request_budget_s=None,
            failure_threshold=failure_threshold,
            cooldown_s=300.0,
        )
        return shop

    return make


def test_place_approve_ship_moves_the_counters_and_the_approval_histogram(
    make_shop: Callable[..., MetricsShop],
) -> None:
    shop = make_shop()
    placed = shop.post("/orders", order_body("SO-1"))
    assert placed.status_code == 201, placed.text
    shop.clocks.wall += timedelta(seconds=90)  # the buyer takes a minute and a half
    shop.api.approve(placed.json()["provider_checkout_id"])
    assert shop.get("/orders/SO-1").json()["erp_state"] == "authorized"
    assert shop.post("/orders/SO-1/ship", {"amount": 100_000}).status_code == 200

    found = shop.scrape()
    for state in ("placed", "awaiting_buyer", "authorized", "shipped"):
        assert value(found, "orders_total", state=state) == 1, state
    assert value(found, "orders_total", state="credit_pending") is None
    assert value(found, "approval_seconds_count") == 1
    assert value(found, "approval_seconds_sum") == 90
    assert value(found, "approval_seconds_bucket", le="60.0") == 0
    assert value(found, "approval_seconds_bucket", le="300.0") == 1
    assert value(found, "provider_attempts_total", family="checkouts", verdict="success") == 1
    assert value(found, "provider_attempts_total", family="captures", verdict="success") == 1
    assert value(found, "provider_retries_total", family="checkouts") is None  # never retried
    assert value(found, "breaker_state", family="checkouts") == 0
    assert value(found, "holds_open", kind="credit_pending") == 0


def test_an_outage_shows_the_open_hold_the_retries_and_then_its_resolution(
    make_shop: Callable[..., MetricsShop],
) -> None:
    shop = make_shop()
    shop.outage()
    held = shop.post("/orders", order_body("SO-2"))
    assert held.status_code == 202, held.text

    found = shop.scrape()
    assert value(found, "holds_open", kind="credit_pending") == 1
    assert value(found, "holds_open", kind="capture_pending") == 0
    assert value(found, "orders_total", state="credit_pending") == 1
    assert value(found, "provider_attempts_total", family="checkouts", verdict="retry") == 3
    assert value(found, "provider_retries_total", family="checkouts") == 2
    assert value(found, "breaker_state", family="checkouts") == 0  # threshold 50: still closed

    assert shop.api.request("DELETE", "/_sandbox/faults", headers=ADMIN).status_code == 200
    assert shop.run(shop.service.resume()) == 1
    found = shop.scrape()
    assert value(found, "holds_open", kind="credit_pending") == 0
    assert value(found, "orders_total", state="awaiting_buyer") == 1


def test_the_breaker_gauge_reads_2_once_it_opens(make_shop: Callable[..., MetricsShop]) -> None:
    shop = make_shop(failure_threshold=2, max_attempts=5)
    shop.outage()
    assert shop.post("/orders", order_body("SO-3")).status_code == 202
    found = shop.scrape()
    assert value(found, "breaker_state", family="checkouts") == 2
    # Two attempts opened it; the third was refused by the breaker, not sent.
    assert value(found, "provider_attempts_total", family="checkouts", verdict="retry") == 2
    assert value(found, "holds_open", kind="credit_pending") == 1


def test_kpis_without_data_stay_empty_until_recorded(make_shop: Callable[..., MetricsShop]) -> None:
    shop = make_shop()
    text = shop.get("/metrics").text
    assert f"# HELP {P}disputed_ratio" in text
    assert "No sample until a reconciliation has run" in text
    found = samples(text)
    assert value(found, "reconciliation_mismatch_rate") is None
    assert value(found, "disputed_ratio") is None
    assert value(found, "settlement_lag_seconds_count") == 0

    key = MatchKey("ord_1", LineKind.CAPTURE, 0)
    report = Report(
        batch=date(2026, 3, 2),
        since=date(2026, 3, 2),
        lines=4,
        discrepancies=(
            Discrepancy(DiscrepancyKind.LATE, key, Money(100, "USD"), None, "not yet paid"),
        ),
    )
    shop.service.metrics.record_reconciliation(report)
    shop.service.metrics.record_disputes(1, 8)
    shop.service.metrics.observe_settlement_lag(2 * 86400.0)
    found = shop.scrape()
    assert value(found, "reconciliation_mismatch_rate") == 0.25
    assert value(found, "disputed_ratio") == 0.125
    assert value(found, "settlement_lag_seconds_count") == 1


def test_each_service_has_a_registry_of_its_own(make_shop: Callable[..., MetricsShop]) -> None:
    one, two = make_shop(), make_shop()
    assert one.post("/orders", order_body("SO-4")).status_code == 201
    assert value(one.scrape(), "orders_total", state="placed") == 1
    assert value(two.scrape(), "orders_total", state="placed") is None
    Metrics(), Metrics()  # no clash with each other nor with the default registry
