"""The runtime: every long-lived part of one simulator, built once by `create_app` in dependency
order and frozen. Endpoints reach it with `runtime_of(request)`; the CLI, the webhook worker and
the tests through `SandbankApp.runtime`. One typed object instead of loose attributes on the
Starlette app, so that mypy sees every use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request

from simulator.accounts import Accounts
from simulator.api.reads import ReadCache
from simulator.faults.journal import Journal
from simulator.faults.registry import FaultRegistry
from simulator.metrics import Metrics
from simulator.service import ProviderService
from simulator.settings import Settings
from simulator.store.sqlite import SqliteStore
from simulator.webhooks.dispatcher import Dispatcher
from simulator.webhooks.service import WebhookService

if TYPE_CHECKING:  # the dialect's endpoints reach this module through `runtime_of`
    from simulator.dialects.creditkey import Dialect


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    store: SqliteStore
    service: ProviderService
    accounts: Accounts
    admin_token: str
    faults: FaultRegistry
    journal: Journal
    webhooks: WebhookService
    dispatcher: Dispatcher
    creditkey: Dialect  # Credit Key's v1 dialect: its routes, pipeline layer and callbacks
    metrics: Metrics | None  # None with `--no-metrics`
    reads: ReadCache  # answers of reads reused while unchanged (`simulator.api.reads`)


def runtime_of(request: Request) -> Runtime:
    """The runtime of the app serving `request` (set once by `create_app`)."""
    # By key, from the scope: `request.app.state.runtime` reaches `State.__getattr__` only
    # after a failed attribute lookup (an AttributeError raised and caught), 0.6 us a call and
    # four calls a request; this is 0.1 us.
    runtime: Runtime = request.scope["app"].state["runtime"]
    return runtime
