"""Faults through the whole pipeline, in-process: rules from the control plane, before and after
the operation, limits, windows on the account clock, presets, the one-off header, determinism,
bad input, and the request journal. (Socket-level behaviour over real TCP: tests/e2e.)"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from factories import ADMIN, START, Account, Api, build_app, checkout_body

from simulator.clock import ManualClock
from simulator.faults.presets import PRESETS
from simulator.faults.sockets import ConnectionFault

PROBLEM = "application/problem+json"


def add_fault(api: Api, **rule: Any) -> dict[str, Any]:
    r = api.post("/_sandbox/faults", headers=ADMIN, json=rule)
    assert r.status_code == 201, r.text
    return dict(r.json())


def journal(api: Api, account: Account, **params: Any) -> list[dict[str, Any]]:
    r = api.get("/_sandbox/requests", headers=ADMIN, params={"account": account.id, **params})
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def count(api: Api, **match: Any) -> int:
    r = api.post("/_sandbox/requests/count", headers=ADMIN, json=match)
    assert r.status_code == 200, r.text
    return int(r.json()["count"])


def create_checkout(
    api: Api, account: Account, key: str | None = None, **kw: Any
) -> httpx.Response:
    headers = {**account.headers, **({"Idempotency-Key": key} if key else {})}
    return api.post("/v1/checkouts", headers=headers, json=checkout_body(), **kw)


def checkouts_in_dump(api: Api, account: Account) -> int:
    r = api.get(f"/_sandbox/accounts/{account.id}/dump", headers=ADMIN)
    return len(r.json()["checkouts"])


# --- before / after ---------------------------------------------------------------------------
def test_status_fault_before_answers_a_provider_problem_and_stores_nothing(
    api: Api, account: Account
) -> None:
    rule = add_fault(
        api,
        account=account.id,
        match={"operation": "createCheckout"},
        effect={"type": "status", "status": 503, "retry_after_s": 30},
    )
    r = create_checkout(api, account, key="chk-before-1")
    assert r.status_code == 503
    assert r.headers["content-type"] == PROBLEM
    assert r.headers["retry-after"] == "30"
    body = r.json()
    assert body["code"] == "service_unavailable"
    assert body["request_id"] == r.headers["request-id"]
    assert checkouts_in_dump(api, account) == 0
    # Nothing was saved under the key either: once the fault is gone, the same key creates.
    api.request("DELETE", f"/_sandbox/faults/{rule['id']}", headers=ADMIN)
    again = create_checkout(api, account, key="chk-before-1")
    assert again.status_code == 201
    assert "idempotent-replayed" not in again.headers


def test_status_fault_after_commits_and_an_idempotent_retry_replays_the_result(
    api: Api, account: Account, approved_order: Any
) -> None:
    order = approved_order()
    add_fault(
        api,
        account=account.id,
        match={"operation": "createCapture"},
        effect={"type": "status", "status": 504},
        phase="after",
        times=1,
    )
    headers = {**account.headers, "Idempotency-Key": "ship-after-1"}
    url = f"/v1/orders/{order['id']}/captures"
    lost = api.post(url, headers=headers, json={"amount": 50_000})
    assert lost.status_code == 504
    assert api.order(account, order["id"])["captured_amount"] == 50_000  # it happened
    retry = api.post(url, headers=headers, json={"amount": 50_000})
    assert retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert api.order(account, order["id"])["captured_amount"] == 50_000  # and only once
    captured = [e for e in api.events(account) if e["type"] == "order.captured"]
    assert len(captured) == 1


def test_the_journal_says_a_retry_replayed_even_when_an_after_fault_spoiled_its_answer(
    api: Api, account: Account, approved_order: Any
) -> None:
    order = approved_order()
    add_fault(
        api,
        account=account.id,
        match={"operation": "createCapture"},
        effect={"type": "status", "status": 500},
        phase="after",
        times=3,
    )
    headers = {**account.headers, "Idempotency-Key": "ship-after-3"}
    url = f"/v1/orders/{order['id']}/captures"
    statuses = [api.post(url, headers=headers, json={"amount": 10_000}).status_code for _ in "1234"]
    assert statuses == [500, 500, 500, 201]
    entries = journal(api, account, operation="createCapture")[::-1]  # oldest first
    assert [(e["status"], e["replayed"]) for e in entries] == [
        (500, False),
        (500, True),
        (500, True),
        (201, True),
    ]
    assert api.order(account, order["id"])["captured_amount"] == 10_000


def test_reset_without_a_socket_surfaces_as_a_connection_fault(api: Api, account: Account) -> None:
    add_fault(api, account=account.id, match={"operation": "listOrders"}, effect={"type": "reset"})
    with pytest.raises(ConnectionFault):
        api.get("/v1/orders", headers=account.headers)
    assert journal(api, account)[0]["status"] is None


def test_malformed_and_content_type_faults_spoil_a_200(api: Api, account: Account) -> None:
    add_fault(
        api,
        account=account.id,
        match={"operation": "listOrders"},
        effect={"type": "malformed"},
        times=1,
    )
    add_fault(
        api,
        account=account.id,
        match={"operation": "listOrders"},
        effect={"type": "content_type"},
        phase="after",
        times=1,
    )
    spoiled = api.get("/v1/orders", headers=account.headers)
    assert spoiled.status_code == 200
    with pytest.raises(ValueError, match=r"(?i)json|expect|unterminated|delimiter"):
        spoiled.json()
    wrong_type = api.get("/v1/orders", headers=account.headers)
    assert wrong_type.headers["content-type"].startswith("text/html")
    assert wrong_type.json()["object"] == "list"  # the real body under the wrong label


# --- limits: times, attempts, windows, ramps -----------------------------------------------
def test_times_fires_exactly_n_times_then_the_rule_retires(api: Api, account: Account) -> None:
    rule = add_fault(
        api,
        account=account.id,
        match={"operation": "listOrders"},
        effect={"type": "status", "status": 500},
        times=2,
    )
    statuses = [api.get("/v1/orders", headers=account.headers).status_code for _ in range(4)]
    assert statuses == [500, 500, 200, 200]
    assert api.get(f"/_sandbox/faults/{rule['id']}", headers=ADMIN).json()["fired"] == 2


def test_attempt_rule_fails_the_first_two_attempts_of_every_key(api: Api, account: Account) -> None:
    add_fault(
        api,
        account=account.id,
        match={"operation": "createCheckout", "attempt": {"lte": 2}},
        effect={"type": "status", "status": 502},
    )
    first = [create_checkout(api, account, key="k-1").status_code for _ in range(3)]
    second = [create_checkout(api, account, key="k-2").status_code for _ in range(3)]
    assert first == second == [502, 502, 201]
    entries = journal(api, account, idempotency_key="k-1")
    assert [e["attempt"] for e in entries] == [3, 2, 1]


def test_window_counts_on_the_account_clock(api: Api, account: Account) -> None:
    add_fault(
        api,
        account=account.id,
        match={"path": "/v1/*"},
        effect={"type": "status", "status": 503, "retry_after_s": 30},
        window={"duration": "15m"},
    )
    assert api.get("/v1/orders", headers=account.headers).status_code == 503
    api.advance(account, "14m")
    assert api.get("/v1/orders", headers=account.headers).status_code == 503
    api.advance(account, "1m")
    assert api.get("/v1/orders", headers=account.headers).status_code == 200


def test_a_ramp_degrades_from_healthy_to_failing_across_its_window(
    api: Api, account: Account
) -> None:
    add_fault(
        api,
        account=account.id,
        match={"operation": "listOrders"},
        effect={"type": "status", "status": 500},
        window={"duration": "100m"},
        ramp={"from": 0.0, "to": 1.0},
    )

    def failures() -> int:
        codes = [api.get("/v1/orders", headers=account.headers).status_code for _ in range(40)]
        return codes.count(500)

    early = failures()  # p = 0
    api.advance(account, "50m")
    middle = failures()  # p = 0.5
    api.advance(account, "49m59s")
    late = failures()  # p ~ 1
    assert early == 0
    assert 8 <= middle <= 32
    assert late >= 38


# --- determinism -----------------------------------------------------------------------------
def fault_pattern(seed: int) -> list[int]:
    """Twenty requests under a 50 % rule on a fresh app whose account has `seed`."""
    clock = ManualClock(START)
    api = Api(build_app(seed=1, clock=clock), clock)
    try:
        account = api.new_account(seed=seed)
        add_fault(
            api,
            account=account.id,
            match={"operation": "listOrders"},
            effect={"type": "status", "status": 503},
            probability=0.5,
        )
        return [api.get("/v1/orders", headers=account.headers).status_code for _ in range(20)]
    finally:
        api.close()


def test_same_seed_same_requests_same_faults_and_another_seed_differs() -> None:
    a, b, c = fault_pattern(7), fault_pattern(7), fault_pattern(8)
    assert a == b
    assert a != c
    assert 0 < a.count(503) < 20


# --- presets and the one-off header ------------------------------------------------------------
def test_presets_are_listed_and_applied_as_rules(api: Api, account: Account) -> None:
    listed = api.get("/_sandbox/faults/presets", headers=ADMIN).json()["data"]
    assert {p["name"] for p in listed} == set(PRESETS)
    r = api.post(
        "/_sandbox/faults/presets/total-outage", headers=ADMIN, json={"account": account.id}
    )
    assert r.status_code == 201
    (created,) = r.json()["rules"]
    assert created["preset"] == "total-outage"
    assert created["window"] == {"start": None, "end": None, "duration": "15m"}
    down = api.get("/v1/orders", headers=account.headers)
    assert (down.status_code, down.headers["retry-after"]) == (503, "30")
    assert api.post("/_sandbox/faults/presets/nope", headers=ADMIN).status_code == 404


def test_clearing_faults_works_during_a_total_outage(api: Api, account: Account) -> None:
    api.post("/_sandbox/faults/presets/total-outage", headers=ADMIN, json={})  # every account
    assert api.get("/v1/orders", headers=account.headers).status_code == 503
    cleared = api.request("DELETE", "/_sandbox/faults", headers=ADMIN)
    assert cleared.status_code == 200
    assert cleared.json() == {"deleted": 1}
    assert api.get("/v1/orders", headers=account.headers).status_code == 200


def test_the_fault_header_is_refused_unless_the_account_allows_it(
    api: Api, account: Account
) -> None:
    r = api.get("/v1/orders", headers={**account.headers, "Sandbank-Fault": "total-outage"})
    assert r.status_code == 403
    assert r.headers["content-type"] == PROBLEM
    assert "allow_fault_header" in r.json()["detail"]


def test_the_fault_header_takes_a_preset_or_an_inline_rule_for_one_request(api: Api) -> None:
    account = api.new_account(seed=3, allow_fault_header=True)
    h = account.headers
    r = api.get("/v1/orders", headers={**h, "Sandbank-Fault": "total-outage"})
    assert r.status_code == 503
    inline = '{"effect": {"type": "status", "status": 429, "retry_after_s": 2}}'
    r = api.get("/v1/orders", headers={**h, "Sandbank-Fault": inline})
    assert (r.status_code, r.headers["retry-after"]) == (429, "2")
    assert api.get("/v1/orders", headers=h).status_code == 200  # one request only
    assert api.get("/_sandbox/faults", headers=ADMIN).json()["data"] == []


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("{not json", "header.Sandbank-Fault"),
        ("no-such-preset", "header.Sandbank-Fault"),
        ('{"effect": {"type": "status", "status": 200}}', "header.Sandbank-Fault.effect.status"),
    ],
)
def test_a_bad_fault_header_is_a_422_naming_the_header(api: Api, value: str, path: str) -> None:
    account = api.new_account(seed=4, allow_fault_header=True)
    r = api.get("/v1/orders", headers={**account.headers, "Sandbank-Fault": value})
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"].startswith(path)


# --- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rule", "path"),
    [
        ({"effect": {"type": "status", "status": 418}}, "body.effect.status"),
        ({"effect": {"type": "truncate"}}, "body"),
        ({"match": {"operation": "capture"}, "effect": {"type": "reset"}}, "body.match.operation"),
        ({"effect": {"type": "reset"}, "window": {"duration": "soon"}}, "body.window.duration"),
        ({"effect": {"type": "reset"}, "times": 0}, "body.times"),
        ({}, "body.effect"),
    ],
)
def test_an_invalid_rule_is_a_422_that_names_the_field(
    api: Api, rule: dict[str, Any], path: str
) -> None:
    r = api.post("/_sandbox/faults", headers=ADMIN, json=rule)
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["errors"][0]["path"] == path
    assert api.get("/_sandbox/faults", headers=ADMIN).json()["data"] == []


def test_a_rule_for_an_unknown_account_is_a_404(api: Api) -> None:
    r = api.post(
        "/_sandbox/faults",
        headers=ADMIN,
        json={"account": "acct_nope", "effect": {"type": "reset"}},
    )
    assert r.status_code == 404


def test_fault_rules_need_the_admin_token(api: Api, account: Account) -> None:
    assert api.get("/_sandbox/faults", headers=account.headers).status_code == 401


def test_rules_of_one_account_never_touch_another(api: Api, account: Account) -> None:
    other = api.new_account(seed=9)
    add_fault(api, account=other.id, effect={"type": "status", "status": 500})
    assert api.get("/v1/orders", headers=account.headers).status_code == 200
    assert api.get("/v1/orders", headers=other.headers).status_code == 500


# --- the journal ------------------------------------------------------------------------------
def test_the_journal_records_every_v1_request_with_its_fault(api: Api, account: Account) -> None:
    rule = add_fault(
        api,
        account=account.id,
        match={"operation": "createCheckout"},
        effect={"type": "status", "status": 503},
        times=1,
    )
    create_checkout(api, account, key="j-1")
    create_checkout(api, account, key="j-1")
    create_checkout(api, account, key="j-1")
    api.get("/v1/orders", headers=account.headers)
    newest, replay, created, failed = journal(api, account)
    assert newest["operation"] == "listOrders"
    assert (failed["status"], failed["fault"]["rule"], failed["fault"]["phase"]) == (
        503,
        rule["id"],
        "before",
    )
    assert (created["status"], created["replayed"], created["attempt"]) == (201, False, 2)
    assert (replay["status"], replay["replayed"], replay["attempt"]) == (201, True, 3)
    assert failed["request_id"].startswith("req_")
    assert count(api, account=account.id, operation="createCheckout") == 3
    assert count(api, account=account.id, faulted=True) == 1
    assert count(api, account=account.id, replayed=True, status=201) == 1
    assert count(api, account=account.id, path="/v1/orders*", method="GET") == 1


def test_the_journal_filters_and_clears_per_account(api: Api, account: Account) -> None:
    other = api.new_account(seed=9)
    api.get("/v1/orders", headers=account.headers)
    api.get("/v1/orders", headers=other.headers)
    assert len(journal(api, account)) == 1
    assert count(api) == 2
    cleared = api.request(
        "DELETE", "/_sandbox/requests", headers=ADMIN, params={"account": account.id}
    )
    assert cleared.json() == {"deleted": 1}
    assert journal(api, account) == []
    assert count(api, account=other.id) == 1


def test_the_journal_is_a_bounded_ring(clock: ManualClock) -> None:
    app = build_app(seed=1, clock=clock)
    app.runtime.journal.size = 5
    api = Api(app, clock)
    try:
        account = api.new_account(seed=1)
        for i in range(8):
            api.get("/v1/orders", headers=account.headers, params={"limit": i + 1})
        kept = journal(api, account)
        assert len(kept) == 5
        assert kept[0]["seq"] > kept[-1]["seq"]
    finally:
        api.close()


def test_a_bad_journal_filter_is_a_422(api: Api) -> None:
    r = api.get("/_sandbox/requests", headers=ADMIN, params={"status": "teapot"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == "query.status"


def test_the_access_log_line_names_the_fault_applied(
    api: Api, account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    rule = add_fault(
        api, account=account.id, match={"operation": "listOrders"}, effect={"type": "malformed"}
    )
    with caplog.at_level(logging.INFO, logger="sandbank.access"):
        r = api.get("/v1/orders", headers=account.headers)
    (line,) = [
        json.loads(rec.getMessage()) for rec in caplog.records if rec.name == "sandbank.access"
    ]
    assert line["request_id"] == r.headers["request-id"]
    assert (line["account"], line["method"], line["path"], line["status"]) == (
        account.id,
        "GET",
        "/v1/orders",
        200,
    )
    assert isinstance(line["latency_ms"], float)
    assert line["fault"] == {
        "rule": rule["id"],
        "effect": "malformed",
        "phase": "before",
        "preset": None,
    }


def test_a_start_end_window_opens_and_closes_on_the_account_clock(
    api: Api, account: Account
) -> None:
    now = api.get(f"/_sandbox/accounts/{account.id}/clock", headers=ADMIN).json()["now"]
    start = datetime.fromisoformat(now) + timedelta(hours=1)
    add_fault(
        api,
        account=account.id,
        effect={"type": "status", "status": 502},
        window={"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()},
    )
    assert api.get("/v1/orders", headers=account.headers).status_code == 200
    api.advance(account, "1h")
    assert api.get("/v1/orders", headers=account.headers).status_code == 502
    api.advance(account, "1h")
    assert api.get("/v1/orders", headers=account.headers).status_code == 200


def test_the_access_log_line_carries_the_callers_correlation_id(
    api: Api, account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="sandbank.access"):
        api.get("/v1/orders", headers={**account.headers, "X-Correlation-Id": "erp-order-42"})
        api.get("/v1/orders", headers=account.headers)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "sandbank.access"]
    assert [line.get("correlation_id") for line in lines] == ["erp-order-42", None]


def test_the_contract_suites_reset_forgets_the_request_journal_as_the_control_plane_does() -> None:
    """The in-process contract target resets through `Accounts.reset`, the control plane's one
    reset, so a scenario never starts with the previous scenario's requests in the journal."""
    from contracts.suite.target import _in_process  # noqa: PLC0415
    from simulator.faults.journal import RequestFilter  # noqa: PLC0415

    target = _in_process()
    assert target.app is not None
    assert target.reset is not None
    journal = target.app.runtime.journal
    api = Api(target.app, ManualClock(START))
    try:
        headers = {"Authorization": f"Bearer {target.api_key}"}
        assert api.get("/v1/orders", headers=headers).status_code == 200
    finally:
        api.close()
    demo = RequestFilter(account=target.app.runtime.accounts.for_key(target.api_key))
    assert journal.count(demo) == 1
    target.reset()
    assert journal.count(demo) == 0
