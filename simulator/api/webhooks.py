"""`/v1/webhook_endpoints` and `/v1/events/{id}`: thin adapters over `WebhookService`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from simulator.api import schemas as s
from simulator.api.operations import Op
from simulator.api.runtime import parse, path_id, query, run, service_of, webhooks_of
from simulator.clock import parse_duration
from simulator.context import Ctx


async def create_endpoint(request: Request) -> Response:
    body = await parse(request, s.WebhookEndpointCreate)
    await webhooks_of(request).fan_out_in_steps()  # the backlog first, in steps
    return await run(
        request,
        lambda ctx: ctx.shown(
            s.WebhookEndpointOut.of,
            webhooks_of(request).create_endpoint(
                ctx,
                url=body.url,
                enabled_events=body.enabled_events,
                description=body.description,
            ),
        ),
        201,
    )


async def list_endpoints(request: Request) -> Response:
    q = query(request, s.ListQuery)

    def op(ctx: Ctx) -> s.WebhookEndpointList:
        page = webhooks_of(request).endpoint_page(ctx, limit=q.limit, cursor=q.cursor)
        return s.WebhookEndpointList.of(page, s.WebhookEndpointOut.of)

    return await run(request, op, reusable=True)


async def get_endpoint(request: Request) -> Response:
    return await run(
        request,
        lambda ctx: s.WebhookEndpointOut.of(
            webhooks_of(request).get_endpoint(ctx, path_id(request))
        ),
        reusable=True,
    )


async def update_endpoint(request: Request) -> Response:
    body = await parse(request, s.WebhookEndpointUpdate)
    await webhooks_of(request).fan_out_in_steps()  # the backlog first, in steps
    changes = body.model_dump(exclude_unset=True)
    return await run(
        request,
        lambda ctx: ctx.shown(
            s.WebhookEndpointOut.of,
            webhooks_of(request).update_endpoint(ctx, path_id(request), changes),
        ),
    )


async def delete_endpoint(request: Request) -> Response:
    await webhooks_of(request).fan_out_in_steps()  # the backlog first, in steps

    def op(ctx: Ctx) -> s.Deleted:
        gone = webhooks_of(request).delete_endpoint(ctx, path_id(request))
        return s.Deleted(id=gone.id, object="webhook_endpoint")

    return await run(request, op)


async def rotate_secret(request: Request) -> Response:
    body = await parse(request, s.RotateSecret, optional=True)
    overlap = parse_duration(body.overlap)  # 422 invalid_duration past the 100-year bound
    return await run(
        request,
        lambda ctx: ctx.shown(
            s.WebhookEndpointOut.of,
            webhooks_of(request).rotate_secret(ctx, path_id(request), overlap),
        ),
    )


async def list_attempts(request: Request) -> Response:
    q = query(request, s.AttemptQuery)

    def op(ctx: Ctx) -> s.AttemptList:
        page = webhooks_of(request).attempts(ctx, path_id(request), limit=q.limit, cursor=q.cursor)
        return s.AttemptList.of(page, lambda da: s.AttemptOut.of(*da))

    return await run(request, op, reusable=True)


async def recover(request: Request) -> Response:
    body = await parse(request, s.RecoverIn)
    return await run(
        request,
        lambda ctx: s.Recovered(
            recovered=webhooks_of(request).recover(ctx, path_id(request), body.since)
        ),
    )


async def list_events(request: Request) -> Response:
    q = query(request, s.EventListQuery)

    def op(ctx: Ctx) -> s.ListOut[s.EventOut]:
        page = service_of(request).list_events(
            ctx,
            type_=q.type,
            object_id=q.object_id,
            created_gte=q.created_gte,
            created_lt=q.created_lt,
            limit=q.limit,
            cursor=q.cursor,
        )
        return s.listed(page, s.EventOut.of)

    return await run(request, op, reusable=True)


async def get_event(request: Request) -> Response:
    return await run(
        request,
        lambda ctx: s.EventOut.of(service_of(request).get_event(ctx, path_id(request))),
        reusable=True,
    )


_R = (401, 404)
_W = (400, 401, 404, 409, 413, 415, 422)
E = "/v1/webhook_endpoints"
OPERATIONS: list[Op] = [
    Op(
        "createWebhookEndpoint",
        "POST",
        E,
        create_endpoint,
        "Create a webhook endpoint; the response carries its signing secret",
        s.WebhookEndpointOut,
        201,
        body=s.WebhookEndpointCreate,
        errors=_W,
        tag="Webhooks",
    ),
    Op(
        "listWebhookEndpoints",
        "GET",
        E,
        list_endpoints,
        "List webhook endpoints, oldest first",
        s.WebhookEndpointList,
        query=s.ListQuery,
        errors=(401, 422),
        tag="Webhooks",
    ),
    Op(
        "getWebhookEndpoint",
        "GET",
        f"{E}/{{id}}",
        get_endpoint,
        "Get a webhook endpoint",
        s.WebhookEndpointOut,
        errors=_R,
        tag="Webhooks",
    ),
    Op(
        "updateWebhookEndpoint",
        "PATCH",
        f"{E}/{{id}}",
        update_endpoint,
        "Change the URL, event types or description; enable or disable",
        s.WebhookEndpointOut,
        body=s.WebhookEndpointUpdate,
        errors=_W,
        tag="Webhooks",
    ),
    Op(
        "deleteWebhookEndpoint",
        "DELETE",
        f"{E}/{{id}}",
        delete_endpoint,
        "Delete a webhook endpoint (its pending deliveries are abandoned)",
        s.Deleted,
        errors=_R,
        idempotent_post=False,
        tag="Webhooks",
    ),
    Op(
        "rotateWebhookSecret",
        "POST",
        f"{E}/{{id}}/rotate_secret",
        rotate_secret,
        "A new secret; the old one keeps signing too for `overlap` (default 24h)",
        s.WebhookEndpointOut,
        body=s.RotateSecret,
        body_required=False,
        errors=_W,
        tag="Webhooks",
    ),
    Op(
        "listWebhookAttempts",
        "GET",
        f"{E}/{{id}}/attempts",
        list_attempts,
        "Delivery attempts to this endpoint: newest delivery first, each delivery's attempts "
        "newest first",
        s.AttemptList,
        query=s.AttemptQuery,
        errors=(401, 404, 422),
        tag="Webhooks",
    ),
    Op(
        "recoverWebhookEndpoint",
        "POST",
        f"{E}/{{id}}/recover",
        recover,
        "Send again every failed delivery to this endpoint since a time",
        s.Recovered,
        body=s.RecoverIn,
        errors=_W,
        tag="Webhooks",
    ),
    Op(
        "getEvent",
        "GET",
        "/v1/events/{id}",
        get_event,
        "Get an event",
        s.EventOut,
        errors=_R,
        tag="Events",
    ),
]
