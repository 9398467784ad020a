"""Small local FAKES of the support systems the reference integration opens collections and
dispute tickets in: a Zendesk-shaped tickets API (`fakes.zendesk`) and a ServiceNow-shaped
Table API for incidents (`fakes.servicenow`).

They are fakes, not simulators: in memory, one process, just the calls and fields the
integration's ticket sink uses (see docs/tickets.md), each answering errors in its own API's
error shape. Ids are counters and times come from an injected clock, so the same calls give
the same answers. Run one with `sandbank fakes zendesk --port 8090`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from starlette.applications import Starlette

from fakes.servicenow import create_servicenow_app
from fakes.zendesk import create_zendesk_app

# The credentials each fake is built with in `desk()`, as the ticket sink's config names them.
CREDENTIALS = {
    "zendesk": {"email": "ops@shop.test", "token": "fake-token"},
    "servicenow": {"user": "ops", "password": "fake-password"},
}


def desk(name: str, clock: Callable[[], datetime]) -> tuple[Starlette, dict[str, str]]:
    """The fake desk `name` (zendesk or servicenow) on `clock`, and its credentials."""
    credentials = CREDENTIALS[name]
    if name == "zendesk":
        return create_zendesk_app(token=credentials["token"], clock=clock), credentials
    return create_servicenow_app(
        user=credentials["user"], password=credentials["password"], clock=clock
    ), credentials


__all__ = ["CREDENTIALS", "desk"]
