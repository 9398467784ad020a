"""`make bench` (migration): moving a book of business from embedded credit (`/v1`) to the
gateway + net terms personality (`/gateway/v1`), or back, or to or from traditional invoicing
(`/invoicing/v1`), with 1 % of the provider requests
failing by fault rules while it runs (issue #15: production-like volume, 10,000 orders, zero
duplicates and zero lost obligations).

1. Build (in-process ASGI, no socket; not timed): one simulator on a file-backed SQLite store,
   a source and a target account. The source's book: about a third of the orders captured and
   then repaid (history: the clock advances 31 days), then authorized-only orders, captured
   orders still owed, and 1 in 100 disputed. With `--direction gateway-native` the source is
   the gateway's: paid invoices (history), drafts and issued invoices still due; with
   `invoicing-*` traditional invoicing's: paid EDI invoices (history: remittances), fresh
   purchase orders, open invoices, and partly invoiced POs (their rest stays).
2. Faults on both accounts: 0.5 % of requests answered 503 before anything is stored and 0.5 %
   answered 500 *after* the operation committed (the lost response only an idempotent retry
   survives).
3. The timed run: `integration.migration.migrate` (the same code as `sandbank integration
   migrate`), cut-over, then a second run that must change nothing.

Prints: wall time, requests and retries, the faults that fired, duplicates and lost
obligations (each must be 0, counted independently of the run's own invariants from the
target's export: objects per obligation key), the second run's moves (must be 0).

    .venv/bin/python bench/migration.py [--orders 10000] [--direction native-gateway] [--json]

Exit status 0 when duplicates, lost and the second run's moves are all 0 and every invariant
held; 1 otherwise. Every loop is bounded in count; each run in time by `--timeout`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from fixed_entropy import deterministic_entropy

from integration.adapters.migration import Http, MigrationSide
from integration.migration import Report, migrate
from simulator.app import create_app
from simulator.clock import ManualClock
from simulator.settings import Settings

ADMIN = "sbadm_bench_migration"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BASE = "http://127.0.0.1:8080"
ORDERS_PER_BUYER = 50
FAULT_RATE = 0.01  # half before (nothing stored), half after commit (the response lost)
FAULTED = ("/v1", "/gateway/v1", "/invoicing/v1", "/vcards/v1")
# A direction's ends (`native-gateway`) as the command names the providers; each end's name is
# also its `Book` builder.
PROVIDER = {"native": "sandbank", "gateway": "gateway", "invoicing": "invoicing", "vcard": "vcard"}
DIRECTIONS = tuple(f"{a}-{b}" for a in PROVIDER for b in PROVIDER if a != b)


def app_at(data_dir: Path) -> Any:
    settings = Settings(
        data_dir=data_dir,
        db=str(data_dir / "sandbank.db"),
        seed=1,
        admin_token=ADMIN,
        public_url=BASE,
        demo_account=False,
        webhook_process=True,
    )
    return create_app(
        settings, wall_clock=ManualClock(START), entropy=deterministic_entropy("bench-migration")
    )


class Book:
    """Builds a source's book of business over HTTP (any transport)."""

    def __init__(self, client: httpx.AsyncClient, concurrency: int = 8) -> None:
        self.c = client
        self.gate = asyncio.Semaphore(concurrency)
        self.admin = {"Authorization": f"Bearer {ADMIN}"}

    async def ok(self, method: str, path: str, key: str | None = None, **kw: Any) -> Any:
        headers = dict(kw.pop("headers", None) or self.admin)
        r = await self.c.request(method, path, headers=headers, **kw)
        if r.status_code >= 400:
            raise SystemExit(f"bench: {method} {path}: {r.status_code} {r.text[:300]}")
        return r.json()

    async def account(self, name: str) -> tuple[str, dict[str, str]]:
        body = await self.ok("POST", "/_sandbox/accounts", json={"name": name, "seed": 7})
        return body["id"], {"Authorization": f"Bearer {body['api_key']}"}

    async def advance(self, account: str, by: str) -> None:
        await self.ok("POST", f"/_sandbox/accounts/{account}/clock/advance", json={"by": by})

    async def fault(self, account: str, prefix: str) -> None:
        for phase, status in (("before", 503), ("after", 500)):
            await self.ok(
                "POST",
                "/_sandbox/faults",
                json={
                    "account": account,
                    "match": {"path": f"{prefix}/*"},
                    "phase": phase,
                    "probability": FAULT_RATE / 2,
                    "effect": {"type": "status", "status": status},
                },
            )

    async def _each(self, count: int, one: Callable[[int], Any]) -> None:
        async def guarded(i: int) -> None:
            async with self.gate:
                await one(i)

        await asyncio.gather(*(guarded(i) for i in range(count)))

    # --- embedded credit ------------------------------------------------------------------
    async def native(self, account: str, auth: dict[str, str], orders: int) -> None:
        buyers = max(1, orders // ORDERS_PER_BUYER)
        repaid = orders // 3

        async def order(i: int, capture: bool, dispute: bool = False) -> None:
            chk = await self.ok(
                "POST",
                "/v1/checkouts",
                headers=auth,
                json={
                    "amount": 10_000 + (i % 97) * 100,
                    "merchant_order_id": f"SO-{i}",
                    "buyer": {
                        "legal_name": f"Buyer {i % buyers}",
                        "email": f"ap+approve@buyer{i % buyers}.test",
                        "external_id": f"BUY-{i % buyers}",
                        "annual_revenue": 900_000_000,
                        "years_in_business": 12,
                    },
                    "return_url": "https://shop.test/r",
                    "cancel_url": "https://shop.test/c",
                },
            )
            done = await self.ok(
                "POST", f"/_sandbox/checkouts/{chk['id']}/approve", json={"terms": "net30"}
            )
            if capture:
                await self.ok(
                    "POST", f"/v1/orders/{done['order_id']}/captures", headers=auth, json={}
                )
            if dispute:
                await self.ok("POST", f"/_sandbox/orders/{done['order_id']}/disputes", json={})

        await self._each(repaid, lambda i: order(i, True))
        await self.advance(account, "31d")  # those are repaid: history only
        rest = orders - repaid
        await self._each(rest, lambda i: order(repaid + i, i % 2 == 1, dispute=i % 100 == 1))

    # --- gateway + net terms -------------------------------------------------------------
    async def gateway(self, account: str, auth: dict[str, str], orders: int) -> None:
        customers = max(1, orders // ORDERS_PER_BUYER)
        paid = orders // 3

        async def invoice(i: int, issue: bool) -> None:
            n = i % customers
            inv = await self.ok(
                "POST",
                "/gateway/v1/invoices",
                headers=auth,
                json={
                    "number": f"INV-{i}",
                    "amount": 10_000 + (i % 97) * 100,
                    "currency": "USD",
                    "customer": {
                        "name": f"Customer {n}",
                        "email": f"ap+approve@customer{n}.test",
                        "external_id": f"CUST-{n}",
                        "payment_method": "ach" if n % 5 == 0 else "card",
                    },
                },
            )
            if issue:
                await self.ok(
                    "POST", f"/gateway/v1/invoices/{inv['id']}/issue", headers=auth, json={}
                )

        await self._each(paid, lambda i: invoice(i, True))
        await self.advance(account, "45d")  # paid on their due dates: history only
        await self._each(orders - paid, lambda i: invoice(paid + i, i % 2 == 1))

    # --- traditional invoicing -----------------------------------------------------------
    async def invoicing(self, account: str, auth: dict[str, str], orders: int) -> None:
        """Paid invoices (history: remittances), then per order in turn: a fresh purchase
        order, an open invoice, and a PO twice an invoice's amount invoiced once (its rest
        stays)."""
        buyers = max(1, orders // ORDERS_PER_BUYER)
        paid = orders // 3

        async def one(i: int, shape: int) -> None:
            n, amount = i % buyers, 10_000 + (i % 97) * 100
            buyer = {
                "name": f"Buyer {n}",
                "id": f"EDI-{n}",
                "email": f"ap+approve+pays_on_time@edibuyer{n}.test",
            }
            if shape in (0, 2):
                po = amount * (2 if shape == 2 else 1)
                body = {"number": f"PO-{i}", "buyer": buyer, "amount": po, "currency": "USD"}
                await self.ok("POST", "/invoicing/v1/purchase_orders", headers=auth, json=body)
                if shape == 0:
                    return
            invoice = {
                "big": {
                    "invoice_number": f"INV-{i}",
                    "po_number": f"PO-{i}" if shape == 2 else None,
                },
                "currency": "USD",
                "buyer": buyer,
                "it1": [{"quantity": 1, "unit_price": amount}],
                "tds": {"amount": amount},
            }
            await self.ok("POST", "/invoicing/v1/invoices", headers=auth, json=invoice)

        await self._each(paid, lambda i: one(i, 1))
        await self.advance(account, "45d")  # paid on their due dates: history only
        await self._each(orders - paid, lambda i: one(paid + i, i % 3))

    # --- virtual cards -------------------------------------------------------------------
    async def vcard(self, account: str, auth: dict[str, str], orders: int) -> None:
        """The gateway's book at `/vcards/v1`: the buyer's AP pays the first third by card
        (history: card payments), then drafts and issued invoices still due."""
        customers = max(1, orders // ORDERS_PER_BUYER)
        paid = orders // 3

        async def invoice(i: int, issue: bool) -> None:
            n = i % customers
            customer = {
                "name": f"Card customer {n}",
                "email": f"ap+approve@cardbuyer{n}.test",
                "external_id": f"VC-{n}",
            }
            body = {"number": f"INV-{i}", "amount": 10_000 + (i % 97) * 100, "currency": "USD"}
            inv = await self.ok(
                "POST", "/vcards/v1/invoices", headers=auth, json={**body, "customer": customer}
            )
            if issue:
                path = f"/vcards/v1/invoices/{inv['id']}/issue"
                await self.ok("POST", path, headers=auth, json={})

        await self._each(paid, lambda i: invoice(i, True))
        await self.advance(account, "45d")  # paid by card on their due dates: history only
        await self._each(orders - paid, lambda i: invoice(paid + i, i % 2 == 1))


def independent_count(report: Report, target_tagged: list[tuple[str, str]]) -> tuple[int, int]:
    """(duplicates, lost) from the target's export, apart from the run's own invariants: a
    moved obligation held by more than one target object is duplicated; by none, lost."""
    holders = Counter(key for key, _ in target_tagged)
    moved = {s.holding.key for s in report.steps if s.action == "move"}
    duplicates = sum(n - 1 for n in holders.values() if n > 1)
    lost = sum(1 for key in moved if holders[key] == 0)
    return duplicates, lost


async def run(orders: int, direction: str, timeout: float) -> dict[str, Any]:
    builder, _, to = direction.partition("-")
    source_name, target_name = PROVIDER[builder], PROVIDER[to]
    with tempfile.TemporaryDirectory(prefix="sandbank-bench-migration-") as tmp:
        app = app_at(Path(tmp))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE, timeout=60) as client:
            book = Book(client)
            source_id, source_auth = await book.account("source")
            target_id, target_auth = await book.account("target")
            built = time.perf_counter()
            await getattr(book, builder)(source_id, source_auth, orders)
            build_s = time.perf_counter() - built
            for account in (source_id, target_id):
                for prefix in FAULTED:
                    await book.fault(account, prefix)

            def side(name: str, auth: dict[str, str], account: str | None) -> MigrationSide:
                http = Http(
                    BASE,
                    auth["Authorization"].removeprefix("Bearer "),
                    admin_token=ADMIN,
                    transport=transport,
                    max_attempts=10,
                )
                return MigrationSide(name, http, account=account)

            source = side(source_name, source_auth, None)
            target = side(target_name, target_auth, target_id)
            started = time.perf_counter()
            report = await asyncio.wait_for(migrate(source, target, dry_run=False), timeout)
            wall = time.perf_counter() - started
            after = await target.state()
            duplicates, lost = independent_count(report, list(after.tagged))
            again = await asyncio.wait_for(migrate(source, target, dry_run=False), timeout)
            fired = await book.ok("GET", "/_sandbox/faults")
            stats = [s.http.stats for s in (source, target)]
    return {
        "orders": orders,
        "direction": direction,
        "build_s": round(build_s, 1),
        "wall_s": round(wall, 1),
        "counts": report.counts(),
        "tokens_imported": len(report.tokens),
        "requests": sum(s.requests for s in stats),
        "retries": sum(s.retries for s in stats),
        "faults_fired": sum(r.get("fired", 0) for r in fired.get("data", [])),
        "duplicates": duplicates,
        "lost": lost,
        "invariants": {c.name: c.ok for c in report.checks},
        "step_failures": len(report.failures),
        "second_run_moves": sum(1 for s in again.steps if s.action != "stay"),
        "second_run_ok": again.ok,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--orders", type=int, default=10_000)
    p.add_argument("--direction", choices=DIRECTIONS, default="native-gateway")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per migration run")
    p.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = p.parse_args(argv)
    if not 10 <= args.orders <= 100_000:
        print("bench: error: --orders must be 10-100000", file=sys.stderr)
        return 2
    out = asyncio.run(run(args.orders, args.direction, args.timeout))
    good = (
        out["duplicates"] == 0
        and out["lost"] == 0
        and out["second_run_moves"] == 0
        and all(out["invariants"].values())
        and out["step_failures"] == 0
        and out["second_run_ok"]
    )
    if args.json:
        print(json.dumps({**out, "ok": good}))
    else:
        print(f"migration bench: {out['orders']} orders, {out['direction']}, 1 % faults")
        for name in (
            "build_s", "wall_s", "counts", "tokens_imported", "requests", "retries",
            "faults_fired", "duplicates", "lost", "invariants", "step_failures",
            "second_run_moves",
        ):  # fmt: skip
            print(f"  {name:18} {out[name]}")
        print(f"  verdict            {'PASS' if good else 'FAIL'} (duplicates 0, lost 0, rerun 0)")
    return 0 if good else 1


if __name__ == "__main__":
    raise SystemExit(main())
