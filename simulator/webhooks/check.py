"""`sandbank webhooks check`: send a merchant's receiver the webhooks a real sender sends and
say, case by case, whether it answered the way a correct Standard Webhooks receiver must.

Every message is a Sandbank event (the body the dispatcher sends: `GET /v1/events/{id}`, with
the event id as webhook-id) signed with `simulator.webhooks.signing` at the real wall clock:
this talks to a real receiver, whose timestamp tolerance is measured against its own clock.
Deduplication is the receiver's job: a duplicate must be acknowledged (2xx); whether it was
processed twice is not observable from here, so only the 2xx is checked.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from simulator import API_VERSION, __version__
from simulator.webhooks import signing

STALE_S = 600  # ten minutes: outside the ±5 minutes the reference libraries allow
OVERSIZED_BYTES = 1 << 20  # 1 MiB, fifty times the ~20 kB a webhook should stay under
USER_AGENT = f"Sandbank-Webhooks/1 (sandbank {__version__} webhooks check)"
_ALPHABET = string.digits + string.ascii_letters


@dataclass(frozen=True)
class CheckResult:
    name: str
    expectation: str
    passed: bool
    detail: str


def validate_url(url: str) -> str:
    """The URL unchanged, or ValueError when it is not an absolute http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--url must be an http:// or https:// URL, not {url!r}")
    return url


def validate_secret(secret: str) -> str:
    """The secret unchanged, or ValueError when it is not `whsec_` + non-empty base64."""
    text = secret.removeprefix(signing.SECRET_PREFIX)
    if text == secret:
        raise ValueError("--secret must start with 'whsec_' (a Standard Webhooks secret)")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        raw = b""
    if not raw:
        raise ValueError("--secret must be 'whsec_' followed by base64")
    return secret


def _token(prefix: str) -> str:
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(21))


