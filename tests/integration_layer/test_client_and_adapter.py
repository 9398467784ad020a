"""The resilient client and the Sandbank adapter against the real simulator, in-process.

The integration package talks HTTP only; here its transport is `httpx.ASGITransport` over a
fresh `create_app(...)`, and faults come from the control plane (`/_sandbox/faults`), so every
retry, replay and breaker decision meets the provider's real idempotency and journal. Time is
a manual monotonic clock that the injected sleep advances (nothing really sleeps).
"""

from __future__ import annotations

import ast
import asyncio
import itertools
import random
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml
from factories import ADMIN, BASE_URL, Account, Api

from integration.adapters import (
    AuthorizationStatus,
    Buyer,
    CheckoutStatus,
    ConfigError,
    LineItem,
    PlaceOrder,
    ProviderAdapter,
    make_adapter,
)
from integration.adapters.sandbank import CHECKOUT_STATUS, ORDER_STATUS, SandbankAdapter
from integration.breaker import Breakers, State
from integration.client import (
    ProviderRejected,
    ProviderUnavailable,
    ResilientClient,
    transport_failure,
)
from integration.model import EventKind, Money
from integration.retry import Backoff, Transport
from integration.store import IntegrationStore, IntentConflict, IntentStatus
from integration.wallclock import utc_now
from simulator.app import SandbankApp

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")
USD = "USD"


class MonotonicClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@dataclass
class RecordingSleep:
    """The client's sleep: records each wait and moves the manual clock instead of waiting."""

    clock: MonotonicClock
    calls: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.clock.t += seconds


def key_source(seed: int) -> Callable[[], str]:
    rng = random.Random(seed)
    return lambda: f"ik_{rng.getrandbits(64):016x}"


@dataclass
class Integration:
    """One running integration service: its store, clock, sleep, breakers and adapter."""

    api: Api
    store: IntegrationStore
    clock: MonotonicClock
    sleep: RecordingSleep
    breakers: Breakers
    adapter: ProviderAdapter
    native: SandbankAdapter

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        result: T = self.api.loop.run_until_complete(coro)
        return result

    def stop(self) -> None:
        self.run(self.native.client.aclose())
        self.store.close()


@pytest.fixture
def start(
    api: Api, app: SandbankApp, account: Account, tmp_path: Path
) -> Iterator[Callable[..., Integration]]:
    """Start the integration service (again): same database file, a fresh process state."""
    boots = itertools.count(1)
    started: list[Integration] = []

    def boot(
        *,
        max_attempts: int = 4,
        max_total_s: float = 30.0,
        failure_threshold: int = 5,
        cooldown_s: float = 30.0,
    ) -> Integration:
        clock = MonotonicClock()
        store = IntegrationStore(
            tmp_path / "integration.db", new_key=key_source(next(boots)), now=utc_now
        )
        breakers = Breakers(clock, failure_threshold=failure_threshold, cooldown_s=cooldown_s)
        sleep = RecordingSleep(clock)
        config = {
            "provider": "sandbank",
            "base_url": BASE_URL,
            "api_key": account.api_key,
            "timeout_s": 5,
            "retry": {
                "base_s": 0.1,
                "max_wait_s": 10.0,
                "max_attempts": max_attempts,
                "max_total_s": max_total_s,
            },
        }
        adapter = make_adapter(
            config,
            store=store,
            now=utc_now,
            clock=clock,
            sleep=sleep,
            random=lambda: 0.5,
            breakers=breakers,
            transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        )
        assert isinstance(adapter, SandbankAdapter)
        integration = Integration(api, store, clock, sleep, breakers, adapter, adapter)
        started.append(integration)
        return integration

    yield boot
    for integration in started:
        integration.stop()


def add_fault(api: Api, account: Account, **rule: Any) -> None:
    r = api.post("/_sandbox/faults", headers=ADMIN, json={"account": account.id, **rule})
    assert r.status_code == 201, r.text


def clear_faults(api: Api) -> None:
    assert api.request("DELETE", "/_sandbox/faults", headers=ADMIN).status_code == 200


def journal(api: Api, account: Account, **params: Any) -> list[dict[str, Any]]:
    """The provider's record of what it was sent, newest first."""
    r = api.get("/_sandbox/requests", headers=ADMIN, params={"account": account.id, **params})
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def captured_events(api: Api, account: Account) -> int:
    return sum(e["type"] == "order.captured" for e in api.events(account))


