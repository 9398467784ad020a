"""`GET /_sandbox/health`: each part of the server and whether it works; 503 when one is down.

- `api`: this worker, which is answering (its pid).
- `store`: the database answers a read (its schema version, the webhook backlog).
- `dispatcher` and `scheduler`: under `sandbank serve` on a database file, processes of their
  own whose supervisor and heartbeats are read from the store (`simulator.supervisor.status`);
  on `:memory:` (and in in-process tests) they run in the API's process (`in-process`).

A load balancer or a test can wait for 200; the body says which part is down and since when
it last showed signs of life.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from simulator import __version__
from simulator.api.runtime import json_response
from simulator.clock import from_us, to_us
from simulator.runtime import runtime_of
from simulator.supervisor import status

Status = Literal["up", "starting", "down"]


class Component(BaseModel):
    status: Status
    mode: Literal["process", "in-process"] | None = None
    pid: int | None = None
    restarts: int | None = Field(None, description="Times the supervisor restarted it.")
    last_heartbeat: datetime | None = None
    last_exit_code: int | None = None
    pending: int | None = Field(
        None, description="Dispatcher: webhook deliveries pending (retries included)."
    )
    detail: str | None = None


class Components(BaseModel):
    api: Component
    store: Component
    dispatcher: Component
    scheduler: Component


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        description="`ok` (200) when every component is up or starting; `degraded` (503) "
        "when one is down."
    )
    version: str
    schema_version: int
    components: Components


def _background(request: Request, name: str, now_us: int) -> Component:
    found = status(runtime_of(request).store, name, now_us)
    if found is None:  # not supervised: it runs in this process (or, in tests, not at all)
        # the lifespan's scheduler task (`simulator.app`), when it runs one
        task = getattr(request.app.state, "due_work", None) if name == "scheduler" else None
        if task is not None and task.done():
            return Component(status="down", mode="in-process", detail="its task ended")
        return Component(status="up", mode="in-process")
    at_us = found.pop("last_heartbeat_us", None)
    return Component(
        **found, mode="process", last_heartbeat=from_us(at_us) if isinstance(at_us, int) else None
    )


async def health(request: Request) -> Response:
    runtime = runtime_of(request)
    now_us = to_us(runtime.service.wall.now())
    schema, pending = 0, None
    try:
        schema = runtime.store.schema_version()
        with runtime.store.read() as tx:
            pending = tx.pending_deliveries()
        store = Component(status="up")
    except Exception as exc:  # the database failing is what this reports, not a 500
        store = Component(status="down", detail=f"{type(exc).__name__}: {exc}")
    try:
        dispatcher = _background(request, "dispatcher", now_us)
        scheduler = _background(request, "scheduler", now_us)
    except Exception as exc:
        dispatcher = scheduler = Component(status="down", detail=f"unreadable: {exc}")
    dispatcher.pending = pending
    parts = Components(
        api=Component(status="up", pid=os.getpid()),
        store=store,
        dispatcher=dispatcher,
        scheduler=scheduler,
    )
    down = any(getattr(parts, n).status == "down" for n in Components.model_fields)
    body = Health(
        status="degraded" if down else "ok",
        version=__version__,
        schema_version=schema,
        components=parts,
    )
    return json_response(body, 503 if down else 200)
