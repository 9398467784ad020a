"""The approaches compared on numbers: one seeded book of business through every adapter.

`sandbank integration compare` (or `compare()`) plans a book of business from a seed: N orders
from buyers with a mix of behaviours (pays on time, late, half late, defaults), some shipped in
two parts, some partly refunded, some disputed. Each approach gets its own simulator account
(same seed, its clock set to a Monday 09:00 so the business-day calendar is the same) and its
own reference integration in this process (the real `OrderToCash`, ledger, inbox, events
poller, resumer and ticket sink, with a fake support desk), and the book runs through it on the
account's virtual clock for `days`. Then, per approach:

- **provider calls per order**: every HTTP request the adapter made (placing, shipping,
  refunding, polling events, reconciling), over the orders;
- **reconciliation discrepancies**: what one reconciliation at the end finds that needs a
  person (every kind but `late`: money still in transit is not work);
- **days shipment → cash**: from an order's first shipment to the payout that paid the seller
  its money, weighted by the amounts (only what was paid out by the end);
- **provider fees**: the settlements' fees, and their share of what was shipped;
- **seller's risk**: the share of net sales (shipped less refunded) the seller carried: all
  that no provider paid it for on shipment, plus the disputes it lost;
- **unpaid at the end**: net sales the seller had no cash for when the run ended;
- **support tickets**: collections and dispute cases the sink opened at the desk (and how
  many it escalated as defaults).

Everything is seeded (the book, the accounts, the idempotency keys) and every wait is on a
manual clock, so the same seed gives the same table. Nothing here names a provider: the
approaches come from `integration.adapters.approaches`.
"""

from __future__ import annotations

import html
import json
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

import fakes
from integration.adapters import (
    PROVIDERS,
    TICKET_SYSTEMS,
    AuthorizationStatus,
    Buyer,
    LineItem,
    PlaceOrder,
    gl_mapping_path,
    make_adapter,
    make_ticket_system,
)
from integration.adapters.approaches import Approach, approaches
from integration.client import ProviderRejected, ProviderUnavailable
from integration.gl_mapping import load
from integration.inbox import Inbox
from integration.ledger import Ledger
from integration.model import LineKind, Money, Settlement
from integration.orders import ErpState, OrderBook
from integration.ordertocash import OrderToCash
from integration.reconcile import DiscrepancyKind
from integration.settlements import run_reconciliation
from integration.store import IntegrationStore
from integration.tickets import TicketSink

BEHAVIOURS = ("pays_on_time", "pays_late", "pays_partial", "defaults")
CURRENCY = "USD"


class CompareError(RuntimeError):
    """The comparison cannot run (the simulator refused or is unreachable): one line."""


@dataclass(frozen=True, slots=True)
class Mix:
    """The book's shares (0..1): buyer behaviours, then what happens to orders."""

    late: float = 0.2
    partial: float = 0.1
    defaults: float = 0.05
    split: float = 0.3  # shipped in two parts
    refunds: float = 0.15  # a fifth refunded after shipping
    disputes: float = 0.1  # half disputed by the buyer (where the approach has disputes)


@dataclass(frozen=True, slots=True)
class PlannedOrder:
    merchant_order_id: str
    amount: int
    behaviour: str
    shipments: tuple[int, ...]
    refund: int
    dispute: int
    # 0..1, from its own seeded stream: which of the approach's habits an on-time buyer has
    # (`Approach.tag`), the same buyer under every approach
    ap_roll: float = 1.0


def plan(seed: int, orders: int, mix: Mix = Mix()) -> tuple[PlannedOrder, ...]:
    """The book of business of `seed`: the same orders for every approach."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible book, not a secret
    habits = random.Random(f"habits:{seed}")  # noqa: S311 - apart, so the book stays the same
    book = []
    for i in range(1, orders + 1):
        amount = rng.randrange(10_000, 250_000, 100)
        r = rng.random()
        behaviour = BEHAVIOURS[0]
        for name, share in zip(BEHAVIOURS[1:], (mix.late, mix.partial, mix.defaults), strict=True):
            if r < share:
                behaviour = name
                break
            r -= share
        first = amount * 60 // 100 if rng.random() < mix.split else amount
        shipments = (first, amount - first) if first < amount else (amount,)
        refund = amount // 5 if rng.random() < mix.refunds else 0
        dispute = amount // 2 if not refund and rng.random() < mix.disputes else 0
        book.append(
            PlannedOrder(
                f"SO-{i:05d}", amount, behaviour, shipments, refund, dispute, habits.random()
            )
        )
    return tuple(book)


@dataclass(frozen=True, slots=True)
class Simulator:
    """Where the simulator is: its URL, the control plane's token, and (tests) a transport."""

    base_url: str
    admin_token: str
    transport: httpx.AsyncBaseTransport | None = None


