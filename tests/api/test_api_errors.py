"""Every response has a Request-Id; every error is problem+json; no input produces a 500."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from factories import ADMIN, Account, Api, checkout_body, json_values, near_valid
from hypothesis import given
from hypothesis import strategies as st

PROBLEM_FIELDS = {"type", "title", "status", "detail", "code", "request_id"}


def assert_problem(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    doc = r.json()
    assert set(doc) >= PROBLEM_FIELDS
    assert doc["status"] == status
    assert doc["type"] == f"urn:sandbank:problem:{doc['code']}"
    assert doc["request_id"] == r.headers["request-id"]
    if code is not None:
        assert doc["code"] == code
    return dict(doc)


def test_every_response_has_a_request_id(api: Api, account: Account) -> None:
    responses = [
        api.get("/"),
        api.get("/openapi.yaml"),
        api.get("/_sandbox/health"),
        api.get("/v1/orders", headers=account.headers),
        api.get("/v1/orders"),
        api.get("/nowhere"),
        api.post("/v1/checkouts", headers=account.headers, json=checkout_body()),
        api.get("/hosted/checkouts/chk_x"),
    ]
    ids = [r.headers["request-id"] for r in responses]
    assert all(i.startswith("req_") for i in ids)
    assert len(set(ids)) == len(ids)


def test_malformed_json_is_400(api: Api, account: Account) -> None:
    r = api.post(
        "/v1/checkouts",
        headers={**account.headers, "Content-Type": "application/json"},
        content=b"{bad",
    )
    assert_problem(r, 400, "malformed_json")


def test_schema_violation_is_422_with_field_paths(api: Api, account: Account) -> None:
    body = checkout_body(amount="12")
    body["buyer"]["email"] = "not-an-email"
    body["surprise"] = 1
    r = api.post("/v1/checkouts", headers=account.headers, json=body)
    doc = assert_problem(r, 422, "validation_failed")
    paths = {e["path"] for e in doc["errors"]}
    assert {"body.amount", "body.buyer.email", "body.surprise"} <= paths
    assert all({"path", "message", "type"} == set(e) for e in doc["errors"])


@pytest.mark.parametrize("amount", [0, -1, 1.5, True, 10**13 + 1])
def test_amounts_must_be_positive_integers_in_range(
    api: Api, account: Account, amount: Any
) -> None:
    r = api.post("/v1/checkouts", headers=account.headers, json=checkout_body(amount=amount))
    doc = assert_problem(r, 422, "validation_failed")
    assert doc["errors"][0]["path"] == "body.amount"


def test_body_over_one_mebibyte_is_413(api: Api, account: Account) -> None:
    big = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    for extra in ({}, {"Idempotency-Key": "big"}):
        r = api.post(
            "/v1/checkouts",
            headers={**account.headers, **extra, "Content-Type": "application/json"},
            content=big,
        )
        assert_problem(r, 413, "payload_too_large")


def test_body_over_one_mebibyte_without_content_length_is_413(api: Api, account: Account) -> None:
    def chunks() -> Any:
        for _ in range(20):
            yield b"x" * 65536

    async def stream() -> Any:
        for chunk in chunks():
            yield chunk

    r = api.post(
        "/v1/checkouts",
        headers={**account.headers, "Content-Type": "application/json"},
        content=stream(),
    )
    assert_problem(r, 413, "payload_too_large")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_wrong_content_type_is_415(api: Api, account: Account, content_type: str) -> None:
    r = api.post(
        "/v1/checkouts",
        headers={**account.headers, "Content-Type": content_type},
        content=orjson.dumps(checkout_body()),
    )
    assert_problem(r, 415, "unsupported_media_type")


def test_json_with_a_charset_and_plus_json_types_are_accepted(api: Api, account: Account) -> None:
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        r = api.post(
            "/v1/checkouts",
            headers={**account.headers, "Content-Type": content_type},
            content=orjson.dumps(checkout_body()),
        )
        assert r.status_code == 201, content_type


def test_unknown_ids_are_404_problems(api: Api, account: Account) -> None:
    for path in ("/v1/orders/ord_nope", "/v1/checkouts/chk_nope", "/v1/buyers/buy_nope"):
        assert_problem(api.get(path, headers=account.headers), 404, "not_found")


def test_unknown_route_and_wrong_method_are_problems(api: Api, account: Account) -> None:
    assert_problem(api.get("/nothing/here"), 404, "not_found")
    r = api.request("DELETE", "/v1/checkouts", headers=account.headers)
    assert_problem(r, 405, "method_not_allowed")


def test_401_is_a_problem(api: Api) -> None:
    assert_problem(
        api.get("/v1/orders", headers={"Authorization": "Bearer sk_test_wrong"}),
        401,
        "unauthorized",
    )


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "sbadm_test_token"}]
)
def test_control_plane_without_or_with_a_wrong_admin_token_is_401(
    api: Api, account: Account, headers: dict[str, str]
) -> None:
    for method, path in (
        ("GET", "/_sandbox/accounts"),
        ("POST", "/_sandbox/accounts"),
        ("GET", f"/_sandbox/accounts/{account.id}/dump"),
        ("POST", f"/_sandbox/accounts/{account.id}/reset"),
        ("POST", f"/_sandbox/accounts/{account.id}/clock/advance"),
    ):
        assert_problem(
            api.request(method, path, headers=headers, json={"by": "1d"}), 401, "unauthorized"
        )
    assert api.get("/_sandbox/health").status_code == 200


def test_an_account_api_key_is_not_an_admin_token(api: Api, account: Account) -> None:
    assert_problem(api.get("/_sandbox/accounts", headers=account.headers), 401)


def test_the_admin_token_is_not_an_api_key(api: Api) -> None:
    assert_problem(api.get("/v1/orders", headers=ADMIN), 401)


def test_unknown_account_on_the_control_plane_is_404(api: Api) -> None:
    assert_problem(api.get("/_sandbox/accounts/acct_nope/clock", headers=ADMIN), 404, "not_found")


# --- no input produces a 500 --------------------------------------------------------------------
POSTS = [
    "/v1/buyers",
    "/v1/checkouts",
    "/v1/prequalifications",
    "/v1/orders/{order}/captures",
    "/v1/orders/{order}/refunds",
    "/v1/orders/{order}/cancel",
    "/v1/test_helpers/checkouts/{checkout}/approve",
    "/v1/test_helpers/checkouts/{checkout}/decline",
]
CONTROL_POSTS = [
    "/_sandbox/accounts",
    "/_sandbox/accounts/{account}/clock/advance",
    "/_sandbox/checkouts/{checkout}/approve",
    "/_sandbox/orders/{order}/review",
]


@pytest.fixture
def targets(api: Api, account: Account) -> dict[str, str]:
    order = api.approved_order(account)
    return {"order": order["id"], "checkout": api.checkout(account)["id"], "account": account.id}


@given(payload=json_values, which=st.integers(0, len(POSTS) + len(CONTROL_POSTS) - 1))
def test_random_json_never_produces_a_500(
    api: Api, account: Account, targets: dict[str, str], payload: Any, which: int
) -> None:
    paths = POSTS + CONTROL_POSTS
    path = paths[which].format(**targets)
    headers = account.headers if which < len(POSTS) else ADMIN
    r = api.post(path, headers=headers, json=payload)
    assert r.status_code < 500, (path, payload, r.text)
    if r.status_code >= 400:
        assert_problem(r, r.status_code)


@given(
    payload=near_valid(checkout_body())
    | near_valid({**checkout_body(), "buyer": {"legal_name": 1}})
)
def test_near_valid_checkouts_never_produce_a_500(
    api: Api, account: Account, payload: dict[str, Any]
) -> None:
    r = api.post("/v1/checkouts", headers=account.headers, json=payload)
    assert r.status_code < 500, (payload, r.text)


@given(
    body=near_valid({"amount": 100, "currency": "USD", "final": False, "reason": "x"}),
    kind=st.sampled_from(["captures", "refunds"]),
)
def test_near_valid_captures_and_refunds_never_produce_a_500(
    api: Api, account: Account, targets: dict[str, str], body: dict[str, Any], kind: str
) -> None:
    r = api.post(f"/v1/orders/{targets['order']}/{kind}", headers=account.headers, json=body)
    assert r.status_code < 500, (body, r.text)


@given(
    params=st.dictionaries(
        st.sampled_from(
            ["limit", "cursor", "status", "merchant_order_id", "buyer_id", "external_id", "x"]
        ),
        st.text(max_size=70),
        max_size=3,
    ),
    path=st.sampled_from(["/v1/orders", "/v1/buyers", "/v1/events"]),
)
def test_random_list_queries_never_produce_a_500(
    api: Api, account: Account, params: dict[str, str], path: str
) -> None:
    r = api.get(path, headers=account.headers, params=params)
    assert r.status_code in (200, 422), (params, r.text)


@given(by=st.text(max_size=45))
def test_random_durations_never_produce_a_500(api: Api, account: Account, by: str) -> None:
    r = api.post(f"/_sandbox/accounts/{account.id}/clock/advance", headers=ADMIN, json={"by": by})
    assert r.status_code in (200, 422), (by, r.text)


def test_each_kind_of_bad_credentials_gets_its_own_401_text(api: Api, account: Account) -> None:
    cases = {
        "no header": ({}, "send your API key as"),
        "no scheme": ({"Authorization": account.api_key}, "put the scheme before the key"),
        "basic": ({"Authorization": "Basic eDp5"}, "put the scheme before the key"),
        "unknown key": ({"Authorization": "Bearer sk_test_nobody"}, "is not known here"),
        "admin token": (dict(ADMIN), "that is the admin token"),
    }
    for name, (headers, text) in cases.items():
        r = api.get("/v1/orders", headers=headers)
        assert r.status_code == 401, name
        assert r.headers["content-type"] == "application/problem+json", name
        assert text in r.json()["detail"], (name, r.json()["detail"])


def test_an_unknown_path_is_a_problem_that_points_to_the_contract(api: Api) -> None:
    r = api.get("/v2/orders")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert "/openapi.yaml" in r.json()["detail"]
    assert "/v2/orders" in r.json()["detail"]


def test_the_docs_page_renders_the_contract_from_this_server_only(api: Api) -> None:
    for path, spec in (("/docs", "/openapi.json"), ("/_sandbox/docs", "/_sandbox/openapi.json")):
        r = api.get(path)
        assert r.status_code == 200
        assert f'spec-url="{spec}"' in r.text
        assert "http" not in r.text.split("<body>", 1)[1]  # nothing from elsewhere
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert api.get(spec).status_code == 200
    bundle = api.get("/docs/redoc.standalone.js")
    assert bundle.status_code == 200
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert len(bundle.content) > 500_000


def test_a_nul_character_in_a_filter_is_never_a_500(api: Api, account: Account) -> None:
    """PostgreSQL's text cannot hold NUL (SQLite's can): no match, or a 422, on either store."""
    r = api.get("/v1/orders", headers=account.headers, params={"merchant_order_id": "\x00"})
    assert r.status_code in (200, 422), r.text
