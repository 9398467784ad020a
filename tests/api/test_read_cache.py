"""Answers of reads reused while nothing they show can have changed (`simulator.api.reads`):
a repeated GET answers the same bytes without reading the object again, and a write of this
process, a commit of another connection or a job falling due on the account's clock each make
the next GET read afresh. Errors are never reused, and a reused answer is still journaled.
(SQLite only: the PostgreSQL store reuses nothing, and the rest of the API suite runs there.)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from factories import ADMIN, START, Api, build_app, file_app
from prometheus_client.parser import text_string_to_metric_families

from simulator.api import reads
from simulator.app import SandbankApp
from simulator.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def api(clock: ManualClock) -> Iterator[Api]:
    client = Api(build_app(clock=clock), clock)
    yield client
    client.close()


def _statements(app: SandbankApp) -> list[str]:
    """Every statement the app's connection runs from now on (SQLite's trace callback)."""
    seen: list[str] = []
    app.runtime.store.conn.set_trace_callback(seen.append)
    return seen


def test_a_repeated_get_of_an_unchanged_checkout_answers_its_bytes_without_reading_it(
    api: Api,
) -> None:
    account = api.new_account()
    checkout = api.checkout(account)
    url = f"/v1/checkouts/{checkout['id']}"
    first = api.get(url, headers=account.headers)
    seen = _statements(api.app)
    again = [api.get(url, headers=account.headers) for _ in range(3)]
    assert [r.status_code for r in again] == [200, 200, 200]
    assert {r.content for r in again} == {first.content}
    assert not [s for s in seen if "FROM checkouts" in s or "FROM accounts" in s], seen
    assert api.app.runtime.reads.hits == 3


def test_a_get_after_a_write_of_this_process_shows_the_write(api: Api) -> None:
    account = api.new_account()
    checkout = api.checkout(account)
    url = f"/v1/checkouts/{checkout['id']}"
    assert api.get(url, headers=account.headers).json()["status"] == "open"
    api.approve(checkout["id"])
    assert api.get(url, headers=account.headers).json()["status"] == "completed"


def test_a_get_after_another_connections_commit_shows_it(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Another worker of `--workers N` (here, a plain connection to the same file) changes
    the row: the next GET reads it, though this process wrote nothing."""
    app = file_app(tmp_path, clock, lock_wait_s=2.0)
    api = Api(app, clock)
    other = sqlite3.connect(tmp_path / "sandbank.db", isolation_level=None)
    try:
        account = api.new_account()
        checkout = api.checkout(account)
        url = f"/v1/checkouts/{checkout['id']}"
        assert api.get(url, headers=account.headers).json()["metadata"] == {}
        assert api.get(url, headers=account.headers).json()["metadata"] == {}  # reused
        assert app.runtime.reads.hits == 1
        other.execute(
            "UPDATE checkouts SET data = json_set(data, '$.metadata.po', 'PO-7') WHERE id = ?",
            (checkout["id"],),
        )
        assert api.get(url, headers=account.headers).json()["metadata"] == {"po": "PO-7"}
    finally:
        other.close()
        api.close()
        app.runtime.store.close()


def test_a_kept_answer_gives_way_once_the_checkouts_expiry_falls_due(
    api: Api, clock: ManualClock
) -> None:
    """Nothing is written while the account's clock runs past the expiry: the job falling
    due alone makes the GET read again, and run the expiry first."""
    account = api.new_account()
    checkout = api.checkout(account)
    url = f"/v1/checkouts/{checkout['id']}"
    assert api.get(url, headers=account.headers).json()["status"] == "open"
    clock.advance(timedelta(hours=23))
    assert api.get(url, headers=account.headers).json()["status"] == "open"  # reused
    assert api.app.runtime.reads.hits == 1
    clock.advance(timedelta(hours=2))
    assert api.get(url, headers=account.headers).json()["status"] == "expired"


def test_an_error_answer_is_never_reused(api: Api) -> None:
    """A problem names its own request: two 404s of one path are two answers."""
    account = api.new_account()
    url = "/v1/checkouts/chk_AAAAAAAAAAAAAAAAAAAA"
    first, second = (api.get(url, headers=account.headers) for _ in range(2))
    assert (first.status_code, second.status_code) == (404, 404)
    assert first.json()["request_id"] != second.json()["request_id"]


