"""The `sandbank` command: versions, help, one-line errors, contract drift check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from simulator import __version__
from simulator.cli import main

SANDBANK = [sys.executable, "-m", "simulator.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SANDBANK, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_version_prints_the_package_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"sandbank {__version__}"


@pytest.mark.parametrize("command", [[], ["serve"], ["contract"]])
def test_help_is_available_everywhere(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0
    assert "usage: sandbank" in result.stdout


def test_unknown_option_is_one_line_and_non_zero() -> None:
    result = run("serve", "--port", "not-a-number")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("sandbank: error:")


def test_unknown_command_is_one_line_and_non_zero() -> None:
    result = run("frobnicate")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1


def test_memory_database_cannot_be_shared_by_workers(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--db", ":memory:", "--workers", "2"])
    assert "cannot be shared" in str(exc.value.code)


def test_a_negative_wal_limit_stops_serve_with_one_line() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--wal-limit-mb", "-1"])
    assert str(exc.value.code) == "sandbank: error: --wal-limit-mb must be 0 or more"


def test_committed_contract_documents_match_the_code() -> None:
    assert main(["contract", "--check"]) == 0


def test_a_bad_fault_file_stops_serve_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "faults.yaml"
    bad.write_text("rules:\n  - effect: {type: status, status: 200}\n")
    result = run("serve", "--db", ":memory:", "--faults", str(bad))
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1
    assert "rules[0].effect.status" in result.stderr


def test_a_missing_fault_file_stops_serve_with_one_line(tmp_path: Path) -> None:
    result = run("serve", "--db", ":memory:", "--faults", str(tmp_path / "nope.yaml"))
    assert result.returncode != 0
    assert result.stderr.strip().startswith("sandbank: error: cannot read")
    assert result.stderr.count("\n") == 1
