"""Credit Key's decimal dollars <-> Sandbank's integer cents, exactly.

Credit Key sends amounts as JSON numbers (PHP floats, JS numbers) or numeric strings
(WooCommerce). Bodies are parsed with `parse_float=Decimal`, so a number never passes through a
binary float: `10.1` is `Decimal("10.1")`, and `0.1 + 0.2` computed by a client in floating point
arrives as `0.30000000000000004` and is refused (more than two decimals) instead of being rounded
to a cent nobody asked for. Answers carry `Decimal` dollars, written as JSON numbers with two
decimals by `wire` (orjson fragments), so no float exists on the way out either.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from simulator.domain.money import MAX_AMOUNT

CENT = Decimal("0.01")
_NUMERIC = re.compile(r"^[0-9]+(\.[0-9]+)?$")
# The largest amount in dollars (Sandbank's bound on any amount, in USD).
MAX_DOLLARS = Decimal(MAX_AMOUNT) / 100


def to_cents(value: object) -> int:
    """Dollars (int, Decimal or numeric string) -> integer cents; ValueError says why not."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise ValueError('must be a number of dollars, e.g. 10.50 or "10.50"')
    if isinstance(value, str):
        text = value.strip()
        if "," in text:
            raise ValueError(f"{value!r}: write amounts without thousands separators")
        if text.startswith("-") and _NUMERIC.match(text[1:]):
            raise ValueError(f"{value!r} is negative")
        if not _NUMERIC.match(text):
            raise ValueError(f"{value!r} is not a number of dollars")
        value = Decimal(text)
    try:
        amount = Decimal(value)
        if not amount.is_finite():
            raise ValueError("must be a finite number of dollars")
        if amount < 0:
            raise ValueError(f"{amount} is negative")
        if amount > MAX_DOLLARS:
            raise ValueError(f"{amount} is more than {MAX_DOLLARS} dollars")
        cents = amount * 100
        if cents != cents.to_integral_value():
            raise ValueError(f"{amount} has more than two decimals (dollars and cents only)")
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number of dollars") from None
    return int(cents)


def dollars(cents: int) -> Decimal:
    """Integer cents -> Decimal dollars with two decimals (exact)."""
    return (Decimal(cents) / 100).quantize(CENT)


def wire(value: Any) -> Any:
    """A python-mode dump made ready for orjson: each Decimal becomes a JSON number as written
    (`10.50`), never a binary float."""
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value).encode())
    if isinstance(value, dict):
        return {k: wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [wire(v) for v in value]
    return value
