"""Webhooks in-process: endpoints, Standard Webhooks signatures (verified with the
`standardwebhooks` package), retries on the account clock, 410 and long failure, rotation,
quirks, determinism, recovery, replay, SSRF safety, and the events API. The receiver is an
httpx MockTransport handler; the real-socket behaviour is in tests/e2e."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks
from factories import (
    ADMIN,
    ADMIN_TOKEN,
    BASE_URL,
    Account,
    Api,
    build_app,
    checkout_body,
    deterministic_entropy,
)

from simulator.app import SandbankApp, create_app
from simulator.clock import ManualClock
from simulator.settings import Settings
from simulator.webhooks.dispatcher import PER_ENDPOINT

HOOK = "http://127.0.0.1:9/hook"
SCHEDULE = [0, 5, 300, 1800, 7200, 18000, 36000, 36000]


@dataclass
class Receiver:
    """Records every webhook request; answers `status` (or what `answer` returns)."""

    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    answer: Callable[[httpx.Request], httpx.Response] | None = None
    seen: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if self.answer is not None:
            return self.answer(request)
        return httpx.Response(self.status, headers=self.headers, text="ok")

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.seen]

    def types(self) -> list[str]:
        return [b["type"] for b in self.bodies()]


def build(receiver: Receiver, clock: ManualClock, seed: int = 1, **settings: Any) -> SandbankApp:
    return build_app(
        seed=seed, clock=clock, webhook_transport=httpx.MockTransport(receiver), **settings
    )


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def wall() -> ManualClock:
    # Near real time: standardwebhooks checks `webhook-timestamp` against the real clock.
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def hooks(receiver: Receiver, wall: ManualClock) -> Iterator[Api]:
    api = Api(build(receiver, wall), wall)
    yield api
    api.close()


@pytest.fixture
def acct(hooks: Api) -> Account:
    return hooks.new_account(seed=7)


def endpoint(api: Api, account: Account, **body: Any) -> dict[str, Any]:
    r = api.post("/v1/webhook_endpoints", headers=account.headers, json={"url": HOOK, **body})
    assert r.status_code == 201, r.text
    return dict(r.json())


def flush(api: Api) -> int:
    r = api.post("/_sandbox/webhooks/flush", headers=ADMIN, json={})
    assert r.status_code == 200, r.text
    return int(r.json()["attempts"])


def deliveries(api: Api, account: Account, **params: Any) -> list[dict[str, Any]]:
    r = api.get(
        "/_sandbox/webhooks/deliveries", headers=ADMIN, params={"account": account.id, **params}
    )
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def new_buyer(api: Api, account: Account, name: str = "Acme Supply Co") -> dict[str, Any]:
    r = api.post(
        "/v1/buyers",
        headers=account.headers,
        json={"legal_name": name, "email": "ap+approve@acme.test"},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def verify(secret: str, request: httpx.Request) -> dict[str, Any]:
    return dict(standardwebhooks.Webhook(secret).verify(request.content, dict(request.headers)))


# --- delivery ------------------------------------------------------------------------------------
def test_a_committed_event_is_delivered_signed_as_the_event_api_shows_it(
    hooks: Api, acct: Account, receiver: Receiver
) -> None:
    ep = endpoint(hooks, acct)
    assert ep["secret"].startswith("whsec_")
    buyer = new_buyer(hooks, acct)
    # The API wrote only the event: the dispatcher fans it out (here: the flush does).
    assert deliveries(hooks, acct) == []
    assert flush(hooks) == 1
    (request,) = receiver.seen
    payload = verify(ep["secret"], request)
    event = hooks.get(f"/v1/events/{request.headers['webhook-id']}", headers=acct.headers).json()
    assert payload == event
    assert (payload["type"], payload["data"]["id"]) == ("buyer.created", buyer["id"])
    assert deliveries(hooks, acct)[0]["status"] == "succeeded"


def test_an_endpoint_gets_only_the_event_types_it_enabled(
    hooks: Api, acct: Account, receiver: Receiver
) -> None:
    endpoint(hooks, acct, enabled_events=["checkout.created"])
    hooks.post("/v1/checkouts", headers=acct.headers, json=checkout_body())
    flush(hooks)
    assert receiver.types() == ["checkout.created"]


def test_unknown_event_types_are_refused(hooks: Api, acct: Account) -> None:
    r = hooks.post(
        "/v1/webhook_endpoints",
        headers=acct.headers,
        json={"url": HOOK, "enabled_events": ["order.exploded"]},
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"].startswith("body.enabled_events")


# --- retries on the account clock --------------------------------------------------------------
def test_three_days_of_retries_run_at_their_own_times_on_the_account_clock(
    hooks: Api, acct: Account, receiver: Receiver
) -> None:
    receiver.status = 500
    endpoint(hooks, acct)
    new_buyer(hooks, acct)
    flush(hooks)
    (d,) = deliveries(hooks, acct)
    assert [a["outcome"] for a in d["attempts"]] == ["failed"]
    first = datetime.fromisoformat(d["attempts"][0]["at"])
    gap = datetime.fromisoformat(d["next_attempt_at"]) - first
    assert timedelta(seconds=4) <= gap <= timedelta(seconds=6)
    hooks.advance(acct, "3d")
    flush(hooks)
    (d,) = deliveries(hooks, acct)
    assert d["status"] == "failed"  # the schedule ran out
    times = [datetime.fromisoformat(a["at"]) for a in d["attempts"]]
    assert len(times) == len(SCHEDULE) == len(receiver.seen)
    for (a, b), base in zip(itertools.pairwise(times), SCHEDULE[1:], strict=True):
        assert base * 0.8 <= (b - a).total_seconds() <= base * 1.2 + 0.001
    assert len({r.headers["webhook-id"] for r in receiver.seen}) == 1  # one message, retried


def test_a_later_success_ends_the_retries(hooks: Api, acct: Account, receiver: Receiver) -> None:
    receiver.status = 502
    endpoint(hooks, acct)
    new_buyer(hooks, acct)
    flush(hooks)
    receiver.status = 200
    hooks.advance(acct, "1m")
    flush(hooks)
    (d,) = deliveries(hooks, acct)
    assert [a["outcome"] for a in d["attempts"]] == ["failed", "succeeded"]
    assert d["status"] == "succeeded"


def test_a_redirect_is_a_failure(hooks: Api, acct: Account, receiver: Receiver) -> None:
    receiver.status = 301
    receiver.headers = {"location": "http://127.0.0.1:9/elsewhere"}
    endpoint(hooks, acct)
    new_buyer(hooks, acct)
    flush(hooks)
    (d,) = deliveries(hooks, acct)
    assert (d["attempts"][0]["status"], d["attempts"][0]["outcome"]) == (301, "failed")
    assert d["status"] == "pending"


def test_retry_after_is_honoured_within_svix_bounds(
    hooks: Api, acct: Account, receiver: Receiver
) -> None:
    receiver.status = 503
    receiver.headers = {"retry-after": "8"}
    endpoint(hooks, acct)
    new_buyer(hooks, acct)
    flush(hooks)
    (d,) = deliveries(hooks, acct)
    gap = datetime.fromisoformat(d["next_attempt_at"]) - datetime.fromisoformat(
        d["attempts"][0]["at"]
    )
    # scheduled ~5 s; Retry-After 8 s is honoured (clamped to [scheduled, 2 x scheduled])
    assert timedelta(seconds=8) <= gap <= timedelta(seconds=12)


def test_a_429_waits_at_least_a_minute(hooks: Api, acct: Account, receiver: Receiver) -> None:
    receiver.status = 429
    endpoint(hooks, acct)
    new_buyer(hooks, acct)
    flush(hooks)
    (d,) = deliveries(hooks, acct)
    gap = datetime.fromisoformat(d["next_attempt_at"]) - datetime.fromisoformat(
        d["attempts"][0]["at"]
    )
    assert gap >= timedelta(seconds=60)


def test_410_gone_disables_the_endpoint_and_says_so_in_an_event(
    hooks: Api, acct: Account, receiver: Receiver
) -> None:
    receiver.status = 410
    ep = endpoint(hooks, acct)
    new_buyer(hooks, acct)
    flush(hooks)
    got = hooks.get(f"/v1/webhook_endpoints/{ep['id']}", headers=acct.headers).json()
    assert (got["status"], got["disabled_reason"]) == ("disabled", "the endpoint answered 410 Gone")
    events = hooks.get(
        "/v1/events", headers=acct.headers, params={"type": "webhook_endpoint.disabled"}
    )
    (event,) = events.json()["data"]
    assert event["data"]["id"] == ep["id"]
    assert "secret" not in event["data"]
    new_buyer(hooks, acct, "Second Co")
    assert flush(hooks) == 0  # a disabled endpoint gets nothing


def test_an_endpoint_failing_for_five_days_is_disabled(hooks: Api, receiver: Receiver) -> None:
    two_days = 2 * 86400
    account = hooks.new_account(
        seed=5, webhook_schedule_s=[0, two_days, two_days, two_days, two_days]
    )
    receiver.status = 500
    ep = endpoint(hooks, account)
    new_buyer(hooks, account)
    flush(hooks)
    for _ in range(4):
        hooks.advance(account, "2d12h")
        flush(hooks)
    got = hooks.get(f"/v1/webhook_endpoints/{ep['id']}", headers=account.headers).json()
    assert (got["status"], got["disabled_reason"]) == ("disabled", "failing for 5 days")


# --- secrets ------------------------------------------------------------------------------------
def test_rotation_signs_with_both_secrets_during_the_overlap_only(
    hooks: Api, acct: Account, receiver: Receiver
) -> None:
    old = endpoint(hooks, acct)
    r = hooks.post(
        f"/v1/webhook_endpoints/{old['id']}/rotate_secret",
        headers=acct.headers,
        json={"overlap": "1h"},
    )
    assert r.status_code == 200, r.text
    new = r.json()
    assert new["secret"] != old["secret"]
    new_buyer(hooks, acct)
    flush(hooks)
    during = receiver.seen[-1]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    verify(old["secret"], during)
    verify(new["secret"], during)
    hooks.advance(acct, "2h")
    new_buyer(hooks, acct, "After Co")
    flush(hooks)
    after = receiver.seen[-1]
    verify(new["secret"], after)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        verify(old["secret"], after)


# --- quirks -------------------------------------------------------------------------------------
def quirks(api: Api, endpoint_id: str, **q: Any) -> None:
    r = api.put(f"/_sandbox/webhook_endpoints/{endpoint_id}/quirks", headers=ADMIN, json=q)
    assert r.status_code == 200, r.text


def test_duplicate_quirk_sends_the_same_message_again(
    hooks: Api, acct: Account, receiver: Receiver
) -> None:
    ep = endpoint(hooks, acct)
    quirks(hooks, ep["id"], duplicate={"probability": 1.0, "copies": 2})
    new_buyer(hooks, acct)
    flush(hooks)
    assert len(receiver.seen) == 3
    assert len({(r.headers["webhook-id"], r.content) for r in receiver.seen}) == 1


def test_drop_quirk_never_sends_but_the_event_stays_listed(
    hooks: Api, acct: Account, receiver: Receiver
) -> None:
    ep = endpoint(hooks, acct)
    quirks(hooks, ep["id"], drop={"first": 1})
    buyer = new_buyer(hooks, acct)
    new_buyer(hooks, acct, "Second Co")
    flush(hooks)
    assert len(receiver.seen) == 1
    listed = hooks.get("/v1/events", headers=acct.headers, params={"object_id": buyer["id"]})
    assert [e["type"] for e in listed.json()["data"]] == ["buyer.created"]
    assert sorted(d["status"] for d in deliveries(hooks, acct)) == ["dropped", "succeeded"]


@pytest.mark.parametrize("quirk", ["stale_timestamp", "bad_signature"])
def test_signature_quirks_are_rejected_by_a_correct_receiver(
    hooks: Api, acct: Account, receiver: Receiver, quirk: str
) -> None:
    ep = endpoint(hooks, acct)
    quirks(hooks, ep["id"], **{quirk: {"probability": 1.0}})
    new_buyer(hooks, acct)
    flush(hooks)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        verify(ep["secret"], receiver.seen[0])
    assert deliveries(hooks, acct)[0]["attempts"][0]["quirks"] == [quirk]


def test_old_secret_quirk_signs_with_the_previous_secret_only(
    hooks: Api, acct: Account, receiver: Receiver
) -> None:
    old = endpoint(hooks, acct)
    new = hooks.post(
        f"/v1/webhook_endpoints/{old['id']}/rotate_secret",
        headers=acct.headers,
        json={"overlap": "1s"},
    ).json()
    hooks.advance(acct, "1m")  # the overlap is over
    quirks(hooks, old["id"], old_secret={"probability": 1.0})
    new_buyer(hooks, acct)
    flush(hooks)
    verify(old["secret"], receiver.seen[0])
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        verify(new["secret"], receiver.seen[0])


def test_thin_payload_quirk_sends_ids_only(hooks: Api, acct: Account, receiver: Receiver) -> None:
    ep = endpoint(hooks, acct)
    quirks(hooks, ep["id"], thin_payload=True)
    buyer = new_buyer(hooks, acct)
    flush(hooks)
    assert verify(ep["secret"], receiver.seen[0])["data"] == {"id": buyer["id"], "object": "buyer"}


def test_delay_quirk_holds_the_first_attempt_on_the_account_clock(
    hooks: Api, acct: Account, receiver: Receiver
) -> None:
    ep = endpoint(hooks, acct)
    quirks(hooks, ep["id"], delay={"ms": 60_000})
    new_buyer(hooks, acct)
    assert flush(hooks) == 0
    hooks.advance(acct, "1m")
    assert flush(hooks) == 1


def delivery_order(seed: int) -> list[str]:
    """Object ids of six buyers in the order a reordering endpoint received them."""
    wall = ManualClock(datetime.now(UTC).replace(microsecond=0))
    receiver = Receiver()
    api = Api(build(receiver, wall), wall)
    try:
        account = api.new_account(seed=seed)
        ep = endpoint(api, account)
        quirks(api, ep["id"], reorder={"window_ms": 10_000})
        made = [new_buyer(api, account, f"Buyer {i}")["id"] for i in range(6)]
        api.advance(account, "11s")
        flush(api)
        got = [b["data"]["id"] for b in receiver.bodies()]
        assert sorted(got) == sorted(made)
        return [str(made.index(i)) for i in got]
    finally:
        api.close()


def test_reorder_quirk_shuffles_within_the_window_and_follows_the_seed() -> None:
    a, b, c = delivery_order(11), delivery_order(11), delivery_order(12)
    assert a == b
    assert a != c
    assert a != sorted(a) or c != sorted(c)


def sequence(seed: int) -> list[tuple[str, str, bytes]]:
    """Everything a flaky, quirky endpoint receives for a fixed request sequence."""
    wall = ManualClock(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    receiver = Receiver()
    receiver.answer = lambda r: httpx.Response(500 if len(receiver.seen) % 3 else 204)
    api = Api(build(receiver, wall), wall)
    try:
        account = api.new_account(seed=seed)
        ep = endpoint(api, account)
        quirks(
            api,
            ep["id"],
            duplicate={"probability": 0.5, "copies": 1},
            stale_timestamp={"probability": 0.3},
            drop={"probability": 0.2},
        )
        for i in range(5):
            new_buyer(api, account, f"Buyer {i}")
        flush(api)
        api.advance(account, "1d")
        flush(api)
        return [
            (r.headers["webhook-id"], r.headers["webhook-signature"], r.content)
            for r in receiver.seen
        ]
    finally:
        api.close()


def test_the_same_seed_reproduces_the_delivery_sequence_bit_for_bit() -> None:
    a, b, c = sequence(3), sequence(3), sequence(4)
    assert a == b
    assert a != c


# --- recovery and the log ------------------------------------------------------------------
def test_recover_sends_failed_deliveries_again(
    hooks: Api, acct: Account, receiver: Receiver
) -> None:
    receiver.status = 500
    ep = endpoint(hooks, acct)
    start = hooks.get(f"/_sandbox/accounts/{acct.id}/clock", headers=ADMIN).json()["now"]
    new_buyer(hooks, acct)
    flush(hooks)
    hooks.advance(acct, "3d")
    flush(hooks)
    assert deliveries(hooks, acct)[0]["status"] == "failed"
    receiver.status = 204
    r = hooks.post(
        f"/v1/webhook_endpoints/{ep['id']}/recover", headers=acct.headers, json={"since": start}
    )
    assert r.json() == {"recovered": 1}
    flush(hooks)
    assert deliveries(hooks, acct)[0]["status"] == "succeeded"
    attempts = hooks.get(f"/v1/webhook_endpoints/{ep['id']}/attempts", headers=acct.headers).json()
    assert [a["outcome"] for a in attempts["data"]][:2] == ["succeeded", "failed"]


def test_replay_delivers_a_stored_event_again(
    hooks: Api, acct: Account, receiver: Receiver
) -> None:
    endpoint(hooks, acct)
    new_buyer(hooks, acct)
    flush(hooks)
    event_id = receiver.seen[0].headers["webhook-id"]
    r = hooks.post(f"/_sandbox/events/{event_id}/replay", headers=ADMIN)
    assert r.status_code == 201
    flush(hooks)
    assert [q.headers["webhook-id"] for q in receiver.seen] == [event_id, event_id]
    assert hooks.post("/_sandbox/events/evt_nope/replay", headers=ADMIN).status_code == 404


def test_deleting_an_endpoint_abandons_its_pending_deliveries(
    hooks: Api, acct: Account, receiver: Receiver
) -> None:
    ep = endpoint(hooks, acct)
    new_buyer(hooks, acct)
    r = hooks.request("DELETE", f"/v1/webhook_endpoints/{ep['id']}", headers=acct.headers)
    assert r.json() == {"id": ep["id"], "object": "webhook_endpoint", "deleted": True}
    assert flush(hooks) == 0
    assert receiver.seen == []


def test_endpoints_of_one_account_are_invisible_to_another(hooks: Api, acct: Account) -> None:
    ep = endpoint(hooks, acct)
    other = hooks.new_account(seed=8)
    assert hooks.get(f"/v1/webhook_endpoints/{ep['id']}", headers=other.headers).status_code == 404
    assert hooks.get("/v1/webhook_endpoints", headers=other.headers).json()["data"] == []


# --- safety -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://example.com/hook", "webhook_url_not_allowed"),
        ("http://10.0.0.8/hook", "webhook_url_not_allowed"),
        ("http://user:pw@127.0.0.1/hook", "webhook_url_not_allowed"),
        ("ftp://127.0.0.1/hook", "validation_failed"),
    ],
)
def test_only_loopback_hosts_receive_webhooks_by_default(
    hooks: Api, acct: Account, url: str, code: str
) -> None:
    r = hooks.post("/v1/webhook_endpoints", headers=acct.headers, json={"url": url})
    assert r.status_code == 422
    assert r.json()["code"] == code


def test_an_allowed_host_may_receive_webhooks(receiver: Receiver, wall: ManualClock) -> None:
    api = Api(build(receiver, wall, webhook_allowed_hosts=("hooks.example.com",)), wall)
    try:
        account = api.new_account(seed=1)
        r = api.post(
            "/v1/webhook_endpoints",
            headers=account.headers,
            json={"url": "https://hooks.example.com/sandbank"},
        )
        assert r.status_code == 201
    finally:
        api.close()


# --- the events API ------------------------------------------------------------------------------
def test_events_filter_by_type_object_and_created_range(hooks: Api, acct: Account) -> None:
    first = new_buyer(hooks, acct, "First Co")
    hooks.advance(acct, "1h")
    middle = hooks.get(f"/_sandbox/accounts/{acct.id}/clock", headers=ADMIN).json()["now"]
    second = new_buyer(hooks, acct, "Second Co")
    hooks.post(
        "/v1/checkouts", headers=acct.headers, json=checkout_body(buyer_id=second["id"], buyer=None)
    )

    def ids(**params: Any) -> list[str]:
        r = hooks.get("/v1/events", headers=acct.headers, params=params)
        assert r.status_code == 200, r.text
        return [e["data"]["id"] for e in r.json()["data"]]

    assert ids(type="buyer.created") == [second["id"], first["id"]]
    assert ids(object_id=first["id"]) == [first["id"]]
    assert ids(type="buyer.created", created_gte=middle) == [second["id"]]
    assert ids(type="buyer.created", created_lt=middle) == [first["id"]]
    page = hooks.get(
        "/v1/events", headers=acct.headers, params={"limit": 1, "type": "buyer.created"}
    )
    assert page.json()["has_more"] is True
    rest = hooks.get(
        "/v1/events",
        headers=acct.headers,
        params={"limit": 1, "type": "buyer.created", "cursor": page.json()["next_cursor"]},
    )
    assert [e["data"]["id"] for e in rest.json()["data"]] == [first["id"]]
    assert (
        hooks.get("/v1/events", headers=acct.headers, params={"created_lt": "0.5"}).status_code
        == 422
    )
    assert hooks.get("/v1/events/evt_nope", headers=acct.headers).status_code == 404


def test_a_dead_receiver_holds_only_its_own_attempt_slots(wall: ManualClock) -> None:
    """Deliveries stuck on a hanging endpoint never stall another account's."""
    release = asyncio.Event()
    hung: list[str] = []
    served: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/dead":
            hung.append(request.headers["webhook-id"])
            await release.wait()
        else:
            served.append(request.headers["webhook-id"])
        return httpx.Response(204)

    app = build_app(clock=wall, webhook_transport=httpx.MockTransport(handler))
    api = Api(app, wall)
    try:
        stuck = api.new_account(seed=1)
        endpoint(api, stuck, url="http://127.0.0.1:9/dead")
        for i in range(PER_ENDPOINT + 4):
            new_buyer(api, stuck, f"Buyer {i}")
        live = api.new_account(seed=2)
        endpoint(api, live)
        new_buyer(api, live)
        dispatcher = app.runtime.dispatcher

        async def scenario() -> None:
            everything = asyncio.create_task(dispatcher.flush())
            while len(hung) < PER_ENDPOINT:  # the dead endpoint's attempts are in flight
                await asyncio.sleep(0.001)
            await dispatcher.flush(live.id)  # returns while the dead endpoint still hangs
            assert len(served) == 1
            assert len(hung) == PER_ENDPOINT  # no more than its share of slots
            release.set()
            await everything

        api.loop.run_until_complete(scenario())
        assert [d["status"] for d in deliveries(api, live)] == ["succeeded"]
        assert {d["status"] for d in deliveries(api, stuck)} == {"succeeded"}
    finally:
        api.close()


