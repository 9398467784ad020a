"""The JSON body rules the models cannot see (issue #17): a body is UTF-8 JSON and an object
names each key once.

- Charset: `application/json` is UTF-8 (RFC 8259); a `charset` parameter other than utf-8
  is a 415, never decoded as something else.
- Empty: only JSON whitespace (space, tab, CR, LF) makes a body empty; `\\x0b` or `\\x0c`
  alone is malformed JSON (Python's `bytes.strip` would have taken them as whitespace).
- Duplicate keys: `{"amount": -5, "amount": 1}` is a 400 `duplicate_key` naming the key; a
  parser that keeps the last one would validate a body other than the one sent.
- NUL: `\\u0000` is valid JSON, so a string may hold it: it is accepted and stored as sent,
  and every answer, event, dump and export gives it back escaped (`\\u0000` in JSON, the
  raw character in CSV). The published schemas allow it, so refusing it would break them.
"""

from __future__ import annotations

import json
from typing import Any

from simulator.domain.errors import DuplicateKey, MalformedJson, UnsupportedMediaType

JSON_WHITESPACE = b" \t\r\n"


def is_empty(raw: bytes) -> bool:
    return not raw.strip(JSON_WHITESPACE)


def check_charset(content_type: str) -> None:
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
            if charset not in ("utf-8", "utf8"):
                raise UnsupportedMediaType(
                    f"bodies must be UTF-8 (charset=utf-8); got charset={charset or '(empty)'}"
                )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(f"the key {key!r} appears more than once in one JSON object")
        out[key] = value
    return out


# One decoder for every body: `json.loads` with a hook builds a new decoder on each call.
_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates)


def check(raw: bytes) -> None:
    """Raise `DuplicateKey` for a repeated key (malformed JSON is left to the model)."""
    if b'"' not in raw:
        return  # no string, so no key: nothing can repeat
    try:
        # decoded as `json.loads` decodes bytes (a BOM, surrogates), the hook's decoder reused
        _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except DuplicateKey:
        raise
    except (ValueError, RecursionError):
        return  # not JSON: the model's parse says so (400 malformed_json)


def malformed() -> MalformedJson:
    return MalformedJson("the body is not valid JSON")
