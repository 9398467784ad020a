"""Webhook endpoints and their attempts: requests and shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StringConstraints,
    WithJsonSchema,
)

from simulator.api.schemas.common import (
    ListOut,
    ListQuery,
    LongText,
    RequestModel,
    Rfc3339,
    Url,
)
from simulator.domain import webhooks as wh
from simulator.domain.states import (
    EndpointStatus,
)

EventType = Annotated[
    str,
    Field(min_length=1, max_length=64),
    WithJsonSchema({"type": "string", "enum": ["*", *wh.EVENT_TYPES]}),
]


def _known_events(names: list[str]) -> list[str]:
    unknown = [n for n in names if n != "*" and n not in wh.EVENT_TYPES]
    if unknown:
        raise ValueError(
            f"unknown event types {unknown}; use '*' or some of: {', '.join(wh.EVENT_TYPES)}"
        )
    return names


EnabledEvents = Annotated[
    list[EventType],
    Field(min_length=1, max_length=50, description='`["*"]` for every type, or a list.'),
    AfterValidator(_known_events),
]


class WebhookEndpointCreate(RequestModel):
    url: Url
    enabled_events: EnabledEvents = Field(default_factory=lambda: ["*"])
    description: LongText | None = None


class WebhookEndpointUpdate(RequestModel):
    url: Url | None = None
    enabled_events: EnabledEvents | None = None
    description: LongText | None = None
    status: EndpointStatus | None = None


class RotateSecret(RequestModel):
    overlap: Annotated[
        str,
        StringConstraints(min_length=2, max_length=40, pattern=r"^([0-9]{1,9}(ms|s|m|h|d|w))+$"),
        Field(examples=["24h"], description="How long the old secret keeps signing too."),
    ] = "24h"


class RecoverIn(RequestModel):
    since: Rfc3339


class WebhookEndpointPublic(BaseModel):
    """An endpoint as events show it: everything but its secrets."""

    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    url: str
    description: str | None
    enabled_events: list[str]
    status: EndpointStatus
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, e: wh.WebhookEndpoint) -> WebhookEndpointPublic:
        return cls.model_validate(e.model_dump(), strict=False)


class WebhookEndpointOut(WebhookEndpointPublic):
    secret: str = Field(description="`whsec_…`: verify signatures with it (Standard Webhooks).")
    previous_secret_expires_at: datetime | None = Field(
        description="Until then the previous secret signs too (after a rotation)."
    )

    @classmethod
    def of(cls, e: wh.WebhookEndpoint) -> WebhookEndpointOut:
        return cls.model_validate(e.model_dump(), strict=False)


class WebhookEndpointList(ListOut[WebhookEndpointOut]):
    """Oldest first (the order they were registered in)."""


class AttemptOut(BaseModel):
    object: Literal["webhook_attempt"] = "webhook_attempt"
    delivery_id: str
    event_id: str
    event_type: str
    n: int
    at: datetime
    url: str
    status: int | None
    response_excerpt: str | None
    latency_ms: float
    outcome: str
    next_attempt_at: datetime | None

    @classmethod
    def of(cls, d: wh.Delivery, a: wh.Attempt) -> AttemptOut:
        return cls(
            delivery_id=d.id,
            event_id=d.event_id,
            event_type=d.event_type,
            n=a.n,
            at=a.at,
            url=a.url,
            status=a.status,
            response_excerpt=a.response_excerpt,
            latency_ms=a.latency_ms,
            outcome=a.outcome,
            next_attempt_at=a.next_attempt_at,
        )


class AttemptList(ListOut[AttemptOut]):
    """Newest delivery first, each delivery's attempts newest first."""


class AttemptQuery(ListQuery):
    limit: Annotated[int, Field(ge=1, le=100)] = 20


class Recovered(BaseModel):
    recovered: int = Field(description="Failed deliveries queued to be sent again now.")


class Deleted(BaseModel):
    id: str
    object: str
    deleted: Literal[True] = True
