"""The dispatcher in a process of its own (what `sandbank serve` runs on a database file).

Deliveries then never compete with the API for its event loop or its core: the API process
only writes events; this process fans them out into deliveries, finds those due (polling every
few milliseconds), sends them and records the attempts, through the same SQLite file (WAL lets
it read while the API writes; writes take turns, each of this process's short). Leases keep
it and any in-process `flush` from sending one attempt twice. It ends with its parent, even
when the parent is SIGKILLed. It runs at a lower CPU priority (`NICE`): under API load the
API's process comes first, and a backlog drains as soon as the load eases.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import logging
import multiprocessing
import os
import signal
from typing import Any

from simulator.settings import Settings

log = logging.getLogger("sandbank.webhooks")
PR_SET_PDEATHSIG = 1
POLL_S = 0.005
# Deliveries are background work: the API's process comes first when both want the CPU, and
# this one takes what is left (a burst's backlog drains as soon as the API load eases).
NICE = 10


def _die_with_parent() -> None:
    """On Linux, ask the kernel for SIGTERM when the parent dies (SIGKILL included)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def main(settings: Settings, parent_pid: int, log_level: str) -> None:
    _die_with_parent()
    with contextlib.suppress(OSError):
        os.nice(NICE)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("sandbank")
    root.handlers[:] = [handler]
    root.setLevel(log_level.upper())
    root.propagate = False
    if os.getppid() != parent_pid:
        return
    asyncio.run(_run(settings, parent_pid))


async def _run(settings: Settings, parent_pid: int) -> None:
    from simulator.app import create_app  # noqa: PLC0415 - built in the child, not the parent

    app = create_app(
        dataclasses.replace(
            settings, demo_account=False, webhook_process=False, store_lock_wait_s=None
        )
    )
    dispatcher = app.runtime.dispatcher
    dispatcher.poll_s = POLL_S
    dispatcher.group_commits = False
    await dispatcher.start()
    try:
        while os.getppid() == parent_pid:
            await asyncio.sleep(0.1)
    finally:
        await dispatcher.stop()
        app.runtime.store.close()


def start(settings: Settings) -> Any:
    """Start the dispatcher process for `settings` (a database file); returns the process."""
    ctx = multiprocessing.get_context("spawn")
    process = ctx.Process(
        target=main,
        args=(settings, os.getpid(), settings.log_level),
        name="sandbank-webhooks",
        daemon=True,
    )
    process.start()
    return process
