"""`sandbank contract` against a server: a throwaway account by default, never someone's data;
an API key alone only when the user says they know it writes; JUnit for CI; progress to 100 %."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sandbank_pytest import SandbankAccount, SandbankServer
from simulator.cli import main


def test_an_api_key_alone_is_refused_with_the_reason(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CONTRACT_ADMIN_TOKEN", "SANDBANK_ADMIN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    code = main(["contract", "--base-url", "http://127.0.0.1:9", "--api-key", "sk_test_x"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "writes to the account it runs in" in err
    assert "--i-know-this-writes" in err


def test_a_base_url_without_credentials_asks_for_the_admin_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CONTRACT_ADMIN_TOKEN", "SANDBANK_ADMIN_TOKEN", "CONTRACT_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert main(["contract", "--base-url", "http://127.0.0.1:9"]) == 2
    assert "needs its admin token" in capsys.readouterr().err


@pytest.mark.slow
def test_against_a_server_it_runs_in_a_throwaway_account_and_writes_junit(
    sandbank_server: SandbankServer, sandbank: SandbankAccount, tmp_path: Path
) -> None:
    junit = tmp_path / "contract.xml"
    before = {a["id"] for a in sandbank.admin.get("/_sandbox/accounts").json()["data"]}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator.cli",
            "contract",
            "--base-url",
            sandbank_server.url,
            "--admin-token",
            sandbank_server.admin_token,
            "-k",
            "examples and checkouts",
            "--junit",
            str(junit),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[100%]" in done.stdout
    cases = ET.parse(junit).getroot().findall(".//testcase")  # noqa: S314 - our own report
    names = [c.get("name") for c in cases]
    assert len(names) >= 4
    assert len(set(names)) == len(names)  # one case per operation, not one name for all
    assert "test_examples[POST /v1/checkouts]" in names
    accounts = sandbank.admin.get("/_sandbox/accounts").json()["data"]
    new = [a for a in accounts if a["id"] not in before]
    assert [a["name"][: len("contract-suite-")] for a in new] == ["contract-suite-"]
    assert sandbank.count_requests() == 0  # the account that was there saw nothing
