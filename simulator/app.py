"""The app factory. The request pipeline is listed once, in order, below."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import contracts
from simulator import __version__, supervisor
from simulator.accounts import Accounts
from simulator.api import hosted, problems, reference, v1
from simulator.api.operations import routes
from simulator.api.reads import ReadCache
from simulator.api.runtime import request_id
from simulator.api.schemas import EventOut, presenter
from simulator.asgi import ASGIApp, Receive, Scope, Send
from simulator.clock import SystemClock, WallClock
from simulator.console import console_routes
from simulator.control import operations as control
from simulator.dialects import creditkey, gateway, invoicing, vcards
from simulator.domain.errors import SandbankError
from simulator.domain.models import Account, AccountSettings, Event
from simulator.domain.records import StoredCounts
from simulator.faults.journal import Journal
from simulator.faults.registry import FaultRegistry
from simulator.metrics import Metrics
from simulator.metrics import endpoint as metrics_endpoint
from simulator.middleware.auth import AuthMiddleware
from simulator.middleware.errors import ErrorBoundary
from simulator.middleware.faults import FaultMiddleware, OperationIndex
from simulator.middleware.idempotency import IdempotencyMiddleware
from simulator.middleware.request_id import AccessLogMiddleware, RequestIdMiddleware
from simulator.middleware.routing import OperationRouter
from simulator.runtime import Runtime
from simulator.scheduler import Scheduler
from simulator.service import ProviderService
from simulator.settings import Settings
from simulator.store import is_url, open_store
from simulator.store.sqlite import SqliteStore
from simulator.store.stats import stored_counts
from simulator.webhooks.dispatcher import Dispatcher
from simulator.webhooks.safety import HostPolicy
from simulator.webhooks.service import WebhookService

log = logging.getLogger("sandbank")
Entropy = Callable[[int], bytes]


def _persisted_secret(settings: Settings, entropy: Entropy) -> str:
    """The admin token: given, or generated once and kept in the data directory."""
    if settings.admin_token:
        return settings.admin_token
    if settings.in_memory:
        return "sbadm_" + entropy(18).hex()
    path = settings.data_dir / "admin_token"
    if path.exists():
        return path.read_text().strip()
    token = "sbadm_" + entropy(18).hex()
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


def _server_seed(settings: Settings, store: SqliteStore, entropy: Entropy) -> int:
    if settings.seed is not None:
        return settings.seed
    kept = store.meta("server_seed")
    if kept is None:
        kept = str(int.from_bytes(entropy(8), "little") >> 1)
        with store.transaction():
            store.set_meta("server_seed", kept)
    return int(kept)


async def _document(request: Request) -> Response:
    if request.url.path.startswith("/_sandbox"):
        path = contracts.SANDBOX
    elif request.url.path.startswith("/gateway"):
        path = contracts.GATEWAY
    elif request.url.path.startswith("/vcards"):
        path = contracts.VCARDS
    elif request.url.path.startswith("/invoicing"):
        path = contracts.INVOICING
    else:
        path = contracts.PROVIDER
    if request.url.path.endswith(".json"):
        return JSONResponse(yaml.safe_load(path.read_text()))
    return Response(path.read_bytes(), media_type="application/yaml")


async def _index(request: Request) -> Response:
    return JSONResponse(
        {
            "name": "sandbank",
            "version": __version__,
            "contract": "/openapi.yaml",
            "docs": "/docs",
            "control_plane": "/_sandbox/openapi.yaml",
        }
    )


def _listen(
    metrics: Metrics,
    journal: Journal,
    service: ProviderService,
    dispatcher: Dispatcher,
    reads: ReadCache,
) -> None:
    """Point the metrics at where their facts are made (see simulator/metrics.py)."""
    journal.listeners.append(metrics.observe_request)
    service.on_job, service.on_advance = metrics.observe_job, metrics.observe_advance
    dispatcher.on_attempt = metrics.observe_attempt
    metrics.read_cache = reads


def create_app(
    settings: Settings,
    *,
    wall_clock: WallClock | None = None,
    entropy: Entropy = os.urandom,
    store: SqliteStore | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
) -> SandbankApp:
    """Build the simulator. The wall clock and entropy are injected here and nowhere below."""
    wall = wall_clock or SystemClock()
    supervisor.scope_to(settings)  # a shared database: health rows of this server's own
    if store is None:
        if not settings.in_memory:
            Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
            if not is_url(settings.db_path):
                Path(settings.db_path).parent.mkdir(parents=True, exist_ok=True)
        store = open_store(settings.db_path)
    # Built in dependency order; the dispatcher is woken by every commit that wrote events.
    wake = asyncio.Event()
    service = ProviderService(
        store, wall, presenter, public_url=settings.base_url, on_events=lambda _ctx: wake.set()
    )
    server_seed = _server_seed(settings, store, entropy)
    operations = OperationIndex(
        (op.method, op.path, op.operation_id)
        for op in [
            *v1.OPERATIONS,
            *creditkey.OPERATIONS,
            *gateway.OPERATIONS,
            *vcards.OPERATIONS,
            *invoicing.OPERATIONS,
        ]
    )
    faults = FaultRegistry(store=store, server_seed=server_seed, operations=operations.ids)
    faults.load_file(settings.fault_rules, wall.now())
    # 0: no journal (listeners only; `--journal-size 0`, the benchmark's baseline)
    journal = Journal(settings.journal_size, store if settings.journal_size > 0 else None)
    accounts = Accounts(store, service, server_seed, faults=faults, journal=journal)
    admin_token = _persisted_secret(settings, entropy)
    policy = HostPolicy(settings.webhook_allowed_hosts)
    webhooks = WebhookService(service, policy, wake.set)
    dispatcher = Dispatcher(
        service,
        webhooks,
        store,
        wall,
        wake=wake,
        policy=policy,
        transport=webhook_transport,
        present_event=present_event,
    )
    ck = creditkey.Dialect(
        accounts.all,
        service,
        policy=policy,
        transport=webhook_transport,
        prefixes=settings.creditkey_prefixes,
    )

    # Metrics listen where the facts are made: the journal (every /v1 request), the service
    # (jobs, clock advances) and the dispatcher (webhook attempts); see simulator/metrics.py.
    def stored() -> StoredCounts:
        with store.read() as tx:
            return stored_counts(tx.c)

    reads = ReadCache(service, reuse=settings.reuse_reads)
    metrics = Metrics(stored, wall) if settings.metrics else None
    if metrics is not None:
        _listen(metrics, journal, service, dispatcher, reads)
    runtime = Runtime(
        settings=settings,
        store=store,
        service=service,
        accounts=accounts,
        admin_token=admin_token,
        faults=faults,
        journal=journal,
        webhooks=webhooks,
        dispatcher=dispatcher,
        creditkey=ck,
        metrics=metrics,
        reads=reads,
    )

    request_ids = itertools.count(1)
    id_prefix = entropy(4).hex()

    async def on_error(request: Request, exc: Exception) -> Response:
        rid = request_id(request)
        if isinstance(exc, HTTPException):  # Starlette's own 404 / 405
            detail = exc.detail
            if exc.status_code == 404:  # no route: say where the routes are written down
                detail = (
                    f"no such path: {request.url.path}; the API is described at /openapi.yaml "
                    "(read it at /docs), the control plane at /_sandbox/openapi.yaml"
                )
            return problems.from_status(exc.status_code, rid, detail, dict(exc.headers or {}))
        if not isinstance(exc, SandbankError):  # anything else: Starlette's last resort
            log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problems.from_exception(exc, rid)

    app = Starlette(
        routes=[
            # The provider API first: every request walks this list until a route matches.
            *routes(v1.OPERATIONS),
            Route("/", _index, methods=["GET"]),
            Route("/openapi.yaml", _document, methods=["GET"]),
            Route("/openapi.json", _document, methods=["GET"]),
            Route("/_sandbox/openapi.yaml", _document, methods=["GET"]),
            Route("/_sandbox/openapi.json", _document, methods=["GET"]),
            Route("/gateway/openapi.yaml", _document, methods=["GET"]),
            Route("/gateway/openapi.json", _document, methods=["GET"]),
            *routes(gateway.OPERATIONS),  # the gateway + net terms personality
            Route("/vcards/openapi.yaml", _document, methods=["GET"]),
            Route("/vcards/openapi.json", _document, methods=["GET"]),
            *routes(vcards.OPERATIONS),  # the virtual cards personality
            Route("/invoicing/openapi.yaml", _document, methods=["GET"]),
            Route("/invoicing/openapi.json", _document, methods=["GET"]),
            *routes(invoicing.OPERATIONS),  # traditional invoicing (EDI 810/820)
            Route("/docs", reference.page, methods=["GET"]),
            Route("/docs/redoc.standalone.js", reference.bundle, methods=["GET"]),
            Route("/_sandbox/docs", reference.page, methods=["GET"]),
            Route("/hosted/checkouts/{id}", hosted.show, methods=["GET"]),
            Route("/hosted/checkouts/{id}", hosted.submit, methods=["POST"]),
            *ck.routes,  # Credit Key's v1 dialect and its hosted checkout
            *routes(control.OPERATIONS),
            Route("/metrics", metrics_endpoint(metrics), methods=["GET"]),
            # The SRE console (HTML, its own session and CSRF; not in any published contract).
            *console_routes(runtime, stored, entropy),
        ],
        # Exception: instead of Starlette's plain-text "Internal Server Error" page.
        exception_handlers={SandbankError: on_error, HTTPException: on_error, Exception: on_error},
        lifespan=_lifespan(
            dispatcher,
            Scheduler(service, wall, f"inline-{entropy(4).hex()}"),
            inline=not settings.webhook_process,
        ),
    )
    app.state.runtime = runtime

    # The pipeline, outermost first. Each layer sees what the ones above it decided.
    pipeline: list[tuple[str, Callable[[Any], Any]]] = [
        # 1. every request and response gets a Request-Id
        (
            "request_id",
            lambda a: RequestIdMiddleware(a, lambda: f"req_{id_prefix}{next(request_ids):08d}"),
        ),
        # 2. one JSON log line per request (after the id exists, around everything else)
        ("access_log", AccessLogMiddleware),
        # 2b. Credit Key's dialect (/app/ecomm, /ecomm): its prefixes onto one path, CORS, its
        #    credentials (body or query) -> account, and its error bodies for every problem after
        ("creditkey", ck.edge),
        # 3. an unexpected exception becomes a 500 problem, never a bare page
        ("errors", ErrorBoundary),
        # 4. who is calling: account API key on /v1 and /gateway/v1, admin token on /_sandbox
        (
            "auth",
            lambda a: AuthMiddleware(a, account_for_key=accounts.for_key, admin_token=admin_token),
        ),
        # 5. faults and the request journal (/v1 and Credit Key's): a `before` fault acts while
        #    nothing is stored; an `after` fault lets the operation commit, then spoils the reply
        (
            "faults",
            lambda a: FaultMiddleware(
                a,
                registry=faults,
                journal=journal,
                operations=operations,
                load_account=accounts.get,
                wall_clock=wall,
            ),
        ),
        # 6. Idempotency-Key: validate, fingerprint, refuse concurrent duplicates
        ("idempotency", IdempotencyMiddleware),
        # 7. routing: /v1 endpoints, control plane, hosted pages, documents (a route straight
        #    from a tree of Starlette's list; a miss, a 405 or a redirect through Starlette)
    ]
    asgi: Any = OperationRouter(app, on_error)
    for _name, layer in reversed(pipeline):
        asgi = layer(asgi)

    if settings.demo_account:
        _ensure_demo(store, accounts)
    store.bound_wal(settings.wal_limit_mb)
    if settings.store_lock_wait_s is not None:
        store.serving(settings.store_lock_wait_s)  # startup done: no request blocks on a lock
    return SandbankApp(asgi, app, runtime, [name for name, _ in pipeline])


def present_event(event: Event, thin: bool) -> dict[str, Any]:
    """A webhook's body: the event as `GET /v1/events/{id}` shows it (`thin`: ids only)."""
    data = EventOut.of(event).model_dump(mode="json")
    if thin:
        data["data"] = {"id": event.object_id, "object": event.object_type}
    return data


