"""`/_sandbox` for webhooks: quirks per endpoint, the delivery log, flush, and event replay."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from simulator.api import schemas as s
from simulator.api.operations import Op
from simulator.api.runtime import json_response, parse, path_id, query, service_of, webhooks_of
from simulator.domain import webhooks as wh
from simulator.domain.states import DeliveryStatus
from simulator.runtime import runtime_of
from simulator.webhooks.dispatcher import Dispatcher


class DeliveryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    endpoint: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    event: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    status: DeliveryStatus | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    cursor: s.Cursor | None = None


class DeliveryOut(BaseModel):
    id: str
    object: Literal["webhook_delivery"] = "webhook_delivery"
    endpoint_id: str
    event_id: str
    event_type: str
    status: str
    next_attempt_at: datetime | None
    created_at: datetime
    attempts: list[dict[str, Any]]


class DeliveryList(s.ListOut[DeliveryOut]):
    """Newest first."""


class FlushIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        None, description="Only this account's deliveries; omit for all."
    )


class Flushed(BaseModel):
    attempts: int = Field(description="Attempts made (retries falling due on the way included).")


class Replayed(BaseModel):
    event_id: str
    deliveries: list[str]


def _dispatcher(request: Request) -> Dispatcher:
    return runtime_of(request).dispatcher


async def set_quirks(request: Request) -> Response:
    body = await parse(request, wh.Quirks, optional=True)
    await webhooks_of(request).fan_out_in_steps()  # the backlog first, in steps
    eid = path_id(request)
    with service_of(request).scope_for("webhook_endpoint", eid) as ctx:
        endpoint = webhooks_of(request).set_quirks(ctx, eid, body)
    return json_response(
        {**s.WebhookEndpointOut.of(endpoint).model_dump(mode="json"), "quirks": body.model_dump()}
    )


async def list_deliveries(request: Request) -> Response:
    q = query(request, DeliveryQuery)
    page = webhooks_of(request).deliveries(
        q.account,
        endpoint_id=q.endpoint,
        event_id=q.event,
        status=q.status,
        limit=q.limit,
        cursor=q.cursor,
    )
    return json_response(
        DeliveryList.of(page, lambda d: DeliveryOut.model_validate(d.model_dump()))
    )


async def flush(request: Request) -> Response:
    body = await parse(request, FlushIn, optional=True)
    return json_response(Flushed(attempts=await _dispatcher(request).flush(body.account)))


async def replay_event(request: Request) -> Response:
    eid = path_id(request)
    with service_of(request).scope_for("event", eid) as ctx:
        made = webhooks_of(request).replay_event(ctx, eid)
    return json_response(Replayed(event_id=eid, deliveries=[d.id for d in made]), 201)


_W = (400, 401, 404, 413, 415, 422)
OPERATIONS: list[Op] = [
    Op(
        "setWebhookQuirks",
        "PUT",
        "/_sandbox/webhook_endpoints/{id}/quirks",
        set_quirks,
        "Replace an endpoint's delivery quirks (duplicate, reorder, delay, drop, stale "
        "timestamp, bad signature, old secret, thin payload); `{}` clears them",
        s.WebhookEndpointOut,
        body=wh.Quirks,
        body_required=False,
        errors=_W,
        tag="Webhooks",
    ),
    Op(
        "listWebhookDeliveries",
        "GET",
        "/_sandbox/webhooks/deliveries",
        list_deliveries,
        "Every delivery with its attempts (request headers and body, response, latency, "
        "outcome, next attempt), newest first",
        DeliveryList,
        query=DeliveryQuery,
        errors=(401, 422),
        tag="Webhooks",
    ),
    Op(
        "flushWebhooks",
        "POST",
        "/_sandbox/webhooks/flush",
        flush,
        "Deliver everything due now on each account's clock, and wait for it",
        Flushed,
        body=FlushIn,
        body_required=False,
        errors=_W,
        tag="Webhooks",
    ),
    Op(
        "replayEvent",
        "POST",
        "/_sandbox/events/{id}/replay",
        replay_event,
        "Deliver a stored event again, now, to every endpoint that wants its type",
        Replayed,
        201,
        errors=(401, 404),
        tag="Webhooks",
    ),
]
