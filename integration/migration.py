"""Moving a merchant's open business from one provider to another, checked
(`sandbank integration migrate --from A --to B [--dry-run]`).

The unit is an *obligation*: money a buyer owes or may owe, open at a provider: authorized but
not captured, captured but not repaid, or an open dispute. Its `key` (`<kind>:<the source
object>`) names it across providers: a replayed obligation carries it at the target, so both
sides' exports can be read into one picture (`SideState`) and compared.

A run: read both providers' full exports (`before`), plan (each obligation open at the source
moves, stays, or, when an earlier run replayed it already, is only released at the source),
import the source's token-migration file into the target's vault, replay every moving
obligation at the target and release it at the source (each step with an Idempotency-Key
derived from the obligation, so retries and second runs create nothing), read both exports
again (`after`) and check the invariants. `--dry-run` writes nothing: `after` is the plan's
prediction, checked the same way.

The invariants are small pure functions over (before, after), each its own verdict:
- `every_open_obligation_once`: every obligation open before (at either side) is open at
  exactly one side after: none lost, none duplicated;
- `no_history_duplicated`: no key is held by two objects at the target, nothing that was not
  an open obligation (history: a repaid capture, a paid invoice) was replayed, and no
  historical transaction (capture, refund, charge) appears twice or went missing;
- `totals_per_buyer_agree`: per buyer and currency, the open amounts before and after are equal;
- `tokens_carried`: every token of the source is in the target's vault (its `imported_from`),
  with the same fingerprint.

Provider specifics (how each holds, replays and releases an obligation) live in
`integration.adapters.migration`; nothing here names a provider.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from html import escape
from typing import Any, Literal, Protocol

EXIT_OK, EXIT_INVARIANT, EXIT_INPUT, EXIT_UNFINISHED = 0, 1, 2, 3


class MigrationInputError(ValueError):
    """Bad input: options, credentials, an account that does not exist (exit 2)."""


class MigrationFailed(RuntimeError):
    """A provider refused or stayed unavailable for one step."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ObligationKind(StrEnum):
    AUTHORIZED = "authorized"  # authorized, not captured
    RECEIVABLE = "receivable"  # captured, not repaid
    DISPUTE = "dispute"  # an open dispute


@dataclass(frozen=True, slots=True)
class Contact:
    name: str
    email: str
    payment_method: str
    token: str | None = None  # the buyer's payment token at the target (imported)


@dataclass(frozen=True, slots=True)
class Holding:
    """An open obligation as one provider holds it."""

    key: str
    kind: ObligationKind
    buyer: str
    currency: str
    amount: int  # minor units
    ref: str  # the provider's object that holds it
    movable: bool = True  # the provider can release it
    contact: Contact | None = None
    stays_because: str = ""  # why it cannot move, when the provider says more than its kind


@dataclass(frozen=True, slots=True)
class SideState:
    """One provider's export, in migration terms."""

    open: tuple[Holding, ...]
    tagged: tuple[tuple[str, str], ...]  # (obligation key, object) of every replayed object
    history: tuple[str, ...]  # historical transactions: `capture:cap_...`, `charge:ch_...`
    tokens: tuple[Mapping[str, Any], ...]  # its token_migration rows


@dataclass(frozen=True, slots=True)
class Step:
    action: Literal["move", "release", "stay"]
    holding: Holding
    why: str = ""


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    expected: str
    observed: str
    offenders: tuple[str, ...] = ()


