"""The last line of defence: an exception becomes a problem (a 500 for a bug, a 503 for a
database lock, the error's own for one of ours raised in a middleware), never a bare page."""

from __future__ import annotations

import logging

from simulator.api import problems
from simulator.asgi import REQUEST_ID_KEY, ASGIApp, Message, Receive, Scope, Send
from simulator.domain.errors import SandbankError
from simulator.faults.sockets import ConnectionFault

log = logging.getLogger("sandbank.errors")


class ErrorBoundary:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = finished = False

        async def track(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        try:
            await self.app(scope, receive, track)
        except ConnectionFault:
            raise  # a fault on purpose: the in-process client sees the dead connection
        except Exception as exc:
            if finished:  # Starlette re-raises after its handler answered (and logged): done
                return
            if not isinstance(exc, SandbankError):
                log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if started:  # half a response: the server must cut the connection
                raise
            rid = str(scope.get(REQUEST_ID_KEY, ""))
            await problems.from_exception(exc, rid)(scope, receive, send)
