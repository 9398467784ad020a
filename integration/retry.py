"""Which provider failures to retry, and how long to wait: the policy the resilient client
applies (pure functions, so they are tested directly).

- Retryable: timeouts and connection errors, 429, and 5xx. Everything else (4xx: bad input,
  409 state conflicts, 422 business refusals) is final: retrying cannot change the answer.
- Ambiguous: the request may have reached the provider (a read timeout, a connection reset
  or a 5xx after sending). Only a retry with the *same* Idempotency-Key, or a read of the
  provider's state, may resolve it: never a new request.
- Waits: exponential backoff with full jitter, capped; a `Retry-After` from the provider wins
  when it is longer (it knows its own recovery better than we do), but never past the cap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class Verdict(StrEnum):
    SUCCESS = "success"
    RETRY = "retry"  # failed before anything could have happened (connect error, 429, 503...)
    RETRY_AMBIGUOUS = "retry_ambiguous"  # may have happened: retry with the same key only
    FINAL = "final"  # a definite answer; do not retry


class Transport(StrEnum):
    CONNECT_ERROR = "connect_error"  # never reached the provider
    CONNECT_TIMEOUT = "connect_timeout"
    READ_TIMEOUT = "read_timeout"  # sent; the answer did not come
    RESET = "reset"  # sent; the connection died
    PROTOCOL_ERROR = "protocol_error"  # sent; the answer was cut or garbled


def classify(status: int | None, transport: Transport | None = None) -> Verdict:
    """The verdict for one attempt: its HTTP status, or the transport failure it met."""
    if transport is not None:
        if transport in (Transport.CONNECT_ERROR, Transport.CONNECT_TIMEOUT):
            return Verdict.RETRY
        return Verdict.RETRY_AMBIGUOUS
    if status is None:
        raise ValueError("an attempt has a status or a transport failure")
    if 200 <= status < 300:
        return Verdict.SUCCESS
    if status in (429, 503):
        return Verdict.RETRY  # the provider says it did not process the request
    if status in RETRYABLE_STATUSES:
        return Verdict.RETRY_AMBIGUOUS  # 500/502/504: it may have committed first
    return Verdict.FINAL


def retry_after_s(headers: Mapping[str, str], now: datetime) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date), or None."""
    raw = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if raw is None:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return float(raw)
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class Backoff:
    base_s: float = 0.2
    factor: float = 2.0
    max_wait_s: float = 10.0
    max_attempts: int = 6
    max_total_s: float = 30.0

    def wait_s(self, attempt: int, random: Callable[[], float], retry_after: float | None) -> float:
        """The wait after failed attempt `attempt` (1-based): full jitter over the exponential
        ceiling, or the provider's `Retry-After` when longer; never above `max_wait_s`."""
        ceiling = min(self.max_wait_s, self.base_s * self.factor ** (attempt - 1))
        wait = ceiling * random()
        if retry_after is not None:
            wait = max(wait, retry_after)
        return min(wait, self.max_wait_s)

    def gives_up(self, attempts_made: int, elapsed_s: float, next_wait_s: float) -> bool:
        return attempts_made >= self.max_attempts or elapsed_s + next_wait_s > self.max_total_s
