"""The ticket sink against the in-process simulator and an in-process fake desk: overdue
invoices and disputes open one ticket each (however often their events come), their
settlement solves it, a ticket solved at the desk shows on the ERP order, a desk that is
down loses nothing, and a buyer who defaults gets the ticket escalated."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from factories import ADMIN
from shop_harness import Shop, order_body
from starlette.types import ASGIApp

from fakes.servicenow import create_servicenow_app
from fakes.zendesk import create_zendesk_app
from integration.adapters import make_ticket_system
from integration.receiver import parse
from integration.tickets import TicketSink

RETRY = {"base_s": 0.1, "max_wait_s": 1.0, "max_attempts": 2, "max_total_s": 5.0}
DESKS = {
    "zendesk": (
        lambda clock: create_zendesk_app(token="tok", clock=clock),
        {"email": "ops@shop.test", "token": "tok"},
    ),
    "servicenow": (
        lambda clock: create_servicenow_app(user="ops", password="pw", clock=clock),
        {"user": "ops", "password": "pw"},
    ),
}


@dataclass
class Flaky(httpx.AsyncBaseTransport):
    """The desk behind a switch: `down` refuses connections; `lose_next_create` forwards the
    next create and then loses its answer (the desk made the ticket; the sink cannot know)."""

    inner: httpx.AsyncBaseTransport
    down: bool = False
    lose_next_create: bool = False
    garble_next: bool = False  # answer one request with a 200 that is no ticket
    calls: list[str] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(f"{request.method} {request.url.path}")
        if self.down:
            raise httpx.ConnectError("desk down", request=request)
        response = await self.inner.handle_async_request(request)
        if self.garble_next:
            self.garble_next = False
            return httpx.Response(200, json={"unexpected": True}, request=request)
        if self.lose_next_create and request.method == "POST":
            self.lose_next_create = False
            raise httpx.ReadError("answer lost", request=request)
        return response


@dataclass
class Desk:
    name: str
    app: ASGIApp
    wire: Flaky
    sink: TicketSink
    shop: Shop
    now: list[datetime]

    def tickets(self) -> list[dict[str, Any]]:
        """Every ticket at the desk, as the desk shows it."""
        auth = DESKS[self.name][1]
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://d")
        if self.name == "zendesk":
            r = self.shop.run(
                http.get("/api/v2/tickets.json", auth=(f"{auth['email']}/token", auth["token"]))
            )
            return list(r.json()["tickets"])
        r = self.shop.run(
            http.get("/api/now/table/incident", auth=(auth["user"], auth["password"]))
        )
        return list(r.json()["result"])

    def solve_at_desk(self, system_id: str) -> None:
        """An agent solves the ticket in the desk's own UI."""
        auth = DESKS[self.name][1]
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://d")
        if self.name == "zendesk":
            call = http.put(
                f"/api/v2/tickets/{system_id}.json",
                json={"ticket": {"status": "solved"}},
                auth=(f"{auth['email']}/token", auth["token"]),
            )
        else:
            call = http.patch(
                f"/api/now/table/incident/{system_id}",
                json={"state": "7"},
                auth=(auth["user"], auth["password"]),
            )
        assert self.shop.run(call).status_code == 200

    def round(self) -> None:
        """Events in, then the resumer's round (the sink's run)."""
        self.shop.poll()
        self.shop.process()
        self.shop.resume()


def with_desk(shop: Shop, name: str, default_after_days: int = 30) -> Desk:
    make_app, credentials = DESKS[name]
    now = [shop.wall()]
    app = make_app(lambda: now[0])
    wire = Flaky(httpx.ASGITransport(app=app))
    system = make_ticket_system(
        {"system": name, "base_url": "http://desk.test", "retry": RETRY, **credentials},
        store=shop.store,
        now=shop.wall,
        clock=lambda: shop.monotonic,
        sleep=shop.sleep,
        random=lambda: 0.5,
        transport=wire,
    )
    sink = TicketSink(system, shop.db, clock=lambda: now[0], default_after_days=default_after_days)
    shop.service.tickets = sink
    return Desk(name, app, wire, sink, shop, now)


