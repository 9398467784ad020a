"""Fault rules as data. `RuleIn` is what a user writes (file, control plane, or the
`Sandbank-Fault` header); `Rule` is a stored rule with its id, resolved window and counters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from simulator.clock import parse_duration
from simulator.domain.errors import SandbankError
from simulator.domain.json_values import JSON_INTEGER


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Integers are strict (`true` and `"5"` are errors) and JSON_INTEGER makes `5.0` the 5 it is.
Ms = Annotated[
    int,
    Field(ge=0, le=600_000, strict=True, description="Milliseconds (at most 10 minutes)."),
    JSON_INTEGER,
]


def _check_duration(text: str) -> str:
    try:
        parse_duration(text)
    except SandbankError:
        raise ValueError("a duration such as 90s, 15m, 2h or 1d12h") from None
    return text


Duration = Annotated[
    str, Field(min_length=1, max_length=40, examples=["15m"]), AfterValidator(_check_duration)
]


AttemptNo = Annotated[int, Field(ge=1, le=1_000_000, strict=True), JSON_INTEGER]


class Attempt(Strict):
    """Which attempt of an Idempotency-Key this is (1 = first). All given bounds must hold."""

    eq: AttemptNo | None = None
    lte: AttemptNo | None = None
    gte: AttemptNo | None = None


class Match(Strict):
    operation: str | None = Field(None, description="operationId from contracts/openapi.yaml")
    method: Literal["GET", "POST", "PATCH", "PUT", "DELETE"] | None = None
    path: str | None = Field(
        None,
        pattern=r"^/(v1|app/ecomm|gateway/v1|vcards/v1|invoicing/v1)(/|\*|$)",
        max_length=300,
        description="A /v1 path template (`/v1/orders/{id}/captures`) or a prefix ending in `*`"
        " (`/v1/*`); Credit Key's dialect is `/app/ecomm/...`, whatever prefix the client used;"
        " the gateway + net terms personality is `/gateway/v1/...`, virtual cards"
        " `/vcards/v1/...`, traditional invoicing `/invoicing/v1/...`.",
    )
    header: (
        Annotated[
            dict[
                Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[!-~]+$")],
                Annotated[str, Field(max_length=1000)],
            ],
            Field(max_length=20),
        ]
        | None
    ) = Field(None, description="Request headers that must be equal (names ignore case).")
    attempt: Attempt | None = None


class Latency(Strict):
    type: Literal["latency"]
    ms: Ms | None = Field(None, description="Fixed delay.")
    distribution: Literal["fixed", "uniform", "lognormal"] = "fixed"
    min_ms: Ms = 0
    max_ms: Ms | None = None
    median_ms: Ms | None = None
    sigma: Annotated[float, Field(gt=0, le=5)] = 0.5
    cap_ms: Ms = 30_000

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.distribution == "fixed" and self.ms is None:
            raise ValueError("a fixed latency needs `ms`")
        if self.distribution == "uniform" and (self.max_ms is None or self.max_ms < self.min_ms):
            raise ValueError("a uniform latency needs `max_ms` >= `min_ms`")
        if self.distribution == "lognormal" and self.median_ms is None:
            raise ValueError("a lognormal latency needs `median_ms`")
        return self


class Status(Strict):
    type: Literal["status"]
    status: Literal[429, 500, 502, 503, 504]
    retry_after_s: Annotated[int, Field(ge=0, le=86_400, strict=True), JSON_INTEGER] | None = None
    detail: Annotated[str, Field(max_length=500)] | None = None


class Hang(Strict):
    """Never answer; the connection stays open until the client gives up (or `max_ms`)."""

    type: Literal["hang"]
    max_ms: Ms = 300_000


class Reset(Strict):
    """Abort the TCP connection with a RST."""

    type: Literal["reset"]


class Empty(Strict):
    """Close the connection without sending a byte."""

    type: Literal["empty"]


class Truncate(Strict):
    """Send the headers and part of the real body, then close."""

    type: Literal["truncate"]
    fraction: Annotated[float, Field(ge=0, lt=1)] = 0.5


class Malformed(Strict):
    """A 200 whose JSON body is cut off mid-document."""

    type: Literal["malformed"]


class Dribble(Strict):
    """The real body, spread evenly over `ms`."""

    type: Literal["dribble"]
    ms: Ms = 5_000
    chunks: Annotated[int, Field(ge=2, le=1000, strict=True), JSON_INTEGER] = 20


class ContentType(Strict):
    """The real body under a wrong Content-Type."""

    type: Literal["content_type"]
    content_type: Annotated[str, Field(min_length=1, max_length=100)] = "text/html; charset=utf-8"


Effect = Annotated[
    Latency | Status | Hang | Reset | Empty | Truncate | Malformed | Dribble | ContentType,
    Field(discriminator="type"),
]
# Effects that reshape the real response: the operation has to run first.
RESPONSE_SHAPING = frozenset({"truncate", "dribble", "content_type"})


class Window(Strict):
    """When the rule is active: `start`/`end`, or `duration` from the moment it is created.
    Account rules follow the account's clock; rules for all accounts follow the wall clock."""

    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    duration: Duration | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        if self.duration is not None and (self.start is not None or self.end is not None):
            raise ValueError("give `duration`, or `start` and/or `end`, not both")
        if self.start and self.end and self.end <= self.start:
            raise ValueError("`end` must be after `start`")
        return self


class Ramp(Strict):
    """Probability rising (or falling) linearly across the window: a degradation ramp."""

    from_probability: Annotated[float, Field(ge=0, le=1, alias="from")]
    to_probability: Annotated[float, Field(ge=0, le=1, alias="to")]
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RuleIn(Strict):
    account: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        None, description="An account id; omit for every account."
    )
    name: Annotated[str, Field(max_length=100)] | None = None
    match: Match = Field(default_factory=Match)
    effect: Effect
    phase: Literal["before", "after"] = "before"
    probability: Annotated[float, Field(ge=0, le=1)] = 1.0
    times: Annotated[int, Field(ge=1, le=1_000_000_000, strict=True), JSON_INTEGER] | None = Field(
        None, description="Retire after firing N times."
    )
    window: Window | None = None
    ramp: Ramp | None = None

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.effect.type in RESPONSE_SHAPING and self.phase == "before":
            raise ValueError(
                f"effect `{self.effect.type}` reshapes the real response, so the operation must "
                "run first: use phase `after`"
            )
        if self.ramp is not None and (
            self.window is None
            or (
                self.window.duration is None
                and (self.window.start is None or self.window.end is None)
            )
        ):
            raise ValueError("a ramp needs a bounded window (`duration`, or `start` and `end`)")
        return self


class Rule(RuleIn):
    id: str
    created_at: datetime
    active_from: datetime | None = None
    active_until: datetime | None = None
    fired: int = 0
    preset: str | None = None
