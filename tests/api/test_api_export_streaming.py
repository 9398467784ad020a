"""Issue #17, exports: built from one snapshot off the event loop, kept as chunks, streamed back
(the same bytes as ever), and nothing left behind by an export that was not kept."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest
from factories import ADMIN, START, Account, Api, file_app
from test_api_exports import busy_account, download, export

from simulator import exports
from simulator.app import SandbankApp
from simulator.clock import ManualClock
from simulator.store import export_rows


def _chunks(app: SandbankApp) -> int:
    conn = app.runtime.store.conn  # type: ignore[attr-defined]
    return int(conn.execute("SELECT COUNT(*) FROM export_chunks").fetchone()[0])


def test_an_export_on_a_database_file_gives_the_same_files_as_in_memory(
    tmp_path: Path, clock: ManualClock, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Built in a worker thread from its own snapshot, in many small chunks (the sizes
    shrunk), each file downloads byte for byte as listed and as the in-memory build gives."""
    monkeypatch.setattr(exports, "CHUNK_BYTES", 200)
    monkeypatch.setattr(export_rows, "FLUSH_BYTES", 1_000)
    monkeypatch.setattr(export_rows, "PAGE", 2)
    app = file_app(tmp_path, clock, lock_wait_s=2.0)
    on_file = Api(app, clock)
    try:
        listed: list[dict[str, Any]] = []
        for client in (api, on_file):
            account = client.new_account(seed=5)
            busy_account(client, account)
            exp = export(client, account, "csv")
            for f in exp["files"]:
                data = download(client, account, exp, f["name"].split(".")[0])
                assert len(data) == f["bytes"]
                assert hashlib.sha256(data).hexdigest() == f["sha256"]
            listed.append(exp)
        assert [f["sha256"] for f in listed[0]["files"]] == [
            f["sha256"] for f in listed[1]["files"]
        ]
        assert _chunks(app) > len(listed[1]["files"])  # many chunks per file
    finally:
        on_file.close()
        app.runtime.store.close()


def test_requests_of_other_accounts_are_answered_while_an_export_is_built(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, backend: str, api: Api
) -> None:
    """The build is held half way; another account's read is answered meanwhile, then the
    export completes. (SQLite in memory builds on the loop: there, on a database file.)"""
    started, release = threading.Event(), threading.Event()
    build = exports.build

    def held(rows: Any, fmt: Any, write: Any) -> Any:
        started.set()
        assert release.wait(10)
        return build(rows, fmt, write)

    monkeypatch.setattr(exports, "build", held)
    own = backend == "sqlite"
    if own:
        api = Api(file_app(tmp_path, clock, lock_wait_s=2.0), clock)
    try:
        big, other = api.new_account(), api.new_account()
        busy_account(api, big)
        order = api.approved_order(other, 5_000)

        async def scenario() -> tuple[int, int]:
            creating = asyncio.create_task(
                api.client.post("/v1/exports", headers=big.headers, json={"format": "jsonl"})
            )
            assert await asyncio.to_thread(started.wait, 10)
            read = await api.client.get(f"/v1/orders/{order['id']}", headers=other.headers)
            assert not creating.done()  # the read did not wait for the export
            release.set()
            return read.status_code, (await creating).status_code

        assert api.loop.run_until_complete(scenario()) == (200, 201)
    finally:
        release.set()
        if own:
            api.close()
            api.app.runtime.store.close()


def test_an_idempotent_replay_of_an_export_keeps_no_second_copy(
    api: Api, account: Account, app: SandbankApp
) -> None:
    busy_account(api, account)
    key = {**account.headers, "Idempotency-Key": "e1"}
    first = api.post("/v1/exports", headers=key, json={"format": "csv"})
    kept = _chunks(app)
    again = api.post("/v1/exports", headers=key, json={"format": "csv"})
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert _chunks(app) == kept > 0


def test_an_export_that_fails_while_built_leaves_no_chunks_and_no_export(
    api: Api, account: Account, app: SandbankApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy_account(api, account)
    build = exports.build

    def failing(rows: Any, fmt: Any, write: Any) -> Any:
        build(rows, fmt, write)  # every chunk written ...
        raise RuntimeError("disk gone")  # ... then it fails

    monkeypatch.setattr(exports, "build", failing)
    r = api.post("/v1/exports", headers=account.headers, json={"format": "csv"})
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/problem+json"
    assert _chunks(app) == 0
    assert api.get("/v1/exports", headers=account.headers).json()["data"] == []


def test_resetting_an_account_deletes_its_export_files(
    api: Api, account: Account, app: SandbankApp
) -> None:
    busy_account(api, account)
    export(api, account, "jsonl")
    assert _chunks(app) > 0
    r = api.post(f"/_sandbox/accounts/{account.id}/reset", headers=ADMIN)
    assert r.status_code == 200, r.text
    assert _chunks(app) == 0


def test_an_export_stored_whole_before_files_were_chunks_still_downloads(
    api: Api, account: Account, app: SandbankApp
) -> None:
    file = exports.ExportFile(
        name="orders.csv", content_type="text/csv", rows=0, bytes=3, sha256="x", content="id\n"
    )
    old = exports.Export(id="exp_old1", format="csv", created_at=START, files=[file])
    with app.runtime.store.transaction() as tx:
        tx.save_finance(account.id, exports.EXPORT_KIND, old, status=old.status)
    r = api.get("/v1/exports/exp_old1/files/orders.csv", headers=account.headers)
    assert r.status_code == 200, r.text
    assert r.content == b"id\n"