def gateway_order(shop: Shop, order_id: str, behaviour: str, amount: int = 40_000) -> None:
    body = order_body(order_id, amount)
    body["buyer"]["email"] = f"ap+{behaviour}@acme.test"
    assert shop.post("/orders", body).status_code == 201
    assert shop.post(f"/orders/{order_id}/ship", {"amount": amount}).status_code == 200


@pytest.fixture(params=sorted(DESKS))
def desk_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_an_overdue_invoice_opens_one_ticket_and_its_payment_solves_it(
    new_shop: Callable[..., Shop], desk_name: str
) -> None:
    shop = new_shop(retry=RETRY, provider="gateway", inbox=True)
    desk = with_desk(shop, desk_name)
    gateway_order(shop, "SO-1", "pays_late")
    shop.api.advance(shop.account, "31d")
    desk.round()
    (ticket,) = desk.tickets()
    (case,) = shop.get("/orders/SO-1").json()["tickets"]
    assert (case["kind"], case["status"], case["amount"]) == ("collection", "open", 40_000)
    # Every event again (a redelivery, a replay, a second poll): still one ticket.
    for raw in shop.the_inbox.raw_events():
        shop.service.tickets.observe(parse(raw))  # type: ignore[union-attr]
    desk.round()
    assert len(desk.tickets()) == 1

    shop.api.advance(shop.account, "11d")  # the late buyer pays in full
    desk.round()
    (ticket,) = desk.tickets()
    assert ticket["status" if desk_name == "zendesk" else "state"] in ("solved", "6")
    (case,) = shop.get("/orders/SO-1").json()["tickets"]
    assert (case["status"], case["outcome"]) == ("solved", "paid in full")


def test_a_ticket_solved_at_the_desk_shows_on_the_erp_order(
    new_shop: Callable[..., Shop], desk_name: str
) -> None:
    shop = new_shop(retry=RETRY, provider="gateway", inbox=True)
    desk = with_desk(shop, desk_name)
    gateway_order(shop, "SO-2", "defaults")
    shop.api.advance(shop.account, "31d")
    desk.round()
    (case,) = desk.sink.cases()
    assert case.system_id is not None
    desk.solve_at_desk(case.system_id)
    shop.resume()
    (shown,) = shop.get("/orders/SO-2").json()["tickets"]
    assert (shown["status"], shown["outcome"]) == ("solved", None)


def test_a_dispute_opens_a_ticket_and_its_loss_solves_it(
    new_shop: Callable[..., Shop], desk_name: str
) -> None:
    shop = new_shop(retry=RETRY, provider="sandbank", inbox=True)
    desk = with_desk(shop, desk_name)
    r = shop.post("/orders", order_body("SO-3", 50_000))
    shop.api.approve(r.json()["provider_checkout_id"])
    assert shop.post("/orders/SO-3/ship", {"amount": 50_000}).status_code == 200
    order_id = shop.get("/orders/SO-3").json()["provider_order_id"]
    r = shop.api.post(
        f"/_sandbox/orders/{order_id}/disputes",
        headers=ADMIN,
        json={"reason": "product_not_received", "amount": 20_000},
    )
    assert r.status_code == 201, r.text
    desk.round()
    assert len(desk.tickets()) == 1
    (case,) = shop.get("/orders/SO-3").json()["tickets"]
    assert (case["kind"], case["amount"], case["status"]) == ("dispute", 20_000, "open")
    shop.api.advance(shop.account, "8d")  # unanswered past respond_by: lost
    desk.round()
    (case,) = shop.get("/orders/SO-3").json()["tickets"]
    assert (case["status"], case["outcome"]) == ("solved", "lost")
    assert len(desk.tickets()) == 1


