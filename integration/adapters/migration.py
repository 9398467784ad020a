"""Each provider's side of a migration (`sandbank integration migrate`), behind one shape:
`MigrationSide` reads the provider's full export into canonical `SideState`, replays an
obligation as it would exist there, and releases one it held. The orchestration, the plan and
the invariants are provider-neutral (`integration.migration`).

How each personality holds the three kinds of open obligation:

- authorized, not captured: embedded credit (`/v1`) an `authorized` order; gateway + net
  terms (`/gateway/v1`) a `draft` invoice; invoicing (`/invoicing/v1`) a purchase order's
  uninvoiced amount (POs are read from the API: the export has no file for them);
- captured, not repaid: an order's open repayments; an open invoice's collectible due; an
  EDI 810 invoice's amount due;
- open dispute: a dispute `needs_response` / `under_review` (embedded credit only).

Replayed at the target: an order is a checkout (the buyer by `external_id` = the canonical
buyer), approved as the buyer, captured in full for a receivable; an invoice is created
(number `migrated:<key>`) and issued in full for a receivable; at invoicing, a purchase order
(number `migrated:<key>`) for an authorized obligation, an EDI 810 invoice (BIG02
`migrated:<key>`, one IT1 line) for a receivable. Released at the source: an order is canceled
(authorized) or refunded by what is still owed (receivable: the provider that financed it is
paid back, the buyer's open repayments fall to 0); an invoice is voided (draft) or credited by
what is collectible; a purchase order is canceled, an EDI invoice gets a credit memo of its
amount due. What a source cannot release stays there: a dispute (the provider that captured
decides it), every obligation of an order under dispute, the unshipped rest of a partly shipped
order or invoice, the uninvoiced rest of a partly invoiced PO, an EDI invoice in collections or
defaulted (its dunning stays with the seller's provider), and the open invoices of a buyer with
unapplied cash at the source (apply it first: it may pay them). Virtual cards (`vcard`) are
the seller's invoices, shaped as the gateway's: what is on a card the buyer's AP issued and
not captured yet stays (no seller can re-issue the card elsewhere); the rest moves, and at a
virtual-cards target the buyer's AP pays the replayed invoice by a new card on its due date.

Every write carries an Idempotency-Key derived from the obligation and the step
(`migrate-<sha256(key, step)>`): a retry after a 503, a timeout or a lost response, or a second
run, can never create a second object.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import orjson

from integration.migration import (
    Contact,
    Holding,
    MigrationFailed,
    MigrationInputError,
    ObligationKind,
    SideState,
)

MIGRATABLE: Final = ("sandbank", "gateway", "invoicing", "vcard")
PERSONALITY: Final = {
    "sandbank": "native",
    "gateway": "gateway",
    "invoicing": "invoicing",
    "vcard": "vcards",
}
# The seller's invoices, alike at the gateway and at virtual cards: their API prefix.
INVOICE_PREFIX: Final = {"gateway": "/gateway/v1", "vcard": "/vcards/v1"}
TAG: Final = "migrated:"  # invoice numbers (and order merchant ids) of replayed obligations
RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
EXPORT_FILES: Final = (
    "orders",
    "captures",
    "refunds",
    "repayments",
    "disputes",
    "invoices",
    "charges",
    "edi_invoices",
    "remittances",
    "vcard_invoices",
    "vcard_allocations",
    "token_migration",
)
TOKEN_CHUNK: Final = 500
_OPEN_REPAYMENTS = ("scheduled", "late")
_OPEN_DISPUTES = ("needs_response", "under_review")


def step_key(key: str, step: str) -> str:
    """The Idempotency-Key of one step of one obligation: the same in every run."""
    return "migrate-" + hashlib.sha256(f"{key}\x1f{step}".encode()).hexdigest()[:40]


@dataclass
class CallStats:
    requests: int = 0
    retries: int = 0


class Http:
    """One provider's HTTP edge for the migration: retries 429/5xx, timeouts and broken
    connections with the same Idempotency-Key, at most `max_attempts` times per call and
    `max_total_s` in all; a 4xx is final (`MigrationFailed`, or `MigrationInputError` for a
    refused key)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        admin_token: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 10.0,
        max_attempts: int = 8,
        max_total_s: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key, self.admin_token = api_key, admin_token
        self.max_attempts, self.max_total_s, self.sleep = max_attempts, max_total_s, sleep
        self.stats = CallStats()
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=httpx.Timeout(timeout_s), transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        key: str | None = None,
        admin: bool = False,
        params: Mapping[str, str | int] | None = None,
        ok: Sequence[int] = (),
    ) -> httpx.Response:
        token = self.admin_token if admin else self.api_key
        if admin and not token:
            raise MigrationInputError(f"{self.base_url}: an admin token is needed for {path}")
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        started = time.monotonic()
        for attempt in range(1, self.max_attempts + 1):
            self.stats.requests += 1
            retry_after = 0.0
            try:
                r = await self._http.request(
                    method, path, json=json, headers=headers, params=params
                )
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if r.status_code < 400 or r.status_code in ok:
                    return r
                code = _code(r)
                if r.status_code not in RETRY_STATUSES and code != "idempotency_key_in_use":
                    if r.status_code in (401, 403):
                        raise MigrationInputError(
                            f"{self.base_url} refused the credentials ({r.status_code}: "
                            f"{_detail(r)})"
                        )
                    raise MigrationFailed(
                        f"{method} {path}: {r.status_code} {code}: {_detail(r)}", r.status_code
                    )
                problem = f"{r.status_code} {code}"
                retry_after = min(_retry_after(r), 2.0)
            spent = time.monotonic() - started
            if attempt == self.max_attempts or spent > self.max_total_s:
                raise MigrationFailed(
                    f"{method} {path}: gave up after {attempt} attempts ({problem})", 503
                )
            self.stats.retries += 1
            await self.sleep(max(retry_after, min(0.02 * 2**attempt, 1.0)))
        raise AssertionError("unreachable")  # pragma: no cover

    async def json(self, method: str, path: str, **kw: Any) -> Any:
        return (await self.call(method, path, **kw)).json()


