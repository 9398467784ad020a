"""End to end: `sandbank webhooks check` as a subprocess against receivers over real TCP on
127.0.0.1 — a correct one (verifies with the `standardwebhooks` package, dedupes on
webhook-id, ignores unknown types, refuses big bodies with 413) and deliberately wrong ones.
The correct receiver must get all PASS and exit 0; each wrong one exits 1 with exactly the
rows its mistakes deserve.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from simulator.webhooks.signing import new_secret

SECRET = new_secret(bytes(range(32)))
CASES = [
    "valid",
    "duplicate",
    "bad_signature",
    "stale_timestamp",
    "future_timestamp",
    "missing_headers",
    "reordered_pair",
    "unknown_type",
    "oversized_body",
]
MAX_BODY = 256 * 1024
KNOWN_TYPES = {"order.authorized", "order.captured"}


@dataclass
class Receiver:
    """What a receiver saw; `answer(headers, body) -> status` is its whole behaviour."""

    answer: Callable[[Receiver, dict[str, str], bytes], int]
    processed: list[str] = field(default_factory=list)  # webhook-ids acted upon, in order
    lock: threading.Lock = field(default_factory=threading.Lock)


def correct(r: Receiver, headers: dict[str, str], body: bytes) -> int:
    if len(body) > MAX_BODY:
        return 413
    try:
        event = Webhook(SECRET).verify(body, headers)
    except WebhookVerificationError:
        return 400
    with r.lock:
        if headers["webhook-id"] in r.processed:
            return 200  # a retry: acknowledged, not processed again
        if event["type"] in KNOWN_TYPES:
            r.processed.append(headers["webhook-id"])
    return 202


def trusting(r: Receiver, headers: dict[str, str], body: bytes) -> int:
    """Never verifies: takes forged, replayed and unsigned webhooks."""
    r.processed.append(headers.get("webhook-id", "?"))
    return 200


def strict(r: Receiver, headers: dict[str, str], body: bytes) -> int:
    """Verifies, but refuses retries, unknown types, captures of orders it has not seen,
    and falls over on a big body."""
    if len(body) > MAX_BODY:
        return 500
    try:
        event = Webhook(SECRET).verify(body, headers)
    except WebhookVerificationError:
        return 401
    with r.lock:
        if headers["webhook-id"] in r.processed:
            return 409
        if event["type"] not in KNOWN_TYPES:
            return 400
        if event["type"] == "order.captured" and event["object_id"] not in r.processed:
            return 422
        r.processed += [headers["webhook-id"], event["object_id"]]
    return 200


def five_hundreds(r: Receiver, headers: dict[str, str], body: bytes) -> int:
    """Verifies, but answers refusals with 500 (which asks the sender to retry)."""
    try:
        Webhook(SECRET).verify(body, headers)
    except WebhookVerificationError:
        return 500
    return 200


def _serve(receiver: Receiver) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            status = receiver.answer(
                receiver, {k.lower(): v for k, v in self.headers.items()}, body
            )
            payload = json.dumps({"status": status}).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def receiver() -> Iterator[Callable[..., tuple[str, Receiver]]]:
    servers: list[ThreadingHTTPServer] = []

    def start(answer: Callable[[Receiver, dict[str, str], bytes], int]) -> tuple[str, Receiver]:
        r = Receiver(answer)
        server = _serve(r)
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/webhooks", r

    try:
        yield start
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def check(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "simulator.cli", "webhooks", "check", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def rows(stdout: str) -> dict[str, str]:
    """case -> PASS/FAIL from the printed table."""
    found = re.findall(r"^(\w+)\s.*?\s(PASS|FAIL)\s", stdout, re.M)
    return dict(found)


def failed(stdout: str) -> set[str]:
    return {case for case, result in rows(stdout).items() if result == "FAIL"}


def test_a_correct_receiver_passes_every_case_and_exits_zero(receiver: Callable[..., Any]) -> None:
    url, r = receiver(correct)
    result = check("--url", url, "--secret", SECRET)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(rows(result.stdout)) == CASES
    assert failed(result.stdout) == set()
    assert result.stdout.rstrip().endswith("9 passed, 0 failed")
    # valid + its duplicate share one webhook-id: processed once; then the reordered pair
    assert len(r.processed) == len(set(r.processed)) == 3


def test_a_receiver_that_never_verifies_fails_the_security_cases(
    receiver: Callable[..., Any],
) -> None:
    url, _ = receiver(trusting)
    result = check("--url", url, "--secret", SECRET)
    assert result.returncode == 1, result.stdout + result.stderr
    assert failed(result.stdout) == {
        "bad_signature",
        "stale_timestamp",
        "future_timestamp",
        "missing_headers",
    }
    assert "another secret was accepted" in result.stdout
    assert result.stdout.rstrip().endswith("5 passed, 4 failed")


def test_a_receiver_that_refuses_retries_reordering_and_new_types_fails_those(
    receiver: Callable[..., Any],
) -> None:
    url, _ = receiver(strict)
    result = check("--url", url, "--secret", SECRET)
    assert result.returncode == 1, result.stdout + result.stderr
    assert failed(result.stdout) == {
        "duplicate",
        "reordered_pair",
        "unknown_type",
        "oversized_body",
    }
    line = next(x for x in result.stdout.splitlines() if x.startswith("reordered_pair"))
    assert "captured first: HTTP 422; authorized: HTTP 200" in line


def test_refusing_with_5xx_instead_of_4xx_fails(receiver: Callable[..., Any]) -> None:
    url, _ = receiver(five_hundreds)
    result = check("--url", url, "--secret", SECRET)
    assert result.returncode == 1
    assert failed(result.stdout) == {
        "bad_signature",
        "stale_timestamp",
        "future_timestamp",
        "missing_headers",
    }
    assert "a 5xx tells the sender to retry" in result.stdout


def test_a_receiver_signed_for_another_secret_fails_the_valid_cases(
    receiver: Callable[..., Any],
) -> None:
    url, r = receiver(correct)
    result = check("--url", url, "--secret", new_secret(b"x" * 32))
    assert result.returncode == 1
    assert {"valid", "duplicate", "reordered_pair", "unknown_type"} <= failed(result.stdout)
    assert r.processed == []


def test_an_unreachable_receiver_fails_every_case_with_a_clear_reason() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the check runs: nothing listens
    result = check("--url", f"http://127.0.0.1:{port}/", "--secret", SECRET, "--timeout", "2")
    assert result.returncode == 1
    assert set(rows(result.stdout).values()) == {"FAIL"}
    assert "cannot connect" in result.stdout
    assert result.stdout.rstrip().endswith("0 passed, 9 failed")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "ftp://127.0.0.1/x", "--secret", SECRET], "--url must be an http"),
        (["--url", "127.0.0.1:8000", "--secret", SECRET], "--url must be an http"),
        (["--url", "http://127.0.0.1:9/", "--secret", "sk_test_abc"], "'whsec_'"),
        (["--url", "http://127.0.0.1:9/", "--secret", "whsec_not base64!"], "base64"),
        (["--url", "http://127.0.0.1:9/", "--secret", "whsec_"], "base64"),
        (["--url", "http://127.0.0.1:9/", "--secret", SECRET, "--timeout", "0"], "--timeout"),
        (["--url", "http://127.0.0.1:9/"], "--secret"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(args: list[str], message: str) -> None:
    result = check(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("sandbank: error:")
    assert message in result.stderr


def test_webhooks_without_a_subcommand_is_one_line_and_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "webhooks"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("sandbank: error:")


@pytest.mark.parametrize("command", [["webhooks"], ["webhooks", "check"]])
def test_webhooks_help_is_available(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simulator.cli", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert f"usage: sandbank {' '.join(command)}" in result.stdout
