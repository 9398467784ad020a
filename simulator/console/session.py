"""Console sessions and CSRF tokens, stateless: every worker process checks them with the same
key, derived from the admin token (so changing the token ends every session).

- Session cookie: `ISSUED.NONCE.MAC`, MAC = HMAC-SHA256(key, "session.ISSUED.NONCE"); valid
  for `TTL_S` of the server's wall clock. HttpOnly, SameSite=Strict, Path=/_sandbox/console.
- CSRF token (synchronizer token bound to the session): HMAC(key, "csrf." + session cookie),
  sent as a hidden field of every form and checked on every POST, beside a same-origin check
  (`Origin`, `Sec-Fetch-Site`) when the browser sends those headers.
- The login form has its own token, bound to a pre-login cookie the same way (no session yet).

The admin token itself is never put in a cookie or a page.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from urllib.parse import urlsplit

from simulator.clock import WallClock

SESSION_COOKIE = "sandbank_console"
LOGIN_COOKIE = "sandbank_console_login"
TTL_S = 12 * 3600
PATH = "/_sandbox/console"


class Sessions:
    def __init__(self, admin_token: str, wall: WallClock, entropy: Callable[[int], bytes]) -> None:
        self._admin = admin_token.encode()
        self._key = hmac.new(self._admin, b"sandbank-console-v1", hashlib.sha256).digest()
        self.wall = wall
        self.entropy = entropy

    def _mac(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()

    def token_matches(self, given: str) -> bool:
        return hmac.compare_digest(given.strip().encode(), self._admin)

    def new_session(self) -> str:
        issued = int(self.wall.now().timestamp())
        nonce = self.entropy(16).hex()
        return f"{issued}.{nonce}.{self._mac(f'session.{issued}.{nonce}')}"

    def valid_session(self, cookie: str | None) -> bool:
        if not cookie or cookie.count(".") != 2:
            return False
        issued, nonce, mac = cookie.split(".")
        if not issued.isdigit() or not hmac.compare_digest(
            mac, self._mac(f"session.{issued}.{nonce}")
        ):
            return False
        age = self.wall.now().timestamp() - int(issued)
        return 0 <= age < TTL_S

    def csrf_for(self, cookie: str) -> str:
        return self._mac(f"csrf.{cookie}")

    def new_login_nonce(self) -> str:
        return self.entropy(16).hex()

    def login_csrf_for(self, nonce: str) -> str:
        return self._mac(f"login.{nonce}")

    @staticmethod
    def same_origin(headers: dict[str, str], host: str | None) -> bool:
        """False when the browser says the request comes from another site."""
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return False
        origin = headers.get("origin")
        if origin is None or origin == "null":
            return origin is None
        return host is not None and urlsplit(origin).netloc == host


def matches(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def mask(secret: str | None, keep: int = 4) -> str:
    """`sk_test_…a1b2`: the kind (prefix up to the last `_`) and the last characters only."""
    if not secret:
        return ""
    prefix = secret[: secret.rfind("_") + 1] if "_" in secret[:-keep] else ""
    return f"{prefix}…{secret[-keep:]}" if len(secret) > keep * 2 else "…"
