"""The order-to-cash service's background work, run by the app's lifespan while it serves:

- the resumer drives every open hold again (same intent id, same key) every `resume_every_s`;
- the events poller reads the provider's event list into the inbox at start and then every
  `poll_every_s` (what no webhook brought still arrives);
- the event worker folds queued inbox events into the ERP and the ledger every
  `process_every_s`, and at once when a delivery or a poll brought something new (`wake`).

A loop that fails logs and tries again next round; none of them ends the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from starlette.applications import Starlette

from integration.inbox import Inbox
from integration.ordertocash import OrderToCash

log = logging.getLogger("sandbank.integration")

Lifespan = Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]


@dataclass(frozen=True, slots=True)
class Loops:
    """What runs in the background, and how often (None: not at all)."""

    resume_every_s: float | None
    inbox: Inbox | None
    process_every_s: float | None
    poll_every_s: float | None
    sleep: Callable[[float], Awaitable[None]]


def lifespan(service: OrderToCash, loops: Loops, wake: asyncio.Event) -> Lifespan:
    """The app's lifespan: the loops asked for run while the service does."""
    sleep = loops.sleep

    async def resumer(every_s: float) -> None:
        while True:
            await sleep(every_s)
            try:
                await service.resume()
            except Exception:
                log.exception("the resumer failed; trying again in %ss", every_s)

    async def poller(box: Inbox, every_s: float) -> None:
        while True:  # at once on start: what was missed while the service was down
            try:
                if await service.poll_events(box):
                    wake.set()
            except Exception:
                log.exception("the events poller failed; trying again in %ss", every_s)
            await sleep(every_s)

    async def event_worker(box: Inbox, every_s: float) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), every_s)
            wake.clear()
            try:
                await service.process_events(box)
            except Exception:
                log.exception("the event worker failed; trying again in %ss", every_s)

    @contextlib.asynccontextmanager
    async def running(app: Starlette) -> AsyncIterator[None]:
        tasks = []
        if loops.resume_every_s is not None:
            tasks.append(asyncio.create_task(resumer(loops.resume_every_s)))
        if loops.inbox is not None and loops.poll_every_s is not None:
            tasks.append(asyncio.create_task(poller(loops.inbox, loops.poll_every_s)))
        if loops.inbox is not None and loops.process_every_s is not None:
            tasks.append(asyncio.create_task(event_worker(loops.inbox, loops.process_every_s)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    return running


__all__ = ["Loops", "lifespan"]
