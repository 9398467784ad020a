"""Page cursors: opaque to clients, a row's sequence number inside."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import TypeVar

from simulator.domain.errors import ValidationFailed
from simulator.domain.records import CURSOR_PATTERN, Page

T = TypeVar("T")

# The shape of a cursor is `CURSOR_PATTERN` (simulator.domain.records), published in the contract.
_CURSOR = re.compile(CURSOR_PATTERN)


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(seq.to_bytes(8, "big")).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    if not _CURSOR.match(cursor):
        raise ValidationFailed(
            [
                {
                    "path": "query.cursor",
                    "message": "not a cursor this API returned",
                    "type": "cursor",
                }
            ]
        )
    return int.from_bytes(base64.urlsafe_b64decode(cursor + "="), "big")


def page_of(
    keyed: Iterable[tuple[int, T]], limit: int, cursor: str | None, *, descending: bool
) -> Page[T]:
    """A page of `keyed` ((sequence number, item) in list order, ascending or descending)
    after the cursor's position: for lists kept in memory (fault rules, the journal)."""
    at = decode_cursor(cursor) if cursor is not None else None
    found: list[tuple[int, T]] = []
    for key, item in keyed:
        if at is not None and (key >= at if descending else key <= at):
            continue
        found.append((key, item))
        if len(found) > limit:
            break
    more = len(found) > limit
    return Page(
        [item for _, item in found[:limit]],
        more,
        encode_cursor(found[limit - 1][0]) if more else None,
    )
