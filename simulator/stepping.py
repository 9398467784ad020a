"""Heavy account work in bounded steps, so that one account's work never stalls the others.

Work that falls due on an account's clock used to run inside the transaction of the request
that found it due: months of it (a 90-day advance, or a server started after a long pause) held
the database's write lock and the event loop for seconds, and every other request of every
account waited (issue #17). Now an API request never runs due work inline:

- `_open` of an account transaction, inside an API request (`defers_due`), raises `DueWork`
  before touching anything when work is due; the request's guard (`simulator.api.guard`)
  then runs `catch_up` and the request again, this time running inline the little that fell
  due meanwhile.
- `catch_up` runs the due jobs `STEP_JOBS` at a time, each step its own transaction, awaiting
  the write lock without blocking the loop (`Store.writable`) and pausing `PAUSE_S` between
  steps, so that other requests of this process and the other processes get their turn.
- `advance_clock` does the same up to the target, moving the clock to the time of the last
  job run after each step: between steps the account reads a time whose due work is all done,
  so a request on that account in between sees a consistent state.

The steps run the same jobs in the same order at the same account times as one transaction
would, so the results (ids, events, money) are the same; only the commit boundaries differ. A
crash between steps leaves the clock at the last step's time, all its work done.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from simulator.locks import commits

if TYPE_CHECKING:
    from simulator.service import ProviderService

STEP_JOBS = 2000  # due jobs per step at most ...
STEP_SECONDS = 0.05  # ... and no more once this long has passed (at least one job a step)
PAUSE_S = 0.002  # between steps: the other processes' lock polls get in

_defer: ContextVar[bool] = ContextVar("sandbank_defer_due", default=False)


class DueWork(Exception):
    """Work is due on the account's clock; run `catch_up`, then the request again."""

    def __init__(self, account_id: str) -> None:
        super().__init__(account_id)
        self.account_id = account_id


def defers_due() -> bool:
    """True inside an API request that has changed nothing yet (see `deferring`)."""
    if not _defer.get():
        return False
    return not commits.get()


def deferring(defer: bool = True) -> None:
    """From now on in this context (one request), account transactions defer due work (or,
    `False`, run it inline again: right after a catch-up only what fell due since is left,
    and on a fast clock deferring it again would chase the clock round after round)."""
    _defer.set(defer)


async def catch_up(service: ProviderService, account_id: str) -> None:
    """Run the work due on the account's clock, in steps (see the module docstring)."""
    while True:
        await service.store.writable()
        with service.scope(account_id, step=STEP_JOBS) as ctx:
            left = ctx.due_left
        if not left:
            return
        await asyncio.sleep(PAUSE_S)


async def advance_clock(
    service: ProviderService, account_id: str, *, by: timedelta | None, to: datetime | None
) -> datetime:
    """`ProviderService.advance_clock` in steps; the clock's time once done."""
    target: datetime | None = None
    while True:
        await catch_up(service, account_id)
        await service.store.writable()
        with service.scope(account_id, step=STEP_JOBS) as ctx:
            if ctx.due_left:  # fell due meanwhile (a running clock): catch up again
                continue
            if target is None:
                target = service.advance_target(ctx, by=by, to=to)
            if service.advance_step(ctx, target, STEP_JOBS):
                return ctx.now
        await asyncio.sleep(PAUSE_S)