def test_a_desk_that_is_down_keeps_the_work_and_a_lost_or_garbled_answer_opens_no_second_ticket(
    new_shop: Callable[..., Shop], desk_name: str
) -> None:
    shop = new_shop(retry=RETRY, provider="gateway", inbox=True)
    desk = with_desk(shop, desk_name)
    gateway_order(shop, "SO-4", "pays_late")
    gateway_order(shop, "SO-5", "defaults")
    shop.api.advance(shop.account, "31d")
    desk.wire.down = True
    desk.round()
    assert desk.wire.calls  # it tried (with retries) ...
    assert desk.tickets() == []
    owed = desk.sink.owed()
    assert len(owed) == 2  # ... and kept both
    assert owed[0].last_error
    desk.wire.down = False
    shop.monotonic += 60  # the breaker's cooldown passes
    desk.wire.lose_next_create = True  # the first ticket is made, its answer lost
    desk.round()
    desk.wire.garble_next = True  # then an answer that is no ticket at all
    desk.round()
    desk.round()
    desk.round()
    assert desk.sink.owed() == []
    key = "external_id" if desk_name == "zendesk" else "correlation_id"
    assert sorted(t[key] for t in desk.tickets()) == sorted(
        c.obligation_id for c in desk.sink.cases()
    )
    assert len(desk.tickets()) == 2


def test_a_buyer_who_defaults_gets_the_ticket_escalated_once(
    new_shop: Callable[..., Shop],
) -> None:
    shop = new_shop(retry=RETRY, provider="gateway", inbox=True)
    desk = with_desk(shop, "zendesk", default_after_days=30)
    gateway_order(shop, "SO-6", "defaults")
    shop.api.advance(shop.account, "31d")
    desk.round()
    (case,) = desk.sink.cases()
    assert case.due_date is not None
    desk.now[0] = datetime.combine(case.due_date, datetime.min.time(), desk.now[0].tzinfo)
    desk.now[0] += timedelta(days=31)
    desk.round()
    desk.round()
    (ticket,) = desk.tickets()
    assert ticket["priority"] == "urgent"
    assert "default" in ticket["tags"]
    assert shop.get("/orders/SO-6").json()["tickets"][0]["defaulted"] is True


def test_an_edi_invoice_the_buyer_never_pays_opens_a_collection_ticket_from_its_dunning(
    new_shop: Callable[..., Shop],
) -> None:
    # Traditional invoicing says "past due" with its dunning (`collections.reminder`), on
    # `edi_invoice` objects: the sink must read them as the gateway's `invoice.overdue`.
    shop = new_shop(retry=RETRY, provider="invoicing", inbox=True)
    desk = with_desk(shop, "zendesk")
    gateway_order(shop, "SO-7", "defaults")
    gateway_order(shop, "SO-8", "pays_on_time")
    shop.api.advance(shop.account, "31d")
    desk.round()
    (ticket,) = desk.tickets()
    (case,) = shop.get("/orders/SO-7").json()["tickets"]
    assert (case["kind"], case["status"], case["amount"]) == ("collection", "open", 40_000)
    assert shop.get("/orders/SO-8").json()["tickets"] == []
    assert ticket["external_id"] == desk.sink.cases()[0].obligation_id


def test_a_virtual_card_that_comes_late_opens_a_collection_ticket_and_its_capture_solves_it(
    new_shop: Callable[..., Shop],
) -> None:
    # Virtual cards say "past due" on `vcard_invoice` objects (the gateway's invoice shape).
    shop = new_shop(retry=RETRY, provider="vcard", inbox=True)
    desk = with_desk(shop, "servicenow")
    gateway_order(shop, "SO-9", "pays_late")
    shop.api.advance(shop.account, "31d")
    desk.round()
    assert len(desk.tickets()) == 1
    (case,) = shop.get("/orders/SO-9").json()["tickets"]
    assert (case["kind"], case["status"], case["amount"]) == ("collection", "open", 40_000)
    shop.api.advance(shop.account, "15d")  # the AP's card, 10 days late, captured and paid
    desk.round()
    (case,) = shop.get("/orders/SO-9").json()["tickets"]
    assert (case["status"], case["outcome"]) == ("solved", "paid in full")
