"""End to end: `sandbank integration migrate` (the console script, a subprocess) against a real
`sandbank serve` process: embedded credit -> gateway + net terms and back, and traditional
invoicing -> gateway, with 503s
and after-commit 500s on both accounts while it runs. A dry run first (exit 0, nothing written),
then the cut-over (exit 0), then the same command again (exit 0, nothing moved). The server is
started and stopped here (by pid); every wait is bounded."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import migration as bench  # bench/migration.py: the book builder and the fault rules
import pytest
from e2e_servers import Server

from rehearsal.processes import free_port, sandbank

pytestmark = pytest.mark.slow
ADMIN = bench.ADMIN


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("migration-e2e")
    srv = Server(
        tmp / "data", free_port(), tmp / "server.log", ["--admin-token", ADMIN, "--no-demo"]
    )
    try:
        srv.wait_healthy()
        yield srv
    finally:
        srv.stop()


def accounts(url: str, kind: str, orders: int) -> tuple[tuple[str, str], tuple[str, str]]:
    """A source with a book of business and an empty target, both under fault rules."""

    async def build() -> tuple[tuple[str, str], tuple[str, str]]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            book = bench.Book(client, concurrency=4)
            source, source_auth = await book.account("source")
            target, target_auth = await book.account("target")
            await getattr(book, kind)(source, source_auth, orders)
            for account in (source, target):
                for prefix in bench.FAULTED:
                    await book.fault(account, prefix)
            key = {"s": source_auth, "t": target_auth}
            return (
                (source, key["s"]["Authorization"].removeprefix("Bearer ")),
                (target, key["t"]["Authorization"].removeprefix("Bearer ")),
            )

    return asyncio.run(build())


def run(
    url: str,
    frm: str,
    to: str,
    *,
    source_key: str,
    target: tuple[str, str],
    tmp: Path,
    more: tuple[str, ...] = (),
) -> tuple[int, dict[str, object], str]:
    cmd = [
        *sandbank(),
        "integration",
        "migrate",
        "--from", frm, "--from-url", url, "--from-key", source_key,
        "--to", to, "--to-key", target[1], "--to-account", target[0],
        "--admin-token", ADMIN, "--report-dir", str(tmp), *more,
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    report = (
        json.loads((tmp / "migration.json").read_text())
        if (tmp / "migration.json").exists()
        else {}
    )
    return done.returncode, report, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("frm", "to"),
    [("sandbank", "gateway"), ("gateway", "sandbank"), ("invoicing", "gateway")],
    ids=["credit-to-gateway", "gateway-to-credit", "invoicing-to-gateway"],
)
def test_a_migration_against_a_real_server_moves_everything_once(
    server: Server, tmp_path: Path, frm: str, to: str
) -> None:
    kind = {"sandbank": "native"}.get(frm, frm)  # the bench's book builder
    (source, source_key), target = accounts(server.url, kind, orders=60)
    code, dry, out = run(
        server.url,
        frm,
        to,
        source_key=source_key,
        target=target,
        tmp=tmp_path / "dry",
        more=("--dry-run",),
    )
    assert code == 0, out
    assert dry["dry_run"] is True
    assert dry["tokens_imported"] == 0
    moving = dry["counts"]["move"]
    code, first, out = run(
        server.url, frm, to, source_key=source_key, target=target, tmp=tmp_path / "cut"
    )
    assert code == 0, out
    assert first["counts"]["move"] == moving
    assert all(c["ok"] for c in first["checks"])
    assert first["tokens_imported"] >= 1
    code, second, out = run(
        server.url, frm, to, source_key=source_key, target=target, tmp=tmp_path / "again"
    )
    assert code == 0, out
    assert "move" not in second["counts"]
    assert "release" not in second["counts"]
    assert "OK" in out
    assert (tmp_path / "again" / "migration.html").exists()
    assert source != target[0]
