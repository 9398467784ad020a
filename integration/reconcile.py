"""Reconciliation: a pure function from (provider settlement lines, ledger) to typed discrepancies.

`reconcile(lines, ledger, batch=...)` compares what the provider says it settled (its payout
report's `SettlementLine`s) with what the merchant's ledger expects to be settled
(`LedgerEntry`s) and returns a `Report` of `Discrepancy`s drawn from a closed set:

- `missing_in_ledger`: a provider line for an order the merchant knows, with no ledger item.
- `missing_at_provider`: a ledger item due in the reconciled batch(es) that no provider line
  settled (as of the reconciled batch), unless its order is on hold or under a dispute.
- `duplicate`: the provider reported one item twice: the same line identity
  (`settlement_id`, `line_id`) again, or a second line for the same movement with the same
  content (kind, amounts, currency). A line that names its movement (`source_id`: the capture,
  refund, remittance line...) repeats only a line of the same movement: two deposits of the
  same amount from different remittances are two items (e.g. two `missing_in_ledger`), never a
  duplicate. Only lines that do not name their movement are compared on content alone.
- `amount_mismatch`: a line matched to a ledger item, but its amount (or the fee, when the
  ledger predicts the fee) differs, e.g. by one cent.
- `late`: a line matched to a ledger item that was expected in an earlier batch.
- `unknown_order`: a line naming an order the merchant does not know at all.

Batches. Every ledger item says which batch it is expected in (`expected_batch`); every line
belongs to the batch of its settlement (`batch_of[line.settlement_id]`, or the settlement id
itself when no mapping is given). Batch keys are all `str` (ids that sort in payout order, e.g.
zero-padded or ISO dates) or all `date`. A call reconciles the window `since..batch`
(inclusive; `since` defaults to `batch`, i.e. one batch):

- lines of batches after `batch` have not arrived yet and are ignored;
- lines of batches before `since` take part in matching (they settled their items, and a later
  copy of them is a duplicate) but are not reported on: they were reported in their own batch;
- line-side findings (everything but `missing_at_provider`) are reported for lines inside the
  window, in the batch each line arrives in;
- `missing_at_provider` is reported for ledger items *due* inside the window that no line up to
  `batch` settled. A line that comes one batch late is therefore `missing_at_provider` when its
  own batch is reconciled and `late` when the batch it arrives in is; reconciling a window that
  covers both reports only `late`. Each finding is reported once, in the batch where it
  becomes observable; an item still missing is not repeated in later batches' reports.

Order identity. An order is known by its `provider_order_id` or, failing that, its
`merchant_order_id`; a ledger item that carries both links the two, so a line carrying either
finds the order. The canonical name of an order is its provider id when any ledger item (or
`known_orders`, `holds` or `disputes`) gives one, else its merchant id. Orders the merchant
knows = those in the ledger, plus `known_orders` (e.g. authorized but not yet captured, or
whose ledger items are missing), `holds` and the orders of `disputes`. A line naming neither
id (a batch-level fee, say) belongs to the order-less group and matches order-less ledger
items.

Matching. The key that names an item is `MatchKey(order, kind, occurrence)`. Occurrence alone
is not a safe way to *match*, though: when one of an order's three captures is missing or
late, pairing lines and ledger items by position would shift every later pair and report
mismatches that are not there. So within one (order, kind) group lines are paired with ledger
items in passes, strongest evidence first, each pass taking lines in (batch, settlement id,
line id) order (an earlier line claims first; of two identical lines in one batch, the one with
the smaller line id is the original) and never reusing a ledger item:

1. same currency and amounts that fit, line on time (its batch is not after the expected one;
   early is fine), preferring the nearest expected batch;
2. amounts that fit, line late: paired with the oldest outstanding item -> `late`;
3. a dispute line explained by a dispute on the order (see Disputes);
4. a line that repeats a line already paired (same content, same movement) -> `duplicate`
   (before the loose passes, so a duplicate never poses as a mismatch of some unsettled item);
5. same currency, amounts differ, item due in the line's batch: the nearest amount ->
   `amount_mismatch` (never an item due later: an early line must fit exactly);
6. same currency, amounts differ, item due earlier -> `late` and `amount_mismatch`;
7. what is left: a `duplicate` if it repeats an earlier line of the group, else
   `missing_in_ledger`.

Ledger items left unpaired are `missing_at_provider` (if due in the window and not excused).
Occurrence is the item's position among the group's ledger items in (expected batch,
reference) order; a line without a ledger item gets the next positions after them, in batch
order; a duplicate takes the key of the line it repeats. Inherent ambiguity: when one group
holds two items whose amounts are equal or a cent apart, or suffers two drifts at once (one
capture missing, its sibling a cent off), the data fits more than one story; the report then
tells a consistent one, which may name the sibling.

Amounts. Integer minor units, compared per currency, never converted. A ledger item's `amount`
is signed from the merchant's side like a line's: the expected `gross` for a capture, refund
or dispute line, and the expected `net` for a fee line (providers put a fee in either `gross`
or `fee`; the net is the same). `fee`, when the ledger predicts it, must equal the line's.

Holds. Orders in `holds` (provider or merchant id; the ERP holds them) are expected to be
absent: their unsettled items are not `missing_at_provider`. A line that does arrive for a held
order is matched like any other.

Disputes. A dispute that is open, lost or accepted withholds its amount: for that order a
capture line short by the withheld total matches (it is not a mismatch), a dispute line for
`-amount` needs no ledger item, and unsettled items are not `missing_at_provider` (the provider
may hold the whole order back). A won dispute also explains a `+amount` dispute line (the
reversal) but withholds nothing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import TypeAlias

from integration.model import Dispute, LineKind, Money, SettlementLine

BatchKey: TypeAlias = str | date

WITHHOLDING_DISPUTE_STATUSES = frozenset({"open", "lost", "accepted"})

# Minor-unit exponents that are not 2 (ISO 4217), for the text report only.
_EXPONENTS = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND"),
        0,
    ),
    **dict.fromkeys(("VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


class DiscrepancyKind(StrEnum):
    MISSING_IN_LEDGER = "missing_in_ledger"
    MISSING_AT_PROVIDER = "missing_at_provider"
    DUPLICATE = "duplicate"
    AMOUNT_MISMATCH = "amount_mismatch"
    LATE = "late"
    UNKNOWN_ORDER = "unknown_order"


_KIND_RANK = {kind: rank for rank, kind in enumerate(DiscrepancyKind)}


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One item the ledger expects the provider to settle (adapt the ledger's rows to this)."""

    reference: str  # the ledger's own id for the item (journal entry/line); unique
    provider_order_id: str | None
    merchant_order_id: str | None
    kind: LineKind
    amount: int  # signed minor units: gross (capture/refund/dispute) or net (fee)
    currency: str
    expected_batch: BatchKey
    fee: int | None = None  # the fee the line should carry, when the ledger predicts it

    @property
    def expected_net(self) -> int:
        return self.amount if self.kind is LineKind.FEE else self.amount - (self.fee or 0)


