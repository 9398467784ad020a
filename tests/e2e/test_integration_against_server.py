"""End to end: the reference integration against a real `sandbank serve` process, with faults.

One simulator process for the module (its access log at info, so its lines can be checked).

- The fault run drives the order-to-cash service in-process (its own event loop), talking real
  HTTP over TCP to the simulator through a 503 storm, connection resets after committed
  captures, after-commit 500s and a total outage. Waiting is virtual (the client's injected
  sleep moves its injected clock), so the run takes seconds however long the backoffs are.
  It proves: no order lost, no capture made twice, the ledger balanced and equal to the
  provider's figures, and every hold resolved once the provider is back.
- The process run starts `sandbank integration serve` as a subprocess with a webhook secret:
  real webhooks from the simulator move its ERP orders, and one correlation id follows a
  request from the integration's JSON log into the simulator's access log.

Every test makes its own account and scopes its fault rules to it. Processes are stopped by
pid; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_servers import Server

from integration.adapters import gl_mapping_path, make_adapter
from integration.app import WEBHOOK_PATH, create_service_app
from integration.breaker import Breakers
from integration.gl_mapping import load
from integration.inbox import Inbox
from integration.ledger import Ledger
from integration.model import EventKind
from integration.orders import ErpState, OrderBook
from integration.ordertocash import OrderToCash
from integration.receiver import apoll_events
from integration.store import IntegrationStore
from integration.wallclock import utc_now
from rehearsal.processes import Process, free_port, sandbank

pytestmark = pytest.mark.slow

ADMIN = "sbadm_e2e_integration"
RECEIVABLE = "1210 Receivable - Credit provider"
WAIT_S = 20.0  # the longest any bounded wait here may take
_names = count(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("integration-e2e")
    srv = Server(
        tmp / "data",
        free_port(),
        tmp / "server.log",
        ["--admin-token", ADMIN, "--no-demo", "--log-level", "info"],
    )
    try:
        srv.wait_healthy()
        yield srv
    finally:
        srv.stop()


@dataclass
class Provider:
    """The simulator as the test sees it: control plane, and the account's own API."""

    admin: httpx.Client
    api: httpx.Client
    account_id: str
    api_key: str
    creditkey: dict[str, str]

    def rule(self, **rule: Any) -> None:
        r = self.admin.post("/_sandbox/faults", json={"account": self.account_id, **rule})
        assert r.status_code == 201, r.text

    def preset(self, name: str) -> None:
        r = self.admin.post(f"/_sandbox/faults/presets/{name}", json={"account": self.account_id})
        assert r.status_code in (200, 201), r.text

    def clear_faults(self) -> None:
        r = self.admin.delete("/_sandbox/faults", params={"account": self.account_id})
        assert r.status_code == 200, r.text

    def approve(self, checkout_id: str) -> None:
        r = self.admin.post(f"/_sandbox/checkouts/{checkout_id}/approve", json={"terms": "net30"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "completed", r.text

    def journal(self, operation: str) -> list[dict[str, Any]]:
        r = self.admin.get(
            "/_sandbox/requests",
            params={"account": self.account_id, "operation": operation, "limit": 1000},
        )
        assert r.status_code == 200, r.text
        return list(r.json()["data"])

    def orders(self, merchant_order_id: str) -> list[dict[str, Any]]:
        r = self.api.get("/v1/orders", params={"merchant_order_id": merchant_order_id})
        assert r.status_code == 200, r.text
        return list(r.json()["data"])

    def invoices(self, prefix: str, number: str) -> list[dict[str, Any]]:
        r = self.api.get(f"{prefix}/invoices", params={"number": number})
        assert r.status_code == 200, r.text
        return list(r.json()["data"])

    def edi_invoices(self, po_number: str) -> list[dict[str, Any]]:
        r = self.api.get("/invoicing/v1/invoices", params={"po_number": po_number})
        assert r.status_code == 200, r.text
        return list(r.json()["data"])

    def events(self, type_: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(100):  # bounded walk
            params: dict[str, Any] = {"limit": 100, "type": type_}
            if cursor:
                params["cursor"] = cursor
            page = self.api.get("/v1/events", params=params).json()
            out.extend(page["data"])
            if not page["has_more"]:
                return out
            cursor = page["next_cursor"]
        raise AssertionError("the event list did not end")


@pytest.fixture
def provider(server: Server) -> Iterator[Provider]:
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10.0
    ) as admin:
        r = admin.post(
            "/_sandbox/accounts", json={"name": f"e2e-integration-{next(_names)}", "seed": 7}
        )
        assert r.status_code == 201, r.text
        key = r.json()["api_key"]
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10.0
        ) as api:
            yield Provider(admin, api, r.json()["id"], key, r.json()["creditkey"])


@dataclass(frozen=True)
class Dialect:
    """What the fault run needs to know of the API the integration's adapter speaks."""

    name: str
    paths: str  # every request of this API
    checkout: str  # operation ids, as fault rules and the journal name them
    capture: str
    refund: str
    ok: int  # a successful capture's status
    receivable: str = RECEIVABLE  # the ledger account of what is owed (the approach's mapping)
    # Where the seller's own invoices are the orders (no buyer decision), the API's prefix.
    invoices: str = ""

    def config(self, server: Server, provider: Provider) -> dict[str, Any]:
        if self.name == "creditkey":  # the SDKs' base URL, with the account's two keys
            return {"provider": "creditkey", "base_url": f"{server.url}/app", **provider.creditkey}
        return {"provider": self.name, "base_url": server.url, "api_key": provider.api_key}

    def flags(self, server: Server, provider: Provider) -> list[str]:
        """The same, as `sandbank integration serve` flags (`base_url` is --provider-url)."""
        names = {"base_url": "provider_url"}
        return [
            part
            for key, value in self.config(server, provider).items()
            for part in (f"--{names.get(key, key).replace('_', '-')}", value)
        ]


DIALECTS = [
    Dialect("sandbank", "/v1/*", "createCheckout", "createCapture", "createRefund", 201),
    Dialect(
        "creditkey",
        "/app/ecomm/*",
        "creditkey.begin_checkout",
        "creditkey.confirm_order",
        "creditkey.refund",
        200,
    ),
    # Gateway + net terms: the seller's own invoice is the order (no buyer decision).
    Dialect(
        "gateway",
        "/gateway/v1/*",
        "gateway.createInvoice",
        "gateway.issueInvoice",
        "gateway.creditInvoice",
        200,
        "1200 Accounts receivable - Customers",
        "/gateway/v1",
    ),
    # Virtual cards: the same seller's invoices, paid by the buyer's AP with virtual cards.
    Dialect(
        "vcard",
        "/vcards/v1/*",
        "vcards.createInvoice",
        "vcards.issueInvoice",
        "vcards.creditInvoice",
        200,
        "1200 Accounts receivable - Customers",
        "/vcards/v1",
    ),
    # Traditional invoicing: the buyer's PO on file is the order; each shipment an 810 invoice.
    Dialect(
        "invoicing",
        "/invoicing/v1/*",
        "invoicing.createPurchaseOrder",
        "invoicing.createInvoice",
        "invoicing.creditInvoice",
        201,
        "1200 Accounts receivable - Customers",
    ),
]
# No buyer decision: the seller grants its own terms.
SELLERS_TERMS = ("gateway", "vcard", "invoicing")


def order_body(merchant_order_id: str, amount: int = 100_000) -> dict[str, Any]:
    return {
        "merchant_order_id": merchant_order_id,
        "amount": amount,
        "currency": "USD",
        "buyer": {"legal_name": "Acme Supply Co", "email": "ap+approve@acme.test"},
        "line_items": [{"name": "Pallet of widgets", "quantity": 2, "unit_amount": amount // 2}],
        "return_url": "https://shop.test/return",
        "cancel_url": "https://shop.test/cancel",
    }


# --- the fault run: the service in-process, the provider over TCP -------------------------------
class Shop:
    """The order-to-cash service on a virtual monotonic clock, its HTTP API in-process."""

    def __init__(
        self, server: Server, provider: Provider, tmp_path: Path, dialect: Dialect
    ) -> None:
        self.t = 1_000.0
        rng = random.Random(11)
        db = tmp_path / "integration.db"
        self.store = IntegrationStore(
            db, new_key=lambda: f"ik_{rng.getrandbits(64):016x}", now=utc_now
        )
        self.adapter = make_adapter(
            {
                **dialect.config(server, provider),
                "timeout_s": 5,
                "retry": {"base_s": 0.2, "max_wait_s": 10, "max_attempts": 3, "max_total_s": 30},
            },
            store=self.store,
            now=utc_now,
            clock=lambda: self.t,
            sleep=self.sleep,
            random=random.Random(5).random,
            breakers=Breakers(lambda: self.t, failure_threshold=5, cooldown_s=30.0),
        )
        self.book = OrderBook(db)
        self.ledger = Ledger.sqlite(db, load(gl_mapping_path(dialect.name)))
        self.inbox = Inbox(db, clock=utc_now)
        self.service = OrderToCash(self.adapter, self.book, self.ledger, clock=utc_now)
        app = create_service_app(self.service, resume_every_s=None)
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://shop.test"
        )

    async def sleep(self, seconds: float) -> None:
        self.t += seconds  # virtual: backoffs and breaker cool-downs pass at once
        await asyncio.sleep(0)

    async def place(self, moid: str) -> int:
        r = await self.http.post("/orders", json=order_body(moid))
        assert r.status_code in (201, 202), r.text
        return r.status_code

    async def act(self, moid: str, verb: str, amount: int | None = None) -> int:
        body = None if amount is None else {"amount": amount}
        r = await self.http.post(f"/orders/{moid}/{verb}", json=body)
        assert r.status_code in (200, 202), r.text
        return r.status_code

    async def settle(self) -> None:
        """Resume held work until none is left (bounded), as the background resumer would."""
        for _ in range(20):
            if not self.book.holds(open_only=True):
                return
            self.t += 60.0  # past any breaker's cool-down
            await self.service.resume()
        raise AssertionError(f"holds still open: {self.book.holds(open_only=True)}")

    def close(self) -> None:
        for closable in (self.inbox, self.ledger, self.book, self.store):
            closable.close()


@pytest.fixture(params=DIALECTS, ids=[d.name for d in DIALECTS])
def dialect(request: pytest.FixtureRequest) -> Dialect:
    chosen: Dialect = request.param
    return chosen


@pytest.fixture
def shop(server: Server, provider: Provider, tmp_path: Path, dialect: Dialect) -> Iterator[Shop]:
    s = Shop(server, provider, tmp_path, dialect)
    yield s
    s.close()


def test_through_storms_resets_and_an_outage_no_order_is_lost_and_nothing_charged_twice(
    shop: Shop, provider: Provider, dialect: Dialect
) -> None:
    """The same run through every adapter (Sandbank's /v1, Credit Key's v1, the gateway + net
    terms, virtual cards and traditional invoicing personalities): the service, ledger and their
    guarantees do not depend on the provider's API."""
    orders = [f"SO-F{n}" for n in range(1, 7)]

    async def run() -> dict[str, int]:
        seen: dict[str, int] = {}
        # 1. A 503 storm: most /v1 requests fail before anything happens.
        provider.rule(
            match={"path": dialect.paths},
            effect={"type": "status", "status": 503},
            probability=0.7,
        )
        for moid in orders:
            seen[f"place {moid}"] = await shop.place(moid)
        provider.clear_faults()
        await shop.settle()
        for moid in orders:
            order = shop.book.get(moid)
            if dialect.name not in SELLERS_TERMS:  # the seller's own terms: no buyer to ask
                assert order.erp_state is ErpState.AWAITING_BUYER, order
                assert order.provider_checkout_id is not None
                provider.approve(order.provider_checkout_id)
            assert (await shop.http.get(f"/orders/{moid}")).json()["erp_state"] == "authorized"

        # 2. Every capture commits, then its connection is reset: only the same key learns it.
        provider.preset("lost-response-after-capture")  # either API's captures
        for moid in orders:
            seen[f"ship1 {moid}"] = await shop.act(moid, "ship", 60_000)
        provider.clear_faults()

        # 3. After-commit 500s: second shipments commit and lose every answer, until the
        # captures breaker opens; what follows is held without a request.
        provider.rule(
            match={"operation": dialect.capture},
            phase="after",
            effect={"type": "status", "status": 500},
            times=6,
        )
        for moid in orders[:3]:
            seen[f"ship2 {moid}"] = await shop.act(moid, "ship", 40_000)
        provider.clear_faults()
        await shop.settle()
        provider.rule(
            match={"operation": dialect.refund},
            phase="after",
            effect={"type": "status", "status": 500},
            times=1,
        )
        seen["refund SO-F3"] = await shop.act("SO-F3", "refund", 10_000)

        # 4. A total outage: work is held, not failed, and resumed with the same keys.
        provider.preset("total-outage")  # either API
        seen["ship2 SO-F4"] = await shop.act("SO-F4", "ship", 40_000)
        seen["place SO-F7"] = await shop.place("SO-F7")
        provider.clear_faults()
        await shop.settle()
        checkout = shop.book.get("SO-F7").provider_checkout_id
        assert checkout is not None
        if dialect.name not in SELLERS_TERMS:
            provider.approve(checkout)
        seen["ship1 SO-F7"] = await shop.act("SO-F7", "ship", 100_000)

        # 5. The provider's events, polled after the fact, change nothing and post nothing
        # (Credit Key's v1 API publishes none).
        if dialect.name != "sandbank":
            return seen
        postings = len(shop.ledger.postings())

        async def page(cursor: str | None) -> tuple[list[dict[str, object]], str | None]:
            params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            client = shop.adapter.client  # type: ignore[attr-defined]
            body = (await client.call("events", "GET", "/v1/events", params=params)).json()
            return list(body["data"]), body["next_cursor"] if body["has_more"] else None

        assert await apoll_events(page, shop.inbox, max_pages=50) > 0
        for _ in range(20):
            if await shop.service.process_events(shop.inbox) == 0:
                break
        assert {r.status for r in shop.inbox.raw_events()} == {"processed"}
        assert len(shop.ledger.postings()) == postings
        return seen

    async def run_then_close() -> dict[str, int]:
        try:
            return await run()
        finally:
            await shop.http.aclose()
            await shop.adapter.client.aclose()  # type: ignore[attr-defined]

    seen = asyncio.run(run_then_close())

    # The faults really happened.
    held = {k for k, status in seen.items() if status == 202}
    assert {"ship2 SO-F1", "ship2 SO-F2", "ship2 SO-F3", "ship2 SO-F4", "place SO-F7"} <= held
    captures_sent = provider.journal(dialect.capture)
    assert sum(e["status"] is None for e in captures_sent) == 6  # the resets
    assert sum(e["status"] == 500 for e in captures_sent) >= 3  # a whole call's attempts
    # One key per shipment (6 + 3 + 1 + 1), each retried until it was answered; the answers
    # after the resets and the 500s were replays of the committed capture.
    assert len({e["idempotency_key"] for e in captures_sent}) == 11
    assert sum(e["replayed"] and e["status"] == dialect.ok for e in captures_sent) >= 8
    assert any(e["status"] == 503 for e in provider.journal(dialect.checkout))

    total_shipped = total_refunded = 0
    capture_ids: set[str] = set()
    refund_ids: set[str] = set()
    for moid in [*orders, "SO-F7"]:
        erp = shop.book.get(moid)
        if dialect.invoices:  # the invoice is the order: its issues are its captures
            (invoice,) = provider.invoices(dialect.invoices, moid)
            issues = [
                e for e in provider.events("invoice.issued") if e["object_id"] == invoice["id"]
            ]
            at_provider = {
                "id": invoice["id"],
                "captured_amount": invoice["issued_amount"],
                "refunded_amount": invoice["credited_amount"],
                "captures": [{"id": e["id"]} for e in issues],
                "refunds": [],
            }
        elif dialect.name == "invoicing":  # the PO is the order, each 810 invoice a capture
            sent = provider.edi_invoices(moid)
            at_provider = {
                "id": moid,
                "captured_amount": sum(i["amount"] for i in sent),
                "refunded_amount": sum(i["credited_amount"] for i in sent),
                "captures": [{"id": i["id"]} for i in sent],
                "refunds": [{"id": m["id"]} for i in sent for m in i["credit_memos"]],
            }
        else:
            (at_provider,) = provider.orders(moid)  # no order lost, none made twice
        # Credit Key's one id per order is the checkout's.
        at_id = at_provider["checkout_id"] if dialect.name == "creditkey" else at_provider["id"]
        assert erp.provider_order_id == at_id
        # No capture twice: the provider holds exactly the ERP's shipments.
        ships = [h for h in shop.book.holds(moid) if h.kind == "capture_pending"]
        assert len(at_provider["captures"]) == len(ships), (moid, at_provider["captures"])
        assert (at_provider["captured_amount"], at_provider["refunded_amount"]) == (
            erp.shipped,
            erp.refunded,
        )
        assert erp.shipped == sum(int(h.detail["amount"]) for h in ships)
        total_shipped += erp.shipped
        total_refunded += erp.refunded
        capture_ids |= {c["id"] for c in at_provider["captures"]}
        refund_ids |= {r["id"] for r in at_provider["refunds"]}
        # Every hold resolved, none of them by a refusal.
        for hold in shop.book.holds(moid):
            assert hold.resolved_at is not None, hold
            assert hold.resolution is not None
            assert not hold.resolution.startswith("rejected"), hold
    assert shop.book.get("SO-F1").erp_state is ErpState.SHIPPED
    assert shop.book.get("SO-F3").erp_state is ErpState.PARTIALLY_REFUNDED
    capture_events = {
        "gateway": "invoice.issued",
        "vcard": "invoice.issued",
        "invoicing": "edi_invoice.created",
    }
    captured_type = capture_events.get(dialect.name, "order.captured")
    assert len(provider.events(captured_type)) == len(capture_ids) == 11

    # The ledger: one posting per provider capture and refund, balanced, equal to the provider.
    captured = {p.reference for p in shop.ledger.postings(event_kind=EventKind.CAPTURED)}
    refunded = {p.reference for p in shop.ledger.postings(event_kind=EventKind.REFUNDED)}
    if dialect.name in ("sandbank", "invoicing"):
        assert (captured, refunded) == (capture_ids, refund_ids)
    elif dialect.name == "creditkey":  # no capture ids: one posting per shipment intent
        assert (len(captured), len(refunded)) == (len(capture_ids), len(refund_ids))
    else:  # the seller's invoices name no capture either; their credit notes are the refunds
        assert (len(captured), len(refunded)) == (len(capture_ids), 1)
    assert len(shop.ledger.postings(event_kind=EventKind.CAPTURED)) == len(capture_ids)
    assert all(sum(shop.ledger.trial_balance(c).values()) == 0 for c in shop.ledger.currencies())
    assert shop.ledger.balance(dialect.receivable, "USD") == total_shipped - total_refunded
    assert total_shipped == 6 * 60_000 + 4 * 40_000 + 100_000


# --- the process run: `sandbank integration serve`, webhooks and logs ---------------------------
class IntegrationProcess(Process):
    """`sandbank integration serve ...` on 127.0.0.1, its JSON log to a file, stopped by pid."""

    health_path = "/metrics"
    name = "integration"

    def __init__(self, port: int, log: Path, args: list[str]) -> None:
        super().__init__(
            sandbank("integration", "serve", "--host", "127.0.0.1", "--port", str(port), *args),
            port,
            log,
        )

    @classmethod
    def against(
        cls,
        server: Server,
        provider: Provider,
        tmp_path: Path,
        port: int,
        *args: str,
        dialect: Dialect = DIALECTS[0],
    ) -> IntegrationProcess:
        """The service for `provider`'s account on `server` through `dialect`'s API, its
        database and log in `tmp_path`, with more `serve` arguments."""
        db = ["--db", str(tmp_path / "integration.db")]
        flags = dialect.flags(server, provider)
        return cls(port, tmp_path / "integration.log", [*flags, *db, *args])

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.output().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out


def wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def erp_row(db: Path, moid: str) -> tuple[str, int]:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT erp_state, shipped FROM erp_orders WHERE merchant_order_id = ?", (moid,)
        ).fetchone()
    return (str(row[0]), int(row[1])) if row else ("", 0)


def test_the_service_process_takes_webhooks_and_one_correlation_id_spans_both_logs(
    server: Server, provider: Provider, tmp_path: Path
) -> None:
    port = free_port()
    r = provider.api.post(
        "/v1/webhook_endpoints", json={"url": f"http://127.0.0.1:{port}{WEBHOOK_PATH}"}
    )
    assert r.status_code == 201, r.text
    db = tmp_path / "integration.db"
    proc = IntegrationProcess.against(
        server,
        provider,
        tmp_path,
        port,
        *[
            "--webhook-secret",
            r.json()["secret"],
            "--resume-every",
            "0.2",
            "--process-every",
            "0.2",
        ],
    )
    try:
        proc.wait_healthy()
        with httpx.Client(base_url=proc.url, timeout=30.0) as shop:
            placed = shop.post(
                "/orders", json=order_body("SO-P1"), headers={"X-Correlation-Id": "e2e-place-1"}
            )
            assert placed.status_code == 201, placed.text
            assert placed.headers["x-correlation-id"] == "e2e-place-1"
            # The buyer accepts; only the webhook tells the service (it is not asked to read).
            provider.approve(placed.json()["provider_checkout_id"])
            wait_for(
                "the webhook to authorize SO-P1", lambda: erp_row(db, "SO-P1")[0] == "authorized"
            )

            # A capture through a short 503 storm: retried with one key, under one id.
            provider.rule(
                match={"operation": "createCapture", "attempt": {"lte": 2}},
                effect={"type": "status", "status": 503},
            )
            shipped = shop.post(
                "/orders/SO-P1/ship",
                json={"amount": 100_000},
                headers={"X-Correlation-Id": "e2e-ship-1"},
            )
            assert shipped.status_code == 200, shipped.text
            assert shipped.json()["erp_state"] == "shipped"
            provider.clear_faults()
            wait_for(
                "the order.captured webhook to be processed",
                lambda: any(
                    line.get("event") == "provider_event" and line.get("type") == "order.captured"
                    for line in proc.lines()
                ),
            )
    finally:
        proc.stop()

    lines = proc.lines()
    access = [line for line in lines if line.get("logger") == "sandbank.integration.access"]
    assert any(
        (a["path"], a["status"], a["correlation_id"]) == ("/orders/SO-P1/ship", 200, "e2e-ship-1")
        for a in access
    )
    assert any(a["path"] == WEBHOOK_PATH and a["status"] == 204 for a in access)
    calls = [
        line
        for line in lines
        if line.get("event") == "provider_call" and line.get("family") == "captures"
    ]
    assert [(c["attempt"], c["status"], c["correlation_id"]) for c in calls] == [
        (1, 503, "e2e-ship-1"),
        (2, 503, "e2e-ship-1"),
        (3, 201, "e2e-ship-1"),
    ]
    assert len({c["idempotency_key"] for c in calls}) == 1
    # The simulator's access log (another process) names the same id for the same requests.
    sim = [
        json.loads(line)
        for line in server.output().splitlines()
        if line.startswith("{") and "e2e-ship-1" in line
    ]
    assert [(s["method"], s["status"]) for s in sim if s["path"].endswith("/captures")] == [
        ("POST", 503),
        ("POST", 503),
        ("POST", 201),
    ]
    # One capture at the provider, one posting in the ledger (the webhook did not add one).
    (order,) = provider.orders("SO-P1")
    assert len(order["captures"]) == 1
    ledger = Ledger.sqlite(db)
    try:
        (posting,) = ledger.postings(event_kind=EventKind.CAPTURED)
        assert posting.reference == order["captures"][0]["id"]
    finally:
        ledger.close()
    assert erp_row(db, "SO-P1") == ("shipped", 100_000)


def test_the_service_process_answers_held_at_once_while_the_provider_hangs(
    server: Server, provider: Provider, tmp_path: Path
) -> None:
    """A total outage in its worst form (every request hangs): the shop still gets its 202
    within the request budget, not after the client's timeouts, and after recovery the held
    work completes, each operation once."""
    port = free_port()
    proc = IntegrationProcess.against(
        server,
        provider,
        tmp_path,
        port,
        *[
            "--budget-ms",
            "800",
            "--resume-every",
            "0.2",
            "--breaker-cooldown",
            "0.5",
            "--poll-every",
            "0",
        ],
    )
    try:
        proc.wait_healthy()
        with httpx.Client(base_url=proc.url, timeout=60.0) as shop:
            placed = shop.post("/orders", json=order_body("SO-H0"))
            assert placed.status_code == 201, placed.text
            provider.approve(placed.json()["provider_checkout_id"])
            assert shop.get("/orders/SO-H0").json()["erp_state"] == "authorized"

            provider.rule(match={"path": "/v1/*"}, effect={"type": "hang", "max_ms": 60_000})
            cids = [f"e2e-hold-{n}" for n in range(5)]
            answered = [
                shop.post(
                    "/orders", json=order_body(f"SO-H{n}"), headers={"X-Correlation-Id": cids[n]}
                ).status_code
                for n in range(1, 5)
            ]
            ship = shop.post(
                "/orders/SO-H0/ship",
                json={"amount": 100_000},
                headers={"X-Correlation-Id": cids[0]},
            )
            assert [*answered, ship.status_code] == [202] * 5, ship.text

            # Held by the budget, not by the retry policy: each call made one attempt (cut to
            # the budget) or none (breaker open); without the budget the first would have
            # waited out a 10 s attempt timeout and retried.
            def attempts() -> dict[str, list[int]]:
                made: dict[str, list[int]] = {cid: [] for cid in cids}
                for line in proc.lines():
                    if line.get("event") == "provider_call" and line["correlation_id"] in made:
                        made[line["correlation_id"]].append(line["attempt"])
                return made

            wait_for("every held call logged", lambda: all(attempts().values()))
            assert all(max(made) <= 1 for made in attempts().values()), attempts()

            provider.clear_faults()
            wait_for(
                "the held work to complete",
                lambda: shop.get("/status").json()["holds_open_total"] == 0,
            )
            got = shop.get("/orders/SO-H0").json()
            assert (got["erp_state"], got["shipped_amount"]) == ("shipped", 100_000)
            for n in range(1, 5):
                assert shop.get(f"/orders/SO-H{n}").json()["erp_state"] == "awaiting_buyer"
            metrics = shop.get("/metrics").text
    finally:
        proc.stop()
    done = [e for e in provider.journal("createCheckout") if 200 <= (e["status"] or 0) < 300]
    assert len(done) == len({e["idempotency_key"] for e in done}) == 5
    assert len(provider.events("order.captured")) == 1
    assert 'sandbank_integration_requests_total{outcome="held",route="POST /orders"} 4.0' in metrics


def test_the_service_process_speaks_credit_key_with_provider_creditkey(
    server: Server, provider: Provider, tmp_path: Path
) -> None:
    """`--provider creditkey`: the same service over Credit Key's v1 API. No webhooks exist
    there, so the buyer's answer is read (find_order) when the order is looked at."""
    port = free_port()
    proc = IntegrationProcess.against(
        server, provider, tmp_path, port, "--poll-every", "0", dialect=DIALECTS[1]
    )
    try:
        proc.wait_healthy()
        with httpx.Client(base_url=proc.url, timeout=30.0) as shop:
            placed = shop.post("/orders", json=order_body("SO-C1"))
            assert placed.status_code == 201, placed.text
            ck_id = placed.json()["provider_checkout_id"]
            assert placed.json()["checkout_url"].endswith(f"/hosted/creditkey/redirect/{ck_id}")
            provider.approve(ck_id)
            assert shop.get("/orders/SO-C1").json()["erp_state"] == "authorized"
            shipped = shop.post(
                "/orders/SO-C1/ship",
                json={"amount": 60_000},
                headers={"X-Correlation-Id": "e2e-ck-ship"},
            )
            assert shipped.status_code == 200, shipped.text
            refunded = shop.post("/orders/SO-C1/refund", json={"amount": 10_000})
            assert refunded.status_code == 200, refunded.text
            assert refunded.json()["erp_state"] == "partially_refunded"
    finally:
        proc.stop()
    (order,) = provider.orders("SO-C1")
    assert (order["captured_amount"], order["refunded_amount"]) == (60_000, 10_000)
    sim = [
        json.loads(line)
        for line in server.output().splitlines()
        if line.startswith("{") and "e2e-ck-ship" in line
    ]
    assert [(s["path"], s["status"]) for s in sim] == [("/app/ecomm/confirm_order", 200)]
    secret = provider.creditkey["shared_secret"]
    assert secret not in server.output()
    assert secret not in (tmp_path / "integration.log").read_text()
