"""The simulator a test session talks to: a child process started here, or a shared server.

A child is `python -m simulator.cli serve` on a free 127.0.0.1 port with an in-memory database
and an admin token chosen here, its output in a file (a full pipe never stalls it), a bounded
health wait that shows that output when the start fails, and a stop by its pid only.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

import httpx

STARTUP_TIMEOUT = 30.0  # seconds: interpreter start and imports included
STOP_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SandbankServer:
    """Where the simulator is (`url`) and the control plane's `admin_token`. `start()` makes a
    child process; `SandbankServer(url, token)` names a running one (nothing to stop)."""

    def __init__(self, url: str, admin_token: str) -> None:
        self.url = url.rstrip("/")
        self.admin_token = admin_token
        self._proc: subprocess.Popen[bytes] | None = None
        self.log: Path | None = None

    @classmethod
    def start(cls, workdir: Path, *, python: str = sys.executable) -> SandbankServer:
        """A fresh simulator on 127.0.0.1 (in-memory database, no demo account), healthy."""
        token = "sbadm_" + secrets.token_hex(18)
        port = free_port()
        server = cls(f"http://127.0.0.1:{port}", token)
        server.log = workdir / "sandbank-serve.log"
        cmd = [
            python,
            "-m",
            "simulator.cli",
            "serve",
            "--port",
            str(port),
            "--db",
            ":memory:",
            "--no-demo",
            "--data-dir",
            str(workdir / "data"),
            "--log-level",
            "warning",
        ]
        # The token travels in the environment, not on a command line others can read.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBANK_")}
        env["SANDBANK_ADMIN_TOKEN"] = token
        with server.log.open("wb") as out:
            server._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env
            )
        try:
            server.wait_healthy()
        except BaseException:
            server.stop()
            raise
        return server

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(
                    f"sandbank serve exited with {self._proc.returncode}:\n{self.output()}"
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/_sandbox/health", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"{self.url} not healthy within {timeout:g}s:\n{self.output()}")

    def stop(self) -> None:
        """SIGTERM the child (by pid), SIGKILL if it lingers; nothing for a shared server."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT)

    def admin(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=timeout,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
