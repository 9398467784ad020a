"""The request journal: every /v1 request, kept in a bounded ring per account (WireMock's
request log), with filters for listing and a count for verification."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from simulator.domain.records import Page
from simulator.faults.engine import path_pattern
from simulator.store.cursor import page_of

DEFAULT_RING = 10_000
NO_ACCOUNT = ""  # the ring of requests that failed authentication


@dataclass(slots=True)
class Entry:
    seq: int
    at: datetime  # the server's wall clock (RFC 3339 in `public`)
    request_id: str
    account: str | None
    method: str
    path: str
    operation: str | None
    status: int | None  # None when the connection was reset or closed before a status
    latency_ms: float
    idempotency_key: str | None
    attempt: int | None
    replayed: bool
    fault: dict[str, Any] | None  # {"rule", "effect", "phase", "preset"} when one fired

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return data


class RequestFilter(BaseModel):
    """What to look for; every given field must hold. Used by list and count."""

    model_config = ConfigDict(extra="forbid", strict=False)
    account: Annotated[str, Field(max_length=64)] | None = None
    operation: Annotated[str, Field(max_length=64)] | None = None
    method: Literal["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS"] | None = None
    path: (
        Annotated[
            str,
            Field(
                pattern=r"^/",
                max_length=300,
                description="A path template (`/v1/orders/{id}`) or a prefix ending in `*`.",
            ),
        ]
        | None
    ) = None
    status: Annotated[int, Field(ge=100, le=599)] | None = None
    idempotency_key: Annotated[str, Field(max_length=255)] | None = None
    replayed: bool | None = None
    faulted: bool | None = Field(None, description="Only requests a fault did (or did not) hit.")
    fault_rule: Annotated[str, Field(max_length=64)] | None = None
    fault_effect: Annotated[str, Field(max_length=32)] | None = None

    def holds(self, e: Entry) -> bool:
        if self.operation is not None and e.operation != self.operation:
            return False
        if self.method is not None and e.method != self.method:
            return False
        if self.path is not None and not path_pattern(self.path).match(e.path):
            return False
        if self.status is not None and e.status != self.status:
            return False
        if self.idempotency_key is not None and e.idempotency_key != self.idempotency_key:
            return False
        if self.replayed is not None and e.replayed != self.replayed:
            return False
        if self.faulted is not None and (e.fault is not None) != self.faulted:
            return False
        if self.fault_rule is not None and (e.fault or {}).get("rule") != self.fault_rule:
            return False
        return self.fault_effect is None or (e.fault or {}).get("effect") == self.fault_effect


class Journal:
    def __init__(self, size: int = DEFAULT_RING) -> None:
        self.size = size
        self._rings: dict[str, deque[Entry]] = {}
        self._seq = 0
        # Told of every entry as it is recorded: the metrics and the console's live view.
        self.listeners: list[Callable[[Entry], None]] = []

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def record(self, entry: Entry) -> None:
        ring = self._rings.get(entry.account or NO_ACCOUNT)
        if ring is None:
            ring = self._rings[entry.account or NO_ACCOUNT] = deque(maxlen=self.size)
        ring.append(entry)
        for listener in self.listeners:
            listener(entry)

    def _entries(self, account: str | None) -> Iterator[Entry]:
        if account is not None:
            yield from self._rings.get(account, ())
            return
        rings = list(self._rings.values())
        if len(rings) == 1:
            yield from rings[0]
            return
        yield from sorted((e for r in rings for e in r), key=lambda e: e.seq)

    def find(self, flt: RequestFilter, limit: int, cursor: str | None = None) -> Page[Entry]:
        """The matching entries, newest first, `limit` at a time from `cursor` on."""
        matched = [e for e in self._entries(flt.account) if flt.holds(e)]
        return page_of(((e.seq, e) for e in reversed(matched)), limit, cursor, descending=True)

    def count(self, flt: RequestFilter) -> int:
        return sum(1 for e in self._entries(flt.account) if flt.holds(e))

    def clear(self, account: str | None = None) -> None:
        if account is None:
            self._rings.clear()
        else:
            self._rings.pop(account, None)
