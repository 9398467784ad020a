"""Correlation ids in the JSON logs, and provider events folded into the ERP and the ledger.

The simulator runs in-process and delivers its real, signed webhooks to the order-to-cash
service's `POST /webhooks/provider` through `httpx.ASGITransport` (bound late: the secret
comes from the endpoint the simulator creates). Deliveries happen on `flush`; the event
worker is run by hand (`process`), except in the lifespan test. Time: the simulator's manual
wall clock is the service's clock too; the client's monotonic clock only moves when the
injected sleep is called (nothing really sleeps).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from factories import ADMIN, BASE_URL, START, Api, build_app
from shop_harness import LateBound, Shop, order_body

from integration.app import WEBHOOK_PATH, create_service_app
from integration.cli import main as integration_main
from integration.client import ProviderRejected
from integration.logs import JsonFormatter, bound
from integration.model import EventKind
from integration.orders import ErpState
from simulator.clock import ManualClock

HOOK = f"http://127.0.0.1:9{WEBHOOK_PATH}"
CAPTURED = EventKind.CAPTURED


class Erp(Shop):
    """The harness's service with its inbox, wired both ways to a simulator of its own that
    delivers its webhooks to the service (`hooks.target`), on the simulator's wall clock."""

    def __init__(self, tmp_path: Path, **account_settings: Any) -> None:
        self.sim_clock = ManualClock(START)
        self.hooks = LateBound()
        sim = build_app(clock=self.sim_clock, webhook_transport=httpx.ASGITransport(app=self.hooks))
        api = Api(sim, self.sim_clock)
        account = api.new_account(seed=7, **account_settings)
        r = api.post("/v1/webhook_endpoints", headers=account.headers, json={"url": HOOK})
        assert r.status_code == 201, r.text
        self.endpoint = dict(r.json())
        ids = itertools.count(1)
        super().__init__(
            api,
            sim,
            account,
            tmp_path / "integration.db",
            wall=self.sim_clock.now,
            retry={"base_s": 0.1, "max_wait_s": 10.0, "max_attempts": 3},
            inbox=True,
            webhook_secrets=self.endpoint["secret"],
            correlation_ids=lambda: f"cor_test_{next(ids)}",
        )
        self.hooks.target = self.app

    def flush(self) -> int:
        """Deliver every due webhook to the service; the number of attempts made."""
        r = self.api.post("/_sandbox/webhooks/flush", headers=ADMIN, json={})
        assert r.status_code == 200, r.text
        return int(r.json()["attempts"])

    def quirks(self, **q: Any) -> None:
        r = self.api.put(
            f"/_sandbox/webhook_endpoints/{self.endpoint['id']}/quirks", headers=ADMIN, json=q
        )
        assert r.status_code == 200, r.text

    def place(self, merchant_order_id: str, amount: int = 100_000) -> dict[str, Any]:
        r = self.post("/orders", order_body(merchant_order_id, amount))
        assert r.status_code == 201, r.text
        return dict(r.json())

    def captured_postings(self) -> list[str]:
        return [p.reference for p in self.ledger.postings(event_kind=CAPTURED)]

    def close(self) -> None:
        super().close()
        self.api.close()


@pytest.fixture
def erp(tmp_path: Path) -> Iterator[Erp]:
    e = Erp(tmp_path)
    yield e
    e.close()


def lines(caplog: pytest.LogCaptureFixture, logger: str) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == logger]


