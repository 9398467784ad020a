"""Webhook operations: endpoints (create, list, get, update, delete, rotate), each attempt's
preparation and record, recovery, replay and quirks. Every method works inside the provider's
account transaction (`ProviderService.scope`). The fan-out of committed events into deliveries
is the dispatcher's (`simulator.webhooks.fanout`): an API write only writes its events and
wakes it; every change to an endpoint fans out what is pending first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from simulator.clock import to_us
from simulator.context import Ctx
from simulator.domain import webhooks as wh
from simulator.domain.errors import NotFound, WebhookUrlRefused
from simulator.domain.models import Event
from simulator.domain.records import Page
from simulator.rng import SeededRng
from simulator.service import ProviderService
from simulator.store.cursor import decode_cursor, encode_cursor
from simulator.webhooks import fanout, signing
from simulator.webhooks.safety import HostPolicy

_ATTEMPT_BITS = 16  # an attempt's number in a cursor of the attempts list
_ATTEMPT_MASK = (1 << _ATTEMPT_BITS) - 1
BODY_KEPT = 64 * 1024  # request bodies kept in the delivery log


@dataclass(frozen=True)
class Prepared:
    """A claimed delivery and what its attempt needs."""

    account_id: str
    delivery: wh.Delivery
    endpoint: wh.WebhookEndpoint
    event: Event
    n: int
    at: datetime
    seed: int
    timeout_ms: int
    schedule: tuple[int, ...]


def delivery_id(ctx: Ctx) -> str:
    """A replay's `whd_` id: the account's next id (one draw: same seed and requests, same
    ids), which sorts in the order the account makes them (`simulator.rng`). (The fan-out's
    ids are `fanout.delivery_id`: a function of event and endpoint.)"""
    return ctx.new_id("whd")


def attempt_of(plan: Any, result: Any) -> wh.Attempt:
    """The delivery log's record of one attempt (its next attempt is filled in by the caller)."""
    return wh.Attempt(
        n=plan.n,
        at=plan.at,
        wall_at=plan.wall_at,
        url=plan.url,
        request_headers=plan.headers,
        request_body=plan.body[:BODY_KEPT].decode("utf-8", "replace"),
        status=result.status,
        response_excerpt=result.text if result.text is not None else result.error,
        latency_ms=result.latency_ms,
        outcome=result.outcome,
        quirks=plan.quirks,
    )


def changes_endpoint(endpoint: wh.WebhookEndpoint | None, plan: Any, result: Any) -> bool:
    """Whether recording this attempt changes its endpoint (it starts or stops failing, or is
    disabled): then `WebhookService.record_attempt` records it, in an account transaction."""
    if endpoint is None:
        return False
    if result.outcome == "succeeded":
        return endpoint.failing_since is not None
    if result.outcome == "gone":
        return True
    return endpoint.failing_since is None or plan.at - endpoint.failing_since >= wh.DISABLE_AFTER


def settle(
    d: wh.Delivery, endpoint: wh.WebhookEndpoint | None, plan: Any, result: Any, p: Prepared
) -> None:
    """Apply an attempt that changes no endpoint (`changes_endpoint` is False) to its delivery:
    what `record_attempt` does in that case, without an account transaction."""
    attempt = attempt_of(plan, result)
    d.attempts.append(attempt)
    d.next_attempt_at = None
    if result.outcome == "succeeded":
        d.apply("succeed")
    elif result.outcome == "gone" or endpoint is None:
        d.apply("fail")
    else:
        schedule_retry(d, plan, result, p.schedule, p.seed)
    attempt.next_attempt_at = d.next_attempt_at


def schedule_retry(
    d: wh.Delivery, plan: Any, result: Any, schedule: tuple[int, ...], seed: int
) -> None:
    """The next attempt after a failed one, on the account clock (jitter from the seed), or
    `failed` once the schedule is exhausted."""
    dice = SeededRng(f"webhook-jitter\x00{d.id}\x00{plan.n}", seed)
    delay = wh.next_delay(len(d.attempts), schedule, dice.random() * 2 - 1)
    if delay is None:
        d.apply("fail")  # the schedule is exhausted
        return
    throttled = result.status == 429 or result.outcome == "timeout"
    honoured = result.retry_after_s if result.status in (429, 503) else None
    d.next_attempt_at = plan.at + wh.retry_after_delay(delay, honoured, throttled)


