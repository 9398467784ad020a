"""Supervision of `sandbank serve`'s background processes: the webhook dispatcher and the
scheduler.

Each runs in a process of its own (spawned, the scheduler at a lower CPU priority, ending with
the server:
`simulator.lifecycle`). The supervisor, a thread of the server's main process, starts them
after the database is migrated, and when one exits it records why and starts it again after
a backoff (`BACKOFF_S`, doubling to `BACKOFF_MAX_S`; back to the first step once a process
has run `STABLE_S`). What health needs lives in the database, where every API worker can
read it (`meta` rows):

- `component:NAME`, written by the supervisor: the process it runs (`pid`), `state`
  (`starting` or `down`), `restarts`, `since_us` and the last `exit_code`;
- `heartbeat:NAME`, written by the process itself every `HEARTBEAT_S`: its `pid` and `at_us`.

`status()` turns the two into up / starting / down (see there). A test hook makes a component
raise once, in its first run only: `SANDBANK_CRASH_ONCE=dispatcher.startup,scheduler.running`
(`crash_point`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import orjson

from simulator import lifecycle
from simulator.clock import SystemClock, WallClock, to_us
from simulator.settings import Settings
from simulator.store.base import Store

log = logging.getLogger("sandbank.supervisor")
BACKOFF_S = 0.5
BACKOFF_MAX_S = 30.0
STABLE_S = 30.0
HEARTBEAT_S = 1.0
STALE_S = 5.0  # a heartbeat older than this: the process is taken as down
STARTUP_GRACE_S = 30.0  # a first start counts as healthy this long before its first heartbeat
NICE = 10  # background work: the API's processes come first when both want the CPU
# ... except the webhook dispatcher's: at NICE it got a tenth of an equal process's CPU, so
# under load (or on a busy machine) deliveries fell seconds behind the events (issue #18).
# Deliveries are the API's output too: they get a fair share.
COMPONENT_NICE = {"dispatcher": 0}
CRASH_ENV = "SANDBANK_CRASH_ONCE"
# name -> "module:function", an async function (settings, parent_pid, attempt) run in the child
COMPONENTS: dict[str, str] = {
    "dispatcher": "simulator.webhooks.worker:run",
    "scheduler": "simulator.scheduler:run",
}


class InjectedCrash(RuntimeError):
    """Raised by `crash_point` (a test hook), never in normal operation."""


def crash_point(name: str, stage: str, attempt: int) -> None:
    """Raise once, in a component's first run, when SANDBANK_CRASH_ONCE names `name.stage`."""
    wanted = {p.strip() for p in os.environ.get(CRASH_ENV, "").split(",")}
    if attempt == 0 and f"{name}.{stage}" in wanted:
        raise InjectedCrash(f"{name} crashed on purpose ({CRASH_ENV}={name}.{stage})")


# --- the records --------------------------------------------------------------------------
def _read(store: Store, key: str) -> dict[str, Any] | None:
    raw = store.meta(key)
    if raw is None:
        return None
    with contextlib.suppress(orjson.JSONDecodeError):
        found = orjson.loads(raw)
        if isinstance(found, dict):
            return found
    return None


def _write(store: Store, key: str, value: dict[str, Any]) -> None:
    with store.transaction():
        store.set_meta(key, orjson.dumps(value).decode())


def beat(store: Store, name: str, wall: WallClock, **extra: Any) -> None:
    """Record that this process (component `name`) is alive; never raises (a busy database
    delays a heartbeat, the next one follows)."""
    try:
        _write(
            store, f"heartbeat:{name}", {"pid": os.getpid(), "at_us": to_us(wall.now()), **extra}
        )
    except Exception:
        log.warning("heartbeat of %s not written", name, exc_info=True)


def status(store: Store, name: str, now_us: int) -> dict[str, Any] | None:
    """The component as health reports it, or None when no supervisor runs it (a server on
    `:memory:` runs its background work in the API's own process).

    Up: a heartbeat younger than `STALE_S` from the process the supervisor runs now.
    Starting: its first start, within `STARTUP_GRACE_S`, no heartbeat of it yet (healthy).
    Down: anything else (exited, restarting after a crash, or silent).
    """
    record = _read(store, f"component:{name}")
    if record is None:
        return None
    beat_ = _read(store, f"heartbeat:{name}") or {}
    out: dict[str, Any] = {"pid": record.get("pid"), "restarts": int(record.get("restarts", 0))}
    at_us = beat_.get("at_us")
    if isinstance(at_us, int):
        out["last_heartbeat_us"] = at_us
    if record.get("exit_code") is not None:
        out["last_exit_code"] = record["exit_code"]
    current = isinstance(at_us, int) and beat_.get("pid") == record.get("pid")
    fresh = current and now_us - int(at_us or 0) <= STALE_S * 1_000_000
    if record.get("state") == "starting" and fresh:
        out["status"] = "up"
    elif (
        record.get("state") == "starting"
        and not current
        and out["restarts"] == 0
        and now_us - int(record.get("since_us", 0)) <= STARTUP_GRACE_S * 1_000_000
    ):
        out["status"] = "starting"
    else:
        out["status"] = "down"
    return out