def test_the_background_dispatcher_skips_an_endpoint_that_has_all_its_slots(
    wall: ManualClock,
) -> None:
    """More deliveries than one round reads are stuck behind a hanging endpoint; the
    background dispatcher still reaches the other endpoint's delivery behind them."""
    release = asyncio.Event()
    served: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/dead":
            await release.wait()
        else:
            served.append(request.headers["webhook-id"])
        return httpx.Response(204)

    app = build_app(clock=wall, webhook_transport=httpx.MockTransport(handler))
    api = Api(app, wall)
    try:
        stuck = api.new_account(seed=1)
        endpoint(api, stuck, url="http://127.0.0.1:9/dead")
        for i in range(100):
            new_buyer(api, stuck, f"Buyer {i}")
        live = api.new_account(seed=2)
        endpoint(api, live)
        new_buyer(api, live)
        dispatcher = app.runtime.dispatcher

        async def scenario() -> None:
            await dispatcher.start()
            try:
                async with asyncio.timeout(5):
                    while not served:
                        await asyncio.sleep(0.01)
            finally:
                release.set()
                await dispatcher.stop()

        api.loop.run_until_complete(scenario())
        assert len(served) == 1
    finally:
        api.close()


# --- the fan-out from the outbox ------------------------------------------------------------------
def test_an_endpoint_gets_only_the_events_written_after_it(
    hooks: Api, acct: Account, receiver: Receiver
) -> None:
    """The events are fanned out later (here at the flush), yet against the endpoints as they
    were when each was written."""
    before = new_buyer(hooks, acct, "Before Co")
    endpoint(hooks, acct)
    after = new_buyer(hooks, acct, "After Co")
    flush(hooks)
    assert [b["data"]["id"] for b in receiver.bodies()] == [after["id"]]
    assert before["id"] != after["id"]


