"""The live request journal as Server-Sent Events.

The journal tells `Live.publish` of every entry (one call per /v1 request; with no browser
watching, an empty loop). Each open stream has a bounded queue: a browser that cannot keep up
loses entries (counted, and said in the stream) rather than growing the server's memory. A
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

QUEUE_SIZE = 1000
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


class Live:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._queues: list[asyncio.Queue[Entry]] = []
        self.dropped = 0

    def publish(self, entry: Entry) -> None:
        for queue in self._queues:
            try:
                queue.put_nowait(entry)
            except asyncio.QueueFull:
                self.dropped += 1

    async def stream(self, flt: LiveFilter, after: int) -> AsyncIterator[bytes]:
        queue: asyncio.Queue[Entry] = asyncio.Queue(QUEUE_SIZE)
        self._queues.append(queue)
        try:
            yield f"retry: {RETRY_MS}\n\n".encode()
            recent = self.journal.find(RequestFilter(), BACKFILL * 10)
            backfill = [e for e in reversed(recent) if e.seq > after and flt.holds(e)]
            for entry in backfill[-BACKFILL:]:
                yield _event(entry)
            ends = time.monotonic() + STREAM_S
            while (left := ends - time.monotonic()) > 0:
                try:
                    entry = await asyncio.wait_for(queue.get(), min(KEEPALIVE_S, left))
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if entry.seq > after and flt.holds(entry):
                    yield _event(entry)
        finally:
            self._queues.remove(queue)


def _event(entry: Entry) -> bytes:
    return b"id: %d\ndata: %s\n\n" % (entry.seq, orjson.dumps(entry.public()))
