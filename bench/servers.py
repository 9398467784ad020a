"""Servers as child processes on 127.0.0.1, for `make bench` and the end-to-end tests alike.

Both start `sandbank serve` (and other ASGI servers) as subprocesses and need the same care: a
free port on 127.0.0.1, output to a file (a full pipe can never stall the child), a bounded
health wait that says why a start failed, and stopping by pid only. One copy, here, because:

- it is tooling for the bench and the tests, not the product, so it stays out of the shipped
  packages (`simulator`, `contracts`, `integration` are what `pip install` gives a user);
- the bench must not import from tests/, while tests may use a tool that lives beside them;
- the bench runs as plain scripts (`python bench/run.py` puts bench/ first on sys.path), so a
  module in bench/ needs no packaging; tests/e2e/conftest.py appends bench/ to sys.path.

Failures raise `NotReady` (with the child's output): pytest reports it as the test's error, and
the bench turns it into its one-line error and exit status 2.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

STARTUP_TIMEOUT = 30.0  # seconds for one start, import included
STOP_TIMEOUT = 10.0  # seconds for a graceful stop before SIGKILL (a profiler writes its file)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sandbank(*args: str, python: Sequence[str] = (sys.executable,)) -> list[str]:
    """The command line of `sandbank ARGS`, run by this interpreter or by `python` (a prefix
    such as `python -m cProfile -o FILE`)."""
    return [*python, "-m", "simulator.cli", *args]


class NotReady(RuntimeError):
    """A server exited, or did not pass its health check in time."""


class Process:
    """One server process (`cmd`) on 127.0.0.1:PORT, its output to `log` (or discarded), ready
    when `health_path` answers as `ready` says; stopped by its pid only. As a context manager:
    healthy on entry, stopped on exit (also when it never became healthy)."""

    health_path = "/"
    name = "server"

    def __init__(
        self,
        cmd: Sequence[str],
        port: int,
        log: Path | None,
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """`env`: environment added to this one's (whose SANDBANK_* variables are left out)."""
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SANDBANK_")},
            **(env or {}),
        }
        self.name = name or self.name
        self.log = log
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        with log.open("wb") if log else contextlib.nullcontext(subprocess.DEVNULL) as out:
            self.proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, env=env)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log else ""

    def ready(self, response: httpx.Response) -> bool:
        return response.status_code == 200

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NotReady(f"{self.name} exited with {self.proc.returncode}:\n{self.output()}")
            with contextlib.suppress(httpx.TransportError):
                if self.ready(httpx.get(f"{self.url}{self.health_path}", timeout=1.0)):
                    return
            time.sleep(0.05)
        raise NotReady(f"{self.name} not healthy within {STARTUP_TIMEOUT}s:\n{self.output()}")

    def kill(self) -> None:
        """SIGKILL this process only (by pid), and reap it."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """`sig` to this process only (by pid), SIGKILL if it does not go, and reap it. uvicorn
        shuts down gracefully on SIGTERM and SIGINT alike, then raises the signal again: only
        SIGINT (KeyboardInterrupt) lets a wrapper such as cProfile write its file."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def __enter__(self) -> Self:
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class Server(Process):
    """`sandbank serve` on 127.0.0.1:PORT with its data in DATA_DIR, then `extra` arguments;
    ready when its health check says ok."""

    health_path = "/_sandbox/health"
    name = "sandbank serve"

    def __init__(
        self,
        data_dir: Path,
        port: int,
        log: Path | None,
        extra: Sequence[str] = (),
        *,
        log_level: str = "warning",
        python: Sequence[str] = (sys.executable,),
        env: Mapping[str, str] | None = None,
    ) -> None:
        args = ["--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
        cmd = sandbank("serve", *args, "--log-level", log_level, *extra, python=python)
        super().__init__(cmd, port, log, env=env)

    def ready(self, response: httpx.Response) -> bool:
        return response.status_code == 200 and response.json()["status"] == "ok"
