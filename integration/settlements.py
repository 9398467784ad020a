"""Settlements against the books: one reconciliation run over a `ProviderAdapter`.

`run_reconciliation(adapter, ledger, book, since=..., limit=..., metrics=...)`:

1. reads the latest settlements (newest first; batches on or after `since`, at most `limit`)
   and each one's lines as its report gives them;
2. reads the provider's disputes and posts them for the orders the ERP knows
   (`dispute_opened`; `dispute_won` or `dispute_lost` once decided), by dispute id, so the
   books know every dispute whose money a report can carry (read after the settlements, so
   none of theirs is missed);
3. turns the ledger into what it expects to be settled (`ledger_expectations`): every posting
   the GL mapping says the provider settles (`settles`: captures, refunds and disputes for
   embedded credit; the buyers' payments for gateway + net terms), not reversed, for its
   order, expected in the batch the provider's settlement calendar gives its time
   (`ProviderAdapter.settlement_batch`);
4. runs the pure `integration.reconcile.reconcile` over the window from the oldest to the
   newest batch read: the ERP's orders are the known orders, orders with open ERP holds are
   held; `carry_forward` lines (a deficit moved between payouts, no order) are left out;
5. posts each paid settlement: its fees (`settlement_fee`) and its payout (`payout`), by
   settlement id: the provider's headline figures, which report drift never changes;
6. records the metrics: the mismatch rate, the settlement lag of each capture line of a paid
   settlement (paid at - captured at; once per settlement per `Metrics`), the disputed ratio.

Disputes reach `reconcile` as ledger items, not as its `disputes` argument: the provider debits a
dispute as a line of its own (and credits a won one back as another) instead of withholding it
from the capture's line, so the ledger expects exactly those lines, and a dispute line missing,
late, twice or a cent off is found like any other. Passing the disputes as well would explain
each dispute line twice (a repeated dispute line would pass as the dispute's own).

Every posting is idempotent by reference: running again posts nothing new.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from integration.adapters.base import ProviderAdapter
from integration.ledger import REVERSAL, Ledger
from integration.metrics import Metrics
from integration.model import Dispute, EventKind, LineKind, Settlement
from integration.orders import OrderBook
from integration.reconcile import LedgerEntry, Report, reconcile

# A decided dispute's second posting, by canonical status.
DECIDED: dict[str, EventKind] = {
    "won": EventKind.DISPUTE_WON,
    "lost": EventKind.DISPUTE_LOST,
    "accepted": EventKind.DISPUTE_LOST,
}


@dataclass(frozen=True, slots=True)
class ReconciliationRun:
    report: Report | None  # None: the provider has no settlements (in the range asked for)
    settlements: tuple[Settlement, ...]  # newest first, with their reported lines
    disputes: tuple[Dispute, ...]
    posted: int  # postings this run wrote (disputes, fees, payouts)
    lags: tuple[float, ...]  # seconds from each capture to its payout (paid settlements)
    disputed_orders: int
    captured_orders: int

    @property
    def ok(self) -> bool:
        return self.report is None or self.report.ok

    def render_text(self) -> str:
        if self.report is None:
            return "no settlements to reconcile (none in the range asked for)"
        paid = sum(s.status == "paid" for s in self.settlements)
        out = [
            f"Settlements: {len(self.settlements)} read ({paid} paid), "
            f"disputes: {len(self.disputes)}, ledger postings written: {self.posted}",
            self.report.render_text(),
        ]
        fees: dict[str, int] = {}
        for s in self.settlements:
            fees[s.currency] = fees.get(s.currency, 0) + s.fees
        if any(fees.values()):
            # The ledger expects gross amounts (it does not predict the provider's fees), so
            # the totals differ by the fees; say so rather than leave a puzzle.
            shown = ", ".join(f"{amount} {cur}" for cur, amount in sorted(fees.items()))
            out.append(f"  provider fees (minor units; in the payout, not the ledger): {shown}")
        if self.lags:
            days = sorted(lag / 86_400 for lag in self.lags)
            out.append(
                f"  settlement lag: {len(days)} captures, median {days[len(days) // 2]:.1f} d,"
                f" max {days[-1]:.1f} d"
            )
        if self.captured_orders:
            out.append(
                f"  disputed: {self.disputed_orders} of {self.captured_orders} captured orders"
            )
        return "\n".join(out)


def ledger_expectations(
    ledger: Ledger, book: OrderBook, batch_of: Callable[[datetime], date]
) -> list[LedgerEntry]:
    """What the ledger expects the provider to settle: one item per capture, refund and
    dispute posting that stands (not reversed), for its order, due in `batch_of(posting.at)`.

    A posting without an order (written before postings carried one) finds it through the
    ERP hold whose work it recorded."""
    reversed_ids = {p.reverses for p in ledger.postings(event_kind=REVERSAL)}
    erp_orders = book.orders()
    merchant_of = {o.provider_order_id: o.merchant_order_id for o in erp_orders}
    provider_of = {o.merchant_order_id: o.provider_order_id for o in erp_orders}
    by_hold = {h.reference: h.merchant_order_id for h in book.holds() if h.reference}
    entries: list[LedgerEntry] = []
    # Which postings the provider settles is the approach's: its GL mapping says (`settles`).
    for kind, (line_kind, sign) in ledger.mapping.settled_kinds().items():
        for p in ledger.postings(event_kind=kind):
            if p.id in reversed_ids:
                continue
            provider_order_id = p.order_id
            merchant_order_id = merchant_of.get(provider_order_id) if provider_order_id else None
            if provider_order_id is None and p.reference in by_hold:
                merchant_order_id = by_hold[p.reference]
                provider_order_id = provider_of.get(merchant_order_id)
            # A dispute's opening and its win share the dispute id; items need their own.
            suffix = ":won" if kind is EventKind.DISPUTE_WON else ""
            entries.append(
                LedgerEntry(
                    reference=p.reference + suffix,
                    provider_order_id=provider_order_id,
                    merchant_order_id=merchant_order_id,
                    kind=line_kind,
                    amount=sign * p.gross,
                    currency=p.currency,
                    expected_batch=batch_of(p.at),
                )
            )
    return entries


def post_disputes(ledger: Ledger, book: OrderBook, disputes: Sequence[Dispute]) -> None:
    """The provider's disputes on the ERP's orders, into the ledger (idempotent by id)."""
    for d in disputes:
        if book.find(provider_order_id=d.provider_order_id) is None or d.opened_at is None:
            continue
        money, order = d.amount, d.provider_order_id
        ledger.post(
            EventKind.DISPUTE_OPENED,
            {"gross": money.amount},
            money.currency,
            d.provider_id,
            at=d.opened_at,
            order_id=order,
        )
        decided = DECIDED.get(d.status)
        if decided is not None:
            ledger.post(
                decided,
                {"gross": money.amount},
                money.currency,
                d.provider_id,
                at=d.closed_at or d.opened_at,
                order_id=order,
            )


def post_payouts(ledger: Ledger, settlements: Sequence[Settlement]) -> None:
    """Each paid settlement's fees and payout (idempotent by settlement id)."""
    for s in settlements:
        if s.status != "paid" or s.paid_at is None:
            continue
        ledger.post(
            EventKind.SETTLEMENT_FEE, {"fee": s.fees}, s.currency, s.provider_id, at=s.paid_at
        )
        ledger.post(EventKind.PAYOUT, {"net": s.payout}, s.currency, s.provider_id, at=s.paid_at)


