"""The webhook receiver: verify, store raw, answer fast; process later from the inbox.

`create_receiver(inbox, secrets)` is a Starlette app with one route, `POST /webhooks`
(`webhook_endpoint` is the same endpoint for mounting elsewhere: the order-to-cash service
serves it at `POST /webhooks/provider`):

1. Verify (Standard Webhooks): `webhook-id`, `webhook-timestamp` and `webhook-signature` must
   all be present; the timestamp must be within `tolerance_s` (default 300 s, the reference
   library's ±5 min) of `clock()`; one `v1,` entry of the (space-separated) signature list
   must match one of the configured secrets (several during a rotation). The expected
   signature is computed by `standardwebhooks.Webhook(secret).sign(...)` over
   `{id}.{timestamp}.{body}` and compared in constant time. `Webhook.verify()` is not called
   directly because it reads `datetime.now()` with a fixed ±5 min, so neither the clock nor
   the tolerance could be injected, and it raises `ValueError` (not its own error) on a
   malformed signature entry; the signing and the comparison are the same.
   Anything wrong -> 400 `application/problem+json` (`integration.problems`), nothing stored.
2. Store the body byte for byte (and the headers) with `Inbox.accept`, one committed SQLite
   transaction, then answer 204. A repeat of a known `webhook-id` is also 204 (accepted
   once; the provider may stop retrying). If the inbox cannot write, 503: the provider
   retries, nothing was acknowledged that is not on disk.
3. A signed body that is not JSON (or not an event) is still acknowledged: the provider
   signed it, so retrying cannot fix it. It is stored and, on processing, quarantined
   (`failed`, never retried) for a human to look at.

`process_pending(inbox)` parses each queued body into a canonical `ProviderEvent` and folds
it into `order_state` with `Inbox.apply` (never backwards). Unknown event types are recorded
and marked processed. `aprocess_pending(inbox, on_event)` does the same around an async
handler: the order-to-cash service's event worker runs it in a loop to move ERP orders and
post the ledger from provider events.

`poll_events(fetch_page, inbox)` walks the provider's `GET /v1/events` (newest first) through
an injected `fetch_page(cursor) -> (events, next_cursor)` and accepts every event into the same
inbox with `source='poll'`; the event id is the `webhook-id`, so an event both delivered and
polled is stored once. This module does no HTTP itself. The caller bounds the walk (e.g.
`created_gte` in its fetch function, or `max_pages`).

`apoll_since(list_events, inbox)` is the poller the order-to-cash service runs: it asks an
adapter's `list_events(cursor)` for the events after the cursor stored in the inbox
(`POLL_CURSOR`; None at first: everything), accepts them oldest first with `source='poll'`
and moves the cursor past them in the same inbox transaction, so a restart reads on from
where the last poll stopped and a crash mid-poll re-reads (deduped) rather than skips.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from integration.adapters import EVENT_KIND, event_facts
from integration.errors import IntegrationError, Problem
from integration.inbox import Applied, Inbox, RawEvent
from integration.model import ProviderEvent
from integration.problems import HANDLERS, from_error, problem

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE_S = 300
DEFAULT_MAX_BODY = 1024 * 1024  # Standard Webhooks payloads are small (~20 kB)
# Not worth keeping next to a raw event, and not ours to persist.
_UNSTORED_HEADERS: Final = frozenset({"authorization", "cookie", "proxy-authorization"})

Page = tuple[list[dict[str, object]], str | None]
# The inbox cursor of the provider's event list (its newest event accepted by a poll).
POLL_CURSOR: Final = "provider_events"


class WebhookRejected(Problem):
    """A delivery failed verification (400); `code` names why (the problem type's last part)."""

    def __init__(self, code: str, title: str, detail: str) -> None:
        super().__init__(detail, code=code, title=title)


class UnparseableEvent(IntegrationError, ValueError):
    """A stored body is not a provider event; retrying will not change that."""


# --- verification -------------------------------------------------------------------------------
class Verifier:
    """Standard Webhooks verification against one or more secrets, on an injectable clock."""

    def __init__(
        self,
        secrets: str | Sequence[str],
        *,
        clock: Callable[[], datetime],
        tolerance_s: int = DEFAULT_TOLERANCE_S,
    ) -> None:
        keys = [secrets] if isinstance(secrets, str) else list(secrets)
        if not keys:
            raise ValueError("at least one webhook secret is required")
        self.webhooks = [Webhook(key) for key in keys]  # raises on a malformed secret
        self.clock = clock
        self.tolerance_s = tolerance_s

    def verify(self, body: bytes, headers: Mapping[str, str]) -> str:
        """The verified `webhook-id`, or WebhookRejected."""
        lowered = {k.lower(): v for k, v in headers.items()}
        msg_id = lowered.get("webhook-id", "").strip()
        stamp = lowered.get("webhook-timestamp", "").strip()
        signatures = lowered.get("webhook-signature", "").strip()
        missing = [
            name
            for name, value in (
                ("webhook-id", msg_id),
                ("webhook-timestamp", stamp),
                ("webhook-signature", signatures),
            )
            if not value
        ]
        if missing:
            raise WebhookRejected(
                "missing_headers", "Missing webhook headers", f"missing: {', '.join(missing)}"
            )
        if not stamp.isdigit():
            raise WebhookRejected(
                "invalid_timestamp",
                "Invalid webhook timestamp",
                "webhook-timestamp must be integer unix seconds",
            )
        sent_at = datetime.fromtimestamp(int(stamp), UTC)
        skew = (self.clock() - sent_at).total_seconds()
        if abs(skew) > self.tolerance_s:
            direction = "old" if skew > 0 else "far in the future"
            raise WebhookRejected(
                "stale_timestamp",
                "Stale webhook timestamp",
                f"webhook-timestamp is {abs(int(skew))} s {direction}; "
                f"the tolerance is {self.tolerance_s} s",
            )
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise WebhookRejected(
                "invalid_signature", "Invalid webhook signature", "the body is not UTF-8"
            ) from None
        offered = _v1_signatures(signatures)
        for webhook in self.webhooks:
            expected = base64.b64decode(webhook.sign(msg_id, sent_at, text).split(",", 1)[1])
            # Each offered signature is compared in constant time.
            if any(hmac.compare_digest(expected, candidate) for candidate in offered):
                return msg_id
        raise WebhookRejected(
            "invalid_signature",
            "Invalid webhook signature",
            "no v1 signature matches a configured secret",
        )


def _v1_signatures(header: str) -> list[bytes]:
    """The decoded `v1,` entries of a space-separated signature list; others are skipped."""
    out: list[bytes] = []
    for entry in header.split():
        version, _, encoded = entry.partition(",")
        if version != "v1" or not encoded:
            continue
        try:
            out.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return out


# --- the app ------------------------------------------------------------------------------------
def webhook_endpoint(
    inbox: Inbox,
    verifier: Verifier,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    on_accepted: Callable[[str, bool], None] | None = None,
) -> Callable[[Request], Awaitable[Response]]:
    """The receiving endpoint (verify, store raw, 204), to mount on any route.
    `on_accepted(webhook_id, new)` runs after the row is committed (e.g. to wake a worker)."""

    async def receive(request: Request) -> Response:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body:
            return problem(413, "payload_too_large", "Payload too large", f"limit {max_body} B")
        body = await request.body()
        if len(body) > max_body:
            return problem(413, "payload_too_large", "Payload too large", f"limit {max_body} B")
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            webhook_id = verifier.verify(body, headers)
        except WebhookRejected as rejected:
            log.warning("webhook rejected: %s", rejected.detail)
            return from_error(rejected)
        kept = {k: v for k, v in headers.items() if k not in _UNSTORED_HEADERS}
        try:
            new = await run_in_threadpool(inbox.accept, webhook_id, kept, body, "webhook")
        except sqlite3.Error as exc:
            log.exception("webhook %s not stored", webhook_id)
            return problem(
                503,
                "inbox_unavailable",
                "Inbox unavailable",
                f"not stored: {exc}; retry",
                {"retry-after": "5"},
            )
        if on_accepted is not None:
            on_accepted(webhook_id, new)
        return Response(status_code=204)

    return receive


def create_receiver(
    inbox: Inbox,
    secrets: str | Sequence[str],
    *,
    clock: Callable[[], datetime],
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    max_body: int = DEFAULT_MAX_BODY,
    path: str = "/webhooks",
) -> Starlette:
    """The receiving app: `POST {path}` verifies, stores raw and answers 204."""
    verifier = Verifier(secrets, clock=clock, tolerance_s=tolerance_s)
    receive = webhook_endpoint(inbox, verifier, max_body=max_body)
    app = Starlette(routes=[Route(path, receive, methods=["POST"])], exception_handlers=HANDLERS)
    app.state.inbox = inbox
    app.state.verifier = verifier
    return app


# --- processing -----------------------------------------------------------------------------------
def to_provider_event(payload: object) -> ProviderEvent:
    """A provider event body (as `GET /v1/events/{id}` returns it) in canonical terms."""
    if not isinstance(payload, dict):
        raise UnparseableEvent("the body is not a JSON object")
    event_id = payload.get("id")
    event_type = payload.get("type")
    created = payload.get("created_at")
    if not isinstance(event_id, str) or not event_id:
        raise UnparseableEvent("the event has no id")
    if not isinstance(event_type, str) or not event_type:
        raise UnparseableEvent("the event has no type")
    if not isinstance(created, str):
        raise UnparseableEvent("the event has no created_at")
    try:
        at = datetime.fromisoformat(created)
    except ValueError:
        raise UnparseableEvent(f"created_at {created!r} is not RFC 3339") from None
    if at.tzinfo is None:
        raise UnparseableEvent(f"created_at {created!r} has no UTC offset")
    raw: dict[str, object] = {str(k): v for k, v in payload.items()}
    facts = event_facts(raw)
    return ProviderEvent(
        provider_event_id=event_id,
        # the adapter's table; any other type is None: recorded, applied to order state if it
        # carries an order snapshot, never posted
        kind=EVENT_KIND.get(event_type),
        provider_order_id=facts.provider_order_id,
        at=at,
        raw=raw,
        order=facts.order,
        provider_checkout_id=facts.provider_checkout_id,
        checkout_status=facts.checkout_status,
        settlement=facts.settlement,
        payment=facts.payment,
        payment_refunds=facts.payment_refunds,
        payments=facts.payments,
    )


def parse(raw: RawEvent) -> ProviderEvent:
    try:
        payload = json.loads(raw.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnparseableEvent(f"the body is not JSON: {exc}") from None
    return to_provider_event(payload)


def _parsed_or_quarantined(inbox: Inbox, raw: RawEvent) -> ProviderEvent | None:
    """The raw event parsed; an unparseable body is quarantined (failed, no retry): None."""
    try:
        return parse(raw)
    except UnparseableEvent as exc:
        log.error("raw event %s quarantined: %s", raw.webhook_id, exc)
        inbox.mark_failed(raw.id, f"unparseable: {exc}", retry=False)
        return None


def process_pending(
    inbox: Inbox,
    limit: int = 100,
    *,
    on_event: Callable[[ProviderEvent, Applied], None] | None = None,
) -> int:
    """Process up to `limit` queued (or due-for-retry) raw events; returns how many were
    handled (processed or failed). For each: parse -> `ProviderEvent` -> `inbox.apply`, then
    `on_event` (e.g. the ledger posting; it must be idempotent), then mark processed — all in
    one inbox transaction, so a crash replays the row rather than half-applying it.
    An unparseable body is quarantined (failed, no retry); an error while applying is failed
    and retried later with backoff."""
    handled = 0
    for raw in inbox.next_batch(limit):
        handled += 1
        event = _parsed_or_quarantined(inbox, raw)
        if event is None:
            continue
        try:
            with inbox.transaction():
                applied = inbox.apply(event)
                if on_event is not None:
                    on_event(event, applied)
                inbox.mark_processed(raw.id)
        except Exception as exc:
            log.exception("raw event %s failed; will retry", raw.webhook_id)
            inbox.mark_failed(raw.id, f"{type(exc).__name__}: {exc}")
    return handled


async def aprocess_pending(
    inbox: Inbox,
    on_event: Callable[[ProviderEvent], Awaitable[None]],
    limit: int = 100,
) -> int:
    """`process_pending` for an async handler (the order-to-cash service's ERP and ledger
    update, which takes the order's lock). The handler runs first and must be idempotent;
    then `inbox.apply` and `mark_processed` commit together. A crash in between replays the
    row, so the handler sees it again (at least once); a handler error fails the row for a
    retry with backoff."""
    handled = 0
    for raw in await run_in_threadpool(inbox.next_batch, limit):
        handled += 1
        event = _parsed_or_quarantined(inbox, raw)
        if event is None:
            continue
        try:
            await on_event(event)
            with inbox.transaction():
                inbox.apply(event)
                inbox.mark_processed(raw.id)
        except Exception as exc:
            log.exception("raw event %s failed; will retry", raw.webhook_id)
            inbox.mark_failed(raw.id, f"{type(exc).__name__}: {exc}")
    return handled


# --- polling --------------------------------------------------------------------------------------
def _accept_page(inbox: Inbox, events: Iterable[dict[str, object]]) -> int:
    return _accept_oldest_first(inbox, reversed(list(events)))  # a page is newest first


def _accept_oldest_first(inbox: Inbox, events: Iterable[Mapping[str, object]]) -> int:
    new = 0
    for event in events:
        event_id = event.get("id")
        if not isinstance(event_id, str) or not event_id:
            log.warning("polled event without an id skipped")
            continue
        body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
        if inbox.accept(event_id, {}, body, "poll"):
            new += 1
    return new


def poll_events(
    fetch_page: Callable[[str | None], Page], inbox: Inbox, *, max_pages: int | None = None
) -> int:
    """Walk the provider's event list (newest first, `fetch_page(cursor)`, None = the first
    page) and accept every event not already in the inbox; returns how many were new."""
    new = 0
    cursor: str | None = None
    pages = 0
    while True:
        events, cursor = fetch_page(cursor)
        new += _accept_page(inbox, events)
        pages += 1
        if cursor is None or (max_pages is not None and pages >= max_pages):
            return new


async def apoll_events(
    fetch_page: Callable[[str | None], Awaitable[Page]],
    inbox: Inbox,
    *,
    max_pages: int | None = None,
) -> int:
    """`poll_events` for an async fetch function (an `httpx.AsyncClient` caller)."""
    new = 0
    cursor: str | None = None
    pages = 0
    while True:
        events, cursor = await fetch_page(cursor)
        new += await run_in_threadpool(_accept_page, inbox, events)
        pages += 1
        if cursor is None or (max_pages is not None and pages >= max_pages):
            return new


def _accept_polled(
    inbox: Inbox, events: Sequence[Mapping[str, object]], name: str, after: str | None
) -> int:
    with inbox.transaction():
        new = _accept_oldest_first(inbox, events)
        if after is not None and after != inbox.cursor(name):
            inbox.set_cursor(name, after)
    return new


async def apoll_since(
    list_events: Callable[[str | None], Awaitable[tuple[Sequence[ProviderEvent], str | None]]],
    inbox: Inbox,
    *,
    name: str = POLL_CURSOR,
) -> int:
    """One poll: the events after the inbox's cursor `name` (`list_events(cursor)` returns
    them oldest first with the cursor to pass next time, as `ProviderAdapter.list_events`
    does) into the inbox, and the cursor moved past them in the same transaction. Returns
    how many events were new (a webhook may have brought the others already)."""
    cursor = await run_in_threadpool(inbox.cursor, name)
    events, after = await list_events(cursor)
    bodies = [event.raw for event in events]
    return await run_in_threadpool(_accept_polled, inbox, bodies, name, after)
