"""The webhook receiver battery without a network: what it sends (through httpx's mock
transport, on an injected clock), how it judges answers, and how the table reads."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from simulator import API_VERSION
from simulator.api.schemas import EventOut, OrderOut
from simulator.webhooks import check, signing

SECRET = signing.new_secret(bytes(range(25)))  # base64 with padding
T = 1_800_000_000
URL = "https://merchant.test/webhooks"


def battery(
    answer: Callable[[httpx.Request], int],
) -> tuple[list[check.CheckResult], list[httpx.Request]]:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(answer(request))

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        return check.run_battery(URL, SECRET, client=client, now=lambda: T), sent


def signed_by(request: httpx.Request, secret: str) -> bool:
    h = request.headers
    return h["webhook-signature"] == signing.sign(
        secret, h["webhook-id"], int(h["webhook-timestamp"]), request.content
    )


def test_cases_are_sent_in_order_with_the_timestamps_they_are_about() -> None:
    _, sent = battery(lambda r: 200)
    stamps = [r.headers.get("webhook-timestamp") for r in sent]
    #         valid  dup    forged stale          future         unsigned reordered pair unknown big
    assert stamps == [str(T)] * 3 + [str(T - 600), str(T + 600), None] + [str(T)] * 4
    assert [signed_by(r, SECRET) for r in sent if "webhook-id" in r.headers] == [
        True, True, False, True, True, True, True, True, True,
    ]  # fmt: skip
    assert all(r.headers["content-type"] == "application/json" for r in sent)


def test_a_duplicate_repeats_the_webhook_id_and_body_and_nothing_else_does() -> None:
    _, sent = battery(lambda r: 200)
    ids = [r.headers["webhook-id"] for r in sent if "webhook-id" in r.headers]
    assert ids[0] == ids[1]
    assert len(set(ids)) == len(ids) - 1
    assert sent[0].content == sent[1].content


def test_the_webhook_id_is_the_event_id_as_sandbank_sends_it() -> None:
    _, sent = battery(lambda r: 200)
    for r in sent:
        if "webhook-id" in r.headers:
            assert r.headers["webhook-id"] == json.loads(r.content)["id"]
            assert r.headers["webhook-id"].startswith("evt_")


def test_payloads_have_the_shape_of_sandbank_events() -> None:
    _, sent = battery(lambda r: 200)
    events = [json.loads(r.content) for r in sent]
    for e in events:
        assert set(e) == set(EventOut.model_fields)
        assert set(e["data"]) == set(OrderOut.model_fields)
        EventOut.model_validate(e)
        order = OrderOut.model_validate(e["data"])
        assert e["object_id"] == order.id
        assert order.id.startswith("ord_")
        assert e["id"].startswith("evt_")
        assert e["api_version"] == API_VERSION
        assert isinstance(order.amount, int)
        assert order.currency == "USD"
    captured, authorized = events[6], events[7]  # the reordered pair: the later one first
    assert (captured["type"], authorized["type"]) == ("order.captured", "order.authorized")
    for key in ("id", "buyer_id", "checkout_id", "amount", "authorized_at"):
        assert captured["data"][key] == authorized["data"][key]
    assert captured["created_at"] > authorized["created_at"]
    assert captured["data"]["captured_amount"] == captured["data"]["amount"]
    assert events[8]["type"] == "order.future_thing"
    assert len(sent[9].content) >= 1 << 20
    assert len(sent[0].content) < 20_000


def test_a_receiver_answering_200_to_everything_fails_only_the_refusals() -> None:
    results, _ = battery(lambda r: 200)
    assert [r.name for r in results if not r.passed] == [
        "bad_signature",
        "stale_timestamp",
        "future_timestamp",
        "missing_headers",
    ]


def test_refusing_with_5xx_and_413_for_big_bodies_are_judged() -> None:
    def answer(r: httpx.Request) -> int:
        if "webhook-id" not in r.headers:
            return 401
        if len(r.content) > 100_000:
            return 413
        return 200 if signed_by(r, SECRET) and r.headers["webhook-timestamp"] == str(T) else 503

    results, _ = battery(answer)
    failed = {r.name: r.detail for r in results if not r.passed}
    assert set(failed) == {"bad_signature", "stale_timestamp", "future_timestamp"}
    assert "HTTP 503 - refuse with a 4xx" in failed["bad_signature"]


def test_an_unreachable_endpoint_is_tried_once_and_every_case_fails() -> None:
    calls: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("Connection refused", request=request)

    with httpx.Client(transport=httpx.MockTransport(refuse)) as client:
        results = check.run_battery(URL, SECRET, client=client, now=lambda: T)
    assert len(calls) == 1
    assert not any(r.passed for r in results)
    assert results[0].detail == "cannot connect: Connection refused"
    assert results[-1].detail == "not sent (cannot connect)"


def test_a_timeout_fails_that_case_only() -> None:
    def slow_valid(request: httpx.Request) -> httpx.Response:
        if not calls:  # the first case only
            calls.append(request)
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(200)

    calls: list[httpx.Request] = []

    with httpx.Client(transport=httpx.MockTransport(slow_valid)) as client:
        results = check.run_battery(URL, SECRET, client=client, now=lambda: T, timeout=3)
    by_name = {r.name: r for r in results}
    assert by_name["valid"].detail.startswith("no answer within 3s")
    assert by_name["duplicate"].passed  # the next case was still sent


def test_the_table_is_aligned_and_ends_with_a_summary() -> None:
    results = [
        check.CheckResult("valid", "2xx", True, "HTTP 200"),
        check.CheckResult("bad_signature", "4xx", False, "HTTP 200 - accepted"),
    ]
    lines = check.render(results).splitlines()
    assert lines[0].split() == ["case", "expected", "result", "detail"]
    assert lines[-1] == "1 passed, 1 failed"
    column = lines[0].index("result")
    assert [line[column : column + 4] for line in lines[1:3]] == ["PASS", "FAIL"]
    assert all(line == line.rstrip() for line in lines)


@pytest.mark.parametrize(
    "url", ["ftp://merchant.test/", "merchant.test/webhooks", "http://", "file:///etc/passwd"]
)
def test_only_http_urls_are_accepted(url: str) -> None:
    with pytest.raises(ValueError, match="--url"):
        check.validate_url(url)


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_***", "c2VjcmV0", "whsec_not base64"])
def test_only_standard_webhooks_secrets_are_accepted(secret: str) -> None:
    with pytest.raises(ValueError, match="--secret"):
        check.validate_secret(secret)


def test_unpadded_secrets_are_accepted_as_the_reference_library_does() -> None:
    assert check.validate_secret(SECRET.rstrip("=")) == SECRET.rstrip("=")
