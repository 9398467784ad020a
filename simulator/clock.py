"""Clocks. The wall clock is injected at the app factory; each account sees a virtual clock
derived from it: `wall + offset` while running, or a fixed instant while frozen.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Protocol

from simulator.domain.errors import InvalidDuration

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class WallClock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """The real clock. Only the app factory and the CLI construct one."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A wall clock that only moves when told to; for tests and reproducible runs."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta


def to_us(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def virtual_now(wall: datetime, offset_us: int, frozen_at_us: int | None) -> datetime:
    if frozen_at_us is not None:
        return from_us(frozen_at_us)
    return wall + timedelta(microseconds=offset_us)


_DURATION = re.compile(r"(\d{1,9})(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """'30d', '1h30m', '90s', '250ms' -> timedelta. Anything else is InvalidDuration (422)."""
    text = text.strip()
    pos, total_ms = 0, 0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total_ms += int(match.group(1)) * int(_UNITS[match.group(2)] * 1000)
        pos = match.end()
    if not text or pos != len(text):
        raise InvalidDuration(f"{text!r} is not a duration like '30d', '1h30m', '90s' or '250ms'")
    if total_ms > 100 * 365 * 86400 * 1000:
        raise InvalidDuration("durations are limited to 100 years")
    return timedelta(milliseconds=total_ms)
