"""`sandbank clock show|advance` against a real `sandbank serve` process: one line out, or one
line on stderr and a non-zero exit (never a traceback)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from rehearsal.processes import Server, free_port
from simulator.cli import main

LINE = re.compile(r"^(acct_\w+) (\S+Z) (running|frozen)$")


class Running:
    def __init__(self, url: str, data_dir: Path, account: str) -> None:
        self.url = url
        self.data_dir = data_dir
        self.account = account
        self.token = (data_dir / "admin_token").read_text().strip()

    def new_account(self) -> str:
        r = httpx.post(
            f"{self.url}/_sandbox/accounts",
            headers={"Authorization": f"Bearer {self.token}"},
            json={"name": "clock-cli"},
            timeout=10,
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def args(self, *rest: str) -> list[str]:
        """`clock <rest>` with this server's URL and data directory (the kept admin token)."""
        return ["clock", *rest, "--url", self.url, "--data-dir", str(self.data_dir)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    data_dir = tmp_path_factory.mktemp("clock-cli")
    proc = Server(data_dir, free_port(), data_dir / "server.log", ["--seed", "5"])
    try:
        proc.wait_healthy()
        found = re.search(r"demo account (acct_\w+)", proc.output())
        assert found, proc.output()
        yield Running(proc.url, data_dir, found.group(1))
    finally:
        proc.stop()


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`sandbank ARGS` in this process: (exit status, stdout, stderr); argparse's own errors
    exit through SystemExit, as they do from the command."""
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def clock_of(out: str) -> tuple[str, datetime, str]:
    assert out.count("\n") == 1, out
    match = LINE.match(out.strip())
    assert match, out
    return match.group(1), datetime.fromisoformat(match.group(2)), match.group(3)


def test_show_prints_the_clock_as_one_line(
    server: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(server.args("show", server.account), capsys)
    assert (code, err) == (0, "")
    account, _, state = clock_of(out)
    assert (account, state) == (server.account, "running")


def test_advance_moves_the_clock_by_the_duration(
    server: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    account = server.new_account()
    _, before, _ = clock_of(run(server.args("show", account), capsys)[1])
    code, out, err = run(server.args("advance", account, "30d"), capsys)
    assert (code, err) == (0, "")
    _, after, state = clock_of(out)
    assert state == "running"
    # The account clock follows the wall clock too, which moved a little between the calls.
    assert timedelta(days=30) <= after - before < timedelta(days=30, seconds=30)


def test_advance_to_a_time_and_a_frozen_clock_is_exact(
    server: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    account = server.new_account()
    r = httpx.post(
        f"{server.url}/_sandbox/accounts/{account}/clock/freeze",
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    code, out, _ = run(server.args("advance", account, "2031-01-01T00:00:00Z"), capsys)
    assert code == 0
    assert out == f"{account} 2031-01-01T00:00:00Z frozen\n"
    code, out, _ = run(server.args("advance", account, "1h30m"), capsys)
    assert (code, out) == (0, f"{account} 2031-01-01T01:30:00Z frozen\n")


def test_token_and_url_come_from_the_environment(
    server: Running, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDBANK_URL", server.url)
    monkeypatch.setenv("SANDBANK_ADMIN_TOKEN", server.token)
    monkeypatch.chdir(server.data_dir.parent)  # no .sandbank/admin_token here
    code, out, _ = run(["clock", "show", server.account], capsys)
    assert code == 0
    assert clock_of(out)[0] == server.account


@pytest.mark.parametrize("bad", ["3x", "30", "d", "-1d", "200y", "2031-13-01T00:00:00Z"])
def test_a_bad_duration_is_one_line_and_exit_2(
    server: Running, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    code, out, err = run(server.args("advance", server.account, bad), capsys)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert err.startswith("sandbank: error:")


def test_a_clock_cannot_go_back(server: Running, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(server.args("advance", server.account, "2001-01-01T00:00:00Z"), capsys)
    assert (code, out) == (1, "")
    assert err.startswith("sandbank: error: 422:")
    assert err.count("\n") == 1


def test_an_unknown_account_is_one_line_and_non_zero(
    server: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(server.args("advance", "acct_doesnotexist", "1d"), capsys)
    assert (code, out) == (1, "")
    assert err.startswith("sandbank: error: 404:")
    assert "acct_doesnotexist" in err
    assert err.count("\n") == 1


def test_a_wrong_admin_token_is_one_line_and_non_zero(
    server: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["clock", "show", server.account, "--url", server.url, "--admin-token", "sbadm_no"]
    code, out, err = run(args, capsys)
    assert (code, out) == (1, "")
    assert "refused the admin token" in err
    assert err.count("\n") == 1


def test_no_admin_token_anywhere_is_one_line(
    server: Running,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("SANDBANK_ADMIN_TOKEN", raising=False)
    args = ["clock", "show", server.account, "--url", server.url, "--data-dir", str(tmp_path)]
    code, out, err = run(args, capsys)
    assert (code, out) == (1, "")
    assert err.startswith("sandbank: error: no admin token")


def test_a_server_that_is_down_is_one_line_and_non_zero(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = free_port()  # nothing listens there
    args = ["clock", "advance", "acct_x", "1d", "--url", f"http://127.0.0.1:{port}"]
    code, out, err = run([*args, "--admin-token", "sbadm_x", "--timeout", "5"], capsys)
    assert (code, out) == (1, "")
    assert err.startswith(f"sandbank: error: cannot reach the simulator at http://127.0.0.1:{port}")
    assert err.count("\n") == 1


def test_the_installed_command_prints_one_line_and_no_traceback(server: Running) -> None:
    cli = [sys.executable, "-m", "simulator.cli"]
    ok = subprocess.run(
        [*cli, *server.args("advance", server.account, "1d")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert clock_of(ok.stdout)[0] == server.account
    bad = subprocess.run(
        [*cli, *server.args("advance", "acct_nope", "1d")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stdout == ""
    assert "Traceback" not in bad.stderr
    assert bad.stderr.count("\n") == 1
