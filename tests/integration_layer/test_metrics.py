"""GET /metrics of the order-to-cash service, against the real simulator in-process.

Same harness as `test_order_to_cash.py` (httpx.ASGITransport both ways, a manual monotonic
clock the injected sleep advances), plus a wall clock the test moves, so approval velocity is a
real duration.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from factories import ADMIN, BASE_URL, Account, Api
from prometheus_client.parser import text_string_to_metric_families

from integration.adapters import make_adapter
from integration.breaker import Breakers
from integration.ledger import Ledger
from integration.metrics import Metrics
from integration.model import LineKind, Money
from integration.orders import OrderBook
from integration.reconcile import Discrepancy, DiscrepancyKind, MatchKey, Report
from integration.service import OrderToCash, create_service_app
from integration.store import IntegrationStore
from simulator.app import SandbankApp

T = TypeVar("T")
P = "sandbank_integration_"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Clocks:
    monotonic: float = 100.0
    wall: datetime = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    async def sleep(self, seconds: float) -> None:
        self.monotonic += seconds


@dataclass
class Shop:
    api: Api
    account: Account
    service: OrderToCash
    book: OrderBook
    clocks: Clocks
    http: httpx.AsyncClient
    closers: list[Callable[[], Any]] = field(default_factory=list)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        result: T = self.api.loop.run_until_complete(coro)
        return result

    def post(self, url: str, body: Any = None) -> httpx.Response:
        return self.run(self.http.post(url, json=body))

    def get(self, url: str) -> httpx.Response:
        return self.run(self.http.get(url))

    def outage(self) -> None:
        r = self.api.post(
            "/_sandbox/faults/presets/total-outage",
            headers=ADMIN,
            json={"account": self.account.id},
        )
        assert r.status_code in (200, 201), r.text

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
def make_shop(
    api: Api, app: SandbankApp, account: Account, tmp_path: Path
) -> Iterator[Callable[..., Shop]]:
    shops: list[Shop] = []

    def make(*, failure_threshold: int = 50, max_attempts: int = 3) -> Shop:
        clocks = Clocks()
        rng = random.Random(3)
        db = tmp_path / f"integration-{len(shops)}.db"
        store = IntegrationStore(db, new_key=lambda: f"ik_{rng.getrandbits(64):016x}")
        adapter = make_adapter(
            {
                "provider": "sandbank",
                "base_url": BASE_URL,
                "api_key": account.api_key,
                # Room for the outage's Retry-After: 30 between attempts.
                "retry": {"max_attempts": max_attempts, "max_total_s": 600.0},
            },
            store=store,
            clock=lambda: clocks.monotonic,
            sleep=clocks.sleep,
            random=lambda: 0.5,
            breakers=Breakers(
                lambda: clocks.monotonic, failure_threshold=failure_threshold, cooldown_s=300.0
            ),
            transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        )
        book = OrderBook(db)
        ledger = Ledger.sqlite(db)
        service = OrderToCash(adapter, book, ledger, clock=lambda: clocks.wall)
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_service_app(service, resume_every_s=None)),
            base_url="http://shop.test",
        )
        shop = Shop(api, account, service, book, clocks, http)
        shop.closers = [
            http.aclose,
            adapter.client.aclose,  # type: ignore[attr-defined]
            ledger.close,
            book.close,
            store.close,
        ]
        shops.append(shop)
        return shop

    yield make
    for shop in shops:
        for close in shop.closers:
            done = close()
            if done is not None:
                shop.run(done)


def order_body(merchant_order_id: str, amount: int = 100_000) -> dict[str, Any]:
    return {
        "merchant_order_id": merchant_order_id,
        "amount": amount,
        "currency": "USD",
        "buyer": {"legal_name": "Acme Supply Co", "email": "ap+approve@acme.test"},
        "line_items": [{"name": "Pallet of widgets", "quantity": 2, "unit_amount": amount // 2}],
        "return_url": "https://shop.test/return",
        "cancel_url": "https://shop.test/cancel",
    }


def test_place_approve_ship_moves_the_counters_and_the_approval_histogram(
    make_shop: Callable[..., Shop],
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
    make_shop: Callable[..., Shop],
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


def test_the_breaker_gauge_reads_2_once_it_opens(make_shop: Callable[..., Shop]) -> None:
    shop = make_shop(failure_threshold=2, max_attempts=5)
    shop.outage()
    assert shop.post("/orders", order_body("SO-3")).status_code == 202
    found = shop.scrape()
    assert value(found, "breaker_state", family="checkouts") == 2
    # Two attempts opened it; the third was refused by the breaker, not sent.
    assert value(found, "provider_attempts_total", family="checkouts", verdict="retry") == 2
    assert value(found, "holds_open", kind="credit_pending") == 1


def test_kpis_without_data_stay_empty_until_recorded(make_shop: Callable[..., Shop]) -> None:
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


def test_each_service_has_a_registry_of_its_own(make_shop: Callable[..., Shop]) -> None:
    one, two = make_shop(), make_shop()
    assert one.post("/orders", order_body("SO-4")).status_code == 201
    assert value(one.scrape(), "orders_total", state="placed") == 1
    assert value(two.scrape(), "orders_total", state="placed") is None
    Metrics(), Metrics()  # no clash with each other nor with the default registry
