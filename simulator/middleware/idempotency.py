"""`Idempotency-Key` on POST and PATCH: validate the key, fingerprint the request, and refuse a
concurrent duplicate (409) while the first is still in flight in this process. The replay and
the saving of results happen in `simulator.api.runtime.run`, inside the operation's own
transaction, so a committed change and its saved response can never disagree.
"""

from __future__ import annotations

import hashlib
import re

import orjson

from simulator.api import problems
from simulator.asgi import (
    ACCOUNT_KEY,
    IDEMPOTENCY_KEY,
    REQUEST_ID_KEY,
    ASGIApp,
    IdempotentRequest,
    Receive,
    Scope,
    Send,
    read_body,
)
from simulator.domain.errors import IdempotencyKeyInUse, SandbankError, ValidationFailed

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def fingerprint(method: str, path: str, body: bytes) -> str:
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS) if body else b""
    except orjson.JSONDecodeError:
        canonical = body
    return hashlib.sha256(b"%s %s\n%s" % (method.encode(), path.encode(), canonical)).hexdigest()


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.in_flight: set[tuple[str, str]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in ("POST", "PATCH")
            or (ACCOUNT_KEY not in scope)
        ):
            await self.app(scope, receive, send)
            return
        key = None
        for name, value in scope["headers"]:
            if name == b"idempotency-key":
                key = value.decode("latin-1")
                break
        if key is None:
            await self.app(scope, receive, send)
            return
        rid = str(scope.get(REQUEST_ID_KEY, ""))
        try:
            if not _KEY.match(key):
                raise ValidationFailed(
                    [
                        {
                            "path": "header.Idempotency-Key",
                            "type": "idempotency_key",
                            "message": "1 to 255 visible ASCII characters",
                        }
                    ]
                )
            body = await read_body(scope, receive)
            slot = (scope[ACCOUNT_KEY], key)
            if slot in self.in_flight:
                raise IdempotencyKeyInUse(
                    "a request with this Idempotency-Key is still being processed; retry later"
                )
        except SandbankError as err:
            await problems.from_error(err, rid)(scope, receive, send)
            return
        scope[IDEMPOTENCY_KEY] = IdempotentRequest(
            key, fingerprint(scope["method"], scope["path"], body)
        )
        self.in_flight.add(slot)
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight.discard(slot)
