"""A throwaway PostgreSQL server on 127.0.0.1 for the tests and `make bench`: Debian's server
binaries (`make postgres` installs them), a cluster made by initdb in a temporary directory,
started as a child process and stopped by its pid (fast shutdown), the directory removed.

initdb and postgres refuse to run as root: as root they run as `nobody`. Durability settings
are the defaults except `fsync=off` (the cluster dies with the run; killing a *replica* loses
nothing either way, since a commit is acknowledged by the server, which keeps running).
Each test gets a schema of its own (`fresh_url`), which is much cheaper than a database.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

READY_S = 20.0


def server_bin() -> Path | None:
    """The directory of Debian's `initdb` and `postgres`, the newest version; None without."""
    for found in sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), reverse=True):
        return Path(found).parent
    initdb = shutil.which("initdb")
    if initdb and (Path(initdb).resolve().parent / "postgres").exists():
        return Path(initdb).resolve().parent
    return None


def unavailable() -> str | None:
    """Why no throwaway server can run here (None: it can)."""
    if server_bin() is None:
        return "no PostgreSQL server binaries (Debian's postgresql package; `make postgres`)"
    try:
        import psycopg  # noqa: F401, PLC0415
    except ModuleNotFoundError:
        return "psycopg is not installed (pip install 'sandbank[postgres]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayPostgres:
    def __init__(self, *, max_connections: int = 300) -> None:
        self.max_connections = max_connections
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._schemas = 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> ThrowawayPostgres:
        binary = server_bin()
        if binary is None:
            raise RuntimeError(unavailable())
        self.dir = Path(tempfile.mkdtemp(prefix="sandbank-pg-"))
        as_user: dict[str, Any] = {}
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.dir, nobody.pw_uid, nobody.pw_gid)
            as_user = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        data = self.dir / "data"
        subprocess.run(
            [str(binary / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
             "-E", "UTF8", "--no-sync", "--no-instructions"],
            check=True, capture_output=True, cwd=self.dir, **as_user,
        )  # fmt: skip
        self.port = _free_port()
        log = (self.dir / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [str(binary / "postgres"), "-D", str(data), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
             "-c", f"max_connections={self.max_connections}", "-c", "fsync=off",
             "-c", "full_page_writes=off"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.dir, **as_user,
        )  # fmt: skip
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import psycopg  # noqa: PLC0415

        deadline = time.monotonic() + READY_S
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {self.log_tail()}")
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def log_tail(self) -> str:
        if self.dir is None or not (self.dir / "server.log").exists():
            return ""
        return (self.dir / "server.log").read_text(errors="replace")[-2000:]

    def fresh_url(self, prefix: str = "t") -> str:
        """A URL whose connections see an empty schema of their own (a fresh database)."""
        import psycopg  # noqa: PLC0415

        self._schemas += 1
        name = f"{prefix}{os.getpid()}_{self._schemas}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")  # type: ignore[arg-type]
        return f"{self.url}?options=-csearch_path%3D{name}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()