@dataclass(frozen=True, slots=True, order=True)
class MatchKey:
    """Names one item: its order (canonical id; None for order-less lines), kind, occurrence."""

    order: str | None
    kind: LineKind
    occurrence: int

    def __str__(self) -> str:
        return f"{self.order or '-'}/{self.kind}#{self.occurrence}"


@dataclass(frozen=True, slots=True)
class Discrepancy:
    kind: DiscrepancyKind
    key: MatchKey
    expected: Money | None  # what the ledger expected (None: it expected nothing)
    actual: Money | None  # what the provider reported (None: nothing)
    detail: str
    reference: str | None = None  # the ledger item concerned, if any
    settlement_id: str | None = None  # the provider line concerned, if any
    line_id: str | None = None


@dataclass(frozen=True, slots=True)
class CurrencyTotals:
    currency: str
    provider_payout: int  # sum of the net of the window's lines
    ledger_expected: int  # sum of the expected net of ledger items due in the window, not held

    @property
    def difference(self) -> int:
        return self.provider_payout - self.ledger_expected


@dataclass(frozen=True, slots=True)
class Report:
    batch: BatchKey
    since: BatchKey
    lines: int  # provider lines in the window
    discrepancies: tuple[Discrepancy, ...]
    totals: tuple[CurrencyTotals, ...] = field(default_factory=tuple)

    @property
    def counts(self) -> dict[DiscrepancyKind, int]:
        found = Counter(d.kind for d in self.discrepancies)
        return {kind: found[kind] for kind in DiscrepancyKind}

    @property
    def ok(self) -> bool:
        return not self.discrepancies

    @property
    def mismatch_rate(self) -> float:
        """Discrepancies per provider line in the window (a window without lines counts as 1)."""
        return len(self.discrepancies) / max(self.lines, 1)

    def render_text(self) -> str:
        window = str(self.batch) if self.since == self.batch else f"{self.since}..{self.batch}"
        out = [
            f"Reconciliation of {window}",
            f"  lines: {self.lines}  discrepancies: {len(self.discrepancies)}"
            f"  mismatch rate: {self.mismatch_rate:.2%}",
        ]
        if self.totals:
            out.append("  totals:")
            for t in self.totals:
                out.append(
                    f"    {t.currency}  provider payout {_fmt(t.provider_payout, t.currency)}"
                    f"  ledger expected {_fmt(t.ledger_expected, t.currency)}"
                    f"  difference {_fmt(t.difference, t.currency)}"
                )
        out.append("  counts: " + ", ".join(f"{kind} {n}" for kind, n in self.counts.items()))
        if not self.discrepancies:
            out.append("  no discrepancies")
            return "\n".join(out)
        out.append("  discrepancies:")
        for d in self.discrepancies:
            parts = [f"    {d.kind:<19} {d.key}"]
            if d.expected is not None:
                parts.append(f"expected {_fmt(d.expected.amount, d.expected.currency)}")
            if d.actual is not None:
                parts.append(f"actual {_fmt(d.actual.amount, d.actual.currency)}")
            if d.reference is not None:
                parts.append(f"ledger {d.reference}")
            if d.line_id is not None:
                parts.append(f"line {d.settlement_id}/{d.line_id}")
            out.append("  ".join(parts) + f"  ({d.detail})")
        return "\n".join(out)


