"""The PostgreSQL store's write lock, waited for in turn (simulator/store/postgres.py): stores
that all want to write take turns instead of one of them taking the lock again and again; a
grant that no request takes up is given back; and a background process's write that waits in
the lock itself does not wait for its own process's queued wait. Each store here is one
process's; every test runs on an empty schema of the run's throwaway PostgreSQL server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from itertools import pairwise

import pytest
from throwaway_pg import ThrowawayPostgres

from simulator.store import open_store
from simulator.store.postgres import PgStore


@pytest.fixture
def open_pg(pg_server: ThrowawayPostgres) -> Iterator[Callable[[], PgStore]]:
    url = pg_server.fresh_url("lock")
    opened: list[PgStore] = []

    def open_() -> PgStore:
        store = open_store(url)
        assert isinstance(store, PgStore)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def _writes(store: PgStore, name: str, n: int, start: threading.Barrier) -> None:
    """`n` group commits, each appending `name` to the shared meta row `order` (the order in
    which the writers got the lock), as a request of a serving process would write."""

    async def run() -> None:
        start.wait(10)  # both writers' loops are running: they start together
        for _ in range(n):
            await store.writable()
            with store.grouped() as (_tx, committed):
                store.set_meta("order", (store.meta("order") or "") + name)
            await committed

    asyncio.run(run())


def test_two_stores_that_keep_writing_take_the_lock_in_turn(open_pg: Callable[[], PgStore]) -> None:
    first, second = open_pg(), open_pg()
    for store in (first, second):
        store.serving(10.0)
    start = threading.Barrier(2)
    threads = [
        threading.Thread(target=_writes, args=(s, name, 30, start))
        for s, name in ((first, "a"), (second, "b"))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    committed = first.meta("order") or ""
    assert sorted(committed) == ["a"] * 30 + ["b"] * 30  # every write, once
    # Who wrote next: waiting in PostgreSQL's lock queue, the lock changes hands at nearly every
    # commit while both want it (a writer slow to ask again, on a loaded machine, makes a short
    # run); polling for it instead, one writer took it again and again: 2 to 6 hand-overs in
    # 60 commits, runs of dozens.
    handovers = sum(1 for x, y in pairwise(committed) if x != y)
    assert handovers >= 12, committed


def test_a_grant_no_request_takes_up_is_given_back(open_pg: Callable[[], PgStore]) -> None:
    first, second = open_pg(), open_pg()
    second.serving(5.0)

    async def abandon() -> None:
        with first.transaction():
            first.set_meta("held", "1")
            waiting = asyncio.create_task(second.writable())
            await asyncio.sleep(0.05)  # `second` is queued behind `first`
            waiting.cancel()  # the request went away
        for _ in range(50):  # `first` committed: the lock goes to `second`, which gives it back
            await asyncio.sleep(0.01)

    asyncio.run(abandon())
    first.serving(0.5)
    with first.transaction():  # would be StoreBusy if `second` still held the lock
        first.set_meta("again", "1")
    assert first.meta("again") == "1"


def test_a_background_write_does_not_wait_behind_its_own_queued_wait(
    open_pg: Callable[[], PgStore],
) -> None:
    """The dispatcher's process queues for the lock (`poll_lock`) and, on the same loop, runs
    a transaction that waits in the lock itself: it takes the queued grant instead of waiting
    behind it (which would wait for itself until `lock_timeout`)."""
    first, background = open_pg(), open_pg()
    background.poll_lock = True
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with first.transaction():
            first.set_meta("held", "1")
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)

    async def scenario() -> None:
        queued = asyncio.create_task(background.writable())
        await asyncio.sleep(0.05)  # its locker now waits behind `first`
        threading.Timer(0.2, release.set).start()
        with background.transaction():  # blocks the loop, as a background write may
            background.set_meta("background", "1")
        await asyncio.wait_for(queued, 10)

    asyncio.run(scenario())
    holder.join(10)
    assert (first.meta("held"), first.meta("background")) == ("1", "1")


def test_sandboxes_in_two_schemas_of_one_database_do_not_wait_for_each_other(
    pg_server: ThrowawayPostgres,
) -> None:
    """Advisory locks are database-wide; the write lock's key is mixed with the schema's name,
    so one sandbox's write never waits for another's (nor for a lock another one leaked)."""
    one = open_store(pg_server.fresh_url("one"))
    other = open_store(pg_server.fresh_url("other"))
    try:
        other.serving(0.05)
        with one.transaction():
            one.set_meta("held", "1")
            with other.transaction():  # would be StoreBusy with one key for the database
                other.set_meta("free", "1")
        assert (one.meta("held"), other.meta("free")) == ("1", "1")
    finally:
        one.close()
        other.close()