# --- 1. correlation ids ---------------------------------------------------------------------------
def test_a_callers_correlation_id_is_on_every_log_line_and_reaches_the_provider(
    erp: Erp, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        r = erp.post("/orders", order_body("SO-1"), **{"X-Correlation-Id": "erp-SO-1-place"})
    assert r.status_code == 201, r.text
    assert r.headers["x-correlation-id"] == "erp-SO-1-place"

    (access,) = lines(caplog, "sandbank.integration.access")
    assert access["correlation_id"] == "erp-SO-1-place"
    assert (access["method"], access["path"], access["status"]) == ("POST", "/orders", 201)
    assert access["correlation_from"] == "caller"

    (call,) = lines(caplog, "sandbank.integration.provider")
    intent = erp.store.intent("checkout:SO-1")
    assert intent is not None
    assert call == {
        "event": "provider_call",
        "correlation_id": "erp-SO-1-place",
        "family": "checkouts",
        "method": "POST",
        "path": "/v1/checkouts",
        "intent_id": "checkout:SO-1",
        "attempt": 1,
        "verdict": "success",
        "status": 201,
        "latency_ms": 0.0,  # the injected monotonic clock did not move
        "idempotency_key": intent.idempotency_key,
        "error": None,
    }
    # The simulator's own access line for the same request names the same id.
    (sim,) = [line for line in lines(caplog, "sandbank.access") if line["path"] == "/v1/checkouts"]
    assert (sim["method"], sim["status"], sim["correlation_id"]) == ("POST", 201, "erp-SO-1-place")


def test_without_a_usable_header_the_injected_source_makes_the_id(
    erp: Erp, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        first = erp.post("/orders", order_body("SO-2"))
        second = erp.post("/orders", order_body("SO-3"), **{"X-Correlation-Id": "has spaces"})
        third = erp.get("/orders/SO-3")
    ids = [r.headers["x-correlation-id"] for r in (first, second, third)]
    assert ids == ["cor_test_1", "cor_test_2", "cor_test_3"]
    access = lines(caplog, "sandbank.integration.access")
    assert [a["correlation_id"] for a in access] == ids
    assert {a["correlation_from"] for a in access} == {"generated"}
    sim = lines(caplog, "sandbank.access")
    # Each provider request carries the id of the service request that caused it.
    assert [(s["method"], s["path"].split("/")[2], s["correlation_id"]) for s in sim] == [
        ("POST", "checkouts", "cor_test_1"),
        ("POST", "checkouts", "cor_test_2"),
        ("GET", "checkouts", "cor_test_3"),  # the buyer's answer, read on GET /orders
        ("GET", "checkouts", "cor_test_3"),  # and the provider view of the order
    ]


def test_each_retry_is_a_log_line_with_the_same_key_and_correlation_id(
    erp: Erp, caplog: pytest.LogCaptureFixture
) -> None:
    placed = erp.place("SO-4")
    erp.api.approve(placed["provider_checkout_id"])
    erp.fault(
        match={"operation": "createCapture", "attempt": {"lte": 2}},
        effect={"type": "status", "status": 503},
    )
    with caplog.at_level(logging.INFO):
        r = erp.post("/orders/SO-4/ship", {"amount": 40_000}, **{"X-Correlation-Id": "ship-4"})
    assert r.status_code == 200, r.text
    calls = [c for c in lines(caplog, "sandbank.integration.provider") if c["family"] == "captures"]
    assert [(c["attempt"], c["verdict"], c["status"]) for c in calls] == [
        (1, "retry", 503),
        (2, "retry", 503),
        (3, "success", 201),
    ]
    assert len({c["idempotency_key"] for c in calls}) == 1
    assert calls[0]["idempotency_key"] is not None
    assert {c["correlation_id"] for c in calls} == {"ship-4"}
    assert calls[0]["error"].startswith("503")
    sim = [s for s in lines(caplog, "sandbank.access") if s["path"].endswith("/captures")]
    assert [(s["status"], s["correlation_id"]) for s in sim] == [(503, "ship-4")] * 2 + [
        (201, "ship-4")
    ]


# --- 2. webhooks into the ERP and the ledger ----------------------------------------------------
def test_the_webhook_route_verifies_and_stores_before_answering(erp: Erp) -> None:
    body = b'{"id":"evt_forged","type":"order.captured"}'
    r = erp.run(
        erp.http.post(
            WEBHOOK_PATH,
            content=body,
            headers={
                "webhook-id": "evt_forged",
                "webhook-timestamp": "1",
                "webhook-signature": "v1,x",
            },
        )
    )
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"
    assert erp.inbox.raw_events() == []


@pytest.mark.parametrize("quirky", [False, True], ids=["plain", "duplicate+reorder"])
def test_events_move_the_erp_order_and_post_each_capture_once(erp: Erp, quirky: bool) -> None:
    """The buyer's answer, a shipment the service made and one made elsewhere all arrive as
    events; the order follows them and the ledger holds each capture once, whatever the
    duplicates and the order of arrival."""
    if quirky:
        erp.quirks(duplicate={"probability": 1.0, "copies": 2}, reorder={"window_ms": 10_000})
    placed = erp.place("SO-5")
    assert placed["erp_state"] == "awaiting_buyer"
    erp.api.approve(placed["provider_checkout_id"])
    if quirky:
        erp.api.advance(erp.account, "11s")
    assert erp.flush() > 0
    assert erp.process() > 0
    order = erp.book.get("SO-5")  # no read of the provider: the events said it
    assert order.erp_state is ErpState.AUTHORIZED
    assert order.provider_order_id is not None
    oid = order.provider_order_id

    shipped = erp.post("/orders/SO-5/ship", {"amount": 60_000})
    assert shipped.status_code == 200, shipped.text
    (mine,) = erp.captured_postings()
    other = erp.provider(f"/v1/orders/{oid}/captures", {"amount": 40_000})  # not through the ERP
    if quirky:
        erp.api.advance(erp.account, "11s")
    erp.flush()
    erp.process()

    order = erp.book.get("SO-5")
    assert (order.erp_state, order.shipped) == (ErpState.SHIPPED, 100_000)
    assert sorted(erp.captured_postings()) == sorted([mine, other["id"]])
    assert erp.ledger.balance("1210 Receivable - Credit provider", "USD") == 100_000
    assert erp.balanced()
    rows = erp.inbox.raw_events()
    assert {r.status for r in rows} == {"processed"}
    events = erp.api.events(erp.account)
    assert sorted(r.webhook_id for r in rows) == sorted(e["id"] for e in events)
    assert erp.process() == 0  # nothing left; and processing again posts nothing new
    assert len(erp.captured_postings()) == 2


def test_a_refund_made_elsewhere_reaches_the_erp_and_the_ledger(erp: Erp) -> None:
    placed = erp.place("SO-6")
    erp.api.approve(placed["provider_checkout_id"])
    assert erp.post("/orders/SO-6/ship", {"amount": 100_000}).status_code == 200
    oid = erp.book.get("SO-6").provider_order_id
    refund = erp.provider(f"/v1/orders/{oid}/refunds", {"amount": 30_000})
    erp.flush()
    erp.process()
    order = erp.book.get("SO-6")
    assert (order.erp_state, order.refunded) == (ErpState.PARTIALLY_REFUNDED, 30_000)
    (posted,) = erp.ledger.postings(event_kind=EventKind.REFUNDED)
    assert posted.reference == refund["id"]
    assert erp.balanced()


def test_an_event_about_held_work_drives_the_hold_with_its_own_key(erp: Erp) -> None:
    """A capture whose answer was lost stays held; the provider's event about it finishes the
    hold by the same key (one capture at the provider, one posting), not from its figures."""
    placed = erp.place("SO-7")
    erp.api.approve(placed["provider_checkout_id"])
    erp.get("/orders/SO-7")
    erp.fault(
        match={"operation": "createCapture"},
        phase="after",
        effect={"type": "status", "status": 500},
        times=3,  # every attempt of the call: the answer is lost, the capture happened
    )
    held = erp.post("/orders/SO-7/ship", {"amount": 25_000})
    assert held.status_code == 202, held.text
    assert erp.book.get("SO-7").shipped == 0
    erp.flush()
    erp.process()
    order = erp.book.get("SO-7")
    assert (order.erp_state, order.shipped) == (ErpState.PARTIALLY_SHIPPED, 25_000)
    assert erp.book.holds("SO-7", open_only=True) == []
    provider = erp.api.order(erp.account, str(order.provider_order_id))
    assert provider["captured_amount"] == 25_000
    assert len(provider["captures"]) == 1
    assert erp.captured_postings() == [provider["captures"][0]["id"]]
    intent = erp.store.intent("capture:SO-7:1")
    assert intent is not None
    sent = erp.api.get(
        "/_sandbox/requests",
        headers=ADMIN,
        params={"account": erp.account.id, "operation": "createCapture"},
    ).json()["data"]
    assert {e["idempotency_key"] for e in sent} == {intent.idempotency_key}
    assert erp.balanced()


def test_a_cancel_elsewhere_and_a_declined_buyer_reach_the_erp(erp: Erp) -> None:
    placed = erp.place("SO-8")
    erp.api.approve(placed["provider_checkout_id"])
    erp.flush()
    erp.process()
    oid = erp.book.get("SO-8").provider_order_id
    erp.provider(f"/v1/orders/{oid}/cancel", {})
    declined = erp.place("SO-9")
    r = erp.api.post(
        f"/_sandbox/checkouts/{declined['provider_checkout_id']}/decline", headers=ADMIN
    )
    assert r.status_code == 200, r.text
    erp.flush()
    erp.process()
    assert erp.book.get("SO-8").erp_state is ErpState.CANCELED
    assert erp.book.get("SO-9").erp_state is ErpState.REJECTED
    assert erp.ledger.postings() == []  # releases and refusals post nothing


def feed(erp: Erp, *, newest_first: bool) -> None:
    """The provider's events, straight into the inbox (as the poller stores them), in the
    order asked, then processed: arrival order is the provider's choice, not ours."""
    events = erp.api.events(erp.account)  # oldest first
    for event in reversed(events) if newest_first else events:
        body = json.dumps(event, separators=(",", ":")).encode()
        assert erp.inbox.accept(event["id"], {}, body, "poll")
    erp.process()


@pytest.mark.parametrize("newest_first", [False, True], ids=["in_order", "reversed"])
def test_an_authorization_that_lapses_at_the_provider_expires_the_erp_order(
    tmp_path: Path, newest_first: bool
) -> None:
    erp = Erp(tmp_path, authorization_ttl=3600)
    try:
        placed = erp.place("SO-10")
        erp.api.approve(placed["provider_checkout_id"])
        erp.api.advance(erp.account, "2h")
        feed(erp, newest_first=newest_first)
        assert erp.book.get("SO-10").erp_state is ErpState.EXPIRED
        assert erp.post("/orders/SO-10/ship", {"amount": 1}).status_code == 409
    finally:
        erp.close()


@pytest.mark.parametrize("newest_first", [False, True], ids=["in_order", "reversed"])
def test_money_moved_elsewhere_ends_the_same_whatever_the_arrival_order(
    erp: Erp, newest_first: bool
) -> None:
    placed = erp.place("SO-13")
    erp.api.approve(placed["provider_checkout_id"])
    oid = erp.api.get(
        f"/v1/checkouts/{placed['provider_checkout_id']}", headers=erp.account.headers
    ).json()["order_id"]
    first = erp.provider(f"/v1/orders/{oid}/captures", {"amount": 30_000})
    second = erp.provider(f"/v1/orders/{oid}/captures", {"amount": 30_000})
    refund = erp.provider(f"/v1/orders/{oid}/refunds", {"amount": 5_000})
    feed(erp, newest_first=newest_first)
    order = erp.book.get("SO-13")
    assert (order.erp_state, order.shipped, order.refunded) == (
        ErpState.PARTIALLY_REFUNDED,
        60_000,
        5_000,
    )
    assert sorted(erp.captured_postings()) == sorted([first["id"], second["id"]])
    (posted,) = erp.ledger.postings(event_kind=EventKind.REFUNDED)
    assert posted.reference == refund["id"]
    assert erp.ledger.balance("1210 Receivable - Credit provider", "USD") == 55_000
    assert erp.balanced()


def test_an_event_about_an_order_the_erp_does_not_know_is_recorded_only(erp: Erp) -> None:
    erp.api.approved_order(erp.account, 50_000)  # made without the ERP
    erp.flush()
    assert erp.process() > 0
    assert {r.status for r in erp.inbox.raw_events()} == {"processed"}
    assert erp.ledger.postings() == []


def test_the_event_worker_in_the_lifespan_is_woken_by_a_delivery(erp: Erp) -> None:
    app = create_service_app(
        erp.service,
        resume_every_s=None,
        inbox=erp.inbox,
        webhook_secrets=erp.endpoint["secret"],
        process_every_s=60.0,  # far longer than the test: only the wake-up can explain it
    )
    erp.hooks.target = app
    placed = erp.place("SO-11")
    erp.api.approve(placed["provider_checkout_id"])

    async def serve_until_authorized() -> None:
        async with app.router.lifespan_context(app):
            await erp.api.client.post("/_sandbox/webhooks/flush", headers=ADMIN, json={})
            for _ in range(200):
                await asyncio.sleep(0.01)
                if erp.book.get("SO-11").erp_state is ErpState.AUTHORIZED:
                    return

    erp.run(serve_until_authorized())
    assert erp.book.get("SO-11").erp_state is ErpState.AUTHORIZED


class Forgetful:
    """The real adapter, except that captures are refused: a provider that no longer replays
    an expired Idempotency-Key and refuses a capture it already made."""

    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter

    def __getattr__(self, name: str) -> Any:
        return getattr(self.adapter, name)

    async def capture(self, *args: Any, **kwargs: Any) -> Any:
        raise ProviderRejected("invalid_state", 409, "the key is gone and the capture happened")


def test_a_hold_settled_from_a_read_posts_under_the_providers_capture_id(erp: Erp) -> None:
    """When the same key is no longer replayed, the hold is settled from the provider's read,
    on the provider's capture id, so the event about that capture does not post it again."""
    placed = erp.place("SO-12")
    erp.api.approve(placed["provider_checkout_id"])
    erp.get("/orders/SO-12")
    erp.fault(
        match={"operation": "createCapture"},
        phase="after",
        effect={"type": "status", "status": 500},
        times=3,
    )
    assert erp.post("/orders/SO-12/ship", {"amount": 25_000}).status_code == 202
    erp.service.adapter = Forgetful(erp.adapter)
    assert erp.run(erp.service.resume()) == 1
    order = erp.book.get("SO-12")
    assert (order.erp_state, order.shipped) == (ErpState.PARTIALLY_SHIPPED, 25_000)
    (capture,) = erp.api.order(erp.account, str(order.provider_order_id))["captures"]
    assert erp.captured_postings() == [capture["id"]]
    erp.flush()
    erp.process()
    assert erp.captured_postings() == [capture["id"]]
    assert erp.book.get("SO-12").shipped == 25_000


# --- logging plumbing and the command line --------------------------------------------------------
def test_the_json_formatter_keeps_json_lines_and_wraps_the_rest() -> None:
    formatter = JsonFormatter()

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord(
            "sandbank.integration", logging.WARNING, __file__, 1, msg, (), None
        )

    with bound("cid-1"):
        plain = json.loads(formatter.format(record("hold %s stays open")))
        structured = json.loads(formatter.format(record('{"event":"x","correlation_id":"c2"}')))
    assert (plain["message"], plain["correlation_id"], plain["level"]) == (
        "hold %s stays open",
        "cid-1",
        "warning",
    )
    assert (structured["event"], structured["correlation_id"]) == ("x", "c2")
    assert "message" not in structured


def test_serve_refuses_a_malformed_webhook_secret(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["serve", "--provider-url", BASE_URL, "--api-key", "sk_test_x", "--db", ":memory:"]
    assert integration_main([*argv, "--webhook-secret", "whsec_"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sandbank integration: error: --webhook-secret")
    assert err.count("\n") == 1
