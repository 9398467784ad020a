"""Idempotency-Key: replays, reuse with another body, concurrent duplicates, expiry."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import orjson
from factories import ADMIN, Account, Api, checkout_body

from simulator.app import SandbankApp
from simulator.middleware.idempotency import IdempotencyMiddleware

Order = Callable[..., dict[str, Any]]


def with_key(account: Account, key: str) -> dict[str, str]:
    return {**account.headers, "Idempotency-Key": key}


def test_replay_returns_the_same_status_and_body_marked_replayed(
    api: Api, account: Account
) -> None:
    body = checkout_body()
    first = api.post("/v1/checkouts", headers=with_key(account, "k1"), json=body)
    again = api.post("/v1/checkouts", headers=with_key(account, "k1"), json=body)
    assert first.status_code == again.status_code == 201
    assert first.content == again.content
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert [e["type"] for e in api.events(account)].count("checkout.created") == 1


def test_replay_ignores_json_key_order_and_whitespace(api: Api, account: Account) -> None:
    body = checkout_body()
    first = api.post("/v1/checkouts", headers=with_key(account, "k2"), json=body)
    reordered = orjson.dumps(dict(reversed(list(body.items())))) + b"\n "
    again = api.post(
        "/v1/checkouts",
        headers={**with_key(account, "k2"), "Content-Type": "application/json"},
        content=reordered,
    )
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.content == first.content


def test_a_saved_domain_error_is_replayed_too(
    api: Api, account: Account, approved_order: Order
) -> None:
    order = approved_order(10_000)
    url = f"/v1/orders/{order['id']}/captures"
    first = api.post(url, headers=with_key(account, "cap-1"), json={"amount": 10_001})
    assert (first.status_code, first.json()["code"]) == (422, "amount_exceeds_capturable")
    again = api.post(url, headers=with_key(account, "cap-1"), json={"amount": 10_001})
    assert again.status_code == 422
    assert again.content == first.content  # including the original request_id
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["content-type"] == "application/problem+json"


def test_a_saved_409_is_replayed_even_after_the_state_would_allow_it(
    api: Api, account: Account, approved_order: Order
) -> None:
    order = approved_order(10_000)
    refund = f"/v1/orders/{order['id']}/refunds"
    first = api.post(refund, headers=with_key(account, "ref-1"), json={"amount": 100})
    assert (first.status_code, first.json()["code"]) == (409, "invalid_transition")
    api.post(f"/v1/orders/{order['id']}/captures", headers=account.headers, json={"amount": 500})
    again = api.post(refund, headers=with_key(account, "ref-1"), json={"amount": 100})
    assert (again.status_code, again.headers["idempotent-replayed"]) == (409, "true")
    assert api.order(account, order["id"])["refunded_amount"] == 0


def test_replayed_capture_does_not_capture_twice(
    api: Api, account: Account, approved_order: Order
) -> None:
    order = approved_order(10_000)
    url = f"/v1/orders/{order['id']}/captures"
    for _ in range(3):
        r = api.post(url, headers=with_key(account, "ship-1"), json={"amount": 4_000})
        assert r.status_code == 201
    assert api.order(account, order["id"])["captured_amount"] == 4_000


def test_same_key_with_a_different_body_is_422(api: Api, account: Account) -> None:
    api.post("/v1/checkouts", headers=with_key(account, "k3"), json=checkout_body(1_000))
    r = api.post("/v1/checkouts", headers=with_key(account, "k3"), json=checkout_body(2_000))
    assert (r.status_code, r.json()["code"]) == (422, "idempotency_key_reused")
    assert r.headers["content-type"] == "application/problem+json"


def test_same_key_on_another_path_is_422(api: Api, account: Account) -> None:
    api.post(
        "/v1/buyers", headers=with_key(account, "k4"), json={"legal_name": "A", "email": "a@b.co"}
    )
    r = api.post("/v1/prequalifications", headers=with_key(account, "k4"), json={"buyer_id": "x"})
    assert (r.status_code, r.json()["code"]) == (422, "idempotency_key_reused")


def test_keys_are_per_account(api: Api, account: Account) -> None:
    other = api.new_account(seed=8)
    a = api.post("/v1/checkouts", headers=with_key(account, "shared"), json=checkout_body())
    b = api.post("/v1/checkouts", headers=with_key(other, "shared"), json=checkout_body())
    assert b.status_code == 201
    assert "idempotent-replayed" not in b.headers
    assert a.json()["id"] != b.json()["id"]


def test_keys_expire_after_24_hours_on_the_account_clock(api: Api, account: Account) -> None:
    api.post("/v1/checkouts", headers=with_key(account, "k5"), json=checkout_body(1_000))
    api.advance(account, "23h")
    r = api.post("/v1/checkouts", headers=with_key(account, "k5"), json=checkout_body(2_000))
    assert r.status_code == 422
    api.post(f"/_sandbox/accounts/{account.id}/clock/advance", headers=ADMIN, json={"by": "2h"})
    r = api.post("/v1/checkouts", headers=with_key(account, "k5"), json=checkout_body(2_000))
    assert r.status_code == 201
    assert "idempotent-replayed" not in r.headers
    assert r.json()["amount"] == 2_000


def test_a_bad_key_is_422_with_the_header_path(api: Api, account: Account) -> None:
    r = api.post("/v1/checkouts", headers=with_key(account, "has space"), json=checkout_body())
    assert (r.status_code, r.json()["errors"][0]["path"]) == (422, "header.Idempotency-Key")
    r = api.post("/v1/checkouts", headers=with_key(account, "x" * 256), json=checkout_body())
    assert r.status_code == 422


def test_a_request_that_failed_validation_is_not_saved(api: Api, account: Account) -> None:
    r = api.post("/v1/checkouts", headers=with_key(account, "k6"), json={"amount": "1"})
    assert r.status_code == 422
    r = api.post("/v1/checkouts", headers=with_key(account, "k6"), json=checkout_body())
    assert r.status_code == 201


def test_gets_ignore_the_key(api: Api, account: Account) -> None:
    r = api.get("/v1/orders", headers=with_key(account, "g"))
    assert r.status_code == 200
    assert (
        "idempotent-replayed" not in api.get("/v1/orders", headers=with_key(account, "g")).headers
    )


async def _asgi_post(
    app: SandbankApp,
    path: str,
    headers: dict[str, str],
    body: bytes,
    *,
    started: asyncio.Event,
    release: asyncio.Event,
) -> tuple[int, bytes]:
    """One raw ASGI request whose response is held back until `release` is set."""
    status = 0
    chunks: list[bytes] = []
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # pragma: no cover - nothing reads past the body
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            started.set()
            await release.wait()
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1),
        "server": ("sandbank.test", 80),
    }
    await app(scope, receive, send)
    return status, b"".join(chunks)


def test_a_concurrent_duplicate_while_the_first_is_in_flight_is_409(
    api: Api, account: Account
) -> None:
    headers = {**with_key(account, "inflight"), "Content-Type": "application/json"}
    body = orjson.dumps(checkout_body())

    async def scenario() -> tuple[tuple[int, bytes], tuple[int, bytes], tuple[int, bytes]]:
        first_started, release_first = asyncio.Event(), asyncio.Event()
        first = asyncio.create_task(
            _asgi_post(
                api.app,
                "/v1/checkouts",
                headers,
                body,
                started=first_started,
                release=release_first,
            )
        )
        await first_started.wait()  # the first is processed; its response is still being sent
        open_gate = asyncio.Event()
        open_gate.set()
        second = await _asgi_post(
            api.app, "/v1/checkouts", headers, body, started=asyncio.Event(), release=open_gate
        )
        release_first.set()
        done = await first
        third = await _asgi_post(
            api.app, "/v1/checkouts", headers, body, started=asyncio.Event(), release=open_gate
        )
        return done, second, third

    (s1, b1), (s2, b2), (s3, b3) = api.loop.run_until_complete(scenario())
    assert s1 == 201
    assert (s2, orjson.loads(b2)["code"]) == (409, "idempotency_key_in_use")
    assert (s3, b3) == (201, b1)  # once the first finished, the key replays


def test_the_in_flight_slot_is_freed_even_when_the_app_fails() -> None:
    async def boom(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    middleware = IdempotencyMiddleware(boom)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/x",
        "headers": [(b"idempotency-key", b"k")],
        "sandbank.account": "acct_1",
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError("nothing is sent")

    async def go() -> None:
        with contextlib.suppress(RuntimeError):
            await middleware(scope, receive, send)

    asyncio.run(go())
    assert middleware.in_flight == set()
