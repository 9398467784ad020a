"""The order-to-cash service wired to an in-process simulator: the one harness of the
integration-layer tests (`new_shop` in conftest.py builds it on the shared simulator).

The service's API is driven through `httpx.ASGITransport`; the service talks to the simulator
through another one. Time: the service's wall clock is injected (`wall`); the client's
monotonic clock only moves when its injected sleep is called (nothing really sleeps; the
waits asked for are kept in `sleeps`). Idempotency keys come from a seeded RNG. The resumer,
the event worker and the events poller are run by hand (`resume`, `process`, `poll`) unless a
test starts the lifespan itself.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from factories import ADMIN, BASE_URL, Account, Api
from starlette.types import ASGIApp, Receive, Scope, Send

from integration.adapters import gl_mapping_path, make_adapter
from integration.app import create_service_app
from integration.breaker import Breakers
from integration.gl_mapping import load
from integration.inbox import Inbox
from integration.ledger import Ledger
from integration.orders import OrderBook
from integration.ordertocash import OrderToCash
from integration.store import IntegrationStore

T = TypeVar("T")
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
RECEIVABLE = "1210 Receivable - Credit provider"


class Shop:
    """The order-to-cash service (with an inbox when asked), its API client and what it is
    built on, over the simulator `sim` that `api` drives, as `account`."""

    def __init__(
        self,
        api: Api,
        sim: ASGIApp,
        account: Account,
        db: Path,
        *,
        wall: Callable[[], datetime] = lambda: NOW,
        key_seed: int = 3,
        retry: Mapping[str, Any] | None = None,
        failure_threshold: int = 50,
        cooldown_s: float = 30.0,
        inbox: bool = False,
        webhook_secrets: str | Sequence[str] = (),
        correlation_ids: Callable[[], str] | None = None,
        request_budget_s: float | None = 0.8,
        drive_budget_s: float | None = 5.0,
        provider: str = "sandbank",
    ) -> None:
        """`provider`: which adapter (`integration.adapters.PROVIDERS`) the service uses; its
        ledger posts with that provider's approach's GL mapping."""
        self.api = api
        self.sim = sim
        self.account = account
        self.db = db
        self.wall = wall
        self.monotonic = 100.0
        self.sleeps: list[float] = []
        rng = random.Random(key_seed)
        self.store = IntegrationStore(
            db, new_key=lambda: f"ik_{rng.getrandbits(64):016x}", now=wall
        )
        config = provider_config(api, account, provider)
        if retry is not None:
            config["retry"] = dict(retry)
        self.adapter = make_adapter(
            config,
            store=self.store,
            now=wall,
            clock=lambda: self.monotonic,
            sleep=self.sleep,
            random=lambda: 0.5,
            breakers=Breakers(
                lambda: self.monotonic, failure_threshold=failure_threshold, cooldown_s=cooldown_s
            ),
            transport=httpx.ASGITransport(app=sim),
        )
        self.book = OrderBook(db)
        self.ledger = Ledger.sqlite(db, load(gl_mapping_path(provider)))
        self.inbox: Inbox | None = Inbox(db, clock=wall) if inbox else None
        self.service = OrderToCash(
            self.adapter, self.book, self.ledger, clock=wall, drive_budget_s=drive_budget_s
        )
        self.app = create_service_app(
            self.service,
            resume_every_s=None,
            inbox=self.inbox,
            webhook_secrets=webhook_secrets,
            process_every_s=None,
            correlation_ids=correlation_ids,
            request_budget_s=request_budget_s,
            timer=lambda: self.monotonic,
        )
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://shop.test"
        )

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.monotonic += seconds

    # --- the service --------------------------------------------------------------------------
    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        result: T = self.api.loop.run_until_complete(coro)
        return result

    def post(self, url: str, body: Any = None, **headers: str) -> httpx.Response:
        return self.run(self.http.post(url, json=body, headers=headers))

    def get(self, url: str) -> httpx.Response:
        return self.run(self.http.get(url))

    def resume(self) -> int:
        return self.run(self.service.resume())

    def process(self, limit: int = 1000) -> int:
        """Run the event worker once: queued inbox events into the ERP and the ledger."""
        return self.run(self.service.process_events(self.the_inbox, limit=limit))

    def poll(self) -> int:
        """Run the events poller once: the provider's new events into the inbox."""
        return self.run(self.service.poll_events(self.the_inbox))

    @property
    def the_inbox(self) -> Inbox:
        assert self.inbox is not None, "built without an inbox"
        return self.inbox

    # --- the simulator ------------------------------------------------------------------------
    def fault(self, **rule: Any) -> None:
        r = self.api.post(
            "/_sandbox/faults", headers=ADMIN, json={"account": self.account.id, **rule}
        )
        assert r.status_code == 201, r.text

    def outage(self) -> None:
        r = self.api.post(
            "/_sandbox/faults/presets/total-outage",
            headers=ADMIN,
            json={"account": self.account.id},
        )
        assert r.status_code in (200, 201), r.text

    def clear_faults(self) -> None:
        assert self.api.request("DELETE", "/_sandbox/faults", headers=ADMIN).status_code == 200

    def provider(self, path: str, body: Any) -> dict[str, Any]:
        """A call straight to the provider, as another system (a dashboard) would make it."""
        r = self.api.post(path, headers=self.account.headers, json=body)
        assert r.status_code in (200, 201), r.text
        return dict(r.json())

    def journal(self, **params: Any) -> list[dict[str, Any]]:
        r = self.api.get(
            "/_sandbox/requests", headers=ADMIN, params={"account": self.account.id, **params}
        )
        assert r.status_code == 200, r.text
        return list(r.json()["data"])

    # --- the books ----------------------------------------------------------------------------
    def balanced(self) -> bool:
        return balanced(self.ledger)

    def close(self) -> None:
        self.run(self.http.aclose())
        self.run(self.adapter.client.aclose())  # type: ignore[attr-defined]
        closables: list[Inbox | Ledger | OrderBook | IntegrationStore] = [
            self.ledger,
            self.book,
            self.store,
        ]
        if self.inbox is not None:
            closables.insert(0, self.inbox)
        for closable in closables:
            closable.close()


class LateBound:
    """An ASGI app that forwards to `target`, set later: the simulator's webhook transport
    exists before the service it delivers to."""

    def __init__(self) -> None:
        self.target: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.target is not None, "no target bound yet"
        await self.target(scope, receive, send)


def order_body(
    merchant_order_id: str, amount: int = 100_000, *, line_items: bool = True
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "merchant_order_id": merchant_order_id,
        "amount": amount,
        "currency": "USD",
        "buyer": {"legal_name": "Acme Supply Co", "email": "ap+approve@acme.test"},
        "return_url": "https://shop.test/return",
        "cancel_url": "https://shop.test/cancel",
    }
    if line_items:
        body["line_items"] = [
            {"name": "Pallet of widgets", "quantity": 2, "unit_amount": amount // 2}
        ]
    return body


def provider_config(api: Api, account: Account, provider: str) -> dict[str, Any]:
    """The adapter configuration of `provider` for this account of the in-process simulator."""
    if provider == "creditkey":  # the SDKs' base URL, with the account's Credit Key keys
        r = api.get(f"/_sandbox/accounts/{account.id}", headers=ADMIN)
        assert r.status_code == 200, r.text
        return {"provider": provider, "base_url": f"{BASE_URL}/app", **r.json()["creditkey"]}
    return {"provider": provider, "base_url": BASE_URL, "api_key": account.api_key}


def balanced(ledger: Ledger) -> bool:
    return all(sum(ledger.trial_balance(c).values()) == 0 for c in ledger.currencies())
