"""Payment tokens: what a provider keeps of a buyer's payment instrument instead of the
instrument itself. Plain data and pure rules; the vault service is `simulator.vault`.

A token stands for one instrument of one owner (the buyer or customer, as the personality
names it): a `card`, a `bank_account` or a `credit_line` reference. It never holds a card or
account number: only what a network-token migration file carries (brand, last 4 digits, expiry,
the network's or bank's reference) and a `fingerprint`, the same for the same instrument at
any provider, which is how a migration matches tokens across providers.

The simulator has no real instruments, so their visible details are *derived* from the
fingerprint (a hash of the account, the instrument's type and its owner): deterministic, never
drawn from the account's RNG (registering a token must not shift the ids of everything after
it), and never a number that could be a card.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Literal

from simulator.domain import states
from simulator.domain.models import Entity

TokenType = Literal["card", "bank_account", "credit_line"]
TOKEN_TYPES: tuple[TokenType, ...] = ("card", "bank_account", "credit_line")
CARD_BRANDS = ("visa", "mastercard", "amex", "discover")
BANKS = ("First Sandbank", "Credit Union of Test", "Bank of Examples", "Mock Savings")
CREDIT_LINE_DAYS = 365  # a credit line reference lapses a year after it was first used
BANK_ACCOUNT_YEARS = 5  # a bank mandate is renewed every few years
# A card number: 13 to 19 digits standing alone (spaces or dashes between groups allowed) that
# pass the Luhn check. Digits inside an id (`tok_3f1234567890123a...`) are not one.
_NUMBER = re.compile(r"(?<![0-9A-Za-z])(?:\d[ -]?){12,18}\d(?![0-9A-Za-z])")


class Token(Entity):
    id: str
    personality: str  # the API the token belongs to: native, gateway, vcards, invoicing
    type: TokenType
    owner: str  # the buyer (native: `buy_...`) or customer (gateway: its external id or email)
    fingerprint: str  # the instrument's identity across providers (hex)
    brand: str | None = None  # card network or bank name
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
    network_reference: str | None = None  # network token / bank mandate / credit line reference
    status: states.TokenStatus = "active"
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    expired_at: datetime | None = None
    imported_from: str | None = None  # the source provider's token it replaced (token import)
    created_at: datetime
    updated_at: datetime

    def apply(self, event: str, at: datetime) -> None:
        self.status = states.TOKEN.transition(self.status, event)
        self.updated_at = at

    def same_instrument(self, other: Token) -> bool:
        """The fields an import must repeat exactly (status and times may differ)."""
        keys = ("type", "owner", "fingerprint", "brand", "last4", "exp_month", "exp_year")
        return all(getattr(self, k) == getattr(other, k) for k in keys) and (
            self.network_reference == other.network_reference
        )


def digest(*parts: str) -> bytes:
    return hashlib.sha256("\x1f".join(parts).encode()).digest()


def token_id(*parts: str) -> str:
    """A token's id, derived (not drawn) from what makes it unique."""
    return "tok_" + digest(*parts).hex()[:24]


def fingerprint(account_id: str, type_: TokenType, owner: str) -> str:
    return digest("fingerprint", account_id, type_, owner).hex()[:32]


def end_of_month(year: int, month: int) -> datetime:
    """The first instant after the card's expiry month (a card is good through its month)."""
    return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


def instrument(
    type_: TokenType, owner: str, print_: str, now: datetime
) -> dict[str, str | int | datetime | None]:
    """The visible details of a simulated instrument, derived from its fingerprint."""
    d = bytes.fromhex(print_)
    last4 = f"{int.from_bytes(d[1:4], 'big') % 10_000:04d}"
    if type_ == "card":
        month, year = 1 + d[4] % 12, now.year + 2 + d[5] % 3
        return {
            "brand": CARD_BRANDS[d[0] % len(CARD_BRANDS)],
            "last4": last4,
            "exp_month": month,
            "exp_year": year,
            "network_reference": f"ntk_{print_[:20]}",
            "expires_at": end_of_month(year, month),
        }
    if type_ == "bank_account":
        return {
            "brand": BANKS[d[0] % len(BANKS)],
            "last4": last4,
            "network_reference": f"mandate_{print_[:20]}",
            "expires_at": now + timedelta(days=365 * BANK_ACCOUNT_YEARS),
        }
    return {
        "network_reference": f"cl_{owner}",
        "expires_at": now + timedelta(days=CREDIT_LINE_DAYS),
    }


def looks_like_a_number(value: str) -> bool:
    """A card number in clear (which no token may carry): a standalone run of 13-19 digits
    that passes the Luhn check."""
    for match in _NUMBER.finditer(value):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and _luhn(digits):
            return True
    return False


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0
