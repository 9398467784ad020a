"""Page cursors: opaque to clients, a row's sequence number inside."""

from __future__ import annotations

import base64
import re

from simulator.domain.errors import ValidationFailed

# A cursor is the row's sequence number as 8 big-endian bytes, base64url without padding: 11
# characters, and every string of that shape (`CURSOR_PATTERN`, published in the contract) is a
# position (the top bit is zero: SQLite INTEGERs are signed 64-bit).
CURSOR_PATTERN = r"^[A-Za-f][A-Za-z0-9_-]{9}[AEIMQUYcgkosw048]$"
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
