"""An operation table: each entry is one route and everything the OpenAPI document says of it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Endpoint = Callable[[Request], Awaitable[Response]]


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


def routes(ops: list[Op]) -> list[Route]:
    return [Route(op.path, op.endpoint, methods=[op.method], name=op.operation_id) for op in ops]
