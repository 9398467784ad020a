"""A time budget for provider calls made on behalf of one unit of work (a shop's request, one
drive of a held operation), carried in a `contextvars.ContextVar` like the correlation id, so
it follows the work through every `await` without being passed through the adapter.

The shop must get an answer fast even when the provider does not: `within(0.8)` around a
request gives every provider call in it, together, 0.8 s. `ResilientClient.call` reads the
budget: no attempt starts once it is spent, an attempt's timeout is cut to what is left, and a
backoff wait that would outlast it ends the call with `ProviderUnavailable` instead, so the
caller holds the work (202) and the resumer finishes it later with the same key.

The budget is measured on the client's own injected clock, from the first provider call made
under it (the work before that is local), so tests with a manual clock stay deterministic.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(slots=True)
class Budget:
    seconds: float
    started: float | None = None  # on the client's clock, at the first call that asked

    def remaining(self, now: float) -> float:
        """Seconds left at `now` (the client's clock); the first reading starts the budget."""
        if self.started is None:
            self.started = now
        return self.started + self.seconds - now


_budget: ContextVar[Budget | None] = ContextVar("sandbank_integration_budget", default=None)


def current() -> Budget | None:
    """The budget of the work in progress, if it has one."""
    return _budget.get()


@contextlib.contextmanager
def within(seconds: float | None) -> Iterator[Budget | None]:
    """Give the provider calls of the block `seconds` together (None: no budget of its own;
    an enclosing one, if any, still applies)."""
    if seconds is None:
        yield _budget.get()
        return
    if seconds <= 0:
        raise ValueError("a time budget is a positive number of seconds")
    budget = Budget(seconds)
    token = _budget.set(budget)
    try:
        yield budget
    finally:
        _budget.reset(token)


__all__ = ["Budget", "current", "within"]