@dataclass
class Report:
    source: str
    target: str
    dry_run: bool
    steps: list[Step]
    checks: list[Check] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # steps that could not be done
    tokens: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks) and not self.failures

    @property
    def exit_code(self) -> int:
        if any(not c.ok for c in self.checks):
            return EXIT_INVARIANT
        return EXIT_UNFINISHED if self.failures else EXIT_OK

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for s in self.steps:
            out[s.action][s.holding.kind.value] += 1
        return {a: dict(k) for a, k in sorted(out.items())}

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "counts": self.counts(),
            "checks": [
                {
                    "name": c.name,
                    "ok": c.ok,
                    "expected": c.expected,
                    "observed": c.observed,
                    "offenders": list(c.offenders[:50]),
                }
                for c in self.checks
            ],
            "failures": self.failures[:100],
            "tokens_imported": len(self.tokens),
            "requests": self.requests,
            "retries": self.retries,
            "seconds": round(self.seconds, 3),
            "steps": [
                {
                    "action": s.action,
                    "key": s.holding.key,
                    "kind": s.holding.kind.value,
                    "buyer": s.holding.buyer,
                    "currency": s.holding.currency,
                    "amount": s.holding.amount,
                    "source_object": s.holding.ref,
                    "why": s.why,
                }
                for s in self.steps
            ],
        }


# --- the plan ---------------------------------------------------------------------------------
# Why an obligation its provider cannot release stays, unless the provider says more.
_STAYS: Mapping[ObligationKind, str] = {
    ObligationKind.DISPUTE: "a dispute is decided by the provider that captured",
    ObligationKind.AUTHORIZED: "the unshipped rest of a partly shipped order",
    ObligationKind.RECEIVABLE: "the order is under dispute",
}


def plan(source: SideState, target: SideState) -> list[Step]:
    """What to do with each obligation open at the source."""
    at_target = {h.key for h in target.open} | {k for k, _ in target.tagged}
    steps = []
    for h in source.open:
        if h.key in at_target:
            steps.append(Step("release", h, "replayed at the target by an earlier run"))
        elif not h.movable:
            steps.append(Step("stay", h, h.stays_because or _STAYS[h.kind]))
        else:
            steps.append(Step("move", h))
    return steps


def predict(
    source: SideState, target: SideState, steps: Sequence[Step]
) -> tuple[SideState, SideState]:
    """The two sides as the plan would leave them (a dry run's `after`)."""
    leaving = {s.holding.key for s in steps if s.action != "stay"}
    moved = [replace(s.holding, ref=f"(new) {s.holding.key}") for s in steps if s.action == "move"]
    tokens = [
        {**row, "token": f"(new) {row['token']}", "imported_from": row["token"]}
        for row in source.tokens
    ]
    return (
        replace(source, open=tuple(h for h in source.open if h.key not in leaving)),
        replace(
            target,
            open=target.open + tuple(moved),
            tagged=target.tagged + tuple((h.key, h.ref) for h in moved),
            tokens=target.tokens + tuple(tokens),
        ),
    )


# --- the invariants ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Evidence:
    before_source: SideState
    before_target: SideState
    after_source: SideState
    after_target: SideState


def every_open_obligation_once(ev: Evidence) -> Check:
    before = {h.key for h in ev.before_source.open + ev.before_target.open}
    held = Counter(h.key for h in ev.after_source.open + ev.after_target.open)
    lost = sorted(k for k in before if held[k] == 0)
    twice = sorted(k for k in before if held[k] > 1)
    return Check(
        "every_open_obligation_once",
        not lost and not twice,
        f"each of {len(before)} open obligations open at exactly one provider",
        f"{len(lost)} lost, {len(twice)} duplicated",
        tuple([f"lost {k}" for k in lost] + [f"duplicated {k}" for k in twice]),
    )


