"""End to end: a real `sandbank serve` process over real TCP, killed with SIGKILL and restarted on
the same data directory. Everything the server acknowledged must still be there, unchanged;
idempotent retries must replay; the API key, the admin token and the demo key must survive.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import e2e_servers
import httpx
import pytest

from rehearsal.processes import free_port

pytestmark = pytest.mark.slow

ADMIN = "sbadm_e2e_fixed_token"
BUYER = {
    "legal_name": "Durable Widgets LLC",
    "email": "ap+approve@durable.test",
    "annual_revenue": 500_000_000,
    "years_in_business": 7,
    "external_id": "ext-durable-1",
}


def _client(base: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10.0)


def _checkout(buyer_id: str, n: int) -> dict[str, Any]:
    return {
        "amount": 100_000 + n * 1_000,
        "merchant_order_id": f"SO-E2E-{n}",
        "buyer_id": buyer_id,
        "line_items": [{"name": f"Widget {n}", "quantity": 2, "unit_amount": 50_000 + n * 500}],
        "return_url": "https://shop.test/ok",
        "cancel_url": "https://shop.test/no",
        "metadata": {"run": "e2e", "n": str(n)},
    }


@dataclass
class Posted:
    """An acknowledged idempotent POST: what was sent and exactly what came back."""

    path: str
    key: str
    body: dict[str, Any]
    status: int
    content: bytes


def test_acknowledged_writes_survive_sigkill_and_restart(
    start_server: e2e_servers.StartServer, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    first = start_server(data_dir, port, "--admin-token", ADMIN)
    banner = first.banner()
    assert banner.url == f"http://127.0.0.1:{port}"
    assert banner.admin_token == ADMIN
    assert banner.demo_key.startswith("sk_test_")

    posted: list[Posted] = []
    with _client(first.url, ADMIN) as admin:
        r = admin.post("/_sandbox/accounts", json={"name": "e2e-durability"})
        assert r.status_code == 201, r.text
        account_id, api_key = r.json()["id"], r.json()["api_key"]

        with _client(first.url, api_key) as api:

            def post(path: str, key: str, body: dict[str, Any], status: int) -> dict[str, Any]:
                resp = api.post(path, json=body, headers={"Idempotency-Key": key})
                assert resp.status_code == status, resp.text
                assert "idempotent-replayed" not in resp.headers
                posted.append(Posted(path, key, body, resp.status_code, resp.content))
                return dict(resp.json())

            buyer = post("/v1/buyers", "e2e-buyer", BUYER, 201)
            checkouts = [
                post("/v1/checkouts", f"e2e-checkout-{n}", _checkout(buyer["id"], n), 201)
                for n in range(5)
            ]
            assert {c["status"] for c in checkouts} == {"open"}
            assert len({c["id"] for c in checkouts}) == 5

            # the buyer accepts four of them (net30); the fifth stays open
            orders: list[str] = []
            for c in checkouts[:4]:
                r = admin.post(f"/_sandbox/checkouts/{c['id']}/approve", json={"terms": "net30"})
                assert r.status_code == 200, r.text
                assert r.json()["status"] == "completed"
                orders.append(r.json()["order_id"])

            # order 0: capture part, refund part of that; order 1: capture all; order 2: cancel
            cap = post(f"/v1/orders/{orders[0]}/captures", "e2e-cap-0", {"amount": 40_000}, 201)
            assert cap["order"]["status"] == "partially_captured"
            ref = post(f"/v1/orders/{orders[0]}/refunds", "e2e-ref-0", {"amount": 15_000}, 201)
            assert ref["order"]["status"] == "partially_refunded"
            assert ref["order"]["captured_amount"] == 40_000
            assert ref["order"]["refunded_amount"] == 15_000
            full = post(f"/v1/orders/{orders[1]}/captures", "e2e-cap-1", {}, 201)
            assert full["order"]["status"] == "captured"
            canceled = post(f"/v1/orders/{orders[2]}/cancel", "e2e-cancel-2", {}, 200)
            assert canceled["status"] == "canceled"

            # what the server acknowledged, read back just before the crash
            urls = [
                f"/v1/buyers/{buyer['id']}",
                *(f"/v1/checkouts/{c['id']}" for c in checkouts),
                *(f"/v1/orders/{o}" for o in orders),
            ]
            before = {}
            for url in urls:
                r = api.get(url)
                assert r.status_code == 200, r.text
                before[url] = r.json()
            # and one more acknowledged write immediately before the kill
            last = post("/v1/checkouts", "e2e-checkout-last", _checkout(buyer["id"], 99), 201)

    first.kill()  # SIGKILL right after the last acknowledgement: no graceful shutdown

    second = start_server(data_dir, port, "--admin-token", ADMIN)
    again = second.banner()
    assert again == banner  # same URL, same admin token, same demo key (kept in the data dir)

    with _client(second.url, ADMIN) as admin, _client(second.url, api_key) as api:
        # the admin token and the account's API key still work
        r = admin.get(f"/_sandbox/accounts/{account_id}")
        assert r.status_code == 200, r.text
        assert r.json()["api_key"] == api_key
        with _client(second.url, banner.demo_key) as demo:
            assert demo.get("/v1/orders").status_code == 200

        # every acknowledged object is there with the same state
        for url, state in before.items():
            r = api.get(url)
            assert r.status_code == 200, f"{url}: {r.text}"
            assert r.json() == state, url
        r = api.get(f"/v1/checkouts/{last['id']}")
        assert r.status_code == 200, r.text
        assert r.json() == last
        assert before[f"/v1/orders/{orders[0]}"] == ref["order"]
        assert before[f"/v1/orders/{orders[1]}"] == full["order"]
        assert before[f"/v1/orders/{orders[2]}"] == canceled
        assert before[f"/v1/orders/{orders[3]}"]["status"] == "authorized"
        assert before[f"/v1/checkouts/{checkouts[4]['id']}"]["status"] == "open"

        # idempotent retries after the restart replay the very same response
        for p in posted:
            r = api.post(p.path, json=p.body, headers={"Idempotency-Key": p.key})
            assert r.status_code == p.status, f"{p.path}: {r.text}"
            assert r.headers.get("idempotent-replayed") == "true", p.path
            assert r.content == p.content, p.path
        # ... and a reused key with a different body is still refused
        r = api.post(
            "/v1/checkouts",
            json=_checkout(buyer["id"], 7),
            headers={"Idempotency-Key": "e2e-checkout-0"},
        )
        assert r.status_code == 422, r.text

        # the restarted server keeps working: a new checkout gets a new id
        r = api.post("/v1/checkouts", json=_checkout(buyer["id"], 100))
        assert r.status_code == 201, r.text
        known = {c["id"] for c in checkouts} | {last["id"]}
        assert r.json()["id"] not in known


def test_generated_admin_token_and_demo_key_are_kept_in_the_data_dir(
    start_server: e2e_servers.StartServer, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    first = start_server(data_dir, port)
    banner = first.banner()
    assert banner.admin_token.startswith("sbadm_")
    assert (data_dir / "admin_token").read_text().strip() == banner.admin_token
    first.kill()

    second = start_server(data_dir, port)
    assert second.banner() == banner
    with _client(second.url, banner.admin_token) as admin:
        assert admin.get("/_sandbox/accounts").status_code == 200
    with _client(second.url, "sbadm_wrong") as wrong:
        assert wrong.get("/_sandbox/accounts").status_code == 401
    with _client(second.url, banner.demo_key) as demo:
        assert demo.get("/v1/orders").status_code == 200