def place_order(merchant_order_id: str = "SO-1001", amount: int = 125_000) -> PlaceOrder:
    return PlaceOrder(
        merchant_order_id=merchant_order_id,
        amount=Money(amount, USD),
        buyer=Buyer(
            legal_name="Acme Supply Co",
            email="ap+approve@acme.test",
            annual_revenue=250_000_000,
            years_in_business=8,
        ),
        return_url="https://shop.test/return",
        cancel_url="https://shop.test/cancel",
        line_items=(LineItem("Pallet of widgets", 2, amount // 2),),
    )


# --- idempotency across retries ----------------------------------------------------------------
def test_retries_of_a_capture_reuse_one_idempotency_key(
    start: Callable[..., Integration], api: Api, account: Account, approved_order: Any
) -> None:
    order = approved_order()
    add_fault(
        api,
        account,
        match={"operation": "createCapture", "attempt": {"lte": 2}},
        effect={"type": "status", "status": 503, "retry_after_s": 1},
    )
    svc = start()
    capture = svc.run(svc.adapter.capture(order["id"], Money(50_000, USD), intent_id="ship-1"))
    assert capture.amount == Money(50_000, USD)
    intent = svc.store.intent("ship-1")
    assert intent is not None
    key = intent.idempotency_key
    entries = journal(api, account, operation="createCapture")
    assert [(e["idempotency_key"], e["attempt"], e["status"]) for e in entries] == [
        (key, 3, 201),
        (key, 2, 503),
        (key, 1, 503),
    ]
    assert (intent.status, intent.attempts) == (IntentStatus.SUCCEEDED, 3)


def test_retry_after_is_honoured_over_a_shorter_backoff(
    start: Callable[..., Integration], api: Api, account: Account, approved_order: Any
) -> None:
    order = approved_order()
    add_fault(
        api,
        account,
        match={"operation": "createCapture", "attempt": {"lte": 2}},
        effect={"type": "status", "status": 429, "retry_after_s": 7},
    )
    svc = start()
    svc.run(svc.adapter.capture(order["id"], Money(10_000, USD), intent_id="ship-ra"))
    assert len(svc.sleep.calls) == 2
    assert all(wait >= 7.0 for wait in svc.sleep.calls)  # the backoff alone would be < 0.2 s


def test_an_after_commit_500_is_retried_with_the_same_key_and_captures_once(
    start: Callable[..., Integration], api: Api, account: Account, approved_order: Any
) -> None:
    order = approved_order()
    add_fault(
        api,
        account,
        match={"operation": "createCapture"},
        effect={"type": "status", "status": 500},
        phase="after",
        times=1,
    )
    svc = start()
    capture = svc.run(svc.adapter.capture(order["id"], Money(50_000, USD), intent_id="ship-2"))
    assert capture.amount.amount == 50_000
    retry, lost = journal(api, account, operation="createCapture")
    assert (lost["status"], lost["attempt"]) == (500, 1)
    assert (retry["status"], retry["attempt"], retry["replayed"]) == (201, 2, True)
    assert retry["idempotency_key"] == lost["idempotency_key"]
    assert api.order(account, order["id"])["captured_amount"] == 50_000
    assert captured_events(api, account) == 1


def test_a_connection_reset_after_commit_is_resolved_by_a_replay(
    start: Callable[..., Integration], api: Api, account: Account, approved_order: Any
) -> None:
    order = approved_order()
    add_fault(
        api,
        account,
        match={"operation": "createCapture"},
        effect={"type": "reset"},
        phase="after",
        times=1,
    )
    svc = start()
    svc.run(svc.adapter.capture(order["id"], Money(20_000, USD), intent_id="ship-reset"))
    retry, cut = journal(api, account, operation="createCapture")
    assert cut["status"] is None
    assert retry["replayed"] is True
    assert api.order(account, order["id"])["captured_amount"] == 20_000


def test_a_retry_after_beyond_the_time_budget_gives_up_at_once_instead_of_sleeping(
    start: Callable[..., Integration], api: Api, account: Account, approved_order: Any
) -> None:
    order = approved_order()
    add_fault(
        api,
        account,
        match={"operation": "createCapture"},
        effect={"type": "status", "status": 503, "retry_after_s": 30},
    )
    svc = start(max_total_s=5.0)
    with pytest.raises(ProviderUnavailable) as caught:
        svc.run(svc.adapter.capture(order["id"], Money(10_000, USD), intent_id="ship-late"))
    assert (caught.value.ambiguous, caught.value.attempts) == (False, 1)
    assert svc.sleep.calls == []
    intent = svc.store.intent("ship-late")
    assert intent is not None
    assert intent.status is IntentStatus.PENDING  # a 503 before processing: nothing happened


def test_a_cut_json_body_on_a_read_is_retried(
    start: Callable[..., Integration], api: Api, account: Account, approved_order: Any
) -> None:
    order = approved_order()
    add_fault(
        api,
        account,
        match={"operation": "getOrder"},
        effect={"type": "malformed"},
        times=1,
    )
    svc = start()
    auth = svc.run(svc.adapter.get_authorization(order["id"]))
    assert auth.provider_order_id == order["id"]
    assert len(svc.sleep.calls) == 1


def scripted(*answers: httpx.Response | Exception) -> tuple[httpx.MockTransport, list[str]]:
    """A transport that gives `answers` in order and records each request's Idempotency-Key."""
    queue = list(answers)
    keys: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers.get("idempotency-key", ""))
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handle), keys