def _fmt(amount: int, currency: str) -> str:
    exp = _EXPONENTS.get(currency, 2)
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), 10**exp)
    frac = f".{minor:0{exp}d}" if exp else ""
    return f"{sign}{major:,}{frac} {currency}"


# --- internals -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Line:
    line: SettlementLine
    batch: BatchKey
    order: str | None = None  # canonical order once resolved
    entry: LedgerEntry | None = None  # the ledger item it settled
    explained: bool = False  # accounted for without a ledger item (a dispute line)
    duplicate_of: _Line | None = None
    key: MatchKey | None = None

    @property
    def amount(self) -> int:
        """The figure compared with `LedgerEntry.amount`: net for fee lines, else gross."""
        return self.line.net if self.line.kind is LineKind.FEE else self.line.gross

    @property
    def content(self) -> tuple[LineKind, int, int, str]:
        return (self.line.kind, self.line.gross, self.line.fee, self.line.currency)

    @property
    def accounted(self) -> bool:
        return self.entry is not None or self.explained


@dataclass(frozen=True, slots=True)
class _Finding:
    """A line-side discrepancy, turned into a `Discrepancy` once every line has its key."""

    line: _Line
    kind: DiscrepancyKind
    detail: str
    expected: Money | None = None
    actual: Money | None = None  # default: the line's amount
    reference: str | None = None

    def discrepancy(self) -> Discrepancy:
        x = self.line
        assert x.key is not None
        actual = self.actual or Money(x.amount, x.line.currency)
        return Discrepancy(
            self.kind,
            x.key,
            self.expected,
            actual,
            self.detail,
            reference=self.reference,
            settlement_id=x.line.settlement_id,
            line_id=x.line.line_id,
        )


