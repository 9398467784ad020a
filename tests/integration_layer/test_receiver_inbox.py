"""The webhook receiver and its durable inbox.

Requests are signed with `standardwebhooks.Webhook(secret).sign(...)` and sent to the Starlette
app through `httpx.ASGITransport` (the `Client` below); the end-to-end tests put the real simulator
in front of the receiver (`webhook_transport=httpx.ASGITransport(app=receiver)`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks
from factories import ADMIN, Account, Api, build_app
from starlette.applications import Starlette

from integration.inbox import Inbox, OrderState
from integration.model import EventKind
from integration.receiver import (
    apoll_events,
    create_receiver,
    poll_events,
    process_pending,
    to_provider_event,
)
from integration.wallclock import utc_now
from simulator.clock import ManualClock

SECRET = "whsec_" + base64.b64encode(b"a" * 32).decode()
NEXT_SECRET = "whsec_" + base64.b64encode(b"b" * 32).decode()
STRANGER = "whsec_" + base64.b64encode(b"c" * 32).decode()
ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


# --- helpers -------------------------------------------------------------------------------------
def order_event(
    event_id: str,
    type_: str,
    status: str,
    *,
    captured: int = 0,
    refunded: int = 0,
    at: datetime = T0,
    order_id: str = "ord_1",
    currency: str = "USD",
) -> dict[str, Any]:
    """An event as `GET /v1/events/{id}` shows it (the order snapshot trimmed to what matters)."""
    return {
        "id": event_id,
        "object": "event",
        "type": type_,
        "object_type": "order",
        "object_id": order_id,
        "created_at": at.isoformat().replace("+00:00", "Z"),
        "api_version": "2026-03-01",
        "data": {
            "id": order_id,
            "object": "order",
            "status": status,
            "amount": 125_000,
            "currency": currency,
            "captured_amount": captured,
            "refunded_amount": refunded,
        },
    }


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def signed(
    body: bytes,
    msg_id: str,
    *secrets: str,
    at: datetime | None = None,
) -> dict[str, str]:
    when = at or datetime.now(UTC)
    signatures = " ".join(
        standardwebhooks.Webhook(s).sign(msg_id, when, body.decode()) for s in secrets or (SECRET,)
    )
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signatures,
    }


class Client:
    """A synchronous client over `httpx.ASGITransport`, on its own event loop."""

    def __init__(self, app: Starlette) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://erp.test"
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.client.post(url, **kwargs))


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    box = Inbox(clock=utc_now)
    yield box
    box.close()


@pytest.fixture
def client(inbox: Inbox) -> Iterator[Client]:
    with Client(create_receiver(inbox, SECRET, clock=utc_now)) as c:
        yield c


def deliver(client: Client, event: dict[str, Any], *secrets: str) -> httpx.Response:
    body = encode(event)
    return client.post("/webhooks", content=body, headers=signed(body, event["id"], *secrets))


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    doc = dict(response.json())
    assert doc["type"].endswith(code)
    assert doc["status"] == status
    assert doc["title"]
    assert doc["detail"]
    return doc


# --- receiving -----------------------------------------------------------------------------------
def test_a_valid_delivery_is_stored_byte_for_byte_and_answered_204(
    client: Client, inbox: Inbox
) -> None:
    # Odd spacing and key order: stored exactly as sent, not re-serialized.
    body = b'{ "id":"evt_1",  "type":"order.authorized", "object_type":"order" }'
    headers = signed(body, "evt_1")
    r = client.post("/webhooks", content=body, headers=headers)
    assert r.status_code == 204
    assert r.content == b""
    (row,) = inbox.raw_events()
    assert (row.webhook_id, row.body, row.source, row.status) == (
        "evt_1",
        body,
        "webhook",
        "queued",
    )
    assert row.headers["webhook-signature"] == headers["webhook-signature"]
    # What this receiver accepted, the reference library accepts too.
    standardwebhooks.Webhook(SECRET).verify(row.body, row.headers)


def test_a_duplicate_is_acknowledged_and_stored_once(client: Client, inbox: Inbox) -> None:
    event = order_event("evt_1", "order.authorized", "authorized")
    assert deliver(client, event).status_code == 204
    assert deliver(client, event).status_code == 204
    assert len(inbox.raw_events()) == 1
    assert process_pending(inbox) == 1
    assert deliver(client, event).status_code == 204  # even after it was processed
    assert [r.status for r in inbox.raw_events()] == ["processed"]


def tamper(headers: dict[str, str]) -> dict[str, str]:
    sig = base64.b64decode(headers["webhook-signature"].split(",")[1])
    flipped = bytes([sig[0] ^ 1]) + sig[1:]
    return {**headers, "webhook-signature": "v1," + base64.b64encode(flipped).decode()}


@pytest.mark.parametrize(
    ("make_headers", "code"),
    [
        (lambda b: signed(b, "evt_1", STRANGER), "invalid_signature"),
        (lambda b: tamper(signed(b, "evt_1")), "invalid_signature"),
        (lambda b: {**signed(b, "evt_2"), "webhook-id": "evt_1"}, "invalid_signature"),
        (lambda b: {**signed(b, "evt_1"), "webhook-signature": "v1"}, "invalid_signature"),
        (lambda b: {**signed(b, "evt_1"), "webhook-signature": "v1,@@@"}, "invalid_signature"),
        (lambda b: {**signed(b, "evt_1"), "webhook-signature": "v2,abcd"}, "invalid_signature"),
        (
            lambda b: signed(b, "evt_1", at=datetime.now(UTC) - timedelta(minutes=10)),
            "stale_timestamp",
        ),
        (
            lambda b: signed(b, "evt_1", at=datetime.now(UTC) + timedelta(minutes=10)),
            "stale_timestamp",
        ),
        (lambda b: {**signed(b, "evt_1"), "webhook-timestamp": "soon"}, "invalid_timestamp"),
        (
            lambda b: {k: v for k, v in signed(b, "evt_1").items() if k != "webhook-id"},
            "missing_headers",
        ),
        (
            lambda b: {k: v for k, v in signed(b, "evt_1").items() if k != "webhook-timestamp"},
            "missing_headers",
        ),
        (
            lambda b: {k: v for k, v in signed(b, "evt_1").items() if k != "webhook-signature"},
            "missing_headers",
        ),
        (lambda b: {"content-type": "application/json"}, "missing_headers"),
    ],
)
def test_a_bad_delivery_is_a_400_problem_and_nothing_is_stored(
    client: Client,
    inbox: Inbox,
    make_headers: Callable[[bytes], dict[str, str]],
    code: str,
) -> None:
    body = encode(order_event("evt_1", "order.authorized", "authorized"))
    headers = make_headers(body)
    assert_problem(client.post("/webhooks", content=body, headers=headers), 400, code)
    assert inbox.raw_events() == []
    # The reference library refuses the same request.
    with pytest.raises((standardwebhooks.WebhookVerificationError, ValueError)):
        standardwebhooks.Webhook(SECRET).verify(body, headers)


def test_a_body_changed_after_signing_is_rejected(client: Client, inbox: Inbox) -> None:
    body = encode(order_event("evt_1", "order.captured", "captured", captured=125_000))
    headers = signed(body, "evt_1")
    forged = body.replace(b"125000", b"999999")
    assert_problem(
        client.post("/webhooks", content=forged, headers=headers), 400, "invalid_signature"
    )
    assert inbox.raw_events() == []


def test_during_a_rotation_either_secret_is_accepted(inbox: Inbox) -> None:
    with Client(create_receiver(inbox, [SECRET, NEXT_SECRET], clock=utc_now)) as client:
        assert deliver(client, order_event("evt_1", "x.a", "authorized"), SECRET).status_code == 204
        assert deliver(client, order_event("evt_2", "x.b", "authorized"), NEXT_SECRET).is_success
        # Both signatures, space-separated, as a provider sends them during the overlap.
        both = order_event("evt_3", "x.c", "authorized")
        assert deliver(client, both, STRANGER, NEXT_SECRET).status_code == 204
        assert_problem(
            deliver(client, order_event("evt_4", "x.d", "a"), STRANGER), 400, "invalid_signature"
        )
    assert [r.webhook_id for r in inbox.raw_events()] == ["evt_1", "evt_2", "evt_3"]


def test_the_tolerance_is_checked_against_the_injected_clock(inbox: Inbox) -> None:
    ahead = datetime.now(UTC) + timedelta(seconds=90)
    strict = create_receiver(inbox, SECRET, clock=lambda: ahead, tolerance_s=60)
    with Client(strict) as client:
        assert_problem(deliver(client, order_event("evt_1", "t", "a")), 400, "stale_timestamp")
    with Client(create_receiver(inbox, SECRET, clock=lambda: ahead)) as client:
        assert deliver(client, order_event("evt_1", "t", "a")).status_code == 204


def test_an_oversized_body_is_refused(inbox: Inbox) -> None:
    with Client(create_receiver(inbox, SECRET, clock=utc_now, max_body=64)) as client:
        r = deliver(client, order_event("evt_1", "order.authorized", "authorized"))
    assert_problem(r, 413, "payload_too_large")
    assert inbox.raw_events() == []


def test_a_receiver_needs_a_valid_secret(inbox: Inbox) -> None:
    with pytest.raises(ValueError, match="at least one"):
        create_receiver(inbox, [], clock=utc_now)


# --- processing: never backwards -----------------------------------------------------------------
def state(inbox: Inbox, order_id: str = "ord_1") -> OrderState:
    found = inbox.order(order_id)
    assert found is not None
    return found


def test_captured_processed_before_authorized_stays_captured(client: Client, inbox: Inbox) -> None:
    later = T0 + timedelta(minutes=5)
    deliver(
        client, order_event("evt_cap", "order.captured", "captured", captured=125_000, at=later)
    )
    deliver(client, order_event("evt_auth", "order.authorized", "authorized"))
    assert process_pending(inbox) == 2
    s = state(inbox)
    assert (s.status, s.captured, s.refunded, s.currency) == ("captured", 125_000, 0, "USD")
    assert (s.last_event_id, s.last_event_at) == ("evt_cap", later)
    assert [r.status for r in inbox.raw_events()] == ["processed", "processed"]


def test_refunded_then_an_older_captured_stays_refunded(client: Client, inbox: Inbox) -> None:
    refunded = order_event(
        "evt_ref",
        "order.refunded",
        "refunded",
        captured=125_000,
        refunded=125_000,
        at=T0 + timedelta(hours=2),
    )
    deliver(client, refunded)
    process_pending(inbox)
    deliver(client, order_event("evt_cap", "order.captured", "captured", captured=125_000, at=T0))
    process_pending(inbox)
    s = state(inbox)
    assert (s.status, s.captured, s.refunded, s.last_event_id) == (
        "refunded",
        125_000,
        125_000,
        "evt_ref",
    )
    # The older event is kept raw all the same.
    assert inbox.raw_event("evt_cap") is not None


def test_within_a_rank_the_newer_event_wins_and_amounts_never_decrease(inbox: Inbox) -> None:
    def apply(event: dict[str, Any]) -> str:
        return inbox.apply(to_provider_event(event)).outcome

    second = order_event(
        "evt_2", "order.captured", "partially_captured", captured=75_000, at=T0 + timedelta(1)
    )
    first = order_event("evt_1", "order.captured", "partially_captured", captured=50_000, at=T0)
    assert apply(second) == "created"
    assert apply(first) == "stale"
    assert (state(inbox).captured, state(inbox).last_event_id) == (75_000, "evt_2")
    assert apply(second) == "stale"  # a replay changes nothing
    # A higher rank with (impossibly) smaller amounts moves the status, not the amounts.
    odd = order_event("evt_3", "order.refunded", "partially_refunded", captured=1, refunded=10)
    assert apply(odd) == "advanced"
    s = state(inbox)
    assert (s.status, s.captured, s.refunded) == ("partially_refunded", 75_000, 10)
    # An older, lower-ranked snapshot that knew a larger amount still grows the amount.
    richer = order_event("evt_4", "order.captured", "captured", captured=125_000, at=T0)
    assert apply(richer) == "merged"
    s = state(inbox)
    assert (s.status, s.captured, s.last_event_id) == ("partially_refunded", 125_000, "evt_3")


def test_terminal_states_stick_and_pending_maps_to_canonical(inbox: Inbox) -> None:
    inbox.apply(to_provider_event(order_event("e1", "order.pending_review", "pending_review")))
    assert state(inbox).status == "pending"
    late = T0 + timedelta(hours=1)
    inbox.apply(to_provider_event(order_event("e2", "order.canceled", "canceled", at=late)))
    inbox.apply(to_provider_event(order_event("e3", "order.authorized", "authorized")))
    assert state(inbox).status == "canceled"


def test_events_map_to_canonical_kinds() -> None:
    cap = to_provider_event(order_event("e1", "order.captured", "captured"))
    assert (cap.kind, cap.provider_order_id, cap.at) == (EventKind.CAPTURED, "ord_1", T0)
    updated = to_provider_event(order_event("e2", "order.updated", "authorized"))
    assert updated.kind is None
    completed = to_provider_event(
        {
            "id": "e3",
            "type": "checkout.completed",
            "object_type": "checkout",
            "object_id": "chk_1",
            "created_at": "2026-03-01T09:00:00Z",
            "data": {"id": "chk_1", "status": "completed", "order_id": "ord_9"},
        }
    )
    assert (completed.kind, completed.provider_order_id) == (None, "ord_9")


def test_unknown_and_non_order_types_are_processed_without_error(
    client: Client, inbox: Inbox
) -> None:
    future = order_event("evt_f", "order.future_thing", "teleported")
    buyer = {
        "id": "evt_b",
        "object": "event",
        "type": "buyer.created",
        "object_type": "buyer",
        "object_id": "buy_1",
        "created_at": "2026-03-01T09:00:00Z",
        "api_version": "2026-03-01",
        "data": {"id": "buy_1", "object": "buyer"},
    }
    thin = {**order_event("evt_t", "order.captured", "captured"), "data": {"id": "ord_1"}}
    for event in (future, buyer, thin):
        assert deliver(client, event).status_code == 204
    assert process_pending(inbox) == 3
    assert [r.status for r in inbox.raw_events()] == ["processed"] * 3
    assert inbox.orders() == []


def test_a_signed_body_that_is_not_an_event_is_acknowledged_and_quarantined(
    client: Client, inbox: Inbox
) -> None:
    for msg_id, body in (("evt_x", b"{not json"), ("evt_y", b'["a list"]'), ("evt_z", b"{}")):
        r = client.post("/webhooks", content=body, headers=signed(body, msg_id))
        assert r.status_code == 204
    assert process_pending(inbox) == 3
    rows = inbox.raw_events()
    assert [r.status for r in rows] == ["failed"] * 3
    assert all(r.last_error and r.last_error.startswith("unparseable") for r in rows)
    assert all(r.next_attempt_at is None for r in rows)  # never retried
    assert inbox.next_batch() == []


def test_a_failure_while_applying_is_retried_later_with_backoff() -> None:
    now = [T0]
    inbox = Inbox(clock=lambda: now[0], max_attempts=3)
    body = encode(order_event("evt_1", "order.authorized", "authorized"))
    inbox.accept("evt_1", {}, body, "webhook")
    calls: list[str] = []

    def flaky(event: Any, applied: Any) -> None:
        calls.append(event.provider_event_id)
        if len(calls) == 1:
            raise RuntimeError("ledger unavailable")

    assert process_pending(inbox, on_event=flaky) == 1
    (row,) = inbox.raw_events()
    assert (row.status, row.attempts, row.last_error) == (
        "failed",
        1,
        "RuntimeError: ledger unavailable",
    )
    assert row.next_attempt_at == T0 + timedelta(seconds=1)
    assert inbox.order("ord_1") is None  # the failed attempt rolled back its apply
    assert process_pending(inbox, on_event=flaky) == 0  # not yet due
    now[0] += timedelta(seconds=1)
    assert process_pending(inbox, on_event=flaky) == 1
    assert inbox.raw_events()[0].status == "processed"
    assert state(inbox).status == "authorized"
    inbox.close()


def test_retries_stop_after_max_attempts() -> None:
    now = [T0]
    inbox = Inbox(clock=lambda: now[0], max_attempts=2)
    inbox.accept("evt_1", {}, b"{}", "webhook")
    (row,) = inbox.next_batch()
    inbox.mark_failed(row.id, "boom")
    now[0] += timedelta(hours=2)
    (row,) = inbox.next_batch()
    inbox.mark_failed(row.id, "boom again")
    now[0] += timedelta(days=1)
    assert inbox.next_batch() == []
    assert inbox.raw_events("failed")[0].attempts == 2
    inbox.close()


# --- polling -------------------------------------------------------------------------------------
def pages(events: list[dict[str, Any]], size: int) -> Callable[[str | None], Any]:
    """A fake `GET /v1/events`: newest first, `size` a page, the cursor is an offset."""
    newest_first = events[::-1]

    def fetch(cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        start = int(cursor or 0)
        chunk = newest_first[start : start + size]
        more = start + size < len(newest_first)
        return chunk, str(start + size) if more else None

    return fetch


def test_the_poller_catches_missed_events_and_dedupes_against_webhooks(
    client: Client, inbox: Inbox
) -> None:
    events = [
        order_event("evt_1", "order.authorized", "authorized"),
        order_event("evt_2", "order.captured", "partially_captured", captured=50_000),
        order_event("evt_3", "order.captured", "captured", captured=125_000),
    ]
    deliver(client, events[0])
    deliver(client, events[2])  # evt_2 was never delivered
    assert poll_events(pages(events, 2), inbox) == 1
    assert poll_events(pages(events, 2), inbox) == 0
    rows = {r.webhook_id: r for r in inbox.raw_events()}
    assert {k: r.source for k, r in rows.items()} == {
        "evt_1": "webhook",
        "evt_2": "poll",
        "evt_3": "webhook",
    }
    assert json.loads(rows["evt_2"].body) == events[1]
    assert process_pending(inbox) == 3
    assert (state(inbox).status, state(inbox).captured) == ("captured", 125_000)
    # A webhook arriving after the poller found the event is still a 204 and still one row.
    assert deliver(client, events[1]).status_code == 204
    assert len(inbox.raw_events()) == 3


def test_the_poller_walks_every_page_unless_bounded(inbox: Inbox) -> None:
    events = [order_event(f"evt_{i}", "order.updated", "authorized") for i in range(7)]
    assert poll_events(pages(events, 3), inbox, max_pages=1) == 3
    assert [r.webhook_id for r in inbox.raw_events()] == ["evt_4", "evt_5", "evt_6"]
    assert poll_events(pages(events, 3), inbox) == 4

    async def fetch(cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        return pages(events, 3)(cursor)  # type: ignore[no-any-return]

    assert asyncio.run(apoll_events(fetch, inbox)) == 0


# --- durability ----------------------------------------------------------------------------------
def test_an_accepted_event_survives_a_restart_and_is_processed_once(tmp_path: Path) -> None:
    path = tmp_path / "inbox.sqlite"
    first = Inbox(path, clock=utc_now)
    with Client(create_receiver(first, SECRET, clock=utc_now)) as client:
        event = order_event("evt_1", "order.captured", "captured", captured=125_000)
        assert deliver(client, event).status_code == 204
    # No close(): the process "dies" here; a new one opens the same file.
    second = Inbox(path, clock=utc_now)
    (row,) = second.next_batch()
    assert (row.webhook_id, row.status) == ("evt_1", "queued")
    assert row.body == encode(event)
    assert process_pending(second) == 1
    assert process_pending(second) == 0
    second.close()
    third = Inbox(path, clock=utc_now)
    assert state(third).status == "captured"
    assert third.accept("evt_1", {}, b"again", "poll") is False
    third.close()
    first.close()


def test_an_acknowledged_event_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "inbox.sqlite"
    script = (
        "import os, signal, sys\n"
        "from integration.inbox import Inbox\n"
        "from integration.wallclock import utc_now\n"
        "box = Inbox(sys.argv[1], clock=utc_now)\n"
        "assert box.accept('evt_1', {'webhook-id': 'evt_1'}, b'{\"raw\": 1}', 'webhook')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], env=env, check=False, timeout=60
    )
    assert done.returncode == -9
    inbox = Inbox(path, clock=utc_now)
    (row,) = inbox.raw_events()
    assert (row.webhook_id, row.body, row.status) == ("evt_1", b'{"raw": 1}', "queued")
    inbox.close()


# --- end to end, with the real simulator ---------------------------------------------------------
HOOK = "http://127.0.0.1:9/webhooks"


class Harness:
    """The simulator delivering to the receiver in-process; the receiver is bound late,
    because its secret comes from the endpoint the simulator creates."""

    def __init__(self) -> None:
        self.inbox = Inbox(clock=utc_now)
        self.receiver: Starlette | None = None
        wall = ManualClock(datetime.now(UTC).replace(microsecond=0))
        sim = build_app(clock=wall, webhook_transport=httpx.ASGITransport(app=self.asgi))
        self.api = Api(sim, wall)
        self.account: Account = self.api.new_account(seed=7)
        r = self.api.post("/v1/webhook_endpoints", headers=self.account.headers, json={"url": HOOK})
        assert r.status_code == 201, r.text
        self.endpoint = dict(r.json())
        self.receiver = create_receiver(self.inbox, self.endpoint["secret"], clock=utc_now)

    async def asgi(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.receiver is not None
        await self.receiver(scope, receive, send)

    def quirks(self, **q: Any) -> None:
        r = self.api.put(
            f"/_sandbox/webhook_endpoints/{self.endpoint['id']}/quirks", headers=ADMIN, json=q
        )
        assert r.status_code == 200, r.text

    def flush(self) -> int:
        r = self.api.post("/_sandbox/webhooks/flush", headers=ADMIN, json={})
        assert r.status_code == 200, r.text
        return int(r.json()["attempts"])

    def lifecycle(self) -> str:
        """Checkout -> approve -> capture part, capture the rest -> refund part."""
        order = self.api.approved_order(self.account, 125_000)
        oid = str(order["id"])
        h = self.account.headers
        for amount in (50_000, 75_000):
            r = self.api.post(f"/v1/orders/{oid}/captures", headers=h, json={"amount": amount})
            assert r.status_code == 201, r.text
        r = self.api.post(f"/v1/orders/{oid}/refunds", headers=h, json={"amount": 25_000})
        assert r.status_code == 201, r.text
        return oid

    def fetch_page(self, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        params: dict[str, Any] = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        r = self.api.get("/v1/events", headers=self.account.headers, params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        return list(page["data"]), page["next_cursor"]

    def assert_matches_provider(self, oid: str) -> None:
        provider = self.api.order(self.account, oid)
        mine = self.inbox.order(oid)
        assert mine is not None
        assert (mine.status, mine.captured, mine.refunded, mine.currency) == (
            provider["status"],
            provider["captured_amount"],
            provider["refunded_amount"],
            provider["currency"],
        )
        assert provider["status"] == "partially_refunded"

    def close(self) -> None:
        self.api.close()
        self.inbox.close()


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.close()


@pytest.mark.parametrize("quirky", [False, True], ids=["plain", "duplicate+reorder"])
def test_end_to_end_the_inbox_state_matches_the_provider(harness: Harness, quirky: bool) -> None:
    if quirky:
        harness.quirks(duplicate={"probability": 1.0, "copies": 2}, reorder={"window_ms": 10_000})
    oid = harness.lifecycle()
    if quirky:
        harness.api.advance(harness.account, "11s")
    assert harness.flush() > 0
    assert harness.inbox.raw_events(), "nothing arrived"
    attempts = [
        a
        for d in harness.api.get(
            "/_sandbox/webhooks/deliveries", headers=ADMIN, params={"account": harness.account.id}
        ).json()["data"]
        for a in d["attempts"]
    ]
    assert attempts
    assert all(a["status"] == 204 for a in attempts)
    events = harness.api.events(harness.account)
    # Every event arrived exactly once in the inbox, byte for byte as the provider lists it.
    rows = harness.inbox.raw_events()
    if quirky:
        assert any("duplicate x2" in a["quirks"] for a in attempts)
        # Arrival order (the inbox's) is not the provider's order.
        assert [r.webhook_id for r in rows] != [e["id"] for e in events]
    assert sorted(r.webhook_id for r in rows) == sorted(e["id"] for e in events)
    listed = {e["id"]: e for e in events}
    assert all(json.loads(r.body) == listed[r.webhook_id] for r in rows)
    assert process_pending(harness.inbox, limit=1000) == len(rows)
    harness.assert_matches_provider(oid)


def test_end_to_end_the_poller_recovers_dropped_deliveries(harness: Harness) -> None:
    harness.quirks(drop={"first": 4})
    oid = harness.lifecycle()
    harness.flush()
    delivered = {r.webhook_id for r in harness.inbox.raw_events()}
    process_pending(harness.inbox, limit=1000)
    provider = harness.api.order(harness.account, oid)
    events = harness.api.events(harness.account)
    assert len(delivered) == len(events) - 4
    assert poll_events(harness.fetch_page, harness.inbox) == 4
    assert process_pending(harness.inbox, limit=1000) == 4
    assert provider["status"] == "partially_refunded"
    harness.assert_matches_provider(oid)
    sources = [r.source for r in harness.inbox.raw_events()]
    assert (sources.count("webhook"), sources.count("poll")) == (len(events) - 4, 4)
