"""Structured JSON logs with one correlation id per unit of work.

The correlation id lives in a `contextvars.ContextVar`, so it follows a request through every
`await` (and into tasks it starts) without being passed around:

- `CorrelationMiddleware` (pure ASGI, outermost in the order-to-cash app) takes the caller's
  `X-Correlation-Id` when it is usable (1-200 printable ASCII characters, no spaces) or makes a
  new one from the id source the app factory injects, binds it for the request, echoes it on
  the response, and writes ONE access line per request when the response is done.
- `integration.client.ResilientClient` sends the bound id as `X-Correlation-Id` on every
  provider attempt (the simulator's access log records it as `correlation_id`) and writes ONE
  line per attempt (family, method, path, intent, attempt, verdict, status, latency_ms,
  idempotency_key).
- Background work binds its own id with `bound(...)`: the event worker uses the provider's
  event id, the resumer the hold's intent id (what the client already sent when unbound).

Lines are JSON objects in the log record's message (the simulator's access log does the
same), so any handler can ship them; `JsonFormatter` renders every other record of the
process as JSON too, with the bound correlation id, for `sandbank integration serve`.

Loggers: `sandbank.integration.access` (requests), `sandbank.integration.provider` (attempts),
`sandbank.integration` (everything else).
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

CORRELATION_HEADER = "X-Correlation-Id"
MAX_CORRELATION_ID = 200

access_log = logging.getLogger("sandbank.integration.access")
provider_log = logging.getLogger("sandbank.integration.provider")

_correlation: ContextVar[str | None] = ContextVar("sandbank_correlation_id", default=None)


def correlation_id() -> str | None:
    """The correlation id bound to the current context, if any."""
    return _correlation.get()


@contextlib.contextmanager
def bound(cid: str | None) -> Iterator[str | None]:
    """Bind `cid` for the block (None: leave whatever is bound)."""
    if cid is None:
        yield _correlation.get()
        return
    token = _correlation.set(cid)
    try:
        yield cid
    finally:
        _correlation.reset(token)


def usable(value: str | None) -> bool:
    """A caller's correlation id is kept only if it is short printable ASCII without spaces
    (it goes into headers and log lines verbatim)."""
    return (
        value is not None
        and 0 < len(value) <= MAX_CORRELATION_ID
        and all(33 <= ord(ch) <= 126 for ch in value)
    )


def random_ids() -> Callable[[], str]:
    """The production id source (`cor_` + 24 hex digits from the OS); tests inject their own."""
    return lambda: "cor_" + secrets.token_hex(12)


def emit(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """One JSON line: `event`, the bound `correlation_id`, then `fields` (None values kept)."""
    if not logger.isEnabledFor(level):
        return
    line: dict[str, Any] = {"event": event, "correlation_id": _correlation.get()}
    line.update(fields)
    logger.log(level, json.dumps(line, separators=(",", ":"), default=str))


class JsonFormatter(logging.Formatter):
    """Every record as one JSON line. A message that is already a JSON object (the access and
    provider lines) is merged in; any other message becomes `message`."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        message = record.getMessage()
        parsed: Any = None
        if message.startswith("{"):
            with contextlib.suppress(ValueError):
                parsed = json.loads(message)
        if isinstance(parsed, dict):
            out.update(parsed)
        else:
            out["message"] = message
            out["correlation_id"] = _correlation.get()
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, separators=(",", ":"), default=str)


ASGIApp = Callable[..., Any]


class CorrelationMiddleware:
    """Bind a correlation id per HTTP request, echo it, and log one access line."""

    def __init__(self, app: ASGIApp, new_id: Callable[[], str]) -> None:
        self.app = app
        self.new_id = new_id

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered: str | None = None
        for name, value in scope.get("headers", []):
            if name == b"x-correlation-id":
                offered = value.decode("latin-1")
                break
        cid = offered if usable(offered) else self.new_id()
        assert cid is not None
        header = (b"x-correlation-id", cid.encode("latin-1"))
        status = 0
        started = time.perf_counter()

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        with bound(cid):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                emit(
                    access_log,
                    "request",
                    method=scope.get("method"),
                    path=scope.get("path"),
                    status=status,
                    latency_ms=round((time.perf_counter() - started) * 1000, 3),
                    correlation_from="caller" if cid == offered else "generated",
                )


def configure(level: int = logging.INFO) -> None:
    """JSON lines on stderr for the whole process (`sandbank integration serve`)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request's full URL at INFO: the provider_call lines already say each
    # attempt, and a URL may carry credentials (some providers' travel in the query string).
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))


__all__ = [
    "CORRELATION_HEADER",
    "CorrelationMiddleware",
    "JsonFormatter",
    "access_log",
    "bound",
    "configure",
    "correlation_id",
    "emit",
    "provider_log",
    "random_ids",
    "usable",
]
