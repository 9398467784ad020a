"""The events poller (`GET /v1/events` into the inbox) and what `GET /orders/{id}` shows of the
ledger, against the real simulator in-process (the harness: `shop_harness.Shop`).

No webhook endpoint is registered at the provider: events reach the service through the
poller alone, except where a test delivers one itself, signed, as the provider would.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from factories import ADMIN, BASE_URL
from shop_harness import RECEIVABLE, Shop, order_body
from standardwebhooks import Webhook

from integration.app import WEBHOOK_PATH, create_service_app
from integration.cli import main as integration_main
from integration.inbox import Inbox
from integration.model import EventKind
from integration.orders import ErpState
from integration.receiver import POLL_CURSOR
from integration.settlements import run_reconciliation

SECRET = "whsec_" + base64.b64encode(b"poller-test-secret-0123456789abc").decode()
CAPTURED = EventKind.CAPTURED


@pytest.fixture
def shop(new_shop: Callable[..., Shop]) -> Shop:
    s: Shop = new_shop(inbox=True)
    r = s.api.get("/v1/webhook_endpoints", headers=s.account.headers)
    assert r.status_code == 200, r.text
    assert r.json()["data"] == []  # webhooks are off: nothing is ever delivered
    return s


def authorized(shop: Shop, merchant_order_id: str, amount: int = 100_000) -> str:
    """Place, approve at the provider, poll and process: the ERP order is authorized from the
    polled events alone (no read of the provider). Its provider order id."""
    placed = shop.post("/orders", order_body(merchant_order_id, amount))
    assert placed.status_code == 201, placed.text
    shop.api.approve(placed.json()["provider_checkout_id"])
    assert shop.poll() > 0
    assert shop.process() > 0
    order = shop.book.get(merchant_order_id)
    assert order.erp_state is ErpState.AUTHORIZED
    assert order.provider_order_id is not None
    return order.provider_order_id


def captured_postings(shop: Shop) -> list[str]:
    return [p.reference for p in shop.ledger.postings(event_kind=CAPTURED)]


def event_of(shop: Shop, type_: str, object_id: str) -> dict[str, Any]:
    (event,) = [
        e
        for e in shop.api.events(shop.account)
        if e["type"] == type_ and e["object_id"] == object_id
    ]
    return event


def deliver(shop: Shop, event: dict[str, Any]) -> int:
    """POST the event to the service's webhook route as the provider signs a delivery."""
    body = json.dumps(event, separators=(",", ":"))
    at = shop.wall()
    headers = {
        "content-type": "application/json",
        "webhook-id": event["id"],
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(SECRET).sign(event["id"], at, body),
    }
    r = shop.run(shop.http.post(WEBHOOK_PATH, content=body, headers=headers))
    return r.status_code


# --- the poller -----------------------------------------------------------------------------------
def test_a_capture_made_at_the_provider_reaches_the_erp_and_the_ledger_by_polling_alone(
    shop: Shop,
) -> None:
    oid = authorized(shop, "SO-1")
    capture = shop.provider(f"/v1/orders/{oid}/captures", {"amount": 40_000})

    assert shop.poll() > 0
    assert shop.poll() == 0  # the poller runs twice: nothing is new the second time
    assert shop.process() > 0
    assert shop.process() == 0

    order = shop.book.get("SO-1")
    assert (order.erp_state, order.shipped) == (ErpState.PARTIALLY_SHIPPED, 40_000)
    assert captured_postings(shop) == [capture["id"]]
    assert shop.ledger.balance(RECEIVABLE, "USD") == 40_000
    assert shop.balanced()
    rows = shop.the_inbox.raw_events()
    assert {(r.source, r.status) for r in rows} == {("poll", "processed")}
    events = shop.api.events(shop.account)
    assert [r.webhook_id for r in rows] == [e["id"] for e in events]  # each once, oldest first
    assert shop.the_inbox.cursor(POLL_CURSOR) == events[-1]["id"]


@pytest.mark.parametrize(
    "webhook_first", [True, False], ids=["webhook_then_poll", "poll_then_webhook"]
)
def test_an_event_both_delivered_and_polled_is_processed_once(
    new_shop: Callable[..., Shop], webhook_first: bool
) -> None:
    shop: Shop = new_shop(inbox=True, webhook_secrets=SECRET)
    oid = authorized(shop, "SO-2")
    capture = shop.provider(f"/v1/orders/{oid}/captures", {"amount": 100_000})
    event = event_of(shop, "order.captured", oid)

    if webhook_first:
        assert deliver(shop, event) == 204
        shop.process()
        shop.poll()
    else:
        shop.poll()
        shop.process()
        assert deliver(shop, event) == 204  # acknowledged, not stored again
    shop.process()
    shop.poll()
    assert shop.process() == 0

    rows = [r for r in shop.the_inbox.raw_events() if r.webhook_id == event["id"]]
    assert [(r.source, r.status) for r in rows] == [
        ("webhook" if webhook_first else "poll", "processed")
    ]
    order = shop.book.get("SO-2")
    assert (order.erp_state, order.shipped) == (ErpState.SHIPPED, 100_000)
    assert captured_postings(shop) == [capture["id"]]
    assert shop.ledger.balance(RECEIVABLE, "USD") == 100_000
    assert shop.balanced()


class ListSpy:
    """The real adapter, recording the cursor of each `list_events` call."""

    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter
        self.cursors: list[str | None] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.adapter, name)

    async def list_events(self, since_cursor: str | None) -> Any:
        self.cursors.append(since_cursor)
        return await self.adapter.list_events(since_cursor)


