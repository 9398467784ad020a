"""Around every endpoint of the operation tables: due work in steps, lock waits off the loop.

An attempt of the endpoint runs with due work deferred (`simulator.stepping`): when its
account has work due, the attempt stops before changing anything (`DueWork`), the work runs in
bounded steps, and the endpoint runs again (running inline what fell due in between). When
the write lock is taken by another process and the attempt has committed nothing yet
(`StoreBusy` from a transaction that did not await the lock), the lock is awaited as the API's
writes await it (`Store.writable`) and the attempt retried, within the store's lock wait; past
it, or once something was committed, the 503 stands (Retry-After).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response

from simulator import stepping
from simulator.api.runtime import service_of
from simulator.domain.errors import StoreBusy
from simulator.locks import commits

Endpoint = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")
MAX_ROUNDS = 100  # bounds the rounds (a clock finding new work due each time, a busy lock)
_RETRY_S = 0.005


async def _lock(request: Request) -> None:
    """Await the write lock as the API's writes do (`Store.writable`: short polls, then held
    for the rest of this turn, which the next attempt's transaction joins). Sleeping a fixed
    5 ms between attempts instead lost nearly every race to the webhook process, which polls
    every millisecond or less while it delivers: console forms and control-plane calls
    answered 503 after 2 s of losing."""
    try:
        await service_of(request).store.writable()
    except StoreBusy:
        await asyncio.sleep(_RETRY_S)  # the next attempt meets the lock; the deadline decides


def guarded(endpoint: Endpoint) -> Endpoint:
    async def run(request: Request) -> Response:
        return await retrying(request, lambda: endpoint(request))

    return run


async def retrying(request: Request, attempt: Callable[[], Awaitable[T]]) -> T:
    """`attempt()` under the rules above (also the console's form actions)."""
    stepping.deferring()
    deadline = time.monotonic() + (service_of(request).store.lock_wait_s or 0)
    for _ in range(MAX_ROUNDS):
        made: list[int] = []
        token = commits.set(made)
        try:
            return await attempt()
        except stepping.DueWork as due:
            account: str | None = due.account_id
        except StoreBusy:
            if made or time.monotonic() >= deadline:
                raise
            account = None
        finally:
            commits.reset(token)
        if account is None:
            await _lock(request)
        else:
            await stepping.catch_up(service_of(request), account)
            stepping.deferring(False)  # what fell due since is little: inline
    raise StoreBusy("the account keeps finding new work due; retry shortly")
