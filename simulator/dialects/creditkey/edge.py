"""The Credit Key edge of the pipeline: everything about a `/ecomm/*` request that is Credit Key's
convention rather than Sandbank's, so the layers after it and the service see a native request.

- Prefixes: each configured prefix (default `/app/ecomm` and `/ecomm`, so a base URL with or
  without `/app` works) is mapped onto the one canonical path `/app/ecomm/<action>` that the
  routes, fault rules and the journal know.
- CORS: browsers calling with creditkey-js (`mode: cors`, JSON content type) preflight; the
  preflight is answered here, without credentials, and every answer allows any origin.
- Credentials: `public_key` and `shared_secret` from the JSON body (PHP SDK) or the query
  string (Odoo, the docs); the public key alone for the calls creditkey-js makes. The account
  they name goes into the scope, as the bearer key does on `/v1`; a bad pair is a 401. Neither
  reaches a log or the journal: those record the path, which carries no query string.
- Errors: whatever a later layer answers as `application/problem+json` (validation, not found,
  a state conflict, a fault's 503) leaves as Credit Key's error body, with the statuses its SDKs
  handle: 400, 401 and 404 (a 409, 413, 415 or 422 becomes a 400; 405, 429 and 5xx stay).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import orjson

from simulator.asgi import (
    ACCOUNT_KEY,
    REQUEST_ID_KEY,
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    read_body,
)
from simulator.dialects.creditkey.api import BODY, PREFIX, PUBLIC_KEY_ONLY
from simulator.domain.errors import SandbankError

DEFAULT_PREFIXES = ("/app/ecomm", "/ecomm")
PROBLEM = b"application/problem+json"
CORS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-expose-headers", b"Request-Id"),
]
PREFLIGHT = [
    *CORS,
    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
    (b"access-control-allow-headers", b"Accept, Content-Type, Idempotency-Key, X-Correlation-Id"),
    (b"access-control-max-age", b"600"),
]
REASONS = {
    400: "invalid request",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    429: "too many requests",
}
# Statuses Credit Key's clients know, for what Sandbank answers otherwise.
STATUS = {409: 400, 413: 400, 415: 400, 422: 400}


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def parse_json(raw: bytes) -> Any:
    """JSON with every number that has a fraction or exponent as a Decimal (never a float)."""
    return json.loads(raw, parse_float=Decimal, parse_constant=_reject_constant)


class CreditKeyEdge:
    def __init__(
        self,
        app: ASGIApp,
        *,
        account_for: Callable[[str, str | None], str | None],
        prefixes: tuple[str, ...] = DEFAULT_PREFIXES,
    ) -> None:
        """`account_for(public_key, shared_secret or None)`: the account id, or None."""
        self.app = app
        self.account_for = account_for
        self.prefixes = tuple(sorted((p.rstrip("/") for p in prefixes), key=len, reverse=True))

    def _action(self, path: str) -> str | None:
        for prefix in self.prefixes:
            if path.startswith(prefix + "/"):
                return path[len(prefix) + 1 :]
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        action = self._action(scope["path"])
        if action is None:
            if scope["path"].startswith(PREFIX + "/"):  # the canonical path, not configured
                await self._error(scope, send, 404, "not_found", "no such endpoint")
                return
            await self.app(scope, receive, send)
            return
        scope["path"] = f"{PREFIX}/{action}"
        scope["raw_path"] = scope["path"].encode()
        if scope["method"] == "OPTIONS":
            await _send(send, 204, PREFLIGHT, b"")
            return
        try:
            public_key, secret = await self._credentials(scope, receive)
        except SandbankError as err:
            await self._error(scope, send, err.status, err.code, err.detail)
            return
        optional = f"creditkey.{action}" in PUBLIC_KEY_ONLY and secret is None
        account = (
            self.account_for(public_key, None if optional else secret or "") if public_key else None
        )
        if account is None:
            await self._error(
                scope,
                send,
                401,
                "unauthorized",
                "the public_key and/or shared_secret given are invalid (send both, in the JSON "
                "body or the query string)",
            )
            return
        scope[ACCOUNT_KEY] = account
        await self.app(scope, receive, _Reshaper(scope, send).send)

    async def _credentials(self, scope: Scope, receive: Receive) -> tuple[str, str | None]:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        found: dict[str, str] = {
            k: query[k][0] for k in ("public_key", "shared_secret") if k in query
        }
        if scope["method"] == "POST":
            raw = await read_body(scope, receive)
            data: Any = {}
            if raw.strip():
                try:
                    data = parse_json(raw)
                except ValueError:
                    raise _Bad("the body is not valid JSON") from None
            if not isinstance(data, dict):
                raise _Bad("the body must be a JSON object")
            scope[BODY] = data
            for key in ("public_key", "shared_secret"):
                value = data.get(key)
                if isinstance(value, str):
                    found[key] = value  # the body's (PHP SDK) over the query's
        return found.get("public_key", ""), found.get("shared_secret")

    @staticmethod
    async def _error(scope: Scope, send: Send, status: int, code: str, detail: str) -> None:
        rid = str(scope.get(REQUEST_ID_KEY, ""))
        status = STATUS.get(status, status)
        await _send(send, status, CORS, error_body(status, code, detail, rid))


class _Bad(SandbankError):
    code, status, title = "malformed_json", 400, "Malformed JSON"


def error_body(
    status: int, code: str, detail: str, request_id: str, errors: list[Any] | None = None
) -> bytes:
    reason = REASONS.get(status, "internal error" if status >= 500 else "error")
    doc: dict[str, Any] = {
        "error": reason,
        "result": reason,
        "message": detail,
        "code": code,
        "request_id": request_id,
    }
    if errors is not None:
        doc["errors"] = errors
    return orjson.dumps(doc)


class _Reshaper:
    """Passes answers through with CORS headers; a problem+json answer is held back (it is
    small) and rewritten into Credit Key's error body and status."""

    def __init__(self, scope: Scope, send: Send) -> None:
        self.scope = scope
        self.downstream = send
        self.start: Message | None = None
        self.chunks: list[bytes] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            if any(k == b"content-type" and v.startswith(PROBLEM) for k, v in headers):
                self.start = message
                return
            await self.downstream({**message, "headers": [*headers, *CORS]})
            return
        if self.start is None or message["type"] != "http.response.body":
            await self.downstream(message)
            return
        self.chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        await self._rewrite()

    async def _rewrite(self) -> None:
        assert self.start is not None
        status = int(self.start["status"])
        try:
            problem = orjson.loads(b"".join(self.chunks))
        except orjson.JSONDecodeError:
            problem = {}
        problem = problem if isinstance(problem, dict) else {}
        rid = str(problem.get("request_id") or self.scope.get(REQUEST_ID_KEY, ""))
        body = error_body(
            STATUS.get(status, status),
            str(problem.get("code", "error")),
            str(problem.get("detail", "")),
            rid,
            problem.get("errors") if isinstance(problem.get("errors"), list) else None,
        )
        kept = [
            (k, v)
            for k, v in self.start.get("headers", [])
            if k not in (b"content-type", b"content-length")
        ]
        await _send(self.downstream, STATUS.get(status, status), [*kept, *CORS], body)


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *headers,
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
