"""The live request journal as Server-Sent Events.

The journal tells `Live.publish` of every entry (one call per /v1 request; with no browser
watching, an empty loop). Each open stream has a bounded queue: a browser that cannot keep up
loses entries (counted, and said in the stream as a `dropped` event) rather than growing the
server's memory. Entries go out in batches, one SSE message (a JSON array) per `BATCH_S` at
most, so a busy server writes a few messages a second to each browser, not one per request. A
stream ends after `STREAM_S` (the browser's EventSource reconnects by itself and resumes after
the last `id` it saw), so no connection is held forever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson

from simulator.faults.journal import Entry, Journal, RequestFilter

QUEUE_SIZE = 5000
BATCH_S = 0.1
KEEPALIVE_S = 15.0
STREAM_S = 300.0
BACKFILL = 100  # entries sent when a stream opens
RETRY_MS = 1000


@dataclass(frozen=True, slots=True)
class LiveFilter:
    operation: str | None = None
    status: str | None = None  # "503", or a class: "5xx"
    faulted: bool = False

    def holds(self, e: Entry) -> bool:
        if self.operation and e.operation != self.operation:
            return False
        if self.faulted and e.fault is None:
            return False
        if not self.status:
            return True
        if e.status is None:
            return self.status in ("closed", "none")
        if self.status.endswith("xx"):
            return str(e.status)[0] == self.status[0]
        return str(e.status) == self.status


class _Queue(asyncio.Queue[Entry]):
    dropped = 0


class Live:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._queues: list[_Queue] = []

    def publish(self, entry: Entry) -> None:
        for queue in self._queues:
            try:
                queue.put_nowait(entry)
            except asyncio.QueueFull:
                queue.dropped += 1

    async def stream(self, flt: LiveFilter, after: int) -> AsyncIterator[bytes]:
        queue = _Queue(QUEUE_SIZE)
        self._queues.append(queue)
        try:
            yield f"retry: {RETRY_MS}\n\n".encode()
            recent = self.journal.find(RequestFilter(), BACKFILL * 10).items
            backfill = [e for e in reversed(recent) if e.seq > after and flt.holds(e)]
            if backfill:
                yield _message(backfill[-BACKFILL:])
            if recent:  # what the backfill covered is not sent again from the queue
                after = max(after, recent[0].seq)
            ends = time.monotonic() + STREAM_S
            while (left := ends - time.monotonic()) > 0:
                try:
                    first = await asyncio.wait_for(queue.get(), min(KEEPALIVE_S, left))
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                await asyncio.sleep(BATCH_S)  # let a burst gather into one message
                batch = [first]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                if queue.dropped:
                    yield b"event: dropped\ndata: %d\n\n" % queue.dropped
                    queue.dropped = 0
                keep = [e for e in batch if e.seq > after and flt.holds(e)]
                if keep:
                    yield _message(keep)
        finally:
            self._queues.remove(queue)


def _message(entries: list[Entry]) -> bytes:
    """One SSE message: the entries as a JSON array, with the last one's seq as its id."""
    # orjson writes the dataclasses itself (as `Entry.public` reads, `at` in RFC 3339 with Z),
    # several times faster than building the dicts first.
    data = orjson.dumps(entries, option=orjson.OPT_UTC_Z)
    return b"id: %d\ndata: %s\n\n" % (entries[-1].seq, data)