def scripted_client(transport: httpx.MockTransport) -> tuple[ResilientClient, IntegrationStore]:
    clock = MonotonicClock()
    store = IntegrationStore(":memory:", new_key=key_source(3), now=utc_now)
    client = ResilientClient(
        BASE_URL,
        "sk_test",
        store=store,
        now=utc_now,
        clock=clock,
        sleep=RecordingSleep(clock),
        random=lambda: 0.5,
        breakers=Breakers(clock),
        backoff=Backoff(max_attempts=3),
        transport=transport,
        in_flight_codes={"idempotency_key_in_use"},
    )
    return client, store


def test_a_concurrent_duplicate_in_flight_is_waited_out_not_taken_as_a_refusal() -> None:
    in_use = httpx.Response(409, json={"code": "idempotency_key_in_use", "detail": "busy"})
    transport, keys = scripted(in_use, httpx.Response(201, json={"id": "cap_1"}))
    client, store = scripted_client(transport)

    async def go() -> Any:
        async with client:
            return await client.call("captures", "POST", "/v1/x", {"a": 1}, intent_id="dup")

    response = asyncio.run(go())
    assert response.status == 201
    assert len(set(keys)) == 1
    assert len(keys) == 2
    intent = store.intent("dup")
    assert intent is not None
    assert intent.status is IntentStatus.SUCCEEDED
    store.close()


def test_a_connect_error_is_a_clean_failure_and_leaves_the_intent_pending() -> None:
    refused = httpx.ConnectError("connection refused")
    transport, keys = scripted(refused, refused, refused)
    client, store = scripted_client(transport)

    async def go() -> None:
        async with client:
            await client.call("captures", "POST", "/v1/x", {"a": 1}, intent_id="down")

    with pytest.raises(ProviderUnavailable) as caught:
        asyncio.run(go())
    assert (caught.value.ambiguous, caught.value.attempts) == (False, 3)
    assert len(keys) == 3
    assert len(set(keys)) == 1
    intent = store.intent("down")
    assert intent is not None
    assert intent.status is IntentStatus.PENDING
    store.close()


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectError("x"), Transport.CONNECT_ERROR),
        (httpx.ConnectTimeout("x"), Transport.CONNECT_TIMEOUT),
        (httpx.PoolTimeout("x"), Transport.CONNECT_TIMEOUT),
        (httpx.ReadTimeout("x"), Transport.READ_TIMEOUT),
        (httpx.ReadError("x"), Transport.RESET),
        (httpx.RemoteProtocolError("x"), Transport.PROTOCOL_ERROR),
        (ConnectionResetError("x"), Transport.RESET),
        (ValueError("x"), None),
    ],
)
def test_transport_exceptions_map_to_the_retry_policys_failures(
    exc: Exception, expected: Transport | None
) -> None:
    assert transport_failure(exc) is expected


