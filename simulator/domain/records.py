"""Plain records that pass between the store, the services and the HTTP adapters: a page of a
listing and a saved idempotent response. Here rather than in `simulator.store`, so that the
adapters can name them without depending on the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

# A page cursor is the row's sequence number as 8 big-endian bytes, base64url without padding:
# 11 characters, and every string of that shape (published in the contract) is a position (the
# top bit is zero: SQLite INTEGERs are signed 64-bit). `simulator.store.cursor` encodes them.
CURSOR_PATTERN = r"^[A-Za-f][A-Za-z0-9_-]{9}[AEIMQUYcgkosw048]$"


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    has_more: bool
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class SavedResponse:
    fingerprint: str
    status: int
    body: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class StoredCounts:
    """Counts over the stored state (`store.stats`), for the metrics and the console."""

    backlog: dict[tuple[str, str], int] = field(default_factory=dict)  # (account, endpoint)
    deliveries: dict[str, int] = field(default_factory=dict)  # by status
    endpoints: dict[str, int] = field(default_factory=dict)  # by status (enabled/disabled)
    settlements: dict[str, int] = field(default_factory=dict)  # by status
    disputes: dict[str, int] = field(default_factory=dict)  # by status
    drift_injections: dict[str, int] = field(default_factory=dict)  # by kind
