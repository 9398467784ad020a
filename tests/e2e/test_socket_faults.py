"""End to end: socket-level faults seen by a real HTTP client (httpx) over real TCP.

One `sandbank serve` process for the module, started with `--faults FILE` (so loading rules
from a file is proven too). Every test makes its own account and scopes its rules to it, so
the tests stay independent of each other and of the order they run in.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count
from typing import Any

import httpx
import pytest
from e2e_servers import Server

from rehearsal.processes import free_port

pytestmark = pytest.mark.slow

ADMIN = "sbadm_e2e_socket_faults"
# The one rule of the --faults file: for every account, only requests that opt in by header.
FILE_RULE_HEADER = ("X-Test-Fault", "teapot")
FILE_RULES = {
    "rules": [
        {
            "name": "from-file",
            "match": {"header": {FILE_RULE_HEADER[0]: FILE_RULE_HEADER[1]}},
            "effect": {"type": "status", "status": 502, "detail": "file rule fired"},
        }
    ]
}
DEAD_CONNECTION = (httpx.ReadError, httpx.RemoteProtocolError)
_names = count(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("socket-faults")
    faults_file = tmp / "faults.json"
    faults_file.write_text(json.dumps(FILE_RULES))
    srv = Server(
        tmp / "data",
        free_port(),
        tmp / "server.log",
        ["--admin-token", ADMIN, "--faults", str(faults_file)],
    )
    try:
        srv.wait_healthy()
        assert re.search(r"faults:\s+1 rules from ", srv.output()), srv.output()
        srv.demo_key = srv.banner().demo_key
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def admin(server: Server) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10.0) as client:
        yield client


@dataclass
class Account:
    id: str
    key: str
    base: str

    def client(self, **kw: Any) -> httpx.Client:
        kw.setdefault("timeout", 10.0)
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.Client(base_url=self.base, headers=headers, **kw)


@pytest.fixture
def account(server: Server, admin: httpx.Client) -> Account:
    return _new_account(server, admin, allow_fault_header=True)


def _new_account(server: Server, admin: httpx.Client, *, allow_fault_header: bool) -> Account:
    r = admin.post(
        "/_sandbox/accounts",
        json={
            "name": f"e2e-socket-{next(_names)}",
            "seed": 7,
            "settings": {"allow_fault_header": allow_fault_header},
        },
    )
    assert r.status_code == 201, r.text
    return Account(r.json()["id"], r.json()["api_key"], server.url)


def _rule(admin: httpx.Client, account: Account, **rule: Any) -> dict[str, Any]:
    r = admin.post("/_sandbox/faults", json={"account": account.id, **rule})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _order(admin: httpx.Client, api: httpx.Client, amount: int = 120_000) -> str:
    """An authorized order for `amount` (checkout, then the buyer approves net30)."""
    n = next(_names)
    r = api.post(
        "/v1/checkouts",
        json={
            "amount": amount,
            "currency": "USD",
            "merchant_order_id": f"SO-SOCK-{n}",
            "buyer": {
                "legal_name": "Socket Supply Co",
                "email": "ap+approve@socket.test",
                "annual_revenue": 250_000_000,
                "years_in_business": 8,
            },
            "line_items": [{"name": "Widget", "quantity": 2, "unit_amount": amount // 2}],
            "return_url": "https://shop.test/ok",
            "cancel_url": "https://shop.test/no",
        },
    )
    assert r.status_code == 201, r.text
    r = admin.post(f"/_sandbox/checkouts/{r.json()['id']}/approve", json={"terms": "net30"})
    assert r.status_code == 200, r.text
    return str(r.json()["order_id"])


def _journal(admin: httpx.Client, account: Account, **filters: Any) -> list[dict[str, Any]]:
    r = admin.get("/_sandbox/requests", params={"account": account.id, **filters})
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def _read_raw(resp: httpx.Response, into: bytearray) -> None:
    """Read the raw body into `into` piece by piece, so a body cut short by an error still
    shows what arrived before it."""
    for chunk in resp.iter_raw():
        into.extend(chunk)


# --- reset, empty, truncate, hang -------------------------------------------------------------


def test_reset_aborts_the_connection_and_the_next_connection_works(
    admin: httpx.Client, account: Account
) -> None:
    rule = _rule(
        admin, account, match={"operation": "listOrders"}, effect={"type": "reset"}, times=1
    )
    with account.client() as api:
        with pytest.raises(DEAD_CONNECTION):
            api.get("/v1/orders")
        r = api.get("/v1/orders")  # the pool dropped the dead connection: a new one
        assert r.status_code == 200, r.text
        assert r.json()["data"] == []
    first, *_ = reversed(_journal(admin, account, operation="listOrders"))
    assert first["status"] is None
    assert first["fault"]["rule"] == rule["id"]
    assert first["fault"]["effect"] == "reset"


def test_empty_closes_without_a_byte(admin: httpx.Client, account: Account) -> None:
    _rule(admin, account, match={"operation": "listOrders"}, effect={"type": "empty"}, times=1)
    with account.client() as api:
        with pytest.raises(httpx.RemoteProtocolError):
            api.get("/v1/orders")
        assert api.get("/v1/orders").status_code == 200


def test_truncate_after_capture_cuts_the_body_but_the_capture_is_committed(
    admin: httpx.Client, account: Account
) -> None:
    with account.client() as api:
        order = _order(admin, api)
        _rule(
            admin,
            account,
            match={"operation": "createCapture"},
            phase="after",
            effect={"type": "truncate", "fraction": 0.5},
            times=1,
        )
        with pytest.raises(httpx.RemoteProtocolError):
            api.post(
                f"/v1/orders/{order}/captures",
                json={"amount": 30_000},
                headers={"Idempotency-Key": "trunc-1"},
            )
        r = api.get(f"/v1/orders/{order}")
        assert r.status_code == 200, r.text
        assert r.json()["captured_amount"] == 30_000
        assert r.json()["status"] == "partially_captured"


def test_truncate_delivers_headers_and_part_of_the_body(
    admin: httpx.Client, account: Account
) -> None:
    _rule(
        admin,
        account,
        match={"operation": "listOrders"},
        phase="after",
        effect={"type": "truncate", "fraction": 0.5},
        times=1,
    )
    got = bytearray()
    with account.client() as api:
        with api.stream("GET", "/v1/orders") as resp:
            assert resp.status_code == 200
            declared = int(resp.headers["content-length"])
            with pytest.raises(httpx.RemoteProtocolError):
                _read_raw(resp, got)
        whole = api.get("/v1/orders").content
    assert declared == len(whole)
    assert 0 < len(got) < declared
    assert whole.startswith(bytes(got))


def test_hang_times_the_client_out_while_the_server_keeps_answering_others(
    admin: httpx.Client, account: Account, server: Server
) -> None:
    rule = _rule(
        admin,
        account,
        match={"operation": "listOrders"},
        effect={"type": "hang", "max_ms": 5000},
        times=2,
    )
    # 1. a client with a 0.5 s read timeout gives up
    with (
        account.client(timeout=httpx.Timeout(5.0, read=0.5)) as api,
        pytest.raises(httpx.ReadTimeout),
    ):
        api.get("/v1/orders")

    # 2. while a second request hangs (on a raw socket), other requests are answered
    hung = socket.create_connection(("127.0.0.1", server.port), timeout=5.0)
    try:
        hung.sendall(
            b"GET /v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {account.key}\r\n\r\n".encode()
        )
        deadline = time.monotonic() + 5.0
        while admin.get(f"/_sandbox/faults/{rule['id']}").json()["fired"] < 2:
            assert time.monotonic() < deadline, "the hang rule never fired a second time"
            time.sleep(0.02)
        with account.client() as other:
            r = other.get("/v1/orders/ord_does_not_exist")
            assert r.status_code == 404, r.text
            r = other.get("/v1/orders")  # the rule is spent: answered
            assert r.status_code == 200, r.text
        hung.settimeout(0.2)
        with pytest.raises(TimeoutError):
            hung.recv(1)  # and the hung request still has not had a byte
    finally:
        hung.close()


def test_hang_closes_the_connection_after_max_ms(admin: httpx.Client, account: Account) -> None:
    _rule(
        admin,
        account,
        match={"operation": "listOrders"},
        effect={"type": "hang", "max_ms": 300},
        times=1,
    )
    with account.client(timeout=10.0) as api:
        with pytest.raises(httpx.RemoteProtocolError):
            api.get("/v1/orders")  # a patient client: the server gives up first, without a byte
        assert api.get("/v1/orders").status_code == 200
    hung, answered = sorted(
        _journal(admin, account, operation="listOrders"), key=lambda e: e["seq"]
    )
    assert hung["status"] is None
    assert hung["fault"]["effect"] == "hang"
    assert answered["status"] == 200


# --- dribble, malformed, content type, status -------------------------------------------------


def test_dribble_sends_the_full_body_in_several_pieces(
    admin: httpx.Client, account: Account
) -> None:
    _rule(
        admin,
        account,
        match={"operation": "listOrders"},
        phase="after",
        effect={"type": "dribble", "ms": 600, "chunks": 6},
        times=1,
    )
    chunks: list[bytes] = []
    with account.client() as api:
        with api.stream("GET", "/v1/orders") as resp:
            assert resp.status_code == 200
            chunks.extend(c for c in resp.iter_raw() if c)
        body = b"".join(chunks)
        assert int(resp.headers["content-length"]) == len(body)
        assert json.loads(body) == api.get("/v1/orders").json()
    assert len(chunks) >= 2, chunks


def test_malformed_is_a_200_whose_json_does_not_parse(
    admin: httpx.Client, account: Account
) -> None:
    _rule(admin, account, match={"operation": "listOrders"}, effect={"type": "malformed"}, times=1)
    with account.client() as api:
        r = api.get("/v1/orders")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        r.json()


def test_content_type_keeps_the_real_body_under_text_html(
    admin: httpx.Client, account: Account
) -> None:
    _rule(
        admin,
        account,
        match={"operation": "listOrders"},
        phase="after",
        effect={"type": "content_type"},
        times=1,
    )
    with account.client() as api:
        r = api.get("/v1/orders")
        real = api.get("/v1/orders")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert real.headers["content-type"].startswith("application/json")
    assert json.loads(r.content) == real.json()


def test_status_503_carries_retry_after_and_a_problem_body(
    admin: httpx.Client, account: Account
) -> None:
    rule = _rule(
        admin,
        account,
        match={"operation": "listOrders"},
        effect={"type": "status", "status": 503, "retry_after_s": 2},
        times=1,
    )
    with account.client() as api:
        r = api.get("/v1/orders")
        assert api.get("/v1/orders").status_code == 200  # times: 1
    assert r.status_code == 503
    assert r.headers["retry-after"] == "2"
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["sandbank-fault"] == rule["id"]
    problem = r.json()
    assert problem["status"] == 503
    assert problem["code"] == "service_unavailable"
    assert problem["request_id"]
    assert problem["request_id"] == r.headers["request-id"]


# --- presets, the file, the header ------------------------------------------------------------


def test_lost_response_after_capture_is_learned_by_an_idempotent_retry(
    admin: httpx.Client, account: Account
) -> None:
    with account.client() as api:
        order = _order(admin, api)
        r = admin.post(
            "/_sandbox/faults/presets/lost-response-after-capture", json={"account": account.id}
        )
        assert r.status_code == 201, r.text
        path, body = f"/v1/orders/{order}/captures", {"amount": 50_000}
        headers = {"Idempotency-Key": "lost-cap-1"}
        with pytest.raises(DEAD_CONNECTION):
            api.post(path, json=body, headers=headers)
        retry = api.post(path, json=body, headers=headers)
        assert retry.status_code == 201, retry.text
        assert retry.headers["idempotent-replayed"] == "true"
        assert retry.json()["order"]["captured_amount"] == 50_000
        r = api.get(f"/v1/orders/{order}")
        assert r.status_code == 200, r.text
        assert r.json()["captured_amount"] == 50_000  # one capture, not two
    attempts = sorted(_journal(admin, account, operation="createCapture"), key=lambda e: e["seq"])
    assert [e["attempt"] for e in attempts] == [1, 2]
    first, second = attempts
    assert first["idempotency_key"] == second["idempotency_key"] == "lost-cap-1"
    assert first["status"] is None
    assert first["fault"]["effect"] == "reset"
    assert first["fault"]["phase"] == "after"
    assert first["fault"]["preset"] == "lost-response-after-capture"
    assert first["replayed"] is False
    assert second["status"] == 201
    assert second["replayed"] is True
    assert second["fault"] is None
    r = admin.post(
        "/_sandbox/requests/count",
        json={"account": account.id, "operation": "createCapture", "replayed": True},
    )
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 1


def test_rule_from_the_faults_file_fires_for_requests_that_opt_in(
    admin: httpx.Client, account: Account
) -> None:
    name, value = FILE_RULE_HEADER
    with account.client() as api:
        r = api.get("/v1/orders", headers={name: value})
        plain = api.get("/v1/orders")
        other = api.get("/v1/orders", headers={name: "coffee"})
    assert r.status_code == 502, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"] == "file rule fired"
    assert plain.status_code == 200
    assert other.status_code == 200
    rules = admin.get("/_sandbox/faults").json()["data"]
    from_file = [x for x in rules if x.get("name") == "from-file"]
    assert len(from_file) == 1, rules
    assert from_file[0]["account"] is None
    assert r.headers["sandbank-fault"] == from_file[0]["id"]


def test_fault_header_inline_rule_resets_the_connection(
    server: Server, admin: httpx.Client, account: Account
) -> None:
    inline = json.dumps({"effect": {"type": "reset"}})
    with account.client() as api:
        with pytest.raises(DEAD_CONNECTION):
            api.get("/v1/orders", headers={"Sandbank-Fault": inline})
        assert api.get("/v1/orders").status_code == 200  # a one-off: the next one is fine
    # the demo account accepts the header too
    demo = Account("demo", server.demo_key, server.url)
    with demo.client() as api:
        with pytest.raises(DEAD_CONNECTION):
            api.get("/v1/orders", headers={"Sandbank-Fault": inline})
        assert api.get("/v1/orders").status_code == 200


def test_fault_header_is_refused_for_an_account_that_does_not_allow_it(
    server: Server, admin: httpx.Client
) -> None:
    closed = _new_account(server, admin, allow_fault_header=False)
    inline = json.dumps({"effect": {"type": "reset"}})
    with closed.client() as api:
        r = api.get("/v1/orders", headers={"Sandbank-Fault": inline})
        assert api.get("/v1/orders").status_code == 200
    assert r.status_code == 403, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["status"] == 403
    assert "allow_fault_header" in problem["detail"]


def test_a_client_that_gives_up_during_injected_latency_leaves_its_request_whole(
    admin: httpx.Client, account: Account
) -> None:
    """Found by the integration-crash rehearsal: the client left during a latency fault, the
    server then read its body as empty and captured the whole order; the same-key retry got
    422. The body is read before the wait, so the capture is the one sent and a retry replays."""
    with account.client() as api:
        oid = _order(admin, api, 100_000)
        _rule(
            admin,
            account,
            match={"operation": "createCapture"},
            effect={"type": "latency", "ms": 800},
        )
        with pytest.raises(httpx.TimeoutException):
            api.post(
                f"/v1/orders/{oid}/captures",
                json={"amount": 40_000},
                headers={"Idempotency-Key": "gone-1"},
                timeout=0.2,
            )
        deadline = time.monotonic() + 10
        while api.get(f"/v1/orders/{oid}").json()["captured_amount"] == 0:
            assert time.monotonic() < deadline, "the capture never committed"
            time.sleep(0.1)
        assert api.get(f"/v1/orders/{oid}").json()["captured_amount"] == 40_000
        again = api.post(
            f"/v1/orders/{oid}/captures",
            json={"amount": 40_000},
            headers={"Idempotency-Key": "gone-1"},
        )
        assert again.status_code == 201, again.text
        assert again.headers.get("idempotent-replayed") == "true"
        assert api.get(f"/v1/orders/{oid}").json()["captured_amount"] == 40_000
