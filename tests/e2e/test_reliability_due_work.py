"""End to end, issue #17: due work runs by itself. An account whose clock runs in real time
and passes midnight gets its `settlement.created` webhook with no request at all (the
scheduler ran the batch); an account whose clock is frozen just before midnight gets nothing
(its owner moves it)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from e2e_servers import Server, StartServer
from processes import wait_for
from reliability_kit import Sink

from rehearsal.processes import free_port

pytestmark = pytest.mark.slow

ADMIN = "sbadm_e2e_due_work"
TO_MIDNIGHT = timedelta(seconds=6)  # real seconds between the capture and the account's midnight


def _captured_order_before_midnight(server: Server, sink: Sink, *, frozen: bool) -> str:
    """A new account, its clock moved to TO_MIDNIGHT before a midnight (and frozen there if
    asked), an endpoint to `sink`, and one captured order; returns the account id."""
    admin = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10
    )
    with admin:
        r = admin.post("/_sandbox/accounts", json={"name": "idle"})
        assert r.status_code == 201, r.text
        account, key = r.json()["id"], r.json()["api_key"]
        clock = f"/_sandbox/accounts/{account}/clock"
        now = datetime.fromisoformat(admin.get(clock).json()["now"])
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), now.tzinfo)
        # the end of a business day (weekend lines join Monday's batch), a minute away or more
        while midnight - now < timedelta(minutes=1) or midnight.weekday() in (0, 6):
            midnight += timedelta(days=1)
        r = admin.post(f"{clock}/advance", json={"to": (midnight - TO_MIDNIGHT).isoformat()})
        assert r.status_code == 200, r.text
        if frozen:
            assert admin.post(f"{clock}/freeze").status_code == 200
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10
        ) as api:
            r = api.post(
                "/v1/webhook_endpoints",
                json={"url": f"{sink.url}/{account}", "enabled_events": ["settlement.created"]},
            )
            assert r.status_code == 201, r.text
            buyer = {
                "legal_name": "Midnight Widgets LLC",
                "email": "ap+approve@midnight.test",
                "annual_revenue": 500_000_000,
                "years_in_business": 7,
            }
            r = api.post("/v1/buyers", json=buyer)
            assert r.status_code == 201, r.text
            checkout = {
                "amount": 120_000,
                "buyer_id": r.json()["id"],
                "line_items": [{"name": "Widget", "quantity": 1, "unit_amount": 120_000}],
                "return_url": "https://shop.test/ok",
                "cancel_url": "https://shop.test/no",
            }
            r = api.post("/v1/checkouts", json=checkout)
            assert r.status_code == 201, r.text
            r = admin.post(f"/_sandbox/checkouts/{r.json()['id']}/approve", json={"terms": "net30"})
            assert r.status_code == 200, r.text
            r = api.post(f"/v1/orders/{r.json()['order_id']}/captures", json={})
            assert r.status_code == 201, r.text
    return str(account)


def test_an_idle_account_whose_clock_passes_midnight_gets_its_settlement_webhook(
    start_server: StartServer, tmp_path: Path, sink: Sink
) -> None:
    server = start_server(tmp_path / "data", free_port(), "--admin-token", ADMIN, "--no-demo")
    frozen = _captured_order_before_midnight(server, sink, frozen=True)
    running = _captured_order_before_midnight(server, sink, frozen=False)
    assert sink.count("settlement.created") == 0  # nothing before midnight

    # no request to either account from here on: only the scheduler can run the batch
    assert wait_for(lambda: sink.count("settlement.created") == 1, 30), sink.types
    with sink.lock:
        assert sink.paths == [f"/hooks/{running}"], (frozen, running, sink.paths)
