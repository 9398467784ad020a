"""Provider adapters, chosen by configuration: `make_adapter({"provider": "sandbank", ...})`.

Configuration keys (all but `provider`, `base_url` and the credentials optional):

    provider: sandbank            # or creditkey, gateway (gateway + net terms, /gateway/v1),
                                  # vcard (/vcards/v1) or invoicing (EDI, /invoicing/v1)
    base_url: http://127.0.0.1:8080   # creditkey: the SDKs' base, e.g. http://127.0.0.1:8080/app
    api_key: sk_test_...          # the credential of sandbank, gateway, vcard and invoicing
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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from integration.adapters import gateway, invoicing, sandbank, vcard
from integration.adapters.base import (
    AuthorizationStatus,
    Buyer,
    CheckoutRef,
    CheckoutStatus,
    LineItem,
    PlaceOrder,
    ProviderAdapter,
)
from integration.adapters.collection_facts import collection_fact
from integration.adapters.creditkey import CreditKeyAdapter
from integration.adapters.gateway import GatewayAdapter
from integration.adapters.invoicing import InvoicingAdapter
from integration.adapters.mounted import invoice_checkout
from integration.adapters.sandbank import IN_FLIGHT_CODES, ProviderDataError, SandbankAdapter
from integration.adapters.servicenow import ServiceNowTickets
from integration.adapters.vcard import VcardAdapter
from integration.adapters.zendesk import ZendeskTickets
from integration.breaker import Breakers
from integration.client import ResilientClient
from integration.errors import IntegrationError
from integration.model import Authorization, EventKind, Payment, Settlement
from integration.retry import Backoff
from integration.store import IntegrationStore
from integration.ticketing import TicketSystem

PROVIDERS = ("sandbank", "creditkey", "gateway", "vcard", "invoicing")
CREDENTIALS = {
    "sandbank": ("api_key",),
    "creditkey": ("public_key", "shared_secret"),
    "gateway": ("api_key",),
    "vcard": ("api_key",),
    "invoicing": ("api_key",),
}
# The GL mapping of each provider's approach (one YAML per approach, in the integration
# package): embedded credit for Sandbank's /v1 and Credit Key, gateway + net terms for the
# gateway, virtual cards for vcard. `sandbank integration serve --gl-mapping` overrides it.
_HERE = Path(__file__).resolve().parent.parent
GL_MAPPINGS = {
    "sandbank": _HERE / "gl_mapping.yaml",
    "creditkey": _HERE / "gl_mapping.yaml",
    "gateway": _HERE / "gl_mapping_gateway.yaml",
    "vcard": _HERE / "gl_mapping_vcards.yaml",
    "invoicing": _HERE / "gl_mapping_invoicing.yaml",
}
# Every provider's event types, in canonical kinds (webhook bodies name their type only).
EVENT_KIND: Mapping[str, EventKind] = {
    **sandbank.EVENT_KIND,
    **gateway.EVENT_KIND,
    **vcard.EVENT_KIND,
    **invoicing.EVENT_KIND,
}


# The order states each provider's events carry, by the `object_type` of the event body, read
# by the provider's adapter in the inbox's terms (`integration.inbox`): Sandbank's order
# snapshots. The gateway's, the virtual cards' and invoicing's invoice events carry none.
ORDER_STATES: Mapping[str, Callable[[Mapping[str, Any]], tuple[str, int, int, str] | None]] = {
    "order": sandbank.order_state,
}


def order_state(payload: Mapping[str, Any]) -> tuple[str, int, int, str] | None:
    """(inbox state, captured, refunded, currency) of the order snapshot an event body carries,
    read by its provider's adapter; None when it carries none the inbox can use."""
    read = ORDER_STATES.get(str(payload.get("object_type")))
    return None if read is None else read(payload)


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
    _require(config, ("base_url", *CREDENTIALS[provider]), f"provider {provider!r}")
    client = _client(
        config,
        config.get("api_key"),  # Credit Key's credentials travel as request parameters
        store=store,
        now=now,
        clock=clock,
        sleep=sleep,
        random=random,
        breakers=breakers,
        transport=transport,
        in_flight_codes=IN_FLIGHT_CODES,
    )
    if provider == "creditkey":
        return CreditKeyAdapter(client, config["public_key"], config["shared_secret"], now=now)
    if provider == "gateway":
        return GatewayAdapter(client)
    if provider == "vcard":
        return VcardAdapter(client)
    if provider == "invoicing":
        return InvoicingAdapter(client)
    return SandbankAdapter(client)