class WebhookService:
    def __init__(
        self, provider: ProviderService, policy: HostPolicy, wake: Callable[[], None]
    ) -> None:
        self.provider = provider
        self.policy = policy
        self.wake = wake

    def fan_out_pending(self, ctx: Ctx) -> int:
        """Fan out every committed event not yet fanned out, in this transaction: done before
        any change to an endpoint, so that each event reaches the endpoints as they were when
        it was written (see `simulator.webhooks.fanout`)."""
        made = fanout.fan_out(cast("fanout.FanoutTx", ctx.tx))
        if made:
            self.wake()
        return made

    async def fan_out_in_steps(self) -> int:
        """Fan out every committed event not yet fanned out, a bounded batch per write
        transaction (`fanout.MAX_DELIVERIES`), awaiting the lock off the loop and yielding to
        other requests between batches: an event to many endpoints, or a burst of thousands,
        never holds the loop or the lock for long. Done before an endpoint changes (its own
        `fan_out_pending` then finds little or nothing left) and by a flush."""
        store = self.provider.store
        made = 0
        for _ in range(fanout.MAX_BATCHES):
            with store.read() as tx:
                pending = cast("fanout.FanoutTx", tx)
                if pending.last_event_seq() <= pending.fanout_cursor():
                    break
            await store.writable()
            with store.transaction() as tx:
                batch = fanout.plan(cast("fanout.FanoutTx", tx), after=0, limit=fanout.BATCH)
                if batch is not None:
                    fanout.write(cast("fanout.FanoutTx", tx), batch)
            if batch is None:
                break
            made += len(batch.deliveries)
            if not batch.more:
                break
            await asyncio.sleep(0)
        if made:
            self.wake()
        return made

    # --- endpoints ---------------------------------------------------------------------------
    def _check_url(self, url: str, path: str = "body.url") -> None:
        problem = self.policy.problem(url)
        if problem is not None:
            raise WebhookUrlRefused(f"{path}: {problem}")

    def create_endpoint(
        self, ctx: Ctx, *, url: str, enabled_events: list[str], description: str | None
    ) -> wh.WebhookEndpoint:
        self._check_url(url)
        self.fan_out_pending(ctx)  # the events before it are not its own
        endpoint = wh.WebhookEndpoint(
            id=ctx.new_id("we"),
            url=url,
            description=description,
            enabled_events=enabled_events,
            secret=signing.new_secret(ctx.rng.token(32).encode()),
            created_at=ctx.now,
            updated_at=ctx.now,
        )
        ctx.tx.save_webhook_endpoint(ctx.aid, endpoint)
        return endpoint

    def get_endpoint(self, ctx: Ctx, endpoint_id: str) -> wh.WebhookEndpoint:
        found = ctx.tx.webhook_endpoint(ctx.aid, endpoint_id)
        if found is None:
            raise NotFound("webhook endpoint", endpoint_id)
        return found

    def list_endpoints(self, ctx: Ctx) -> list[wh.WebhookEndpoint]:
        return list(ctx.tx.webhook_endpoints(ctx.aid))

    def endpoint_page(
        self, ctx: Ctx, *, limit: int, cursor: str | None
    ) -> Page[wh.WebhookEndpoint]:
        """The account's endpoints, oldest first, a page at a time."""
        return ctx.tx.webhook_endpoint_page(ctx.aid, limit=limit, cursor=cursor)

    def update_endpoint(
        self, ctx: Ctx, endpoint_id: str, changes: dict[str, Any]
    ) -> wh.WebhookEndpoint:
        self.fan_out_pending(ctx)
        endpoint = self.get_endpoint(ctx, endpoint_id)
        if changes.get("url") is not None:
            self._check_url(changes["url"])
            endpoint.url = changes["url"]
        if changes.get("enabled_events") is not None:
            endpoint.enabled_events = changes["enabled_events"]
        if "description" in changes:
            endpoint.description = changes["description"]
        if changes.get("status") is not None:
            endpoint.apply("disable" if changes["status"] == "disabled" else "enable")
            endpoint.disabled_reason = "manual" if endpoint.status == "disabled" else None
            if endpoint.status == "enabled":
                endpoint.failing_since = None
        endpoint.updated_at = ctx.now
        ctx.tx.save_webhook_endpoint(ctx.aid, endpoint)
        return endpoint

    def delete_endpoint(self, ctx: Ctx, endpoint_id: str) -> wh.WebhookEndpoint:
        self.fan_out_pending(ctx)
        endpoint = self.get_endpoint(ctx, endpoint_id)
        ctx.tx.delete_webhook_endpoint(ctx.aid, endpoint_id)
        return endpoint

    def rotate_secret(self, ctx: Ctx, endpoint_id: str, overlap: timedelta) -> wh.WebhookEndpoint:
        """A new secret; the old one keeps signing alongside it for `overlap`."""
        endpoint = self.get_endpoint(ctx, endpoint_id)
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = ctx.now + overlap
        endpoint.secret = signing.new_secret(ctx.rng.token(32).encode())
        endpoint.updated_at = ctx.now
        ctx.tx.save_webhook_endpoint(ctx.aid, endpoint)
        return endpoint

    def set_quirks(self, ctx: Ctx, endpoint_id: str, quirks: wh.Quirks) -> wh.WebhookEndpoint:
        self.fan_out_pending(ctx)  # the events before it keep the quirks they were made under
        endpoint = self.get_endpoint(ctx, endpoint_id)
        endpoint.quirks = quirks
        endpoint.dropped = 0
        endpoint.updated_at = ctx.now
        ctx.tx.save_webhook_endpoint(ctx.aid, endpoint)
        return endpoint

    def attempts(
        self, ctx: Ctx, endpoint_id: str, *, limit: int, cursor: str | None = None
    ) -> Page[tuple[wh.Delivery, wh.Attempt]]:
        """The endpoint's attempts, newest delivery first and each delivery's attempts newest
        first, `limit` at a time. The cursor is the position of the last one given: its
        delivery's row, and its attempt number in the low `_ATTEMPT_BITS`."""
        self.get_endpoint(ctx, endpoint_id)
        bound: int | None = None  # deliveries below this row
        resume = (-1, 0)  # in this delivery, only the attempts numbered below this
        if cursor is not None:
            position = decode_cursor(cursor)
            resume = (position >> _ATTEMPT_BITS, position & _ATTEMPT_MASK)
            bound = resume[0] + 1
        found: list[tuple[int, wh.Delivery, wh.Attempt]] = []
        while True:
            rows = ctx.tx.deliveries(
                ctx.aid, endpoint_id=endpoint_id, limit=limit + 1, cursor_seq=bound
            )
            for seq, delivery in rows:
                found.extend(
                    (seq, delivery, a)
                    for a in reversed(delivery.attempts)
                    if seq != resume[0] or a.n < resume[1]
                )
            if len(found) > limit or len(rows) <= limit:
                break
            bound = rows[-1][0]
        more = len(found) > limit
        last = found[limit - 1] if more else None
        after = encode_cursor(last[0] << _ATTEMPT_BITS | last[2].n) if last else None
        return Page([(d, a) for _, d, a in found[:limit]], more, after)

    def recover(self, ctx: Ctx, endpoint_id: str, since: datetime) -> int:
        """Send every failed delivery of the endpoint created since `since` again, now."""
        self.get_endpoint(ctx, endpoint_id)
        n = 0
        for _, d in ctx.tx.deliveries(
            ctx.aid, endpoint_id=endpoint_id, status="failed", since_us=to_us(since), limit=10_000
        ):
            d.apply("recover")
            d.next_attempt_at = ctx.now
            ctx.tx.save_delivery(ctx.aid, d, to_us(d.created_at))
            n += 1
        if n:
            self.wake()
        return n

    def deliveries(
        self,
        account_id: str | None,
        *,
        endpoint_id: str | None,
        event_id: str | None,
        status: str | None,
        limit: int,
        cursor: str | None = None,
    ) -> Page[wh.Delivery]:
        """The delivery log across accounts (control plane), newest first, from `cursor` on."""
        with self.provider.store.transaction(write=False) as tx:
            rows = tx.deliveries(
                account_id,
                endpoint_id=endpoint_id,
                event_id=event_id,
                status=status,
                limit=limit + 1,
                cursor_seq=decode_cursor(cursor) if cursor is not None else None,
            )
        more = len(rows) > limit
        next_cursor = encode_cursor(rows[limit - 1][0]) if more else None
        return Page([d for _, d in rows[:limit]], more, next_cursor)

    def replay_event(self, ctx: Ctx, event_id: str) -> list[wh.Delivery]:
        """New deliveries of a stored event, now, to every endpoint that wants its type."""
        event = ctx.tx.event(ctx.aid, event_id)
        if event is None:
            raise NotFound("event", event_id)
        made = self._deliveries_for(ctx, event, ctx.now)
        self.wake()
        return made

    # --- replay --------------------------------------------------------------------------
    def _deliveries_for(self, ctx: Ctx, event: Event, at: datetime) -> list[wh.Delivery]:
        """A replay's deliveries: one per endpoint that wants the event now, due at `at`, with
        ids from the account's RNG, no schedule quirks."""
        made = []
        for endpoint in ctx.tx.webhook_endpoints(ctx.aid):
            if not endpoint.wants(event.type):
                continue
            delivery = wh.Delivery(
                id=delivery_id(ctx),
                endpoint_id=endpoint.id,
                event_id=event.id,
                event_type=event.type,
                next_attempt_at=at,
                created_at=at,
            )
            ctx.tx.insert_delivery(ctx.aid, delivery, to_us(at))
            made.append(delivery)
        return made

    # --- attempts (recorded by the dispatcher, outside any HTTP) ---------------------------------
    def record_attempt(self, ctx: Ctx, delivery_id: str, plan: Any, result: Any) -> None:
        """Record an attempt in the account's transaction, changing its endpoint as it must
        (failing since, recovered, disabled). The dispatcher records the attempts that change
        no endpoint in bulk with `settle` instead (`changes_endpoint` tells which)."""
        account_id = ctx.aid
        found = ctx.tx.delivery(account_id, delivery_id)
        if found is None:
            return
        d = found[0]
        endpoint = ctx.tx.webhook_endpoint(account_id, d.endpoint_id)
        attempt = attempt_of(plan, result)
        d.attempts.append(attempt)
        d.next_attempt_at = None
        if result.outcome == "succeeded":
            d.apply("succeed")
            if endpoint is not None and endpoint.failing_since is not None:
                endpoint.failing_since = None
                ctx.tx.save_webhook_endpoint(account_id, endpoint)
        elif result.outcome == "gone" or endpoint is None:
            d.apply("fail")
            if endpoint is not None:
                self._disable(ctx, endpoint, "the endpoint answered 410 Gone", plan.at)
        else:
            self._retry_or_fail(ctx, d, endpoint, plan, result)
        attempt.next_attempt_at = d.next_attempt_at
        ctx.tx.save_delivery(account_id, d, to_us(d.created_at))

    def _retry_or_fail(
        self, ctx: Ctx, d: wh.Delivery, endpoint: wh.WebhookEndpoint, plan: Any, result: Any
    ) -> None:
        if endpoint.failing_since is None:
            endpoint.failing_since = plan.at
            ctx.tx.save_webhook_endpoint(ctx.aid, endpoint)
        elif plan.at - endpoint.failing_since >= wh.DISABLE_AFTER:
            d.apply("fail")
            self._disable(ctx, endpoint, "failing for 5 days", plan.at)
            return
        schedule_retry(
            d, plan, result, tuple(ctx.account.settings.webhook_schedule_s), ctx.account.seed
        )

    def _disable(self, ctx: Ctx, endpoint: wh.WebhookEndpoint, reason: str, at: datetime) -> None:
        # The events written before it keep their deliveries to it (they fail, as they did).
        if self.fan_out_pending(ctx):
            endpoint = ctx.tx.webhook_endpoint(ctx.aid, endpoint.id) or endpoint  # `dropped`
        endpoint.apply("disable")
        endpoint.disabled_reason = reason
        endpoint.updated_at = at
        ctx.tx.save_webhook_endpoint(ctx.aid, endpoint)
        now = ctx.now
        ctx.now = at
        self.provider.emit(ctx, "webhook_endpoint.disabled", endpoint)
        ctx.now = now
