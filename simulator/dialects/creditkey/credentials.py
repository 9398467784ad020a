"""Each account's Credit Key credentials: a public key and a shared secret.

They are derived from the account's API key (HMAC-SHA256 with a fixed label), so every account
has them, older ones included, nothing new is stored, and the same server seed gives the same
keys. The public key looks like Credit Key's sample keys, `<merchant slug>_<32 hex>`; the
shared secret is 32 hex characters. Neither reveals the API key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from simulator.domain.models import Account


@dataclass(frozen=True, slots=True)
class Credentials:
    public_key: str
    shared_secret: str


def _mac(api_key: str, label: bytes) -> str:
    return hmac.new(api_key.encode(), label, hashlib.sha256).hexdigest()[:32]


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "", name.lower())[:24]
    return slug or "sandbank"


def credentials(account: Account) -> Credentials:
    return Credentials(
        public_key=f"{_slug(account.name)}_{_mac(account.api_key, b'creditkey public key')}",
        shared_secret=_mac(account.api_key, b"creditkey shared secret"),
    )


class KeyIndex:
    """Public key -> (account id, shared secret). Keys never change once issued, so a hit is
    cached; a miss re-reads the accounts (one made since, maybe by another worker)."""

    def __init__(self, accounts: Callable[[], Iterable[Account]]) -> None:
        self.accounts = accounts
        self._by_public: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def lookup(self, public_key: str) -> tuple[str, str] | None:
        found = self._by_public.get(public_key)
        if found is not None:
            return found
        with self._lock:
            accounts = list(self.accounts())
        for account in accounts:
            creds = credentials(account)
            self._by_public[creds.public_key] = (account.id, creds.shared_secret)
        return self._by_public.get(public_key)

    def check(self, public_key: str, shared_secret: str | None) -> str | None:
        """The account id when the public key is known and the secret (if required, i.e. not
        None) matches it; compared in constant time."""
        found = self.lookup(public_key)
        if found is None:
            return None
        account_id, secret = found
        if shared_secret is not None and not hmac.compare_digest(
            shared_secret.encode(), secret.encode()
        ):
            return None
        return account_id
