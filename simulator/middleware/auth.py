"""Who is calling: an account (bearer API key) on `/v1` and the gateway and virtual-card
personalities' `/gateway/v1`, `/vcards/v1`, the admin (bearer token) on
`/_sandbox`. Health, the hosted pages and the published documents are public."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from simulator.api import problems
from simulator.asgi import ACCOUNT_KEY, REQUEST_ID_KEY, ASGIApp, Receive, Scope, Send

PUBLIC_SANDBOX = (
    "/_sandbox/health",
    "/_sandbox/openapi.yaml",
    "/_sandbox/openapi.json",
    "/_sandbox/docs",
)
NO_CREDENTIALS = "send your API key as 'Authorization: Bearer sk_test_...'"
NO_SCHEME = "put the scheme before the key: 'Authorization: Bearer sk_test_...'"
UNKNOWN_KEY = "this API key is not known here (a reset server or another server's key?)"
ADMIN_ON_V1 = (
    "that is the admin token: /v1 takes an account's API key (POST /_sandbox/accounts gives one)"
)
# The console signs its users in itself (session cookie, CSRF): see simulator/console.
CONSOLE = "/_sandbox/console"
# The APIs an account's key opens.
ACCOUNT_PREFIXES = ("/v1", "/gateway/v1", "/vcards/v1", "/invoicing/v1")


def bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


def _has_authorization(scope: Scope) -> bool:
    return any(name == b"authorization" and value.strip() for name, value in scope["headers"])


class AuthMiddleware:
    def __init__(
        self, app: ASGIApp, *, account_for_key: Callable[[str], str | None], admin_token: str
    ) -> None:
        self.app = app
        self.account_for_key = account_for_key
        self.admin_token = admin_token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if any(path == p or path.startswith(p + "/") for p in ACCOUNT_PREFIXES):
            token = bearer(scope)
            account = self.account_for_key(token) if token else None
            if account is None:
                if token is None:
                    why = NO_SCHEME if _has_authorization(scope) else NO_CREDENTIALS
                elif hmac.compare_digest(token.encode(), self.admin_token):
                    why = ADMIN_ON_V1
                else:
                    why = UNKNOWN_KEY
                await self._deny(scope, receive, send, why)
                return
            scope[ACCOUNT_KEY] = account
        elif (
            path.startswith("/_sandbox")
            and path not in PUBLIC_SANDBOX
            and path != CONSOLE
            and not path.startswith(CONSOLE + "/")
        ):
            token = bearer(scope)
            if token is None or not hmac.compare_digest(token.encode(), self.admin_token):
                await self._deny(
                    scope,
                    receive,
                    send,
                    "the control plane needs the admin token as 'Authorization: Bearer <token>'",
                )
                return
        await self.app(scope, receive, send)

    @staticmethod
    async def _deny(scope: Scope, receive: Receive, send: Send, detail: str) -> None:
        rid = str(scope.get(REQUEST_ID_KEY, ""))
        response = problems.from_status(401, rid, detail, {"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)