# --- final answers ------------------------------------------------------------------------------
def test_a_final_rejection_is_not_retried_and_speaks_canonical_codes(
    start: Callable[..., Integration], api: Api, account: Account, approved_order: Any
) -> None:
    order = approved_order(amount=10_000)
    svc = start()
    with pytest.raises(ProviderRejected) as caught:
        svc.run(svc.adapter.capture(order["id"], Money(99_999, USD), intent_id="too-much"))
    assert (caught.value.status, caught.value.code) == (422, "amount_exceeds_available")
    assert caught.value.provider_code == "amount_exceeds_capturable"
    assert len(journal(api, account, operation="createCapture")) == 1
    assert svc.sleep.calls == []
    intent = svc.store.intent("too-much")
    assert intent is not None
    assert intent.status is IntentStatus.FAILED
    # The same intent again is answered from the store: still rejected, still one request.
    with pytest.raises(ProviderRejected):
        svc.run(svc.adapter.capture(order["id"], Money(99_999, USD), intent_id="too-much"))
    assert len(journal(api, account, operation="createCapture")) == 1
    assert svc.breakers["captures"].state is State.CLOSED  # a 4xx says nothing about health


# --- the breaker ----------------------------------------------------------------------------
def test_the_breaker_opens_after_repeated_5xx_and_short_circuits_without_a_request(
    start: Callable[..., Integration], api: Api, account: Account, approved_order: Any
) -> None:
    order = approved_order()
    add_fault(
        api,
        account,
        match={"operation": "getOrder"},
        effect={"type": "status", "status": 503},
    )
    svc = start(max_attempts=3, failure_threshold=3, cooldown_s=30.0)
    with pytest.raises(ProviderUnavailable) as exhausted:
        svc.run(svc.adapter.get_authorization(order["id"]))
    assert exhausted.value.ambiguous is False
    assert exhausted.value.attempts == 3
    assert svc.breakers["reads"].state is State.OPEN
    assert len(journal(api, account, operation="getOrder", status=503)) == 3
    sent = len(journal(api, account, operation="getOrder"))

    with pytest.raises(ProviderUnavailable) as refused:
        svc.run(svc.adapter.get_authorization(order["id"]))
    assert refused.value.breaker_open is True
    assert len(journal(api, account, operation="getOrder")) == sent  # no request made
    assert svc.breakers.states() == {"reads": State.OPEN}  # other families unaffected

    clear_faults(api)
    svc.clock.t += 31.0  # the cooldown passes: one half-open trial, which succeeds
    auth = svc.run(svc.adapter.get_authorization(order["id"]))
    assert auth.status is AuthorizationStatus.AUTHORIZED
    assert svc.breakers.states() == {"reads": State.CLOSED}


# --- durability across a restart ------------------------------------------------------------
def test_an_intent_keeps_its_key_across_a_restart_and_the_retry_replays(
    start: Callable[..., Integration], api: Api, account: Account, approved_order: Any
) -> None:
    order = approved_order()
    add_fault(  # every attempt commits, then the answer is lost
        api,
        account,
        match={"operation": "createCapture"},
        effect={"type": "status", "status": 502},
        phase="after",
    )
    first = start(max_attempts=2)
    with pytest.raises(ProviderUnavailable) as lost:
        first.run(first.adapter.capture(order["id"], Money(30_000, USD), intent_id="ship-3"))
    assert lost.value.ambiguous is True
    before = first.store.intent("ship-3")
    assert before is not None
    assert before.status is IntentStatus.AMBIGUOUS
    assert [i.id for i in first.store.pending_intents()] == ["ship-3"]
    first.stop()

    clear_faults(api)
    second = start()  # a new process on the same database file, with another key source
    after = second.store.intent("ship-3")
    assert after is not None
    assert after.idempotency_key == before.idempotency_key
    capture = second.run(
        second.adapter.capture(order["id"], Money(30_000, USD), intent_id="ship-3")
    )
    assert capture.amount.amount == 30_000
    newest = journal(api, account, operation="createCapture")[0]
    assert (newest["idempotency_key"], newest["status"], newest["replayed"]) == (
        before.idempotency_key,
        201,
        True,
    )
    assert api.order(account, order["id"])["captured_amount"] == 30_000
    assert captured_events(api, account) == 1
    assert second.store.pending_intents() == []


def test_an_intent_id_is_bound_to_one_request(tmp_path: Path) -> None:
    with IntegrationStore(tmp_path / "i.db", new_key=key_source(1), now=utc_now) as store:
        a = store.record_intent("ship-9", "captures", "POST /v1/x", {"amount": 1})
        again = store.record_intent("ship-9", "captures", "POST /v1/x", {"amount": 1})
        assert again.idempotency_key == a.idempotency_key
        with pytest.raises(IntentConflict):
            store.record_intent("ship-9", "captures", "POST /v1/x", {"amount": 2})


