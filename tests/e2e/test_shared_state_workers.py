"""`sandbank serve --workers 4` behaves like one worker (issue #16): a `times: 30` rule fires
exactly 30 times however the requests spread over the workers, the journal lists every
request whichever worker answered it, and a restart keeps the rules, their fired counts and
the journal."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from e2e_servers import StartServer

from rehearsal.processes import free_port

pytestmark = pytest.mark.slow
REQUESTS = 48
TIMES = 30
JOURNAL_WAIT_S = 5.0  # a read's entry may trail its response while another process writes


def _count(url: str, token: str, body: dict[str, object]) -> int:
    with httpx.Client(base_url=url, timeout=10) as c:
        r = c.post(
            "/_sandbox/requests/count", json=body, headers={"Authorization": f"Bearer {token}"}
        )
    assert r.status_code == 200, r.text
    return int(r.json()["count"])


def _settled_count(url: str, token: str, body: dict[str, object], expected: int) -> int:
    """The journal count once it reaches `expected`, or whatever it is after the wait."""
    deadline = time.monotonic() + JOURNAL_WAIT_S
    n = _count(url, token, body)
    while n < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        n = _count(url, token, body)
    return n


def test_a_times_rule_fires_exactly_that_often_across_four_workers_and_survives_restart(
    start_server: StartServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    server = start_server(data, free_port(), "--workers", "4")
    banner = server.banner()
    admin = {"Authorization": f"Bearer {banner.admin_token}"}
    key = {"Authorization": f"Bearer {banner.demo_key}"}
    with httpx.Client(base_url=server.url, timeout=10) as c:
        created = c.post(
            "/_sandbox/faults",
            headers=admin,
            json={
                "match": {"operation": "listBuyers"},
                "effect": {"type": "status", "status": 503},
                "times": TIMES,
            },
        )
    assert created.status_code == 201, created.text
    rule_id = created.json()["id"]

    workers: set[str] = set()  # each worker numbers its Request-Ids under a prefix of its own
    statuses: list[int] = []
    for _ in range(REQUESTS):
        # A new connection each time: the kernel spreads them over the workers.
        with httpx.Client(base_url=server.url, timeout=10) as c:
            r = c.get("/v1/buyers", headers=key)
        statuses.append(r.status_code)
        workers.add(r.headers["request-id"][:12])
    assert len(workers) >= 2, "every request went to one worker"
    assert statuses.count(503) == TIMES
    assert statuses.count(200) == REQUESTS - TIMES

    every = {"operation": "listBuyers"}
    assert _settled_count(server.url, banner.admin_token, every, REQUESTS) == REQUESTS
    assert _count(server.url, banner.admin_token, {**every, "fault_rule": rule_id}) == TIMES
    with httpx.Client(base_url=server.url, timeout=10) as c:
        assert c.get(f"/_sandbox/faults/{rule_id}", headers=admin).json()["fired"] == TIMES

    server.kill()
    again = start_server(data, free_port(), "--workers", "2")
    with httpx.Client(base_url=again.url, timeout=10) as c:
        kept = c.get("/_sandbox/faults", headers=admin).json()["data"]
        assert [(r["id"], r["fired"], r["times"]) for r in kept] == [(rule_id, TIMES, TIMES)]
        assert c.get("/v1/buyers", headers=key).status_code == 200  # still retired
    assert _settled_count(again.url, banner.admin_token, every, REQUESTS + 1) == REQUESTS + 1


def test_a_get_on_any_worker_shows_every_write_answered_before_it(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Each worker reuses the answers of its reads (`simulator/api/reads.py`) while nothing
    changed: a write another worker answered must show in the next GET, whichever worker
    answers it, and in the GET after that (which may be reused)."""
    server = start_server(tmp_path / "data", free_port(), "--workers", "2")
    banner = server.banner()
    admin = {"Authorization": f"Bearer {banner.admin_token}"}
    key = {"Authorization": f"Bearer {banner.demo_key}"}
    buyer = {
        "legal_name": "Acme Supply Co",
        "email": "ap+approve@acme.test",
        "annual_revenue": 250_000_000,
        "years_in_business": 8,
    }
    with httpx.Client(base_url=server.url, timeout=10) as c:
        body = {
            "amount": 125_000,
            "buyer": buyer,
            "return_url": "https://shop.test/return",
            "cancel_url": "https://shop.test/cancel",
        }
        r = c.post("/v1/checkouts", headers=key, json=body)
        assert r.status_code == 201, r.text
        r = c.post(
            f"/_sandbox/checkouts/{r.json()['id']}/approve", headers=admin, json={"terms": "net30"}
        )
        assert r.status_code == 200, r.text
    order = f"/v1/orders/{r.json()['order_id']}"
    workers: set[str] = set()
    for n in range(40):
        # A new connection each time: the kernel spreads them over the workers.
        with httpx.Client(base_url=server.url, timeout=10) as c:
            r = c.patch(order, headers=key, json={"metadata": {"n": str(n)}})
        assert r.status_code == 200, r.text
        for _ in range(2):
            with httpx.Client(base_url=server.url, timeout=10) as c:
                got = c.get(order, headers=key)
            assert got.status_code == 200, got.text
            assert got.json()["metadata"] == {"n": str(n)}
            workers.add(got.headers["request-id"][:12])
    assert len(workers) >= 2, "every GET went to one worker"
