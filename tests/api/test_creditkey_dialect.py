"""Credit Key's v1 dialect, driven exactly as the official SDKs drive it.

`PhpSdk` sends what creditkey-php 1.0.6 sends: POST JSON bodies with `public_key` and
`shared_secret` merged in (PHP floats as JSON numbers: `10.0` goes out as `10`), GETs with every
non-null field and both credentials in the query string, no Accept header, and treats only
HTTP 200 as success. `JsSdk` sends what creditkey-js 1.3.1 sends: POSTs to
`<base>/ecomm/<action>?public_key=K` with JSON content type and Accept, no shared secret.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from factories import ADMIN, Account, Api, build_app

from simulator.clock import ManualClock

PHP_BASE = "/app"  # Api::configure('http://host/app', ...): the staging-style base
JS_BASE = ""  # new Client(key, 'http://host'): no /app


class PhpSdk:
    def __init__(self, api: Api, public_key: str, shared_secret: str, base: str = PHP_BASE):
        self.api, self.base = api, base
        self.auth = {"public_key": public_key, "shared_secret": shared_secret}

    def post(self, action: str, args: dict[str, Any] | None = None) -> httpx.Response:
        raw = json.dumps({**(args or {}), **self.auth})
        return self.api.post(
            f"{self.base}/ecomm/{action}",
            content=raw,
            headers={"Content-Type": "application/json", "Content-Length": str(len(raw))},
        )

    def get(self, action: str, args: dict[str, Any]) -> httpx.Response:
        params = {k: v for k, v in {**args, **self.auth}.items() if v is not None}
        return self.api.get(f"{self.base}/ecomm/{action}", params=params)


class JsSdk:
    def __init__(self, api: Api, public_key: str, base: str = JS_BASE):
        self.api, self.base, self.key = api, base, public_key

    def post(self, action: str, body: dict[str, Any]) -> httpx.Response:
        return self.api.post(
            f"{self.base}/ecomm/{action}?public_key={self.key}",
            content=json.dumps(body),
            headers={"Accept": "application/json", "Content-Type": "application/json"},
        )


def cart() -> list[dict[str, Any]]:
    return [
        {
            "merchant_id": "123",
            "name": "Widget",
            "price": 19.99,
            "sku": "W-1",
            "quantity": 2,
            "size": "L",
            "color": "red",
        },
        {
            "merchant_id": 456,
            "name": "Gadget",
            "price": 60.02,
            "sku": None,
            "quantity": 1,
            "size": None,
            "color": None,
        },
    ]


def address(email: str = "ap+approve@acme.test") -> dict[str, Any]:
    return {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "company_name": "Acme Supply Co",
        "email": email,
        "address1": "100 Main Street",
        "address2": None,
        "city": "New York",
        "state": "NY",
        "zip": "10017",
        "phone_number": "212-555-1212",
    }


def charges(grand_total: float = 100.0) -> dict[str, Any]:
    return {
        "total": 100.0,
        "shipping": 0,
        "tax": 0,
        "discount_amount": 0,
        "grand_total": grand_total,
    }


def begin_args(
    remote_id: str = "SO-1001", email: str = "ap+approve@acme.test", **kw: Any
) -> dict[str, Any]:
    args = {
        "cart_items": cart(),
        "shipping_address": address(email),
        "billing_address": address(email),
        "charges": charges(),
        "remote_id": remote_id,
        "remote_customer_id": "C-77",
        "return_url": "https://shop.test/ck/return?id=%CKKEY%",
        "cancel_url": "https://shop.test/ck/cancel?id=%CKKEY%",
        "order_complete_url": None,
        "mode": None,
    }
    return {**args, **kw}


@pytest.fixture
def keys(api: Api) -> dict[str, str]:
    r = api.post("/_sandbox/accounts", headers=ADMIN, json={"name": "Acme Store", "seed": 7})
    assert r.status_code == 201, r.text
    creds = r.json()["creditkey"]
    assert creds["public_key"].startswith("acmestore_")
    return {**creds, "account": r.json()["id"], "api_key": r.json()["api_key"]}


@pytest.fixture
def php(api: Api, keys: dict[str, str]) -> PhpSdk:
    return PhpSdk(api, keys["public_key"], keys["shared_secret"])


def begin(php: PhpSdk, **kw: Any) -> str:
    """begin_checkout as the PHP SDK does it; the id the merchant learns from %CKKEY%."""
    r = php.post("begin_checkout", begin_args(**kw))
    assert r.status_code == 200, r.text
    url = r.json()["checkout_url"]
    assert url.startswith("http://")
    assert "/modal/" in url
    return str(r.json()["id"])


def borrower_accepts(api: Api, ck_id: str) -> httpx.Response:
    """The borrower accepts on the hosted page (redirect flow)."""
    page = api.get(f"/hosted/creditkey/redirect/{ck_id}")
    assert page.status_code == 200
    return api.post(
        f"/hosted/creditkey/redirect/{ck_id}",
        content="terms=net30&action=approve",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def test_a_php_sdk_merchant_runs_an_order_from_checkout_to_refund(
    api: Api, php: PhpSdk, keys: dict[str, str]
) -> None:
    assert php.post("authenticate").json() == {"success": True}
    shown = php.post("is_displayed_in_checkout", {"cart_items": cart(), "remote_customer_id": None})
    assert shown.status_code == 200
    assert shown.json() == {"is_displayed_in_checkout": True}

    ck_id = begin(php)
    new = php.get("find_order", {"id": ck_id}).json()
    assert (new["status"], new["merchant_order_id"], new["amount"]) == ("new", "SO-1001", 100)
    assert php.post("complete_checkout", {"id": ck_id}).json() == {"success": False}

    done = borrower_accepts(api, ck_id)
    assert done.status_code == 303
    assert done.headers["location"] == f"https://shop.test/ck/return?id={ck_id}"
    assert php.post("complete_checkout", {"id": ck_id}).json() == {"success": True}

    found = php.get("find_order", {"id": ck_id})
    assert found.status_code == 200
    order = found.json()
    assert order["status"] == "authorized"
    assert order["capture_status"] == "uncaptured"
    assert order["shipping_address"]["first_name"] == "Ada"
    assert [i["merchant_product_id"] for i in order["items"]] == ["123", "456"]
    assert order["items"][0] == {
        "merchant_product_id": "123",
        "name": "Widget",
        "price": 19.99,
        "sku": "W-1",
        "quantity": 2,
        "size": "L",
        "color": "red",
    }

    # update_order: the amount follows charges.grand_total; the last item's id is echoed.
    items = [
        *cart(),
        {
            "merchant_id": "999999",
            "name": "Test Adapter",
            "price": 10.99,
            "sku": "9898928232",
            "quantity": 1,
            "size": None,
            "color": None,
        },
    ]
    shipping = {**address(), "first_name": "Test", "email": "testtester@creditkey.com"}
    updated = php.post(
        "update_order",
        {
            "id": ck_id,
            "merchant_status": "test_status",
            "merchant_order_id": "WC-5001",
            "cart_items": items,
            "charges": {
                "total": 99.99,
                "shipping": 9.99,
                "tax": 9.99,
                "discount_amount": 0,
                "grand_total": 119.97,
            },
            "shipping_address": shipping,
        },
    )
    assert updated.status_code == 200, updated.text
    u = updated.json()
    assert (u["amount"], u["merchant_status"], u["merchant_order_id"]) == (
        119.97,
        "test_status",
        "WC-5001",
    )
    assert u["items"][-1]["merchant_product_id"] == "999999"
    assert u["shipping_address"]["email"] == "testtester@creditkey.com"
    assert b'"amount":119.97' in updated.content  # written exactly, two decimals at most

    by_merchant = php.get("find_order_by_merchant_order_id", {"merchant_order_id": "WC-5001"})
    assert by_merchant.status_code == 200
    assert by_merchant.json()["id"] == ck_id

    # A partial confirm (Magento: the invoice's total), then the rest.
    partial = php.post(
        "confirm_order",
        {
            "id": ck_id,
            "merchant_order_id": "WC-5001",
            "merchant_status": "shipped",
            "cart_contents": items,
            "charges": charges(70),
        },
    )
    assert partial.status_code == 200, partial.text
    assert (partial.json()["status"], partial.json()["capture_status"]) == ("shipped", "captured")
    assert partial.json()["merchant_status"] == "shipped"
    rest = php.post(
        "confirm_order",
        {
            "id": ck_id,
            "merchant_order_id": "WC-5001",
            "merchant_status": "shipped",
            "cart_items": items,
            "charges": charges(49.97),
        },
    )
    assert rest.status_code == 200, rest.text
    too_much = php.post("confirm_order", {"id": ck_id, "charges": charges(1)})
    assert too_much.status_code == 400

    # Refunds: partial, too much, then the rest (full).
    r = php.post("refund", {"id": ck_id, "amount": 10.0})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["refunded_amount"]) == ("returned", 10)
    over = php.post("refund", {"id": ck_id, "amount": 500})
    assert over.status_code == 400
    assert "more than the 109.97 refundable" in over.json()["message"]
    full = php.post("refund", {"id": ck_id, "amount": "109.97"})
    assert full.status_code == 200
    assert full.json()["refunded_amount"] == 119.97

    # The same order on the native API: integer cents, the Credit Key facts in metadata.
    native = api.get(
        "/v1/orders",
        headers={"Authorization": f"Bearer {keys['api_key']}"},
        params={"merchant_order_id": "WC-5001"},
    ).json()["data"]
    assert [(o["captured_amount"], o["refunded_amount"], o["status"]) for o in native] == [
        (11_997, 11_997, "refunded")
    ]
    assert native[0]["checkout_id"] == ck_id
    assert native[0]["metadata"]["creditkey_merchant_status"] == "shipped"


def test_cancel_before_shipment_cancels_and_after_it_is_refused(api: Api, php: PhpSdk) -> None:
    ck_id = begin(php, remote_id="SO-2")
    borrower_accepts(api, ck_id)
    canceled = php.post("cancel_order", {"id": ck_id})
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"

    shipped = begin(php, remote_id="SO-3")
    borrower_accepts(api, shipped)
    assert php.post("confirm_order", {"id": shipped, "charges": charges()}).status_code == 200
    refused = php.post("cancel_order", {"id": shipped})
    assert refused.status_code == 400
    assert "refund it" in refused.json()["message"]


def test_an_open_checkout_can_be_canceled_and_then_reads_as_canceled(php: PhpSdk) -> None:
    ck_id = begin(php, remote_id="SO-4")
    assert php.post("cancel_checkout", {"id": ck_id}).json() == {"success": True}
    assert php.get("find_order", {"id": ck_id}).json()["status"] == "canceled"
    assert php.post("complete_checkout", {"id": ck_id}).json() == {"success": False}


def test_a_polled_order_answers_its_last_read_until_it_changes(api: Api, php: PhpSdk) -> None:
    """find_order, as a merchant's status poll sends it: reused while nothing changed
    (`simulator.api.reads`), read afresh once the borrower accepts."""
    ck_id = begin(php, remote_id="SO-9")
    polls = [php.get("find_order", {"id": ck_id}).json() for _ in range(3)]
    assert [p["status"] for p in polls] == ["new", "new", "new"]
    assert api.app.runtime.reads.hits == 2
    borrower_accepts(api, ck_id)
    assert php.get("find_order", {"id": ck_id}).json()["status"] == "authorized"


def test_unknown_id_is_404_missing_id_400_and_bad_secret_401_as_the_sdk_expects(
    api: Api, php: PhpSdk, keys: dict[str, str]
) -> None:
    assert php.get("find_order", {"id": "abcdefg"}).status_code == 404
    missing = php.get("find_order", {"id": None})  # http_build_query drops the null id
    assert missing.status_code == 400
    body = missing.json()
    assert body["error"] == body["result"] == "invalid request"
    assert body["errors"][0]["path"] == "query.id"
    assert php.post("complete_checkout", {}).status_code == 400
    assert php.post("complete_checkout", {"id": "chk_nope"}).status_code == 404

    bad = PhpSdk(api, keys["public_key"], "0" * 32)
    refused = bad.post("authenticate")
    assert refused.status_code == 401
    assert refused.json()["error"] == "unauthorized"
    assert bad.get("find_order", {"id": "x"}).status_code == 401
    # Odoo's placement: both credentials in the query string, the payload alone in the body.
    odoo = api.post(
        "/app/ecomm/authenticate",
        params={"public_key": keys["public_key"], "shared_secret": keys["shared_secret"]},
        json={},
    )
    assert odoo.status_code == 200
    assert odoo.json() == {"success": True}


def test_the_js_sdk_needs_only_the_public_key_and_only_for_its_three_calls(
    api: Api, keys: dict[str, str]
) -> None:
    js = JsSdk(api, keys["public_key"])
    shown = js.post("is_displayed_in_checkout", {"cart_items": cart()})
    assert shown.status_code == 200
    assert shown.json() == {"is_displayed_in_checkout": True}
    began = js.post(
        "begin_checkout",
        {k: v for k, v in begin_args(remote_id="JS-1", mode="modal").items() if v is not None},
    )
    assert began.status_code == 200, began.text
    assert began.headers["access-control-allow-origin"] == "*"
    assert set(began.json()) == {"id", "checkout_url"}
    assert js.post("customer", {"email": "ap@acme.com", "customer_id": "C-77"}).json() == {
        "status": "pending"  # the buyer exists; no decision yet
    } | {"amount": 0, "amount_available": 0}
    # Anything else needs the shared secret too.
    assert js.post("complete_checkout", {"id": began.json()["id"]}).status_code == 401
    # The browser's preflight is answered without credentials.
    pre = api.request(
        "OPTIONS",
        "/ecomm/begin_checkout",
        headers={"Origin": "https://shop.test", "Access-Control-Request-Method": "POST"},
    )
    assert pre.status_code == 204
    assert "POST" in pre.headers["access-control-allow-methods"]
    assert "Content-Type" in pre.headers["access-control-allow-headers"]


@pytest.mark.parametrize(
    ("amount", "why"),
    [
        (10.001, "more than two decimals"),
        ("10.001", "more than two decimals"),
        (-5, "negative"),
        ("-5.00", "negative"),
        ("1,234.56", "thousands separators"),
        ("ten", "not a number"),
        (True, "number of dollars"),
    ],
)
def test_bad_amounts_are_refused_with_a_credit_key_400_that_says_why(
    api: Api, php: PhpSdk, amount: object, why: str
) -> None:
    ck_id = begin(php, remote_id=f"SO-A{why[:3]}")
    borrower_accepts(api, ck_id)
    php.post("confirm_order", {"id": ck_id, "charges": charges()})
    r = php.post("refund", {"id": ck_id, "amount": amount})
    assert r.status_code == 400, r.text
    assert why in r.json()["message"] or why in json.dumps(r.json()["errors"])


def test_malformed_and_wrongly_typed_bodies_get_400s_never_a_500(php: PhpSdk, api: Api) -> None:
    url = "/app/ecomm/begin_checkout"
    for raw in [b"{", b"[]", b'{"cart_items": "x"}', b'{"charges": {"grand_total": NaN}}']:
        r = api.post(url, content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code in (400, 401), (raw, r.text)
    auth = dict(php.auth)
    for body in [
        {},
        {"cart_items": []},
        {**begin_args(), "charges": {"total": 1}},
        {**begin_args(), "billing_address": {"first_name": "x"}},
        {**begin_args(), "cart_items": [{"quantity": 0}]},
        {**begin_args(), "charges": charges(0)},
    ]:
        r = api.post(url, json={**body, **auth})
        assert r.status_code == 400, (body, r.text)
        assert r.headers["content-type"] == "application/json"
        assert set(r.json()) >= {"error", "result", "message", "code", "request_id"}


def test_a_base_url_with_or_without_app_reaches_the_same_orders(api: Api, php: PhpSdk) -> None:
    ck_id = begin(php, remote_id="SO-5")
    plain = PhpSdk(api, php.auth["public_key"], php.auth["shared_secret"], base="")
    assert plain.get("find_order", {"id": ck_id}).json()["id"] == ck_id


def test_the_modal_page_posts_complete_with_the_return_url_and_redirect_loads_too(
    api: Api, php: PhpSdk
) -> None:
    ck_id = begin(php, remote_id="SO-6")
    r = php.post("find_order", {})  # a POST where a GET is expected
    assert r.status_code == 405
    url = urlsplit(api_checkout_url(php, ck_id))
    modal = api.get(f"{url.path}?modal=true")
    assert modal.status_code == 200
    assert '"height"' in modal.text
    assert "postMessage" in modal.text
    redirect = api.get(url.path.replace("modal", "redirect", 1))  # creditkey-js on phones
    assert redirect.status_code == 200
    done = api.post(
        f"{url.path}?modal=true",
        content="terms=net30&action=approve",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200
    assert json.dumps(f"https://shop.test/ck/return?id={ck_id}") in done.text
    declined = begin(php, remote_id="SO-7", email="ap+decline@acme.test", remote_customer_id=None)
    gone = api.post(
        f"/hosted/creditkey/redirect/{declined}",
        content="terms=net30&action=approve",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert gone.headers["location"] == f"https://shop.test/ck/cancel?id={declined}"
    assert php.get("find_order", {"id": declined}).json()["status"] == "canceled"


def api_checkout_url(php: PhpSdk, ck_id: str) -> str:
    r = php.get("find_order", {"id": ck_id})
    assert r.status_code == 200
    began = php.post("begin_checkout", begin_args(remote_id=f"{ck_id}-again"))
    path = urlsplit(began.json()["checkout_url"]).path
    return path.rsplit("/", 1)[0] + "/" + ck_id


def test_the_shared_secret_reaches_neither_the_journal_nor_the_access_log(
    api: Api, php: PhpSdk, keys: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="sandbank.access"):
        php.get("find_order", {"id": "abcdefg"})
        begin(php, remote_id="SO-8")
    journal = api.get("/_sandbox/requests", headers=ADMIN, params={"account": keys["account"]})
    assert journal.status_code == 200
    entries = journal.json()["data"]
    assert {e["operation"] for e in entries} >= {"creditkey.find_order", "creditkey.begin_checkout"}
    assert keys["shared_secret"] not in journal.text
    assert caplog.records
    assert all(keys["shared_secret"] not in r.getMessage() for r in caplog.records)


def test_fault_rules_match_credit_key_operations_by_name(
    api: Api, php: PhpSdk, keys: dict[str, str]
) -> None:
    r = api.post(
        "/_sandbox/faults",
        headers=ADMIN,
        json={
            "account": keys["account"],
            "match": {"operation": "creditkey.begin_checkout"},
            "effect": {"type": "status", "status": 503},
            "times": 1,
        },
    )
    assert r.status_code == 201, r.text
    failed = php.post("begin_checkout", begin_args(remote_id="SO-9"))
    assert failed.status_code == 503
    assert failed.json()["error"] == "internal error"
    assert php.post("begin_checkout", begin_args(remote_id="SO-9")).status_code == 200


def test_an_outage_preset_takes_the_credit_key_api_down_too(
    api: Api, php: PhpSdk, keys: dict[str, str]
) -> None:
    r = api.post(
        "/_sandbox/faults/presets/total-outage", headers=ADMIN, json={"account": keys["account"]}
    )
    assert r.status_code == 201, r.text
    down = php.get("find_order", {"id": "abcdefg"})
    assert (down.status_code, down.headers["retry-after"]) == (503, "30")
    assert down.json()["code"] == "service_unavailable"


def test_a_pended_application_calls_order_complete_url_once_approved(clock: ManualClock) -> None:
    calls: list[httpx.Request] = []

    def merchant(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200)

    api = Api(build_app(clock=clock, webhook_transport=httpx.MockTransport(merchant)), clock)
    try:
        r = api.post("/_sandbox/accounts", headers=ADMIN, json={"name": "Shop", "seed": 3})
        account = Account(r.json()["id"], r.json()["api_key"], 3)
        php = PhpSdk(api, **r.json()["creditkey"])
        ck_id = begin(
            php,
            remote_id="SO-10",
            email="ap+review@acme.test",
            order_complete_url="http://127.0.0.1:9/ck/complete?id=%CKKEY%",
        )
        page = borrower_accepts(api, ck_id)
        assert page.status_code == 200
        assert "under review" in page.text
        assert php.get("find_order", {"id": ck_id}).json()["status"] == "placed"
        assert php.post("complete_checkout", {"id": ck_id}).json() == {"success": False}
        api.advance(account, "3h")  # the review resolves (approved) on the account clock
        api.loop.run_until_complete(api.app.runtime.creditkey.callbacks.drain())
        assert [(c.method, str(c.url)) for c in calls] == [
            ("GET", f"http://127.0.0.1:9/ck/complete?id={ck_id}")
        ]
        assert php.post("complete_checkout", {"id": ck_id}).json() == {"success": True}
        assert php.get("find_order", {"id": ck_id}).json()["status"] == "authorized"
    finally:
        api.close()