@dataclass(frozen=True, slots=True)
class Figures:
    approach: str
    label: str
    risk_carrier: str
    orders: int
    placed: int  # orders the provider accepted
    provider_calls: int
    calls_per_order: float
    discrepancies: int  # needing a person
    discrepancy_kinds: dict[str, int]
    shipped: int  # minor units
    refunded: int
    cash: int  # paid out to the seller by the end
    days_to_cash: float | None
    fees: int
    fee_bps: int  # fees over shipped, basis points
    seller_risk: int
    seller_risk_share: float  # percent of net sales
    unpaid: int
    tickets: int
    tickets_by_kind: dict[str, int]
    escalated: int
    buyers: dict[str, int]  # the buyers' magic values under this approach, and how many
    desk_calls: int
    disputes_opened: int
    disputes_unsupported: int  # disputes the approach has no way to raise
    # False: the approach's API publishes no settlements, so cash, fees and risk cannot be
    # measured through it (shown n/a)
    settlements_reported: bool = True


@dataclass(frozen=True, slots=True)
class Comparison:
    seed: int
    orders: int
    days: int
    mix: Mix
    figures: tuple[Figures, ...]

    def json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "orders": self.orders,
            "days": self.days,
            "currency": CURRENCY,
            "mix": asdict(self.mix),
            "approaches": [asdict(f) for f in self.figures],
        }

    def rows(self) -> list[list[str]]:
        head = [
            "approach",
            "orders accepted",
            "calls/order",
            "recon. discrepancies",
            "days ship→cash",
            "provider fees",
            "seller's risk",
            f"unpaid at day {self.days}",
            "tickets",
        ]
        rows = [head]
        for f in self.figures:
            kinds = ", ".join(f"{n} {k}" for k, n in sorted(f.tickets_by_kind.items()))
            seen = f.settlements_reported
            rows.append(
                [
                    f.label,
                    f"{f.placed}/{f.orders}",
                    f"{f.calls_per_order:.1f}",
                    str(f.discrepancies) if seen else "n/a (no settlements)",
                    "n/a" if f.days_to_cash is None else f"{f.days_to_cash:.1f}",
                    f"{_major(f.fees)} ({f.fee_bps / 100:.2f} %)" if seen else "n/a",
                    f"{f.seller_risk_share:.1f} % ({_major(f.seller_risk)})" if seen else "n/a",
                    _major(f.unpaid) if seen else "n/a",
                    f"{f.tickets}" + (f" ({kinds})" if kinds else ""),
                ]
            )
        return rows

    def render_text(self) -> str:
        rows = self.rows()
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [
            f"{self.orders} orders, seed {self.seed}, {self.days} days on the virtual clock "
            f"(amounts in {CURRENCY})"
        ]
        for n, row in enumerate(rows):
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def render_markdown(self) -> str:
        rows = self.rows()
        out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n".join(out)

    def render_html(self) -> str:
        rows = self.rows()
        head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:]
        )
        title = html.escape(self.render_text().splitlines()[0])
        return (
            "<!doctype html><meta charset=utf-8><title>Approaches compared</title>"
            "<style>body{font-family:sans-serif}td,th{padding:4px 10px;text-align:left}"
            "tr:nth-child(even){background:#f3f3f3}</style>"
            f"<h1>Approaches compared</h1><p>{title}</p><table><tr>{head}</tr>{body}</table>"
        )


def _major(amount: int) -> str:
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    return f"{sign}{amount // 100:,}.{amount % 100:02d}"


