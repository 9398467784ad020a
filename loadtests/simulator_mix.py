"""Load on the simulator's `/v1` alone: a merchant's realistic mix, through the fault phases.

Each user runs order lifecycles: pre-qualify, create a checkout (inline buyer), approve it
through the control plane (acting as the buyer), read the order, capture part of it twice,
refund part, and poll the events. Every write carries an Idempotency-Key and is retried with
the same key (bounded); a write whose outcome is still unknown stays pending and is sent again,
same key, at the start of the user's next lifecycle, so after recovery the merchant's books are
exact. Those books (per order: amount, captured, refunded, as acknowledged) are then compared
with the provider's account dump through the scenario runner's own money invariant
(`rehearsal.invariants`, `no_double_capture_or_refund`), via `loadtests.invariants`.

    sandbank load run simulator [--users 20 --spawn-rate 10 --time 60]
"""

from __future__ import annotations

import itertools
from typing import Any

import gevent
from locust import between, task
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment

from loadtests import common, invariants
from loadtests.common import Check, Target, Thresholds

TARGET = Target.from_env()
ATTEMPTS = 3
BACKOFF_S = 0.2
SERIAL = itertools.count(1)


def _merge(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    return {**(old or {}), **new}


common.share("books", _merge)  # order id -> {"amount", "captured", "refunded"}
common.share("pending", _merge)  # idempotency key -> still unknown (True) or settled (False)


class Merchant(FastHttpUser):
    host = TARGET.sim_url
    wait_time = between(0.0, 0.1)

    def on_start(self) -> None:
        self.auth = {"Authorization": f"Bearer {TARGET.api_key}"}
        self.admin = {"Authorization": f"Bearer {TARGET.admin_token}"}
        self.me = f"{TARGET.run}-{id(self):x}"
        self.pending: dict[str, tuple[str, dict[str, Any], str, str, int]] = {}
        self.books: dict[str, dict[str, int]] = {}

    # --- one write, retried with its key; its money booked once acknowledged -----------------
    def write(self, name: str, path: str, body: dict[str, Any], key: str) -> dict[str, Any] | None:
        """POST with `key`, up to ATTEMPTS times on 5xx/429/transport errors. The response
        body on 2xx; None when refused (4xx) or still unknown."""
        for attempt in range(ATTEMPTS):
            with self.client.post(
                path,
                json=body,
                headers={**self.auth, "Idempotency-Key": key},
                name=name,
                catch_response=True,
            ) as r:
                status = r.status_code or 0
                if 200 <= status < 300:
                    r.success()
                    return dict(r.json())
                if 400 <= status < 500 and status != 429:
                    r.failure(f"{status}: {r.text[:200]}")
                    return {"refused": status}
                r.failure(f"{status or 'no answer'}")
            gevent.sleep(BACKOFF_S * (attempt + 1))
        return None

    def money(self, kind: str, order_id: str, amount: int) -> None:
        """A capture or refund: booked when acknowledged, pending while unknown."""
        key = f"lt-{self.me}-{next(SERIAL)}"
        path = f"/v1/orders/{order_id}/{'captures' if kind == 'captured' else 'refunds'}"
        self.pending[key] = (path, {"amount": amount}, order_id, kind, amount)
        self.settle(key)

    def settle(self, key: str) -> None:
        path, body, order_id, kind, amount = self.pending[key]
        name = f"/v1/orders/[id]/{path.rsplit('/', 1)[1]}"
        result = self.write(name, path, body, key)
        if result is None:
            common.record_fact("pending", {key: True})
            return
        del self.pending[key]
        common.record_fact("pending", {key: False})
        if "refused" not in result:
            self.books[order_id][kind] += amount
            common.record_fact("books", {order_id: dict(self.books[order_id])})

    # --- the lifecycle -------------------------------------------------------------------------
    @task
    def lifecycle(self) -> None:
        for key in list(self.pending):
            self.settle(key)
        n = next(SERIAL)
        business = {
            "legal_name": f"Load Co {n}",
            "email": f"ap+approve@load{n}.test",
            "annual_revenue": 500_000_000,
            "years_in_business": 7,
        }
        self.write(
            "/v1/prequalifications", "/v1/prequalifications", {"business": business},
            f"lt-{self.me}-pq-{n}",
        )  # fmt: skip
        checkout = self.write(
            "/v1/checkouts",
            "/v1/checkouts",
            {
                "amount": 80_000,
                "currency": "USD",
                "merchant_order_id": f"LT-{self.me}-{n}",
                "buyer": business,
                "line_items": [{"name": "Crate", "quantity": 4, "unit_amount": 20_000}],
                "return_url": "https://shop.test/ok",
                "cancel_url": "https://shop.test/no",
            },
            f"lt-{self.me}-chk-{n}",
        )
        if not checkout or "id" not in checkout:
            return
        with self.client.post(
            f"/_sandbox/checkouts/{checkout['id']}/approve",
            json={"terms": "net30"},
            headers=self.admin,
            name="/_sandbox/checkouts/[id]/approve",
            catch_response=True,
        ) as r:
            order_id = r.json().get("order_id") if r.status_code == 200 else None
            if order_id is None:
                r.failure(f"approve: {r.status_code}")
                return
        self.books[order_id] = {"amount": 80_000, "captured": 0, "refunded": 0}
        common.record_fact("books", {order_id: dict(self.books[order_id])})
        self.client.get(f"/v1/orders/{order_id}", headers=self.auth, name="/v1/orders/[id]")
        self.money("captured", order_id, 30_000)
        self.money("captured", order_id, 20_000)
        if self.books[order_id]["captured"]:
            self.money("refunded", order_id, 5_000)
        self.client.get(f"/v1/checkouts/{checkout['id']}", headers=self.auth,
                        name="/v1/checkouts/[id]")  # fmt: skip
        self.client.get("/v1/events?limit=20", headers=self.auth, name="/v1/events")


def end_checks(target: Target, environment: Environment) -> list[Check]:
    pending = [k for k, unknown in (common.FACTS.get("pending") or {}).items() if unknown]
    checks = [
        Check(
            "intents_settled",
            not pending,
            "every capture and refund acknowledged or refused by the end",
            f"{len(pending)} still unknown" + (f": {', '.join(pending[:5])}" if pending else ""),
        )
    ]
    books = common.FACTS.get("books") or {}
    erp: invariants.ERP = {
        order_id: {
            "provider_order_id": order_id,
            "amount": b["amount"],
            "shipped_amount": b["captured"],
            "refunded_amount": b["refunded"],
        }
        for order_id, b in books.items()
    }
    return checks + invariants.money_checks(target, erp, ["no_double_capture_or_refund"])


class Phases(common.FaultPhases):
    end_checks = staticmethod(end_checks)
    thresholds = Thresholds(
        error_rate={"steady": 0.01, "recovery": 0.05},
        p95_ms={"*": 2000},
        p99_ms={"*": 4000},
    ).with_overrides()
