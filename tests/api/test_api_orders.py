"""The provider API over HTTP: checkout to refund, the amount rules, and account isolation."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from factories import ADMIN, Account, Api, business, checkout_body

Order = Callable[..., dict[str, Any]]


def test_full_lifecycle_checkout_approve_capture_refund_read_back(
    api: Api, account: Account
) -> None:
    h = account.headers
    r = api.post("/v1/checkouts", headers=h, json=checkout_body(125_000))
    assert r.status_code == 201
    chk = r.json()
    assert chk["status"] == "open"
    assert chk["order_id"] is None
    assert chk["url"] == f"http://sandbank.test/hosted/checkouts/{chk['id']}"
    assert chk["id"].startswith("chk_")

    done = api.approve(chk["id"], terms="net60")
    assert (done["status"], done["terms"]) == ("completed", "net60")
    assert done["decision"]["outcome"] == "approved"
    assert done["decision"]["magic"] == "approve"
    oid = done["order_id"]
    assert oid.startswith("ord_")

    order = api.order(account, oid)
    assert (order["status"], order["capturable_amount"]) == ("authorized", 125_000)
    assert order["checkout_id"] == chk["id"]
    assert order["merchant_order_id"] == "SO-1001"
    assert api.buyer(account, chk["buyer_id"])["credit_line"]["used"] == 125_000

    r = api.post(f"/v1/orders/{oid}/captures", headers=h, json={"amount": 50_000})
    assert r.status_code == 201
    assert r.json()["id"].startswith("cap_")
    assert r.json()["order"]["status"] == "partially_captured"
    r = api.post(f"/v1/orders/{oid}/captures", headers=h, json={"amount": 25_000})
    assert r.json()["order"]["capturable_amount"] == 50_000

    r = api.post(f"/v1/orders/{oid}/refunds", headers=h, json={"amount": 20_000, "reason": "rma"})
    assert r.status_code == 201
    assert r.json()["id"].startswith("ref_")
    r = api.post(f"/v1/orders/{oid}/refunds", headers=h, json={"amount": 5_000})
    assert r.status_code == 201

    order = api.order(account, oid)
    assert order["status"] == "partially_refunded"
    assert (order["amount"], order["captured_amount"], order["refunded_amount"]) == (
        125_000,
        75_000,
        25_000,
    )
    assert (order["capturable_amount"], order["refundable_amount"]) == (50_000, 50_000)
    assert [c["amount"] for c in order["captures"]] == [50_000, 25_000]
    assert [r["amount"] for r in order["refunds"]] == [20_000, 5_000]
    assert order["refunds"][0]["reason"] == "rma"
    # The line holds the uncaptured 50,000 plus the net captured 50,000.
    assert api.buyer(account, order["buyer_id"])["credit_line"]["used"] == 100_000
    types = [e["type"] for e in api.events(account)]
    assert types[:2] == ["buyer.created", "checkout.created"]
    assert "order.authorized" in types
    assert types.count("order.captured") == 2
    assert types.count("order.refunded") == 2


def test_approve_through_the_test_helper_endpoint(api: Api, account: Account) -> None:
    chk = api.checkout(account)
    r = api.post(
        f"/v1/test_helpers/checkouts/{chk['id']}/approve",
        headers=account.headers,
        json={"terms": "installments_3"},
    )
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["terms"]) == ("completed", "installments_3")
    assert api.order(account, r.json()["order_id"])["status"] == "authorized"


def test_approve_without_a_body_defaults_to_net30(api: Api, account: Account) -> None:
    chk = api.checkout(account)
    r = api.post(f"/v1/test_helpers/checkouts/{chk['id']}/approve", headers=account.headers)
    assert (r.status_code, r.json()["terms"]) == (200, "net30")


def test_approving_a_completed_checkout_again_is_409(api: Api, account: Account) -> None:
    chk = api.checkout(account)
    api.approve(chk["id"])
    r = api.post(f"/_sandbox/checkouts/{chk['id']}/approve", headers=ADMIN, json={})
    assert (r.status_code, r.json()["code"]) == (409, "invalid_transition")


def test_declined_buyer_ends_the_checkout_declined_without_an_order(
    api: Api, account: Account
) -> None:
    chk = api.checkout(account, tag="decline")
    done = api.approve(chk["id"])
    assert (done["status"], done["order_id"]) == ("declined", None)
    assert done["decision"]["reason"] == "credit_declined"
    assert api.buyer(account, chk["buyer_id"])["credit_line"]["status"] == "declined"


def test_an_order_above_a_magic_limit_is_declined_for_insufficient_credit(
    api: Api, account: Account
) -> None:
    chk = api.checkout(account, 60_000, tag="limit_500")
    done = api.approve(chk["id"])
    assert (done["status"], done["decision"]["reason"]) == ("declined", "insufficient_credit")
    line = api.buyer(account, chk["buyer_id"])["credit_line"]
    assert (line["limit"], line["used"]) == (500_00, 0)


def test_buyer_declines_on_the_test_helper(api: Api, account: Account) -> None:
    chk = api.checkout(account)
    r = api.post(f"/v1/test_helpers/checkouts/{chk['id']}/decline", headers=account.headers)
    assert (r.status_code, r.json()["status"]) == (200, "declined")
    assert r.json()["decision"]["reason"] == "buyer_declined"


def test_cancel_before_capture_releases_the_credit(
    api: Api, account: Account, approved_order: Order
) -> None:
    order = approved_order(80_000)
    r = api.post(f"/v1/orders/{order['id']}/cancel", headers=account.headers)
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["capturable_amount"]) == ("canceled", 0)
    assert r.json()["canceled_at"] is not None
    assert api.buyer(account, order["buyer_id"])["credit_line"]["used"] == 0


def test_cancel_after_a_capture_is_409(api: Api, account: Account, approved_order: Order) -> None:
    order = approved_order()
    api.post(f"/v1/orders/{order['id']}/captures", headers=account.headers, json={"amount": 1})
    r = api.post(
        f"/v1/orders/{order['id']}/cancel", headers=account.headers, json={"reason": "oops"}
    )
    assert (r.status_code, r.json()["code"]) == (409, "invalid_transition")
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("body", [{"amount": 1}, None])
def test_capture_after_cancel_is_rejected(
    api: Api, account: Account, approved_order: Order, body: Any
) -> None:
    order = approved_order()
    api.post(f"/v1/orders/{order['id']}/cancel", headers=account.headers)
    r = api.post(f"/v1/orders/{order['id']}/captures", headers=account.headers, json=body)
    assert (r.status_code, r.json()["code"]) == (409, "invalid_transition")


def test_capture_more_than_capturable_is_422(
    api: Api, account: Account, approved_order: Order
) -> None:
    order = approved_order(10_000)
    r = api.post(
        f"/v1/orders/{order['id']}/captures", headers=account.headers, json={"amount": 10_001}
    )
    assert (r.status_code, r.json()["code"]) == (422, "amount_exceeds_capturable")
    assert api.order(account, order["id"])["captured_amount"] == 0


def test_capture_without_amount_captures_everything(
    api: Api, account: Account, approved_order: Order
) -> None:
    order = approved_order(10_000)
    r = api.post(f"/v1/orders/{order['id']}/captures", headers=account.headers)
    assert (r.status_code, r.json()["amount"], r.json()["order"]["status"]) == (
        201,
        10_000,
        "captured",
    )


def test_final_capture_releases_the_rest_of_the_hold(
    api: Api, account: Account, approved_order: Order
) -> None:
    order = approved_order(10_000)
    r = api.post(
        f"/v1/orders/{order['id']}/captures",
        headers=account.headers,
        json={"amount": 4_000, "final": True},
    )
    assert (r.json()["order"]["status"], r.json()["order"]["capturable_amount"]) == ("captured", 0)
    assert api.buyer(account, order["buyer_id"])["credit_line"]["used"] == 4_000


def test_refund_never_more_than_captured(api: Api, account: Account, approved_order: Order) -> None:
    order = approved_order(10_000)
    api.post(f"/v1/orders/{order['id']}/captures", headers=account.headers, json={"amount": 3_000})
    r = api.post(
        f"/v1/orders/{order['id']}/refunds", headers=account.headers, json={"amount": 3_001}
    )
    assert (r.status_code, r.json()["code"]) == (422, "amount_exceeds_refundable")
    r = api.post(
        f"/v1/orders/{order['id']}/refunds", headers=account.headers, json={"amount": 3_000}
    )
    assert r.status_code == 201
    r = api.post(f"/v1/orders/{order['id']}/refunds", headers=account.headers, json={"amount": 1})
    assert (r.status_code, r.json()["code"]) == (422, "amount_exceeds_refundable")


def test_refund_before_any_capture_is_409(
    api: Api, account: Account, approved_order: Order
) -> None:
    order = approved_order()
    for body in ({"amount": 1}, None):
        r = api.post(f"/v1/orders/{order['id']}/refunds", headers=account.headers, json=body)
        assert (r.status_code, r.json()["code"]) == (409, "invalid_transition")


def test_mixed_currency_capture_is_422_currency_mismatch(
    api: Api, account: Account, approved_order: Order
) -> None:
    order = approved_order()
    r = api.post(
        f"/v1/orders/{order['id']}/captures",
        headers=account.headers,
        json={"amount": 100, "currency": "EUR"},
    )
    assert (r.status_code, r.json()["code"]) == (422, "currency_mismatch")


def test_checkout_in_another_currency_than_the_buyer_is_422(api: Api, account: Account) -> None:
    buyer = api.post("/v1/buyers", headers=account.headers, json=business(currency="EUR")).json()
    body = checkout_body(buyer_id=buyer["id"], currency="USD")
    del body["buyer"]
    r = api.post("/v1/checkouts", headers=account.headers, json=body)
    assert (r.status_code, r.json()["code"]) == (422, "currency_mismatch")


@pytest.mark.parametrize("path", ["/v1/checkouts", "/v1/buyers", "/v1/prequalifications"])
def test_unknown_currency_is_422(api: Api, account: Account, path: str) -> None:
    body = {
        "/v1/checkouts": checkout_body(currency="XXY"),
        "/v1/buyers": business(currency="XXY"),
        "/v1/prequalifications": {"business": business(), "currency": "XXY"},
    }[path]
    r = api.post(path, headers=account.headers, json=body)
    assert (r.status_code, r.json()["code"]) == (422, "unknown_currency")


def test_unknown_currency_on_a_capture_is_422(
    api: Api, account: Account, approved_order: Order
) -> None:
    order = approved_order()
    r = api.post(
        f"/v1/orders/{order['id']}/captures",
        headers=account.headers,
        json={"amount": 1, "currency": "XXY"},
    )
    assert (r.status_code, r.json()["code"]) == (422, "unknown_currency")


def test_checkout_in_a_zero_decimal_currency(api: Api, account: Account) -> None:
    chk = api.checkout(account, 5_000, currency="JPY", buyer=business(currency="JPY"))
    assert chk["currency"] == "JPY"
    assert "5,000 JPY" in api.get(chk["url"]).text


def test_update_order_amount_moves_the_hold(
    api: Api, account: Account, approved_order: Order
) -> None:
    order = approved_order(10_000)
    r = api.patch(
        f"/v1/orders/{order['id']}",
        headers=account.headers,
        json={"amount": 7_000, "metadata": {"a": "b"}},
    )
    assert r.status_code == 200
    assert (r.json()["amount"], r.json()["metadata"]) == (7_000, {"a": "b"})
    assert api.buyer(account, order["buyer_id"])["credit_line"]["used"] == 7_000
    api.post(f"/v1/orders/{order['id']}/captures", headers=account.headers, json={"amount": 1})
    r = api.patch(f"/v1/orders/{order['id']}", headers=account.headers, json={"amount": 9_000})
    assert (r.status_code, r.json()["code"]) == (409, "invalid_transition")


def test_update_beyond_the_available_credit_is_422(
    api: Api, account: Account, approved_order: Order
) -> None:
    order = approved_order(10_000)
    r = api.patch(f"/v1/orders/{order['id']}", headers=account.headers, json={"amount": 60_000_00})
    assert (r.status_code, r.json()["code"]) == (422, "insufficient_credit")
    assert api.order(account, order["id"])["amount"] == 10_000


def test_unknown_api_key_is_401(api: Api) -> None:
    for headers in ({"Authorization": "Bearer sk_test_nope"}, {}, {"Authorization": "Basic abc"}):
        r = api.get("/v1/orders", headers=headers)
        assert (r.status_code, r.json()["code"]) == (401, "unauthorized")
        assert r.headers["www-authenticate"] == "Bearer"


def test_one_account_never_sees_another_accounts_objects(
    api: Api, account: Account, approved_order: Order
) -> None:
    order = approved_order()
    other = api.new_account(seed=99)
    for path in (
        f"/v1/orders/{order['id']}",
        f"/v1/checkouts/{order['checkout_id']}",
        f"/v1/buyers/{order['buyer_id']}",
    ):
        r = api.get(path, headers=other.headers)
        assert (r.status_code, r.json()["code"]) == (404, "not_found"), path
    for path in (f"/v1/orders/{order['id']}/captures", f"/v1/orders/{order['id']}/cancel"):
        assert api.post(path, headers=other.headers, json={}).status_code == 404
    r = api.patch(f"/v1/orders/{order['id']}", headers=other.headers, json={"metadata": {}})
    assert r.status_code == 404
    r = api.post(
        f"/v1/test_helpers/checkouts/{order['checkout_id']}/approve", headers=other.headers
    )
    assert r.status_code == 404
    body = checkout_body(buyer_id=order["buyer_id"])
    del body["buyer"]
    assert api.post("/v1/checkouts", headers=other.headers, json=body).status_code == 404
    assert (
        api.post(
            "/v1/prequalifications", headers=other.headers, json={"buyer_id": order["buyer_id"]}
        ).status_code
        == 404
    )
    for path in ("/v1/orders", "/v1/buyers", "/v1/events"):
        assert api.get(path, headers=other.headers).json()["data"] == [], path
    assert api.order(account, order["id"])["status"] == "authorized"


def test_prequalification_returns_a_decision_and_creates_no_order(
    api: Api, account: Account
) -> None:
    r = api.post(
        "/v1/prequalifications", headers=account.headers, json={"business": business("approve")}
    )
    assert r.status_code == 201
    pq = r.json()
    assert pq["id"].startswith("pq_")
    assert (pq["decision"], pq["estimated_limit"], pq["currency"]) == ("approved", 50_000_00, "USD")
    assert pq["offered_terms"] == [
        "net30",
        "net60",
        "installments_3",
        "installments_6",
        "installments_12",
    ]
    declined = api.post(
        "/v1/prequalifications", headers=account.headers, json={"business": business("decline")}
    ).json()
    assert (declined["decision"], declined["estimated_limit"], declined["offered_terms"]) == (
        "declined",
        0,
        [],
    )
    assert api.get("/v1/orders", headers=account.headers).json()["data"] == []
    assert api.get("/v1/buyers", headers=account.headers).json()["data"] == []
    assert api.events(account) == []


def test_prequalification_for_an_existing_buyer(api: Api, account: Account) -> None:
    buyer = api.post("/v1/buyers", headers=account.headers, json=business("limit_900")).json()
    r = api.post("/v1/prequalifications", headers=account.headers, json={"buyer_id": buyer["id"]})
    assert (r.json()["decision"], r.json()["estimated_limit"]) == ("approved", 900_00)


def test_prequalification_needs_exactly_one_of_buyer_id_and_business(
    api: Api, account: Account
) -> None:
    for body in ({}, {"buyer_id": "buy_x", "business": business()}):
        r = api.post("/v1/prequalifications", headers=account.headers, json=body)
        assert (r.status_code, r.json()["code"]) == (422, "validation_failed")


def test_buyers_list_by_external_id_with_cursor_pagination(api: Api, account: Account) -> None:
    ids = []
    for i in range(7):
        r = api.post("/v1/buyers", headers=account.headers, json=business(external_id=f"ext-{i}"))
        assert r.status_code == 201
        ids.append(r.json()["id"])
    r = api.get("/v1/buyers", headers=account.headers, params={"external_id": "ext-3"})
    assert [b["id"] for b in r.json()["data"]] == [ids[3]]
    pages = list(api.walk("/v1/buyers", account, limit=3))
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [b["id"] for p in pages for b in p] == ids[::-1]


def test_duplicate_external_id_is_409(api: Api, account: Account) -> None:
    api.post("/v1/buyers", headers=account.headers, json=business(external_id="dup"))
    r = api.post("/v1/buyers", headers=account.headers, json=business(external_id="dup"))
    assert (r.status_code, r.json()["code"]) == (409, "conflict")


def test_checkout_with_a_known_external_id_reuses_the_buyer(api: Api, account: Account) -> None:
    a = api.checkout(account, buyer=business("approve", external_id="e1"))
    b = api.checkout(account, buyer=business("approve", external_id="e1"))
    assert a["buyer_id"] == b["buyer_id"]


def test_orders_list_filters_and_walks_every_page_without_duplicates_or_gaps(
    api: Api, account: Account, approved_order: Order
) -> None:
    orders = [approved_order(1_000 + i, merchant_order_id=f"SO-{i % 3}") for i in range(11)]
    for o in orders[:4]:
        api.post(f"/v1/orders/{o['id']}/cancel", headers=account.headers)
    everything = [o["id"] for page in api.walk("/v1/orders", account, limit=4) for o in page]
    assert everything == [o["id"] for o in orders][::-1]
    canceled = [
        o["id"]
        for page in api.walk("/v1/orders", account, limit=3, status="canceled")
        for o in page
    ]
    assert canceled == [o["id"] for o in orders[:4]][::-1]
    so1 = [
        o["id"]
        for page in api.walk("/v1/orders", account, limit=2, merchant_order_id="SO-1")
        for o in page
    ]
    assert so1 == [o["id"] for o in orders if o["merchant_order_id"] == "SO-1"][::-1]
    both = api.get(
        "/v1/orders",
        headers=account.headers,
        params={"status": "authorized", "merchant_order_id": "SO-0"},
    )
    assert {o["id"] for o in both.json()["data"]} == {
        o["id"] for o in orders[4:] if o["merchant_order_id"] == "SO-0"
    }


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "x"},
        {"status": "nope"},
        {"cursor": "garbage!"},
        {"unknown": "1"},
    ],
)
def test_bad_list_parameters_are_422(api: Api, account: Account, params: dict[str, Any]) -> None:
    r = api.get("/v1/orders", headers=account.headers, params=params)
    assert (r.status_code, r.json()["code"]) == (422, "validation_failed")
    assert r.json()["errors"][0]["path"].startswith("query.")


def test_a_cursor_beyond_any_row_is_422_not_500(api: Api, account: Account) -> None:
    cursor = base64.urlsafe_b64encode(b"s9999999999999999999").decode().rstrip("=")
    r = api.get("/v1/orders", headers=account.headers, params={"cursor": cursor})
    assert r.status_code == 422


def test_hosted_page_renders_the_terms_choice(api: Api, account: Account) -> None:
    chk = api.checkout(account)
    r = api.get(f"/hosted/checkouts/{chk['id']}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    for term in ("net30", "net60", "installments_3", "installments_6", "installments_12"):
        assert f'value="{term}"' in r.text
    assert "1,250.00 USD" in r.text
    assert 'name="action" value="approve"' in r.text


def test_hosted_page_approve_redirects_303_to_return_url_with_checkout_id(
    api: Api, account: Account
) -> None:
    chk = api.checkout(account)
    r = api.post(f"/hosted/checkouts/{chk['id']}", data={"action": "approve", "terms": "net60"})
    assert r.status_code == 303
    assert r.headers["location"].startswith("https://shop.test/return?")
    assert f"checkout_id={chk['id']}" in r.headers["location"]
    got = api.get(f"/v1/checkouts/{chk['id']}", headers=account.headers).json()
    assert (got["status"], got["terms"]) == ("completed", "net60")
    # The page now says so, and a second submit is refused.
    assert "completed" in api.get(chk["url"]).text
    assert api.post(f"/hosted/checkouts/{chk['id']}", data={"action": "approve"}).status_code == 409


def test_hosted_page_decline_redirects_303_to_cancel_url(api: Api, account: Account) -> None:
    chk = api.checkout(account)
    r = api.post(f"/hosted/checkouts/{chk['id']}", data={"action": "decline"})
    assert r.status_code == 303
    assert r.headers["location"].startswith("https://shop.test/cancel?")
    assert f"checkout_id={chk['id']}" in r.headers["location"]


def test_hosted_page_replaces_the_ckkey_marker(api: Api, account: Account) -> None:
    chk = api.checkout(account, return_url="https://shop.test/ok/%CKKEY%")
    r = api.post(f"/hosted/checkouts/{chk['id']}", data={"action": "approve"})
    assert r.headers["location"] == f"https://shop.test/ok/{chk['id']}"


def test_hosted_page_without_an_action_is_422_and_unknown_checkout_404(
    api: Api, account: Account
) -> None:
    chk = api.checkout(account)
    assert api.post(f"/hosted/checkouts/{chk['id']}", data={"terms": "net30"}).status_code == 422
    assert (
        api.post(
            f"/hosted/checkouts/{chk['id']}", data={"action": "approve", "terms": "net7"}
        ).status_code
        == 422
    )
    assert api.get("/hosted/checkouts/chk_nope").status_code == 404
    assert api.post("/hosted/checkouts/chk_nope", data={"action": "approve"}).status_code == 404


def test_magic_limit_in_a_zero_decimal_currency_is_in_yen(api: Api, account: Account) -> None:
    chk = api.checkout(account, 600, currency="JPY", buyer=business("limit_500", currency="JPY"))
    done = api.approve(chk["id"])
    assert (done["status"], done["decision"]["reason"]) == ("declined", "insufficient_credit")
    assert api.buyer(account, chk["buyer_id"])["credit_line"]["limit"] == 500
    pq = api.post(
        "/v1/prequalifications",
        headers=account.headers,
        json={"business": business("approve"), "currency": "JPY"},
    ).json()
    assert (pq["estimated_limit"], pq["currency"]) == (50_000, "JPY")


def test_hosted_page_escapes_what_the_merchant_sent(api: Api, account: Account) -> None:
    chk = api.checkout(
        account,
        buyer=business("approve", legal_name="<script>x</script> Co"),
        merchant_order_id='"><b>',
    )
    page = api.get(chk["url"]).text
    assert "<script>x" not in page
    assert "&lt;script&gt;x&lt;/script&gt; Co" in page
    assert '"><b>' not in page


def test_orders_list_by_buyer(api: Api, account: Account, approved_order: Order) -> None:
    a = approved_order(buyer=business("approve", external_id="A"))
    approved_order(buyer=business("approve", external_id="B"))
    r = api.get("/v1/orders", headers=account.headers, params={"buyer_id": a["buyer_id"]})
    assert [o["id"] for o in r.json()["data"]] == [a["id"]]
