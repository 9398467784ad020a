"""Stamp every request and response with a `Request-Id`, and write one JSON log line each."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import orjson

from simulator.asgi import ACCOUNT_KEY, REQUEST_ID_KEY, ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("sandbank.access")


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp, next_id: Callable[[], str]) -> None:
        self.app = app
        self.next_id = next_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = self.next_id()
        scope[REQUEST_ID_KEY] = rid
        header = (b"request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        await self.app(scope, receive, send_with_id)


CORRELATION_HEADER = b"x-correlation-id"


class AccessLogMiddleware:
    """One line per request: request_id, account, method, path, status, latency_ms, and the
    caller's `X-Correlation-Id` when it sent one (so one id follows a request from the
    merchant's system into the simulator's log)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not access_log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def capture_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture_status)
        finally:
            line = {
                "request_id": scope.get(REQUEST_ID_KEY),
                "account": scope.get(ACCOUNT_KEY),
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            }
            for name, value in scope["headers"]:
                if name == CORRELATION_HEADER:
                    line["correlation_id"] = value[:200].decode("latin-1")
                    break
            line.update(scope.get("sandbank.log", {}))
            access_log.info(orjson.dumps(line).decode())
