"""Issue #17, request level, against real `sandbank serve` processes on a large database file:
unrelated requests are answered while months of one account's work run at a 2-worker start or
in a 90-day advance, contention is never a 500, and the dump streams.

The database is built by bench/contention.py's builder (the same book of captured orders the
benchmark measures). No assertion here is on a latency (a loaded machine slows everything):
they count what answered while the heavy request was still unanswered, which a stalled
neighbour cannot do however fast or slow the machine; the latencies are figures of `make bench`.
Processes are started and stopped by pid (bench/contention.py's Server).
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import contention

pytestmark = pytest.mark.slow

ORDERS = 4_000  # months of due work: hundreds of steps, each of which lets others in
# Probes answered during the advance: a stalled server answers at most the PROBES_IN_FLIGHT (4)
# sent before the advance arrived, and as many in the loop turn of its answer; a server that
# interleaves answers hundreds (bench/contention.py prints the count).
ANSWERED_DURING_ADVANCE = 5 * contention.PROBES_IN_FLIGHT


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("book")
    pristine, due = tmp / "pristine.db", tmp / "due.db"
    built = contention.build(tmp, pristine, due, ORDERS, 200)
    return {**built, "pristine": pristine, "due": due}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst


def test_reads_right_after_a_two_worker_start_answer_before_the_due_work_is_done(
    book: dict[str, Any], tmp_path: Path
) -> None:
    """16 concurrent reads as soon as a 2-worker server answers, one of them to the big
    account, which first runs its months of due work: no 500, and every one of the 15
    unrelated reads answered before that one (none waited for the due work)."""
    sample = contention.start_phase(book["due"], tmp_path, book, starts=2)
    assert sample.statuses.keys() <= {200, 503}, sample.statuses
    assert sample.statuses[200] >= 28, sample.statuses
    assert sample.late == 0, sample.row()


def test_a_90_day_advance_of_one_account_leaves_another_answering(
    book: dict[str, Any], tmp_path: Path
) -> None:
    db = _copy(book["pristine"], tmp_path / "advance.db")
    server = contention.Server.start(tmp_path, db, 1, tmp_path / "server.log")
    try:
        server.wait_healthy()

        async def advance(client: httpx.AsyncClient) -> None:
            r = await client.post(
                f"/_sandbox/accounts/{book['big']}/clock/advance", json={"by": "90d"}
            )
            assert r.status_code == 200, r.text

        sample, _ = asyncio.run(
            contention.probe_during(server.url, book["small_key"], book["order"], advance)
        )
    finally:
        server.stop()
    assert set(sample.statuses) == {200}, sample.statuses
    assert sample.during >= ANSWERED_DURING_ADVANCE, (sample.during, sample.row())


def test_the_dump_of_a_large_account_streams_in_full(book: dict[str, Any], tmp_path: Path) -> None:
    db = _copy(book["pristine"], tmp_path / "dump.db")
    server = contention.Server.start(tmp_path, db, 1, tmp_path / "server.log")
    try:
        server.wait_healthy()
        headers = {"Authorization": f"Bearer {contention.ADMIN}"}
        with httpx.stream(
            "GET", f"{server.url}/_sandbox/accounts/{book['big']}/dump", headers=headers, timeout=60
        ) as r:
            assert r.status_code == 200
            assert "content-length" not in r.headers  # streamed, not built whole first
            body = b"".join(r.iter_bytes())
    finally:
        server.stop()
    dump = orjson.loads(body)
    assert dump["account"]["id"] == book["big"]
    assert len(dump["orders"]) == book["orders"]
    assert {"buyers", "checkouts", "events", "scheduled", "money"} <= set(dump)


def test_the_export_of_a_large_account_streams_every_file_in_full(
    book: dict[str, Any], tmp_path: Path
) -> None:
    """Built from a snapshot off the event loop and kept as chunks: every file downloads with
    the size and hash the export lists, and the orders file has a row per order."""
    db = _copy(book["pristine"], tmp_path / "export.db")
    server = contention.Server.start(tmp_path, db, 1, tmp_path / "server.log")
    headers = {"Authorization": f"Bearer {book['big_key']}"}
    try:
        server.wait_healthy()
        with httpx.Client(base_url=server.url, headers=headers, timeout=120) as client:
            r = client.post("/v1/exports", json={"format": "jsonl"})
            assert r.status_code == 201, r.text
            files = {f["name"]: f for f in r.json()["files"]}
            for name, listed in files.items():
                digest, size, lines = hashlib.sha256(), 0, 0
                with client.stream("GET", listed["url"]) as file:
                    assert file.status_code == 200
                    for chunk in file.iter_bytes():
                        digest.update(chunk)
                        size += len(chunk)
                        lines += chunk.count(b"\n")
                assert (size, digest.hexdigest()) == (listed["bytes"], listed["sha256"]), name
                assert lines == listed["rows"], name
    finally:
        server.stop()
    assert files["orders.jsonl"]["rows"] == book["orders"]
