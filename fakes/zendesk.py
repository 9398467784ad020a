"""A FAKE Zendesk-shaped tickets API (the subset the ticket sink uses), in memory.

    POST /api/v2/tickets.json            {"ticket": {subject, comment: {body}, priority,
                                           status, external_id, tags}}       201 {"ticket"}
    GET  /api/v2/tickets.json[?external_id=X]                        200 {"tickets", "count"}
    GET  /api/v2/tickets/{id}.json                                           200 {"ticket"}
    PUT  /api/v2/tickets/{id}.json       {"ticket": {status, priority, comment, tags,
                                           additional_tags}}                 200 {"ticket"}
    GET  /api/v2/tickets/{id}/comments.json                                  200 {"comments"}

Authentication is Zendesk's API-token form of basic auth, `{email}/token:{token}`. A create
with an `Idempotency-Key` already seen answers the ticket it made (as Zendesk does). Errors take
Zendesk's own shape, `{"error": "RecordNotFound", "description": "Not found"}`, and a
validation error adds `details` per field. Ticket ids count from 1 and times come from the
injected clock, so the same calls give the same tickets. Statuses: new, open, pending, hold,
solved, closed; a closed ticket can no longer be updated (as in Zendesk). What it does not do:
users, groups, assignment, triggers, SLAs, search syntax, pagination beyond one page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fakes.common import Clock, basic_credentials, json_object, stamp, system_clock

STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")


class ZendeskError(Exception):
    def __init__(
        self, status: int, error: str, description: str, details: dict[str, str] | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.body: dict[str, Any] = {"error": error, "description": description}
        if details:
            self.body["details"] = {
                name: [{"description": text, "error": "InvalidValue"}]
                for name, text in details.items()
            }


def invalid(**details: str) -> ZendeskError:
    return ZendeskError(422, "RecordInvalid", "Record validation errors", details)


@dataclass
class Ticket:
    id: int
    subject: str
    description: str
    priority: str
    status: str
    external_id: str | None
    tags: list[str]
    created_at: str
    updated_at: str
    comments: list[dict[str, Any]] = field(default_factory=list)

    def json(self, base: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": f"{base}/api/v2/tickets/{self.id}.json",
            "external_id": self.external_id,
            "subject": self.subject,
            "description": self.description,
            "priority": self.priority,
            "status": self.status,
            "tags": list(self.tags),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def _choice(body: dict[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = body.get(name, default)
    if value not in allowed:
        raise invalid(**{name: f"{name.title()}: {value!r} is not one of {', '.join(allowed)}"})
    return str(value)


def _tags(body: dict[str, Any], name: str) -> list[str]:
    tags = body.get(name, [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise invalid(**{name: f"{name}: must be a list of strings"})
    return [t.strip().lower().replace(" ", "_") for t in tags if t.strip()]


def _comment(body: dict[str, Any], at: str) -> dict[str, Any] | None:
    comment = body.get("comment")
    if comment is None:
        return None
    if not isinstance(comment, dict) or not isinstance(comment.get("body"), str):
        raise invalid(comment="Comment: must be an object with a body")
    return {"body": comment["body"], "public": comment.get("public", True), "created_at": at}


def create_zendesk_app(*, token: str, clock: Clock = system_clock) -> Starlette:
    """The fake on its own in-memory state; any `{email}/token:{token}` authenticates."""
    tickets: dict[int, Ticket] = {}
    by_key: dict[str, int] = {}  # Idempotency-Key -> the ticket its first request made

    def authenticated(request: Request) -> None:
        creds = basic_credentials(request)
        if creds is None or not creds[0].endswith("/token") or creds[1] != token:
            raise ZendeskError(401, "Couldn't authenticate you", "Couldn't authenticate you")

    async def ticket_body(request: Request) -> dict[str, Any]:
        body = await json_object(request)
        if body is None or not isinstance(body.get("ticket"), dict):
            raise ZendeskError(400, "InvalidJSON", 'The body must be {"ticket": {...}}')
        return dict(body["ticket"])

    def find(request: Request) -> Ticket:
        ticket = tickets.get(int(request.path_params["id"]))
        if ticket is None:
            raise ZendeskError(404, "RecordNotFound", "Not found")
        return ticket

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    async def create(request: Request) -> Response:
        authenticated(request)
        key = request.headers.get("idempotency-key")
        if key in by_key:  # a replay: the ticket the first request made, nothing new
            made = tickets[by_key[key]].json(base(request))
            return JSONResponse({"ticket": made}, 201, headers={"x-idempotency-lookup": "hit"})
        body = await ticket_body(request)
        at = stamp(clock())
        comment = _comment(body, at)
        subject = body.get("subject")
        if comment is None or not comment["body"].strip():
            raise invalid(description="Description: cannot be blank")
        if subject is not None and not isinstance(subject, str):
            raise invalid(subject="Subject: must be a string")
        external_id = body.get("external_id")
        if external_id is not None and not isinstance(external_id, str):
            raise invalid(external_id="External id: must be a string")
        ticket = Ticket(
            id=len(tickets) + 1,
            subject=subject or comment["body"][:60],
            description=comment["body"],
            priority=_choice(body, "priority", PRIORITIES, "normal"),
            status=_choice(body, "status", STATUSES[:-1], "new"),
            external_id=external_id,
            tags=_tags(body, "tags"),
            created_at=at,
            updated_at=at,
            comments=[comment],
        )
        tickets[ticket.id] = ticket
        if key:
            by_key[key] = ticket.id
        headers = {"Location": f"{base(request)}/api/v2/tickets/{ticket.id}.json"}
        return JSONResponse({"ticket": ticket.json(base(request))}, 201, headers=headers)

    async def listing(request: Request) -> Response:
        authenticated(request)
        wanted = request.query_params.get("external_id")
        found = [t for t in tickets.values() if wanted is None or t.external_id == wanted]
        page = [t.json(base(request)) for t in found]
        return JSONResponse(
            {"tickets": page, "count": len(page), "next_page": None, "previous_page": None}
        )

    async def show(request: Request) -> Response:
        authenticated(request)
        return JSONResponse({"ticket": find(request).json(base(request))})

    async def update(request: Request) -> Response:
        authenticated(request)
        ticket = find(request)
        body = await ticket_body(request)
        if ticket.status == "closed":
            raise invalid(status="Status: closed prevents ticket update")
        at = stamp(clock())
        comment = _comment(body, at)
        ticket.status = _choice(body, "status", STATUSES, ticket.status)
        ticket.priority = _choice(body, "priority", PRIORITIES, ticket.priority)
        if "tags" in body:
            ticket.tags = _tags(body, "tags")
        ticket.tags += [t for t in _tags(body, "additional_tags") if t not in ticket.tags]
        if comment is not None:
            ticket.comments.append(comment)
        ticket.updated_at = at
        return JSONResponse({"ticket": ticket.json(base(request))})

    async def comments(request: Request) -> Response:
        authenticated(request)
        ticket = find(request)
        return JSONResponse({"comments": ticket.comments, "count": len(ticket.comments)})

    async def on_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ZendeskError)
        return JSONResponse(exc.body, exc.status)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"error": "InvalidEndpoint", "description": "Not found"}, 404)

    async def on_crash(request: Request, exc: Exception) -> Response:  # never a bare 500 page
        return JSONResponse({"error": "InternalError", "description": str(exc)[:200]}, 500)

    one = "/api/v2/tickets/{id:int}"
    return Starlette(
        routes=[
            *(
                Route(p, create, methods=["POST"])
                for p in ("/api/v2/tickets.json", "/api/v2/tickets")
            ),
            *(
                Route(p, listing, methods=["GET"])
                for p in ("/api/v2/tickets.json", "/api/v2/tickets")
            ),
            *(Route(p, show, methods=["GET"]) for p in (f"{one}.json", one)),
            *(Route(p, update, methods=["PUT"]) for p in (f"{one}.json", one)),
            Route(f"{one}/comments.json", comments, methods=["GET"]),
        ],
        exception_handlers={ZendeskError: on_error, HTTPException: on_http, Exception: on_crash},
    )


__all__ = ["PRIORITIES", "STATUSES", "create_zendesk_app"]
