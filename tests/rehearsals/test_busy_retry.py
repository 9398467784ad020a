"""The rehearsal's calls to the simulator retry `503 store_busy` (nothing was changed), and
only that: an injected 503 reaches the runner as it is."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from rehearsal import busy
from rehearsal.busy import BusyRetryTransport

BUSY = {"code": "store_busy", "status": 503}


def _client(answers: list[httpx.Response], seen: list[httpx.Request]) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    transport = BusyRetryTransport(httpx.MockTransport(handler))
    return httpx.AsyncClient(base_url="http://sim.test", transport=transport)


def test_a_busy_answer_is_sent_again_after_its_retry_after_and_the_next_answer_returned() -> None:
    seen: list[httpx.Request] = []
    answers = [
        httpx.Response(503, json=BUSY, headers={"Retry-After": "0"}),
        httpx.Response(503, json=BUSY, headers={"Retry-After": "0"}),
        httpx.Response(201, json={"id": "flt_1"}),
    ]

    async def go() -> httpx.Response:
        async with _client(answers, seen) as c:
            return await c.post("/_sandbox/faults", json={"effect": {"type": "error"}})

    r = asyncio.run(go())
    assert (r.status_code, r.json()) == (201, {"id": "flt_1"})
    assert [q.content for q in seen] == [seen[0].content] * 3  # the same body each time


def test_an_injected_503_with_another_code_is_not_retried() -> None:
    seen: list[httpx.Request] = []
    answers = [httpx.Response(503, json={"code": "service_unavailable"})]

    async def go() -> httpx.Response:
        async with _client(answers, seen) as c:
            return await c.get("/v1/orders")

    assert asyncio.run(go()).status_code == 503
    assert len(seen) == 1


def test_a_server_busy_for_good_answers_503_after_the_bounded_attempts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(busy, "ATTEMPTS", 3)
    seen: list[httpx.Request] = []
    answers = [httpx.Response(503, json=BUSY, headers={"Retry-After": "0"}) for _ in range(3)]

    async def go() -> httpx.Response:
        async with _client(answers, seen) as c:
            return await c.get("/_sandbox/accounts")

    assert asyncio.run(go()).status_code == 503
    assert len(seen) == 3


def test_the_blocking_client_retries_a_busy_answer_too() -> None:
    answers = [httpx.Response(503, json=BUSY, headers={"Retry-After": "0"}), httpx.Response(204)]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    transport = busy.BusyRetrySyncTransport(httpx.MockTransport(handler))
    with httpx.Client(base_url="http://sim.test", transport=transport) as c:
        assert c.delete("/_sandbox/faults").status_code == 204
    assert len(seen) == 2
