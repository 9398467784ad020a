"""Answers of reads, reused while nothing they show can have changed (issue #18: GET path).

An integration polls: it GETs a checkout or an order again and again until its status moves.
Each such GET opened a snapshot, read the account and its next due job, read and parsed the
object, built its answer model and serialised it: about two thirds of the CPU a GET costs. A
read whose answer is a function of stored rows and its path and query alone (its endpoint
says so: `run(..., reusable=True)`; every retrieve and list of `/v1` and of the personalities,
and Credit Key's `find_order` calls) now keeps its answer's bytes, and the next GET of that
path and query answers them while all of these hold:

- **no row changed**: the store's `data_version` is the one taken before the answer was read.
  On SQLite it pairs this connection's own row changes with the `data_version` of every other
  connection's commits (workers of `--workers N`, the dispatcher and scheduler processes, a
  tool on the file), so a write anywhere discards every kept answer; only the request
  journal's rows are left out (a logged request changes no answer). On PostgreSQL the store
  cannot tell cheaply: nothing is kept.
- **no job of the account is due yet**: its virtual time, from the account's clock as it was
  when the answer was read (a clock change is a write), is before the account's earliest job
  then (a checkout's expiry, an order's) — once due, the GET runs as before, due work first.
- **the answer was a success** (a problem carries its request's own id).

Everything around the operation still happens for each request: authentication, fault rules,
the request journal, metrics, the access log; only the read and the rendering are skipped. So
a reused answer is byte for byte the one the read would give, and same seed + same requests
still give the same results. At most `MAX_KEPT` answers are kept, all dropped when full.
`sandbank serve --no-reuse-reads` (`reuse=False`) reads every time; the metrics count both
(`sandbank_reads_total`).
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.clock import to_us, virtual_now
from simulator.context import Ctx
from simulator.domain.models import Account
from simulator.service import ProviderService

MAX_KEPT = 4096  # answers kept at most (a few KB each)

Key = tuple[str, str, bytes]  # account id, path, query string


@dataclass(slots=True)  # not frozen: 0.15 against 0.7 µs to make, once per read kept
class Kept:
    version: tuple[int, int]  # the store's `data_version` taken before the read
    offset_us: int  # the account's clock when read (changing it is a write)
    frozen_at_us: int | None
    next_due_us: int | None  # the account's earliest job when read; None: none
    body: bytes | memoryview
    status: int
    media_type: str | None


class ReadCache:
    def __init__(self, service: ProviderService, *, reuse: bool = True) -> None:
        self.service = service
        self._kept: dict[Key, Kept] = {}
        self.hits = 0  # answers reused (tests and the bench read these)
        self.misses = 0
        self.reuse = reuse  # False (`--no-reuse-reads`): every read reads

    def version(self) -> tuple[int, int] | None:
        """Take before reading: None when the store cannot tell (then nothing is kept)."""
        return self.service.store.data_version()

    def get(self, key: Key, version: tuple[int, int] | None) -> Kept | None:
        """The kept answer of `key`, if still what a read at `version` would give."""
        kept = self._kept.get(key)
        if kept is None or version is None or kept.version != version or not self.reuse:
            self.misses += 1
            return None
        if kept.next_due_us is not None:
            wall = self.service.wall.now()
            now_us = to_us(virtual_now(wall, kept.offset_us, kept.frozen_at_us))
            if now_us >= kept.next_due_us:  # its job runs first: the read does that
                self.misses += 1
                return None
        self.hits += 1
        return kept

    def keep(  # noqa: PLR0917 - the answer and what it was read at, named
        self,
        key: Key,
        version: tuple[int, int] | None,
        ctx: Ctx,
        body: bytes | memoryview,
        status: int,
        media_type: str | None,
    ) -> None:
        """Keep a success read at `version` (taken before its snapshot began)."""
        if version is None or not 200 <= status < 300:
            return
        if len(self._kept) >= MAX_KEPT:
            self._kept.clear()
        account: Account = ctx.account
        self._kept[key] = Kept(
            version,
            account.clock_offset_us,
            account.clock_frozen_at_us,
            ctx.next_due_us,
            body,
            status,
            media_type,
        )

    def __len__(self) -> int:
        return len(self._kept)