def _require(config: Mapping[str, Any], keys: tuple[str, ...], what: str) -> None:
    for key in keys:
        if not isinstance(config.get(key), str) or not config[key]:
            raise ConfigError(f"config key {key!r} is required for {what}")


def _breakers(config: Mapping[str, Any], clock: Callable[[], float]) -> Breakers:
    breaker = dict(config.get("breaker") or {})
    return Breakers(
        clock,
        failure_threshold=int(breaker.get("failure_threshold", 5)),
        cooldown_s=float(breaker.get("cooldown_s", 30.0)),
    )


def _client(
    config: Mapping[str, Any],
    api_key: str | None,
    *,
    store: IntegrationStore,
    now: Callable[[], datetime],
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
    random: Callable[[], float] | None,
    breakers: Breakers | None,
    transport: httpx.AsyncBaseTransport | None,
    in_flight_codes: tuple[str, ...] | frozenset[str] = (),
    auth: httpx.Auth | None = None,
) -> ResilientClient:
    """The `ResilientClient` a config's `base_url`, `retry`, `breaker` and `timeout_s` ask for."""
    retry = dict(config.get("retry") or {})
    try:
        backoff = Backoff(**retry)
    except TypeError as exc:
        raise ConfigError(f"config key 'retry': {exc}") from None
    return ResilientClient(
        config["base_url"],
        api_key,
        store=store,
        clock=clock,
        sleep=sleep,
        random=random or _random.SystemRandom().random,
        breakers=breakers or _breakers(config, clock),
        backoff=backoff,
        timeout=float(config.get("timeout_s", 10.0)),
        transport=transport,
        now=now,
        in_flight_codes=in_flight_codes,
        auth=auth,
    )


# Support desks the ticket sink can open tickets in (`integration.tickets`), with the config
# keys each needs: the desk's own credentials (Zendesk's API token form of basic auth, the
# ServiceNow user's basic auth).
TICKET_SYSTEMS = ("zendesk", "servicenow")
TICKET_CREDENTIALS = {"zendesk": ("email", "token"), "servicenow": ("user", "password")}


