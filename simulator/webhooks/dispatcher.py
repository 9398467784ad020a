"""The dispatcher: fans committed events out into deliveries, and delivers them when they fall
due on their account's clock.

- Each round first fans out the events committed since the last (`webhooks.fanout`: the API
  writes only events; the deliveries are made here, in a write transaction of their own that
  moves a durable cursor). A cheap read without the write lock comes first, so events of
  accounts without endpoints cost no write at all.
- It reads only what is committed, so a crash between commit and delivery loses nothing; a
  claim (a lease on the wall clock) keeps two workers from sending the same attempt, and an
  attempt cut off by a crash is sent again after the lease (at once when a single-worker
  server restarts, since any lease it finds is a dead process's): at-least-once.
- In a server it runs as a background task, woken on every commit that wrote events, and
  polls a few times a second for retries falling due. `flush()` delivers everything due now and
  returns when nothing is left: the control plane's flush, and in-process tests.
- An attempt's time on the account clock is its scheduled time, so advancing an account's clock
  by three days and flushing runs three days of retries, each at its own time, in milliseconds.
- HTTP happens outside any transaction, with a bounded number in flight; a slow receiver holds
  only its own attempts (an endpoint's slot is taken from claim to answer).
- Writes are few and short, since the API's commits wait for the same lock (and a waiting
  commit sleeps a millisecond or more): a fan-out batch (at most `FANOUT_BATCH` events) is
  worked out before the lock is taken and written in one short transaction; a round reads
  what its attempts need, then leases them all in one transaction; finished attempts are
  recorded a batch per transaction, their documents made before the lock is taken. Only an
  attempt that changes its endpoint (starts or stops it failing, disables it) is recorded in
  an account transaction of its own.
- Without an injected httpx transport, attempts go through `webhooks.http`, a lean keep-alive
  HTTP/1.1 client (httpx cost more CPU per attempt than the rest of the delivery).
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
from simulator.context import Ctx
from simulator.domain import webhooks as wh
from simulator.domain.models import Event
from simulator.rng import SeededRng
from simulator.service import ProviderService
from simulator.store.sqlite import SqliteStore, SqliteTx
from simulator.webhooks import fanout, http, signing
from simulator.webhooks.safety import HostPolicy
from simulator.webhooks.service import Prepared, WebhookService, changes_endpoint, settle

log = logging.getLogger("sandbank.webhooks")
LEASE = timedelta(seconds=60)
# Attempts in flight to one endpoint: a dead receiver holds no more slots than this (half of
# `concurrency`'s). Deliveries to one endpoint go at most PER_ENDPOINT / its latency a second:
# 16 capped a local receiver at ~1,000/s, below half the maximum POST rate (issue #18, item 4).
PER_ENDPOINT = 128
POLL_S = 0.2
DEBOUNCE_S = 0.003
EXCERPT = 500
STALE_BY = timedelta(minutes=10)
RECORD_DELAY_S = 0.002  # finished attempts gather this long into one write transaction
ENDPOINT_CACHE = 1000
# Events of accounts without endpoints need no fan-out, but the durable cursor is moved past
# them once this many have gathered, so that a restarted dispatcher's first look stays short.
CURSOR_LAG = 10_000
# Events fanned out per write transaction: the API's writes wait while the dispatcher holds
# the lock, so each hold stays around a millisecond (a backlog goes in many short turns).
FANOUT_BATCH = 64


class Dispatcher:
    def __init__(
        self,
        service: ProviderService,
        webhooks: WebhookService,
        store: SqliteStore,
        wall: WallClock,
        *,
        wake: asyncio.Event,
        policy: HostPolicy,
        transport: httpx.AsyncBaseTransport | None = None,
        concurrency: int = 256,
        present_event: Callable[[Event, bool], dict[str, Any]],
    ) -> None:
        """`store` is the service's store, as SQLite: the dispatcher's reads and claims are
        queries of its own. `wake` is set by whoever wrote events or made deliveries."""
        self.service = service
        self.webhooks = webhooks
        self.store = store
        self.wall = wall
        self.policy = policy
        self.transport = transport
        self.present_event = present_event
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._in_flight: dict[str, str] = {}  # delivery -> account
        self._answered: set[str] = set()  # in flight, HTTP over, record on the way
        self._per_endpoint: dict[str, int] = {}
        self._wake = wake
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self.poll_s = POLL_S
        # Inline, claims and records join the API's group commit; in a process of its own the
        # dispatcher commits each at once instead, so it holds the write lock only briefly.
        self.group_commits = True
        self.sent = 0
        # Told of each attempt's outcome and latency (ms): the metrics, set by `create_app`.
        self.on_attempt: Callable[[str, float], None] | None = None
        self._endpoints: dict[str, wh.WebhookEndpoint] = {}  # stored text -> parsed
        self._records: list[tuple[Prepared, AttemptPlan, SendResult, Any]] = []
        self._recorder: asyncio.Task[None] | None = None
        self._lean: http.Client | None = None  # without an injected transport
        self._allowed: dict[str, bool] = {}
        # Events up to this seq were fanned out, or needed nothing when looked at (their
        # account had no endpoint then, and any endpoint made since fanned them out first).
        self._looked = 0

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
        if self._recorder is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._recorder
            self._recorder = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._lean is not None:
            await self._lean.aclose()
            self._lean = None

    def release_leases(self) -> int:
        """For a server that is the only process on its database: attempts cut off by the
        previous process's crash are due again at once instead of after their lease."""
        with self.store.transaction() as tx:
            return int(tx.release_leases())

    @contextlib.contextmanager
    def _scope(self, account_id: str) -> Iterator[tuple[Ctx, Awaitable[None] | None]]:
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

    async def _fan_out(self) -> int:
        """Fan out a batch of the events committed since the last look, if any of their
        accounts has an endpoint (`webhooks.fanout`); the deliveries made. The batch is worked
        out from reads, then written in a short write transaction if nothing it depends on
        changed meanwhile (else worked out again under the lock). Never raises."""
        try:
            with self.store.read() as tx:
                cursor, top, wanted = tx.fanout_backlog(self._looked)
                if not wanted and top - cursor < CURSOR_LAG:
                    self._looked = max(self._looked, top)
                    return 0
                batch = fanout.plan(tx, after=self._looked, limit=FANOUT_BATCH)
            if batch is None:
                return 0
            if not batch.deliveries and not batch.changed and batch.until - cursor < CURSOR_LAG:
                # Nothing to write: events no endpoint wants (an endpoint changed later fans
                # them out first, against the same endpoints, to the same nothing).
                self._looked = max(self._looked, batch.until)
                return 0
            await self.store.writable()  # the lock, awaited off the loop
            with self._writing() as (tx, committed):
                if not fanout.apply(tx, batch):
                    batch = fanout.plan(tx, after=self._looked, limit=FANOUT_BATCH)
                    if batch is not None:
                        fanout.write(tx, batch)
            if committed is not None:
                await committed
        except Exception:
            log.exception("webhook fan-out failed")
            return 0
        if batch is None:
            return 0
        self._looked = max(self._looked, batch.until)
        if batch.more:
            self._wake.set()  # the rest in the next round
        return len(batch.deliveries)

    async def _round(self, account: str | None, *, wait: bool) -> int:
        await self._fan_out()
        rows = self._due(account)
        if not rows:
            return 0
        prepared = await self._claim(rows)
        tasks = [asyncio.create_task(self._guarded(row, p)) for row, p in prepared]
        if wait and tasks:
            await asyncio.gather(*tasks)
        return len(tasks)

    async def _claim(
        self, rows: list[tuple[str, str, str]]
    ) -> list[tuple[tuple[str, str, str], Prepared]]:
        """Lease the rows in one write transaction; the attempts start once the leases are
        committed (so two workers never send one attempt). What the attempts need is read
        before, outside the write lock; a lease is taken only on a row still as it was read."""
        wall = self.wall.now()
        lease_until, wall_us = to_us(wall + LEASE), to_us(wall)
        candidates, failed = self._prepare(rows, wall_us)
        if not candidates and not failed:
            return []
        claimed: list[tuple[tuple[str, str, str], Prepared]] = []
        try:
            await self.store.writable()  # the lock, awaited off the loop
            with self._writing() as (tx, committed):
                for account_id, d, data in failed:
                    if tx.claim_delivery(account_id, d.id, data, wall_us, lease_until):
                        tx.save_delivery(account_id, d, to_us(d.created_at))
                for row, prepared, data in candidates:
                    if tx.claim_delivery(row[0], row[1], data, wall_us, lease_until):
                        claimed.append((row, prepared))
                    else:
                        self._release(row)
            if committed is not None:
                await committed
        except Exception:
            log.exception("committing webhook leases failed")
            for row, _, _ in candidates:
                self._release(row)
            return []
        return claimed

    def _prepare(
        self, rows: list[tuple[str, str, str]], wall_us: int
    ) -> tuple[
        list[tuple[tuple[str, str, str], Prepared, str]], list[tuple[str, wh.Delivery, str]]
    ]:
        """Read (without the write lock) what the rows' attempts need: the rows to claim, with
        their stored text, and those with nowhere to go (marked failed). Rows neither are
        released at once."""
        try:
            with self.store.read() as tx:
                inputs = tx.attempt_inputs([row[1] for row in rows])
                accounts = {a: tx.account(a) for a in {row[0] for row in rows}}
        except Exception:
            log.exception("reading deliveries to claim failed")
            for row in rows:
                self._release(row)
            return [], []
        failed: list[tuple[str, wh.Delivery, str]] = []
        candidates: list[tuple[tuple[str, str, str], Prepared, str]] = []
        found = {i[1]: i for i in inputs}
        for row in rows:  # in the order they fell due
            if row[1] not in found:  # gone meanwhile (an account reset)
                self._release(row)
                continue
            account_id, _, data, lease, endpoint_data, event_data = found[row[1]]
            account = accounts.get(account_id)
            d = wh.Delivery.model_validate_json(data)
            if (
                account is None
                or d.status != "pending"
                or d.next_attempt_at is None
                or (lease is not None and lease >= wall_us)
            ):
                self._release(row)
                continue
            endpoint = self._endpoint(endpoint_data)
            if endpoint is None or event_data is None or endpoint.status != "enabled":
                d.apply("fail")
                failed.append((account_id, d, data))
                self._release(row)
                continue
            prepared = Prepared(
                account_id=account_id,
                delivery=d,
                endpoint=endpoint,
                event=Event.model_validate_json(event_data),
                n=len(d.attempts) + 1,
                at=d.next_attempt_at,
                seed=account.seed,
                timeout_ms=account.settings.webhook_timeout_ms,
                schedule=tuple(account.settings.webhook_schedule_s),
            )
            candidates.append((row, prepared, data))
        return candidates, failed

    def _endpoint(self, data: str | None) -> wh.WebhookEndpoint | None:
        """An endpoint from its stored text, parsed once per version (never mutated here)."""
        if data is None:
            return None
        endpoint = self._endpoints.get(data)
        if endpoint is None:
            if len(self._endpoints) > ENDPOINT_CACHE:
                self._endpoints.clear()
            endpoint = self._endpoints[data] = wh.WebhookEndpoint.model_validate_json(data)
        return endpoint

    @contextlib.contextmanager
    def _writing(self) -> Iterator[tuple[SqliteTx, Awaitable[None] | None]]:
        """A write transaction; the second value, when not None, is the group commit to await
        (in the API's process the dispatcher's writes join the API's group commit)."""
        if self.group_commits:
            with self.store.grouped() as pair:
                yield pair
            return
        with self.store.transaction() as tx:
            yield tx, None

    def _release(self, row: tuple[str, str, str]) -> None:
        """The delivery is no longer in flight (recorded, or never sent)."""
        self._sent_to(row)
        self._in_flight.pop(row[1], None)
        self._answered.discard(row[1])

    def _sent_to(self, row: tuple[str, str, str]) -> None:
        """The attempt's HTTP is over: its endpoint's slot is free (its record may still be
        on the way; the lease and `_in_flight` keep the delivery from being taken again)."""
        if row[1] not in self._in_flight or row[1] in self._answered:
            return
        self._answered.add(row[1])
        left = self._per_endpoint.get(row[2], 1) - 1
        if left > 0:
            self._per_endpoint[row[2]] = left
        else:
            self._per_endpoint.pop(row[2], None)

    async def flush(self, account: str | None = None, max_rounds: int = 10_000) -> int:
        """Fan out every event committed so far, then deliver everything due now (retries
        falling due on the way included); returns the number of attempts made. The fan-out
        goes in bounded steps (`WebhookService.fan_out_in_steps`)."""
        await self.webhooks.fan_out_in_steps()
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

    async def _guarded(self, row: tuple[str, str, str], prepared: Prepared) -> None:
        """One claimed attempt, sent and recorded; never raises."""
        try:
            async with self._slots:
                await self._attempt(row, prepared)
        except Exception:
            log.exception("webhook attempt for %s failed", row[1])
        finally:
            self._release(row)
            self._wake.set()  # a slot is free: more may be waiting

    # --- one attempt -------------------------------------------------------------------------
    async def _attempt(self, row: tuple[str, str, str], prepared: Prepared) -> None:
        plan: AttemptPlan = self._plan(prepared)
        try:
            result = await self._send(plan)
            for _ in range(plan.copies):  # the duplicate quirk: the same message again
                await self._send(plan)
        finally:
            self._sent_to(row)
            self._wake.set()  # its endpoint may take another attempt
        if self.on_attempt is not None:
            self.on_attempt(result.outcome, result.latency_ms)
        done = asyncio.get_running_loop().create_future()
        self._records.append((prepared, plan, result, done))
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._record_soon())
        await done
        self.sent += 1

    async def _record_soon(self) -> None:
        """Record the attempts that finished meanwhile, a batch per write transaction."""
        while self._records:
            await asyncio.sleep(RECORD_DELAY_S)
            batch, self._records = self._records, []
            try:
                await self._record(batch)
            except Exception as exc:
                log.exception("recording webhook attempts failed")
                for *_, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for *_, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def _record(self, batch: list[tuple[Prepared, AttemptPlan, SendResult, Any]]) -> None:
        """Attempts that change no endpoint are written in one transaction; the others (an
        endpoint starting or stopping to fail, or disabled) each in its account's transaction,
        after, in their order. Once one attempt of an endpoint takes the second way, the later
        ones of that endpoint in the batch do too, so each sees the endpoint as it was left.
        The documents are made before the write lock is taken, from the endpoints as read
        then; if one changed meanwhile, the batch is worked out again under the lock."""
        keys = {(p.account_id, p.delivery.endpoint_id) for p, *_ in batch}
        with self.store.read() as tx:
            before = {key: tx.endpoint_data(*key) for key in keys}
        fast, slow = self._settle(batch, before)
        await self.store.writable()  # the lock, awaited off the loop
        with self._writing() as (tx, committed):
            now = {key: tx.endpoint_data(*key) for key in keys}
            if now != before:
                fast, slow = self._settle(batch, now)
            for account_id, delivery_id, status, due, data in fast:
                tx.save_delivery_data(account_id, delivery_id, status, due, data)
        if committed is not None:
            await committed
        for p, plan, result in slow:
            await self.store.writable()  # the lock, awaited off the loop
            with self._scope(p.account_id) as (ctx, committed):
                self.webhooks.record_attempt(ctx, p.delivery.id, plan, result)
            if committed is not None:
                await committed

    def _settle(
        self,
        batch: list[tuple[Prepared, AttemptPlan, SendResult, Any]],
        endpoints: dict[tuple[str, str], str | None],
    ) -> tuple[
        list[tuple[str, str, str, int | None, str]],
        list[tuple[Prepared, AttemptPlan, SendResult]],
    ]:
        """(the rows to write for the attempts that change no endpoint, the other attempts)"""
        fast: list[tuple[str, str, str, int | None, str]] = []
        slow: list[tuple[Prepared, AttemptPlan, SendResult]] = []
        slow_endpoints: set[tuple[str, str]] = set()
        for p, plan, result, _ in batch:
            key = (p.account_id, p.delivery.endpoint_id)
            endpoint = self._endpoint(endpoints[key])
            if key in slow_endpoints or changes_endpoint(endpoint, plan, result):
                slow_endpoints.add(key)
                slow.append((p, plan, result))
                continue
            d = p.delivery.model_copy()
            d.attempts = [*d.attempts]
            settle(d, endpoint, plan, result, p)
            due = None  # as `save_delivery` computes it
            if d.next_attempt_at is not None and d.status == "pending":
                due = int(d.next_attempt_at.timestamp() * 1_000_000)
            fast.append((p.account_id, d.id, d.status, due, d.model_dump_json()))
        return fast, slow

    def _plan(self, p: Prepared) -> AttemptPlan:
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

    def _allows(self, url: str) -> bool:
        allowed = self._allowed.get(url)
        if allowed is None:
            if len(self._allowed) > ENDPOINT_CACHE:
                self._allowed.clear()
            allowed = self._allowed[url] = self.policy.allows(url)
        return allowed

    async def _send(self, plan: AttemptPlan) -> SendResult:
        started = time.perf_counter()
        if not self._allows(plan.url):
            return SendResult(None, None, 0.0, "connection_error", None, "host not allowed")
        if self.transport is not None:
            return await self._send_httpx(plan, started)
        if self._lean is None:
            self._lean = http.Client()
        try:
            response = await self._lean.post(plan.url, plan.headers, plan.body, plan.timeout_s)
        except TimeoutError:
            return SendResult(None, None, _ms(started), "timeout", None, "timed out")
        except http.HttpError as exc:
            return SendResult(None, None, _ms(started), "connection_error", None, str(exc))
        return _result(
            response.status,
            response.text(EXCERPT),
            response.headers.get("retry-after", ""),
            started,
        )

    async def _send_httpx(self, plan: AttemptPlan, started: float) -> SendResult:
        """Through httpx, when a transport was injected (tests' receivers)."""
        try:
            response = await self.client().post(
                plan.url, content=plan.body, headers=plan.headers, timeout=plan.timeout_s
            )
        except httpx.TimeoutException:
            return SendResult(None, None, _ms(started), "timeout", None, "timed out")
        except httpx.HTTPError as exc:
            return SendResult(None, None, _ms(started), "connection_error", None, str(exc))
        return _result(
            response.status_code,
            response.text[:EXCERPT],
            response.headers.get("retry-after", ""),
            started,
        )


def _result(status: int, excerpt: str, retry_after: str, started: float) -> SendResult:
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
