"""The live fault rules of one server process, the attempt counts of Idempotency-Keys, and the
per-account fault dice. Rules live in memory (like Toxiproxy's toxics): `--faults FILE` loads
them at start, `/_sandbox/faults` changes them while running, a restart forgets live changes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from simulator.clock import parse_duration
from simulator.domain.errors import NotFound, ValidationFailed
from simulator.domain.records import Page
from simulator.faults import engine
from simulator.faults.models import Rule, RuleIn
from simulator.faults.presets import PRESETS
from simulator.rng import SeededRng
from simulator.store.cursor import page_of

MAX_RULES = 1000
MAX_TRACKED_KEYS = 100_000


def _field_path(loc: tuple[int | str, ...], data: Any) -> list[str]:
    """pydantic names the chosen member of a tagged union in `loc` (`effect.status.status`);
    the user wrote `effect.status`, so the tag is left out."""
    parts = [str(p) for p in loc]
    effect = data.get("effect") if isinstance(data, dict) else None
    tag = effect.get("type") if isinstance(effect, dict) else None
    if len(parts) >= 3 and parts[0] == "effect" and parts[1] == tag:
        del parts[1]
    return parts


class FaultDice:
    """An account's fault dice: draw n is BLAKE2b(account, seed, n) in its own stream, so
    faults never shift the ids and decisions the account's main sequence produces."""

    def __init__(self, account: str, seed: int) -> None:
        self.rng = SeededRng(f"faults\x00{account}", seed)

    def random(self) -> float:
        return self.rng.random()

    def randint(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)


