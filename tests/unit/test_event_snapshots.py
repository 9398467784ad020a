"""One snapshot per object per state (issue #18, the POST's events): an event's document is
built around the JSON of its snapshot, and an operation's answer is that same snapshot when
nothing changed the object after its event. Nothing of what is stored or answered may change
by it: the documents are byte for byte what `Event` serialises, the answers what `of` builds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from factories import ADMIN, Account, Api, build_app, checkout_body

from simulator.api.schemas import CheckoutOut
from simulator.clock import ManualClock
from simulator.context import Ctx, Emitted
from simulator.domain.models import Checkout, Event, LineItem
from simulator.store.sqlite import SqliteStore

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def api() -> Iterator[Api]:
    clock = ManualClock(START)
    client = Api(build_app(clock=clock), clock)
    yield client
    client.close()


@pytest.fixture
def account(api: Api) -> Account:
    return api.new_account(seed=7)


def stored_documents(api: Api) -> dict[str, str]:
    store = api.app.runtime.store
    assert isinstance(store, SqliteStore)
    rows = store.conn.execute("SELECT id, data, typeof(data) FROM events ORDER BY seq")
    documents = {}
    for event_id, data, kind in rows:
        assert kind == "text"
        documents[event_id] = data
    return documents


def test_each_stored_event_is_byte_for_byte_what_the_event_model_serialises(
    api: Api, account: Account
) -> None:
    order = api.approved_order(account)
    h = account.headers
    assert api.post(f"/v1/orders/{order['id']}/captures", headers=h, json={"amount": 50_000})
    assert api.post(f"/v1/orders/{order['id']}/refunds", headers=h, json={"amount": 1_000})
    other = api.approved_order(account, 40_000)
    r = api.post(f"/v1/orders/{other['id']}/cancel", headers=h)
    assert r.status_code == 200, r.text
    invoice = {"number": "INV-1", "customer": {"name": "A", "email": "a@b.test"}, "amount": 900}
    assert api.post("/gateway/v1/invoices", headers=h, json=invoice).status_code == 201
    documents = stored_documents(api)
    types = {json.loads(d)["type"] for d in documents.values()}
    assert {"buyer.created", "order.captured", "order.canceled", "invoice.created"} <= types
    for document in documents.values():
        assert Event.model_validate_json(document).model_dump_json() == document


def test_a_created_checkout_answers_exactly_its_events_snapshot(api: Api, account: Account) -> None:
    r = api.post("/v1/checkouts", headers=account.headers, json=checkout_body())
    assert r.status_code == 201, r.text
    created = next(
        json.loads(d)
        for d in stored_documents(api).values()
        if json.loads(d)["type"] == "checkout.created"
    )
    assert created["data"] == r.json()
    assert r.content.decode() in stored_documents(api)[created["id"]]  # the same bytes


def test_an_approval_answers_the_checkout_as_its_last_event_shows_it(
    api: Api, account: Account
) -> None:
    checkout = api.checkout(account)
    r = api.post(f"/_sandbox/checkouts/{checkout['id']}/approve", headers=ADMIN, json={})
    assert r.status_code == 200, r.text
    events = [json.loads(d) for d in stored_documents(api).values()]
    last = [e for e in events if e["object_id"] == checkout["id"]][-1]
    assert last["type"] == "checkout.completed"
    assert last["data"] == r.json()


@pytest.fixture
def ctx(api: Api, account: Account) -> Iterator[Ctx]:
    service = api.app.runtime.service
    with service.scope(account.id) as ctx:
        yield ctx


def a_checkout(ctx: Ctx) -> Checkout:
    return Checkout(
        id="chk_1",
        amount=100,
        currency="USD",
        buyer_id="buy_1",
        return_url="https://shop.test/r",
        cancel_url="https://shop.test/c",
        url="https://sandbank.test/hosted/checkouts/chk_1",
        created_at=ctx.now,
        updated_at=ctx.now,
        expires_at=ctx.now,
    )


def test_an_unchanged_object_is_answered_with_its_snapshot(ctx: Ctx) -> None:
    checkout = a_checkout(ctx)
    snap = ctx.snapshot(checkout, CheckoutOut.of)
    assert ctx.shown(CheckoutOut.of, checkout) is snap.shown
    assert ctx.json_of(snap.shown) == snap.json
    assert ctx.snapshot(checkout, CheckoutOut.of) is snap  # emitted again in the same state


def test_an_object_changed_after_its_event_is_shown_as_it_is_now(ctx: Ctx) -> None:
    checkout = a_checkout(ctx)
    snap = ctx.snapshot(checkout, CheckoutOut.of)
    checkout.line_items.append(LineItem(name="Widget", quantity=1, unit_amount=100))  # nested
    shown = ctx.shown(CheckoutOut.of, checkout)
    assert shown is not snap.shown
    assert shown == CheckoutOut.of(checkout)
    assert ctx.json_of(shown) is None
    assert ctx.snapshot(checkout, CheckoutOut.of) is not snap  # a new state, a new snapshot


def test_a_snapshot_taken_by_another_presenter_is_not_reused(ctx: Ctx) -> None:
    checkout = a_checkout(ctx)
    snap = ctx.snapshot(checkout, CheckoutOut.of)

    def another(c: Checkout) -> CheckoutOut:  # the same shape, but not the snapshot's `of`
        return CheckoutOut.of(c)

    assert ctx.shown(another, checkout) is not snap.shown


def test_an_events_data_is_its_snapshot_as_json(ctx: Ctx) -> None:
    snap = ctx.snapshot(a_checkout(ctx), CheckoutOut.of)
    event = Emitted.of("evt_1", "checkout.created", "checkout", ctx.now, snap)
    assert event.data == snap.shown.model_dump(mode="json")
    assert json.loads(event.document)["data"] == event.data


def test_snapshots_are_forgotten_once_the_events_are_written(ctx: Ctx) -> None:
    checkout = a_checkout(ctx)
    snap = ctx.snapshot(checkout, CheckoutOut.of)
    ctx.forget_snapshots()
    assert ctx.shown(CheckoutOut.of, checkout) is not snap.shown
    assert ctx.json_of(snap.shown) is None
