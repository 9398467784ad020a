"""The ticket sink's adapter for a ServiceNow-shaped desk (the Table API's `incident` table):
the obligation is the incident's `correlation_id`, urgency its `urgency` (1 high … 3 low), and
the state codes fold into the canonical three (1 New, 2 In Progress → open; 3 On Hold →
pending; 6 Resolved, 7 Closed, 8 Canceled → solved). Basic authentication."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from integration.client import ResilientClient
from integration.ticketing import Ticket, TicketRequest, TicketStatus, Urgency

FAMILY = "tickets"
TABLE = "/api/now/table/incident"
STATE: Final[Mapping[str, TicketStatus]] = {
    "1": TicketStatus.OPEN,
    "2": TicketStatus.OPEN,
    "3": TicketStatus.PENDING,
    "6": TicketStatus.SOLVED,
    "7": TicketStatus.SOLVED,
    "8": TicketStatus.SOLVED,
}
STATE_OUT: Final[Mapping[TicketStatus, str]] = {
    TicketStatus.OPEN: "2",
    TicketStatus.PENDING: "3",
    TicketStatus.SOLVED: "6",
}
URGENCY: Final[Mapping[Urgency, str]] = {
    Urgency.NORMAL: "3",
    Urgency.HIGH: "2",
    Urgency.URGENT: "1",
}


def incident(data: Mapping[str, Any]) -> Ticket:
    state = STATE.get(str(data.get("state")))
    if state is None or not isinstance(data.get("sys_id"), str):
        raise ValueError(f"not an incident: {dict(data)!r:.120}")
    return Ticket(data["sys_id"], str(data.get("number", "")), state)


class ServiceNowTickets:
    name = "servicenow"

    def __init__(self, client: ResilientClient, create: ResilientClient | None = None) -> None:
        """`create`: the client for inserts, tried once a call (the Table API does not
        deduplicate them: an insert whose answer is lost is found by its correlation id on
        the sink's next round, never sent again blind); default `client`."""
        self.client = client
        self._create = create or client

    async def find(self, key: str) -> Ticket | None:
        found = await self.client.call(
            FAMILY, "GET", TABLE, params={"sysparm_query": f"correlation_id={key}"}
        )
        result = found.json()["result"]  # no list: unreadable (never "nothing found")
        if not isinstance(result, list):
            raise TypeError(f"not a list of incidents: {result!r:.120}")
        return incident(result[0]) if result else None

    async def open(self, request: TicketRequest, *, intent_id: str) -> Ticket:
        body = {
            "short_description": request.subject,
            "description": request.body,
            "urgency": URGENCY[request.urgency],
            "impact": "3",
            "correlation_id": request.key,
            "correlation_display": " ".join(request.tags),
        }
        made = await self._create.call(FAMILY, "POST", TABLE, body, intent_id=intent_id)
        return incident(made.json()["result"])

    async def update(
        self,
        ticket: Ticket,
        *,
        intent_id: str,
        note: str,
        status: TicketStatus | None = None,
        urgency: Urgency | None = None,
        tags: tuple[str, ...] = (),
    ) -> Ticket:
        body: dict[str, Any] = {"work_notes": note}
        if status is not None:
            body["state"] = STATE_OUT[status]
            if status is TicketStatus.SOLVED:
                body["close_code"] = "Solved (Permanently)"
                body["close_notes"] = note
        if urgency is not None:
            body["urgency"] = URGENCY[urgency]
        if tags:
            body["work_notes"] = f"{note} [{' '.join(tags)}]"
        path = f"{TABLE}/{ticket.system_id}"
        done = await self.client.call(FAMILY, "PATCH", path, body, intent_id=intent_id)
        return incident(done.json()["result"])

    async def get(self, system_id: str) -> Ticket:
        got = await self.client.call(FAMILY, "GET", f"{TABLE}/{system_id}")
        return incident(got.json()["result"])

    async def aclose(self) -> None:
        await self.client.aclose()
        if self._create is not self.client:
            await self._create.aclose()
