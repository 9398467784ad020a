"""Settings, built by the CLI or a test and handed to the app factory (never read at import)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path(".sandbank")
    db: str | None = None  # a path, or ":memory:"; default: <data_dir>/sandbank.db
    seed: int | None = None  # the server seed: account ids and keys; None = from entropy, kept
    admin_token: str | None = None
    public_url: str | None = None  # where hosted checkout pages are reached
    log_level: str = "info"
    demo_account: bool = True
    fault_rules: tuple[Any, ...] = ()  # rules as written (e.g. from `--faults FILE`), validated
    journal_size: int = 10_000  # requests kept per account in the journal; 0: no journal
    # Hosts webhooks may go to besides loopback (SSRF safety); "*" allows any.
    webhook_allowed_hosts: tuple[str, ...] = ()
    # True: a separate process delivers webhooks (`sandbank serve` on a database file), and the
    # app's lifespan does not run a dispatcher of its own.
    webhook_process: bool = False
    # Where Credit Key's v1 API answers (`<prefix>/begin_checkout`, ...): a base URL with or
    # without `/app` works by default.
    creditkey_prefixes: tuple[str, ...] = ("/app/ecomm", "/ecomm")
    # Connection bounds per worker process (`simulator.connections`; README "Serving"):
    header_timeout_s: float = 10.0  # a request head must arrive within this
    body_timeout_s: float = 30.0  # and its body within this after the head
    keep_alive_s: float = 5.0  # an idle kept-alive connection is closed after this
    max_connections: int = 0  # open connections; 0: the open-files limit less a margin
    max_in_flight: int = 1024  # requests in progress; past it, 503 at once
    # The SRE console (/_sandbox/console): None = on exactly when an admin token was given
    # (a generated token never turns it on: safe by default).
    console: bool | None = None
    # Where the scenario runner writes its run directories (report.json, report.html), which
    # the console's scenarios page lists; default DATA_DIR/reports.
    reports_dir: Path | None = None
    metrics: bool = True  # GET /metrics and the console's charts (off: `--no-metrics`)
    # A GET of an unchanged object answers its last read (`simulator.api.reads`; off:
    # `--no-reuse-reads`, every GET reads the store).
    reuse_reads: bool = True
    # Seconds a request awaits the database's write lock (off the event loop) before a 503;
    # None: SQLite's blocking wait, for background processes that serve no requests.
    store_lock_wait_s: float | None = 2.0
    # The SQLite WAL's bound under continuous writes, in MB (0: none; docs/performance.md).
    wal_limit_mb: int = 256

    @property
    def db_path(self) -> str:
        if self.db:
            return self.db
        return str(self.data_dir / "sandbank.db")

    @property
    def console_on(self) -> bool:
        return self.console if self.console is not None else self.admin_token is not None

    @property
    def reports_path(self) -> Path:
        return self.reports_dir if self.reports_dir is not None else self.data_dir / "reports"

    @property
    def in_memory(self) -> bool:
        return self.db_path == ":memory:"

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Environment defaults (SANDBANK_*), then explicit overrides (CLI flags)."""
        env = os.environ
        values: dict[str, object] = {}
        if "SANDBANK_ADMIN_TOKEN" in env:
            values["admin_token"] = env["SANDBANK_ADMIN_TOKEN"]
        if "SANDBANK_DATA_DIR" in env:
            values["data_dir"] = Path(env["SANDBANK_DATA_DIR"])
        if env.get("SANDBANK_WEBHOOK_ALLOWED_HOSTS"):
            values["webhook_allowed_hosts"] = tuple(
                h.strip() for h in env["SANDBANK_WEBHOOK_ALLOWED_HOSTS"].split(",") if h.strip()
            )
        if "SANDBANK_PUBLIC_URL" in env:
            values["public_url"] = env["SANDBANK_PUBLIC_URL"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
