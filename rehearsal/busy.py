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
import time

import httpx

ATTEMPTS = 20  # at most ~20 s of Retry-After waits (1 s each), then the 503 is the answer
CODE = "store_busy"


def _wait(response: httpx.Response) -> float:
    try:
        return max(min(float(response.headers.get("retry-after", "1")), 5.0), 0.05)
    except ValueError:
        return 1.0


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
            await asyncio.sleep(_wait(response))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class BusyRetrySyncTransport(httpx.BaseTransport):
    """The same for a blocking client (the load tests' control-plane calls)."""

    def __init__(self, inner: httpx.BaseTransport | None = None) -> None:
        self.inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(ATTEMPTS - 1):
            response = self.inner.handle_request(request)
            response.read()
            if not _busy(response):
                return response
            response.close()
            time.sleep(_wait(response))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


__all__ = ["BusyRetrySyncTransport", "BusyRetryTransport"]
