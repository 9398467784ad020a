"""The SRE console at /_sandbox/console: pages over the same services the control plane calls
(accounts and clocks, faults, the live request journal, webhooks, money, scenario reports),
with charts from the metrics' in-memory history.

Safe by default: it is served only when an admin token was configured (`--admin-token` or
SANDBANK_ADMIN_TOKEN; a generated token does not turn it on); users sign in with that token
into a session cookie; every form carries a CSRF token; no API key or webhook secret is shown
in full.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.routing import BaseRoute

from simulator.console.live import Live
from simulator.console.session import Sessions
from simulator.console.views import Console, off_routes
from simulator.domain.records import StoredCounts
from simulator.runtime import Runtime


def console_routes(
    runtime: Runtime, stored: Callable[[], StoredCounts], entropy: Callable[[int], bytes]
) -> list[BaseRoute]:
    if not runtime.settings.console_on:
        return off_routes()
    live = Live(runtime.journal)
    runtime.journal.listeners.append(live.publish)
    sessions = Sessions(runtime.admin_token, runtime.service.wall, entropy)
    return Console(runtime, sessions, live, stored, runtime.metrics).routes()
