"""Where webhooks may go (SSRF safety): http and https only, and by default only loopback
hosts (127.0.0.0/8, ::1, localhost) and hosts the operator allowed (`--allow-webhook-host`,
`SANDBANK_WEBHOOK_ALLOWED_HOSTS`, comma-separated; `*` allows every host)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class HostPolicy:
    def __init__(self, allowed: tuple[str, ...] = ()) -> None:
        self.allowed = frozenset(h.strip().lower() for h in allowed if h.strip())

    def problem(self, url: str) -> str | None:
        """Why `url` may not receive webhooks, or None when it may."""
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            _ = parts.port  # raises on a bad port
        except ValueError:
            return "not a valid URL"
        if parts.scheme not in ("http", "https"):
            return "only http and https URLs receive webhooks"
        if not host:
            return "the URL has no host"
        if parts.username or parts.password:
            return "credentials in webhook URLs are not accepted"
        if "*" in self.allowed or host in self.allowed or host in LOOPBACK_NAMES:
            return None
        try:
            if ipaddress.ip_address(host).is_loopback:
                return None
        except ValueError:
            pass
        return (
            f"{host} is not a loopback host; allow it with --allow-webhook-host {host} "
            "(or SANDBANK_WEBHOOK_ALLOWED_HOSTS)"
        )

    def allows(self, url: str) -> bool:
        return self.problem(url) is None
