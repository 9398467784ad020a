"""Where webhooks may go (SSRF safety): http and https only, and by default only loopback
hosts (127.0.0.0/8, ::1, localhost) and hosts the operator allowed (`--allow-webhook-host`,
`SANDBANK_WEBHOOK_ALLOWED_HOSTS`, comma-separated; `*` allows every host).

Cloud metadata services are never allowed, not even by `*` or by name: link-local addresses
(169.254.0.0/16 and fe80::/10, where AWS, GCP, Azure and others answer), AWS's IPv6
fd00:ec2::254, Alibaba's 100.100.100.200, their well-known names, and the same addresses in
any spelling a resolver accepts (`0xa9fea9fe`, `2852039166`, `::ffff:169.254.169.254`). A
name that resolves there is refused when the sender connects (`webhooks/http.py`).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.com",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
METADATA_IPS = frozenset(
    ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        try:  # the legacy spellings inet_aton accepts: 0xa9fea9fe, 2852039166, 169.254.43518
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except (OSError, ValueError):
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_metadata_address(host: str) -> bool:
    """A cloud metadata service's name or address (see the module docstring)."""
    host = host.lower().rstrip(".")
    if host in METADATA_NAMES:
        return True
    address = _address(host)
    return address is not None and (address.is_link_local or address in METADATA_IPS)


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
        if is_metadata_address(host):
            return f"{host} is a cloud metadata address; webhooks never go there"
        if "*" in self.allowed or host in self.allowed or host in LOOPBACK_NAMES:
            return None
        address = _address(host)
        if address is not None and address.is_loopback:
            return None
        return (
            f"{host} is not a loopback host; allow it with --allow-webhook-host {host} "
            "(or SANDBANK_WEBHOOK_ALLOWED_HOSTS)"
        )

    def allows(self, url: str) -> bool:
        return self.problem(url) is None
