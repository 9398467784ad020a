"""Servers as child processes on 127.0.0.1: the one helper for rehearsals (`rehearsal.env`),
`make bench` (bench/) and the end-to-end tests (tests/e2e, tests/cli).

Each of them starts `sandbank serve`, `sandbank integration serve` (and, for the bench, other
ASGI servers) as subprocesses and needs the same care: a free port on 127.0.0.1, output to a
file (a full pipe can never stall the child), a bounded health wait that says why a start
failed, and stopping by pid only, never by name. It lives in the shipped `rehearsal` package
because `sandbank scenario run` needs it at run time; bench/ and tests/ are not installed, and
may import from here. It speaks HTTP and subprocess only: nothing of the simulator is imported.

Failures raise `NotReady` (its `reason` in one line, then the child's output): pytest reports
it as the test's error, the bench turns it into its one-line error and exit status 2, a
rehearsal into an invalid environment (exit 2).
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

    def __init__(self, reason: str, output: str = "") -> None:
        super().__init__(f"{reason}:\n{output}" if output else reason)
        self.reason = reason


class Process:
    """One server process (`cmd`) on 127.0.0.1:PORT, its output to `log` (or discarded;
    appended to with `append`, so every life of a restarted server is in one file), ready when
    `health_path` answers as `ready` says; stopped by its pid only. As a context manager:
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
        health_path: str | None = None,
        append: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """`env`: environment added to this one's (whose SANDBANK_* variables are left out)."""
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SANDBANK_")},
            **(env or {}),
        }
        self.name = name or self.name
        self.health_path = health_path or self.health_path
        self.log = log
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        mode = "ab" if append else "wb"
        with log.open(mode) if log else contextlib.nullcontext(subprocess.DEVNULL) as out:
            self.proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, env=env)  # noqa: S603 - our own interpreter and arguments

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log else ""

    def tail(self, lines: int = 5) -> str:
        """The last `lines` lines of the output, on one line."""
        return " | ".join(self.output().strip().splitlines()[-lines:])

    def ready(self, response: httpx.Response) -> bool:
        return response.status_code == 200

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NotReady(f"{self.name} exited with {self.proc.returncode}", self.output())
            with contextlib.suppress(httpx.TransportError):
                if self.ready(httpx.get(f"{self.url}{self.health_path}", timeout=1.0)):
                    return
            time.sleep(0.05)
        raise NotReady(f"{self.name} not healthy within {STARTUP_TIMEOUT:g}s", self.output())

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

    def wait_components(
        self, names: Sequence[str] = ("dispatcher", "scheduler"), timeout: float = 60.0
    ) -> None:
        """Until health says each of `names` is up (a first heartbeat written). Health answers
        ok while they are still starting (their grace period), and a spawned process imports the
        whole app first: seconds on a loaded machine. For callers that time webhook delivery or
        due work from the start; a component that `sandbank serve` does not run (on `:memory:`)
        counts as up."""
        deadline = time.monotonic() + timeout
        state: dict[str, object] = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError, ValueError):
                state = httpx.get(f"{self.url}{self.health_path}", timeout=2.0).json()["components"]
                if all(state.get(n) is None or state[n]["status"] == "up" for n in names):  # type: ignore[index]
                    return
            time.sleep(0.1)
        raise NotReady(f"{', '.join(names)} not up within {timeout:g}s: {state}", self.output())


__all__ = ["STARTUP_TIMEOUT", "NotReady", "Process", "Server", "free_port", "sandbank"]