@dataclass(slots=True)
class _Orders:
    """Which orders the merchant knows, under one canonical name each."""

    by_provider: dict[str, str] = field(default_factory=dict)
    by_merchant: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        ledger: Sequence[LedgerEntry],
        extra: Iterable[str],
        disputes: Sequence[Dispute],
    ) -> _Orders:
        orders = cls()
        for e in ledger:
            if e.provider_order_id is not None:
                orders.by_provider[e.provider_order_id] = e.provider_order_id
        for d in disputes:
            orders.by_provider.setdefault(d.provider_order_id, d.provider_order_id)
        for e in ledger:
            if e.merchant_order_id is not None and e.provider_order_id is not None:
                orders.by_merchant.setdefault(e.merchant_order_id, e.provider_order_id)
        for e in ledger:
            if e.merchant_order_id is not None:
                orders.by_merchant.setdefault(e.merchant_order_id, e.merchant_order_id)
        for oid in extra:  # ids of either kind, unlinked
            orders.by_provider.setdefault(oid, oid)
            orders.by_merchant.setdefault(oid, oid)
        return orders

    def resolve(self, provider_order_id: str | None, merchant_order_id: str | None) -> str | None:
        if provider_order_id is not None and provider_order_id in self.by_provider:
            return self.by_provider[provider_order_id]
        if merchant_order_id is not None and merchant_order_id in self.by_merchant:
            return self.by_merchant[merchant_order_id]
        return None


def _check_key(name: str, key: object, like: BatchKey) -> None:
    if isinstance(like, datetime) or isinstance(key, datetime):
        raise TypeError(f"{name}: batch keys are str or date, not datetime")
    if type(key) is not type(like):
        raise TypeError(f"{name}: batch key {key!r} is not of the same type as {like!r}")


def _lt(a: BatchKey, b: BatchKey) -> bool:
    return a < b  # type: ignore[operator]  # same type, checked on entry


def _line_sort_key(x: _Line) -> tuple[object, ...]:
    ln = x.line
    return (
        x.batch,
        ln.settlement_id,
        ln.line_id,
        ln.kind,
        ln.gross,
        ln.fee,
        ln.currency,
        ln.provider_order_id or "",
        ln.merchant_order_id or "",
    )


def reconcile(
    lines: Sequence[SettlementLine],
    ledger: Sequence[LedgerEntry],
    *,
    batch: BatchKey,
    since: BatchKey | None = None,
    holds: Collection[str] = frozenset(),
    disputes: Sequence[Dispute] = (),
    known_orders: Collection[str] = frozenset(),
    batch_of: Mapping[str, BatchKey] | None = None,
) -> Report:
    """Reconcile the window `since..batch` (see the module docstring for the rules).

    `lines`: provider lines of the window and, optionally, of earlier batches (later ones are
    ignored). `ledger`: every item the ledger expects (any batch). `holds`: order ids (provider
    or merchant) on ERP hold. `disputes`: the provider's disputes. `known_orders`: order ids the
    merchant knows beyond those in the ledger. `batch_of`: settlement id -> batch key (default:
    the settlement id itself). Pure and deterministic: the same inputs in any order give the
    same report.
    """
    window = _Window(batch, batch if since is None else since)
    refs = Counter(entry.reference for entry in ledger)
    if duplicated := sorted(r for r, n in refs.items() if n > 1):
        raise ValueError(f"ledger references are not unique: {', '.join(duplicated)}")
    for entry in ledger:
        _check_key(f"ledger item {entry.reference}", entry.expected_batch, batch)

    arrived = _arrived(lines, window, batch_of)
    orders = _Orders.build(ledger, [*known_orders, *holds], disputes)
    claims = _DisputeClaims.build(disputes, orders)

    # The same line identity again: a duplicate, matched no further.
    firsts: dict[tuple[str, str], _Line] = {}
    unknown: list[_Line] = []
    line_groups: dict[_GroupKey, list[_Line]] = defaultdict(list)
    for arrival in arrived:
        ident = (arrival.line.settlement_id, arrival.line.line_id)
        if ident in firsts:
            arrival.duplicate_of = firsts[ident]
            continue
        firsts[ident] = arrival
        line = arrival.line
        if line.provider_order_id is None and line.merchant_order_id is None:
            line_groups[(None, line.kind)].append(arrival)
        elif (order := orders.resolve(line.provider_order_id, line.merchant_order_id)) is None:
            unknown.append(arrival)
        else:
            line_groups[(order, line.kind)].append(arrival)

    entry_groups: dict[_GroupKey, list[LedgerEntry]] = defaultdict(list)
    for entry in ledger:
        entry_groups[
            (orders.resolve(entry.provider_order_id, entry.merchant_order_id), entry.kind)
        ].append(entry)

    findings: list[_Finding] = []
    unsettled: list[tuple[LedgerEntry, MatchKey]] = []
    for group_key in sorted(set(line_groups) | set(entry_groups), key=_group_sort_key):
        group = _Group(
            group_key,
            line_groups.get(group_key, []),
            sorted(
                entry_groups.get(group_key, []),
                key=lambda entry: (entry.expected_batch, entry.reference),
            ),
            claims,
        )
        unsettled += group.match(findings)
    findings += _unknown_orders(unknown)
    for arrival in arrived:
        if arrival.duplicate_of is not None and arrival.key is None:
            arrival.key = arrival.duplicate_of.key
            findings.append(_duplicate(arrival, "the same line identity again"))

    held, withholding = set(holds), claims.withholding_orders
    discrepancies = [f.discrepancy() for f in findings if window.covers(f.line.batch)]
    discrepancies += [
        Discrepancy(
            DiscrepancyKind.MISSING_AT_PROVIDER,
            match_key,
            Money(entry.amount, entry.currency),
            None,
            f"expected in batch {entry.expected_batch}, not settled by batch {batch}",
            reference=entry.reference,
        )
        for entry, match_key in unsettled
        if window.covers(entry.expected_batch)
        and not _is_held(entry, held)
        and not (match_key.order is not None and match_key.order in withholding)
    ]
    discrepancies.sort(key=_discrepancy_sort_key)

    window_lines = [arrival for arrival in arrived if window.covers(arrival.batch)]
    return Report(
        batch=batch,
        since=window.since,
        lines=len(window_lines),
        discrepancies=tuple(discrepancies),
        totals=_totals(
            window_lines,
            [
                entry
                for entry in ledger
                if window.covers(entry.expected_batch) and not _is_held(entry, held)
            ],
        ),
    )


