"""Load on the reference integration's order-to-cash API, end to end, through the fault phases.

Each user is a shop: it places an order (`POST /orders`; 201 awaiting the buyer, or 202 held
when the provider did not answer in the budget), has the buyer accept through the simulator's
control plane, waits (bounded) for the webhook that moves the ERP order to `authorized`, ships
part of it, refunds part of that, and reads it back. The integration calls the simulator; the
simulator's webhooks flow back into the integration. Faults hit the simulator only: the shop
should keep getting 2xx (202 = held) through the outage and the storm.

At the end, after recovery: every hold resolved (`GET /status` `holds_open_total` 0, waited
for), and the scenario runner's money invariants over the ERP views and the provider's dump
(`no_order_lost`, `no_double_capture_or_refund`, `ledger_matches_provider`, `holds_resolved`).

    sandbank load run order-to-cash [--users 10 --spawn-rate 5 --time 60]
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import gevent
import httpx
from locust import between, task
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment

from loadtests import common, invariants
from loadtests.common import Check, Target, Thresholds

TARGET = Target.from_env()
SERIAL = itertools.count(1)
AUTHORIZED_POLLS = 6
POLL_S = 0.25
SETTLE_S = 45.0  # after recovery: holds resumed, events delivered and processed
INVARIANTS = ["no_order_lost", "no_double_capture_or_refund", "ledger_matches_provider",
              "holds_resolved"]  # fmt: skip


def _merge(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    return {**(old or {}), **new}


common.share("placed", _merge)  # merchant order id -> True


def shop_url() -> str:
    if not TARGET.shop_url:
        raise SystemExit("loadtests: set SANDBANK_LOAD_SHOP_URL (the reference integration)")
    return TARGET.shop_url.rstrip("/")


class Shop(FastHttpUser):
    host = shop_url()
    wait_time = between(0.0, 0.2)

    def on_start(self) -> None:
        self.admin = {"Authorization": f"Bearer {TARGET.admin_token}"}
        self.me = f"{TARGET.run}-{id(self):x}"

    def call(self, method: str, path: str, name: str, body: Any = None) -> tuple[int, Any]:
        """A shop request: 2xx (202 held included) is a success, anything else a failure."""
        with self.client.request(method, path, json=body, name=name, catch_response=True) as r:
            status = r.status_code or 0
            if 200 <= status < 300:
                r.success()
                return status, r.json()
            r.failure(f"{status or 'no answer'}: {(r.text or '')[:200]}")
            return status, None

    @task
    def order_to_cash(self) -> None:
        moid = f"LT-{self.me}-{next(SERIAL)}"
        common.record_fact("placed", {moid: True})
        status, view = self.call(
            "POST",
            "/orders",
            "/orders",
            {
                "merchant_order_id": moid,
                "amount": 60_000,
                "currency": "USD",
                "buyer": {"legal_name": "Load Shop Buyer", "email": "ap+approve@buyer.test"},
                "line_items": [{"name": "Crate", "quantity": 3, "unit_amount": 20_000}],
                "return_url": "https://shop.test/ok",
                "cancel_url": "https://shop.test/no",
            },
        )
        checkout = (view or {}).get("provider_checkout_id")
        if status != 201 or not checkout:
            return  # held (the resumer finishes it) or refused: nothing more for this order
        with self.client.post(
            f"{TARGET.sim_url}/_sandbox/checkouts/{checkout}/approve",
            json={"terms": "net30"},
            headers=self.admin,
            name="buyer approves (control plane)",
            catch_response=True,
        ) as r:
            if r.status_code != 200:
                r.failure(f"approve: {r.status_code}")
                return
        for _ in range(AUTHORIZED_POLLS):
            status, view = self.call("GET", f"/orders/{moid}", "/orders/{id}")
            if view and view["erp_state"] == "authorized":
                break
            gevent.sleep(POLL_S)
        else:
            return  # the webhook is late: the end checks see the order settle
        status, _ = self.call("POST", f"/orders/{moid}/ship", "/orders/{id}/ship",
                              {"amount": 30_000})  # fmt: skip
        if status == 200:
            self.call("POST", f"/orders/{moid}/refund", "/orders/{id}/refund",
                      {"amount": 10_000})  # fmt: skip
        self.call("GET", f"/orders/{moid}", "/orders/{id}")


def _status(shop: httpx.Client) -> dict[str, Any]:
    r = shop.get("/status")
    r.raise_for_status()
    return dict(r.json())


def end_checks(target: Target, environment: Environment) -> list[Check]:
    placed = sorted(common.FACTS.get("placed") or {})
    with httpx.Client(base_url=shop_url(), timeout=30.0) as shop:
        deadline = time.monotonic() + SETTLE_S
        status = _status(shop)
        while status.get("holds_open_total") and time.monotonic() < deadline:
            time.sleep(1.0)
            status = _status(shop)
        waited = SETTLE_S - max(0.0, deadline - time.monotonic())
        checks = [
            Check(
                "holds_resolved (GET /status)",
                status.get("holds_open_total") == 0,
                f"holds_open_total 0 within {SETTLE_S:g} s of recovery",
                f"{status.get('holds_open_total')} after {waited:.1f} s"
                f" (by kind: {status.get('holds_open')})",
            )
        ]

        def views() -> dict[str, dict[str, Any] | None]:
            out: dict[str, dict[str, Any] | None] = {}
            for moid in placed:
                r = shop.get(f"/orders/{moid}")
                out[moid] = r.json() if r.status_code == 200 else None
            return out

        def holds_open() -> float | None:
            return float(_status(shop).get("holds_open_total") or 0)

        left = max(5.0, deadline - time.monotonic())
        return checks + invariants.money_checks(
            target, views, INVARIANTS, shop_orders=placed, holds_open=holds_open, settle_s=left
        )


class Phases(common.FaultPhases):
    end_checks = staticmethod(end_checks)
    # The shop's answers: 2xx (202 held) through every phase is the integration's promise.
    thresholds = Thresholds(
        error_rate={"steady": 0.01, "outage": 0.05, "storm": 0.05, "recovery": 0.05},
        p95_ms={"*": 2000},
        p99_ms={"*": 4000},
        latency_phases=("steady", "outage", "storm", "recovery"),
    ).with_overrides()
