"""The Store protocol's contract, on each store: SQLite (a file, since some promises are about
two connections) and PostgreSQL (an empty schema on the run's throwaway server). What the
services rely on: all or nothing per transaction and per savepoint, pages in a stable order,
jobs popped once in due order, idempotency records that expire, one writer at a time (a
second one is refused with `StoreBusy` while serving, never blocked), a delivery claimed by
one store only, migrations applied once, and the streamed dump.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from factories import START
from throwaway_pg import ThrowawayPostgres

from simulator.api.schemas import presenter
from simulator.clock import ManualClock, to_us
from simulator.domain.errors import StoreBusy
from simulator.domain.models import Account
from simulator.domain.records import SavedResponse
from simulator.domain.webhooks import Delivery
from simulator.rng import SeededRng
from simulator.service import ProviderService
from simulator.store import open_store
from simulator.store.sqlite import MIGRATIONS, SqliteStore

Opener = Callable[[], SqliteStore]


@pytest.fixture(params=["sqlite", "postgres"])
def open_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens another store on the same (new) database; all are closed after the test."""
    if request.param == "sqlite":
        db = str(tmp_path / "contract.db")
    else:
        server: ThrowawayPostgres = request.getfixturevalue("pg_server")
        db = server.fresh_url("contract")
    opened: list[SqliteStore] = []

    def open_() -> SqliteStore:
        opened.append(open_store(db))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def store(open_db: Opener) -> SqliteStore:
    return open_db()


def _service(store: SqliteStore) -> ProviderService:
    return ProviderService(store, ManualClock(START), presenter, public_url="http://sandbank.test")


def _account(store: SqliteStore, name: str = "a") -> str:
    service = _service(store)
    with store.transaction() as tx:
        return service.create_account(tx, SeededRng("server", len(name)), name=name, seed=3).id


def test_a_transaction_that_raises_keeps_nothing_and_a_savepoint_only_its_own(
    store: SqliteStore,
) -> None:
    def write_then_fail(key: str, within: AbstractContextManager[object]) -> None:
        with within:
            store.set_meta(key, "1")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        write_then_fail("gone", store.transaction())
    assert store.meta("gone") is None
    with store.transaction() as tx:
        store.set_meta("kept", "1")
        with pytest.raises(RuntimeError):
            write_then_fail("undone", tx.savepoint())
    assert (store.meta("kept"), store.meta("undone")) == ("1", None)


def test_accounts_are_paged_oldest_first(store: SqliteStore) -> None:
    made = [_account(store, "x" * n) for n in range(1, 6)]
    seen: list[str] = []
    cursor = None
    with store.read() as tx:
        for _ in range(10):
            page = tx.accounts(limit=2, cursor=cursor)
            seen += [a.id for a in page.items]
            if not page.has_more:
                break
            cursor = page.next_cursor
    assert seen[-5:] == made


def test_buyers_are_paged_newest_first_and_found_by_external_id(store: SqliteStore) -> None:
    aid = _account(store)
    service = _service(store)
    ids = []
    for n in range(5):
        with service.scope(aid) as ctx:
            buyer = service.create_buyer(
                ctx, legal_name=f"B{n}", email=f"b{n}@x.test", external_id=f"ext-{n}"
            )
            ids.append(buyer.id)
    with store.read() as tx:
        first = tx.list_buyers(aid, external_id=None, limit=3, cursor=None)
        rest = tx.list_buyers(aid, external_id=None, limit=3, cursor=first.next_cursor)
        found = tx.buyer_by_external_id(aid, "ext-2")
        assert tx.id_taken(ids[0])
        assert not tx.id_taken("buy_nothere")
    assert [b.id for b in first.items + rest.items] == ids[::-1]
    assert first.has_more
    assert not rest.has_more
    assert found is not None
    assert found.id == ids[2]


def test_an_account_is_read_with_the_due_time_of_its_own_next_job(store: SqliteStore) -> None:
    aid, other = _account(store), _account(store, "other")
    with store.transaction() as tx:
        found = tx.account_due(aid)
        assert found is not None
        assert found[0].id == aid
        assert found[1] is None
        for due in (30, 20):
            tx.schedule(aid, due, "test", "a")
        tx.schedule(other, 5, "test", "b")
        assert tx.account_due("acct_missing") is None
    with store.transaction(write=False) as tx:
        account, due = tx.account_due(aid) or (None, None)
        assert account == tx.account(aid)
        assert due == tx.next_due(aid) == 20


