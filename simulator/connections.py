"""Bounds on connections and requests, at the HTTP protocol (what uvicorn does not bound).

uvicorn (0.55) times out only idle keep-alive connections (`timeout_keep_alive`, between
requests): a new connection that never sends a byte, a request head sent a byte at a time, or
a body that never completes is held forever, and enough of them fill the file table until
nothing is answered, health included. Its `limit_concurrency` counts idle connections too and
answers plain text. So the protocol class `sandbank serve` hands uvicorn (`protocol_class`)
adds, per worker process:

- a header deadline (`header_timeout_s`) from the connection's start, or from the first byte
  of a later request on it: a connection that sent nothing is closed silently (a client's pool
  may open one early), one that sent part of a head gets a 408 problem and is closed;
- a body deadline (`body_timeout_s`) from the end of the head to the end of the body: 408,
  closed;
- a connection bound (`max_connections`, default: the open-files limit less a margin): past
  it, the oldest connection without a request in progress is closed, so a new client (a
  health check) is always served and the process never runs out of files;
- a limit on requests in progress (`max_in_flight`): past it, a request is answered at once
  with a 503 problem and `Retry-After: 1` instead of queueing.

`configure()` sets the limits in each process before it serves (workers get theirs from the
settings in their environment). Keep-alive bounds are uvicorn's own `timeout_keep_alive`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from simulator.api import problems
from simulator.faults.sockets import FaultableH11, FaultableHttpTools
from simulator.settings import Settings

FILE_MARGIN = 256  # files kept for the database, logs, the dispatcher's sockets


@dataclass(frozen=True)
class Limits:
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 10_000
    max_in_flight: int = 1024


LIMITS = Limits()
# Connections without a request in progress, oldest first: the ones closed past the bound.
_IDLE: OrderedDict[Any, None] = OrderedDict()
_ids = itertools.count(1)


def configure(settings: Settings, open_files: int) -> Limits:
    """Set this process's limits from the settings (`open_files`: the soft limit in force)."""
    global LIMITS  # noqa: PLW0603 - one server per process; set before it serves
    cap = settings.max_connections or max(64, open_files - FILE_MARGIN)
    if open_files:
        cap = min(cap, max(64, open_files - FILE_MARGIN))
    LIMITS = Limits(
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        max_connections=cap,
        max_in_flight=settings.max_in_flight,
    )
    return LIMITS


def _problem(status: int, reason: bytes, code: str, title: str, detail: str) -> bytes:
    body = problems.body(
        status=status,
        code=code,
        title=title,
        detail=detail,
        request_id=f"req_conn{next(_ids):010d}",
    )
    head = (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/problem+json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n" % (status, reason, len(body))
    )
    if status == 503:
        head += b"retry-after: 1\r\n"
    return head + b"\r\n" + body


async def _overloaded(scope: Any, receive: Any, send: Any) -> None:
    """The answer past `max_in_flight`: a 503 problem, before any body is read."""
    raw = _problem(
        503,
        b"Service Unavailable",
        "overloaded",
        "Service unavailable",
        f"more than {LIMITS.max_in_flight} requests in progress in this worker; retry "
        "after Retry-After seconds",
    )
    head, body = raw.split(b"\r\n\r\n", 1)
    headers = [tuple(line.split(b": ", 1)) for line in head.split(b"\r\n")[1:] if b": " in line]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class GuardedHttpTools(FaultableHttpTools):
    """uvicorn's httptools protocol (with the fault layer's registration) and the bounds of
    the module docstring."""

    _sb_timer: asyncio.TimerHandle | None = None
    _sb_started = False  # bytes of the current request head were received

    def _sb_arm(self, seconds: float, callback: Any) -> None:
        self._sb_disarm()
        self._sb_timer = self.loop.call_later(seconds, callback)

    def _sb_disarm(self) -> None:
        if self._sb_timer is not None:
            self._sb_timer.cancel()
            self._sb_timer = None

    def _sb_timeout(self, what: str) -> None:
        self._sb_timer = None
        if self.transport.is_closing():
            return
        if self._sb_started and (self.cycle is None or not self.cycle.response_started):
            seconds = LIMITS.header_timeout_s if what == "head" else LIMITS.body_timeout_s
            self.transport.write(
                _problem(
                    408,
                    b"Request Timeout",
                    "request_timeout",
                    "Request timeout",
                    f"the request {what} did not arrive within {seconds:g} s",
                )
            )
        self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        _IDLE[self] = None
        self._sb_arm(LIMITS.header_timeout_s, lambda: self._sb_timeout("head"))
        if len(self.connections) > LIMITS.max_connections:
            for oldest in _IDLE:
                if oldest is not self:
                    oldest.transport.close()
                    _IDLE.pop(oldest)
                    break

    def connection_lost(self, exc: Exception | None) -> None:
        self._sb_disarm()
        _IDLE.pop(self, None)
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._sb_started = True
        if self._sb_timer is None:  # a later request on a kept-alive connection
            self._sb_arm(LIMITS.header_timeout_s, lambda: self._sb_timeout("head"))

    def on_headers_complete(self) -> None:
        _IDLE.pop(self, None)
        self._sb_arm(LIMITS.body_timeout_s, lambda: self._sb_timeout("body"))
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._sb_disarm()
        self._sb_started = False
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            _IDLE[self] = None  # idle again: last in line to be closed past the bound

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        if len(self.tasks) >= LIMITS.max_in_flight:
            app = _overloaded
        super()._start_asgi_task(cycle, app)


def protocol_class() -> type[asyncio.Protocol]:
    """The guarded httptools protocol where httptools is installed (uvicorn[standard]); else
    h11 with the fault layer only (unguarded: uvicorn's h11 has no hooks for the bounds)."""
    try:
        import httptools  # noqa: F401, PLC0415 - only probing for it
    except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
        return FaultableH11
    return GuardedHttpTools
