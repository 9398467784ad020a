"""What the ticket sink asks of a support system, in canonical terms only.

`TicketSystem` is the seam between `integration.tickets` (the sink) and a support desk, as
`ProviderAdapter` is for payment providers: one adapter per desk in `integration/adapters/`,
chosen by configuration, so the sink names none. A ticket is keyed by the obligation it is
about (`TicketRequest.key`, the desk's external or correlation id): finding it by that key is
how a retried or repeated open never makes a second ticket.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable


class TicketStatus(StrEnum):
    OPEN = "open"  # new, or being worked
    PENDING = "pending"  # waiting on someone outside the desk (the buyer)
    SOLVED = "solved"  # solved, resolved, closed or canceled: nothing more to do


class Urgency(StrEnum):
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


@dataclass(frozen=True, slots=True)
class Ticket:
    system_id: str  # the desk's id (what reads and updates use)
    reference: str  # what people call it (#12, INC0010001)
    status: TicketStatus
    url: str | None = None


@dataclass(frozen=True, slots=True)
class TicketRequest:
    key: str  # the obligation's id: the desk's external id / correlation id
    subject: str
    body: str
    urgency: Urgency
    tags: tuple[str, ...] = ()


@runtime_checkable
class TicketSystem(Protocol):
    """A support desk. Errors as the providers': `ProviderRejected` for a final refusal,
    `ProviderUnavailable` when it cannot be reached within the retry rules (the sink keeps the
    work and tries again later), both from `integration.client`."""

    name: str

    async def find(self, key: str) -> Ticket | None: ...

    async def open(self, request: TicketRequest, *, intent_id: str) -> Ticket: ...

    async def update(
        self,
        ticket: Ticket,
        *,
        intent_id: str,
        note: str,
        status: TicketStatus | None = None,
        urgency: Urgency | None = None,
        tags: tuple[str, ...] = (),
    ) -> Ticket: ...

    async def get(self, system_id: str) -> Ticket: ...

    async def aclose(self) -> None: ...


__all__ = ["Ticket", "TicketRequest", "TicketStatus", "TicketSystem", "Urgency"]
