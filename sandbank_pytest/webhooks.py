"""A webhook receiver on 127.0.0.1 for one test: it verifies each delivery's Standard Webhooks
signature (with the `standardwebhooks` package, as your receiver should), answers 204, and
keeps the events; forged or stale deliveries are answered 400 and kept apart in `rejected`.

A delivery is only as prompt as the simulator's dispatcher, so `wait_for` asks the control
plane to flush the account's due deliveries and polls, bounded in time.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from sandbank_pytest.account import SandbankAccount, check

MAX_BODY = 2 * 1024 * 1024


class WebhookReceiver:
    """Events received (`events`, in arrival order, duplicates included) and refused
    (`rejected`: (headers, body, reason)) by a local endpoint registered on `account`."""

    def __init__(self, account: SandbankAccount, enabled_events: tuple[str, ...] = ("*",)) -> None:
        self.account = account
        self.events: list[dict[str, Any]] = []
        self.rejected: list[tuple[dict[str, str], bytes, str]] = []
        self._lock = threading.Lock()
        self._verifier: Webhook | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/webhooks"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        try:
            self.endpoint: dict[str, Any] = check(
                account.client.post(
                    "/v1/webhook_endpoints",
                    json={"url": self.url, "enabled_events": list(enabled_events)},
                )
            )
        except BaseException:
            self.close()
            raise
        self.secret: str = self.endpoint["secret"]
        self._verifier = Webhook(self.secret)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
                body = self.rfile.read(length)
                status = receiver._receive({k.lower(): v for k, v in self.headers.items()}, body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the test's output is the test's

        return Handler

    def _receive(self, headers: dict[str, str], body: bytes) -> int:
        if self._verifier is None:  # not registered yet: ask the sender to retry
            return 503
        try:
            self._verifier.verify(body, headers)
            event = json.loads(body)
        except (WebhookVerificationError, ValueError) as exc:
            with self._lock:
                self.rejected.append((headers, body, str(exc) or type(exc).__name__))
            return 400
        with self._lock:
            self.events.append(event)
        return 204

    def received(self, event_type: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if event_type is None or e["type"] == event_type]

    def wait_for(
        self, event_type: str | None = None, *, count: int = 1, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """The events of this type (any type if None) once at least `count` arrived; flushes the
        account's due deliveries while it waits. AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.received(event_type)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                types = [e["type"] for e in self.received()]
                raise AssertionError(
                    f"waited {timeout:g}s for {count} {event_type or 'event'}(s), got "
                    f"{len(found)}; received: {types}; rejected: {len(self.rejected)}"
                )
            self.account.flush_webhooks()
            time.sleep(0.02)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
