"""`sandbank serve` with timing hooks, for `bench/tail.py` (not a server to use otherwise).

Run as `PYTHON -P bench/tail_hooks.py TRACE -m simulator.cli serve ...`: PYTHON's installed
`simulator` is traced (another tree's venv traces that tree). On one monotonic clock it
records, and writes to TRACE every second and at exit, one line per:

- `gc2 MS`: every full (generation-2) collection, and any other over 1 ms (`gcN MS`);
- `checkpoint MS FRAMES`: each PASSIVE checkpoint round of the checkpoint thread, with the
  WAL's frames after it;
- `restart MS`: each WAL restart past the bound, from the start of the round's work for it to
  the lock's release;
- `stall MS`: the part of it this process's writes waited for (`wants_lock` up:
  `simulator.store.checkpoints`);
- `turn MS`: every event-loop turn over 10 ms, seen by a task that sleeps 1 ms.

The hooks wrap the checkpoint thread's methods by name; a tree without them traces the rest.
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import sys
import threading
import time
from typing import Any

import uvicorn.server

try:
    from simulator.store import checkpoints
except ImportError:  # a tree from before the checkpoint thread had a module of its own
    checkpoints = None

TRACE = sys.argv[1] if __name__ == "__main__" else ""
_lines: list[str] = []
_lock = threading.Lock()
_gc_started = [0.0]
_in_restart = threading.local()


def _note(kind: str, ms: float, extra: object = "") -> None:
    with _lock:
        _lines.append(f"{time.monotonic():.4f} {kind} {ms:.2f} {extra}".rstrip())


def _gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
        return
    ms = (time.perf_counter() - _gc_started[0]) * 1000
    if info["generation"] == 2 or ms > 1:
        _note(f"gc{info['generation']}", ms)


def _hook_checkpoints() -> None:
    if checkpoints is None:
        return
    cls = checkpoints.Checkpointer
    checkpoint, restart = getattr(cls, "_checkpoint", None), getattr(cls, "_restart", None)
    if checkpoint is None or restart is None:
        return

    def timed_checkpoint(self: Any, mode: str) -> tuple[int, int]:
        started = time.perf_counter()
        result: tuple[int, int] = checkpoint(self, mode)
        if mode == "PASSIVE" and not getattr(_in_restart, "on", False):
            _note("checkpoint", (time.perf_counter() - started) * 1000, result[0])
        return result

    def timed_restart(self: Any, *args: Any) -> None:
        started, _in_restart.on = time.perf_counter(), True
        try:
            restart(self, *args)
        finally:
            _in_restart.on = False
            _note("restart", (time.perf_counter() - started) * 1000)

    cls._checkpoint, cls._restart = timed_checkpoint, timed_restart  # type: ignore[method-assign]
    init = cls.__init__

    def timed_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        if hasattr(self, "wants_lock"):
            self.wants_lock = _TimedEvent()

    cls.__init__ = timed_init  # type: ignore[method-assign]


class _TimedEvent(threading.Event):
    """`Checkpointer.wants_lock`, noting how long each time it was up."""

    def set(self) -> None:
        self._up = time.perf_counter()
        super().set()

    def clear(self) -> None:
        if self.is_set():
            _note("stall", (time.perf_counter() - self._up) * 1000)
        super().clear()


def _hook_loop() -> None:
    serve = uvicorn.server.Server.serve

    async def traced_serve(self: Any, sockets: Any = None) -> None:
        async def turns() -> None:
            while True:
                started = time.perf_counter()
                await asyncio.sleep(0.001)
                ms = (time.perf_counter() - started) * 1000
                if ms > 10:
                    _note("turn", ms)

        task = asyncio.get_running_loop().create_task(turns())
        try:
            await serve(self, sockets)
        finally:
            task.cancel()

    uvicorn.server.Server.serve = traced_serve  # type: ignore[method-assign]


def _write() -> None:
    with _lock:
        text = "\n".join(_lines) + "\n"
    with open(TRACE, "w") as out:
        out.write(text)


def _writer() -> None:
    while True:
        time.sleep(1.0)
        _write()


if __name__ == "__main__":
    sys.argv = ["sandbank", *sys.argv[4:]]  # TRACE -m simulator.cli ARGS -> ARGS
    gc.callbacks.append(_gc)
    _hook_checkpoints()
    _hook_loop()
    atexit.register(_write)
    threading.Thread(target=_writer, daemon=True, name="tail-trace").start()
    from simulator.cli import main

    sys.exit(main())
