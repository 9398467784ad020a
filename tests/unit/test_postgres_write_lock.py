"""The PostgreSQL store's write lock, waited for in turn (simulator/store/postgres.py): stores
that all want to write take turns instead of one of them taking the lock again and again; a
grant that no request takes up is given back; and a background process's write that waits in
the lock itself does not wait for its own process's queued wait. Each store here is one
process's; every test runs on an empty schema of the run's throwaway PostgreSQL server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import psycopg
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


async def _write(store: PgStore, name: str) -> None:
    """One group commit appending `name` to the shared meta row `order` (the order in which the
    writers got the lock), as a request of a serving process writes."""
    await store.writable()
    with store.grouped() as (_tx, committed):
        store.set_meta("order", (store.meta("order") or "") + name)
    await committed


async def _queued(url: str) -> None:
    """Until a request for an advisory lock waits in PostgreSQL's queue (an event, not a
    time: 10 s at most)."""
    with psycopg.connect(url, autocommit=True) as watch:
        for _ in range(1000):
            waiting = watch.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()
            if waiting and waiting[0] >= 1:
                return
            await asyncio.sleep(0.01)
    raise AssertionError("no writer queued for the lock")


def test_a_writer_queued_for_the_lock_gets_it_before_the_holder_takes_it_again(
    open_pg: Callable[[], PgStore], pg_server: ThrowawayPostgres
) -> None:
    """The hand-over, three times over: while `first` holds the lock, `second` queues for it in
    PostgreSQL; `first` commits and at once wants it again; `second` writes first. (Polling
    for it instead, the holder took the lock again microseconds after each commit: 2 to 6
    hand-overs in 60 commits of two writers, runs of dozens.)"""
    first, second = open_pg(), open_pg()
    for store in (first, second):
        store.serving(10.0)

    async def scenario() -> None:
        for _ in range(3):
            with first.transaction():  # the lock, held across turns
                first.set_meta("order", (first.meta("order") or "") + "a")
                waiting = asyncio.create_task(_write(second, "b"))
                await _queued(pg_server.url)
            again = asyncio.create_task(_write(first, "a"))
            await asyncio.wait_for(asyncio.gather(waiting, again), 20)

    asyncio.run(scenario())
    assert first.meta("order") == "aba" * 3


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
