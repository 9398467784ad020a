"""Webhook operations: endpoints (create, list, get, update, delete, rotate), the fan-out of
committed events into deliveries, each attempt's preparation and record, recovery, replay and
quirks. Every method works inside the provider's account transaction (`ProviderService.scope`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from simulator.clock import to_us
from simulator.domain import webhooks as wh
from simulator.domain.errors import NotFound, WebhookUrlRefused
from simulator.domain.models import Event
from simulator.rng import SeededRng
from simulator.service import Ctx, ProviderService
from simulator.webhooks import signing
from simulator.webhooks.safety import HostPolicy

BODY_KEPT = 64 * 1024  # request bodies kept in the delivery log


@dataclass(frozen=True)
class Prepared:
    delivery: wh.Delivery
    endpoint: wh.WebhookEndpoint
    event: Event
    n: int
    at: datetime
    seed: int
    timeout_ms: int


class WebhookService:
    def __init__(
        self, provider: ProviderService, policy: HostPolicy, wake: Callable[[], None]
    ) -> None:
        self.provider = provider
        self.policy = policy
        self.wake = wake
        provider.on_events = self.fan_out

    # --- endpoints ---------------------------------------------------------------------------
    def _check_url(self, url: str, path: str = "body.url") -> None:
        problem = self.policy.problem(url)
        if problem is not None:
            raise WebhookUrlRefused(f"{path}: {problem}")

    def create_endpoint(
        self, ctx: Ctx, *, url: str, enabled_events: list[str], description: str | None
    ) -> wh.WebhookEndpoint:
        self._check_url(url)
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

    def update_endpoint(
        self, ctx: Ctx, endpoint_id: str, changes: dict[str, Any]
    ) -> wh.WebhookEndpoint:
        endpoint = self.get_endpoint(ctx, endpoint_id)
        if changes.get("url") is not None:
            self._check_url(changes["url"])
            endpoint.url = changes["url"]
        if changes.get("enabled_events") is not None:
            endpoint.enabled_events = changes["enabled_events"]
        if "description" in changes:
            endpoint.description = changes["description"]
        if changes.get("status") is not None:
            endpoint.status = changes["status"]
            endpoint.disabled_reason = "manual" if endpoint.status == "disabled" else None
            if endpoint.status == "enabled":
                endpoint.failing_since = None
        endpoint.updated_at = ctx.now
        ctx.tx.save_webhook_endpoint(ctx.aid, endpoint)
        return endpoint

    def delete_endpoint(self, ctx: Ctx, endpoint_id: str) -> wh.WebhookEndpoint:
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
        endpoint = self.get_endpoint(ctx, endpoint_id)
        endpoint.quirks = quirks
        endpoint.dropped = 0
        endpoint.updated_at = ctx.now
        ctx.tx.save_webhook_endpoint(ctx.aid, endpoint)
        return endpoint

    def attempts(
        self, ctx: Ctx, endpoint_id: str, *, limit: int
    ) -> list[tuple[wh.Delivery, wh.Attempt]]:
        """The endpoint's attempts, newest first."""
        self.get_endpoint(ctx, endpoint_id)
        out: list[tuple[wh.Delivery, wh.Attempt]] = []
        for _, delivery in ctx.tx.deliveries(ctx.aid, endpoint_id=endpoint_id, limit=limit):
            out.extend((delivery, a) for a in reversed(delivery.attempts))
        out.sort(key=lambda da: (da[1].at, da[1].n), reverse=True)
        return out[:limit]

    def recover(self, ctx: Ctx, endpoint_id: str, since: datetime) -> int:
        """Send every failed delivery of the endpoint created since `since` again, now."""
        self.get_endpoint(ctx, endpoint_id)
        n = 0
        for _, d in ctx.tx.deliveries(
            ctx.aid, endpoint_id=endpoint_id, status="failed", since_us=to_us(since), limit=10_000
        ):
            d.status = "pending"
            d.next_attempt_at = ctx.now
            ctx.tx.save_delivery(ctx.aid, d, to_us(d.created_at))
            n += 1
        if n:
            self.wake()
        return n

    def replay_event(self, ctx: Ctx, event_id: str) -> list[wh.Delivery]:
        """New deliveries of a stored event, now, to every endpoint that wants its type."""
        event = ctx.tx.event(ctx.aid, event_id)
        if event is None:
            raise NotFound("event", event_id)
        made = self._deliveries_for(ctx, event, ctx.now, quirks=False)
        self.wake()
        return made

    # --- the fan-out (in the transaction that wrote the events) -------------------------
    def fan_out(self, ctx: Ctx) -> None:
        endpoints = ctx.tx.webhook_endpoints(ctx.aid)
        if not endpoints:
            return
        made = False
        for event in ctx.events:
            made |= bool(self._deliveries_for(ctx, event, event.created_at, endpoints=endpoints))
        if made:
            self.wake()

    def _deliveries_for(
        self,
        ctx: Ctx,
        event: Event,
        at: datetime,
        *,
        endpoints: list[wh.WebhookEndpoint] | None = None,
        quirks: bool = True,
    ) -> list[wh.Delivery]:
        made = []
        for endpoint in endpoints if endpoints is not None else ctx.tx.webhook_endpoints(ctx.aid):
            if not endpoint.wants(event.type):
                continue
            delivery = wh.Delivery(
                id=ctx.new_id("whd"),
                endpoint_id=endpoint.id,
                event_id=event.id,
                event_type=event.type,
                next_attempt_at=at,
                created_at=at,
            )
            if quirks:
                self._schedule_quirks(ctx, endpoint, delivery)
            ctx.tx.insert_delivery(ctx.aid, delivery, to_us(at))
            made.append(delivery)
        return made

    @staticmethod
    def _schedule_quirks(ctx: Ctx, endpoint: wh.WebhookEndpoint, d: wh.Delivery) -> None:
        """drop, delay and reorder act on the first attempt's time; drawn per delivery."""
        q = endpoint.quirks
        if q.drop is None and q.delay is None and q.reorder is None:
            return
        dice = SeededRng(f"webhook-schedule\x00{d.id}", ctx.account.seed)
        if q.drop is not None:
            first = q.drop.first is not None and endpoint.dropped < q.drop.first
            if first or (q.drop.probability is not None and dice.random() < q.drop.probability):
                endpoint.dropped += 1
                ctx.tx.save_webhook_endpoint(ctx.aid, endpoint)
                d.status = "dropped"
                d.next_attempt_at = None
                return
        assert d.next_attempt_at is not None
        extra_ms = 0
        if q.delay is not None:
            if q.delay.ms is not None:
                extra_ms += q.delay.ms
            else:
                extra_ms += dice.randint(q.delay.min_ms, max(q.delay.min_ms, q.delay.max_ms or 0))
        if q.reorder is not None:  # held, then released in a shuffled order within the window
            extra_ms += dice.randint(0, q.reorder.window_ms)
        d.next_attempt_at += timedelta(milliseconds=extra_ms)

    # --- attempts (called by the dispatcher, outside any HTTP) ----------------------------------
    def prepare_attempt(
        self, ctx: Ctx, delivery_id: str, lease_until: datetime, wall_us: int
    ) -> Prepared | None:
        """Claim a due delivery (a lease on the wall clock) and gather what its attempt needs;
        None when it is not due, taken, or has nowhere to go."""
        found = ctx.tx.delivery(ctx.aid, delivery_id)
        if found is None:
            return None
        delivery, lease = found
        if delivery.status != "pending" or delivery.next_attempt_at is None:
            return None
        if (lease is not None and lease >= wall_us) or delivery.next_attempt_at > ctx.now:
            return None
        endpoint = ctx.tx.webhook_endpoint(ctx.aid, delivery.endpoint_id)
        event = ctx.tx.event(ctx.aid, delivery.event_id)
        if endpoint is None or event is None or endpoint.status != "enabled":
            delivery.status = "failed"
            ctx.tx.save_delivery(ctx.aid, delivery, to_us(delivery.created_at))
            return None
        ctx.tx.lease_delivery(ctx.aid, delivery_id, to_us(lease_until))
        return Prepared(
            delivery=delivery,
            endpoint=endpoint,
            event=event,
            n=len(delivery.attempts) + 1,
            at=delivery.next_attempt_at,
            seed=ctx.account.seed,
            timeout_ms=ctx.account.settings.webhook_timeout_ms,
        )

    def record_attempt(self, ctx: Ctx, delivery_id: str, plan: Any, result: Any) -> None:
        account_id = ctx.aid
        found = ctx.tx.delivery(account_id, delivery_id)
        if found is None:
            return
        d = found[0]
        endpoint = ctx.tx.webhook_endpoint(account_id, d.endpoint_id)
        attempt = wh.Attempt(
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
        d.attempts.append(attempt)
        d.next_attempt_at = None
        if result.outcome == "succeeded":
            d.status = "succeeded"
            if endpoint is not None and endpoint.failing_since is not None:
                endpoint.failing_since = None
                ctx.tx.save_webhook_endpoint(account_id, endpoint)
        elif result.outcome == "gone" or endpoint is None:
            d.status = "failed"
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
            d.status = "failed"
            self._disable(ctx, endpoint, "failing for 5 days", plan.at)
            return
        schedule = tuple(ctx.account.settings.webhook_schedule_s)
        dice = SeededRng(f"webhook-jitter\x00{d.id}\x00{plan.n}", ctx.account.seed)
        delay = wh.next_delay(len(d.attempts), schedule, dice.random() * 2 - 1)
        if delay is None:
            d.status = "failed"  # the schedule is exhausted
            return
        throttled = result.status == 429 or result.outcome == "timeout"
        honoured = result.retry_after_s if result.status in (429, 503) else None
        d.next_attempt_at = plan.at + wh.retry_after_delay(delay, honoured, throttled)

    def _disable(self, ctx: Ctx, endpoint: wh.WebhookEndpoint, reason: str, at: datetime) -> None:
        endpoint.status = "disabled"
        endpoint.disabled_reason = reason
        endpoint.updated_at = at
        ctx.tx.save_webhook_endpoint(ctx.aid, endpoint)
        now = ctx.now
        ctx.now = at
        self.provider.emit(ctx, "webhook_endpoint.disabled", endpoint)
        ctx.now = now
