"""The README's copy-paste quickstart, run as a reader would paste it: twice in a row against
a real server (each run makes its own checkout), and once with a wrong key, where it must stop
with a readable line, not a traceback."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sandbank_pytest import SandbankAccount, SandbankServer

README = Path(__file__).resolve().parents[2] / "README.md"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("curl") is None, reason="the quickstart uses curl"),
]


def quickstart() -> str:
    section = README.read_text().split("## Quickstart (copy-paste)", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block, "the README's quickstart is a ```sh block"
    lines = block.group(1).splitlines()
    assert lines[0].startswith("export SB=")  # what the reader edits; the test sets it
    return "\n".join(lines[1:]) + "\n"


def paste(server: SandbankServer, key: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SB": server.url, "KEY": key, "ADMIN": server.admin_token}
    return subprocess.run(
        ["bash", "-c", quickstart()],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_the_quickstart_runs_and_runs_again(
    sandbank_server: SandbankServer, sandbank: SandbankAccount
) -> None:
    orders = []
    for _ in range(2):
        result = paste(sandbank_server, sandbank.api_key)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "partially_refunded" in result.stdout
        orders.append(re.search(r"^order (ord_\w+)$", result.stdout, re.MULTILINE))
    assert orders[0]
    assert orders[1]
    assert orders[0].group(1) != orders[1].group(1)
    sandbank.assert_requests(operation="createCheckout", count=2)


def test_an_http_error_stops_the_quickstart_with_one_readable_line(
    sandbank_server: SandbankServer,
) -> None:
    result = paste(sandbank_server, "sk_test_not_a_key")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "HTTP 401 from POST /v1/checkouts: this API key is not known here "
        "(a reset server or another server's key?)"
    )