# --- the canonical model end to end --------------------------------------------------------
def test_an_order_lives_through_the_adapter_in_canonical_terms(
    start: Callable[..., Integration], api: Api
) -> None:
    svc = start()
    ref = svc.run(svc.adapter.create_checkout(place_order("SO-2001", 100_000)))
    assert ref.status is CheckoutStatus.OPEN
    assert ref.redirect_url.startswith("http")
    order_id = api.approve(ref.provider_checkout_id)["order_id"]

    done = svc.run(svc.adapter.get_checkout(ref.provider_checkout_id))
    assert (done.status, done.provider_order_id) == (CheckoutStatus.COMPLETED, order_id)
    auth = svc.run(svc.adapter.get_authorization(order_id))
    assert (auth.status, auth.amount, auth.merchant_order_id) == (
        AuthorizationStatus.AUTHORIZED,
        Money(100_000, USD),
        "SO-2001",
    )
    (found,) = svc.run(svc.adapter.find_by_merchant_order_id("SO-2001"))
    assert found.provider_order_id == order_id
    assert svc.run(svc.adapter.find_by_merchant_order_id("SO-nope")) == []

    svc.run(svc.adapter.capture(order_id, Money(60_000, USD), intent_id="cap-1"))
    partly = svc.run(svc.adapter.get_authorization(order_id))
    assert (partly.status, partly.captured) == (AuthorizationStatus.CAPTURED, 60_000)
    refund = svc.run(svc.adapter.refund(order_id, Money(10_000, USD), intent_id="rma-1"))
    assert refund.amount == Money(10_000, USD)
    refunded = svc.run(svc.adapter.get_authorization(order_id))
    assert (refunded.status, refunded.refunded) == (AuthorizationStatus.REFUNDED, 10_000)

    events, cursor = svc.run(svc.adapter.list_events(None))
    kinds = [e.kind for e in events if e.provider_order_id == order_id]
    assert kinds == [EventKind.AUTHORIZED, EventKind.CAPTURED, EventKind.REFUNDED]
    assert all(e.kind is None or isinstance(e.kind, EventKind) for e in events)
    assert svc.run(svc.adapter.list_events(cursor)) == ([], cursor)


def test_cancel_releases_the_authorization(
    start: Callable[..., Integration], api: Api, account: Account, approved_order: Any
) -> None:
    order = approved_order(amount=40_000)
    svc = start()
    canceled = svc.run(svc.adapter.cancel(order["id"], intent_id="cancel-1"))
    assert canceled.released == Money(40_000, USD)
    auth = svc.run(svc.adapter.get_authorization(order["id"]))
    assert auth.status is AuthorizationStatus.CANCELED
    with pytest.raises(ProviderRejected) as again:  # a new intent: a real second request
        svc.run(svc.adapter.cancel(order["id"], intent_id="cancel-2"))
    assert again.value.code == "invalid_state"


def test_every_provider_status_in_the_contract_maps_to_a_canonical_one() -> None:
    contract = yaml.safe_load((ROOT / "contracts" / "openapi.yaml").read_text())
    schemas = contract["components"]["schemas"]
    order_statuses = set(schemas["OrderOut"]["properties"]["status"]["enum"])
    checkout_statuses = set(schemas["CheckoutOut"]["properties"]["status"]["enum"])
    assert set(ORDER_STATUS) == order_statuses
    assert set(CHECKOUT_STATUS) == checkout_statuses
    assert {s.value for s in ORDER_STATUS.values()} <= {s.value for s in AuthorizationStatus}


# --- configuration and boundaries ------------------------------------------------------------
def test_an_unknown_provider_is_a_one_line_config_error(tmp_path: Path) -> None:
    with IntegrationStore(":memory:", new_key=key_source(1), now=utc_now) as store:
        with pytest.raises(ConfigError, match="unknown provider 'acme'") as caught:
            make_adapter(
                {"provider": "acme", "base_url": BASE_URL, "api_key": "k"}, store=store, now=utc_now
            )
        assert "\n" not in str(caught.value)
        with pytest.raises(ConfigError, match="api_key"):
            make_adapter({"provider": "sandbank", "base_url": BASE_URL}, store=store, now=utc_now)


def test_the_integration_package_never_imports_the_simulator() -> None:
    offenders = []
    for source in sorted((ROOT / "integration").rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{source.name}: {n}" for n in names if n.split(".")[0] == "simulator"]
    assert offenders == []
