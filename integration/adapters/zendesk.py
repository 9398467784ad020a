"""The ticket sink's adapter for a Zendesk-shaped desk (`/api/v2/tickets.json`): the
obligation is the ticket's `external_id`, urgency its `priority`, and Zendesk's statuses fold
into the canonical three (new/open/hold → open, pending → pending, solved/closed → solved).
Authentication is the API-token form of basic auth, `{email}/token:{token}`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from integration.client import ResilientClient
from integration.ticketing import Ticket, TicketRequest, TicketStatus, Urgency

FAMILY = "tickets"
STATUS: Final[Mapping[str, TicketStatus]] = {
    "new": TicketStatus.OPEN,
    "open": TicketStatus.OPEN,
    "hold": TicketStatus.OPEN,
    "pending": TicketStatus.PENDING,
    "solved": TicketStatus.SOLVED,
    "closed": TicketStatus.SOLVED,
}
STATUS_OUT: Final[Mapping[TicketStatus, str]] = {
    TicketStatus.OPEN: "open",
    TicketStatus.PENDING: "pending",
    TicketStatus.SOLVED: "solved",
}
PRIORITY: Final[Mapping[Urgency, str]] = {
    Urgency.NORMAL: "normal",
    Urgency.HIGH: "high",
    Urgency.URGENT: "urgent",
}


def ticket(data: Mapping[str, Any]) -> Ticket:
    status = STATUS.get(str(data.get("status")))
    if status is None or not isinstance(data.get("id"), int):
        raise ValueError(f"not a ticket: {dict(data)!r:.120}")
    url = data.get("url")
    return Ticket(str(data["id"]), f"#{data['id']}", status, url if isinstance(url, str) else None)


class ZendeskTickets:
    name = "zendesk"

    def __init__(self, client: ResilientClient) -> None:
        self.client = client

    async def find(self, key: str) -> Ticket | None:
        found = await self.client.call(
            FAMILY, "GET", "/api/v2/tickets.json", params={"external_id": key}
        )
        tickets = found.json()["tickets"]  # no list: unreadable (never "nothing found")
        if not isinstance(tickets, list):
            raise TypeError(f"not a list of tickets: {tickets!r:.120}")
        return ticket(tickets[0]) if tickets else None

    async def open(self, request: TicketRequest, *, intent_id: str) -> Ticket:
        body = {
            "ticket": {
                "subject": request.subject,
                "comment": {"body": request.body, "public": False},
                "priority": PRIORITY[request.urgency],
                "status": "open",
                "external_id": request.key,
                "tags": list(request.tags),
            }
        }
        made = await self.client.call(
            FAMILY, "POST", "/api/v2/tickets.json", body, intent_id=intent_id
        )
        return ticket(made.json()["ticket"])

    async def update(
        self,
        ticket_: Ticket,
        *,
        intent_id: str,
        note: str,
        status: TicketStatus | None = None,
        urgency: Urgency | None = None,
        tags: tuple[str, ...] = (),
    ) -> Ticket:
        body: dict[str, Any] = {"comment": {"body": note, "public": False}}
        if status is not None:
            body["status"] = STATUS_OUT[status]
        if urgency is not None:
            body["priority"] = PRIORITY[urgency]
        if tags:
            body["additional_tags"] = list(tags)
        path = f"/api/v2/tickets/{ticket_.system_id}.json"
        done = await self.client.call(FAMILY, "PUT", path, {"ticket": body}, intent_id=intent_id)
        return ticket(done.json()["ticket"])

    async def get(self, system_id: str) -> Ticket:
        got = await self.client.call(FAMILY, "GET", f"/api/v2/tickets/{system_id}.json")
        return ticket(got.json()["ticket"])

    async def aclose(self) -> None:
        await self.client.aclose()
