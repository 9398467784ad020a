"""The fan-out: committed events (the outbox) become deliveries, off the API's transactions.

The API writes an event and nothing else; the dispatcher (and a flush, and every change to an
endpoint) turns the events after a durable cursor into one delivery per endpoint that wants
each, in one write transaction that also moves the cursor (`meta` row `webhook_fanout_seq`,
an `events.seq`). Under SQLite's write lock (BEGIN IMMEDIATE) the cursor is read, the
deliveries inserted and the cursor moved together, so two dispatchers (or a dispatcher and a
flush) never fan out one event twice, and a crash loses nothing: the events after the cursor
are fanned out by whoever comes next. A delivery's id is derived from its event and endpoint,
and a second insert of that id is ignored: even a cursor set back could not make a duplicate.

What makes it the same as fanning out in the event's own transaction:
- **Which endpoints.** Every change to an account's endpoints (create, update, delete, quirks,
  disabling after failures) fans out whatever is pending first, in its own transaction. So
  the endpoints a pending event is fanned out against are the endpoints as they were when it
  was committed: one created after an event never gets it; one disabled or deleted after it
  got it (and it fails as it always did).
- **Determinism.** Nothing here draws from the account's RNG, so when the fan-out runs changes
  nothing. A delivery id is a keyed hash of (account, event id, endpoint id), the event id
  being a draw of the account's seeded RNG; the drop, delay and reorder dice are keyed by the
  delivery id; the retry jitter and the per-attempt quirks already were (and the attempt
  number). Its times are the event's on the account clock. Events are fanned out in `seq`
  order, so `drop.first` counts the same deliveries.
- **Reset.** Wiping an account deletes its events and deliveries; `seq` is AUTOINCREMENT and
  never reused, so the cursor neither skips nor repeats anything of the account's new life.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from simulator.domain import webhooks as wh
from simulator.rng import SeededRng

log = logging.getLogger("sandbank.webhooks")
BATCH = 2000  # events per read; a transaction fans out as many batches as it must
MAX_BATCHES = 10_000  # bound on one transaction's batches (20 million events)
# Deliveries per batch at most (at least one event's): an event to many endpoints, or a burst
# of events, is fanned out in bounded steps, each a short write (issue #17).
MAX_DELIVERIES = 500


class FanoutTx(Protocol):
    """What the fan-out needs of a transaction (`simulator.store.webhooks`)."""

    def fanout_cursor(self) -> int: ...
    def set_fanout_cursor(self, seq: int) -> None: ...
    def last_event_seq(self) -> int: ...
    def events_to_fan_out(
        self, after: int, until: int, limit: int
    ) -> list[tuple[int, str, str, str, str]]: ...
    def webhook_endpoint_texts(self, account_id: str) -> list[str]: ...
    def save_webhook_endpoint(self, account_id: str, endpoint: wh.WebhookEndpoint) -> None: ...
    def insert_fanned_out(self, rows: list[tuple[str, wh.Delivery]]) -> None: ...


@dataclass
class Plan:
    """One batch of the fan-out, worked out from what was read (`plan`), to be written by
    `apply` under the write lock if nothing it depends on changed meanwhile."""

    cursor: int  # the cursor it starts from
    until: int  # the cursor once it is written
    more: bool  # events after `until` are left
    endpoints: dict[str, list[str]]  # account -> its endpoints' stored text, as read
    deliveries: list[tuple[str, wh.Delivery]] = field(default_factory=list)
    changed: dict[tuple[str, str], wh.WebhookEndpoint] = field(default_factory=dict)


def delivery_id(account_id: str, event_id: str, endpoint_id: str) -> str:
    """A `whd_` id that is a function of the delivery alone: the same seed and requests give
    the same ids however late the fan-out runs (event ids are draws of the seeded RNG)."""
    return SeededRng(f"webhook-delivery\x00{account_id}\x00{event_id}\x00{endpoint_id}", 0).id(
        "whd"
    )


def schedule_quirks(endpoint: wh.WebhookEndpoint, d: wh.Delivery) -> bool:
    """drop, delay and reorder act on the first attempt's time; drawn per delivery (keyed by
    its id). True when the endpoint changed (its `dropped` count), to be saved."""
    q = endpoint.quirks
    if q.drop is None and q.delay is None and q.reorder is None:
        return False
    dice = SeededRng(f"webhook-schedule\x00{d.id}", 0)
    if q.drop is not None:
        first = q.drop.first is not None and endpoint.dropped < q.drop.first
        if first or (q.drop.probability is not None and dice.random() < q.drop.probability):
            endpoint.dropped += 1
            d.apply("drop")
            d.next_attempt_at = None
            return True
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
    return False


def fan_out(tx: FanoutTx, *, after: int = 0) -> int:
    """Fan out every committed event after the cursor (and after `after`: events the caller
    knows need nothing) in this write transaction, moving the cursor; the deliveries made."""
    made = 0
    for _ in range(MAX_BATCHES):
        batch = plan(tx, after=after, limit=BATCH)
        if batch is None:
            break
        write(tx, batch)
        made += len(batch.deliveries)
        if not batch.more:
            break
    return made


def plan(tx: FanoutTx, *, after: int, limit: int) -> Plan | None:
    """The next batch of at most `limit` events (reads only); None when none is left. Done
    without the write lock by the dispatcher, which then `apply`s it."""
    cursor = tx.fanout_cursor()
    top = tx.last_event_seq()
    if top <= cursor:
        return None
    start = max(cursor, after)
    rows = tx.events_to_fan_out(start, top, limit) if top > start else []
    more = len(rows) == limit
    batch = Plan(cursor, rows[-1][0] if more else top, more, {})
    parsed: dict[str, list[wh.WebhookEndpoint]] = {}
    for n, (_seq, account_id, event_id, event_type, created) in enumerate(rows):
        if len(batch.deliveries) >= MAX_DELIVERIES and n:  # the rest in the next batch
            batch.until, batch.more = rows[n - 1][0], True
            break
        endpoints = parsed.get(account_id)
        if endpoints is None:
            texts = batch.endpoints[account_id] = tx.webhook_endpoint_texts(account_id)
            endpoints = parsed[account_id] = [
                wh.WebhookEndpoint.model_validate_json(t) for t in texts
            ]
        try:
            at = datetime.fromisoformat(created)
        except (TypeError, ValueError):  # never let one bad row stop the fan-out
            log.exception("event %s has no readable created_at; not fanned out", event_id)
            continue
        for endpoint in endpoints:
            if not endpoint.wants(event_type):
                continue
            d = wh.Delivery(
                id=delivery_id(account_id, event_id, endpoint.id),
                endpoint_id=endpoint.id,
                event_id=event_id,
                event_type=event_type,
                next_attempt_at=at,
                created_at=at,
            )
            if schedule_quirks(endpoint, d):
                batch.changed[(account_id, endpoint.id)] = endpoint
            batch.deliveries.append((account_id, d))
    return batch


def apply(tx: FanoutTx, batch: Plan) -> bool:
    """Write a batch planned from earlier reads, in this write transaction, if it still holds:
    the cursor has not moved (nobody fanned out meanwhile, and so no endpoint was changed:
    changes fan out first) and its accounts' endpoints read the same (no reset, rotation or
    record meanwhile). False (nothing written) when it does not hold."""
    if tx.fanout_cursor() != batch.cursor:
        return False
    for account_id, texts in batch.endpoints.items():
        if tx.webhook_endpoint_texts(account_id) != texts:
            return False
    write(tx, batch)
    return True


def write(tx: FanoutTx, batch: Plan) -> None:
    if batch.deliveries:
        tx.insert_fanned_out(batch.deliveries)
    for (account_id, _), endpoint in batch.changed.items():
        tx.save_webhook_endpoint(account_id, endpoint)
    tx.set_fanout_cursor(batch.until)