def no_history_duplicated(ev: Evidence) -> Check:
    offenders: list[str] = []
    holders = Counter(k for k, _ in ev.after_target.tagged)
    offenders += [
        f"{k} held by {n} objects at the target" for k, n in sorted(holders.items()) if n > 1
    ]
    known = {h.key for h in ev.before_source.open + ev.before_target.open}
    known |= {k for k, _ in ev.before_target.tagged}
    offenders += [f"{k} was not open: history replayed" for k in sorted(set(holders) - known)]
    for name, before, after in (
        ("source", ev.before_source, ev.after_source),
        ("target", ev.before_target, ev.after_target),
    ):
        counted = Counter(after.history)
        offenders += [f"{t} twice at the {name}" for t, n in sorted(counted.items()) if n > 1]
        offenders += [
            f"{t} missing at the {name}" for t in sorted(set(before.history) - set(counted))
        ]
    return Check(
        "no_history_duplicated",
        not offenders,
        "one target object per obligation; history unchanged",
        f"{len(offenders)} offences",
        tuple(offenders),
    )


def _totals(*sides: SideState) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = defaultdict(int)
    for side in sides:
        for h in side.open:
            out[(h.buyer, h.currency)] += h.amount
    return out


def totals_per_buyer_agree(ev: Evidence) -> Check:
    before = _totals(ev.before_source, ev.before_target)
    after = _totals(ev.after_source, ev.after_target)
    differ = sorted(
        f"{buyer} {cur}: {before.get((buyer, cur), 0)} before, {after.get((buyer, cur), 0)} after"
        for buyer, cur in set(before) | set(after)
        if before.get((buyer, cur), 0) != after.get((buyer, cur), 0)
    )
    return Check(
        "totals_per_buyer_agree",
        not differ,
        f"open amounts of {len(before)} buyer/currency pairs unchanged",
        f"{len(differ)} differ",
        tuple(differ),
    )


def tokens_carried(ev: Evidence) -> Check:
    imported = {row.get("imported_from"): row for row in ev.after_target.tokens}
    missing = sorted(
        row["token"]
        for row in ev.before_source.tokens
        if row["token"] not in imported
        or imported[row["token"]].get("fingerprint") != row.get("fingerprint")
    )
    return Check(
        "tokens_carried",
        not missing,
        f"{len(ev.before_source.tokens)} source tokens in the target's vault",
        f"{len(missing)} missing",
        tuple(f"token {t} not imported" for t in missing),
    )


INVARIANTS: tuple[Callable[[Evidence], Check], ...] = (
    every_open_obligation_once,
    no_history_duplicated,
    totals_per_buyer_agree,
    tokens_carried,
)


def check(ev: Evidence) -> list[Check]:
    return [invariant(ev) for invariant in INVARIANTS]


# --- the run ----------------------------------------------------------------------------------
class Side(Protocol):
    """A provider as the migration uses it (`integration.adapters.migration.MigrationSide`)."""

    provider: str

    async def state(self) -> SideState: ...

    async def import_tokens(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, str]: ...

    async def replay(self, h: Holding, contact: Contact) -> str: ...

    async def release(self, h: Holding) -> None: ...


async def migrate(
    source: Side,
    target: Side,
    *,
    dry_run: bool,
    concurrency: int = 4,
    clock: Callable[[], float] = time.monotonic,
) -> Report:
    started = clock()
    before_s, before_t = await source.state(), await target.state()
    steps = plan(before_s, before_t)
    report = Report(source.provider, target.provider, dry_run, steps)
    if dry_run:
        after_s, after_t = predict(before_s, before_t, steps)
    else:
        if before_s.tokens:
            try:
                report.tokens = await target.import_tokens(before_s.tokens)
            except MigrationFailed as exc:  # the obligations still move; tokens_carried fails
                report.failures.append(f"token import: {exc}")
        gate = asyncio.Semaphore(concurrency)
        # The buyer's imported token, named on each obligation replayed for that buyer.
        tokens = {
            row["owner"]: report.tokens[row["token"]]
            for row in before_s.tokens
            if row.get("status") == "active" and row["token"] in report.tokens
        }

        async def one(step: Step) -> None:
            async with gate:
                await _cut_over(source, target, step, report, tokens.get(step.holding.buyer))

        await asyncio.gather(*(one(s) for s in steps if s.action != "stay"))
        after_s, after_t = await source.state(), await target.state()
    report.checks = check(Evidence(before_s, before_t, after_s, after_t))
    report.seconds = clock() - started
    return report