def make_ticket_system(
    config: Mapping[str, Any],
    *,
    store: IntegrationStore,
    now: Callable[[], datetime],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    random: Callable[[], float] | None = None,
    breakers: Breakers | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> TicketSystem:
    """The desk of `config["system"]` (`TICKET_SYSTEMS`), on its own `ResilientClient` (its
    retry rules and breakers, family `tickets`), e.g. {"system": "zendesk", "base_url": ...,
    "email": ..., "token": ...}."""
    system = config.get("system")
    if system not in TICKET_SYSTEMS:
        raise ConfigError(
            f"unknown ticket system {system!r} in config key 'system' "
            f"(known: {', '.join(TICKET_SYSTEMS)})"
        )
    _require(config, ("base_url", *TICKET_CREDENTIALS[system]), f"ticket system {system!r}")
    if system == "zendesk":
        auth = httpx.BasicAuth(f"{config['email']}/token", config["token"])
    else:
        auth = httpx.BasicAuth(config["user"], config["password"])
    shared = breakers or _breakers(config, clock)

    def client(retry: Mapping[str, Any]) -> ResilientClient:
        return _client(
            {**config, "retry": retry},
            None,
            store=store,
            now=now,
            clock=clock,
            sleep=sleep,
            random=random,
            breakers=shared,
            transport=transport,
            auth=auth,
        )

    retry = dict(config.get("retry") or {})
    if system == "zendesk":  # creates honour Idempotency-Key: retried like everything else
        return ZendeskTickets(client(retry))
    # The Table API does not deduplicate inserts: one attempt a round (see the adapter).
    return ServiceNowTickets(client(retry), create=client({**retry, "max_attempts": 1}))


# Where an API key can be tried without changing anything (a one-item read), per provider
# that takes one.
_KEY_PROBES = {
    "sandbank": "/v1/events",
    "gateway": "/gateway/v1/events",
    "vcard": "/vcards/v1/events",
    "invoicing": "/invoicing/v1/events",
}


def refused_api_key(provider: str, base_url: str, api_key: str | None) -> str | None:
    """Why the provider refuses `api_key` (one line), asked once; None when it accepts it,
    takes no API key, or cannot be asked (down or slow)."""
    probe = _KEY_PROBES.get(provider)
    if probe is None:
        return None
    url = base_url.rstrip("/")
    try:
        r = httpx.get(
            f"{url}{probe}",
            params={"limit": 1},
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=5.0,
        )
    except httpx.HTTPError:
        return None
    if r.status_code not in (401, 403):
        return None
    try:
        detail = r.json().get("detail") or r.reason_phrase
    except (ValueError, AttributeError):
        detail = r.reason_phrase
    return f"the provider at {url} refused --api-key ({r.status_code}: {detail})"


def gl_mapping_path(provider: str) -> Path:
    """The GL mapping file of the provider's approach."""
    if provider not in GL_MAPPINGS:
        raise ConfigError(f"unknown provider {provider!r} (known: {', '.join(PROVIDERS)})")
    return GL_MAPPINGS[provider]


@dataclass(frozen=True, slots=True)
class EventFacts:
    """What a provider's event body says in canonical terms (each None when it does not)."""

    provider_order_id: str | None
    order: Authorization | None
    provider_checkout_id: str | None
    checkout_status: str | None
    settlement: Settlement | None
    payment: Payment | None
    payment_refunds: tuple[Payment, ...] = ()
    payments: tuple[Payment, ...] = ()  # one payment (card, remittance) paying several orders


def event_facts(payload: Mapping[str, Any]) -> EventFacts:
    """The canonical facts of any provider's webhook or listed event body: the one place the
    receiver learns them, so it names no provider."""
    if payload.get("object_type") in vcard.OBJECT_TYPES:
        invoice_id, invoice, payments, refunds = vcard.event_facts(payload)
        return _invoice_facts(invoice_id, invoice, payments=payments, refunds=refunds)
    if payload.get("object_type") in invoicing.OBJECT_TYPES:
        about, payments = invoicing.event_facts(payload)
        return EventFacts(about, None, None, None, None, None, (), payments)
    if payload.get("object_type") in gateway.OBJECT_TYPES:
        invoice_id, invoice, payment, refunds = gateway.event_facts(payload)
        return _invoice_facts(invoice_id, invoice, payment=payment, refunds=refunds)
    order, checkout_id, checkout_status = sandbank.event_facts(payload)
    data = payload.get("data")
    order_id: object = None
    if payload.get("object_type") == "order":
        order_id = payload.get("object_id")
    elif isinstance(data, Mapping):
        order_id = data.get("order_id")  # e.g. checkout.completed names the order it made
    return EventFacts(
        order_id if isinstance(order_id, str) and order_id else None,
        order,
        checkout_id,
        checkout_status,
        sandbank.event_settlement(payload),
        None,
    )


def _invoice_facts(
    invoice_id: str | None,
    invoice: Authorization | None,
    *,
    payment: Payment | None = None,
    payments: tuple[Payment, ...] = (),
    refunds: tuple[Payment, ...] = (),
) -> EventFacts:
    """The facts of an approach whose orders are the seller's invoices (the gateway's, the
    virtual cards'): an invoice snapshot is a completed checkout; no settlement rides on them."""
    checkout_id, checkout_status = invoice_checkout(invoice_id, invoice)
    return EventFacts(
        invoice_id, invoice, checkout_id, checkout_status, None, payment, refunds, payments
    )


__all__ = [
    "EVENT_KIND",
    "GL_MAPPINGS",
    "PROVIDERS",
    "TICKET_CREDENTIALS",
    "TICKET_SYSTEMS",
    "AuthorizationStatus",
    "Buyer",
    "CheckoutRef",
    "CheckoutStatus",
    "ConfigError",
    "EventFacts",
    "LineItem",
    "PlaceOrder",
    "ProviderAdapter",
    "ProviderDataError",
    "collection_fact",
    "event_facts",
    "gl_mapping_path",
    "make_adapter",
    "make_ticket_system",
    "order_state",
    "refused_api_key",
]
