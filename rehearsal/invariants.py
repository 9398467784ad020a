"""What must hold at the end of every rehearsal, each a small registered function.

Like schemathesis' checks: `@invariant(name)` registers a function of one `Observation` (plain
data the runner collected over HTTP: the ERP's orders, the provider's account dump, the
delivery log, the integration's event log, the reconciliation's findings, the injected drift)
that returns a `Verdict`. They are pure, so each is unit-tested on fabricated observations,
including the broken integrations each one exists to catch (a receiver that does not dedupe, a
client that retries captures under fresh keys, a resumer turned off, ...).

A scenario lists the ones it checks (`invariants: [all]` by default).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

RECEIVABLE = "1210 Receivable - Credit provider"
DISPUTED = "1215 Disputed funds held by credit provider"
TIMESTAMP_TOLERANCE_S = 300  # Standard Webhooks' usual 5 minutes
EFFECTLESS = frozenset({"unchanged", "ignored", "unknown_order"})


@dataclass
class Secret:
    """A webhook signing secret and until when (account clock) the merchant may accept it."""

    value: str  # whsec_...
    expires_at: datetime | None = None  # None: current


@dataclass
class Finding:
    """One discrepancy of the integration's settlement reconciliation."""

    kind: str  # missing_in_ledger, missing_at_provider, duplicate, amount_mismatch, late, ...
    order_id: str | None
    text: str


@dataclass
class Observation:
    """Everything the invariants look at, collected after the recovery phase."""

    shop_orders: list[str] = field(default_factory=list)  # merchant order ids the shop placed
    erp: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # GET /orders/{id}
    provider_orders: list[dict[str, Any]] = field(default_factory=list)  # dump "orders"
    provider_checkouts: list[dict[str, Any]] = field(default_factory=list)
    disputes: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # dump "events"
    deliveries: list[dict[str, Any]] = field(default_factory=list)  # with their attempts
    secrets: list[Secret] = field(default_factory=list)
    event_log: list[dict[str, Any]] = field(default_factory=list)  # provider_event log lines
    holds_open_metric: float | None = None  # sum of sandbank_integration_holds_open
    reconcile_exit: int | None = None  # None: no reconciliation ran
    findings: list[Finding] = field(default_factory=list)
    drift: list[dict[str, Any]] = field(default_factory=list)  # injected (kind, order_id, ...)
    # The shop's planned steps and what became of them: {order, kind, outcome, erp_state}.
    steps: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Verdict:
    ok: bool
    expected: str
    observed: str
    detail: str = ""


Check = Callable[[Observation], Verdict]


@dataclass(frozen=True)
class Invariant:
    name: str
    check: Check
    doc: str


REGISTRY: dict[str, Invariant] = {}


