"""The dispatcher: delivers committed deliveries when they fall due on their account's clock.

- It reads only what is committed (deliveries are written with their event, in the operation's
  transaction), so a crash between commit and delivery loses nothing; a claim (a lease on the
  wall clock) keeps two workers from sending the same attempt, and an attempt cut off by a
  crash is sent again after the lease (at once when a single-worker server restarts, since
  any lease it finds is a dead process's): at-least-once.
- In a server it runs as a background task, woken on every commit that made a delivery, and
  polls a few times a second for retries falling due. `flush()` delivers everything due now and
  returns when nothing is left: the control plane's flush, and in-process tests.
- An attempt's time on the account clock is its scheduled time, so advancing an account's clock
  by three days and flushing runs three days of retries, each at its own time, in milliseconds.
- HTTP happens outside any transaction, with a bounded number in flight; a slow receiver holds
  only its own attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson

from simulator.clock import WallClock, to_us
from simulator.domain import webhooks as wh
from simulator.domain.models import Event
from simulator.rng import SeededRng
from simulator.webhooks import signing
from simulator.webhooks.safety import HostPolicy

log = logging.getLogger("sandbank.webhooks")
LEASE = timedelta(seconds=60)
PER_ENDPOINT = 16  # attempts in flight to one endpoint: a dead receiver holds no more slots
POLL_S = 0.2
DEBOUNCE_S = 0.003
EXCERPT = 500
STALE_BY = timedelta(minutes=10)


class Dispatcher:
    def __init__(
        self,
        service: Any,  # ProviderService (typed loosely: the service imports this module's kin)
        wall: WallClock,
        *,
        policy: HostPolicy,
        transport: httpx.AsyncBaseTransport | None = None,
        concurrency: int = 64,
        present_event: Callable[[Event, bool], dict[str, Any]],
    ) -> None:
        self.service = service
        self.store = service.store
        self.wall = wall
        self.policy = policy
        self.transport = transport
        self.present_event = present_event
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._in_flight: dict[str, str] = {}  # delivery -> account
        self._per_endpoint: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self.webhooks: Any = None  # the WebhookService, set by the app factory
        self.poll_s = POLL_S
        # Inline, claims and records join the API's group commit; in a process of its own the
        # dispatcher commits each at once instead, so it holds the write lock only briefly.
        self.group_commits = True
        self.sent = 0

    # --- lifecycle --------------------------------------------------------------------------
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self.transport,
                follow_redirects=False,
                # Every pooled connection is checked on each request: keep the pool the size
                # of the attempts in flight.
                limits=httpx.Limits(
                    max_connections=self.concurrency, max_keepalive_connections=self.concurrency
                ),
            )
        return self._client

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sandbank-webhooks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def release_leases(self) -> int:
        """For a server that is the only process on its database: attempts cut off by the
        previous process's crash are due again at once instead of after their lease."""
        with self.store.transaction() as tx:
            return int(tx.release_leases())

    @contextlib.contextmanager
    def _scope(self, account_id: str) -> Iterator[tuple[Any, Awaitable[None] | None]]:
        """An account transaction; the second value, when not None, is the group commit to
        await (None: the transaction commits on leaving the block)."""
        if self.group_commits:
            with self.service.shared_scope(account_id) as pair:
                yield pair
            return
        with self.service.scope(account_id) as ctx:
            yield ctx, None

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self._round(None, wait=False)
            except Exception:  # never let one bad row stop deliveries
                log.exception("webhook dispatch round failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await self._wake.wait()
            self._wake.clear()
            # Wakes come with every commit that made a delivery and every finished attempt:
            # gather them into one round every few milliseconds.
            await asyncio.sleep(DEBOUNCE_S)

    # --- rounds ----------------------------------------------------------------------------
    def _due(self, account: str | None) -> list[tuple[str, str, str]]:
        """Due rows, as many as there are free slots, within each endpoint's share; each is
        marked in flight here."""
        free = self.concurrency - len(self._in_flight)
        if free <= 0:
            return []
        full = frozenset(e for e, n in self._per_endpoint.items() if n >= PER_ENDPOINT)
        with self.store.read() as tx:
            due: list[tuple[str, str, str]] = tx.due_deliveries(
                to_us(self.wall.now()),
                account,
                limit=free + len(self._in_flight),
                skip_endpoints=full,
            )
        picked = []
        for row in due:
            endpoint = row[2]
            if row[1] in self._in_flight or self._per_endpoint.get(endpoint, 0) >= PER_ENDPOINT:
                continue  # a later round takes it
            self._in_flight[row[1]] = row[0]
            self._per_endpoint[endpoint] = self._per_endpoint.get(endpoint, 0) + 1
            picked.append(row)
            if len(picked) == free:
                break
        return picked

    async def _round(self, account: str | None, *, wait: bool) -> int:
        rows = self._due(account)
        if not rows:
            return 0
        prepared = await self._claim(rows)
        tasks = [asyncio.create_task(self._guarded(row, p)) for row, p in prepared]
        if wait and tasks:
            await asyncio.gather(*tasks)
        return len(tasks)

    async def _claim(self, rows: list[tuple[str, str, str]]) -> list[tuple[Any, Any]]:
        """Lease the rows, an account transaction each, all in one group commit; the attempts
        start once the leases are committed (so two workers never send one attempt)."""
        wall = self.wall.now()
        lease_until, wall_us = wall + LEASE, to_us(wall)
        by_account: dict[str, list[tuple[str, str, str]]] = {}
        for row in rows:
            by_account.setdefault(row[0], []).append(row)
        claimed: list[tuple[Any, Any]] = []
        commits = []
        for account_id, group in by_account.items():
            try:
                with self._scope(account_id) as (ctx, committed):
                    if committed is not None:
                        commits.append(committed)
                    for row in group:
                        p = self.webhooks.prepare_attempt(ctx, row[1], lease_until, wall_us)
                        if p is None:
                            self._release(row)
                        else:
                            claimed.append((row, p))
            except Exception:
                log.exception("claiming deliveries of %s failed", account_id)
                for row in group:
                    self._release(row)
                claimed = [c for c in claimed if c[0][0] != account_id]
        try:
            await asyncio.gather(*commits)
        except Exception:
            log.exception("committing webhook leases failed")
            for row, _ in claimed:
                self._release(row)
            return []
        return claimed

    def _release(self, row: tuple[str, str, str]) -> None:
        self._in_flight.pop(row[1], None)
        left = self._per_endpoint.get(row[2], 1) - 1
        if left > 0:
            self._per_endpoint[row[2]] = left
        else:
            self._per_endpoint.pop(row[2], None)

    async def flush(self, account: str | None = None, max_rounds: int = 10_000) -> int:
        """Deliver everything due now (retries falling due on the way included); returns the
        number of attempts made."""
        made = 0
        for _ in range(max_rounds):
            # attempts of this account (or any) that the background task already started
            while any(account in (None, a) for a in self._in_flight.values()):
                await asyncio.sleep(0.005)
            n = await self._round(account, wait=True)
            if n == 0:
                if not await self._others_sending(account):
                    return made
                continue
            made += n
        return made

    async def _others_sending(self, account: str | None) -> bool:
        """Wait (bounded by the lease) while another process holds leases on due deliveries,
        so that flush returns only when what was due has been tried; True if it waited."""
        waited = False
        deadline = time.monotonic() + LEASE.total_seconds()
        while time.monotonic() < deadline:
            with self.store.read() as tx:
                leased = tx.leased_deliveries(to_us(self.wall.now()), account)
            if not leased:
                return waited
            waited = True
            await asyncio.sleep(0.005)
        return waited

    async def _guarded(self, row: tuple[str, str, str], prepared: Any) -> None:
        """One claimed attempt, sent and recorded; never raises."""
        try:
            async with self._slots:
                await self._attempt(row[0], row[1], prepared)
        except Exception:
            log.exception("webhook attempt for %s failed", row[1])
        finally:
            self._release(row)
            self._wake.set()  # a slot is free: more may be waiting

    # --- one attempt -------------------------------------------------------------------------
    async def _attempt(self, account_id: str, delivery_id: str, prepared: Any) -> None:
        plan: AttemptPlan = self._plan(prepared)
        result = await self._send(plan)
        for _ in range(plan.copies):  # the duplicate quirk: the same message again
            await self._send(plan)
        with self._scope(account_id) as (ctx, committed):
            self.webhooks.record_attempt(ctx, delivery_id, plan, result)
        if committed is not None:
            await committed
        self.sent += 1

    def _plan(self, p: Any) -> AttemptPlan:
        """Headers and body of this attempt, quirks applied with the attempt's own dice."""
        endpoint: wh.WebhookEndpoint = p.endpoint
        dice = SeededRng(f"webhook\x00{p.delivery.id}\x00{p.n}", p.seed)
        quirks = endpoint.quirks
        applied: list[str] = []
        thin = quirks.thin_payload
        if thin:
            applied.append("thin_payload")
        body = orjson.dumps(self.present_event(p.event, thin))
        wall_now = self.wall.now()
        timestamp = int(wall_now.timestamp())
        secrets = endpoint.secrets(p.at)
        if quirks.stale_timestamp and dice.random() < quirks.stale_timestamp.probability:
            timestamp = int((wall_now - STALE_BY).timestamp())
            applied.append("stale_timestamp")
        if quirks.bad_signature and dice.random() < quirks.bad_signature.probability:
            secrets = [signing.new_secret(dice.token(32).encode())]  # a stranger's key
            applied.append("bad_signature")
        elif (
            quirks.old_secret
            and dice.random() < quirks.old_secret.probability
            and endpoint.previous_secret is not None
        ):
            secrets = [endpoint.previous_secret]  # even after the overlap ended
            applied.append("old_secret")
        copies = 0
        if quirks.duplicate and dice.random() < quirks.duplicate.probability:
            copies = quirks.duplicate.copies
            applied.append(f"duplicate x{copies}")
        headers = {
            "content-type": "application/json",
            "user-agent": "Sandbank-Webhooks/1",
            **signing.headers(secrets, p.event.id, timestamp, body),
        }
        return AttemptPlan(
            url=endpoint.url,
            headers=headers,
            body=body,
            timeout_s=p.timeout_ms / 1000,
            quirks=applied,
            copies=copies,
            at=p.at,
            wall_at=wall_now,
            n=p.n,
        )

    async def _send(self, plan: AttemptPlan) -> SendResult:
        started = time.perf_counter()
        if not self.policy.allows(plan.url):
            return SendResult(None, None, 0.0, "connection_error", None, "host not allowed")
        try:
            response = await self.client().post(
                plan.url, content=plan.body, headers=plan.headers, timeout=plan.timeout_s
            )
        except httpx.TimeoutException:
            return SendResult(None, None, _ms(started), "timeout", None, "timed out")
        except httpx.HTTPError as exc:
            return SendResult(None, None, _ms(started), "connection_error", None, str(exc))
        status = response.status_code
        excerpt = response.text[:EXCERPT]
        retry_after = response.headers.get("retry-after", "")
        outcome: wh.Outcome = (
            "succeeded" if 200 <= status < 300 else "gone" if status == 410 else "failed"
        )
        return SendResult(
            status,
            excerpt,
            _ms(started),
            outcome,
            int(retry_after) if retry_after.isdigit() else None,
            None,
        )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


class AttemptPlan:
    __slots__ = ("at", "body", "copies", "headers", "n", "quirks", "timeout_s", "url", "wall_at")

    def __init__(
        self,
        *,
        url: str,
        headers: dict[str, str],
        body: bytes,
        timeout_s: float,
        quirks: list[str],
        copies: int,
        at: datetime,
        wall_at: datetime,
        n: int,
    ) -> None:
        self.url, self.headers, self.body, self.timeout_s = url, headers, body, timeout_s
        self.quirks, self.copies, self.at, self.wall_at, self.n = quirks, copies, at, wall_at, n


class SendResult:
    __slots__ = ("error", "latency_ms", "outcome", "retry_after_s", "status", "text")

    def __init__(  # noqa: PLR0917 - a record
        self,
        status: int | None,
        text: str | None,
        latency_ms: float,
        outcome: wh.Outcome,
        retry_after_s: int | None,
        error: str | None,
    ) -> None:
        self.status, self.text, self.latency_ms = status, text, latency_ms
        self.outcome, self.retry_after_s, self.error = outcome, retry_after_s, error
