"""The ASGI vocabulary of the pipeline, named once: the app/scope/receive/send types, the keys
the middleware leave in the scope for what runs after them, and the body reader they share.

The middleware import this module and nothing of `simulator.api` beyond problem rendering, so
that the pipeline does not depend on the services the endpoints call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from simulator.domain.errors import BadRequest, PayloadTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# What one layer leaves in the scope for the later ones.
BODY_KEY = "sandbank.body"  # the whole request body, read once (`read_body`)
IDEMPOTENCY_KEY = "sandbank.idempotency"  # an `IdempotentRequest` (idempotency middleware)
ACCOUNT_KEY = "sandbank.account"  # the caller's account id (auth middleware)
REQUEST_ID_KEY = "sandbank.request_id"  # the `Request-Id` (request-id middleware)
# The request journal (fault middleware): a function (tx, status, replayed) that stores the
# request's entry in the operation's own transaction, and whether it was stored.
JOURNAL_KEY = "sandbank.journal"
JOURNALED_KEY = "sandbank.journaled"

MAX_BODY = 1024 * 1024


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    key: str
    fingerprint: str


async def read_body(scope: Scope, receive: Receive) -> bytes:
    """The whole body, once; 413 past MAX_BODY (checked on Content-Length and while reading)."""
    cached = scope.get(BODY_KEY)
    if cached is not None:
        return bytes(cached)
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > MAX_BODY:
            raise PayloadTooLarge(f"bodies are limited to {MAX_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            # The client left before its body was complete: never run an operation on a part.
            raise BadRequest("the client disconnected before the request body was complete")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise PayloadTooLarge(f"bodies are limited to {MAX_BODY} bytes")
        chunks.append(chunk)
        more = message.get("more_body", False)
    data = b"".join(chunks)
    scope[BODY_KEY] = data
    return data
