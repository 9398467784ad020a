"""The B2B payment approaches the comparison runs (`sandbank integration compare`): one entry
per adapter, saying what to call it, who carries the credit risk, and how the adapter is
configured for an account of the simulator.

Adding an approach is one entry in `APPROACHES`. An adapter in `PROVIDERS` without an entry
still runs, under its provider name, configured with the account's API key at the
simulator's base URL (the common case).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Config = Callable[[str, Mapping[str, Any]], dict[str, Any]]


def api_key_config(provider: str) -> Config:
    """The adapter config of an API that takes the account's API key at the base URL."""

    def config(base_url: str, account: Mapping[str, Any]) -> dict[str, Any]:
        return {"provider": provider, "base_url": base_url, "api_key": account["api_key"]}

    return config


def _creditkey_config(base_url: str, account: Mapping[str, Any]) -> dict[str, Any]:
    # The SDKs' base URL, with the account's Credit Key keys (GET /_sandbox/accounts/{id}).
    return {"provider": "creditkey", "base_url": f"{base_url}/app", **account["creditkey"]}


# Embedded credit's repayment behaviours have no partial payer: the buyer repays late.
EMBEDDED_TAGS = {"pays_partial": "pays_late"}


@dataclass(frozen=True, slots=True)
class Approach:
    provider: str  # the adapter (`integration.adapters.PROVIDERS`)
    label: str  # what a platform team calls it
    risk_carrier: str  # who carries the buyer's credit risk, as the approach promises
    config: Config
    # The buyer's magic value (email sub-address) for each behaviour of the book where the
    # approach spells it differently: pays_on_time, pays_late, pays_partial, defaults.
    tags: Mapping[str, str] = field(default_factory=dict)

    def tag(self, behaviour: str) -> str:
        return self.tags.get(behaviour, behaviour)


APPROACHES: tuple[Approach, ...] = (
    Approach(
        "sandbank",
        "embedded credit (native API)",
        "provider",
        api_key_config("sandbank"),
        EMBEDDED_TAGS,
    ),
    Approach(
        "creditkey",
        "embedded credit (Credit Key dialect)",
        "provider",
        _creditkey_config,
        EMBEDDED_TAGS,
    ),
    Approach("gateway", "gateway + net terms", "seller", api_key_config("gateway")),
    # Listed ahead of their adapters (issue #15): they run once their adapter is in PROVIDERS.
    Approach("vcard", "virtual cards", "the buyer's card issuer", api_key_config("vcard")),
    Approach("invoicing", "traditional invoicing (EDI)", "seller", api_key_config("invoicing")),
)


def approaches(providers: tuple[str, ...]) -> list[Approach]:
    """The approaches of these adapters, in `APPROACHES` order, then the unregistered ones."""
    known = [a for a in APPROACHES if a.provider in providers]
    listed = {a.provider for a in known}
    rest = [Approach(p, p, "unknown", api_key_config(p)) for p in providers if p not in listed]
    return known + rest


__all__ = ["APPROACHES", "Approach", "api_key_config", "approaches"]
