"""What a seeded sequence of operations answers and writes, recorded so two trees can be
compared byte for byte: a change to how responses, events or webhooks are *built* must not
change a byte of what they *are* (determinism: same seed + same requests => same results).

The sequence (in process, one SQLite file, a manual clock, fixed entropy) touches the object
types that emit events: buyers, checkouts (inline buyer, existing buyer, approved, declined,
expired), orders (updated, captured in part and in full, refunded, cancelled, disputed), a
webhook endpoint (created, updated, rotated), the gateway (invoice, charge), virtual cards,
EDI invoices and their remittance, settlements (after three days), plus refused requests and
an Idempotency-Key replay. Recorded, in order: every response (status, content type, body),
every stored event row (its document as stored, with its SQLite type), every webhook request
(headers that are not transport, body).

    .venv/bin/python bench/determinism.py --out /tmp/after.jsonl
    .venv/bin/python bench/determinism.py --tree /work/wt/base --out /tmp/before.jsonl
    .venv/bin/python bench/determinism.py --compare /tmp/before.jsonl   # exit 1 on a difference
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sqlite3
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fixed_entropy import deterministic_entropy

HERE = Path(__file__).resolve().parent
ADMIN_TOKEN = "sbadm_determinism"  # noqa: S105 - a throwaway in-process app's
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
HOOK = "http://127.0.0.1:9/hook"
# Headers that depend on the transport (httpx's own), not on what the simulator decided.
TRANSPORT_HEADERS = {"host", "accept", "accept-encoding", "connection", "user-agent"}


def _buyer(tag: str) -> dict[str, Any]:
    return {
        "legal_name": "Acme Supply Co",
        "email": f"ap+{tag}@acme.test",
        "annual_revenue": 250_000_000,
        "years_in_business": 8,
    }


def _checkout(amount: int, **over: Any) -> dict[str, Any]:
    return {
        "amount": amount,
        "merchant_order_id": "SO-1001",
        "buyer": _buyer("approve"),
        "line_items": [{"name": "Pallet of widgets", "quantity": 2, "unit_amount": amount // 2}],
        "return_url": "https://shop.test/return",
        "cancel_url": "https://shop.test/cancel",
        "metadata": {"cart": "c-1"},
        **over,
    }


async def _personalities(post: Any, get: Any, h: dict[str, str]) -> dict[str, Any]:
    """The gateway, virtual-card and invoicing personalities' part; the gateway invoice."""
    invoice = {
        "number": "INV-1",
        "customer": {"name": "Acme", "email": "ap+defaults@acme.test"},
        "amount": 20_000,
    }
    inv = await post("/gateway/v1/invoices", invoice, h)
    await post(f"/gateway/v1/invoices/{inv['id']}/issue", {}, h)
    await get(f"/gateway/v1/invoices/{inv['id']}", h)
    await post("/gateway/v1/charges", {"invoice": inv["id"], "amount": 5_000}, h)
    card_inv = await post("/vcards/v1/invoices", {**invoice, "amount": 8_000}, h)
    await post(f"/vcards/v1/invoices/{card_inv['id']}/issue", {}, h)
    await post("/vcards/v1/cards", {"invoices": [{"invoice": card_inv["id"]}]}, h)
    edi = {
        "big": {"invoice_number": "EDI-1", "po_number": "PO-1"},
        "buyer": {"name": "Acme", "email": "ap+typo_reference@acme.test"},
        "itd": {"net_days": 1},
        "it1": [{"quantity": 1, "unit_price": 7_000}],
        "tds": {"amount": 7_000},
    }
    await post("/invoicing/v1/invoices", edi, h)
    return dict(inv)


