"""The one place that turns errors into `application/problem+json` (RFC 9457)."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from starlette.responses import Response

from simulator.domain.errors import SandbankError, StoreBusy, ValidationFailed
from simulator.locks import busy, is_busy

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "urn:sandbank:problem:"

_STATUS_TITLES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("validation_failed", "Validation failed"),
    500: ("internal_error", "Internal error"),
    503: ("unavailable", "Service unavailable"),
}


def body(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    request_id: str,
    errors: list[dict[str, Any]] | None = None,
) -> bytes:
    doc: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id,
    }
    if errors is not None:
        doc["errors"] = errors
    return orjson.dumps(doc)


def error_body(err: SandbankError, request_id: str) -> bytes:
    errors = err.errors if isinstance(err, ValidationFailed) else None
    return body(
        status=err.status,
        code=err.code,
        title=err.title,
        detail=err.detail,
        request_id=request_id,
        errors=errors,
    )


def from_error(
    err: SandbankError, request_id: str, headers: dict[str, str] | None = None
) -> Response:
    if isinstance(err, StoreBusy):
        headers = {**(headers or {}), "Retry-After": str(err.retry_after)}
    return Response(error_body(err, request_id), err.status, headers, media_type=PROBLEM_JSON)


def from_exception(exc: BaseException, request_id: str) -> Response:
    """Any exception: its problem if it is one of ours, a 503 for a database lock that was
    not ours to wait for, else a 500 that says it is a bug (never a bare page)."""
    if isinstance(exc, SandbankError):
        return from_error(exc, request_id)
    if is_busy(exc):
        return from_error(busy(exc), request_id)
    return from_status(500, request_id, "the simulator failed; this is a bug")


def from_status(
    status: int, request_id: str, detail: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    code, title = _STATUS_TITLES.get(status, ("error", "Error"))
    return Response(
        body(status=status, code=code, title=title, detail=detail or title, request_id=request_id),
        status,
        headers,
        media_type=PROBLEM_JSON,
    )


def validation(exc: ValidationError, prefix: str) -> ValidationFailed:
    """Pydantic errors as field paths (`body.buyer.email`) with a readable message each."""
    errors = []
    for e in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = ".".join(str(p) for p in (prefix, *e["loc"]) if p != "")
        errors.append({"path": loc, "message": e["msg"], "type": e["type"]})
    return ValidationFailed(errors)
