"""Page cursors: opaque to clients, a row's sequence number inside."""

from __future__ import annotations

import base64
import re

from simulator.domain.errors import ValidationFailed
from simulator.domain.records import CURSOR_PATTERN

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
