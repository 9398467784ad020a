"""Standard Webhooks signing (standardwebhooks.com): HMAC-SHA256 over
`{webhook-id}.{webhook-timestamp}.{body}`, written `v1,<base64>`; secrets are `whsec_` + base64.
Receivers verify with the `standardwebhooks` package (or Svix's libraries) unchanged."""

from __future__ import annotations

import base64
import hashlib
import hmac

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


def new_secret(raw: bytes) -> str:
    """A secret from 24-64 random bytes (the caller's seeded RNG supplies them)."""
    if not 24 <= len(raw) <= 64:
        raise ValueError("a webhook secret is 24 to 64 bytes")
    return SECRET_PREFIX + base64.b64encode(raw).decode()


def secret_bytes(secret: str) -> bytes:
    text = secret.removeprefix(SECRET_PREFIX)
    return base64.b64decode(text + "=" * (-len(text) % 4))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature of this message at this unix timestamp."""
    mac = hmac.new(
        secret_bytes(secret), b"%s.%d.%s" % (msg_id.encode(), timestamp, body), hashlib.sha256
    )
    return "v1," + base64.b64encode(mac.digest()).decode()


def headers(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers; several secrets (rotation) give several
    space-separated signatures."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets),
    }
