"""How JSON values become Python ones, where pydantic and JSON disagree."""

from __future__ import annotations

from typing import Any

from pydantic import BeforeValidator


def _json_integer(value: Any) -> Any:
    """JSON has one number type, and JSON Schema agrees that `887.0` is the integer 887; so is
    the request. Fractions, booleans and strings stay errors (the field must be strict)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Goes last in an `Annotated`, after the bounds, so they stay in the JSON Schema.
JSON_INTEGER = BeforeValidator(_json_integer)
