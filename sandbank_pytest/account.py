"""One sandbox account per test, and the helpers a test needs around it.

Everything goes through the control plane (`/_sandbox`, admin token) or the provider API
(`/v1`, the account's key): the clock, faults, buyer and underwriter actions, the request
journal. A failed call raises `SandbankError` with the problem's detail, not a bare status.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx


class SandbankError(AssertionError):
    """The simulator refused a helper's call (status and problem detail in the message)."""


@dataclass(frozen=True)
class CreditKeyKeys:
    """The account's Credit Key dialect credentials (servers that speak the dialect)."""

    public_key: str
    shared_secret: str


def check(response: httpx.Response) -> Any:
    """The JSON body of a 2xx answer; otherwise `SandbankError` naming the call and the detail."""
    if response.is_success:
        return response.json() if response.content else None
    try:
        body = response.json()
        detail = body.get("detail") or body.get("title") or body
    except ValueError:
        detail = response.text[:300]
    request = response.request
    raise SandbankError(f"{request.method} {request.url.path} -> {response.status_code}: {detail}")


class SandbankAccount:
    """A sandbox account: `client` speaks `/v1` with its API key, `admin` the control plane."""

    def __init__(self, base_url: str, admin: httpx.Client, created: dict[str, Any]) -> None:
        self.base_url = base_url.rstrip("/")
        self.admin = admin
        self.id: str = created["id"]
        self.api_key: str = created["api_key"]
        self.seed: int = created["seed"]
        ck = created.get("creditkey")
        self.creditkey = CreditKeyKeys(**ck) if isinstance(ck, dict) else None
        self.client = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=30.0,
        )

    @classmethod
    def create(
        cls,
        base_url: str,
        admin: httpx.Client,
        *,
        name: str = "pytest",
        seed: int | None = None,
        settings: dict[str, Any] | None = None,
    ) -> SandbankAccount:
        body: dict[str, Any] = {"name": name[:100] or "pytest"}
        if seed is not None:
            body["seed"] = seed
        if settings:
            body["settings"] = settings
        return cls(base_url, admin, check(admin.post("/_sandbox/accounts", json=body)))

    @property
    def headers(self) -> dict[str, str]:
        """`Authorization` for your own HTTP client."""
        return {"Authorization": f"Bearer {self.api_key}"}

    # The clock ------------------------------------------------------------------------------

    def clock(self) -> dict[str, Any]:
        """`{"now": ..., "frozen": ...}` on the account's virtual clock."""
        return dict(check(self.admin.get(f"/_sandbox/accounts/{self.id}/clock")))

    def advance(self, by: str) -> dict[str, Any]:
        """Move the clock forward (`"30d"`, `"1h30m"`) or to an RFC 3339 time, running
        everything that falls due on the way; returns the clock."""
        key = "to" if "T" in by.upper() and "-" in by else "by"
        return dict(
            check(self.admin.post(f"/_sandbox/accounts/{self.id}/clock/advance", json={key: by}))
        )

    def freeze(self) -> dict[str, Any]:
        return dict(check(self.admin.post(f"/_sandbox/accounts/{self.id}/clock/freeze")))

    # Faults ---------------------------------------------------------------------------------

    @contextmanager
    def fault(
        self,
        effect: str | dict[str, Any],
        *,
        operation: str | None = None,
        match: dict[str, Any] | None = None,
        phase: str | None = None,
        times: int | None = None,
        probability: float | None = None,
        window: dict[str, Any] | None = None,
        **params: Any,
    ) -> Iterator[dict[str, Any]]:
        """A fault rule on this account while the block runs, deleted after it.

        `with sandbank.fault("status", status=503, operation="createCapture", times=2):`
        `effect` is the effect's type with its parameters as keywords, or the effect as a dict;
        the rest is the rule (README "Faults"). Yields the rule as created (`fired` counts)."""
        rule: dict[str, Any] = {
            "account": self.id,
            "effect": {"type": effect, **params} if isinstance(effect, str) else dict(effect),
            "match": {**(match or {}), **({"operation": operation} if operation else {})},
        }
        optional = {"phase": phase, "times": times, "probability": probability, "window": window}
        rule.update({k: v for k, v in optional.items() if v is not None})
        created = check(self.admin.post("/_sandbox/faults", json=rule))
        try:
            yield created
        finally:
            self.admin.delete(f"/_sandbox/faults/{created['id']}")

    @contextmanager
    def preset(self, name: str, *, duration: str | None = None) -> Iterator[list[dict[str, Any]]]:
        """A named fault preset (`flaky-5xx`, `total-outage`, ...) on this account while the
        block runs; its rules are deleted after it."""
        body = {"account": self.id, **({"duration": duration} if duration else {})}
        applied = check(self.admin.post(f"/_sandbox/faults/presets/{name}", json=body))
        try:
            yield list(applied["rules"])
        finally:
            for rule in applied["rules"]:
                self.admin.delete(f"/_sandbox/faults/{rule['id']}")

    def clear_faults(self) -> None:
        check(self.admin.delete("/_sandbox/faults", params={"account": self.id}))

    # Buyer and underwriter ------------------------------------------------------------------

    def approve(self, checkout_id: str, terms: str = "net30") -> dict[str, Any]:
        """Act as the buyer: accept the checkout with these terms; returns the checkout
        (`order_id` names the order)."""
        return dict(
            check(
                self.admin.post(f"/_sandbox/checkouts/{checkout_id}/approve", json={"terms": terms})
            )
        )

    def decline(self, checkout_id: str) -> dict[str, Any]:
        """Act as the buyer: turn the offer down; returns the checkout."""
        return dict(check(self.admin.post(f"/_sandbox/checkouts/{checkout_id}/decline")))

    def review(self, order_id: str, decision: str = "approve") -> dict[str, Any]:
        """Act as the underwriter on an order pending review (`approve` or `decline`)."""
        return dict(
            check(
                self.admin.post(f"/_sandbox/orders/{order_id}/review", json={"decision": decision})
            )
        )

    # The request journal --------------------------------------------------------------------

    def requests(self, **filters: Any) -> list[dict[str, Any]]:
        """The journal of this account's /v1 requests, newest first (README "the journal")."""
        params = {k: _query(v) for k, v in filters.items()}
        found = check(self.admin.get("/_sandbox/requests", params={"account": self.id, **params}))
        return list(found["data"])

    def count_requests(self, **filters: Any) -> int:
        body = {"account": self.id, **filters}
        return int(check(self.admin.post("/_sandbox/requests/count", json=body))["count"])

    def assert_requests(self, *, count: int | None = None, **filters: Any) -> None:
        """Assert what the client sent: `count` requests match the filters (`operation`,
        `status`, `replayed`, `faulted`, `method`, `path`, ...); at least one if `count` is
        None. The failure lists what the journal does hold."""
        found = self.count_requests(**filters)
        if (count is None and found > 0) or found == count:
            return
        want = "at least 1" if count is None else str(count)
        seen = [
            f"  {e['method']} {e['path']} ({e['operation']}) -> {e['status']}"
            + (" replayed" if e["replayed"] else "")
            + (f" fault={e['fault']['effect']}" if e.get("fault") else "")
            for e in self.requests(limit=20)
        ]
        raise AssertionError(
            f"expected {want} request(s) matching {filters}, the journal has {found}; "
            "the account's latest requests:\n" + ("\n".join(seen) or "  (none)")
        )

    # Webhooks -------------------------------------------------------------------------------

    def flush_webhooks(self) -> int:
        """Deliver everything due now on the account's clock, and wait for it."""
        return int(
            check(self.admin.post("/_sandbox/webhooks/flush", json={"account": self.id}))[
                "attempts"
            ]
        )

    def reset(self) -> None:
        """Delete every object of the account (same id, key and seed)."""
        check(self.admin.post(f"/_sandbox/accounts/{self.id}/reset"))

    def close(self) -> None:
        self.client.close()


def _query(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
