"""The dispatcher in a process of its own (what `sandbank serve` runs on a database file).

Deliveries then never compete with the API for its event loop or its core: the API process
only writes events; this process fans them out into deliveries, finds those due (polling every
few milliseconds), sends them and records the attempts, through the same SQLite file (WAL lets
it read while the API writes; writes take turns, each of this process's short, and it polls
for the write lock every millisecond rather than leave the wait to SQLite's backing-off busy
handler, which a busy API wins every time). Leases keep it and any in-process `flush` from
sending one attempt twice. `simulator.supervisor` starts it (at the API's CPU priority: under
load, deliveries get a fair share; issue #18), ends it with the server even on SIGKILL,
restarts it when it exits; it writes a heartbeat every `HEARTBEAT_S` for the health check.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os

from simulator.settings import Settings
from simulator.supervisor import HEARTBEAT_S, beat, crash_point

POLL_S = 0.005


async def run(settings: Settings, parent_pid: int, attempt: int) -> None:
    from simulator.app import create_app  # noqa: PLC0415 - built in the child, not the parent
    from simulator.heap import freeze_start_up_heap  # noqa: PLC0415 - as create_app

    app = create_app(
        dataclasses.replace(
            settings, demo_account=False, webhook_process=False, store_lock_wait_s=None
        )
    )
    freeze_start_up_heap()  # its GC pauses would hold the write lock the API waits for
    dispatcher = app.runtime.dispatcher
    store, wall = app.runtime.store, app.runtime.service.wall
    dispatcher.poll_s = POLL_S
    dispatcher.group_commits = False
    store.poll_lock = True  # find the gaps between the API's group commits (issue #18)
    store.leave_checkpoints()  # the API process's thread checkpoints the file (and bounds it)
    await dispatcher.start()
    try:
        while os.getppid() == parent_pid:
            beat(store, "dispatcher", wall)
            await asyncio.sleep(HEARTBEAT_S)
            if dispatcher.sent:
                crash_point("dispatcher", "running", attempt)
    finally:
        await dispatcher.stop()
        store.close()