def test_jobs_pop_in_due_order_once_each(store: SqliteStore) -> None:
    aid = _account(store)
    with store.transaction() as tx:
        for due, ref in ((30, "c"), (10, "a"), (20, "b"), (10, "a2")):
            tx.schedule(aid, due, "test", ref)
    with store.transaction() as tx:
        assert tx.next_due(aid) == 10
        popped = [tx.pop_due(aid, 25) for _ in range(4)]
    assert [j.ref if j else None for j in popped] == ["a", "a2", "b", None]
    with store.transaction() as tx:
        job = tx.pop_due(aid, 100)
        assert job is not None
        assert job.ref == "c"
        assert tx.pop_due(aid, 100) is None


def test_a_saved_response_is_replaced_and_expires(store: SqliteStore) -> None:
    aid = _account(store)
    with store.transaction() as tx:
        tx.save_response(aid, "k", SavedResponse("f1", 201, b"one", "application/json"), 0, 100)
        tx.save_response(aid, "k", SavedResponse("f2", 200, b"\x00two", "text/plain"), 0, 100)
    with store.transaction() as tx:
        assert tx.saved_response(aid, "k", 50) == SavedResponse("f2", 200, b"\x00two", "text/plain")
        assert tx.saved_response(aid, "k", 100) is None
        assert tx.expire_responses(aid, 100) == 1


def test_a_second_writer_is_refused_while_serving_and_a_reader_is_not_blocked(
    open_db: Opener,
) -> None:
    first, second = open_db(), open_db()
    second.serving(0.05)
    with first.transaction():
        first.set_meta("held", "1")
        with pytest.raises(StoreBusy), second.transaction():
            second.set_meta("other", "1")
        with second.transaction(write=False):
            assert second.meta("held") is None  # not committed yet
        with pytest.raises(StoreBusy):
            asyncio.run(second.writable())
    with second.transaction():
        second.set_meta("other", "1")
    assert (first.meta("held"), first.meta("other")) == ("1", "1")


def test_a_background_store_polls_for_the_write_lock_with_its_loop_free(
    open_db: Opener,
) -> None:
    """The dispatcher's process (`poll_lock`) awaits another store's write lock in short
    polls, its event loop running meanwhile, and takes the lock once it is free."""
    first, second = open_db(), open_db()
    second.poll_lock = True

    async def scenario() -> bool:
        with first.transaction():
            first.set_meta("held", "1")
            waiting = asyncio.create_task(second.writable())
            for _ in range(50):
                await asyncio.sleep(0.002)  # the loop turns while `second` waits
            still_waiting = not waiting.done()
        await asyncio.wait_for(waiting, 5)
        with second.transaction():
            second.set_meta("polled", "1")
        return still_waiting

    assert asyncio.run(scenario())
    assert (first.meta("held"), first.meta("polled")) == ("1", "1")


def test_a_delivery_is_claimed_by_one_store_only(open_db: Opener) -> None:
    first, second = open_db(), open_db()
    aid = _account(first)
    delivery = Delivery(
        id="whd_1", endpoint_id="we_1", event_id="evt_1", event_type="buyer.created",
        next_attempt_at=START, created_at=START,
    )  # fmt: skip
    with first.transaction() as tx:
        tx.insert_delivery(aid, delivery, to_us(START))
    data = delivery.model_dump_json()
    now = to_us(START + timedelta(days=400))
    with first.transaction() as tx:
        assert [d[1] for d in tx.due_deliveries(now, None, limit=10)] == ["whd_1"]
    claims = []
    for store in (first, second, first):
        with store.transaction() as tx:
            claims.append(tx.claim_delivery(aid, "whd_1", data, now, now + 60_000_000))
    assert claims == [True, False, False]
    with second.transaction() as tx:
        assert tx.due_deliveries(now, None, limit=10) == []
        assert tx.leased_deliveries(now, aid) == 1


