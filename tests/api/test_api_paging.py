"""Issue #17: every list pages the same way (`limit`, `cursor`; `has_more`, `next_cursor`).
Walking a list page by page gives every item once, in the list's order, and no more than
`limit` at a time; a cursor this API did not give is a 422 problem."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from factories import ADMIN, Account, Api
from test_api_errors import assert_problem
from test_api_webhooks import Receiver, build, endpoint, flush, new_buyer

from simulator.clock import ManualClock


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def hooks(receiver: Receiver, clock: ManualClock) -> Iterator[Api]:
    """An app whose webhooks go to `receiver`."""
    api = Api(build(receiver, clock), clock)
    yield api
    api.close()


@pytest.fixture
def acct(hooks: Api) -> Account:
    return hooks.new_account(seed=7)


def walk(api: Api, url: str, headers: dict[str, str], **params: Any) -> Iterator[list[Any]]:
    cursor: str | None = None
    for _ in range(100):  # bounded
        query = {**params, **({"cursor": cursor} if cursor else {})}
        r = api.get(url, headers=headers, params=query)
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["object"] == "list"
        assert len(page["data"]) <= int(params["limit"])
        yield page["data"]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            return
        cursor = page["next_cursor"]
    raise AssertionError("the list never ended")


def every(api: Api, url: str, headers: dict[str, str], **params: Any) -> list[Any]:
    return [item for page in walk(api, url, headers, **params) for item in page]


def test_webhook_endpoints_page_oldest_first(api: Api, account: Account) -> None:
    made = [endpoint(api, account, description=f"ep {n}")["id"] for n in range(5)]
    assert [e["id"] for e in every(api, "/v1/webhook_endpoints", account.headers, limit=2)] == made


def test_the_delivery_log_pages_newest_first(hooks: Api, acct: Account, receiver: Receiver) -> None:
    for n in range(3):
        endpoint(hooks, acct, description=f"ep {n}")
    new_buyer(hooks, acct)
    new_buyer(hooks, acct)
    flush(hooks)
    url = "/_sandbox/webhooks/deliveries"
    whole = hooks.get(url, headers=ADMIN, params={"account": acct.id}).json()["data"]
    assert len(whole) == 6
    assert every(hooks, url, ADMIN, account=acct.id, limit=4) == whole


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
    paged = every(hooks, url, acct.headers, limit=2)
    whole = hooks.get(url, headers=acct.headers, params={"limit": 100}).json()["data"]
    assert paged == whole
    keys = [(a["delivery_id"], a["n"]) for a in paged]
    assert len(keys) == len(set(keys)) > 3  # retries too, each once
    per_delivery = [k for k in keys if k[0] == keys[0][0]]
    assert [n for _, n in per_delivery] == sorted((n for _, n in per_delivery), reverse=True)


def test_the_request_journal_pages_newest_first(api: Api, account: Account) -> None:
    for _ in range(5):
        assert api.get("/v1/orders", headers=account.headers).status_code == 200
    url = "/_sandbox/requests"
    whole = api.get(url, headers=ADMIN, params={"account": account.id}).json()["data"]
    paged = every(api, url, ADMIN, account=account.id, limit=2)
    assert [e["seq"] for e in paged] == [e["seq"] for e in whole]
    assert [e["seq"] for e in paged] == sorted((e["seq"] for e in paged), reverse=True)


def test_fault_rules_page_oldest_first(api: Api, account: Account) -> None:
    rule = {
        "account": account.id,
        "match": {"path": "/v1/orders"},
        "effect": {"type": "status", "status": 503},
    }
    made = []
    for _ in range(5):
        r = api.post("/_sandbox/faults", headers=ADMIN, json=rule)
        assert r.status_code == 201, r.text
        made.append(r.json()["id"])
    gone = api.request("DELETE", f"/_sandbox/faults/{made.pop(1)}", headers=ADMIN)
    assert gone.status_code == 200  # a gap in the list changes nothing
    paged = every(api, "/_sandbox/faults", ADMIN, account=account.id, limit=2)
    assert [f["id"] for f in paged] == made


@pytest.mark.parametrize(
    "url",
    [
        "/v1/webhook_endpoints",
        "/_sandbox/webhooks/deliveries",
        "/_sandbox/requests",
        "/_sandbox/faults",
    ],
)
def test_a_cursor_not_given_by_the_api_is_a_422(api: Api, account: Account, url: str) -> None:
    headers = account.headers if url.startswith("/v1") else ADMIN
    assert_problem(api.get(url, headers=headers, params={"cursor": "not-a-cursor"}), 422)