class FaultRegistry:
    def __init__(self, *, server_seed: int, operations: Iterable[str]) -> None:
        self._rules: dict[str, Rule] = {}
        self._seq: dict[str, int] = {}  # each rule's place in the list (for page cursors)
        self._added = 0
        self._by_account: dict[str | None, list[Rule]] = {}
        self._ids = SeededRng("fault-ids", server_seed)
        self.operations = frozenset(operations)
        self._attempts: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._dice: dict[str, FaultDice] = {}
        self._index: dict[tuple[str, str, str | None], list[Rule]] = {}

    # --- rules -----------------------------------------------------------------------------
    def validate(self, data: Any, where: str) -> RuleIn:
        """A rule as a user wrote it -> RuleIn, or a 422 naming the field (`where` prefixes it)."""
        try:
            rule = RuleIn.model_validate(data)
        except ValidationError as exc:
            raise ValidationFailed(
                [
                    {
                        "path": ".".join([where, *_field_path(e["loc"], data)]),
                        "message": e["msg"],
                        "type": e["type"],
                    }
                    for e in exc.errors(include_url=False)
                ]
            ) from None
        self._check_operation(rule, where)
        return rule

    def _check_operation(self, rule: RuleIn, where: str) -> None:
        op = rule.match.operation
        if op is not None and op not in self.operations:
            known = ", ".join(sorted(self.operations))
            raise ValidationFailed(
                [
                    {
                        "path": f"{where}.match.operation",
                        "type": "unknown_operation",
                        "message": f"{op!r} is not an operationId of the contract ({known})",
                    }
                ]
            )

    def add(self, rule: RuleIn, now: datetime, *, preset: str | None = None) -> Rule:
        """Store a rule; `now` is the clock its window counts from (the account's, or the wall
        clock for rules that apply to every account)."""
        self._check_operation(rule, "body")
        if len(self._rules) >= MAX_RULES:
            raise ValidationFailed(
                [
                    {
                        "path": "body",
                        "type": "too_many_rules",
                        "message": f"at most {MAX_RULES} rules; delete some first",
                    }
                ]
            )
        stored = self.resolve(rule, now, self._ids.id("flt"), preset=preset)
        self._rules[stored.id] = stored
        self._added += 1
        self._seq[stored.id] = self._added
        self._by_account.setdefault(stored.account, []).append(stored)
        self._index.clear()
        return stored

    @staticmethod
    def resolve(rule: RuleIn, now: datetime, rule_id: str, *, preset: str | None = None) -> Rule:
        start = end = None
        if rule.window is not None:
            if rule.window.duration is not None:
                span = parse_duration(rule.window.duration)  # validated by Window
                start, end = now, now + span
            else:
                start, end = rule.window.start, rule.window.end
        return Rule(
            **rule.model_dump(by_alias=True),
            id=rule_id,
            created_at=now,
            active_from=start,
            active_until=end,
            preset=preset,
        )

    def apply_preset(
        self, name: str, account: str | None, duration: str | None, now: datetime
    ) -> list[Rule]:
        preset = PRESETS.get(name)
        if preset is None:
            raise NotFound("preset", name)
        return [self.add(r, now, preset=name) for r in preset.build(account, duration)]

    def get(self, rule_id: str) -> Rule:
        rule = self._rules.get(rule_id)
        if rule is None:
            raise NotFound("fault rule", rule_id)
        return rule

    def rules(self, account: str | None = None) -> list[Rule]:
        rules = list(self._rules.values())
        return rules if account is None else [r for r in rules if r.account == account]

    def rule_page(self, account: str | None, *, limit: int, cursor: str | None) -> Page[Rule]:
        """`rules`, oldest first, a page at a time."""
        keyed = ((self._seq[r.id], r) for r in self.rules(account))
        return page_of(keyed, limit, cursor, descending=False)

    def delete(self, rule_id: str) -> Rule:
        rule = self.get(rule_id)
        del self._rules[rule_id]
        del self._seq[rule_id]
        self._by_account[rule.account].remove(rule)
        self._index.clear()
        return rule

    def clear(self, account: str | None = None) -> int:
        """Delete every rule (or every rule of `account`); always succeeds."""
        doomed = self.rules(account)
        for rule in doomed:
            self.delete(rule.id)
        return len(doomed)

    def active(self) -> bool:
        return bool(self._rules)

    def candidates_for(
        self, account: str, method: str, operation: str | None, template: str | None
    ) -> list[Rule]:
        """`candidates`, less the rules whose operation, method or path can never match this
        operation (`template` is its path template). Cached per (account, method, operation)
        until the rules change, so rules that cannot match cost a request nothing."""
        key = (account, method, operation)
        found = self._index.get(key)
        if found is None:
            found = self._index[key] = [
                r
                for r in self.candidates(account)
                if (r.match.operation is None or r.match.operation == operation)
                and (r.match.method is None or r.match.method == method)
                and (
                    r.match.path is None or template is None or could_match(r.match.path, template)
                )
            ]
            if len(self._index) > 10_000:
                self._index.clear()
        return found

    def candidates(self, account: str) -> list[Rule]:
        """Rules for every account first, then the account's own, each in creation order."""
        shared = self._by_account.get(None)
        own = self._by_account.get(account)
        if shared and own:
            return [*shared, *own]
        return shared or own or []

    # --- decisions -------------------------------------------------------------------------
    def choose(
        self,
        rules: list[Rule],
        facts: engine.RequestFacts,
        now_for: Callable[[Rule], datetime],
        dice: FaultDice,
    ) -> Rule | None:
        rule = engine.choose(rules, facts, now_for, dice)
        if rule is not None:
            rule.fired += 1
        return rule

    def attempt(self, account: str, key: str) -> int:
        """Count this request as one more attempt of `key` (1 on first sight)."""
        slot = (account, key)
        n = self._attempts.pop(slot, 0) + 1
        self._attempts[slot] = n
        if len(self._attempts) > MAX_TRACKED_KEYS:
            self._attempts.popitem(last=False)
        return n

    def dice(self, account: str, seed_of: Callable[[str], int]) -> FaultDice:
        found = self._dice.get(account)
        if found is None:
            found = self._dice[account] = FaultDice(account, seed_of(account))
        return found

    def reseed(self, account: str) -> None:
        """The account's seed changed or it was reset: restart its fault dice and attempts."""
        self._dice.pop(account, None)
        for slot in [s for s in self._attempts if s[0] == account]:
            del self._attempts[slot]


def _param(seg: str) -> bool:
    return seg.startswith("{") and seg.endswith("}")


def could_match(rule_path: str, template: str) -> bool:
    """Whether some request path of the operation `template` could match the rule's `path`
    (a template, or a prefix ending in `*`). Conservative: a parameter matches anything."""
    star = rule_path.endswith("*")
    rsegs = (rule_path[:-1] if star else rule_path).split("/")
    tsegs = template.split("/")
    if not star and len(rsegs) != len(tsegs):
        return False
    for i, rs in enumerate(rsegs):
        if i >= len(tsegs):
            return False
        ts = tsegs[i]
        if _param(ts) or _param(rs):
            continue
        partial = star and i == len(rsegs) - 1
        if not (ts.startswith(rs) if partial else ts == rs):
            return False
    return True