def invariant(name: str) -> Callable[[Check], Check]:
    """Register `check` under `name` (the name scenarios list and reports show)."""

    def register(check: Check) -> Check:
        if name in REGISTRY:
            raise ValueError(f"invariant {name!r} registered twice")
        doc = (check.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        REGISTRY[name] = Invariant(name, check, doc)
        return check

    return register


def _listed(items: Iterable[str], limit: int = 5) -> str:
    items = list(items)
    head = ", ".join(items[:limit])
    return head + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def _provider_by_id(obs: Observation) -> dict[str, dict[str, Any]]:
    return {o["id"]: o for o in obs.provider_orders}


# ERP state -> the provider order statuses it agrees with (None: no provider order).
AGREEING: dict[str, frozenset[str | None]] = {
    "placed": frozenset({None}),
    "credit_pending": frozenset({None}),
    "awaiting_buyer": frozenset({None, "pending_review"}),  # the answer not fetched yet
    "under_review": frozenset({"pending_review"}),
    "rejected": frozenset({None, "declined"}),
    "authorized": frozenset({"authorized"}),
    "partially_shipped": frozenset({"partially_captured"}),
    "shipped": frozenset({"captured"}),
    "partially_refunded": frozenset(
        {"partially_refunded", "partially_captured", "captured", "refunded"}
    ),
    "refunded": frozenset({"refunded", "partially_refunded"}),
    "canceled": frozenset({"canceled"}),
    "expired": frozenset({"expired"}),
}


@invariant("no_order_lost")
def no_order_lost(obs: Observation) -> Verdict:
    """Every order the shop placed exists in the ERP and, once the buyer answered, at the
    provider, in agreeing states; the provider has no order for this shop the ERP lacks."""
    by_id = _provider_by_id(obs)
    problems: list[str] = []
    for moid in obs.shop_orders:
        view = obs.erp.get(moid)
        if view is None:
            problems.append(f"{moid}: not in the ERP")
            continue
        state = view["erp_state"]
        poid = view.get("provider_order_id")
        provider = by_id.get(poid) if poid else None
        if poid and provider is None:
            problems.append(f"{moid}: the ERP names {poid}, the provider has no such order")
            continue
        status = provider["status"] if provider else None
        if status not in AGREEING.get(state, frozenset()):
            problems.append(f"{moid}: ERP {state}, provider {status or 'no order'}")
    known = {v.get("provider_order_id") for v in obs.erp.values() if v}
    for order in obs.provider_orders:
        if order.get("merchant_order_id") in obs.shop_orders and order["id"] not in known:
            problems.append(f"{order['merchant_order_id']}: provider order {order['id']} unknown")
    return Verdict(
        not problems,
        f"{len(obs.shop_orders)} orders in the ERP and the provider, states agreeing",
        f"{len(problems)} disagreeing" + (f": {_listed(problems)}" if problems else ""),
    )


@invariant("no_double_capture_or_refund")
def no_double_capture_or_refund(obs: Observation) -> Verdict:
    """Per order, the provider captured and refunded exactly what the ERP shipped and refunded
    (a retry under a fresh Idempotency-Key shows up as the provider holding more)."""
    by_id = _provider_by_id(obs)
    problems = []
    for moid, view in sorted(obs.erp.items()):
        if not view or not view.get("provider_order_id"):
            continue
        provider = by_id.get(view["provider_order_id"])
        if provider is None:
            continue
        if provider["captured_amount"] != view["shipped_amount"]:
            problems.append(
                f"{moid}: captured {provider['captured_amount']} at the provider, "
                f"shipped {view['shipped_amount']} in the ERP"
            )
        if provider["refunded_amount"] != view["refunded_amount"]:
            problems.append(
                f"{moid}: refunded {provider['refunded_amount']} at the provider, "
                f"{view['refunded_amount']} in the ERP"
            )
        if view["shipped_amount"] > view["amount"]:
            problems.append(f"{moid}: shipped {view['shipped_amount']} of {view['amount']}")
    return Verdict(
        not problems,
        "provider captures = ERP shipments and provider refunds = ERP refunds, per order",
        f"{len(problems)} orders differ" + (f": {_listed(problems)}" if problems else ""),
    )


@invariant("holds_resolved")
def holds_resolved(obs: Observation) -> Verdict:
    """After recovery no provider work is still held: every ERP hold is resolved and the
    integration's `holds_open` gauge reads 0."""
    open_holds = [
        f"{moid}/{h['kind']}"
        for moid, view in sorted(obs.erp.items())
        if view
        for h in view.get("holds", [])
        if h.get("resolved_at") is None
    ]
    gauge = obs.holds_open_metric
    ok = not open_holds and (gauge is None or gauge == 0)
    return Verdict(
        ok,
        "0 open holds",
        f"{len(open_holds)} open holds"
        + (f": {_listed(open_holds)}" if open_holds else "")
        + ("" if gauge is None else f"; holds_open gauge {gauge:g}"),
        "" if ok else "the resumer did not finish held work after the provider recovered",
    )


def _posted(view: dict[str, Any], kind: str, account: str, side: str) -> int:
    return sum(
        leg[side]
        for p in view.get("ledger", [])
        if p["event_kind"] == kind
        for leg in p["legs"]
        if leg["account"] == account
    )


@invariant("ledger_matches_provider")
def ledger_matches_provider(obs: Observation) -> Verdict:
    """Every posting balances (debits = credits), and per order the ledger holds exactly the
    provider's captures, refunds and disputes (opened, won, lost)."""
    by_id = _provider_by_id(obs)
    disputes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in obs.disputes:
        disputes[d["order_id"]].append(d)
    problems = []
    postings = 0
    for moid, view in sorted(obs.erp.items()):
        if not view:
            continue
        refs = Counter(p["reference"] + "/" + p["event_kind"] for p in view.get("ledger", []))
        problems += [f"{moid}: {ref} posted {n} times" for ref, n in refs.items() if n > 1]
        for p in view.get("ledger", []):
            postings += 1
            debit = sum(leg["debit"] for leg in p["legs"])
            credit = sum(leg["credit"] for leg in p["legs"])
            if debit != credit:
                problems.append(f"{moid}: posting {p['id']} debits {debit} != credits {credit}")
        provider = by_id.get(view.get("provider_order_id") or "")
        if provider is None:
            continue
        own = disputes.get(provider["id"], [])
        expected = {
            "captured": provider["captured_amount"],
            "refunded": provider["refunded_amount"],
            "dispute_opened": sum(d["amount"] for d in own),
            "dispute_won": sum(d["amount"] for d in own if d["status"] == "won"),
            "dispute_lost": sum(d["amount"] for d in own if d["status"] == "lost"),
        }
        found = {
            "captured": _posted(view, "captured", RECEIVABLE, "debit"),
            "refunded": _posted(view, "refunded", RECEIVABLE, "credit"),
            "dispute_opened": _posted(view, "dispute_opened", DISPUTED, "debit"),
            "dispute_won": _posted(view, "dispute_won", DISPUTED, "credit"),
            "dispute_lost": _posted(view, "dispute_lost", DISPUTED, "credit"),
        }
        problems += [
            f"{moid}: {kind} provider {expected[kind]} ledger {found[kind]}"
            for kind in expected
            if expected[kind] != found[kind]
        ]
    return Verdict(
        not problems,
        "balanced postings; ledger = provider captures, refunds, disputes per order",
        f"{postings} postings, {len(problems)} problems"
        + (f": {_listed(problems)}" if problems else ""),
    )


# Injected drift kind -> the reconciliation finding(s) that report it.
DRIFT_FINDS = {
    "missing_line": ("missing_at_provider",),
    "duplicate_line": ("duplicate",),
    "off_by_one_cent": ("amount_mismatch",),
    "late_line": ("late", "missing_at_provider"),
    "unknown_order": ("unknown_order",),
}


@invariant("reconciliation_clean")
def reconciliation_clean(obs: Observation) -> Verdict:
    """The settlement reconciliation after recovery finds nothing, or exactly the injected
    drift (each injection once, of the matching kind): nothing missed, nothing invented."""
    if obs.reconcile_exit is None:
        return Verdict(False, "a reconciliation ran", "none ran", "the runner could not run it")
    if obs.reconcile_exit not in (0, 1):
        return Verdict(False, "reconciliation exit 0 or 1", f"exit {obs.reconcile_exit}")
    unmatched = list(obs.findings)
    missed = []
    for drift in obs.drift:
        kinds = DRIFT_FINDS.get(drift["kind"], ())
        match = next(
            (
                f
                for f in unmatched
                if f.kind in kinds and (drift.get("order_id") in (None, f.order_id))
            ),
            None,
        ) or next((f for f in unmatched if f.kind in kinds), None)
        if match is None:
            missed.append(f"{drift['kind']} on {drift.get('order_id')}")
        else:
            unmatched.remove(match)
    invented = [f"{f.kind} {f.order_id or ''}".strip() for f in unmatched]
    ok = not missed and not invented
    return Verdict(
        ok,
        f"{len(obs.drift)} findings, one per injected drift",
        f"{len(obs.findings)} findings"
        + (f"; missed: {_listed(missed)}" if missed else "")
        + (f"; not injected: {_listed(invented)}" if invented else ""),
    )


@invariant("events_processed_once")
def events_processed_once(obs: Observation) -> Verdict:
    """Every event the provider emitted was processed by the ERP, and none had an effect twice
    (duplicates and reorders absorbed by the inbox)."""
    seen: dict[str, list[str]] = defaultdict(list)
    for line in obs.event_log:
        seen[str(line.get("event_id"))].append(str(line.get("outcome")))
    missing = [e["id"] for e in obs.events if e["id"] not in seen]
    twice = [
        f"{eid} ({'/'.join(outcomes)})"
        for eid, outcomes in seen.items()
        if len(outcomes) > 1 and any(o not in EFFECTLESS for o in outcomes[1:])
    ]
    ok = not missing and not twice
    return Verdict(
        ok,
        f"{len(obs.events)} provider events, each processed, none applied twice",
        f"{len(missing)} never processed, {len(twice)} applied twice"
        + (f"; missing: {_listed(missing)}" if missing else "")
        + (f"; twice: {_listed(twice)}" if twice else ""),
    )


def signature_valid(
    headers: dict[str, str], body: str, secrets: Iterable[Secret], at: datetime
) -> bool:
    """Standard Webhooks: some `v1,` signature of `id.timestamp.body` by a secret the merchant
    may accept at `at` (the attempt's time on the account clock)."""
    msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    offered = {
        part.split(",", 1)[1]
        for part in headers.get("webhook-signature", "").split()
        if part.startswith("v1,")
    }
    for secret in secrets:
        if secret.expires_at is not None and at >= secret.expires_at:
            continue
        key = base64.b64decode(secret.value.removeprefix("whsec_"))
        digest = hmac.new(key, f"{msg_id}.{stamp}.{body}".encode(), hashlib.sha256).digest()
        if base64.b64encode(digest).decode() in offered:
            return True
    return False


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@invariant("no_bad_signature_accepted")
def no_bad_signature_accepted(obs: Observation) -> Verdict:
    """No webhook attempt with a forged, retired-secret or stale (> 5 min) signature got a 2xx
    from the receiver."""
    accepted, checked = [], 0
    for delivery in obs.deliveries:
        for attempt in delivery.get("attempts", []):
            headers = attempt.get("request_headers") or {}
            if "webhook-signature" not in headers:
                continue
            checked += 1
            stamp = headers.get("webhook-timestamp", "")
            sent = _when(attempt["wall_at"]).timestamp()
            fresh = stamp.isdigit() and abs(int(stamp) - sent) <= TIMESTAMP_TOLERANCE_S
            good = fresh and signature_valid(
                headers, attempt.get("request_body") or "", obs.secrets, _when(attempt["at"])
            )
            status = attempt.get("status")
            if not good and isinstance(status, int) and 200 <= status < 300:
                accepted.append(f"{delivery['event_id']}#{attempt['n']}")
    return Verdict(
        not accepted,
        "every badly signed or stale webhook answered 4xx",
        f"{checked} attempts checked, {len(accepted)} bad ones accepted"
        + (f": {_listed(accepted)}" if accepted else ""),
    )


MOOT_STATES = frozenset({"rejected", "canceled", "expired"})
ACCEPTED = frozenset({"done", "held"})


@invariant("workload_completed")
def workload_completed(obs: Observation) -> Verdict:
    """Every step the shop planned (place, the buyer's answer, each shipment, refund, cancel)
    was taken by the ERP by the end of recovery, unless the order had ended (declined,
    canceled, lapsed): the integration refused nothing it should have done."""
    failed = [
        f"{s['order']} {s['kind']}: {s['outcome']} (ERP {s.get('erp_state')})"
        for s in obs.steps
        if s["outcome"] not in ACCEPTED and s.get("erp_state") not in MOOT_STATES
    ]
    return Verdict(
        not failed,
        f"{len(obs.steps)} shop steps taken",
        f"{len(failed)} refused or never taken" + (f": {_listed(failed)}" if failed else ""),
    )


_ORDER_ID = re.compile(r"\b(ord_[A-Za-z0-9]+)")
_KIND = re.compile(r"^\s+([a-z_]+)\s")


def parse_findings(text: str) -> list[Finding]:
    """The discrepancy lines of `sandbank integration reconcile`'s report."""
    out: list[Finding] = []
    inside = False
    for line in text.splitlines():
        if line.strip() == "discrepancies:":
            inside = True
            continue
        if inside:
            if not line.startswith("    "):
                inside = line.startswith("  discrepancies")
                continue
            kind = _KIND.match(line)
            order = _ORDER_ID.search(line)
            if kind:
                out.append(Finding(kind.group(1), order.group(1) if order else None, line.strip()))
    return out


def run_all(obs: Observation, names: Iterable[str]) -> dict[str, Verdict]:
    """Each named invariant's verdict; one that raises is a failed verdict naming the error."""
    out = {}
    for name in names:
        try:
            out[name] = REGISTRY[name].check(obs)
        except (KeyError, TypeError, ValueError) as exc:
            out[name] = Verdict(False, "the check runs", f"it failed: {exc!r}")
    return out


__all__ = [
    "REGISTRY",
    "Finding",
    "Invariant",
    "Observation",
    "Secret",
    "Verdict",
    "invariant",
    "parse_findings",
    "run_all",
    "signature_valid",
]
