"""The checkpoint thread of a SQLite file in WAL mode, and the bound on the WAL's size.

Why a thread: SQLite's automatic checkpoint runs inside the COMMIT that crosses 1,000 WAL
pages, and a checkpoint fsyncs the WAL and the database file: on a busy disk that is hundreds
of milliseconds with the event loop stopped (issue #18). So `sandbank serve`'s API process
runs a PASSIVE checkpoint every `CHECKPOINT_S` in a thread of its own (on a connection of
its own; sqlite3 releases the GIL while it copies and syncs), and no connection checkpoints
in its commits.

Why a bound (issue #18, sustained load): a PASSIVE checkpoint copies the WAL into the
database but never shortens the WAL. SQLite writes the WAL from its beginning again only when
a writer begins its transaction after a checkpoint copied every frame, and under continuous
writes the API's next group always began before the checkpoint of the last one was done: the
WAL grew without end (872 MB after 23 s of POST load beside a 124 MB database). So once the
WAL holds more than the limit (`--wal-limit-mb`, `DEFAULT_WAL_LIMIT_MB`), the thread takes
the write lock on a second connection, runs the PASSIVE checkpoint of the few frames left
while no write can begin, and lets go; the next writer then begins after a complete
checkpoint and restarts the WAL. To get the lock, the thread raises `wants_lock`, and this
process opens no new group while it is up (`SqliteStore._open_group` answers "busy", and the
requests await the lock as they would another writer's): the lock is free as soon as the group
in progress commits. Before, the thread looked for a gap between two groups every half
millisecond, and the API took the lock again microseconds after each COMMIT: finding one took
up to the whole 0.5 s allowed (or failed), and every frame written meanwhile was copied with
the lock held, writes stopped for 30-65 ms (the POST's p99 under 64 connections: issue #18).
Now the hold copies what the last groups wrote, a few milliseconds with its fsyncs, once per
limit's worth of WAL: with the default, every several seconds of saturation. Other processes
(the dispatcher, the scheduler) still take the lock in their turn, which only delays the
round; while other workers of `--workers N` keep writing, this process writes on after
`WANT_LOCK_S` and the round looks for a gap between their groups until `LOCK_TRY_S`. A
reader in the middle of an old snapshot can keep the checkpoint from completing; the thread
tries again on its next round.

One thread per file: each worker of `--workers N` starts one, but only the thread holding the
`flock` of `<file>-checkpoint` runs rounds (`Checkpointer._leads`); the others try the lock
each round, so one of them leads within a round of the leader's process ending. Before, every
worker's thread checkpointed the same file, and past the bound each raised `wants_lock` in
its own process for the same hold.

Why `journal_size_limit`: a restarted WAL keeps its file's size. Every connection of the
store sets the limit, so the first commit after a restart truncates a larger file to it;
and once a whole round passes with nothing new to copy (the load has stopped), the thread
truncates the file to nothing (a TRUNCATE checkpoint: with nothing left to copy it holds the
lock for no fsync, and with another's lock held it does nothing).

Durability is unchanged: a commit is in the WAL before it is acknowledged, as before; a
checkpoint only copies committed frames, and the hold commits nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time

CHECKPOINT_S = 0.25  # how often the thread moves the WAL into the database
DEFAULT_WAL_LIMIT_MB = 256  # the WAL's bound under continuous writes (0: no bound)
LOCK_TRY_S = 0.5  # how long a round tries for the write lock, then gives up until the next
WANT_LOCK_S = 0.05  # how long of it this process's writes wait (a long turn under load)
CATCH_UP_ROUNDS = 4  # PASSIVE checkpoints before the hold, at most
CATCH_UP_FRAMES = 256  # ...until one finds no more than this many new frames
_GAP_POLL_S = 0.0005  # as the dispatcher's poll for the lock (`SqliteStore._poll_group`)


def limit_bytes(limit_mb: int) -> int:
    """`--wal-limit-mb` in bytes (0: no bound)."""
    return max(limit_mb, 0) * 1024 * 1024


class Checkpointer:
    """One round at a time (`step`), on two connections of its own: `conn` checkpoints,
    `holder` takes the write lock when the WAL must restart. `thread` runs the rounds."""

    def __init__(self, path: str, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.conn = _connect(path, limit)
        self.holder = _connect(path, limit)
        # The lock that makes one thread per file checkpoint (`_leads`); where its file cannot
        # be made (a read-only directory), every thread does, as before.
        try:
            self._lock_fd: int | None = os.open(f"{path}-checkpoint", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            self._lock_fd = None
        self.leads = self._lock_fd is None
        page = int(self.conn.execute("PRAGMA page_size").fetchone()[0])
        self.frame_bytes = page + 24  # a WAL frame: its page and a 24-byte header
        self.holds = 0  # rounds that held the write lock to restart the WAL (bench, tests)
        # Up while a round waits for the write lock: this process's store opens no new group.
        self.wants_lock = threading.Event()
        self.truncations = 0  # rounds that truncated an idle WAL's file
        self._last_frames = -1

    def step(self) -> None:
        """A PASSIVE checkpoint; then, past the limit, the locked one that lets the WAL
        restart, or, with no write since the last round, the truncation of the file. Only in
        the thread that leads on this file (`_leads`): the others' rounds do nothing."""
        if not self._leads():
            return
        frames, copied = self._checkpoint("PASSIVE")
        if frames < 0:  # not in WAL mode (yet), or busy: next round
            return
        if frames > 0 and frames == copied == self._last_frames:
            frames, _ = self._checkpoint("TRUNCATE")
            if frames == 0:
                self.truncations += 1
        elif self.limit and frames * self.frame_bytes > self.limit:
            self._restart(frames)
        self._last_frames = frames

    def _leads(self) -> bool:
        """Whether this thread checkpoints the file (one thread per file: the module
        docstring): it holds the `flock` of `<file>-checkpoint`, tried without waiting each
        round until taken, then kept until it closes."""
        if not self.leads and self._lock_fd is not None:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # another thread leads
                return False
            self.leads = True
        return True

    def wal_frames(self) -> int:
        """Frames the WAL holds now (what the next round measures against the limit)."""
        return self._checkpoint("PASSIVE")[0]

    def close(self) -> None:
        self.conn.close()
        self.holder.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # frees the lock: another worker's next round leads
            self._lock_fd = None

    def _checkpoint(self, mode: str) -> tuple[int, int]:
        """(frames in the WAL, frames copied), or (-1, -1) when it could not run."""
        try:
            row = self.conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except sqlite3.Error:  # busy, or the file went away: next round
            return -1, -1
        return int(row[1]), int(row[2])

    def _restart(self, frames: int) -> None:
        """Hold the write lock through a checkpoint of what is left (see the module
        docstring); `wants_lock` is up meanwhile. Without the lock within `LOCK_TRY_S`
        (another process kept it), try again next round."""
        # Catch up first, without the lock: each PASSIVE copies what was written during the
        # one before, a shorter time each round, until one copies little; what the hold then
        # copies (and fsyncs) is about what one checkpoint that short let through.
        for _ in range(CATCH_UP_ROUNDS):
            before = frames
            frames, _copied = self._checkpoint("PASSIVE")
            if frames < 0:
                return
            if frames - before <= CATCH_UP_FRAMES:
                break
        started = time.monotonic()
        self.wants_lock.set()
        try:
            while True:
                try:
                    self.holder.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.Error:
                    waited = time.monotonic() - started
                    if waited >= LOCK_TRY_S:
                        return
                    if waited >= WANT_LOCK_S:
                        # Another process writes (a worker of `--workers N`): this one writes
                        # on, and the round looks for a gap between their groups instead.
                        self.wants_lock.clear()
                    time.sleep(_GAP_POLL_S)
            try:
                frames, copied = self._checkpoint("PASSIVE")
                if frames >= 0 and frames == copied:
                    self.holds += 1
            finally:
                with contextlib.suppress(sqlite3.Error):
                    self.holder.execute("ROLLBACK")
        finally:
            self.wants_lock.clear()

    def run(self, interval_s: float, stop: threading.Event) -> None:
        """The thread's loop: a round every `interval_s` until `stop`."""
        try:
            while not stop.wait(interval_s):
                self.step()
        finally:
            self.close()


def _connect(path: str, limit: int) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 0")  # never wait in SQLite: the rounds poll
    set_journal_size_limit(conn, limit)
    return conn


def set_journal_size_limit(conn: sqlite3.Connection, limit: int) -> None:
    """A restarted WAL's file is cut back to `limit` bytes (no bound, 0: never cut back in a
    commit; the idle round still empties it)."""
    conn.execute(f"PRAGMA journal_size_limit = {limit or -1}")


def wal_size(path: str) -> int:
    """The WAL file's size in bytes (0 when there is none)."""
    try:
        return os.path.getsize(f"{path}-wal")
    except OSError:
        return 0


Running = tuple[threading.Thread, threading.Event, Checkpointer]  # the thread, its stop, rounds


def start(path: str, limit: int, interval_s: float = CHECKPOINT_S) -> Running | None:
    """Start the thread on `path`; None when the file cannot be opened (nothing to do)."""
    try:
        checkpointer = Checkpointer(path, limit)
    except sqlite3.Error:
        return None
    stop = threading.Event()
    thread = threading.Thread(
        target=checkpointer.run, args=(interval_s, stop), name="sandbank-checkpoint"
    )
    thread.daemon = True
    thread.start()
    return thread, stop, checkpointer
