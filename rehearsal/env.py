"""The processes a rehearsal runs against, over HTTP only.

`Environment.start` launches a real simulator (`python -m simulator.cli serve`) and, per
scenario, a real integration (`python -m simulator.cli integration serve`) on free 127.0.0.1
ports, each with its output in a file of the run directory; `attach` uses running ones instead
(`--provider-url`, `--integration-url`). Processes are stopped by their own pid, never by name.
The simulator may be shared by several scenarios (one account each: every fault rule, quirk and
clock is scoped to the scenario's account), the integration never is (it holds one API key).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

STARTUP_TIMEOUT_S = 30.0


class EnvironmentError_(Exception):  # noqa: N801 - the builtin EnvironmentError is taken
    """The processes could not be started or reached: the run is `errored` (exit 2)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DeadPort:
    """A loopback port that refuses connections: bound, never listening, held until closed
    (so nothing else can take it while a scenario points its webhooks there)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])

    def close(self) -> None:
        self.sock.close()


class Process:
    """One `python -m simulator.cli ARGS` child, healthy when `health_url` answers 200."""

    def __init__(self, args: list[str], health_url: str, log: Path) -> None:
        self.args = args
        self.health_url = health_url
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBANK_")}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "simulator.cli", *self.args],
                stdout=out,
                stderr=out,
                env=env,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EnvironmentError_(
                    f"{' '.join(self.args[:2])} exited with {self.proc.returncode}: {self.tail()}"
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.health_url, timeout=1.0).status_code == 200:
                    return
            time.sleep(0.05)
        self.stop()
        raise EnvironmentError_(f"{self.health_url} not healthy within {STARTUP_TIMEOUT_S:g}s")

    def tail(self, lines: int = 5) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9 this process (by its pid) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM (by pid), SIGKILL after 5 s, reap."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@dataclass
class Simulator:
    """A simulator: started here (`process`) or attached to; its admin token."""

    url: str
    admin_token: str
    process: Process | None = None

    @classmethod
    def start(cls, workdir: Path, admin_token: str = "sbadm_rehearsal") -> Simulator:  # noqa: S107 - a loopback-only throwaway simulator's token
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--no-demo"]
        args += ["--data-dir", str(workdir / "simulator"), "--admin-token", admin_token]
        args += ["--log-level", "warning"]
        process = Process(args, f"{url}/_sandbox/health", workdir / "simulator.log")
        process.start()
        return cls(url, admin_token, process)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@dataclass
class Integration:
    """The reference integration for one account: started here (restartable, killable) or
    attached to (then neither)."""

    url: str
    provider_url: str
    api_key: str
    db: Path | None = None
    log: Path | None = None
    options: dict[str, float] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    process: Process | None = None

    @property
    def managed(self) -> bool:
        return self.process is not None or self.db is not None

    def _args(self) -> list[str]:
        assert self.db is not None
        port = self.url.rsplit(":", 1)[1]
        args = ["integration", "serve", "--provider-url", self.provider_url]
        args += ["--api-key", self.api_key, "--db", str(self.db), "--port", port]
        for secret in self.secrets:
            args += ["--webhook-secret", secret]
        for option, value in self.options.items():
            args += [f"--{option.replace('_', '-')}", f"{value:g}"]
        return args

    def start(self) -> None:
        assert self.log is not None
        self.process = Process(self._args(), f"{self.url}/metrics", self.log)
        self.process.start()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def restart(self, *, graceful: bool = True) -> None:
        if self.process is not None:
            if graceful:
                self.process.stop()
            else:
                self.process.kill()
        self.start()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON lines of every life of the service (restarts append to one file)."""
        import json  # noqa: PLC0415 - only the end of a run reads logs

        if self.log is None or not self.log.exists():
            return []
        out = []
        for raw in self.log.read_text(errors="replace").splitlines():
            if raw.startswith("{"):
                with contextlib.suppress(ValueError):
                    line = json.loads(raw)
                    if isinstance(line, dict):
                        out.append(line)
        return out


__all__ = [
    "DeadPort",
    "EnvironmentError_",
    "Integration",
    "Process",
    "Simulator",
    "free_port",
]
