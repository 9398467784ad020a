"""What a first run trips over, answered in one line: an address in use or a data directory
that cannot be made (before any banner), a refused API key or a malformed webhook secret for
the integration, and --help that describes every subcommand."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from integration import cli as integration_cli
from rehearsal import cli as rehearsal_cli
from sandbank_pytest import SandbankAccount, SandbankServer
from sandbank_pytest.server import free_port
from simulator import cli

SANDBANK = [sys.executable, "-m", "simulator.cli"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SANDBANK, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def integration_serve(
    url: str, key: str, tmp_path: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    """`sandbank integration serve` on a free port; these tests expect it to refuse to start."""
    port = str(free_port())
    db = str(tmp_path / "i.db")
    return run(
        "integration",
        "serve",
        "--provider-url",
        url,
        "--api-key",
        key,
        "--port",
        port,
        "--db",
        db,
        *extra,
    )


def test_an_address_in_use_is_one_line_before_any_banner(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--port", str(port), "--db", ":memory:", "--data-dir", str(tmp_path))
    assert result.returncode != 0
    assert result.stdout == ""  # no URL, key or token for a server that never ran
    assert result.stderr == f"sandbank: error: 127.0.0.1:{port} is already in use (try --port)\n"


def test_a_data_directory_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run("serve", "--port", "0", "--data-dir", str(blocker / "data"))
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"sandbank: error: cannot create the data directory {blocker}")


@pytest.mark.slow
def test_integration_serve_refuses_a_key_the_provider_does_not_know(
    sandbank_server: SandbankServer, tmp_path: Path
) -> None:
    result = integration_serve(sandbank_server.url, "sk_test_wrong", tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "refused --api-key (401: this API key is not known here" in result.stderr


@pytest.mark.slow
def test_integration_serve_refuses_a_malformed_webhook_secret(
    sandbank: SandbankAccount, tmp_path: Path
) -> None:
    result = integration_serve(
        sandbank.base_url, sandbank.api_key, tmp_path, "--webhook-secret", "whsec_%%%not-base64"
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("sandbank integration: error: --webhook-secret")


def _subcommands(parser: argparse.ArgumentParser, prefix: str) -> list[tuple[str, str | None]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                found.append((f"{prefix} {name}", helps.get(name)))
                found.extend(_subcommands(sub, f"{prefix} {name}"))
    return found


def test_every_subcommand_has_a_one_line_description() -> None:
    commands = [
        *_subcommands(cli._parser(), "sandbank"),
        *_subcommands(integration_cli._parser(), "sandbank integration"),
        *_subcommands(rehearsal_cli.parser(), "sandbank scenario"),
    ]
    assert len(commands) >= 12
    for name, text in commands:
        assert text, f"`{name}` has no description in --help"
        assert "\n" not in text
    top = run("--help").stdout
    for name in ("serve", "contract", "webhooks", "clock", "integration", "scenario"):
        line = next(x for x in top.splitlines() if x.strip().startswith(name + " "))
        assert len(line.split(None, 1)) == 2, f"{name}'s description is not on its line"