# --- the child side -----------------------------------------------------------------------
def component_main(name: str, settings: Settings, parent_pid: int, attempt: int) -> None:
    """A component's process: ends with the server, runs at its niceness (`NICE` unless
    `COMPONENT_NICE` says otherwise), then its `run`."""
    lifecycle.die_with_parent(parent_pid)
    with contextlib.suppress(OSError):
        os.nice(COMPONENT_NICE.get(name, NICE))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("sandbank")
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    root.propagate = False
    crash_point(name, "startup", attempt)
    module, function = COMPONENTS[name].split(":")
    run: Callable[[Settings, int, int], Coroutine[Any, Any, None]] = getattr(
        __import__(module, fromlist=[function]), function
    )
    asyncio.run(run(settings, parent_pid, attempt))


# --- the parent side ----------------------------------------------------------------------
@dataclass
class _Child:
    name: str
    process: Any = None  # multiprocessing.Process
    started: float = 0.0
    restarts: int = 0
    failures: int = 0  # consecutive short runs: the backoff's exponent
    restart_at: float | None = None


class Supervisor:
    """Starts the components and keeps them running (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        store_factory: Callable[[], Store],
        names: tuple[str, ...] = tuple(COMPONENTS),
        *,
        on_restart: Callable[[Store, str], None] | None = None,
        wall: WallClock | None = None,
    ) -> None:
        self.settings = dataclasses.replace(settings, demo_account=False, webhook_process=False)
        self.store_factory = store_factory
        self.children = {name: _Child(name) for name in names}
        self.on_restart = on_restart
        self.wall = wall or SystemClock()
        self._ctx = multiprocessing.get_context("spawn")
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._store: Store | None = None

    def start(self) -> None:
        self._store = self.store_factory()
        for child in self.children.values():
            self._spawn(child)
        self._thread = threading.Thread(target=self._loop, name="sandbank-supervisor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for child in self.children.values():
            process = child.process
            if process is not None and process.is_alive():
                process.terminate()
        deadline = time.monotonic() + timeout
        for child in self.children.values():
            process = child.process
            if process is not None:
                process.join(max(0.0, deadline - time.monotonic()))
                if process.is_alive():
                    process.kill()
                    process.join(1.0)
        if self._store is not None:
            self._store.close()

    def pids(self) -> dict[str, int | None]:
        return {n: (c.process.pid if c.process else None) for n, c in self.children.items()}

    def _spawn(self, child: _Child) -> None:
        process = self._ctx.Process(
            target=component_main,
            args=(child.name, self.settings, os.getpid(), child.restarts),
            name=f"sandbank-{child.name}",
            daemon=True,
        )
        process.start()
        child.process, child.started, child.restart_at = process, time.monotonic(), None
        self._record(child, "starting", None)

    def _record(self, child: _Child, state: str, exit_code: int | None) -> None:
        assert self._store is not None
        value = {
            "pid": child.process.pid if child.process is not None else None,
            "state": state,
            "restarts": child.restarts,
            "since_us": to_us(self.wall.now()),
            "exit_code": exit_code,
        }
        for _ in range(3):  # a busy database: try again shortly (health goes stale meanwhile)
            try:
                _write(self._store, f"component:{child.name}", value)
                return
            except Exception:
                log.warning("could not record %s as %s", child.name, state, exc_info=True)
                time.sleep(0.1)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            running = [c.process.sentinel for c in self.children.values() if c.restart_at is None]
            multiprocessing.connection.wait(running, timeout=0.2)
            if self._stopping.is_set():
                return
            now = time.monotonic()
            for child in self.children.values():
                if child.restart_at is None and not child.process.is_alive():
                    self._exited(child, now)
                elif child.restart_at is not None and now >= child.restart_at:
                    child.restarts += 1
                    if self.on_restart is not None and self._store is not None:
                        with contextlib.suppress(Exception):
                            self.on_restart(self._store, child.name)
                    self._spawn(child)

    def _exited(self, child: _Child, now: float) -> None:
        code = child.process.exitcode
        child.failures = 0 if now - child.started >= STABLE_S else child.failures + 1
        delay = min(BACKOFF_MAX_S, BACKOFF_S * 2 ** max(0, child.failures - 1))
        child.restart_at = now + delay
        log.warning(
            '{"event": "component_exited", "component": "%s", "exit_code": %s, '
            '"restart_in_s": %.1f}',
            child.name,
            code,
            delay,
        )
        self._record(child, "down", code)