async def run_reconciliation(
    adapter: ProviderAdapter,
    ledger: Ledger,
    book: OrderBook,
    *,
    since: date | None = None,
    limit: int | None = 31,
    metrics: Metrics | None = None,
) -> ReconciliationRun:
    """Reconcile the latest settlements against the ledger (see the module docstring).
    Provider errors (`ProviderUnavailable`, `ProviderRejected`) propagate."""
    before = len(ledger.postings())
    summaries = await adapter.list_settlements(since=since, limit=limit)
    settlements = tuple([await adapter.get_settlement(s.provider_id) for s in summaries])
    disputes = tuple(await adapter.list_disputes())
    post_disputes(ledger, book, disputes)

    erp_orders = book.orders()
    known = {o.merchant_order_id for o in erp_orders}
    known |= {o.provider_order_id for o in erp_orders if o.provider_order_id}
    captured = [o for o in erp_orders if o.shipped > 0]
    disputed_ids = {d.provider_order_id for d in disputes}
    disputed = sum(o.provider_order_id in disputed_ids for o in captured)

    report: Report | None = None
    if settlements:
        batch_of: dict[str, date] = {}
        for s in settlements:
            if s.batch is None:
                raise ValueError(f"settlement {s.provider_id} has no batch date")
            batch_of[s.provider_id] = s.batch
        held = {h.merchant_order_id for h in book.holds(open_only=True)}
        held |= {
            o.provider_order_id
            for o in erp_orders
            if o.merchant_order_id in held and o.provider_order_id
        }
        report = reconcile(
            [
                line
                for s in settlements
                for line in s.lines
                if line.kind is not LineKind.CARRY_FORWARD
            ],
            ledger_expectations(ledger, book, adapter.settlement_batch),
            batch=max(batch_of.values()),
            since=min(batch_of.values()),
            holds=held,
            known_orders=known,
            batch_of=batch_of,
        )
    post_payouts(ledger, settlements)

    lags: list[float] = []
    for s in settlements:
        if s.status != "paid" or s.paid_at is None:
            continue
        seen: set[str] = set()
        these = []
        for line in s.lines:
            if (
                line.kind is LineKind.CAPTURE
                and line.at is not None
                and line.provider_order_id in known
                and line.line_id not in seen
            ):
                seen.add(line.line_id)
                these.append((s.paid_at - line.at).total_seconds())
        lags += these
        if metrics is not None:
            metrics.observe_settlement_lags(s.provider_id, these)
    if metrics is not None:
        if report is not None:
            metrics.record_reconciliation(report)
        metrics.record_disputes(disputed, len(captured))
    return ReconciliationRun(
        report=report,
        settlements=settlements,
        disputes=disputes,
        posted=len(ledger.postings()) - before,
        lags=tuple(lags),
        disputed_orders=disputed,
        captured_orders=len(captured),
    )


__all__ = [
    "ReconciliationRun",
    "ledger_expectations",
    "post_disputes",
    "post_payouts",
    "run_reconciliation",
]
