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
# Virtual cards have no partial payer either (an AP sends a card for what is due, or not).
VCARD_TAGS = {"pays_partial": "pays_late"}

# The approaches' own manual work, as the habits of the book's buyers who pay on time: each
# habit is a magic value of the approach and the share of those buyers who have it, drawn
# from the order's seeded `ap_roll` (so the same buyers have a habit under every approach, and
# the same seed gives the same buyers). Embedded credit has none: the provider collects.
GATEWAY_HABITS = (("pays_short", 0.15),)  # a 5 % deduction: charge the rest or write it off
VCARD_HABITS = (
    ("splits", 0.1),  # two cards for one invoice
    ("consolidates", 0.1),  # one card for several invoices
    ("card_expires", 0.1),  # a card nobody can use: the next one comes 10 days late
    ("over_limit", 0.1),  # a card 5 % short: the rest stays due
)
EDI_HABITS = (
    ("typo_reference", 0.1),  # the invoice number mistyped: unmatched cash
    ("po_reference", 0.05),  # the PO number instead: unmatched
    ("no_reference", 0.05),  # no reference at all: unmatched
    ("pays_short", 0.1),  # a deduction with a reason code
    ("pays_batched", 0.1),  # one remittance for several invoices
)


@dataclass(frozen=True, slots=True)
class Approach:
    provider: str  # the adapter (`integration.adapters.PROVIDERS`)
    label: str  # what a platform team calls it
    risk_carrier: str  # who carries the buyer's credit risk, as the approach promises
    config: Config
    # The buyer's magic value (email sub-address) for each behaviour of the book where the
    # approach spells it differently: pays_on_time, pays_late, pays_partial, defaults.
    tags: Mapping[str, str] = field(default_factory=dict)
    # (magic value, share of the on-time buyers): the approach's own manual work (above).
    habits: tuple[tuple[str, float], ...] = ()

    def tag(self, behaviour: str, roll: float = 1.0) -> str:
        """The buyer's magic value for the book's `behaviour`; an on-time buyer whose `roll`
        (0..1) falls in a habit's share has that habit instead."""
        if behaviour == "pays_on_time":
            for habit, share in self.habits:
                if roll < share:
                    return habit
                roll -= share
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
    Approach(
        "gateway",
        "gateway + net terms",
        "seller",
        api_key_config("gateway"),
        habits=GATEWAY_HABITS,
    ),
    Approach(
        "vcard",
        "virtual cards",
        "the seller until a card is captured, then the card issuer",
        api_key_config("vcard"),
        VCARD_TAGS,
        VCARD_HABITS,
    ),
    Approach(
        "invoicing",
        "traditional invoicing (EDI)",
        "seller",
        api_key_config("invoicing"),
        habits=EDI_HABITS,
    ),
)


def approaches(providers: tuple[str, ...]) -> list[Approach]:
    """The approaches of these adapters, in `APPROACHES` order, then the unregistered ones."""
    known = [a for a in APPROACHES if a.provider in providers]
    listed = {a.provider for a in known}
    rest = [Approach(p, p, "unknown", api_key_config(p)) for p in providers if p not in listed]
    return known + rest


__all__ = ["APPROACHES", "Approach", "api_key_config", "approaches"]
