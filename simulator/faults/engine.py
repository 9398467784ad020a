"""The pure decision: given the rules, one request's facts, the time and the dice, which rule
(if any) fires. No I/O, no clock reading, no global randomness."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Protocol

from simulator.faults.models import Latency, Match, Rule


class HeaderLookup(Protocol):
    def get(self, name: str, default: str | None = None, /) -> str | None: ...


class Dice(Protocol):
    def random(self) -> float: ...
    def randint(self, low: int, high: int) -> int: ...


@dataclass(slots=True)
class RequestFacts:
    account: str
    method: str
    path: str
    operation: str | None
    headers: HeaderLookup  # lower-case names
    attempt: int | None  # 1-based attempt of this Idempotency-Key; None without a key


@lru_cache(maxsize=1024)
def path_pattern(template: str) -> re.Pattern[str]:
    """`/v1/orders/{id}/captures` matches one segment per `{…}`; a trailing `*` matches any rest."""
    prefix = template.endswith("*")
    body = template[:-1] if prefix else template
    parts = re.split(r"(\{[^/{}]+\})", body)
    regex = "".join(
        "[^/]+" if p.startswith("{") and p.endswith("}") else re.escape(p) for p in parts
    )
    return re.compile(f"^{regex}{'.*' if prefix else ''}$")


def matches(match: Match, account: str | None, facts: RequestFacts) -> bool:
    """The static part of a rule: everything but window, probability and `times`."""
    if account is not None and account != facts.account:
        return False
    if match.operation is not None and match.operation != facts.operation:
        return False
    if match.method is not None and match.method != facts.method:
        return False
    if match.path is not None and not path_pattern(match.path).match(facts.path):
        return False
    if match.header:
        for name, value in match.header.items():
            if facts.headers.get(name.lower()) != value:
                return False
    if match.attempt is not None:
        n = facts.attempt
        a = match.attempt
        if n is None:
            return False
        if (
            (a.eq is not None and n != a.eq)
            or (a.lte is not None and n > a.lte)
            or (a.gte is not None and n < a.gte)
        ):
            return False
    return True


def probability(rule: Rule, now: datetime) -> float:
    """The rule's firing probability at `now`: 0 outside its window or once retired."""
    if rule.times is not None and rule.fired >= rule.times:
        return 0.0
    start, end = rule.active_from, rule.active_until
    if (start is not None and now < start) or (end is not None and now >= end):
        return 0.0
    if rule.ramp is not None and start is not None and end is not None:
        progress = (now - start) / (end - start)
        ramp = rule.ramp
        return ramp.from_probability + (ramp.to_probability - ramp.from_probability) * progress
    return rule.probability


def choose(
    rules: Iterable[Rule], facts: RequestFacts, now_for: Callable[[Rule], datetime], dice: Dice
) -> Rule | None:
    """The first rule, in creation order, that matches and whose dice say fire. The dice are
    thrown only for probabilities strictly between 0 and 1, so certain rules cost no draw."""
    for rule in rules:
        if not matches(rule.match, rule.account, facts):
            continue
        p = probability(rule, now_for(rule))
        if p <= 0.0:
            continue
        if p >= 1.0 or dice.random() < p:
            return rule
    return None


def latency_ms(effect: Latency, dice: Dice) -> int:
    """A delay drawn from the effect's distribution, never above its cap."""
    if effect.distribution == "fixed":
        value = effect.ms or 0
    elif effect.distribution == "uniform":
        value = dice.randint(effect.min_ms, effect.max_ms or effect.min_ms)
    else:  # lognormal around the median, via Box-Muller on the seeded dice
        u1, u2 = max(dice.random(), 1e-12), dice.random()
        z = math.sqrt(-2.0 * math.log(u1)) * math.cos(2 * math.pi * u2)
        value = int((effect.median_ms or 0) * math.exp(effect.sigma * z))
    return max(0, min(value, effect.cap_ms))
