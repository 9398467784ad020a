"""The one place the integration turns errors into `application/problem+json` (RFC 9457), for
the order-to-cash API and the webhook receiver alike: `type` is
`urn:sandbank:integration:problem:<code>`, with `title`, `status`, `detail` and `code`."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from integration.errors import Problem

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "urn:sandbank:integration:problem:"
_STATUS_CODES = {404: ("not_found", "Not found"), 405: ("method_not_allowed", "Not allowed")}


def problem(
    status: int, code: str, title: str, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = {"type": TYPE_BASE + code, "title": title, "status": status, "detail": detail}
    body["code"] = code
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def from_error(exc: Problem, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return problem(exc.status, exc.code, exc.title, exc.detail, headers)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return from_error(exc)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code, title = _STATUS_CODES.get(exc.status_code, ("http_error", "Error"))
    return problem(exc.status_code, code, title, str(exc.detail))


# Starlette's `exception_handlers` for an app of the integration.
HANDLERS = {Problem: _on_problem, HTTPException: _on_http}

__all__ = ["HANDLERS", "PROBLEM_JSON", "TYPE_BASE", "from_error", "problem"]
