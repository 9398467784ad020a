"""The simulator a test session talks to: a child process started here, or a shared server.

A child is `sandbank serve` on a free 127.0.0.1 port with an in-memory database and an admin
token chosen here, started and stopped (by its pid only) with `rehearsal.processes`, the one
helper the scenarios, the benchmarks and the end-to-end tests use too: output to a file, a
bounded health wait that shows that output when the start fails.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Self

import httpx

from rehearsal.processes import Server, free_port

__all__ = ["SandbankServer", "free_port"]


class SandbankServer:
    """Where the simulator is (`url`) and the control plane's `admin_token`. `start()` makes a
    child process; `SandbankServer(url, token)` names a running one (nothing to stop)."""

    def __init__(self, url: str, admin_token: str) -> None:
        self.url = url.rstrip("/")
        self.admin_token = admin_token
        self._proc: Server | None = None

    @classmethod
    def start(cls, workdir: Path) -> SandbankServer:
        """A fresh simulator on 127.0.0.1 (in-memory database, no demo account), healthy."""
        token = "sbadm_" + secrets.token_hex(18)
        port = free_port()
        proc = Server(
            workdir / "data",
            port,
            workdir / "sandbank-serve.log",
            ["--db", ":memory:", "--no-demo"],
            # The token travels in the environment, not on a command line others can read.
            env={"SANDBANK_ADMIN_TOKEN": token},
        )
        server = cls(proc.url, token)
        server._proc = proc.__enter__()  # healthy, or stopped and raised with its output
        return server

    @property
    def log(self) -> Path | None:
        return self._proc.log if self._proc else None

    def output(self) -> str:
        return self._proc.output() if self._proc else ""

    def stop(self) -> None:
        """SIGTERM the child (by pid), SIGKILL if it lingers; nothing for a shared server."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.stop()

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
