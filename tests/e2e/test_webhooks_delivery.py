"""End to end: webhook delivery from real `sandbank serve` processes over real TCP to a real
receiver in this test process (127.0.0.1 only) that verifies every request with the
`standardwebhooks` package.

- The background dispatcher delivers by itself, in real time, without a flush.
- The API writes only the event; the dispatcher fans it out into deliveries from the outbox.
- Deliveries are durable: pending retries survive SIGKILL and resume where they left off
  (attempt numbers continue); a delivery committed but not yet attempted survives too; an
  attempt cut off by SIGKILL mid-flight is sent again by the restarted server (at-least-once;
  the receiver dedupes on webhook-id).
- A slow receiver holds only its own attempts: the API stays fast.
- Advancing the account clock by three days and flushing runs the whole Svix retry schedule,
  each attempt at its own time on the account clock (the schedule spans days of wall time).

Every wait here is for an event (a delivery arrived, a status changed), polled up to `WAIT_S`:
a bound for a hung run, never a speed target (a loaded machine is slow, not wrong).
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_servers import Server, StartServer
from standardwebhooks import Webhook, WebhookVerificationError

from rehearsal.processes import free_port

pytestmark = pytest.mark.slow

ADMIN = "sbadm_e2e_webhooks_token"
SERVE_ARGS = ["--admin-token", ADMIN, "--no-demo"]
SVIX_SCHEDULE_S = [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
JITTER = 0.2
WAIT_S = 30.0  # the longest any wait for an event may take (a bound for a hung run only)


# --- the receiver -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Arrival:
    webhook_id: str
    type: str
    at: float  # time.monotonic() on arrival
    answered: int  # the status the receiver answered (or meant to, if the sender was gone)


class Receiver:
    """A Standard Webhooks receiver on 127.0.0.1 in a background thread. Tell it what to answer
    (`status`) and when (`hold`: a request waits until that event is set, 20 s at most: every
    request, or only the first `hold_first`)."""

    def __init__(self) -> None:
        self.secret: str | None = None
        self.status = 200
        self.hold: threading.Event | None = None
        self.hold_first: int | None = None  # None: every request waits for `hold`
        self.arrivals: list[Arrival] = []
        self.rejected: list[str] = []  # why verification failed
        self.requests = 0
        self.in_flight = 0
        self.lock = threading.Lock()
        self.first_arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/webhooks"

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        body = req.rfile.read(int(req.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in req.headers.items()}
        with self.lock:
            self.requests += 1
            self.in_flight += 1
            held = self.hold_first is None or self.requests <= self.hold_first
            status, secret, hold = self.status, self.secret, self.hold if held else None
        try:
            try:
                assert secret is not None, "the receiver has no secret yet"
                event = Webhook(secret).verify(body, headers)
            except (WebhookVerificationError, AssertionError) as exc:
                with self.lock:
                    self.rejected.append(f"{headers.get('webhook-id')}: {exc}")
                status = 400
            else:
                assert isinstance(event, dict)
                arrival = Arrival(headers["webhook-id"], event["type"], time.monotonic(), status)
                with self.lock:
                    self.arrivals.append(arrival)
                self.first_arrived.set()
            if hold is not None:
                hold.wait(20.0)
            try:
                req.send_response(status)
                req.send_header("content-type", "text/plain")
                req.send_header("content-length", "2")
                req.end_headers()
                req.wfile.write(b"ok")
            except OSError:  # the sender is gone (killed mid-attempt)
                pass
        finally:
            with self.lock:
                self.in_flight -= 1

    def seen(self) -> list[Arrival]:
        with self.lock:
            return list(self.arrivals)

    def succeeded_ids(self) -> set[str]:
        """webhook-ids acknowledged with a 2xx (processed once each: deduped by id)."""
        return {a.webhook_id for a in self.seen() if 200 <= a.answered < 300}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.stop()


# --- sandbank serve -----------------------------------------------------------------------------
@pytest.fixture
def start(start_server: StartServer) -> Callable[[Path, int], Server]:
    """A server whose webhook process is up: the delivery timings below count from there."""

    def up(data_dir: Path, port: int) -> Server:
        server = start_server(data_dir, port, *SERVE_ARGS)
        server.wait_components(["dispatcher"])
        return server

    return up


# --- helpers ------------------------------------------------------------------------------------
def _client(base: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=20.0)


@dataclass
class Account:
    id: str
    api_key: str


def _account(server: Server, **settings: Any) -> Account:
    body: dict[str, Any] = {"name": "e2e-webhooks"}
    if settings:
        body["settings"] = settings
    with _client(server.url, ADMIN) as admin:
        r = admin.post("/_sandbox/accounts", json=body)
    assert r.status_code == 201, r.text
    return Account(r.json()["id"], r.json()["api_key"])


def _endpoint(api: httpx.Client, receiver: Receiver, events: list[str]) -> dict[str, Any]:
    r = api.post(
        "/v1/webhook_endpoints",
        json={"url": receiver.url, "enabled_events": events, "description": "e2e receiver"},
    )
    assert r.status_code == 201, r.text
    endpoint = dict(r.json())
    assert endpoint["secret"].startswith("whsec_")
    receiver.secret = endpoint["secret"]
    return endpoint


def _buyer(api: httpx.Client, n: int) -> dict[str, Any]:
    r = api.post(
        "/v1/buyers",
        json={
            "legal_name": f"Hooked Widgets {n} LLC",
            "email": f"ap+approve@hooked{n}.test",
            "annual_revenue": 500_000_000,
            "years_in_business": 7,
        },
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def _checkout(api: httpx.Client, n: int) -> dict[str, Any]:
    """A checkout with an inline buyer (the README quickstart): buyer.created, checkout.created."""
    r = api.post(
        "/v1/checkouts",
        json={
            "amount": 125_000,
            "currency": "USD",
            "merchant_order_id": f"SO-HOOK-{n}",
            "buyer": {
                "legal_name": f"Acme Supply {n} Co",
                "email": f"ap+approve@acme{n}.test",
                "annual_revenue": 250_000_000,
                "years_in_business": 8,
            },
            "line_items": [{"name": "Pallet of widgets", "quantity": 2, "unit_amount": 62_500}],
            "return_url": "https://shop.example/return",
            "cancel_url": "https://shop.example/cancel",
        },
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def _events(api: httpx.Client) -> dict[str, str]:
    """Every event of the account: id -> type."""
    r = api.get("/v1/events", params={"limit": 100})
    assert r.status_code == 200, r.text
    assert not r.json()["has_more"]
    return {e["id"]: e["type"] for e in r.json()["data"]}


def _deliveries(server: Server, account: Account) -> list[dict[str, Any]]:
    with _client(server.url, ADMIN) as admin:
        r = admin.get(
            "/_sandbox/webhooks/deliveries", params={"account": account.id, "limit": 1000}
        )
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def _flush(server: Server, account: Account) -> int:
    with _client(server.url, ADMIN) as admin:
        r = admin.post("/_sandbox/webhooks/flush", json={"account": account.id})
    assert r.status_code == 200, r.text
    return int(r.json()["attempts"])


def _advance(server: Server, account: Account, by: str) -> None:
    with _client(server.url, ADMIN) as admin:
        r = admin.post(f"/_sandbox/accounts/{account.id}/clock/advance", json={"by": by})
    assert r.status_code == 200, r.text


def _eventually(check: Callable[[], Any], what: str) -> Any:
    """Poll `check` until it returns something truthy (returned), or fail after `WAIT_S`."""
    deadline = time.monotonic() + WAIT_S
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"not within {WAIT_S}s: {what}")
        time.sleep(0.05)


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- 1. real time ---------------------------------------------------------------------------------
def test_the_background_dispatcher_delivers_signed_events_in_real_time(
    start: Callable[[Path, int], Server], tmp_path: Path, receiver: Receiver
) -> None:
    server = start(tmp_path / "data", free_port())
    account = _account(server)
    with _client(server.url, account.api_key) as api:
        _endpoint(api, receiver, ["*"])
        _checkout(api, 1)
        events = _events(api)
        assert sorted(events.values()) == ["buyer.created", "checkout.created"]

        # no flush: the dispatcher, woken by the commit, delivers by itself
        _eventually(
            lambda: {a.webhook_id for a in receiver.seen()} >= set(events),
            f"both events delivered; got {receiver.seen()}",
        )
    assert receiver.rejected == []  # every signature verified with `standardwebhooks`
    arrivals = receiver.seen()
    assert {a.webhook_id: a.type for a in arrivals} == events  # webhook-id is the event id
    assert len(arrivals) == 2  # once each

    def all_succeeded() -> list[dict[str, Any]] | None:
        ds = _deliveries(server, account)
        return ds if len(ds) == 2 and all(d["status"] == "succeeded" for d in ds) else None

    deliveries = _eventually(all_succeeded, "the deliveries log shows both succeeded")
    assert {d["event_id"] for d in deliveries} == set(events)
    for d in deliveries:
        assert [a["n"] for a in d["attempts"]] == [1]
        assert d["attempts"][0]["outcome"] == "succeeded"
        assert d["attempts"][0]["status"] == 200


# --- 2. at-least-once across kill -9 --------------------------------------------------------------
def test_pending_retries_survive_sigkill_and_resume_their_attempt_numbers(
    start: Callable[[Path, int], Server], tmp_path: Path, receiver: Receiver
) -> None:
    data_dir, port = tmp_path / "data", free_port()
    receiver.status = 500
    first = start(data_dir, port)
    # the first retry 10 minutes out: nothing is in flight when we kill (no 60 s lease to wait)
    account = _account(first, webhook_schedule_s=[0, 600, 1800, 7200])
    with _client(first.url, account.api_key) as api:
        _endpoint(api, receiver, ["*"])
        _buyer(api, 1)
        _checkout(api, 2)
        _checkout(api, 3)
        events = _events(api)
    assert len(events) == 5

    def first_attempts_failed() -> list[dict[str, Any]] | None:
        ds = _deliveries(first, account)
        done = len(ds) == len(events) and all(len(d["attempts"]) == 1 for d in ds)
        return ds if done else None

    before = _eventually(first_attempts_failed, "every first attempt made and recorded")
    assert {d["event_id"] for d in before} == set(events)
    for d in before:
        assert d["status"] == "pending"
        (attempt,) = d["attempts"]
        assert (attempt["n"], attempt["status"], attempt["outcome"]) == (1, 500, "failed")
        assert attempt["next_attempt_at"] is not None
    assert {a.webhook_id for a in receiver.seen()} == set(events)
    assert receiver.succeeded_ids() == set()

    first.kill()
    receiver.status = 200
    second = start(data_dir, port)
    _advance(second, account, "1h")
    _flush(second, account)

    def all_succeeded() -> list[dict[str, Any]] | None:
        ds = _deliveries(second, account)
        return ds if ds and all(d["status"] == "succeeded" for d in ds) else None

    after = _eventually(all_succeeded, "every delivery succeeded after the restart")
    assert receiver.succeeded_ids() == set(events)  # none lost
    assert receiver.rejected == []
    was = {d["id"]: d["attempts"] for d in before}
    assert {d["id"] for d in after} == set(was)  # the same deliveries, not new ones
    for d in after:
        attempts = d["attempts"]
        # resumed, not restarted: the failed attempt kept as it was, then attempt 2 succeeded
        assert [a["n"] for a in attempts] == [1, 2], d
        assert attempts[0] == was[d["id"]][0]
        assert (attempts[1]["status"], attempts[1]["outcome"]) == (200, "succeeded")
        assert _ts(attempts[1]["at"]) == _ts(attempts[0]["next_attempt_at"])


def test_a_delivery_committed_but_not_yet_attempted_survives_sigkill(
    start: Callable[[Path, int], Server], tmp_path: Path, receiver: Receiver
) -> None:
    data_dir, port = tmp_path / "data", free_port()
    first = start(data_dir, port)
    account = _account(first)
    with _client(first.url, account.api_key) as api, _client(first.url, ADMIN) as admin:
        endpoint = _endpoint(api, receiver, ["buyer.created"])
        # hold the first attempt 30 minutes on the account clock: committed, not yet sent
        r = admin.put(
            f"/_sandbox/webhook_endpoints/{endpoint['id']}/quirks",
            json={"delay": {"ms": 30 * 60 * 1000}},
        )
        assert r.status_code == 200, r.text
        _buyer(api, 1)
        events = _events(api)
    (event_id,) = events
    # the dispatcher fans the committed event out within milliseconds
    (pending,) = _eventually(lambda: _deliveries(first, account), "the event fanned out")
    assert (pending["event_id"], pending["status"], pending["attempts"]) == (
        event_id,
        "pending",
        [],
    )

    first.kill()
    assert receiver.seen() == []
    second = start(data_dir, port)
    _advance(second, account, "1h")
    _flush(second, account)
    _eventually(lambda: receiver.succeeded_ids() == {event_id}, "delivered after restart")
    (delivered,) = _deliveries(second, account)
    assert delivered["id"] == pending["id"]
    assert delivered["status"] == "succeeded"
    assert [(a["n"], a["outcome"]) for a in delivered["attempts"]] == [(1, "succeeded")]
    assert receiver.rejected == []


def test_an_attempt_cut_off_by_sigkill_is_sent_again_by_the_restarted_server(
    start: Callable[[Path, int], Server], tmp_path: Path, receiver: Receiver
) -> None:
    """SIGKILL while the receiver is still answering the first attempt. The attempt never came
    back, so nothing was recorded and the delivery is still pending under the dead process's
    lease; a restarted single-worker server releases such leases and sends the event again by
    itself. The receiver sees it twice (the cut-off attempt and the resend) and processes it
    once, deduping on webhook-id."""
    data_dir, port = tmp_path / "data", free_port()
    receiver.hold, receiver.hold_first = threading.Event(), 1
    first = start(data_dir, port)
    account = _account(first)
    with _client(first.url, account.api_key) as api:
        _endpoint(api, receiver, ["buyer.created"])
        _buyer(api, 1)
        (event_id,) = _events(api)
    assert receiver.first_arrived.wait(WAIT_S), "the first attempt never arrived"
    first.kill()  # the receiver still holds the first attempt: it has had no answer
    receiver.hold.set()  # its answer now finds the sender gone

    db = sqlite3.connect(data_dir / "sandbank.db")
    try:
        (lease_us, attempts) = db.execute(
            "SELECT lease_us, json_array_length(data, '$.attempts') FROM webhook_deliveries"
        ).fetchone()
    finally:
        db.close()
    assert lease_us is not None, "the cut-off attempt held a lease"
    assert attempts == 0, "nothing was recorded for it"

    second = start(data_dir, port)
    _eventually(
        lambda: len([a for a in receiver.seen() if a.webhook_id == event_id]) >= 2,
        "the cut-off attempt sent again by the restarted server",
    )
    assert receiver.succeeded_ids() == {event_id}  # at-least-once; deduped on webhook-id
    assert receiver.rejected == []

    def succeeded() -> dict[str, Any] | None:
        (d,) = _deliveries(second, account)
        return d if d["status"] == "succeeded" else None

    delivered = _eventually(succeeded, "the deliveries log shows it succeeded")
    assert delivered["event_id"] == event_id
    assert [(a["n"], a["outcome"]) for a in delivered["attempts"]] == [(1, "succeeded")]


# --- 3. a slow receiver -------------------------------------------------------------------------
def test_a_slow_receiver_does_not_slow_the_api(
    start: Callable[[Path, int], Server], tmp_path: Path, receiver: Receiver
) -> None:
    """The receiver holds every delivery until told to answer: the API's calls all answer
    meanwhile (had they waited for a delivery, they would wait for the receiver's 20 s), and
    the receiver still gets everything once it answers."""
    receiver.hold = threading.Event()
    server = start(tmp_path / "data", free_port())
    account = _account(server)
    try:
        with _client(server.url, account.api_key) as api:
            _endpoint(api, receiver, ["*"])
            for n in range(5):
                _checkout(api, n)
            events = _events(api)
            assert len(events) == 10
            _eventually(lambda: receiver.in_flight > 0, "a delivery in flight")
            for _ in range(20):
                r = api.get("/v1/orders")
                assert r.status_code == 200, r.text
            held = receiver.in_flight
        assert held > 0  # the calls all answered while deliveries were held
    finally:
        receiver.hold.set()

    # and the slow receiver still gets everything
    _eventually(lambda: receiver.succeeded_ids() == set(events), "all delivered")
    assert receiver.rejected == []


# --- 4. three days of retries -------------------------------------------------------------------
def test_three_days_of_retries_run_on_the_account_clock_not_the_wall_clock(
    start: Callable[[Path, int], Server], tmp_path: Path, receiver: Receiver
) -> None:
    receiver.status = 500
    server = start(tmp_path / "data", free_port())
    account = _account(server)
    with _client(server.url, ADMIN) as admin:
        r = admin.get(f"/_sandbox/accounts/{account.id}")
    assert r.status_code == 200, r.text
    schedule = r.json()["settings"]["webhook_schedule_s"]
    assert schedule == SVIX_SCHEDULE_S  # the default is Svix's schedule

    with _client(server.url, account.api_key) as api:
        _endpoint(api, receiver, ["buyer.created"])
        _buyer(api, 1)
        (event_id,) = _events(api)
    _advance(server, account, "3d")
    _flush(server, account)

    def exhausted() -> dict[str, Any] | None:
        (d,) = _deliveries(server, account)
        return d if d["status"] != "pending" else None

    # Days of wall time on the wall clock: only the account clock can exhaust it in this wait.
    delivery = _eventually(exhausted, "the schedule exhausted")

    assert delivery["event_id"] == event_id
    assert delivery["status"] == "failed"
    attempts = delivery["attempts"]
    assert [a["n"] for a in attempts] == list(range(1, len(schedule) + 1))
    assert all((a["status"], a["outcome"]) == (500, "failed") for a in attempts), attempts
    assert attempts[-1]["next_attempt_at"] is None
    at = [_ts(a["at"]) for a in attempts]
    assert at[0] == _ts(delivery["created_at"])  # the first attempt: immediately
    gaps = [later - earlier for earlier, later in itertools.pairwise(at)]
    for i, gap in enumerate(gaps, start=1):
        base = timedelta(seconds=schedule[i])
        assert base * (1 - JITTER) <= gap <= base * (1 + JITTER), (i, gap, base)
    assert any(
        abs(gap - timedelta(seconds=s)) > timedelta(milliseconds=1)
        for gap, s in zip(gaps, schedule[1:], strict=True)
    )  # jittered, not exact
    # each attempt really reached the receiver, signed
    assert [a.webhook_id for a in receiver.seen()] == [event_id] * len(schedule)
    assert receiver.rejected == []