def _lifespan(
    dispatcher: Dispatcher, scheduler: Scheduler, *, inline: bool
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """The dispatcher and the scheduler run while the server does, here or in processes of
    their own (`inline` False, `simulator.supervisor`); in-process tests, which have no
    lifespan, flush the dispatcher and move clocks themselves instead."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        due_work = None
        if inline:
            await dispatcher.start()
            due_work = asyncio.create_task(scheduler.serve(), name="sandbank-scheduler")
        app.state.due_work = due_work
        try:
            yield
        finally:
            if due_work is not None:
                due_work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await due_work
            await dispatcher.stop()

    return lifespan


class SandbankApp:
    """The composed pipeline, exposing its runtime for tests, the CLI and the webhook worker."""

    def __init__(
        self, asgi: ASGIApp, app: Starlette, runtime: Runtime, pipeline: list[str]
    ) -> None:
        self._asgi = asgi
        self.app = app
        self.runtime = runtime
        self.pipeline = pipeline  # the layers' names, outermost first

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._asgi(scope, receive, send)


def _ensure_demo(store: SqliteStore, accounts: Accounts) -> Account:
    demo_id = store.meta("demo_account_id")
    if demo_id is not None:
        with store.transaction() as tx:
            found = tx.account(demo_id)
        if found is not None:
            return found
    # The demo account is for trying things by hand, one-off `Sandbank-Fault` headers included.
    account = accounts.create(
        name="demo", seed=42, settings=AccountSettings(allow_fault_header=True)
    )
    with store.transaction():
        store.set_meta("demo_account_id", account.id)
    return account


def demo_account(app: SandbankApp) -> Account | None:
    store = app.runtime.store
    demo_id = store.meta("demo_account_id")
    if demo_id is None:
        return None
    with store.transaction() as tx:
        return tx.account(demo_id)
