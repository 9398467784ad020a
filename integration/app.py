"""The order-to-cash service's HTTP API (`create_service_app`): thin endpoints that parse the
body (`integration.bodies`), call `OrderToCash` and answer its view; errors are
application/problem+json (`integration.problems`); the background loops
(`integration.loops`) run in the lifespan.

    POST /orders                      place an order on credit     201, or 202 held
    GET  /orders/{id}                 the order, its holds, ledger and provider view   200
    POST /orders/{id}/ship            {"amount": minor units}      200, or 202 held
    POST /orders/{id}/refund          {"amount": minor units}      200, or 202 held
    POST /orders/{id}/cancel                                       200, or 202 held
    GET  /metrics                     Prometheus text (`integration.metrics`)
    GET  /status                      JSON: open holds, breakers, provider, request outcomes
    POST /webhooks/provider           Standard Webhooks into the inbox (with secrets)

A 202 carries the open hold as `pending`: the provider could not be reached in time, the work
is owed and the resumer finishes it with the same idempotency key. "In time" is the request's
budget (`request_budget_s`, `integration.deadline`): all provider calls of one shop request
share it, so the shop hears back within about that long however the provider fails (refused
connections, 503s with long Retry-After, hanging requests), and an open breaker answers at once.
Every shop request is counted by route and outcome, and timed (`integration.metrics`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from integration import deadline, logs
from integration.bodies import AmountIn, PlaceOrderIn, parse
from integration.errors import Problem
from integration.inbox import Inbox
from integration.loops import Loops, lifespan
from integration.metrics import CONTENT_TYPE
from integration.ordertocash import OrderToCash, Outcome
from integration.problems import HANDLERS
from integration.receiver import DEFAULT_TOLERANCE_S, Verifier, webhook_endpoint
from integration.views import hold_json

WEBHOOK_PATH = "/webhooks/provider"
# How a shop request ended, by the problem's status (any other 4xx: rejected).
OUTCOMES = {502: "refused", 503: "unavailable"}
Endpoint = Callable[[Request], Awaitable[Response]]


def create_service_app(
    service: OrderToCash,
    *,
    resume_every_s: float | None = 30.0,
    inbox: Inbox | None = None,
    webhook_secrets: str | Sequence[str] = (),
    process_every_s: float | None = 1.0,
    poll_every_s: float | None = None,
    webhook_clock: Callable[[], datetime] | None = None,
    webhook_tolerance_s: int = DEFAULT_TOLERANCE_S,
    correlation_ids: Callable[[], str] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    request_budget_s: float | None = 0.8,
    timer: Callable[[], float] = time.perf_counter,
) -> Starlette:
    """The order-to-cash API.

    `resume_every_s` (None: off) paces the background resumer. With an `inbox`, the event
    worker folds provider events into the ERP and the ledger (`OrderToCash.process_events`)
    every `process_every_s` (None: off; tests call it) and at once after each new delivery
    or poll that brought something new; with `webhook_secrets` too, `POST /webhooks/provider`
    receives Standard Webhooks into that inbox (verified on `webhook_clock`, default the
    service's clock). `poll_every_s` (None: off) runs the events poller
    (`OrderToCash.poll_events`) at start and then every so often: it reads the provider's
    event list after the inbox's stored cursor into the same inbox, so an event no webhook
    brought still arrives, and one both delivered and polled is processed once. The resumer
    and the poller wait with `sleep`. `correlation_ids` makes the ids of requests that bring
    no `X-Correlation-Id` (default: random, from the OS). `request_budget_s` (None: no limit
    but the client's retry rules) bounds the provider calls of each shop request; `timer`
    (seconds, monotonic) times the answers for the metrics.
    """
    new_correlation_id = correlation_ids or logs.random_ids()
    wake = asyncio.Event()
    secrets = [webhook_secrets] if isinstance(webhook_secrets, str) else list(webhook_secrets)
    if secrets and inbox is None:
        raise ValueError("webhook secrets need an inbox to receive into")
    if poll_every_s is not None and inbox is None:
        raise ValueError("the events poller needs an inbox to poll into")

    def answer(outcome: Outcome, created: bool = False) -> JSONResponse:
        body: dict[str, Any] = service.view(outcome.order)
        if outcome.hold is not None:
            body["pending"] = hold_json(outcome.hold)
            return JSONResponse(body, status_code=202)
        return JSONResponse(body, status_code=201 if created else 200)

    async def place(request: Request) -> JSONResponse:
        placed = parse(PlaceOrderIn, await request.body()).domain()
        return answer(await service.place_order(placed), created=True)

    async def ship(request: Request) -> JSONResponse:
        body = parse(AmountIn, await request.body())
        return answer(await service.ship(request.path_params["order_id"], body.amount))

    async def refund(request: Request) -> JSONResponse:
        body = parse(AmountIn, await request.body())
        return answer(await service.refund(request.path_params["order_id"], body.amount))

    async def cancel(request: Request) -> JSONResponse:
        return answer(await service.cancel(request.path_params["order_id"]))

    async def get(request: Request) -> JSONResponse:
        return JSONResponse(await service.get_order(request.path_params["order_id"]))

    def shop(route: str, handler: Endpoint) -> Endpoint:
        """A shop-facing endpoint: under the request budget, counted and timed."""

        async def endpoint(request: Request) -> Response:
            started = timer()
            outcome = "error"
            try:
                with deadline.within(request_budget_s):
                    response = await handler(request)
                outcome = "held" if response.status_code == 202 else "ok"
                return response
            except Problem as exc:
                outcome = OUTCOMES.get(exc.status, "rejected")
                raise
            finally:
                service.metrics.request_answered(route, outcome, timer() - started)

        return endpoint

    async def metrics(request: Request) -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    async def status(request: Request) -> JSONResponse:
        return JSONResponse(service.metrics.status())

    def delivered(webhook_id: str, new: bool) -> None:
        if new:
            wake.set()

    routes = [
        Route(path, shop(f"{method} {path}", handler), methods=[method])
        for method, path, handler in (
            ("POST", "/orders", place),
            ("GET", "/orders/{order_id}", get),
            ("POST", "/orders/{order_id}/ship", ship),
            ("POST", "/orders/{order_id}/cancel", cancel),
            ("POST", "/orders/{order_id}/refund", refund),
        )
    ]
    routes += [
        Route("/metrics", metrics, methods=["GET"]),
        Route("/status", status, methods=["GET"]),
    ]
    if secrets:
        assert inbox is not None
        verifier = Verifier(
            secrets, clock=webhook_clock or service.clock, tolerance_s=webhook_tolerance_s
        )
        receive = webhook_endpoint(inbox, verifier, on_accepted=delivered)
        routes.append(Route(WEBHOOK_PATH, receive, methods=["POST"]))
    app = Starlette(
        routes=routes,
        exception_handlers=HANDLERS,
        # Outermost of the user middleware: the id is bound before any endpoint runs.
        middleware=[Middleware(logs.CorrelationMiddleware, new_id=new_correlation_id)],
        lifespan=lifespan(
            service,
            Loops(resume_every_s, inbox, process_every_s, poll_every_s, sleep),
            wake,
        ),
    )
    app.state.inbox = inbox
    return app


__all__ = ["WEBHOOK_PATH", "create_service_app"]