_GroupKey: TypeAlias = tuple[str | None, LineKind]


@dataclass(frozen=True, slots=True)
class _Window:
    batch: BatchKey
    since: BatchKey

    def __post_init__(self) -> None:
        _check_key("since", self.since, self.batch)
        if _lt(self.batch, self.since):
            raise ValueError(f"since {self.since!r} is after batch {self.batch!r}")

    def arrived(self, key: BatchKey) -> bool:
        return not _lt(self.batch, key)

    def covers(self, key: BatchKey) -> bool:
        return not _lt(key, self.since) and not _lt(self.batch, key)


@dataclass(slots=True)
class _DisputeClaims:
    """What disputes explain, per canonical order: withheld amounts and dispute lines."""

    withheld: dict[tuple[str, str], int] = field(default_factory=dict)  # (order, currency)
    lines: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # (currency, amount)

    @classmethod
    def build(cls, disputes: Sequence[Dispute], orders: _Orders) -> _DisputeClaims:
        claims = cls()
        for d in disputes:
            order = orders.resolve(d.provider_order_id, None) or d.provider_order_id
            cur, amount = d.amount.currency, d.amount.amount
            expected = claims.lines.setdefault(order, [])
            expected.append((cur, -amount))
            if d.status in WITHHOLDING_DISPUTE_STATUSES:
                claims.withheld[(order, cur)] = claims.withheld.get((order, cur), 0) + amount
            elif d.status == "won":
                expected.append((cur, amount))
        return claims

    @property
    def withholding_orders(self) -> set[str]:
        return {order for (order, _), amount in self.withheld.items() if amount}


def _arrived(
    lines: Sequence[SettlementLine], window: _Window, batch_of: Mapping[str, BatchKey] | None
) -> list[_Line]:
    """The lines that have arrived by the window's last batch, in a canonical order."""
    arrived: list[_Line] = []
    for ln in lines:
        if batch_of is None:
            key: BatchKey = ln.settlement_id
        elif ln.settlement_id in batch_of:
            key = batch_of[ln.settlement_id]
        else:
            raise ValueError(f"no batch for settlement {ln.settlement_id!r}")
        _check_key(f"settlement {ln.settlement_id}", key, window.batch)
        if window.arrived(key):
            arrived.append(_Line(ln, key))
    arrived.sort(key=_line_sort_key)
    return arrived


