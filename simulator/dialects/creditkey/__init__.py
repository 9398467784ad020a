"""Credit Key's v1 "ecomm" API as a dialect of Sandbank: a drop-in for Credit Key's staging.

A thin edge over the same service, store, clock, faults, journal, events and webhooks as `/v1`:
`edge` speaks Credit Key's conventions (prefixes, CORS, credentials, error shapes), `api` maps
each endpoint onto the native service methods, `orders` reads a Credit Key order off the
native checkout and order, `money` converts decimal dollars to integer cents exactly, `hosted`
serves the checkout page creditkey-js embeds, `callbacks` calls `order_complete_url`, and
`document` publishes `contracts/creditkey.yaml` from the same operation table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import httpx
from starlette.routing import BaseRoute

from simulator.api.operations import routes
from simulator.asgi import ASGIApp
from simulator.dialects.creditkey import hosted
from simulator.dialects.creditkey.api import OPERATIONS
from simulator.dialects.creditkey.callbacks import CompletionCallbacks
from simulator.dialects.creditkey.credentials import KeyIndex, credentials
from simulator.dialects.creditkey.edge import DEFAULT_PREFIXES, CreditKeyEdge
from simulator.domain.models import Account
from simulator.service import ProviderService
from simulator.webhooks.safety import HostPolicy


class Dialect:
    """What `create_app` mounts: the routes, the pipeline layer, the completion callbacks."""

    def __init__(
        self,
        accounts: Callable[[], Iterable[Account]],
        service: ProviderService,
        *,
        policy: HostPolicy,
        transport: httpx.AsyncBaseTransport | None = None,
        prefixes: tuple[str, ...] = DEFAULT_PREFIXES,
    ) -> None:
        """`accounts`: every account (`Accounts.list`), read when a public key is new."""
        self.keys = KeyIndex(accounts)
        self.prefixes = prefixes
        self.routes: list[BaseRoute] = [*routes(OPERATIONS), *hosted.ROUTES]
        self.callbacks = CompletionCallbacks(policy, transport)
        self.callbacks.install(service)

    def edge(self, app: ASGIApp) -> CreditKeyEdge:
        return CreditKeyEdge(app, account_for=self.keys.check, prefixes=self.prefixes)


__all__ = ["DEFAULT_PREFIXES", "OPERATIONS", "Dialect", "credentials"]
