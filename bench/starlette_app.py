"""A plain Starlette app keeping checkouts in a dict: the baseline `bench/peers.py` compares
`GET /v1/checkouts/{id}` with (routing, a Request, a JSON response, no validation, no disk),
served by uvicorn with exactly the simulator's settings.

    python bench/starlette_app.py --port 8097
"""

from __future__ import annotations

import itertools
from typing import Any

from harness import serve_bench_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

CHECKOUTS: dict[str, dict[str, Any]] = {}
IDS = itertools.count(1)


async def create(request: Request) -> JSONResponse:
    body = await request.json()
    ident = f"chk_{next(IDS):020d}"
    CHECKOUTS[ident] = {"id": ident, "object": "checkout", "status": "open", **body}
    return JSONResponse(CHECKOUTS[ident], 201)


async def show(request: Request) -> JSONResponse:
    found = CHECKOUTS.get(request.path_params["id"])
    if found is None:
        return JSONResponse({"title": "not found"}, 404)
    return JSONResponse(found)


app = Starlette(
    routes=[
        Route("/v1/checkouts", create, methods=["POST"]),
        Route("/v1/checkouts/{id}", show, methods=["GET"]),
    ]
)


def main() -> None:
    serve_bench_app(app, __doc__, "plain Starlette app")


if __name__ == "__main__":
    main()
