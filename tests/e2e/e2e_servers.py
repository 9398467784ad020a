"""`sandbank serve` as a subprocess for the end-to-end tests: a free port on 127.0.0.1, output
to a file (a full pipe can never stall it), a health wait, and stopping by pid only."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

STARTUP_TIMEOUT = 20.0  # seconds for one start, import included


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Banner:
    """What `sandbank serve` prints for a new user."""

    url: str
    demo_key: str
    admin_token: str


class Process:
    """One `python -m simulator.cli ARGS` process on 127.0.0.1:PORT, its output to `log`,
    ready when `health_path` answers 200; stopped by its pid only."""

    health_path = "/_sandbox/health"
    name = "server"

    def __init__(
        self, args: Sequence[str], port: int, log: Path, more_env: Mapping[str, str] | None = None
    ) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBANK_")}
        env.update(more_env or {})
        self.log = log
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "simulator.cli", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def ready(self, response: httpx.Response) -> bool:
        return response.status_code == 200

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if self.ready(httpx.get(f"{self.url}{self.health_path}", timeout=1.0)):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        pytest.fail(f"{self.name} not healthy within {STARTUP_TIMEOUT}s:\n{self.output()}")

    def kill(self) -> None:
        """SIGKILL this process only (by pid), and reap it."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM this process only (by pid), SIGKILL if it does not go, and reap it."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


class Server(Process):
    """One `sandbank serve --data-dir DATA_DIR --port PORT ... EXTRA` process."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        log: Path,
        extra: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            [
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--log-level",
                "warning",
                *extra,
            ],
            port,
            log,
            env,
        )
        self.demo_key = ""  # the demo account's key, for tests that read it from the banner

    def ready(self, response: httpx.Response) -> bool:
        return response.status_code == 200 and response.json()["status"] == "ok"

    def banner(self) -> Banner:
        text = self.output()
        url = re.search(r"^Sandbank \S+ on (http://\S+)$", text, re.M)
        key = re.search(r"demo account \S+\s+API key: (\S+)$", text, re.M)
        token = re.search(r"admin token: (\S+)$", text, re.M)
        assert url, f"startup output lacks the URL:\n{text}"
        assert key, f"startup output lacks the demo API key:\n{text}"
        assert token, f"startup output lacks the admin token:\n{text}"
        return Banner(url.group(1), key.group(1), token.group(1))


StartServer = Callable[..., Server]


def starting(log_dir: Path) -> Iterator[StartServer]:
    """`start(data_dir, port, *extra)`: a healthy server; every one started is killed (by
    pid) when the generator closes. The body of the `start_server` fixture."""
    started: list[Server] = []

    def start(
        data_dir: Path,
        port: int,
        *extra: str,
        env: Mapping[str, str] | None = None,
        wait: bool = True,
    ) -> Server:
        """`env`: more environment for the server; `wait` False: return before it is
        healthy."""
        log = log_dir / f"server-{len(started)}.log"
        server = Server(data_dir, port, log, list(extra), env)
        started.append(server)
        if wait:
            server.wait_healthy()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.kill()