def _rfc3339(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat().replace("+00:00", "Z")


def _order(
    order_id: str, status: str, at: int, line_items: int = 2, parents: tuple[str, str] = ("", "")
) -> dict[str, Any]:
    """An order snapshot as `GET /v1/orders/{id}` returns it (net 30, USD, minor units);
    `parents` are its buyer and checkout ids (new ones when empty)."""
    buyer_id, checkout_id = parents[0] or _token("buy"), parents[1] or _token("chk")
    items = [
        {
            "name": f"Pallet of widgets #{n}",
            "sku": f"WID-{n:06d}",
            "quantity": 2,
            "unit_amount": 62_500,
        }
        for n in range(1, line_items + 1)
    ]
    amount = 125_000 * line_items
    captured = amount if status == "captured" else 0
    authorized_at = _rfc3339(at - 60 if status == "captured" else at)
    capture = {
        "id": _token("cap"),
        "object": "capture",
        "order_id": order_id,
        "amount": captured,
        "currency": "USD",
        "final": True,
        "created_at": _rfc3339(at),
    }
    return {
        "id": order_id,
        "object": "order",
        "status": status,
        "amount": amount,
        "currency": "USD",
        "captured_amount": captured,
        "refunded_amount": 0,
        "capturable_amount": amount - captured,
        "refundable_amount": captured,
        "terms": "net30",
        "buyer_id": buyer_id,
        "checkout_id": checkout_id,
        "merchant_order_id": "SO-CHECK-1",
        "line_items": items,
        "metadata": {"source": "sandbank webhooks check"},
        "decision": {"outcome": "approved", "reason": None, "score": 742, "magic": None},
        "review": None,
        "captures": [capture] if captured else [],
        "refunds": [],
        "repayments": [],
        "created_at": authorized_at,
        "updated_at": _rfc3339(at),
        "authorized_at": authorized_at,
        "canceled_at": None,
        "authorization_expires_at": _rfc3339(at + int(timedelta(days=30).total_seconds())),
    }


def _event(type_: str, order: dict[str, Any], at: int) -> tuple[str, bytes]:
    """A Sandbank event about an order: its id (Sandbank's webhook-id) and the body as it is
    sent, `GET /v1/events/{id}` in compact JSON."""
    event_id = _token("evt")
    body = {
        "id": event_id,
        "object": "event",
        "type": type_,
        "object_type": "order",
        "object_id": order["id"],
        "created_at": _rfc3339(at),
        "api_version": API_VERSION,
        "data": order,
    }
    return event_id, json.dumps(body, separators=(",", ":")).encode()


def _oversized(at: int) -> tuple[str, bytes]:
    """A valid order.authorized event of at least OVERSIZED_BYTES: a very long order."""
    shortest = _order("ord_x", "authorized", at, 1)["line_items"][0]  # later ones are longer
    count = OVERSIZED_BYTES // len(json.dumps(shortest, separators=(",", ":"))) + 1
    return _event("order.authorized", _order(_token("ord"), "authorized", at, count), at)


@dataclass(frozen=True)
class _Answer:
    status: int | None  # None: no HTTP answer at all
    error: str = ""
    label: str = ""

    def __str__(self) -> str:
        seen = f"HTTP {self.status}" if self.status is not None else self.error
        return f"{self.label}: {seen}" if self.label else seen


def _is_2xx(a: _Answer) -> bool:
    return a.status is not None and 200 <= a.status < 300


def _is_4xx(a: _Answer) -> bool:
    return a.status is not None and 400 <= a.status < 500


def _refusal_hint(a: _Answer, accepted: str) -> str:
    """Why a case that wants a 4xx failed, in the receiver author's terms."""
    if _is_2xx(a):
        return f" - {accepted}"
    if a.status is not None:
        return " - refuse with a 4xx: a 5xx tells the sender to retry"
    return ""


class _Battery:
    def __init__(
        self, http: httpx.Client, url: str, secret: str, now: Callable[[], int], timeout: float
    ) -> None:
        self.http, self.url, self.secret, self.now, self.timeout = http, url, secret, now, timeout
        self.unreachable = ""
        self.results: list[CheckResult] = []

    def send(self, body: bytes, hdrs: dict[str, str]) -> _Answer:
        if self.unreachable:
            return _Answer(None, "not sent (cannot connect)")
        try:
            r = self.http.post(
                self.url,
                content=body,
                headers={**hdrs, "content-type": "application/json", "user-agent": USER_AGENT},
                timeout=self.timeout,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            self.unreachable = f"cannot connect: {exc or type(exc).__name__}"
            return _Answer(None, self.unreachable)
        except httpx.TimeoutException:
            return _Answer(None, f"no answer within {self.timeout:g}s")
        except httpx.HTTPError as exc:
            return _Answer(None, f"connection error: {type(exc).__name__}: {exc}")
        return _Answer(r.status_code)

    def signed(self, msg: tuple[str, bytes], at: int, secret: str | None = None) -> _Answer:
        """`msg` (webhook-id, body) signed at `at`, as Sandbank signs: webhook-id = event id."""
        msg_id, body = msg
        return self.send(body, signing.headers([secret or self.secret], msg_id, at, body))

    def fresh(self, at: int, type_: str = "order.authorized") -> tuple[str, bytes]:
        return _event(type_, _order(_token("ord"), "authorized", at), at)

    def record(self, name: str, expected: str, passed: bool, hint: str, *seen: _Answer) -> None:
        """One result; on a failure the hint follows what was seen, when the receiver answered."""
        detail = "; ".join(map(str, seen))
        if not passed and all(a.status is not None for a in seen):
            detail += hint
        self.results.append(CheckResult(name, expected, passed, detail))

    def run(self) -> list[CheckResult]:
        now = self.now()
        msg = self.fresh(now)
        a = self.signed(msg, now)
        hint = " - a correctly signed event must be acknowledged"
        self.record("valid", "2xx", _is_2xx(a), hint, a)

        a = self.signed(msg, self.now())  # a retry: same id and body, new attempt time
        hint = " - retries reuse webhook-id: acknowledge them, process once"
        self.record("duplicate", "2xx, processed once", _is_2xx(a), hint, a)

        now = self.now()
        forged = signing.new_secret(secrets.token_bytes(32))
        a = self.signed(self.fresh(now), now, secret=forged)
        hint = _refusal_hint(a, "a webhook signed with another secret was accepted")
        self.record("bad_signature", "4xx", _is_4xx(a), hint, a)

        for name, shift, word in (("stale", -STALE_S, "old"), ("future", STALE_S, "ahead")):
            at = self.now() + shift
            a = self.signed(self.fresh(at), at)
            hint = _refusal_hint(a, "check webhook-timestamp (+/- 5 min) to stop replays")
            expected = f"4xx ({STALE_S // 60} min {word})"
            self.record(f"{name}_timestamp", expected, _is_4xx(a), hint, a)

        a = self.send(self.fresh(self.now())[1], {})
        hint = _refusal_hint(a, "an unsigned request was accepted")
        self.record("missing_headers", "4xx (no webhook-* headers)", _is_4xx(a), hint, a)

        now = self.now()
        order_id, parents = _token("ord"), (_token("buy"), _token("chk"))
        captured = _event("order.captured", _order(order_id, "captured", now, 2, parents), now)
        snapshot = _order(order_id, "authorized", now - 60, 2, parents)
        authorized = _event("order.authorized", snapshot, now - 60)
        first = self.signed(captured, now)
        second = self.signed(authorized, self.now())
        hint = " - events arrive out of order: accept both, re-fetch the order"
        passed = _is_2xx(first) and _is_2xx(second)
        first, second = replace(first, label="captured first"), replace(second, label="authorized")
        self.record("reordered_pair", "2xx, 2xx", passed, hint, first, second)

        now = self.now()
        a = self.signed(self.fresh(now, "order.future_thing"), now)
        hint = " - ignore unknown types with a 2xx, or the sender retries them for days"
        self.record("unknown_type", "2xx", _is_2xx(a), hint, a)

        now = self.now()
        a = self.signed(_oversized(now), now)
        hint = " - answer 413 (or accept it), never fail"
        passed = _is_2xx(a) or a.status == 413
        self.record("oversized_body", "2xx or 413 (1 MiB body)", passed, hint, a)
        return self.results


def _wall_clock() -> int:
    return int(time.time())


def run_battery(
    url: str,
    secret: str,
    *,
    timeout: float = 10.0,
    client: httpx.Client | None = None,
    now: Callable[[], int] | None = None,
) -> list[CheckResult]:
    """POST each case to `url` in order and judge the answers. Connection errors fail the
    case; once a connection cannot be opened at all, the remaining cases are not sent."""
    validate_url(url)
    validate_secret(secret)
    if timeout <= 0:
        raise ValueError("--timeout must be positive")
    http = client if client is not None else httpx.Client(follow_redirects=False)
    try:
        return _Battery(http, url, secret, now or _wall_clock, timeout).run()
    finally:
        if client is None:
            http.close()


def render(results: list[CheckResult]) -> str:
    """An aligned table (case, expected, result, detail) and an "N passed, M failed" line."""
    rows = [("case", "expected", "result", "detail")]
    rows += [(r.name, r.expectation, "PASS" if r.passed else "FAIL", r.detail) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join([*(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)), row[3]])
        for row in rows
    ]
    passed = sum(r.passed for r in results)
    lines.append(f"{passed} passed, {len(results) - passed} failed")
    return "\n".join(line.rstrip() for line in lines) + "\n"
