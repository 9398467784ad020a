"""Shared field types and shapes of `/v1`: constrained strings, amounts, currencies, the
strict request base, list pages and problem details."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, Self, TypeVar, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

from simulator.domain import decisions
from simulator.domain.json_values import JSON_INTEGER
from simulator.domain.models import LineItem
from simulator.domain.money import CURRENCIES, MAX_AMOUNT
from simulator.domain.records import CURSOR_PATTERN, Page

# Patterns spell their character classes out: `\s` means different things to Python and to
# the ECMA-262 regexes JSON Schema specifies, and the document must mean what the server does.
_VISIBLE = r"[^@\x00-\x20\x7f]"

Text = Annotated[str, StringConstraints(min_length=1, max_length=255)]

LongText = Annotated[str, StringConstraints(min_length=1, max_length=500)]

Url = Annotated[str, StringConstraints(pattern=r"^https?://[^\x00-\x20\x7f]+$", max_length=2048)]

Email = Annotated[
    str, StringConstraints(pattern=rf"^{_VISIBLE}+@{_VISIBLE}+\.{_VISIBLE}+$", max_length=254)
]

# Validated as three capitals here and against the ISO list by the domain (422
# `unknown_currency`); published as that list, which is exactly what is accepted.
Currency = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{3}$"),
    WithJsonSchema(
        {
            "type": "string",
            "enum": sorted(CURRENCIES),
            "description": "ISO 4217 code, upper case. Defaults to the account currency (USD).",
        }
    ),
]

Amount = Annotated[
    int, Field(ge=1, le=MAX_AMOUNT, description="Minor units (cents for USD)."), JSON_INTEGER
]

MinorUnits = Annotated[int, Field(ge=0, le=MAX_AMOUNT, description="Minor units."), JSON_INTEGER]

Metadata = Annotated[
    dict[
        Annotated[str, StringConstraints(min_length=1, max_length=40)],
        Annotated[str, StringConstraints(max_length=500)],
    ],
    Field(max_length=50, description="Up to 50 string pairs, stored and echoed back."),
]

Terms = Literal["net30", "net60", "installments_3", "installments_6", "installments_12"]

assert set(get_args(Terms)) == set(decisions.TERMS)


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class LineItemIn(RequestModel):
    name: Text
    sku: Text | None = None
    quantity: Annotated[int, Field(ge=1, le=1_000_000), JSON_INTEGER] = 1
    unit_amount: MinorUnits = 0

    def domain(self) -> LineItem:
        return LineItem(**self.model_dump())


def _one_of(a: str, b: str) -> dict[str, Any]:
    """Exactly one of `a` and `b` is given; `null` counts as not given, as the server reads it.

    Said as "not both" plus "if not `a`, then `b`" rather than a top-level `oneOf`: code
    generators (openapi-python-client, openapi-generator) turn a `oneOf` beside `properties`
    into a union of untyped variants and lose the fields; they ignore `not` and `if`, and keep
    one typed model, while validators and schemathesis read the same rule."""

    def given(*names: str) -> dict[str, Any]:
        return {
            "required": list(names),
            "properties": {n: {"not": {"type": "null"}} for n in names},
        }

    return {"not": given(a, b), "if": {"not": given(a)}, "then": given(b)}


Cursor = Annotated[
    str,
    StringConstraints(pattern=CURSOR_PATTERN),
    Field(description="`next_cursor` of the previous page."),
]


class ListQuery(RequestModel):
    model_config = ConfigDict(extra="forbid", strict=False)  # query strings are text
    limit: Annotated[int, Field(ge=1, le=100)] = 10
    cursor: Cursor | None = None


class LineItemOut(BaseModel):
    name: str
    sku: str | None
    quantity: int
    unit_amount: int


T = TypeVar("T")

M = TypeVar("M", bound=BaseModel)


class ListOut(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool
    next_cursor: str | None

    @classmethod
    def of(cls, page: Page[Any], of: Callable[[Any], T]) -> Self:
        """One page of objects, each shown by `of` (for a named subclass of a list)."""
        return cls(
            data=[of(item) for item in page.items],
            has_more=page.has_more,
            next_cursor=page.next_cursor,
        )


def listed(page: Page[Any], of: Callable[[Any], M]) -> ListOut[M]:
    """One page of objects as a list response, each object shown by `of`."""
    out: ListOut[M] = ListOut[Any](
        data=[of(item) for item in page.items],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )
    return out


class FieldError(BaseModel):
    path: str
    message: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details, as every error is sent."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    request_id: str
    errors: list[FieldError] | None = None


def _rfc3339_only(value: Any) -> Any:
    """pydantic would read `0.5` or `1700000000` as unix time; the contract says RFC 3339."""
    if not isinstance(value, str) or "T" not in value.upper():
        raise ValueError("an RFC 3339 date-time such as 2026-03-01T09:00:00Z")
    try:
        return datetime.fromisoformat(value)  # strict validation wants a datetime after this
    except ValueError:
        raise ValueError("an RFC 3339 date-time such as 2026-03-01T09:00:00Z") from None


Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_rfc3339_only)]
