"""The processes a rehearsal runs against, over HTTP only.

`Simulator.start` launches a real simulator (`sandbank serve`) and `Integration.start`, per
scenario, a real integration (`sandbank integration serve`) on free 127.0.0.1 ports, each with
its output in a file of the run directory, through `rehearsal.processes` (the one process
helper, shared with the bench and the end-to-end tests); `--provider-url`, `--integration-url`
attach to running ones instead. Processes are stopped by their own pid, never by name. The
simulator may be shared by several scenarios (one account each: every fault rule, quirk and
clock is scoped to the scenario's account), the integration never is (it holds one API key).
"""

from __future__ import annotations

import contextlib
import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rehearsal.processes import NotReady, Process, Server, free_port, sandbank


class EnvironmentError_(Exception):  # noqa: N801 - the builtin EnvironmentError is taken
    """The processes could not be started or reached: the run is `errored` (exit 2)."""


class DeadPort:
    """A loopback port that refuses connections: bound, never listening, held until closed
    (so nothing else can take it while a scenario points its webhooks there)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])

    def close(self) -> None:
        self.sock.close()


def healthy(process: Process) -> Process:
    """`process` once healthy; stopped, and an `EnvironmentError_` naming why, if it is not."""
    try:
        process.wait_healthy()
    except NotReady as exc:
        process.stop()
        raise EnvironmentError_(f"{exc.reason}: {process.tail()}") from None
    return process


@dataclass
class Simulator:
    """A simulator: started here (`process`) or attached to; its admin token."""

    url: str
    admin_token: str
    process: Process | None = None

    @classmethod
    def start(cls, workdir: Path, admin_token: str = "sbadm_rehearsal") -> Simulator:  # noqa: S107 - a loopback-only throwaway simulator's token
        extra = ["--no-demo", "--admin-token", admin_token]
        server = Server(workdir / "simulator", free_port(), workdir / "simulator.log", extra)
        healthy(server)
        try:  # a rehearsal times webhooks and due work from its first step
            server.wait_components()
        except NotReady as exc:
            server.stop()
            raise EnvironmentError_(f"{exc.reason}: {server.tail()}") from None
        return cls(server.url, admin_token, server)

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
        args = ["--provider-url", self.provider_url]
        args += ["--api-key", self.api_key, "--db", str(self.db), "--port", port]
        for secret in self.secrets:
            args += ["--webhook-secret", secret]
        for option, value in self.options.items():
            args += [f"--{option.replace('_', '-')}", f"{value:g}"]
        return args

    def start(self) -> None:
        """Start (again) on its port; every life appends to the one log."""
        assert self.log is not None
        port = int(self.url.rsplit(":", 1)[1])
        cmd = sandbank("integration", "serve", *self._args())
        self.process = healthy(
            Process(cmd, port, self.log, name="integration", health_path="/metrics", append=True)
        )

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
    "Simulator",
    "free_port",
    "healthy",
]
