"""The scheduler: runs the work that falls due on running account clocks, with no request.

Work due on an account's clock (checkout and authorization expiry, review outcomes, settlement
batches at midnight, payouts, repayment outcomes, dispute deadlines) runs in time order at the
start of the account's next transaction (`ProviderService._run_due`). Without a request, an
account left running in real time would never reach its midnight: no `settlement.created`.
The scheduler closes that gap. Every `POLL_S` it looks for accounts whose clock runs (frozen
clocks wait for their owner) and whose earliest job is due, and opens each one's transaction,
which runs what is due; so a job runs exactly as it would have on the next request, at its
own due time, with the same seeded draws.

- Bounded: at most `ROUND_ACCOUNTS` accounts a round and `JOBS_PER_TX` jobs a transaction, so
  the write lock is held briefly; an account with more left is taken again next round, and a
  full round is followed by the next at once. Accounts are taken round-robin (by rowid).
- Once: each job is deleted in the transaction that runs it, so the API's requests and the
  scheduler never run one twice; and a lease in the store (`meta` row `scheduler_lease`,
  renewed every round) keeps a second scheduler on the same database idle.
- Out of the API's way: `sandbank serve` runs it in a process of its own at a lower CPU
  priority, supervised (`simulator.supervisor`); on `:memory:` it is a task of the API's own
  event loop (`Scheduler.serve`). In-process tests have neither: their clocks move only when
  they say so.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from datetime import timedelta
from typing import Any

import orjson

from simulator.clock import WallClock, to_us
from simulator.domain.errors import NotFound
from simulator.settings import Settings
from simulator.supervisor import HEARTBEAT_S, beat, crash_point

log = logging.getLogger("sandbank.scheduler")
POLL_S = 0.5
ROUND_ACCOUNTS = 32
JOBS_PER_TX = 500
LEASE = timedelta(seconds=10)
LEASE_KEY = "scheduler_lease"


class Scheduler:
    def __init__(self, service: Any, wall: WallClock, owner: str) -> None:
        self.service = service  # ProviderService
        self.store = service.store
        self.wall = wall
        self.owner = owner
        self._after = 0  # rowid of the last account worked: the next round starts after it
        self.ran = 0  # account transactions run (for tests and benchmarks)

    def take_lease(self) -> bool:
        """Take or renew the store's scheduler lease; False while another owner holds it."""
        now_us = to_us(self.wall.now())
        with self.store.transaction():
            raw = self.store.meta(LEASE_KEY)
            held = orjson.loads(raw) if raw else None
            if held and held.get("owner") != self.owner and held.get("until_us", 0) > now_us:
                return False
            until = now_us + LEASE // timedelta(microseconds=1)
            self.store.set_meta(
                LEASE_KEY, orjson.dumps({"owner": self.owner, "until_us": until}).decode()
            )
        return True

    def run_round(self) -> int:
        """One bounded batch of due work; returns the number of accounts worked."""
        if not self.take_lease():
            return 0
        now_us = to_us(self.wall.now())
        with self.store.read() as tx:
            due = tx.due_accounts(now_us, self._after, ROUND_ACCOUNTS)
            if len(due) < ROUND_ACCOUNTS and self._after:  # wrap around
                due += tx.due_accounts(now_us, 0, ROUND_ACCOUNTS - len(due))
        for rowid, account_id in due:
            self._after = rowid
            try:
                with self.service.scope(account_id, step=JOBS_PER_TX):
                    pass  # opening the account runs what is due (bounded)
                self.ran += 1
            except NotFound:
                continue  # deleted meanwhile
            except Exception:
                log.exception("due work of %s failed", account_id)
        if len(due) < ROUND_ACCOUNTS:
            self._after = 0
        return len(due)

    async def serve(self, heartbeat: bool = False, attempt: int = 0) -> None:
        """Run rounds until cancelled (`heartbeat`: also write this process's heartbeat)."""
        last_beat = 0.0
        loop = asyncio.get_running_loop()
        while True:
            if heartbeat and loop.time() - last_beat >= HEARTBEAT_S:
                beat(self.store, "scheduler", self.wall)
                last_beat = loop.time()
                crash_point("scheduler", "running", attempt)
            try:
                worked = self.run_round()
            except Exception:
                log.exception("scheduler round failed")
                worked = 0
            await asyncio.sleep(0 if worked >= ROUND_ACCOUNTS else POLL_S)


async def run(settings: Settings, parent_pid: int, attempt: int) -> None:
    """The scheduler's process (`simulator.supervisor`)."""
    from simulator.app import create_app  # noqa: PLC0415 - built in the child, not the parent
    from simulator.heap import freeze_start_up_heap  # noqa: PLC0415 - as create_app

    # No request is served here: SQLite's own blocking lock wait, as in the webhook process (the
    # API's non-blocking wait would turn every busy moment into a failed round and heartbeat).
    app = create_app(
        dataclasses.replace(
            settings, demo_account=False, webhook_process=False, store_lock_wait_s=None
        )
    )
    freeze_start_up_heap()  # its GC pauses would hold the write lock the API waits for
    app.runtime.store.leave_checkpoints()  # the API process's thread checkpoints the file
    service = app.runtime.service
    owner = f"{os.getpid()}-{os.urandom(4).hex()}"
    task = asyncio.create_task(Scheduler(service, service.wall, owner).serve(True, attempt))
    try:
        while os.getppid() == parent_pid and not task.done():
            await asyncio.sleep(0.2)
        if task.done():
            task.result()  # its exception ends the process (the supervisor restarts it)
    finally:
        task.cancel()
        app.runtime.store.close()
