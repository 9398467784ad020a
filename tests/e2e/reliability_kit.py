"""Helpers of the reliability suites (tests/e2e/test_reliability_*.py): a webhook sink on
127.0.0.1 and health polling (the process tree and `wait_for` live in bench/processes.py, shared
with bench/reliability.py)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


class Sink:
    """Accepts every webhook (200) in a background thread and keeps the event types seen (and
    the paths they were posted to)."""

    def __init__(self) -> None:
        self.types: list[str] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with sink.lock:
                    sink.types.append(json.loads(body)["type"])
                    sink.paths.append(self.path)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def count(self, event_type: str) -> int:
        with self.lock:
            return self.types.count(event_type)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def health(base_url: str) -> tuple[int, dict[str, Any]] | None:
    """(status code, body) of GET /_sandbox/health, or None when nothing answers."""
    try:
        r = httpx.get(f"{base_url}/_sandbox/health", timeout=2.0)
    except httpx.TransportError:
        return None
    return r.status_code, r.json()