async def _scenario(post: Any, get: Any, patch: Any, delete: Any) -> None:
    """The seeded sequence (each call records its response)."""
    r = await post("/_sandbox/accounts", {"name": "det", "seed": 11}, ADMIN)
    account = r["id"]
    h = {"Authorization": f"Bearer {r['api_key']}"}
    ep = await post("/v1/webhook_endpoints", {"url": HOOK}, h)
    await patch(f"/v1/webhook_endpoints/{ep['id']}", {"description": "all events"}, h)
    buyer = await post("/v1/buyers", {**_buyer("approve"), "external_id": "ext-1"}, h)
    await post("/v1/buyers", {**_buyer("approve"), "external_id": "ext-1"}, h)  # 409
    await post("/v1/prequalifications", {"buyer_id": buyer["id"], "currency": "USD"}, h)
    orders = []
    for amount, extra in ((125_000, {}), (40_000, {"buyer_id": buyer["id"], "buyer": None})):
        body = {k: v for k, v in _checkout(amount, **extra).items() if v is not None}
        chk = await post("/v1/checkouts", body, h)
        done = await post(f"/_sandbox/checkouts/{chk['id']}/approve", {"terms": "net30"}, ADMIN)
        orders.append(done["order_id"])
    third = await post("/v1/checkouts", _checkout(10_000, merchant_order_id="SO-3"), h)
    done = await post(f"/_sandbox/checkouts/{third['id']}/approve", {"terms": "net60"}, ADMIN)
    orders.append(done["order_id"])
    declined = await post("/v1/checkouts", _checkout(5_000, buyer=_buyer("decline")), h)
    await post(f"/_sandbox/checkouts/{declined['id']}/approve", {"terms": "net30"}, ADMIN)
    await post("/v1/checkouts", _checkout(6_000), h)  # left open: expires in the advance
    keyed = {**h, "Idempotency-Key": "key-1"}
    await post("/v1/checkouts", _checkout(7_000), keyed)
    await post("/v1/checkouts", _checkout(7_000), keyed)  # replayed
    await post("/v1/checkouts", _checkout(-1), h)  # 422
    first, second, third_order = orders
    await patch(f"/v1/orders/{first}", {"metadata": {"po": "PO-9"}}, h)
    await post(f"/v1/orders/{first}/captures", {"amount": 50_000}, h)
    await post(f"/v1/orders/{first}/captures", {"amount": 25_000}, h)
    await post(f"/v1/orders/{second}/captures", {}, h)
    await post(f"/v1/orders/{first}/refunds", {"amount": 1_000}, h)
    await post(f"/_sandbox/orders/{second}/disputes", {"amount": 500}, ADMIN)
    await post(f"/v1/orders/{third_order}/cancel", {}, h)
    await post(f"/v1/orders/{third_order}/captures", {"amount": 1}, h)  # 409
    await get(f"/v1/orders/{first}", h)
    await get(f"/v1/orders/{first}", h)  # again: a reused answer must be the same bytes
    await post(f"/v1/webhook_endpoints/{ep['id']}/rotate_secret", {}, h)
    inv = await _personalities(post, get, h)
    await post(f"/_sandbox/accounts/{account}/clock/advance", {"by": "3d"}, ADMIN)
    await post("/_sandbox/webhooks/flush", {}, ADMIN)
    await get("/v1/events?limit=100", h)
    await get("/v1/events?limit=100", h)  # again
    await get(f"/gateway/v1/invoices/{inv['id']}", h)  # after the advance: past due
    await delete(f"/v1/webhook_endpoints/{ep['id']}", h)


async def _record(db: str) -> list[dict[str, Any]]:
    import httpx  # noqa: PLC0415 - imported once `--tree` has chosen the checkout

    from simulator.app import create_app  # noqa: PLC0415 - see above
    from simulator.clock import ManualClock  # noqa: PLC0415 - see above
    from simulator.settings import Settings  # noqa: PLC0415 - see above

    records: list[dict[str, Any]] = []

    def hook(request: httpx.Request) -> httpx.Response:
        headers = {k: v for k, v in request.headers.items() if k not in TRANSPORT_HEADERS}
        records.append(
            {"webhook": str(request.url), "headers": headers, "body": request.content.decode()}
        )
        return httpx.Response(204)

    app = create_app(
        Settings(db=db, admin_token=ADMIN_TOKEN, seed=1, public_url="http://sandbank.test"),
        wall_clock=ManualClock(START),
        entropy=deterministic_entropy(),
        webhook_transport=httpx.MockTransport(hook),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbank.test") as c:

        async def call(method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
            r = await c.request(method, path, json=body, headers=headers)
            records.append(
                {
                    "request": f"{method} {path}",
                    "status": r.status_code,
                    "type": r.headers.get("content-type"),
                    "body": r.content.decode(),
                }
            )
            return r.json() if r.content else None

        async def post(path: str, body: Any, headers: dict[str, str]) -> Any:
            return await call("POST", path, body, headers)

        async def patch(path: str, body: Any, headers: dict[str, str]) -> Any:
            return await call("PATCH", path, body, headers)

        async def get(path: str, headers: dict[str, str]) -> Any:
            return await call("GET", path, None, headers)

        async def delete(path: str, headers: dict[str, str]) -> Any:
            return await call("DELETE", path, None, headers)

        await _scenario(post, get, patch, delete)
    app.runtime.store.close()
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT seq, id, type, object_id, typeof(data), data FROM events ORDER BY seq"
        ).fetchall()
    records += [
        {"event": seq, "id": i, "type": t, "object_id": o, "stored_as": k, "document": d}
        for seq, i, t, o, k, d in rows
    ]
    return records


def _first_difference(before: list[str], after: list[str]) -> str | None:
    for n, (b, a) in enumerate(zip(before, after, strict=False)):
        if b != a:
            return f"line {n + 1} differs:\n  before: {b[:600]}\n  after:  {a[:600]}"
    if len(before) != len(after):
        return f"{len(before)} records before, {len(after)} after"
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tree", help="import the simulator from this checkout instead")
    p.add_argument("--out", help="write the records here (JSON lines)")
    p.add_argument("--compare", help="records of another run: exit 1 on the first difference")
    args = p.parse_args()
    sys.path.insert(0, str(HERE))
    from post_cost import import_tree  # noqa: PLC0415 - bench/ is on the path only now

    import_tree(args.tree)
    with tempfile.TemporaryDirectory() as tmp:
        records = asyncio.run(_record(os.path.join(tmp, "det.db")))
    lines = [json.dumps(r, sort_keys=True) for r in records]
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    kinds = {k: sum(1 for r in records if k in r) for k in ("request", "event", "webhook")}
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
    print(
        f"{args.tree or 'this tree'}: {kinds['request']} responses, {kinds['event']} events, "
        f"{kinds['webhook']} webhook requests; sha256 {digest}"
    )
    if args.compare:
        before = Path(args.compare).read_text().splitlines()
        difference = _first_difference(before, lines)
        if difference is not None:
            print(f"determinism: differs from {args.compare}: {difference}")
            return 1
        print(f"determinism: byte-identical to {args.compare}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
