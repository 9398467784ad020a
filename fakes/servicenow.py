"""A FAKE ServiceNow-shaped Table API for incidents (the subset the ticket sink uses), in
memory.

    POST  /api/now/table/incident          {short_description, description, urgency, impact,
                                             correlation_id, correlation_display, state}
                                                                          201 {"result": {...}}
    GET   /api/now/table/incident[?sysparm_query=correlation_id=X^state=1&sysparm_limit=N]
                                                                          200 {"result": [...]}
    GET   /api/now/table/incident/{sys_id}                                200 {"result": {...}}
    PATCH /api/now/table/incident/{sys_id}  (or PUT) {state, urgency, work_notes, comments,
                                             close_code, close_notes}      200 {"result": {...}}

Authentication is HTTP basic with the configured user and password. As in ServiceNow, every
field is a string, `number` counts INC0010001 upwards, `sys_id` is 32 hex digits, `state` is a
code (1 New, 2 In Progress, 3 On Hold, 6 Resolved, 7 Closed, 8 Canceled) and errors are
`{"error": {"message", "detail"}, "status": "failure"}`. A closed or canceled incident can no
longer be updated. Ids are counters and times come from the injected clock, so the same calls
give the same incidents. What it does not do: other tables, ACLs, business rules, dot-walking,
sysparm_fields/display_value, encoded queries beyond `field=value` joined by `^`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fakes.common import Clock, basic_credentials, json_object, system_clock

STATES = {
    "1": "New",
    "2": "In Progress",
    "3": "On Hold",
    "6": "Resolved",
    "7": "Closed",
    "8": "Canceled",
}
FINAL_STATES = frozenset({"7", "8"})
LEVELS = ("1", "2", "3")  # urgency and impact: 1 high, 2 medium, 3 low
WRITABLE = (
    "short_description",
    "description",
    "urgency",
    "impact",
    "correlation_id",
    "correlation_display",
    "state",
    "close_code",
    "close_notes",
)
TABLE = "/api/now/table/incident"


class ServiceNowError(Exception):
    def __init__(self, status: int, message: str, detail: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "detail": detail}, "status": "failure"}


def _stamp(clock: Clock) -> str:
    return clock().strftime("%Y-%m-%d %H:%M:%S")


def _fields(body: dict[str, Any]) -> dict[str, str]:
    """The writable fields of a body, as strings, checked."""
    out: dict[str, str] = {}
    for name in WRITABLE:
        if name not in body:
            continue
        value = body[name]
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ServiceNowError(400, "Invalid value", f"{name}: must be a string")
        out[name] = str(value)
    if "state" in out and out["state"] not in STATES:
        raise ServiceNowError(
            400, "Invalid state", f"state {out['state']!r}: one of {', '.join(STATES)}"
        )
    for name in ("urgency", "impact"):
        if name in out and out[name] not in LEVELS:
            raise ServiceNowError(400, f"Invalid {name}", f"{name}: one of 1, 2, 3")
    return out


def create_servicenow_app(*, user: str, password: str, clock: Clock = system_clock) -> Starlette:
    """The fake on its own in-memory state; basic auth with `user` and `password`."""
    incidents: dict[str, dict[str, str]] = {}
    journal: dict[str, list[str]] = {}

    def authenticated(request: Request) -> None:
        if basic_credentials(request) != (user, password):
            raise ServiceNowError(
                401, "User Not Authenticated", "Required to provide Auth information"
            )

    async def body_of(request: Request) -> dict[str, Any]:
        body = await json_object(request)
        if body is None:
            raise ServiceNowError(400, "Exception while reading request", "Invalid JSON body")
        return body

    def find(request: Request) -> dict[str, str]:
        incident = incidents.get(request.path_params["sys_id"])
        if incident is None:
            raise ServiceNowError(
                404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval"
            )
        return incident

    def note(incident: dict[str, str], body: dict[str, Any]) -> None:
        for name in ("work_notes", "comments"):
            text = body.get(name)
            if isinstance(text, str) and text.strip():
                journal[incident["sys_id"]].append(f"{_stamp(clock)} {name}: {text}")
        incident["comments_and_work_notes"] = "\n".join(reversed(journal[incident["sys_id"]]))

    async def create(request: Request) -> Response:
        authenticated(request)
        body = await body_of(request)
        fields = _fields(body)
        if not fields.get("short_description", "").strip():
            raise ServiceNowError(400, "Invalid value", "short_description: cannot be empty")
        n = len(incidents) + 1
        sys_id = hashlib.sha256(f"incident:{n}".encode()).hexdigest()[:32]
        now = _stamp(clock)
        incident = {
            "sys_id": sys_id,
            "number": f"INC{10000 + n:07d}",
            "state": "1",
            "urgency": "3",
            "impact": "3",
            "description": "",
            "correlation_id": "",
            "correlation_display": "",
            "close_code": "",
            "close_notes": "",
            "sys_created_on": now,
            "sys_updated_on": now,
            "resolved_at": "",
            **fields,
        }
        incidents[sys_id] = incident
        journal[sys_id] = []
        note(incident, body)
        headers = {"Location": f"{str(request.base_url).rstrip('/')}{TABLE}/{sys_id}"}
        return JSONResponse({"result": incident}, 201, headers=headers)

    async def listing(request: Request) -> Response:
        authenticated(request)
        params = request.query_params
        wanted: dict[str, str] = {k: v for k, v in params.items() if not k.startswith("sysparm_")}
        for clause in filter(None, params.get("sysparm_query", "").split("^")):
            name, sep, value = clause.partition("=")
            if not sep:
                raise ServiceNowError(400, "Invalid query", f"unsupported clause {clause!r}")
            wanted[name] = value
        limit = params.get("sysparm_limit", "10000")
        if not limit.isdigit():
            raise ServiceNowError(400, "Invalid value", "sysparm_limit: a whole number")
        found = [i for i in incidents.values() if all(i.get(k) == v for k, v in wanted.items())]
        return JSONResponse({"result": found[: int(limit)]})

    async def show(request: Request) -> Response:
        authenticated(request)
        return JSONResponse({"result": find(request)})

    async def update(request: Request) -> Response:
        authenticated(request)
        incident = find(request)
        body = await body_of(request)
        if incident["state"] in FINAL_STATES:
            raise ServiceNowError(
                403, "Operation Failed", "ACL Exception Update Failed due to security constraints"
            )
        fields = _fields(body)
        incident.update(fields)
        now = _stamp(clock)
        if fields.get("state") == "6":
            incident["resolved_at"] = now
        incident["sys_updated_on"] = now
        note(incident, body)
        return JSONResponse({"result": incident})

    async def on_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceNowError)
        return JSONResponse(exc.body, exc.status)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        error = ServiceNowError(
            400, "Requested URI does not represent any resource", request.url.path
        )
        return JSONResponse(error.body, error.status)

    async def on_crash(request: Request, exc: Exception) -> Response:  # never a bare 500 page
        error = ServiceNowError(500, "Internal error", str(exc)[:200])
        return JSONResponse(error.body, error.status)

    return Starlette(
        routes=[
            Route(TABLE, create, methods=["POST"]),
            Route(TABLE, listing, methods=["GET"]),
            Route(TABLE + "/{sys_id}", show, methods=["GET"]),
            Route(TABLE + "/{sys_id}", update, methods=["PATCH", "PUT"]),
        ],
        exception_handlers={ServiceNowError: on_error, HTTPException: on_http, Exception: on_crash},
    )


__all__ = ["STATES", "create_servicenow_app"]
