"""The last line of defence: an unexpected exception becomes a 500 problem, never a bare page."""

from __future__ import annotations

import logging

from simulator.api import problems
from simulator.asgi import REQUEST_ID_KEY, ASGIApp, Message, Receive, Scope, Send
from simulator.faults.sockets import ConnectionFault

log = logging.getLogger("sandbank.errors")


class ErrorBoundary:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def track(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, track)
        except ConnectionFault:
            raise  # a fault on purpose: the in-process client sees the dead connection
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if started:
                raise
            rid = str(scope.get(REQUEST_ID_KEY, ""))
            await problems.from_status(500, rid, "the simulator failed; this is a bug")(
                scope, receive, send
            )