def test_a_restarted_service_polls_on_from_the_stored_cursor(
    new_shop: Callable[..., Shop], shop: Shop
) -> None:
    oid = authorized(shop, "SO-3")
    seen = shop.api.events(shop.account)
    cursor = shop.the_inbox.cursor(POLL_CURSOR)
    assert cursor == seen[-1]["id"]
    shop.provider(f"/v1/orders/{oid}/captures", {"amount": 100_000})  # while it is down
    shop.close()
    with Inbox(shop.db, clock=shop.wall) as reopened:
        assert reopened.cursor(POLL_CURSOR) == cursor  # on disk, not in memory

    restarted: Shop = new_shop(inbox=True, db=shop.db)
    spy = ListSpy(restarted.service.adapter)
    restarted.service.adapter = spy
    new = len(restarted.api.events(restarted.account)) - len(seen)
    assert new > 0
    assert restarted.poll() == new  # only what came after the cursor
    assert spy.cursors == [cursor]
    restarted.process()
    assert restarted.book.get("SO-3").erp_state is ErpState.SHIPPED
    assert len(captured_postings(restarted)) == 1


def test_the_poller_runs_in_the_lifespan_on_the_injected_sleep(shop: Shop) -> None:
    """Webhooks off: the poller at start brings the buyer's answer, the next poll (after the
    injected sleep) a capture made at the provider; the event worker, woken by each poll that
    found something, moves the order and posts the capture once."""
    placed = shop.post("/orders", order_body("SO-4"))
    assert placed.status_code == 201, placed.text
    shop.api.approve(placed.json()["provider_checkout_id"])
    waits: list[float] = []
    gate = asyncio.Event()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await gate.wait()
        gate.clear()

    app = create_service_app(
        shop.service,
        resume_every_s=None,
        inbox=shop.inbox,
        process_every_s=600.0,  # far longer than the test: only a poll's wake-up explains it
        poll_every_s=30.0,
        sleep=sleep,
    )

    async def until(done: Callable[[], bool]) -> None:
        for _ in range(300):
            if done():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("not reached")

    async def serve() -> None:
        async with app.router.lifespan_context(app):
            await until(lambda: shop.book.get("SO-4").erp_state is ErpState.AUTHORIZED)
            await until(lambda: waits == [30.0])
            oid = shop.book.get("SO-4").provider_order_id
            r = await shop.api.client.post(
                f"/v1/orders/{oid}/captures", headers=shop.account.headers, json={"amount": 100_000}
            )
            assert r.status_code == 201, r.text
            gate.set()  # the 30 s are up
            await until(lambda: shop.book.get("SO-4").erp_state is ErpState.SHIPPED)
            await until(lambda: len(waits) == 2)

    shop.run(serve())
    assert waits == [30.0, 30.0]
    assert len(captured_postings(shop)) == 1
    assert {r.source for r in shop.the_inbox.raw_events()} == {"poll"}


def test_the_poller_needs_an_inbox(shop: Shop) -> None:
    with pytest.raises(ValueError, match="inbox"):
        create_service_app(shop.service, poll_every_s=30.0)


def test_serve_refuses_a_negative_poll_interval(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["serve", "--provider-url", BASE_URL, "--api-key", "sk_test_x", "--db", ":memory:"]
    assert integration_main([*argv, "--poll-every", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sandbank integration: error: --poll-every")
    assert err.count("\n") == 1


# --- GET /orders/{id} and the ledger ------------------------------------------------------------
def test_get_order_shows_every_posting_of_the_order_however_it_was_made(shop: Shop) -> None:
    """The service's own capture, a capture and a refund made at the provider (posted from
    polled events) and a dispute, opened and lost (posted by a reconciliation run), all show
    on the order; the settlement's fees and payout, and another order's postings, do not."""
    oid = authorized(shop, "SO-5")
    shipped = shop.post("/orders/SO-5/ship", {"amount": 60_000})
    assert shipped.status_code == 200, shipped.text
    other = authorized(shop, "SO-6", 50_000)
    assert shop.post("/orders/SO-6/ship", {"amount": 50_000}).status_code == 200
    elsewhere = shop.provider(f"/v1/orders/{oid}/captures", {"amount": 40_000})
    refund = shop.provider(f"/v1/orders/{oid}/refunds", {"amount": 10_000})
    shop.poll()
    shop.process()
    r = shop.api.post(
        f"/_sandbox/orders/{oid}/disputes",
        headers=ADMIN,
        json={"reason": "product_not_received", "amount": 20_000},
    )
    assert r.status_code == 201, r.text
    dispute = r.json()["id"]
    shop.api.advance(shop.account, "7d")  # the lines are batched and paid
    shop.run(run_reconciliation(shop.service.adapter, shop.ledger, shop.book))
    assert shop.ledger.postings(event_kind=EventKind.PAYOUT) != []

    got = shop.get("/orders/SO-5").json()
    (mine,) = [h["reference"] for h in got["holds"] if h["kind"] == "capture_pending"]
    assert [(p["event_kind"], p["reference"]) for p in got["ledger"]] == [
        ("captured", mine),
        ("captured", elsewhere["id"]),
        ("refunded", refund["id"]),
        ("dispute_opened", dispute),
        ("dispute_lost", dispute),  # no evidence in time: decided by the provider
    ]
    others = {p["reference"] for p in shop.get("/orders/SO-6").json()["ledger"]}
    assert others.isdisjoint(p["reference"] for p in got["ledger"])
    assert [p.order_id for p in shop.ledger.postings(event_kind=CAPTURED)].count(other) == 1
