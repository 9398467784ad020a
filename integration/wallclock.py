"""The integration's one reading of the wall clock. Nothing below the edge reads time itself:
every component that stamps or compares times takes a `clock`/`now` callable, and only the
edge (`integration.cli`, which builds the service) passes this one. Tests pass their own."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


__all__ = ["utc_now"]
