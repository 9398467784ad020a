"""The pipeline's last step: a request for one of Starlette's routes goes straight to its
endpoint, found in a tree of the route list (`simulator.paths`), instead of through
Starlette's two exception middlewares, its router's regex per route and `request_response`'s
two wrappers (six frames and three send wrappers a request, for one here): with
`simulator.paths`, 692 k -> 609 k instructions per GET (`bench/post_cost.py --get`).

The answer is the one Starlette gives, by construction:

- The route is the first in Starlette's list whose path and method match, as its router
  picks it. Anything else (no route, a 405, a trailing-slash redirect, a `Mount`, a path the
  tree cannot decide, a `root_path`) goes to the Starlette app itself.
- Only routes whose endpoint is a coroutine function wrapped by `request_response` alone (no
  per-route middleware) are called here, with the scope keys Starlette's router sets.
- An exception is handled as Starlette's layers handle it (`_failed`): its exception handlers
  (ours: `SandbankError`, `HTTPException`) answer before the response starts; past that, or
  for any other exception, the server-error handler answers if it still can, and the
  exception is raised on to `ErrorBoundary` and the server.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator.asgi import Message, Receive, Scope, Send
from simulator.domain.errors import SandbankError
from simulator.paths import PathTable, segments

ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]
# Starlette's `exception_handlers` other than the catch-all `Exception` (the server-error one).
HANDLED = (SandbankError, HTTPException)


def _direct(route: Route) -> bool:
    """The route's ASGI app is `request_response(endpoint)` of a coroutine function."""
    return (
        inspect.iscoroutinefunction(route.endpoint)
        and getattr(route.app, "__qualname__", "") == "request_response.<locals>.app"
    )


class OperationRouter:
    """Starlette's routing for its direct routes; the Starlette app for everything else."""

    def __init__(self, app: Starlette, on_error: ErrorHandler) -> None:
        self.app = app
        self.on_error = on_error
        listed: list[tuple[str, set[str], Route | None]] = []
        for route in app.routes:
            # Up to the first route the tree cannot model: what follows it goes to Starlette.
            if not isinstance(route, Route) or segments(route.path) is None:
                break
            listed.append((route.path, route.methods or set(), route if _direct(route) else None))
        self.table: PathTable[Route | None] = PathTable(listed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = (
            self.table.match(scope["method"], scope["path"])
            if scope["type"] == "http" and not scope.get("root_path")
            else None
        )
        route, params = found if isinstance(found, tuple) else (None, {})
        if route is None:
            await self.app(scope, receive, send)
            return
        # What Starlette.__call__ and its router leave in the scope for the endpoint.
        scope["app"] = self.app
        scope.setdefault("router", self.app.router)
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {**scope.get("path_params", {}), **params}
        request = Request(scope, receive, send)
        started = False

        async def sender(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        endpoint: Endpoint = route.endpoint
        try:
            response = await endpoint(request)
            await response(scope, receive, sender)
        except Exception as exc:
            await self._failed(exc, request, scope, receive, sender, started=started)

    async def _failed(
        self,
        exc: Exception,
        request: Request,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        started: bool,
    ) -> None:
        if isinstance(exc, HANDLED):
            if not started:  # ExceptionMiddleware: the handler answers, nothing is raised
                await (await self.on_error(request, exc))(scope, receive, send)
                exc.__traceback__ = None  # as Starlette: a reused instance keeps no traceback
                return
            error: Exception = RuntimeError(
                "Caught handled exception, but response already started."
            )
            error.__cause__ = exc
        else:
            error = exc
        # ServerErrorMiddleware: the handler answers if the response has not started; the
        # exception goes on up.
        response = await self.on_error(Request(scope), error)
        if not started:
            await response(scope, receive, send)
        raise error
