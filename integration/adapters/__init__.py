"""Provider adapters, chosen by configuration: `make_adapter({"provider": "sandbank", ...})`.

Configuration keys (all but `provider`, `base_url` and the credentials optional):

    provider: sandbank            # or creditkey
    base_url: http://127.0.0.1:8080   # creditkey: the SDKs' base, e.g. http://127.0.0.1:8080/app
    api_key: sk_test_...          # sandbank's credential
    public_key: acme_...          # creditkey's two credentials
    shared_secret: ...
    timeout_s: 10
    retry: {base_s: 0.2, factor: 2, max_wait_s: 10, max_attempts: 6, max_total_s: 30}
    breaker: {failure_threshold: 5, cooldown_s: 30}

Time, chance and the transport are injected (tests pass manual ones). The wall clock `now`
(for `Retry-After` dates) is always passed in (`integration.wallclock` at the edge); the others
default to `time.monotonic`, `asyncio.sleep`, a system random source and httpx's own transport.
"""

from __future__ import annotations

import asyncio
import random as _random
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import httpx

from integration.adapters.base import (
    AuthorizationStatus,
    Buyer,
    CheckoutRef,
    CheckoutStatus,
    LineItem,
    PlaceOrder,
    ProviderAdapter,
)
from integration.adapters.creditkey import CreditKeyAdapter
from integration.adapters.sandbank import IN_FLIGHT_CODES, SandbankAdapter
from integration.breaker import Breakers
from integration.client import ResilientClient
from integration.errors import IntegrationError
from integration.retry import Backoff
from integration.store import IntegrationStore

PROVIDERS = ("sandbank", "creditkey")
CREDENTIALS = {"sandbank": ("api_key",), "creditkey": ("public_key", "shared_secret")}


class ConfigError(IntegrationError, ValueError):
    """The provider configuration cannot be used (one line, naming the key)."""


def make_adapter(
    config: Mapping[str, Any],
    *,
    store: IntegrationStore,
    now: Callable[[], datetime],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    random: Callable[[], float] | None = None,
    breakers: Breakers | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ProviderAdapter:
    """The adapter for `config["provider"]`, on a `ResilientClient` built from the config."""
    provider = config.get("provider")
    if provider not in PROVIDERS:
        raise ConfigError(
            f"unknown provider {provider!r} in config key 'provider' "
            f"(known: {', '.join(PROVIDERS)})"
        )
    for key in ("base_url", *CREDENTIALS[provider]):
        if not isinstance(config.get(key), str) or not config[key]:
            raise ConfigError(f"config key {key!r} is required for provider {provider!r}")
    retry = dict(config.get("retry") or {})
    breaker = dict(config.get("breaker") or {})
    try:
        backoff = Backoff(**retry)
    except TypeError as exc:
        raise ConfigError(f"config key 'retry': {exc}") from None
    client = ResilientClient(
        config["base_url"],
        config.get("api_key"),  # Credit Key's credentials travel as request parameters
        store=store,
        clock=clock,
        sleep=sleep,
        random=random or _random.SystemRandom().random,
        breakers=breakers
        or Breakers(
            clock,
            failure_threshold=int(breaker.get("failure_threshold", 5)),
            cooldown_s=float(breaker.get("cooldown_s", 30.0)),
        ),
        backoff=backoff,
        timeout=float(config.get("timeout_s", 10.0)),
        transport=transport,
        now=now,
        in_flight_codes=IN_FLIGHT_CODES,
    )
    if provider == "creditkey":
        return CreditKeyAdapter(client, config["public_key"], config["shared_secret"], now=now)
    return SandbankAdapter(client)


__all__ = [
    "AuthorizationStatus",
    "Buyer",
    "CheckoutRef",
    "CheckoutStatus",
    "ConfigError",
    "LineItem",
    "PlaceOrder",
    "ProviderAdapter",
    "make_adapter",
]
