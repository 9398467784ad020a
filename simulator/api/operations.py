"""An operation table: each entry is one route and everything the OpenAPI document says of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator.api.guard import Endpoint, guarded


@dataclass(frozen=True)
class Op:
    operation_id: str
    method: str
    path: str
    endpoint: Endpoint
    summary: str
    response: type[BaseModel] | None
    status: int = 200
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    links: dict[str, dict[str, Any]] = field(default_factory=dict)
    tag: str = ""
    description: str = ""
    idempotent_post: bool = True
    response_media: str = "application/json"
    # Media types of a response that is a file rather than a JSON model (`response` None):
    # published as strings of those types.
    file_media: tuple[str, ...] = ()
    # Other media types the request body may come as (text, e.g. an X12 document): published
    # beside the JSON body as strings of those types.
    body_media: tuple[str, ...] = ()
    # Other statuses answered with the same `response` model: status -> description.
    also: dict[int, str] = field(default_factory=dict)


def routes(ops: list[Op]) -> list[Route]:
    """One route per path, so a 405 names every method the path supports in `Allow`. Each
    endpoint runs inside `simulator.api.guard` (due work in steps, lock waits off the loop)."""
    by_path: dict[str, dict[str, Op]] = {}
    for op in ops:
        by_path.setdefault(op.path, {})[op.method] = op
    return [_route(path, methods) for path, methods in by_path.items()]


def _route(path: str, methods: dict[str, Op]) -> Route:
    if len(methods) == 1:
        (op,) = methods.values()
        return Route(path, guarded(op.endpoint), methods=[op.method], name=op.operation_id)
    endpoints = {method: guarded(op.endpoint) for method, op in methods.items()}

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await endpoints[method](request)

    name = "|".join(op.operation_id for op in methods.values())
    return Route(path, dispatch, methods=list(methods), name=name)