def test_quirks_and_status_changes_apply_to_the_events_written_after_them(
    hooks: Api, acct: Account, receiver: Receiver
) -> None:
    ep = endpoint(hooks, acct)
    first = new_buyer(hooks, acct, "First Co")
    quirks(hooks, ep["id"], drop={"first": 1})  # not the first event's: it came before
    new_buyer(hooks, acct, "Dropped Co")
    r = hooks.patch(
        f"/v1/webhook_endpoints/{ep['id']}", headers=acct.headers, json={"status": "disabled"}
    )
    assert r.status_code == 200, r.text
    new_buyer(hooks, acct, "Nobody Co")  # written while disabled: no delivery at all
    r = hooks.patch(
        f"/v1/webhook_endpoints/{ep['id']}", headers=acct.headers, json={"status": "enabled"}
    )
    assert r.status_code == 200, r.text
    last = new_buyer(hooks, acct, "Last Co")
    flush(hooks)
    assert [b["data"]["id"] for b in receiver.bodies()] == [first["id"], last["id"]]
    statuses = {d["status"] for d in deliveries(hooks, acct)}
    assert sorted(d["status"] for d in deliveries(hooks, acct)) == [
        "dropped",
        "succeeded",
        "succeeded",
    ], statuses


def _fanned_out(flush_each: bool) -> tuple[list[tuple[Any, ...]], list[tuple[str, str, bytes]]]:
    """The deliveries an account's requests make (ids, statuses, due times), and what the
    receiver then gets, when the fan-out runs after each request or once at the end."""
    wall = ManualClock(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    receiver = Receiver()
    api = Api(build(receiver, wall), wall)
    try:
        account = api.new_account(seed=21)
        ep = endpoint(api, account)
        quirks(
            api,
            ep["id"],
            drop={"probability": 0.3},
            delay={"min_ms": 1000, "max_ms": 60_000},
            reorder={"window_ms": 5000},
            duplicate={"probability": 0.5},
            stale_timestamp={"probability": 0.3},
        )
        for i in range(8):
            new_buyer(api, account, f"Buyer {i}")
            if flush_each:
                assert flush(api) == 0  # fanned out; every first attempt is still delayed
        api.post("/v1/checkouts", headers=account.headers, json=checkout_body())
        assert flush(api) == 0
        made = [
            (d["id"], d["event_id"], d["status"], d["next_attempt_at"])
            for d in reversed(deliveries(api, account))
        ]
        api.advance(account, "2m")
        flush(api)
        sent = [
            (r.headers["webhook-id"], r.headers["webhook-signature"], r.content)
            for r in receiver.seen
        ]
        return made, sent
    finally:
        api.close()


def test_when_the_fan_out_runs_changes_no_delivery_id_quirk_or_signature() -> None:
    each, once = _fanned_out(flush_each=True), _fanned_out(flush_each=False)
    made, sent = once
    assert len(sent) > 5
    assert len(made) == 10  # 8 buyers, then a checkout with its own buyer
    assert {status for *_, status, _ in made} == {"pending", "dropped"}
    assert each == once


def test_events_written_before_a_restart_are_fanned_out_after_it(
    tmp_path: Path, receiver: Receiver, wall: ManualClock
) -> None:
    """The outbox is durable: events committed by a process that never fanned them out (it
    stopped first) are delivered by the next one, once."""

    def app() -> SandbankApp:
        return create_app(
            Settings(
                db=str(tmp_path / "sandbank.db"),
                data_dir=tmp_path,
                admin_token=ADMIN_TOKEN,
                seed=1,
                public_url=BASE_URL,
            ),
            wall_clock=wall,
            entropy=deterministic_entropy(),
            webhook_transport=httpx.MockTransport(receiver),
        )

    first = Api(app(), wall)
    account = first.new_account(seed=3)
    endpoint(first, account)
    made = [new_buyer(first, account, f"Buyer {i}")["id"] for i in range(3)]
    first.app.runtime.store.close()
    first.close()
    assert receiver.seen == []
    second = Api(app(), wall)
    try:
        assert flush(second) == 3
        assert flush(second) == 0
        assert [b["data"]["id"] for b in receiver.bodies()] == made
        assert len(deliveries(second, account)) == 3
    finally:
        second.app.runtime.store.close()
        second.close()


def test_a_reset_account_gets_its_new_events_and_none_of_the_old(
    hooks: Api, acct: Account, receiver: Receiver
) -> None:
    endpoint(hooks, acct)
    new_buyer(hooks, acct, "Old Co")
    flush(hooks)
    new_buyer(hooks, acct, "Unsent Co")  # wiped by the reset before it is fanned out
    r = hooks.post(f"/_sandbox/accounts/{acct.id}/reset", headers=ADMIN)
    assert r.status_code == 200, r.text
    endpoint(hooks, acct)
    fresh = new_buyer(hooks, acct, "Fresh Co")
    flush(hooks)
    names = [b["data"]["legal_name"] for b in receiver.bodies()]
    assert names == ["Old Co", "Fresh Co"]
    assert receiver.bodies()[-1]["data"]["id"] == fresh["id"]
    assert [d["status"] for d in deliveries(hooks, acct)] == ["succeeded"]


# --- paging (issue #17) --------------------------------------------------------------------
def test_the_delivery_log_pages_newest_first(hooks: Api, acct: Account, receiver: Receiver) -> None:
    for n in range(3):
        endpoint(hooks, acct, description=f"ep {n}")
    new_buyer(hooks, acct)
    new_buyer(hooks, acct)
    flush(hooks)
    url = "/_sandbox/webhooks/deliveries"
    whole = hooks.get(url, headers=ADMIN, params={"account": acct.id}).json()["data"]
    assert len(whole) == 6
    assert hooks.every(url, ADMIN, account=acct.id, limit=4) == whole


def test_attempts_page_newest_delivery_first_and_each_attempt_once(
    hooks: Api, acct: Account, receiver: Receiver
) -> None:
    receiver.status = 500  # every delivery fails and is retried
    ep = endpoint(hooks, acct)
    for _ in range(3):
        new_buyer(hooks, acct)
    flush(hooks)
    hooks.advance(acct, "1h")
    flush(hooks)
    url = f"/v1/webhook_endpoints/{ep['id']}/attempts"
    paged = hooks.every(url, acct.headers, limit=2)
    whole = hooks.get(url, headers=acct.headers, params={"limit": 100}).json()["data"]
    assert paged == whole
    keys = [(a["delivery_id"], a["n"]) for a in paged]
    assert len(keys) == len(set(keys)) > 3  # retries too, each once
    per_delivery = [k for k in keys if k[0] == keys[0][0]]
    assert [n for _, n in per_delivery] == sorted((n for _, n in per_delivery), reverse=True)