def _code(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return ""
    return str(body.get("code", "")) if isinstance(body, dict) else ""


def _detail(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.reason_phrase
    return str(body.get("detail") or r.reason_phrase) if isinstance(body, dict) else ""


def _retry_after(r: httpx.Response) -> float:
    try:
        return float(r.headers.get("retry-after", "0"))
    except ValueError:
        return 0.0


async def read_export(http: Http) -> dict[str, list[dict[str, Any]]]:
    """The account's full export (JSON lines), the files the migration reads."""
    export = await http.json("POST", "/v1/exports", json={"format": "jsonl"})
    names = {f["name"] for f in export["files"]}
    out: dict[str, list[dict[str, Any]]] = {}
    for name in EXPORT_FILES:
        file = f"{name}.jsonl"
        if file not in names:
            out[name] = []
            continue
        body = await http.call("GET", f"/v1/exports/{export['id']}/files/{file}")
        out[name] = [orjson.loads(line) for line in body.content.splitlines() if line]
    return out


@dataclass
class MigrationSide:
    """One provider in a migration. `personality` names its tokens at the vault."""

    provider: str
    http: Http
    account: str | None = None
    contacts: dict[str, Contact] = field(default_factory=dict)

    @property
    def personality(self) -> str:
        return PERSONALITY[self.provider]

    async def state(self) -> SideState:
        files = await read_export(self.http)
        if self.provider in INVOICE_PREFIX:
            return _gateway_state(files, self.provider)
        if self.provider == "invoicing":  # purchase orders are not in the export: the API
            return _invoicing_state(files, await self._list("/invoicing/v1/purchase_orders"))
        for b in await self._list("/v1/buyers"):
            self.contacts[b["id"]] = Contact(b["legal_name"], b["email"], "card")
        return _native_state(files, self.contacts)

    async def _list(self, path: str) -> list[dict[str, Any]]:
        """Every object of a cursor-paged list."""
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": 100}
            if cursor:
                params["cursor"] = cursor
            page = await self.http.json("GET", path, params=params)
            out += page["data"]
            cursor = page.get("next_cursor")
            if not page.get("has_more") or not cursor:
                return out

    async def import_tokens(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
        """Import the source's token rows into this provider's vault: old -> new token."""
        if self.account is None:
            raise MigrationInputError(
                "the target account (--to-account) is needed to import tokens"
            )
        mapping: dict[str, str] = {}
        for start in range(0, len(rows), TOKEN_CHUNK):
            chunk = [dict(r) for r in rows[start : start + TOKEN_CHUNK]]
            body = await self.http.json(
                "POST",
                f"/_sandbox/accounts/{self.account}/token_import",
                json={"personality": self.personality, "tokens": chunk},
                admin=True,
            )
            mapping.update({m["source_token"]: m["token"] for m in body["map"]})
        return mapping

    async def replay(self, h: Holding, contact: Contact) -> str:
        """Make the obligation exist here; returns the object that holds it."""
        if self.provider in INVOICE_PREFIX:
            return await self._replay_invoice(h, contact)
        if self.provider == "invoicing":
            return await self._replay_edi(h, contact)
        return await self._replay_order(h, contact)

    async def _replay_edi(self, h: Holding, contact: Contact) -> str:
        """A purchase order on file (authorized) or an EDI 810 sent (receivable). EDI has no
        metadata: the buyer's imported token is in the vault, not named on the document."""
        buyer = {"name": contact.name, "id": h.buyer, "email": contact.email}
        if h.kind is ObligationKind.AUTHORIZED:
            body: dict[str, Any] = {
                "number": TAG + h.key,
                "buyer": buyer,
                "amount": h.amount,
                "currency": h.currency,
            }
            path = "/invoicing/v1/purchase_orders"
        else:
            body = {
                "big": {"invoice_number": TAG + h.key},
                "currency": h.currency,
                "buyer": buyer,
                "it1": [{"quantity": 1, "unit_price": h.amount}],
                "tds": {"amount": h.amount},
            }
            path = "/invoicing/v1/invoices"
        made = await self.http.json("POST", path, key=step_key(h.key, "create"), json=body)
        return str(made["id"])

    async def _replay_invoice(self, h: Holding, contact: Contact) -> str:
        """An invoice, issued in full for a receivable. At virtual cards the buyer's AP pays it
        on its due date by a card it issues there."""
        prefix = INVOICE_PREFIX[self.provider]
        customer = {"name": contact.name, "email": contact.email, "external_id": h.buyer}
        if self.provider == "gateway":
            customer["payment_method"] = "ach" if contact.payment_method == "ach" else "card"
        invoice = await self.http.json(
            "POST",
            f"{prefix}/invoices",
            key=step_key(h.key, "create"),
            json={
                "number": TAG + h.key,
                "amount": h.amount,
                "currency": h.currency,
                "net_days": 30,
                "customer": customer,
                "metadata": _metadata(h, contact),
            },
        )
        if h.kind is ObligationKind.RECEIVABLE:
            await self.http.call(
                "POST",
                f"{prefix}/invoices/{invoice['id']}/issue",
                json={},
                key=step_key(h.key, "issue"),
            )
        return str(invoice["id"])

    async def _replay_order(self, h: Holding, contact: Contact) -> str:
        checkout = await self.http.json(
            "POST",
            "/v1/checkouts",
            key=step_key(h.key, "checkout"),
            json={
                "amount": h.amount,
                "currency": h.currency,
                "merchant_order_id": TAG + h.key,
                "buyer": {
                    "legal_name": contact.name,
                    "email": contact.email,
                    "external_id": h.buyer,
                },
                "return_url": "https://migration.invalid/return",
                "cancel_url": "https://migration.invalid/cancel",
                "metadata": _metadata(h, contact),
            },
        )
        if checkout.get("status") == "open":
            await self.http.call(
                "POST",
                f"/_sandbox/checkouts/{checkout['id']}/approve",
                json={"terms": "net30"},
                admin=True,
                ok=(409,),
            )
            checkout = await self.http.json("GET", f"/v1/checkouts/{checkout['id']}")
        order_id = checkout.get("order_id")
        if not order_id:
            raise MigrationFailed(
                f"the buyer {h.buyer} was not approved at the target ({checkout.get('status')})",
                409,
            )
        order = await self.http.json("GET", f"/v1/orders/{order_id}")
        if order["status"] != "authorized":
            raise MigrationFailed(f"order {order_id} at the target is {order['status']}", 409)
        if h.kind is ObligationKind.RECEIVABLE:
            await self.http.call(
                "POST",
                f"/v1/orders/{order_id}/captures",
                json={"amount": h.amount, "final": True},
                key=step_key(h.key, "capture"),
            )
        return str(order_id)

    async def release(self, h: Holding) -> None:
        """Close the obligation here (it now lives at the target)."""
        path, extra = _RELEASE[(self.provider, h.kind)]
        body = {**extra, "amount": h.amount} if h.kind is ObligationKind.RECEIVABLE else extra
        await self.http.call(
            "POST", path.format(ref=h.ref), json=body, key=step_key(h.key, "release")
        )


# How each personality releases an obligation: the call, and what its body says beside the
# amount (a receivable's release gives back exactly what is still owed).
_RELEASE: Final[Mapping[tuple[str, ObligationKind], tuple[str, dict[str, Any]]]] = {
    ("gateway", ObligationKind.AUTHORIZED): ("/gateway/v1/invoices/{ref}/void", {}),
    ("gateway", ObligationKind.RECEIVABLE): ("/gateway/v1/invoices/{ref}/credit_notes", {}),
    ("invoicing", ObligationKind.AUTHORIZED): (
        "/invoicing/v1/purchase_orders/{ref}/cancel",
        {"reason": "migrated to another provider"},
    ),
    ("invoicing", ObligationKind.RECEIVABLE): (
        "/invoicing/v1/invoices/{ref}/credit_memos",
        {"reason": "migrated to another provider"},
    ),
    ("vcard", ObligationKind.AUTHORIZED): ("/vcards/v1/invoices/{ref}/void", {}),
    ("vcard", ObligationKind.RECEIVABLE): ("/vcards/v1/invoices/{ref}/credit_notes", {}),
    ("sandbank", ObligationKind.AUTHORIZED): ("/v1/orders/{ref}/cancel", {}),
    ("sandbank", ObligationKind.RECEIVABLE): (
        "/v1/orders/{ref}/refunds",
        {"reason": "migrated to another provider"},
    ),
}


def _metadata(h: Holding, contact: Contact) -> dict[str, str]:
    """What a replayed object carries: its obligation, its buyer and the buyer's imported
    payment token (`payment_token`, when the source had one)."""
    out = {"migration_key": h.key, "migration_buyer": h.buyer}
    if contact.token:
        out["payment_token"] = contact.token
    return out


def _tag(text: str | None) -> str | None:
    return text[len(TAG) :] if text and text.startswith(TAG) else None


def _tokens(files: Mapping[str, list[dict[str, Any]]]) -> tuple[dict[str, Any], ...]:
    return tuple(files.get("token_migration", []))


def _native_state(
    files: Mapping[str, list[dict[str, Any]]], contacts: Mapping[str, Contact]
) -> SideState:
    orders = {o["id"]: o for o in files.get("orders", [])}
    disputed = {d["order_id"] for d in files.get("disputes", []) if d["status"] in _OPEN_DISPUTES}
    owed: dict[str, int] = defaultdict(int)
    for r in files.get("repayments", []):
        if r["status"] in _OPEN_REPAYMENTS and r["amount"] > 0:
            owed[r["order_id"]] += r["amount"]
    held: list[Holding] = []
    tagged: list[tuple[str, str]] = []

    def who(o: dict[str, Any]) -> tuple[str, Contact]:
        buyer = o["metadata"].get("migration_buyer") or o["buyer_id"]
        return buyer, contacts.get(o["buyer_id"], Contact(buyer, f"{buyer}@buyers.invalid", "card"))

    for o in orders.values():
        tag = o["metadata"].get("migration_key") or _tag(o.get("merchant_order_id"))
        if tag:
            tagged.append((tag, o["id"]))
        buyer, contact = who(o)
        if o["capturable_amount"] > 0 and o["status"] in ("authorized", "partially_captured"):
            fresh = o["status"] == "authorized" and o["id"] not in disputed
            key = tag if tag and fresh else f"authorized:{o['id']}"
            held.append(
                Holding(
                    key,
                    ObligationKind.AUTHORIZED,
                    buyer,
                    o["currency"],
                    o["capturable_amount"],
                    o["id"],
                    movable=fresh,
                    contact=contact,
                )
            )
        if owed.get(o["id"]):
            key = tag or f"receivable:{o['id']}"
            held.append(
                Holding(
                    key,
                    ObligationKind.RECEIVABLE,
                    buyer,
                    o["currency"],
                    owed[o["id"]],
                    o["id"],
                    movable=o["id"] not in disputed,
                    contact=contact,
                )
            )
    for d in files.get("disputes", []):
        if d["status"] in _OPEN_DISPUTES:
            disputed_order = orders.get(d["order_id"])
            buyer = who(disputed_order)[0] if disputed_order else d["buyer_id"]
            held.append(
                Holding(
                    f"dispute:{d['id']}",
                    ObligationKind.DISPUTE,
                    buyer,
                    d["currency"],
                    d["amount"],
                    d["id"],
                    movable=False,
                )
            )
    history = tuple(
        [f"capture:{c['id']}" for c in files.get("captures", [])]
        + [f"refund:{r['id']}" for r in files.get("refunds", [])]
    )
    return SideState(tuple(held), tuple(tagged), history, _tokens(files))


def _gateway_state(files: Mapping[str, list[dict[str, Any]]], provider: str) -> SideState:
    """The seller's invoices (gateway, or virtual cards: the same shape). At virtual cards,
    what is on a card not captured yet (`carded_amount`) stays: the card is the buyer's AP's,
    only this provider can capture it, no seller can re-issue it elsewhere."""
    held: list[Holding] = []
    tagged: list[tuple[str, str]] = []
    vcard = provider == "vcard"
    for i in files.get("vcard_invoices" if vcard else "invoices", []):
        tag = _tag(i["number"])
        if tag:
            tagged.append((tag, i["id"]))
        buyer = i["customer_external_id"] or i["customer_email"]
        method = "card" if vcard else i["payment_method"]
        contact = Contact(i["customer_name"], i["customer_email"], method)
        if i["status"] == "draft":
            held.append(
                Holding(
                    tag or f"authorized:{i['id']}",
                    ObligationKind.AUTHORIZED,
                    buyer,
                    i["currency"],
                    i["amount"],
                    i["id"],
                    contact=contact,
                )
            )
            continue
        if i["status"] in ("open", "paid") and i["amount"] > i["issued_amount"]:
            held.append(
                Holding(
                    f"authorized:{i['id']}",
                    ObligationKind.AUTHORIZED,
                    buyer,
                    i["currency"],
                    i["amount"] - i["issued_amount"],
                    i["id"],
                    movable=False,
                    contact=contact,
                )
            )
        carded = i.get("carded_amount", 0) if i["status"] == "open" else 0
        if carded > 0:
            held.append(
                Holding(
                    f"authorized:card:{i['id']}",
                    ObligationKind.AUTHORIZED,
                    buyer,
                    i["currency"],
                    carded,
                    i["id"],
                    movable=False,
                    contact=contact,
                    stays_because="on a virtual card of the buyer's AP: only this provider "
                    "can capture it",
                )
            )
        collectible = i["amount_due"] - i["pending_amount"] - carded
        if i["status"] == "open" and collectible > 0:
            held.append(
                Holding(
                    tag or f"receivable:{i['id']}",
                    ObligationKind.RECEIVABLE,
                    buyer,
                    i["currency"],
                    collectible,
                    i["id"],
                    contact=contact,
                )
            )
    history = tuple(
        [f"charge:{c['id']}" for c in files.get("charges", [])]
        if not vcard
        else [f"card_payment:{a['id']}" for a in files.get("vcard_allocations", [])]
    )
    return SideState(tuple(held), tuple(tagged), history, _tokens(files))


def _invoicing_state(
    files: Mapping[str, list[dict[str, Any]]], purchase_orders: Sequence[dict[str, Any]]
) -> SideState:
    """A PO's uninvoiced amount is authorized (movable only while nothing is invoiced against
    it: the PO is then canceled); an EDI invoice's amount due is a receivable (movable while
    `open` and its buyer has no unapplied cash here)."""
    held: list[Holding] = []
    tagged: list[tuple[str, str]] = []
    for po in purchase_orders:
        tag = _tag(po["number"])
        if tag:
            tagged.append((tag, po["id"]))
        rest = po["amount"] - po["invoiced_amount"]
        if po["status"] != "open" or rest <= 0:
            continue
        b = po["buyer"]
        held.append(
            Holding(
                tag if tag and not po["invoiced_amount"] else f"authorized:{po['id']}",
                ObligationKind.AUTHORIZED,
                b["external_id"] or b["email"].lower(),
                po["currency"],
                rest,
                po["id"],
                movable=not po["invoiced_amount"],
                contact=Contact(b["name"], b["email"], "ach"),
                stays_because="the uninvoiced rest of a partly invoiced purchase order",
            )
        )
    unapplied = {r["buyer_name"] for r in files.get("remittances", []) if r["unapplied_amount"]}
    for i in files.get("edi_invoices", []):
        tag = _tag(i["number"])
        if tag:
            tagged.append((tag, i["id"]))
        if i["status"] not in ("open", "collections", "defaulted") or i["amount_due"] <= 0:
            continue
        why = (
            f"{i['status']} at the source: its dunning stays there"
            if i["status"] != "open"
            else "the buyer has unapplied cash at the source: apply it first"
            if i["buyer_name"] in unapplied
            else ""
        )
        held.append(
            Holding(
                tag or f"receivable:{i['id']}",
                ObligationKind.RECEIVABLE,
                i["buyer_external_id"] or i["buyer_email"].lower(),
                i["currency"],
                i["amount_due"],
                i["id"],
                movable=not why,
                contact=Contact(i["buyer_name"], i["buyer_email"], "ach"),
                stays_because=why,
            )
        )
    history = tuple(f"remittance:{r['id']}" for r in files.get("remittances", []))
    return SideState(tuple(held), tuple(tagged), history, _tokens(files))