async def _cut_over(
    source: Side, target: Side, step: Step, report: Report, token: str | None
) -> None:
    h = step.holding
    try:
        if step.action == "move":
            contact = h.contact or Contact(h.buyer, f"{h.buyer}@buyers.invalid", "card")
            await target.replay(h, replace(contact, token=token))
        await source.release(h)
    except MigrationFailed as exc:
        report.failures.append(f"{h.key}: {exc}")


# --- rendering --------------------------------------------------------------------------------
def _money(amount: int, currency: str) -> str:
    return f"{amount} {currency}"


def render_text(report: Report) -> str:
    mode = "dry run" if report.dry_run else "cut-over"
    lines = [
        f"migrate {report.source} -> {report.target} ({mode}): {'OK' if report.ok else 'FAILED'}"
    ]
    for action, kinds in report.counts().items():
        lines.append(f"  {action:8} " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    if not report.steps:
        lines.append("  nothing open at the source")
    lines.append(
        f"  tokens imported {len(report.tokens)}, requests {report.requests}, "
        f"retries {report.retries}, {report.seconds:.1f} s"
    )
    for c in report.checks:
        lines.append(
            f"  [{'ok' if c.ok else 'FAIL'}] {c.name}: {c.observed} (expected {c.expected})"
        )
        lines += [f"      {o}" for o in c.offenders[:10]]
    lines += [f"  step failed: {f}" for f in report.failures[:20]]
    return "\n".join(lines)


def render_html(report: Report, css: str) -> str:
    """One self-contained page (the rehearsal report's stylesheet, passed in)."""
    mode = "dry run" if report.dry_run else "cut-over"
    verdict = "passed" if report.ok else "failed"
    checks = "".join(
        f"<tr class='{'passed' if c.ok else 'failed'}'><td>{'✓' if c.ok else '✗'}</td>"
        f"<td>{escape(c.name)}</td><td>{escape(c.expected)}</td><td>{escape(c.observed)}</td>"
        f"<td>{escape('; '.join(c.offenders[:20]))}</td></tr>"
        for c in report.checks
    )
    steps = "".join(
        f"<tr><td>{escape(s.action)}</td><td>{escape(s.holding.key)}</td>"
        f"<td>{escape(s.holding.buyer)}</td>"
        f"<td>{escape(_money(s.holding.amount, s.holding.currency))}</td>"
        f"<td>{escape(s.why)}</td></tr>"
        for s in report.steps[:2000]
    )
    counts = ", ".join(
        f"{action}: " + " / ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        for action, kinds in report.counts().items()
    )
    failures = "".join(f"<li>{escape(f)}</li>" for f in report.failures[:200])
    title = escape(f"{verdict.upper()} · migrate {report.source} → {report.target} ({mode})")
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>{title}</title>\n<style>{css}</style>\n</head>\n<body>\n"
        f"<header><h1>{title}</h1><p>{escape(counts or 'nothing open at the source')}; "
        f"{len(report.tokens)} tokens imported; {report.requests} requests, {report.retries} "
        f"retries; {report.seconds:.1f} s</p></header>\n"
        "<section><h2>Invariants</h2><table><thead><tr><th></th><th>Check</th><th>Expected</th>"
        f"<th>Observed</th><th>Offenders</th></tr></thead><tbody>{checks}</tbody></table></section>\n"
        + (
            f"<section><h2>Steps that failed</h2><ul>{failures}</ul></section>\n"
            if failures
            else ""
        )
        + "<section><h2>Obligations</h2><table><thead><tr><th>Action</th><th>Key</th><th>Buyer</th>"
        f"<th>Amount</th><th>Why</th></tr></thead><tbody>{steps}</tbody></table></section>\n"
        "</body>\n</html>\n"
    )