def _unknown_orders(unknown: list[_Line]) -> list[_Finding]:
    """Lines for orders nobody knows, keyed by the id the line gives."""
    ranks: Counter[tuple[str, LineKind]] = Counter()
    found = []
    for x in unknown:
        raw = x.line.provider_order_id or x.line.merchant_order_id or ""
        x.key = MatchKey(raw, x.line.kind, ranks[(raw, x.line.kind)])
        ranks[(raw, x.line.kind)] += 1
        found.append(_Finding(x, DiscrepancyKind.UNKNOWN_ORDER, "order not known"))
    return found


def _is_held(e: LedgerEntry, held: set[str]) -> bool:
    return e.provider_order_id in held or e.merchant_order_id in held


def _totals(lines: list[_Line], due: list[LedgerEntry]) -> tuple[CurrencyTotals, ...]:
    payout: Counter[str] = Counter()
    expected: Counter[str] = Counter()
    for x in lines:
        payout[x.line.currency] += x.line.net
    for e in due:
        expected[e.currency] += e.expected_net
    return tuple(
        CurrencyTotals(c, payout[c], expected[c]) for c in sorted(set(payout) | set(expected))
    )


def _group_sort_key(k: _GroupKey) -> tuple[bool, str, str]:
    return (k[0] is not None, k[0] or "", k[1])


def _discrepancy_sort_key(d: Discrepancy) -> tuple[object, ...]:
    return (
        _KIND_RANK[d.kind],
        d.key.order is not None,
        d.key.order or "",
        d.key.kind,
        d.key.occurrence,
        d.settlement_id or "",
        d.line_id or "",
        d.reference or "",
    )


class _Group:
    """One (order, kind) group: its lines (in batch order) and ledger items (in expected-batch
    order), paired in the passes the module docstring lists."""

    def __init__(
        self,
        key: _GroupKey,
        lines: list[_Line],
        entries: list[LedgerEntry],
        claims: _DisputeClaims,
    ) -> None:
        self.order, self.kind = key
        self.lines = lines
        self.entries = entries
        self.occurrence = {e.reference: i for i, e in enumerate(entries)}
        self.taken: set[str] = set()
        order = self.order
        self.withheld = {cur: amount for (o, cur), amount in claims.withheld.items() if o == order}
        self.pending = sorted(claims.lines.get(order, [])) if order is not None else []
        self.out: list[_Finding] = []

    def match(self, out: list[_Finding]) -> list[tuple[LedgerEntry, MatchKey]]:
        """Pair lines with items, append findings to `out`; return the items left unsettled."""
        self._exact()
        if self.kind is LineKind.DISPUTE:
            self._disputes_explain()
        for x in self._open_lines():  # repeats of a line already accounted for
            x.duplicate_of = next((y for y in self.lines if y.accounted and _repeats(x, y)), None)
        self._loose(late=False)
        self._loose(late=True)
        if self.kind is LineKind.DISPUTE:
            self._disputes_differ()
        self._rest()
        out += self.out
        return [(e, self._key(e)) for e in self._free()]

    def _key(self, e: LedgerEntry) -> MatchKey:
        return MatchKey(self.order, self.kind, self.occurrence[e.reference])

    def _free(self) -> list[LedgerEntry]:
        return [e for e in self.entries if e.reference not in self.taken]

    def _open_lines(self) -> list[_Line]:
        return [x for x in self.lines if not x.accounted and x.duplicate_of is None]

    def _fits(self, x: _Line, e: LedgerEntry) -> bool:
        if x.line.currency != e.currency or (e.fee is not None and x.line.fee != e.fee):
            return False
        if x.amount == e.amount:
            return True
        short = self.withheld.get(e.currency, 0)
        return self.kind is LineKind.CAPTURE and short > 0 and x.amount == e.amount - short

    def _pair(self, x: _Line, e: LedgerEntry) -> None:
        x.entry = e
        x.key = self._key(e)
        self.taken.add(e.reference)

    def _exact(self) -> None:
        # On time (or early): the nearest expected batch; then late: the oldest outstanding.
        for x in self.lines:
            if fit := [e for e in self._free() if _on_time(x, e) and self._fits(x, e)]:
                self._pair(x, fit[0])
        for x in self._open_lines():
            if fit := [e for e in self._free() if not _on_time(x, e) and self._fits(x, e)]:
                self._pair(x, fit[0])
                self.out.append(_late(x, fit[0]))

    def _disputes_explain(self) -> None:
        for x in self._open_lines():
            if (x.line.currency, x.amount) in self.pending:
                self.pending.remove((x.line.currency, x.amount))
                x.explained = True

    def _loose(self, *, late: bool) -> None:
        # Same currency, amounts differ: items of the line's own batch, else (late) of an
        # earlier one, the nearest amount first. Never an item due later: an early line must
        # fit exactly, or a line the ledger lacks would pose as a mismatch of a future item.
        for x in self._open_lines():
            candidates = [
                e
                for e in self._free()
                if e.currency == x.line.currency
                and (_lt(e.expected_batch, x.batch) if late else e.expected_batch == x.batch)
            ]
            if candidates:
                e = min(candidates, key=lambda e: abs(x.amount - e.amount))
                self._pair(x, e)
                if late:
                    self.out.append(_late(x, e))
                self.out.append(_mismatch(x, e))

    def _disputes_differ(self) -> None:
        # Dispute lines no dispute explains exactly, against the nearest dispute.
        for x in self._open_lines():
            if same := [p for p in self.pending if p[0] == x.line.currency]:
                cur, amount = min(same, key=lambda p: abs(x.amount - p[1]))
                self.pending.remove((cur, amount))
                x.explained = True
                self.out.append(
                    _Finding(
                        x,
                        DiscrepancyKind.AMOUNT_MISMATCH,
                        f"dispute line differs from the dispute by {x.amount - amount}",
                        expected=Money(amount, cur),
                    )
                )

    def _rest(self) -> None:
        # Repeats of an earlier line, else lines the ledger lacks; lines without a ledger
        # item are keyed after the group's items.
        rank = len(self.entries)
        for i, x in enumerate(self.lines):
            if x.entry is not None or x.duplicate_of is not None:
                continue
            if not x.explained:
                x.duplicate_of = next(
                    (y for y in self.lines[:i] if y.duplicate_of is None and _repeats(x, y)),
                    None,
                )
                if x.duplicate_of is not None:
                    continue
                self.out.append(_Finding(x, DiscrepancyKind.MISSING_IN_LEDGER, "no ledger item"))
            x.key = MatchKey(self.order, self.kind, rank)
            rank += 1
        for x in self.lines:
            if x.duplicate_of is not None:
                x.key = x.duplicate_of.key
                self.out.append(_duplicate(x, "a second line with the same content"))


