"""The request journal: every /v1 request, the newest `size` per account kept in the store
(WireMock's request log), with filters for listing and a count for verification.

In the store (`Tx.add_requests`), not in a process's memory, so that every worker of
`sandbank serve --workers N` lists every request and a restart keeps them (issue #16). An
entry is written before its response leaves: inside the request's own group commit when the
operation ran without a fault (`write`, called by `simulator.api.runtime.run`), otherwise in a
group commit of its own that the response awaits (`save`), shared with the other requests of
the same event-loop turn. Listeners (metrics, the console's live view) hear of every entry
this process records (`record`)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from simulator.domain.errors import StoreBusy
from simulator.domain.records import Page
from simulator.faults.engine import path_pattern
from simulator.store.base import Store, Tx
from simulator.store.cursor import decode_cursor, page_of

DEFAULT_RING = 10_000
PAGE = 1000  # journal rows read at a time when listing or counting
BACKLOG_MAX = 10_000  # entries waiting for a busy write lock, at most (then the oldest go)
DRAIN_RETRY_S = 0.01
log = logging.getLogger("sandbank.journal")


@dataclass(slots=True)
class Entry:
    seq: int
    at: datetime  # the server's wall clock (RFC 3339 in `public`)
    request_id: str
    account: str | None
    method: str
    path: str
    operation: str | None
    status: int | None  # None when the connection was reset or closed before a status
    latency_ms: float
    idempotency_key: str | None
    attempt: int | None
    replayed: bool
    fault: dict[str, Any] | None  # {"rule", "effect", "phase", "preset"} when one fired

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return data

    def stored(self) -> str:
        """The entry as the journal keeps it (its `seq` there is ignored: the row's counts).
        orjson writes the dataclass itself, an order of magnitude faster than `public`."""
        return orjson.dumps(self, option=orjson.OPT_UTC_Z).decode()

    @classmethod
    def load(cls, seq: int, text: str) -> Entry:
        data = orjson.loads(text)
        data["seq"] = seq
        data["at"] = datetime.fromisoformat(data["at"])
        return cls(**data)


class RequestFilter(BaseModel):
    """What to look for; every given field must hold. Used by list and count."""

    model_config = ConfigDict(extra="forbid", strict=False)
    account: Annotated[str, Field(max_length=64)] | None = None
    operation: Annotated[str, Field(max_length=64)] | None = None
    method: Literal["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS"] | None = None
    path: (
        Annotated[
            str,
            Field(
                pattern=r"^/",
                max_length=300,
                description="A path template (`/v1/orders/{id}`) or a prefix ending in `*`.",
            ),
        ]
        | None
    ) = None
    status: Annotated[int, Field(ge=100, le=599)] | None = None
    idempotency_key: Annotated[str, Field(max_length=255)] | None = None
    replayed: bool | None = None
    faulted: bool | None = Field(None, description="Only requests a fault did (or did not) hit.")
    fault_rule: Annotated[str, Field(max_length=64)] | None = None
    fault_effect: Annotated[str, Field(max_length=32)] | None = None

    def holds(self, e: Entry) -> bool:
        if self.operation is not None and e.operation != self.operation:
            return False
        if self.method is not None and e.method != self.method:
            return False
        if self.path is not None and not path_pattern(self.path).match(e.path):
            return False
        if self.status is not None and e.status != self.status:
            return False
        if self.idempotency_key is not None and e.idempotency_key != self.idempotency_key:
            return False
        if self.replayed is not None and e.replayed != self.replayed:
            return False
        if self.faulted is not None and (e.fault is not None) != self.faulted:
            return False
        if self.fault_rule is not None and (e.fault or {}).get("rule") != self.fault_rule:
            return False
        return self.fault_effect is None or (e.fault or {}).get("effect") == self.fault_effect


class Journal:
    def __init__(self, size: int = DEFAULT_RING, store: Store | None = None) -> None:
        self.size = size
        self.store = store  # None: listeners only (the console's benchmark)
        self._seq = 0
        self._written: dict[str | None, int] = {}  # rows this process wrote, per account
        self._backlog: deque[Entry] = deque()  # entries that met the write lock taken
        self._drain: asyncio.Task[None] | None = None
        self._unannounced: set[int] = set()  # ids of queued entries the listeners await
        # This turn's entries, each with the future its request awaits (one per request: a
        # request that is cancelled cancels only its own wait, never the others').
        self._batch: list[tuple[Entry, asyncio.Future[None]]] | None = None
        # Told of every entry as it is recorded: the metrics and the console's live view.
        self.listeners: list[Callable[[Entry], None]] = []

    def next_seq(self) -> int:
        """This process's count of the entries it recorded (the stored seq is the row's)."""
        self._seq += 1
        return self._seq

    def record(self, entry: Entry) -> None:
        """Tell the listeners of an entry, once it has its seq (an entry still waiting for a
        busy write lock is told of once stored)."""
        if entry.seq == 0 and self.store is not None:
            self._unannounced.add(id(entry))
            return
        for listener in self.listeners:
            listener(entry)

    def write(self, tx: Tx, entry: Entry) -> None:
        """Store the entry in the caller's transaction (it gets its seq; see `write_all`)."""
        self.write_all(tx, [entry])

    def write_all(self, tx: Tx, entries: list[Entry]) -> None:
        """Store the entries in the caller's transaction, in order, with as few statements as
        the store can (each gets its seq); every `size // 10` rows of an account this process
        writes, trim its journal to the newest `size`. Quietly (`Store.quietly`): a logged
        request changes no answer, so reads' cached answers stay (`simulator.api.reads`)."""
        assert self.store is not None  # entries are written only with a store
        with self.store.quietly():
            seqs = tx.add_requests([(e.account, e.stored()) for e in entries])
            every = max(1, self.size // 10)
            trim: set[str] = set()
            for entry, seq in zip(entries, seqs, strict=True):
                entry.seq = seq
                n = self._written[entry.account] = self._written.get(entry.account, 0) + 1
                if entry.account is not None and n % every == 0:
                    trim.add(entry.account)
            for account in sorted(trim):
                tx.forget_requests(account, keep=self.size)

    async def save(self, entry: Entry) -> None:
        """Store the entry, with the others of this event-loop turn, in the turn's group commit,
        and await that commit; or, when another process holds the write lock, later: a read
        (GET) never waits for a writer (issue #17), so its entry then trails its response by
        that writer's commit."""
        if self.store is None:
            return
        loop = asyncio.get_running_loop()
        if self._batch is None:
            self._batch = []
            loop.call_soon(self._write_batch)
        stored = loop.create_future()
        self._batch.append((entry, stored))
        try:
            await stored
        except Exception:  # the whole group failed; its operations say why
            log.warning("the journal lost %s: its commit failed", entry.request_id)

    def _write_batch(self) -> None:
        """The turn's entries in one savepoint of the group commit; their waiters complete with
        it (or at once, if the lock is taken: the entries wait in the backlog)."""
        assert self._batch is not None
        assert self.store is not None
        batch, self._batch = self._batch, None
        waiters = [stored for _, stored in batch]
        try:
            with self.store.grouped() as (tx, committed):
                self.write_all(tx, [entry for entry, _ in batch])
        except StoreBusy:
            for entry, _ in batch:
                self._later(entry)
            _settle(waiters, None)
            return
        except Exception as exc:  # never leave the requests waiting
            _settle(waiters, exc)
            return
        asyncio.ensure_future(committed).add_done_callback(lambda f: _relay(f, waiters))

    def _later(self, entry: Entry) -> None:
        if len(self._backlog) >= BACKLOG_MAX:
            lost = self._backlog.popleft()
            log.warning("the journal lost %s: too many entries waiting", lost.request_id)
        self._backlog.append(entry)
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_task(self._drained())

    async def _drained(self) -> None:
        """Store the entries that met a busy lock, as soon as it is free."""
        store = self.store
        assert store is not None  # entries are queued only with a store
        try:
            while self._backlog:
                try:
                    await store.writable()
                except StoreBusy:
                    await asyncio.sleep(DRAIN_RETRY_S)
                    continue
                waiting = list(self._backlog)
                self._backlog.clear()
                with store.grouped() as (tx, committed):
                    self.write_all(tx, waiting)
                try:
                    await committed
                except Exception:
                    log.warning("the journal lost %d entries: their commit failed", len(waiting))
                for entry in waiting:
                    if id(entry) in self._unannounced:
                        self._unannounced.discard(id(entry))
                        self.record(entry)
        finally:
            self._drain = None

    def _entries(self, account: str | None, before: int | None = None) -> Iterator[Entry]:
        """Newest first (below seq `before`, if given), a page of rows at a time (each page its
        own snapshot)."""
        if self.store is None:
            return
        while True:
            with self.store.transaction(write=False) as tx:
                rows = tx.requests(account, before_seq=before, limit=PAGE)
            for seq, text in rows:
                yield Entry.load(seq, text)
            if len(rows) < PAGE:
                return
            before = rows[-1][0]

    def find(self, flt: RequestFilter, limit: int, cursor: str | None = None) -> Page[Entry]:
        """The matching entries, newest first, `limit` at a time from `cursor` on (the store
        is read from the cursor's position, and no further than the page needs)."""
        before = decode_cursor(cursor) if cursor is not None else None
        matched = ((e.seq, e) for e in self._entries(flt.account, before) if flt.holds(e))
        return page_of(matched, limit, None, descending=True)

    def count(self, flt: RequestFilter) -> int:
        return sum(1 for e in self._entries(flt.account) if flt.holds(e))

    def clear(self, account: str | None = None) -> int:
        """Forget the journal (or one account's part): how many entries were deleted."""
        if self.store is None:
            return 0
        with self.store.transaction() as tx:
            return tx.forget_requests(account)


def _relay(committed: asyncio.Future[None], waiters: list[asyncio.Future[None]]) -> None:
    """The group's outcome, to the entries' waiters."""
    _settle(waiters, None if committed.cancelled() else committed.exception())


def _settle(waiters: list[asyncio.Future[None]], error: BaseException | None) -> None:
    """Complete every waiter still awaited (one whose request was cancelled is done already);
    an error is marked seen, each waiter logs it."""
    for waiter in waiters:
        if waiter.done():
            continue
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)
            waiter.add_done_callback(_retrieve)


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
