"""Child processes that end with their parent, even when the parent is SIGKILLed.

`sandbank serve` runs its API workers (uvicorn), the webhook dispatcher and the scheduler as
child processes. Were the parent killed with SIGKILL, children re-parented to init would keep
the port and the database and go on answering for minutes. Each child therefore calls
`die_with_parent(expected_parent)` first thing:

- on Linux the kernel sends it SIGKILL when its parent dies (`PR_SET_PDEATHSIG` through
  `prctl`). SIGKILL, not SIGTERM: a graceful shutdown could wait seconds for open
  connections, and nothing acknowledged is lost (every answer waits for its COMMIT);
- the parent may have died before the call: `getppid()` is then no longer the expected parent,
  and the child exits at once (this closes the race between spawn and prctl);
- everywhere (and as a second line on Linux), a daemon thread polls `getppid()` every
  `WATCH_S` and exits the process when the parent is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
WATCH_S = 0.2


def _pdeathsig() -> bool:
    """Ask the kernel for SIGKILL when the parent dies; True when it accepted."""
    if not sys.platform.startswith("linux"):
        return False
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)) == 0
    return False


def _watch(expected_parent: int) -> None:
    while os.getppid() == expected_parent:
        time.sleep(WATCH_S)
    os._exit(1)


def die_with_parent(expected_parent: int) -> None:
    """End this process when `expected_parent` (its parent at spawn) ends; see the module."""
    _pdeathsig()
    if os.getppid() != expected_parent:  # the parent died before the request above
        os._exit(1)
    threading.Thread(
        target=_watch, args=(expected_parent,), name="sandbank-parent-watch", daemon=True
    ).start()


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard one (idle connections are files);
    returns the soft limit now in force (0 where the platform has none)."""
    try:
        import resource  # noqa: PLC0415 - POSIX only
    except ImportError:  # pragma: no cover - Windows
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return int(soft if soft != resource.RLIM_INFINITY else 1 << 20)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return int(target)
    return int(soft)
