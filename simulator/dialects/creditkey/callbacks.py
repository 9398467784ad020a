"""`order_complete_url`: Credit Key's one call to the merchant, for pended applications.

When an order that waited for manual review is approved (on the account's clock, or by the
underwriter on the control plane), Sandbank GETs the `order_complete_url` given at
`begin_checkout`, with `%CKKEY%` replaced by the order id, as Credit Key does once a pended
application is approved after the borrower has left (the method is inferred from the merchant
handlers, which read GET parameters).

The call leaves after the approval is committed (it is queued behind the COMMIT on the event
loop), to hosts webhooks may reach (`HostPolicy`), with at most `ATTEMPTS` attempts a few
seconds apart. It is best effort, like a browser redirect: it is not stored, so a restart in
between loses it, and the merchant's `find_order` polling remains the source of truth.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import httpx

from simulator.context import Ctx
from simulator.dialects.creditkey.orders import COMPLETE_URL
from simulator.service import ProviderService
from simulator.webhooks.safety import HostPolicy

log = logging.getLogger("sandbank.creditkey")
ATTEMPTS = 3
PAUSE_S = (1.0, 5.0)  # before the second and third attempts
TIMEOUT_S = 10.0


class CompletionCallbacks:
    def __init__(
        self, policy: HostPolicy, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.policy = policy
        self.transport = transport
        self._tasks: set[asyncio.Task[None]] = set()
        # The latest calls made: (url, final status or None), newest last.
        self.sent: deque[tuple[str, int | None]] = deque(maxlen=100)

    def install(self, service: ProviderService) -> None:
        """Watch the events the service writes, besides whoever watched them already."""
        before = service.on_events

        def on_events(ctx: Ctx) -> None:
            if before is not None:
                before(ctx)
            self.collect(ctx)

        service.on_events = on_events

    def collect(self, ctx: Ctx) -> None:
        for event in ctx.events:
            if event.type != "order.authorized":
                continue  # (before `data`, which parses the event's snapshot)
            url = _pended_approval(event.data)
            if url is None:
                continue
            if not self.policy.allows(url):
                log.warning("order_complete_url not called: %s", self.policy.problem(url))
                continue
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no server running (a script driving the service)
                continue
            # Queued behind the group's COMMIT (`Store.grouped` schedules it first).
            loop.call_soon(self._start, url)

    def _start(self, url: str) -> None:
        task = asyncio.get_running_loop().create_task(self._call(url))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call(self, url: str) -> None:
        status: int | None = None
        async with httpx.AsyncClient(
            transport=self.transport, timeout=TIMEOUT_S, follow_redirects=False
        ) as client:
            for attempt in range(ATTEMPTS):
                if attempt:
                    await asyncio.sleep(PAUSE_S[attempt - 1])
                try:
                    status = (await client.get(url)).status_code
                except httpx.HTTPError as exc:
                    log.warning("order_complete_url attempt %d failed: %r", attempt + 1, exc)
                    status = None
                    continue
                if status < 500:
                    break
        self.sent.append((url, status))
        log.info("order_complete_url called: status %s", status)

    async def drain(self) -> None:
        """Wait for the callbacks under way (tests; shutdown)."""
        await asyncio.sleep(0)  # let queued starts run
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _pended_approval(order: dict[str, Any]) -> str | None:
    """The URL to call for an `order.authorized` that ended a review, else None."""
    if order.get("review") is None:
        return None
    url = (order.get("metadata") or {}).get(COMPLETE_URL)
    checkout_id = order.get("checkout_id")
    if not isinstance(url, str) or not url or not isinstance(checkout_id, str):
        return None
    return url.replace("%CKKEY%", checkout_id)