class Counting(httpx.AsyncBaseTransport):
    """Counts the requests through `inner` (the integration's calls to one service)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class _Run:
    """One approach's run: its account, its clock and its integration."""

    approach: Approach
    sim: Simulator
    control: httpx.AsyncClient
    account_id: str = ""
    now: datetime = field(default_factory=lambda: datetime.min.replace(tzinfo=UTC))
    monotonic: float = 0.0
    ship_at: dict[str, datetime] = field(default_factory=dict)

    def wall(self) -> datetime:
        return self.now

    def clock(self) -> float:
        return self.monotonic

    async def sleep(self, seconds: float) -> None:
        self.monotonic += seconds

    async def admin(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        try:
            r = await self.control.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise CompareError(f"the simulator at {self.sim.base_url}: {exc}") from None
        if r.status_code >= 400:
            raise CompareError(f"{method} {path}: {r.status_code} {r.text[:200]}")
        data: dict[str, Any] = r.json()
        return data

    async def advance(self, **when: str) -> None:
        clock = await self.admin(
            "POST", f"/_sandbox/accounts/{self.account_id}/clock/advance", when
        )
        self.now = datetime.fromisoformat(clock["now"])


async def run_approach(
    sim: Simulator,
    approach: Approach,
    book: Sequence[PlannedOrder],
    *,
    seed: int,
    workdir: Path,
    days: int = 90,
    step_days: int = 7,
    desk: str = TICKET_SYSTEMS[0],
) -> Figures:
    """The book through one approach (its own account, database and fake desk)."""
    control = httpx.AsyncClient(
        base_url=sim.base_url,
        transport=sim.transport,
        headers={"Authorization": f"Bearer {sim.admin_token}"},
        timeout=60.0,
    )
    run = _Run(approach, sim, control)
    try:
        return await _run(
            run, book, seed=seed, workdir=workdir, days=days, step_days=step_days, desk=desk
        )
    finally:
        await control.aclose()


async def _run(
    run: _Run,
    book: Sequence[PlannedOrder],
    *,
    seed: int,
    workdir: Path,
    days: int,
    step_days: int,
    desk: str,
) -> Figures:
    approach = run.approach
    account = await run.admin(
        "POST", "/_sandbox/accounts", {"name": f"compare-{approach.provider}-{seed}", "seed": seed}
    )
    run.account_id = account["id"]
    detail = await run.admin("GET", f"/_sandbox/accounts/{run.account_id}")
    clock = await run.admin("POST", f"/_sandbox/accounts/{run.account_id}/clock/freeze")
    now = datetime.fromisoformat(clock["now"])
    monday = now.date() + timedelta(days=7 - now.weekday())
    await run.advance(to=f"{monday.isoformat()}T09:00:00Z")
    start = run.now

    db = workdir / f"{approach.provider}.db"
    keys = random.Random(seed)  # noqa: S311 - reproducible idempotency keys
    store = IntegrationStore(db, new_key=lambda: f"ik_{keys.getrandbits(64):016x}", now=run.wall)
    provider_wire = Counting(run.sim.transport or httpx.AsyncHTTPTransport())
    adapter = make_adapter(
        approach.config(run.sim.base_url, {**account, **detail}),
        store=store,
        now=run.wall,
        clock=run.clock,
        sleep=run.sleep,
        random=lambda: 0.5,
        transport=provider_wire,
    )
    desk_app, credentials = fakes.desk(desk, run.wall)
    desk_wire = Counting(httpx.ASGITransport(app=desk_app))
    system = make_ticket_system(
        {"system": desk, "base_url": "http://desk.test", **credentials},
        store=store,
        now=run.wall,
        clock=run.clock,
        sleep=run.sleep,
        random=lambda: 0.5,
        transport=desk_wire,
    )
    orders = OrderBook(db)
    ledger = Ledger.sqlite(db, load(gl_mapping_path(approach.provider)))
    inbox = Inbox(db, clock=run.wall)
    sink = TicketSink(system, db, clock=run.wall)
    service = OrderToCash(
        adapter, orders, ledger, clock=run.wall, drive_budget_s=None, tickets=sink
    )

    async def catch_up() -> None:
        await service.poll_events(inbox)
        while await service.process_events(inbox, limit=1000):
            pass
        await service.resume()

    try:
        placed = [o for i, o in enumerate(book, 1) if await _place(run, service, o, i)]
        for o in placed:
            await service.ship(o.merchant_order_id, o.shipments[0])
            run.ship_at[o.merchant_order_id] = run.now
        await run.advance(by="2d")
        await catch_up()
        for o in placed:  # a fifth back (less than the first shipment)
            if o.refund:
                await service.refund(o.merchant_order_id, o.refund)
        await run.advance(by="1d")
        for o in placed:
            if len(o.shipments) > 1:
                await service.ship(o.merchant_order_id, o.shipments[1])
        opened, unsupported = await _disputes(run, orders, placed)
        while run.now < start + timedelta(days=days):
            left = start + timedelta(days=days) - run.now
            await run.advance(by=f"{min(step_days * 86_400, int(left.total_seconds()))}s")
            await catch_up()
        reconciliation = await run_reconciliation(adapter, ledger, orders, limit=None)
        return _figures(
            run,
            book=book,
            placed=placed,
            orders=orders,
            settlements=reconciliation.settlements,
            discrepancies=[]
            if reconciliation.report is None
            else [d.kind for d in reconciliation.report.discrepancies],
            provider_calls=provider_wire.calls,
            desk_calls=desk_wire.calls,
            sink=sink,
            disputes=(opened, unsupported),
        )
    finally:
        await adapter.client.aclose()  # type: ignore[attr-defined]
        await system.aclose()
        for closable in (sink, inbox, ledger, orders, store):
            closable.close()


async def _place(run: _Run, service: OrderToCash, o: PlannedOrder, i: int) -> bool:
    """Place the order; where the provider asks the buyer, the buyer accepts. True when the
    order is authorized."""
    buyer = Buyer(
        # The behaviour as a magic value in the name, the credit decision in the email.
        legal_name=f"Buyer {i} Supply Co [{run.approach.tag(o.behaviour, o.ap_roll)}]",
        email=f"ap+approve@buyer{i}.test",
        annual_revenue=500_000_000,
        years_in_business=12,
        external_id=f"CUST-{i:05d}",
    )
    placed = PlaceOrder(
        o.merchant_order_id,
        Money(o.amount, CURRENCY),
        buyer,
        "https://shop.test/return",
        "https://shop.test/cancel",
        (LineItem("Pallet of widgets", 1, o.amount),),
    )
    outcome = await service.place_order(placed)
    order = outcome.order
    if order.erp_state is ErpState.AWAITING_BUYER and order.provider_checkout_id:
        await run.admin(
            "POST", f"/_sandbox/checkouts/{order.provider_checkout_id}/approve", {"terms": "net30"}
        )
        await service.get_order(o.merchant_order_id)
    order = service.book.get(o.merchant_order_id)
    if order.provider_order_id is None:
        return False
    status = (await service.adapter.get_authorization(order.provider_order_id)).status
    if status == AuthorizationStatus.PENDING:
        # In the underwriter's review (a behaviour the approach scores): approve it.
        await run.admin(
            "POST", f"/_sandbox/orders/{order.provider_order_id}/review", {"decision": "approve"}
        )
        await service.get_order(o.merchant_order_id)
        status = (await service.adapter.get_authorization(order.provider_order_id)).status
    # The provider's word, not only the ERP's: an order it declined is not in the book.
    return status == AuthorizationStatus.AUTHORIZED


async def _disputes(
    run: _Run, orders: OrderBook, placed: Sequence[PlannedOrder]
) -> tuple[int, int]:
    """The buyers' disputes, through the simulator's buyer actions: (opened, unsupported)."""
    opened = unsupported = 0
    for o in placed:
        if not o.dispute:
            continue
        provider_order_id = orders.get(o.merchant_order_id).provider_order_id
        r = await run.control.post(
            f"/_sandbox/orders/{provider_order_id}/disputes",
            json={"reason": "product_not_received", "amount": o.dispute},
        )
        if r.status_code == 201:
            opened += 1
        else:  # the approach's orders cannot be disputed (no chargebacks simulated there)
            unsupported += 1
    return opened, unsupported


def _figures(
    run: _Run,
    *,
    book: Sequence[PlannedOrder],
    placed: Sequence[PlannedOrder],
    orders: OrderBook,
    settlements: Sequence[Settlement],
    discrepancies: Sequence[DiscrepancyKind],
    provider_calls: int,
    desk_calls: int,
    sink: TicketSink,
    disputes: tuple[int, int],
) -> Figures:
    erp = orders.orders()
    shipped = sum(o.shipped for o in erp)
    refunded = sum(o.refunded for o in erp)
    merchant_of = {o.provider_order_id: o.merchant_order_id for o in erp if o.provider_order_id}
    cash = provider_funded = dispute_net = fees = 0
    weighted_days = 0.0
    cash_in = 0
    for s in settlements:
        fees += s.fees
        for line in s.lines:
            if line.kind in (LineKind.CAPTURE, LineKind.REFUND):
                provider_funded += line.gross
            if line.kind is LineKind.DISPUTE:
                dispute_net += line.gross
            if s.status != "paid" or line.kind in (LineKind.FEE, LineKind.CARRY_FORWARD):
                continue
            cash += line.gross
            mid = merchant_of.get(line.provider_order_id or "") or line.merchant_order_id
            shipped_at = run.ship_at.get(mid or "")
            if line.gross > 0 and line.kind in (LineKind.CAPTURE, LineKind.PAYMENT) and shipped_at:
                paid_at = s.paid_at or datetime.combine(
                    s.payout_date or run.now.date(), datetime.min.time(), run.now.tzinfo
                )
                weighted_days += line.gross * (paid_at - shipped_at).total_seconds() / 86_400
                cash_in += line.gross
    exposure = shipped - refunded
    seller_risk = max(0, exposure - provider_funded) + max(0, -dispute_net)
    cases = sink.cases()
    return Figures(
        approach=run.approach.provider,
        label=run.approach.label,
        risk_carrier=run.approach.risk_carrier,
        orders=len(book),
        placed=len(placed),
        provider_calls=provider_calls,
        calls_per_order=round(provider_calls / max(len(book), 1), 1),
        discrepancies=sum(k is not DiscrepancyKind.LATE for k in discrepancies),
        discrepancy_kinds=dict(sorted(Counter(k.value for k in discrepancies).items())),
        shipped=shipped,
        refunded=refunded,
        cash=cash,
        days_to_cash=round(weighted_days / cash_in, 1) if cash_in else None,
        fees=fees,
        fee_bps=fees * 10_000 // max(shipped, 1),
        seller_risk=seller_risk,
        seller_risk_share=round(100 * seller_risk / max(exposure, 1), 1),
        unpaid=max(0, exposure - cash),
        tickets=len(cases),
        tickets_by_kind=dict(sorted(Counter(c.kind.value for c in cases).items())),
        escalated=sum(c.defaulted for c in cases),
        buyers=dict(
            sorted(Counter(run.approach.tag(o.behaviour, o.ap_roll) for o in book).items())
        ),
        desk_calls=desk_calls,
        disputes_opened=disputes[0],
        disputes_unsupported=disputes[1],
        settlements_reported=bool(settlements),
    )


async def compare(
    sim: Simulator,
    *,
    seed: int = 7,
    orders: int = 40,
    days: int = 90,
    mix: Mix = Mix(),
    providers: Sequence[str] = PROVIDERS,
    workdir: Path,
    on_done: Callable[[Figures], None] = lambda figures: None,
) -> Comparison:
    """The same book of business through every approach of `providers`, one after another."""
    book = plan(seed, orders, mix)
    figures = []
    for approach in approaches(tuple(providers)):
        try:
            done = await run_approach(sim, approach, book, seed=seed, workdir=workdir, days=days)
        except (ProviderUnavailable, ProviderRejected) as exc:
            raise CompareError(f"{approach.label}: the provider failed the run: {exc}") from exc
        on_done(done)
        figures.append(done)
    return Comparison(seed, orders, days, mix, tuple(figures))


def write_reports(comparison: Comparison, out: Path) -> list[Path]:
    """compare.json and compare.html in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "compare.json", out / "compare.html"]
    written[0].write_text(json.dumps(comparison.json(), indent=2, sort_keys=True) + "\n")
    written[1].write_text(comparison.render_html() + "\n")
    return written


__all__ = [
    "CompareError",
    "Comparison",
    "Figures",
    "Mix",
    "PlannedOrder",
    "Simulator",
    "compare",
    "plan",
    "run_approach",
    "write_reports",
]