def test_a_reused_answer_is_still_journaled(api: Api) -> None:
    account = api.new_account()
    checkout = api.checkout(account)
    for _ in range(3):
        api.get(f"/v1/checkouts/{checkout['id']}", headers=account.headers)
    r = api.post(
        "/_sandbox/requests/count",
        headers=ADMIN,
        json={"account": account.id, "operation": "getCheckout"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 3
    assert api.app.runtime.reads.hits == 2


def test_a_head_after_a_get_answers_its_length_without_a_body(api: Api) -> None:
    account = api.new_account()
    checkout = api.checkout(account)
    url = f"/v1/checkouts/{checkout['id']}"
    got = api.get(url, headers=account.headers)
    head = api.request("HEAD", url, headers=account.headers)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"]


def test_the_kept_answers_stay_within_their_bound(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reads, "MAX_KEPT", 3)
    account = api.new_account()
    ids = [api.checkout(account)["id"] for _ in range(5)]
    for ident in ids:
        assert api.get(f"/v1/checkouts/{ident}", headers=account.headers).status_code == 200
        assert len(api.app.runtime.reads) <= 3


def test_journal_rows_leave_the_data_version_as_it_was_and_other_rows_do_not(
    api: Api,
) -> None:
    store = api.app.runtime.store
    account = api.new_account()
    before = store.data_version()
    api.get("/v1/orders", headers=account.headers)  # a read: its journal row only
    assert store.data_version() == before
    api.checkout(account)
    assert store.data_version() != before


def test_a_polled_list_shows_a_new_event_and_each_query_has_its_own_answer(api: Api) -> None:
    account = api.new_account()
    api.checkout(account)
    one = api.get("/v1/events", headers=account.headers, params={"limit": 1}).json()
    two = api.get("/v1/events", headers=account.headers, params={"limit": 2}).json()
    assert (len(one["data"]), len(two["data"])) == (1, 2)
    again = api.get("/v1/events", headers=account.headers, params={"limit": 1}).json()
    assert again == one  # reused
    assert api.app.runtime.reads.hits == 1
    api.checkout(account)
    newest = api.get("/v1/events", headers=account.headers, params={"limit": 1}).json()
    assert newest["data"][0]["id"] != one["data"][0]["id"]


def test_the_metrics_count_reused_and_read_answers(api: Api) -> None:
    account = api.new_account()
    checkout = api.checkout(account)
    for _ in range(3):
        api.get(f"/v1/checkouts/{checkout['id']}", headers=account.headers)
    api.get("/v1/checkouts/chk_AAAAAAAAAAAAAAAAAAAA", headers=account.headers)  # 404: read
    text = api.get("/metrics").text
    samples = {
        s.labels.get("answer"): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "sandbank_reads_total"
    }
    assert samples == {"reused": 2, "read": 2}


def test_with_reuse_off_every_get_reads(clock: ManualClock) -> None:
    """`sandbank serve --no-reuse-reads`."""
    api = Api(build_app(clock=clock, reuse_reads=False), clock)
    try:
        account = api.new_account()
        checkout = api.checkout(account)
        for _ in range(3):
            api.get(f"/v1/checkouts/{checkout['id']}", headers=account.headers)
        assert (api.app.runtime.reads.hits, api.app.runtime.reads.misses) == (0, 3)
    finally:
        api.close()


def test_a_polled_gateway_invoice_goes_past_due_when_its_day_comes(
    api: Api, clock: ManualClock
) -> None:
    """The personalities' reads are reused too: the invoice's overdue job falling due on the
    running clock (nothing written meanwhile) makes the next GET read, and run it."""
    account = api.new_account()
    body = {
        "number": "INV-7",
        "customer": {"name": "Acme", "email": "ap+pays_late@acme.test", "external_id": "C-7"},
        "amount": 100_000,
        "currency": "USD",
        "net_days": 30,
    }
    r = api.post("/gateway/v1/invoices", headers=account.headers, json=body)
    assert r.status_code == 201, r.text
    url = f"/gateway/v1/invoices/{r.json()['id']}"
    r = api.post(f"{url}/issue", headers=account.headers, json={})
    assert r.status_code == 200, r.text
    polls = [api.get(url, headers=account.headers).json()["past_due"] for _ in range(2)]
    assert polls == [False, False]
    assert api.app.runtime.reads.hits == 1
    clock.advance(timedelta(days=31))
    assert api.get(url, headers=account.headers).json()["past_due"] is True
