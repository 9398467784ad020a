"""A circuit breaker per provider operation family, on an injected clock.

closed: calls go through; `failure_threshold` consecutive failures open it.
open: calls are refused at once (the caller degrades: an ERP hold) until `cooldown_s` passed.
half-open: one trial call at a time; its success closes the breaker, its failure opens it
again for another cooldown.
Only failures that say the provider is unwell count (the retry classification decides); a
4xx for bad input is the caller's problem, not the provider's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from integration.errors import IntegrationError


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerOpen(IntegrationError):
    def __init__(self, family: str, retry_in_s: float) -> None:
        super().__init__(f"the provider's {family} calls are failing; retry in {retry_in_s:.1f}s")
        self.family = family
        self.retry_in_s = retry_in_s


@dataclass
class Breaker:
    family: str
    clock: Callable[[], float]  # monotonic seconds
    failure_threshold: int = 5
    cooldown_s: float = 30.0
    state: State = State.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    trial_in_flight: bool = False

    def before_call(self) -> None:
        """Raise `BreakerOpen` when the call must not be made now."""
        if self.state is State.OPEN:
            waited = self.clock() - self.opened_at
            if waited < self.cooldown_s:
                raise BreakerOpen(self.family, self.cooldown_s - waited)
            self.state = State.HALF_OPEN
            self.trial_in_flight = False
        if self.state is State.HALF_OPEN:
            if self.trial_in_flight:
                raise BreakerOpen(self.family, 0.0)
            self.trial_in_flight = True

    def on_success(self) -> None:
        self.state = State.CLOSED
        self.failures = 0
        self.trial_in_flight = False

    def on_failure(self) -> None:
        self.trial_in_flight = False
        if self.state is State.HALF_OPEN:
            self._open()
            return
        self.failures += 1
        if self.failures >= self.failure_threshold:
            self._open()

    def _open(self) -> None:
        self.state = State.OPEN
        self.opened_at = self.clock()
        self.failures = 0


class Breakers:
    """One breaker per operation family (checkouts, captures, refunds, reads, ...)."""

    def __init__(
        self, clock: Callable[[], float], *, failure_threshold: int = 5, cooldown_s: float = 30.0
    ) -> None:
        self.clock = clock
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._by_family: dict[str, Breaker] = {}

    def __getitem__(self, family: str) -> Breaker:
        found = self._by_family.get(family)
        if found is None:
            found = self._by_family[family] = Breaker(
                family, self.clock, self.failure_threshold, self.cooldown_s
            )
        return found

    def states(self) -> dict[str, State]:
        return {f: b.state for f, b in sorted(self._by_family.items())}