def _repeats(x: _Line, y: _Line) -> bool:
    """`x` is `y` reported again: the same content, and not another movement (lines that both
    name their movement must name the same one)."""
    a, b = x.line.source_id, y.line.source_id
    return x.content == y.content and (a is None or b is None or a == b)


def _on_time(x: _Line, e: LedgerEntry) -> bool:
    """Not after the expected batch (early is on time)."""
    return not _lt(e.expected_batch, x.batch)


def _late(x: _Line, e: LedgerEntry) -> _Finding:
    return _Finding(
        x,
        DiscrepancyKind.LATE,
        f"expected in batch {e.expected_batch}, arrived in batch {x.batch}",
        expected=Money(e.amount, e.currency),
        reference=e.reference,
    )


def _mismatch(x: _Line, e: LedgerEntry) -> _Finding:
    if x.amount != e.amount:
        detail = f"amount differs by {x.amount - e.amount}"
        if e.fee is not None and x.line.fee != e.fee:
            detail += f", fee by {x.line.fee - e.fee}"
        expected, actual = Money(e.amount, e.currency), None
    else:
        assert e.fee is not None
        detail = f"fee differs by {x.line.fee - e.fee}"
        expected, actual = Money(e.fee, e.currency), Money(x.line.fee, x.line.currency)
    return _Finding(
        x,
        DiscrepancyKind.AMOUNT_MISMATCH,
        detail,
        expected=expected,
        actual=actual,
        reference=e.reference,
    )


def _duplicate(x: _Line, detail: str) -> _Finding:
    original = x.duplicate_of
    assert original is not None
    while original.duplicate_of is not None:
        original = original.duplicate_of
    reference = original.entry.reference if original.entry is not None else None
    return _Finding(x, DiscrepancyKind.DUPLICATE, detail, reference=reference)
