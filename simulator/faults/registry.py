"""The fault rules of the server, the attempt counts of Idempotency-Keys, and the per-account
fault dice. Rules and attempt counts live in the store (`simulator.store.shared`), so every
worker process of `sandbank serve --workers N` sees the same rules, a `times: N` rule fires N
times in all, and a restart keeps them (issue #16). Each process caches the rules, reloaded
when the store's `fault_rules_version` moves.

That version is read once per event-loop turn, not once per request (issue #18: the read was
4-5 % of a request). Every request a turn serves was received before the turn began, so after
the COMMIT of any rule change its client could have seen: a check at the turn's start sees
what a check per request would. A change made in this process re-reads at once (`_changed`).

`--faults FILE` loads its rules once per distinct file (a restart with the same file keeps
them and their fired counts; with another file, they are replaced); `/_sandbox/faults`
changes them while running. The dice stay per process (see docs/shared-state.md).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from simulator.clock import parse_duration
from simulator.domain.errors import NotFound, ValidationFailed
from simulator.domain.records import Page
from simulator.faults import engine
from simulator.faults.models import Rule, RuleIn
from simulator.faults.presets import PRESETS
from simulator.rng import SeededRng
from simulator.store.base import Store, StoredRule, Tx
from simulator.store.cursor import page_of

MAX_RULES = 1000


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
    def __init__(self, *, store: Store, server_seed: int, operations: Iterable[str]) -> None:
        self.store = store
        self.server_seed = server_seed
        self.operations = frozenset(operations)
        self._version: str | None = "unread"  # of the cached rules below
        self._checked = False  # the version was read in this event-loop turn
        self._changing = False  # a rule changed in this turn: read the version every time
        self._stored: dict[str, Rule] = {}
        self._by_account: dict[str | None, list[Rule]] = {}
        self._index: dict[tuple[str, str, str | None], list[Rule]] = {}
        self._dice: dict[str, FaultDice] = {}
        self._counted = 0  # attempts counted by this process (to forget old ones now and then)

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
        with self.store.transaction() as tx:
            return self._add(tx, rule, now, preset=preset, origin="api")

    def _add(self, tx: Tx, rule: RuleIn, now: datetime, *, preset: str | None, origin: str) -> Rule:
        self._check_operation(rule, "body")
        if len(tx.fault_rules()) >= MAX_RULES:
            raise ValidationFailed(
                [
                    {
                        "path": "body",
                        "type": "too_many_rules",
                        "message": f"at most {MAX_RULES} rules; delete some first",
                    }
                ]
            )
        # Ids from the server seed and a counter every process shares: same seed, same ids.
        counter = int(self.store.meta(_ID_COUNTER) or 0)
        ids = SeededRng("fault-ids", self.server_seed, counter)
        stored = self.resolve(rule, now, ids.id("flt"), preset=preset)
        self.store.set_meta(_ID_COUNTER, str(ids.counter))
        tx.add_fault_rule(_stored(stored, origin))
        self._changed()
        return stored

    def _changed(self) -> None:
        """Tell every process (this one included) to reload the rules (in the caller's
        transaction)."""
        self.store.set_meta(VERSION_KEY, str(int(self.store.meta(VERSION_KEY) or 0) + 1))
        # Its transaction may still roll back: until the turn is over, read every time.
        self._checked = False
        if self._next_turn():
            self._changing = True

    def load_file(self, rules: Iterable[Any], now: datetime) -> None:
        """The `--faults FILE` rules, validated, stored once: every worker of a server calls
        this at start; the first stores them, the others (and restarts with the same file)
        find them there. Another file replaces the rules an earlier one stored."""
        validated = [self.validate(r, "faults") for r in rules]
        digest = hashlib.sha256(
            orjson.dumps([r.model_dump(mode="json") for r in validated])
        ).hexdigest()
        with self.store.transaction() as tx:
            if self.store.meta(_FILE_KEY) == digest:
                return
            old = [r.id for r in tx.fault_rules() if r.origin == "file"]
            if old:
                tx.delete_fault_rules(old)
            for rule in validated:
                self._add(tx, rule, now, preset=None, origin="file")
            self._changed()
            self.store.set_meta(_FILE_KEY, digest)

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
        with self.store.transaction() as tx:
            return [
                self._add(tx, r, now, preset=name, origin="api")
                for r in preset.build(account, duration)
            ]

    def get(self, rule_id: str) -> Rule:
        for rule in self.rules():
            if rule.id == rule_id:
                return rule
        raise NotFound("fault rule", rule_id)

    def rules(self, account: str | None = None) -> list[Rule]:
        """The stored rules with their fired counts as of now, in creation order."""
        with self.store.transaction(write=False) as tx:
            rules = [_rule(r) for r in tx.fault_rules()]
        return rules if account is None else [r for r in rules if r.account == account]

    def rule_page(self, account: str | None, *, limit: int, cursor: str | None) -> Page[Rule]:
        """`rules`, oldest first, a page at a time (cursors are the stored rows' places)."""
        with self.store.transaction(write=False) as tx:
            stored = tx.fault_rules()
        keyed = ((r.seq, _rule(r)) for r in stored if account is None or r.account_id == account)
        return page_of(keyed, limit, cursor, descending=False)

    def delete(self, rule_id: str) -> Rule:
        with self.store.transaction() as tx:
            for stored in tx.fault_rules():
                if stored.id == rule_id:
                    tx.delete_fault_rules([rule_id])
                    self._changed()
                    return _rule(stored)
        raise NotFound("fault rule", rule_id)

    def clear(self, account: str | None = None) -> int:
        """Delete every rule (or every rule of `account`); always succeeds."""
        with self.store.transaction() as tx:
            doomed = [r.id for r in tx.fault_rules() if account is None or r.account_id == account]
            deleted = tx.delete_fault_rules(doomed) if doomed else 0
            if deleted:
                self._changed()
        return deleted

    def _next_turn(self) -> bool:
        """Forget, at the next event-loop turn, that the version was read (False: no loop
        runs here, nothing to forget)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        loop.call_soon(self._new_turn)
        return True

    def _new_turn(self) -> None:
        self._checked = self._changing = False

    def _sync(self) -> None:
        """Reload the cached rules if any process changed them since they were read (looked
        at once per event-loop turn: see the module docstring)."""
        if self._checked:
            return
        version = self.store.meta(VERSION_KEY)
        if not self._changing and self._next_turn():
            self._checked = True
        if version == self._version:
            return
        with self.store.read() as tx:
            version = self.store.meta(VERSION_KEY)
            stored = [_rule(r) for r in tx.fault_rules()]
        self._version = version
        self._stored = {r.id: r for r in stored}
        self._by_account = {}
        for rule in stored:
            self._by_account.setdefault(rule.account, []).append(rule)
        self._index.clear()

    def active(self) -> bool:
        self._sync()
        return bool(self._stored)

    def candidates_for(
        self, account: str, method: str, operation: str | None, template: str | None
    ) -> list[Rule]:
        """`candidates`, less the rules whose operation, method or path can never match this
        operation (`template` is its path template). Cached per (account, method, operation)
        until the rules change, so rules that cannot match cost a request nothing."""
        self._sync()
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
        self._sync()
        shared = self._by_account.get(None)
        own = self._by_account.get(account)
        if shared and own:
            return [*shared, *own]
        return shared or own or []

    # --- decisions -------------------------------------------------------------------------
    async def choose(
        self,
        rules: list[Rule],
        facts: engine.RequestFacts,
        now_for: Callable[[Rule], datetime],
        dice: FaultDice,
    ) -> Rule | None:
        """The engine's choice, its firing claimed in the store: a stored rule that another
        process retired meanwhile (its `times` used up) or deleted is passed over."""
        left = rules
        while True:
            rule = engine.choose(left, facts, now_for, dice)
            if rule is None or rule.id not in self._stored:  # a Sandbank-Fault header's rule
                if rule is not None:
                    rule.fired += 1
                return rule
            await self.store.writable()
            with self.store.grouped() as (tx, committed):
                fired = tx.claim_fault_rule(rule.id)
            await committed  # the firing is counted before the fault is acted
            if fired is not None:
                rule.fired = fired
                return rule
            if rule.times is not None:
                rule.fired = rule.times  # this process now knows it retired
            left = left[left.index(rule) + 1 :]

    async def attempt(self, account: str, key: str, now_us: int) -> int:
        """Count this request as one more attempt of `key` (1 on first sight), in the group
        commit the request's own operation joins (the response awaits that commit)."""
        await self.store.writable()
        with self.store.grouped() as (tx, committed):
            n = tx.count_attempt(account, key, now_us)
            self._counted += 1
            if self._counted % FORGET_EVERY == 0:
                tx.forget_attempts(None, seen_before_us=now_us - ATTEMPTS_KEPT_US)
        asyncio.ensure_future(committed).add_done_callback(_retrieve)
        return n

    def dice(self, account: str, seed_of: Callable[[str], int]) -> FaultDice:
        found = self._dice.get(account)
        if found is None:
            found = self._dice[account] = FaultDice(account, seed_of(account))
        return found

    def reseed(self, account: str) -> None:
        """The account's seed changed or it was reset: restart its fault dice and attempts."""
        self._dice.pop(account, None)
        with self.store.transaction() as tx:
            tx.forget_attempts(account)


VERSION_KEY = "fault_rules_version"  # meta row every process reads before deciding
_ID_COUNTER = "fault_rng_counter"
_FILE_KEY = "fault_file_digest"
FORGET_EVERY = 10_000  # attempts counted by a process between two sweeps of old ones
ATTEMPTS_KEPT_US = 24 * 3600 * 1_000_000  # an Idempotency-Key not seen for a day is forgotten


def _stored(rule: Rule, origin: str) -> StoredRule:
    data = rule.model_dump_json(by_alias=True, exclude={"fired"})
    return StoredRule(rule.id, rule.account, rule.times, rule.fired, origin, data)


def _rule(stored: StoredRule) -> Rule:
    rule = Rule.model_validate_json(stored.data)
    rule.fired = stored.fired
    return rule


def _retrieve(future: Any) -> None:
    """Mark a group's failure as seen (the operation that shares the group reports it)."""
    if not future.cancelled():
        future.exception()


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