def test_an_operation_stores_its_accounts_rng_counter_and_every_read_sees_it(
    store: SqliteStore,
) -> None:
    """The counter an operation moved is kept (without the account document) and read back
    by each way of loading the account; a whole-account save keeps its own counter."""
    aid = _account(store)
    service = _service(store)
    with service.scope(aid) as ctx:
        service.create_buyer(ctx, legal_name="Counted", email="c@x.test")
        moved = ctx.rng.counter
    assert moved > 0
    with store.read() as tx:
        account = tx.account(aid)
        assert account is not None
        by_key = tx.account_by_key(account.api_key)
        listed = [a for a in tx.accounts(limit=10).items if a.id == aid]
    assert account.rng_counter == moved
    assert by_key is not None
    assert by_key.rng_counter == moved
    assert [a.rng_counter for a in listed] == [moved]
    with service.scope(aid) as ctx:
        service.set_seed(ctx, 4)  # restarts the sequence: the whole account saved at 0
    with store.read() as tx:
        account = tx.account(aid)
    assert account is not None
    assert (account.seed, account.rng_counter) == (4, 0)


def test_a_database_from_before_the_counter_column_continues_each_accounts_sequence(
    tmp_path: Path,
) -> None:
    """SQLite, migrations 1-6 only (the counter in the account document): opened now, the
    column is added, the document's counter is read, and the next id is the one after it."""
    path = tmp_path / "old.db"
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    for version, script in enumerate(MIGRATIONS[:6], start=1):
        for statement in script.split(";"):
            if statement.strip():
                old.execute(statement)
        old.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, f"m{version}"))
    account = Account(
        id="acct_old", name="old", api_key="sk_test_old", seed=9, rng_counter=5, created_at=START
    )
    old.execute(
        "INSERT INTO accounts (id, api_key, data) VALUES (?, ?, ?)",
        (account.id, account.api_key, account.model_dump_json()),
    )
    old.close()
    store = SqliteStore(str(path))
    try:
        assert store.schema_version() == len(MIGRATIONS)
        service = _service(store)
        with service.scope("acct_old") as ctx:
            assert ctx.account.rng_counter == 5
            buyer = service.create_buyer(ctx, legal_name="Later", email="l@x.test")
        assert buyer.id == SeededRng("acct_old", 9, 5).id("buy")
        with store.read() as tx:
            again = tx.account("acct_old")
        assert again is not None
        assert again.rng_counter == ctx.rng.counter > 5
    finally:
        store.close()


def test_a_second_store_on_a_migrated_database_migrates_nothing(open_db: Opener) -> None:
    first = open_db()
    first.set_meta("mark", "1")
    second = open_db()
    assert second.schema_version() == first.schema_version() >= 4
    assert second.meta("mark") == "1"


def test_the_dump_streams_an_accounts_objects(store: SqliteStore) -> None:
    aid = _account(store)
    service = _service(store)
    with service.scope(aid) as ctx:
        buyer = service.create_buyer(ctx, legal_name="Dumped", email="d@x.test")
    stream = store.dump_stream(aid, {"id": aid})
    assert not hasattr(stream, "__aiter__")
    doc = orjson.loads(b"".join(stream))  # type: ignore[arg-type]
    assert doc["account"] == {"id": aid}
    assert [b["id"] for b in doc["buyers"]] == [buyer.id]
    assert [e["type"] for e in doc["events"]] == ["buyer.created"]


def test_work_off_the_loop_is_refused_as_busy_when_no_pooled_connection_frees_up(
    pg_server: ThrowawayPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: dumps, export builds and downloads each take a pooled connection; with all
    of them streaming, the next is a `StoreBusy` (a 503 with Retry-After), never a hang."""
    from simulator.store import postgres  # noqa: PLC0415 - needs the postgres extra

    monkeypatch.setattr(postgres, "POOL_WAIT_S", 0.2)
    store = postgres.PgStore(pg_server.fresh_url("pool"), pool_max=2)  # the loop's, and one
    try:
        with store._pooled(), pytest.raises(StoreBusy):
            asyncio.run(store.drop_export("spool"))
        asyncio.run(store.drop_export("spool"))  # freed: it runs
    finally:
        store.close()
