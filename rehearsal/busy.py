"""The rehearsal's own calls to the simulator retry `503 store_busy`, as any client should.

The simulator answers `503 store_busy` with `Retry-After` when its database stayed locked by
other work for its lock wait (2 s): nothing was changed, so the same request may be sent again,
POSTs included. The runner sets up accounts, fault presets and clock moves through the control
plane while other scenarios run against the same server; a busy moment there must not error a
rehearsal, nor change its action journal (the same seed gives the same journal). Only that
answer is retried: injected faults (their own codes) reach the runner as they are.
"""

from __future__ import annotations

import asyncio

import httpx

ATTEMPTS = 20  # at most ~20 s of Retry-After waits (1 s each), then the 503 is the answer
CODE = "store_busy"


def _busy(response: httpx.Response) -> bool:
    if response.status_code != 503:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("code") == CODE


class BusyRetryTransport(httpx.AsyncBaseTransport):
    """Send; while the answer is `503 store_busy`, wait its Retry-After and send again."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(ATTEMPTS - 1):
            response = await self.inner.handle_async_request(request)
            await response.aread()
            if not _busy(response):
                return response
            await response.aclose()
            try:
                wait = min(float(response.headers.get("retry-after", "1")), 5.0)
            except ValueError:
                wait = 1.0
            await asyncio.sleep(max(wait, 0.05))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


__all__ = ["BusyRetryTransport"]
