"""Issue #17: every list pages the same way (`limit`, `cursor`; `has_more`, `next_cursor`).
Walking a list page by page gives every item once, in the list's order, and no more than
`limit` at a time; a cursor this API did not give is a 422 problem."""

from __future__ import annotations

import pytest
from factories import ADMIN, Account, Api
from test_api_errors import assert_problem
from test_api_webhooks import endpoint


def test_webhook_endpoints_page_oldest_first(api: Api, account: Account) -> None:
    made = [endpoint(api, account, description=f"ep {n}")["id"] for n in range(5)]
    assert [e["id"] for e in api.every("/v1/webhook_endpoints", account.headers, limit=2)] == made


def test_the_request_journal_pages_newest_first(api: Api, account: Account) -> None:
    for _ in range(5):
        assert api.get("/v1/orders", headers=account.headers).status_code == 200
    url = "/_sandbox/requests"
    whole = api.get(url, headers=ADMIN, params={"account": account.id}).json()["data"]
    paged = api.every(url, ADMIN, account=account.id, limit=2)
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
    paged = api.every("/_sandbox/faults", ADMIN, account=account.id, limit=2)
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
