"""The Dockerfile and compose.yaml, checked without a Docker daemon: what the image installs
exists (extras, packages, entry points), and every command they run parses in a venv with the
same install."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())


def pip_install_target() -> tuple[str, list[str]]:
    """(what, extras) of the Dockerfile's `pip install` line."""
    found = re.search(r'pip install "?\.\[([a-z,]+)\]"?', DOCKERFILE)
    assert found, "the Dockerfile installs the project with its extras"
    return ".", found.group(1).split(",")


def test_the_image_installs_extras_the_project_declares() -> None:
    _, extras = pip_install_target()
    declared = PYPROJECT["project"]["optional-dependencies"]
    assert set(extras) <= set(declared), set(extras) - set(declared)
    assert {"integration", "contract"} <= set(extras)  # integration serve, scenario, contract


def test_every_requirement_of_those_extras_is_installable_here() -> None:
    """The same requirements resolve in this venv (a plain `pip install .[dev]`)."""
    _, extras = pip_install_target()
    wanted = [
        *PYPROJECT["project"]["dependencies"],
        *(r for e in extras for r in PYPROJECT["project"]["optional-dependencies"][e]),
    ]
    for line in wanted:
        req = Requirement(line)
        version = metadata.version(req.name)
        assert req.specifier.contains(version, prereleases=True), f"{req} but {version}"


def test_the_image_copies_every_shipped_package() -> None:
    copied = set(re.findall(r"^COPY (\w+) \./\1$", DOCKERFILE, re.MULTILINE))
    shipped = {
        p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert shipped <= copied, shipped - copied
    assert "COPY scenarios /opt/scenarios" in DOCKERFILE


def test_the_console_script_and_the_pytest_plugin_resolve() -> None:
    scripts = {ep.name: ep for ep in metadata.entry_points(group="console_scripts")}
    assert scripts["sandbank"].load().__module__ == "simulator.cli"
    plugins = {ep.name: ep for ep in metadata.entry_points(group="pytest11")}
    assert plugins["sandbank"].load().__name__ == "sandbank_pytest.plugin"


def _commands() -> list[list[str]]:
    """Every `sandbank ...` the Dockerfile's usage lines, CMD and compose.yaml run."""
    usage = re.findall(r"docker run sandbank (sandbank [^#\n]*)", DOCKERFILE)
    commands = [shlex.split(line.replace("...", "X")) for line in usage]
    cmd = re.search(r"^CMD (\[.*\])$", DOCKERFILE, re.MULTILINE)
    assert cmd
    commands.append(yaml.safe_load(cmd.group(1)))
    for service in COMPOSE["services"].values():
        command = service.get("command")
        if command and command[0] == "sandbank":
            commands.append(command)
        elif command and command[:2] == ["sh", "-c"]:
            commands.append(shlex.split(command[2].replace("$$", "$"))[1:])  # after `exec`
    return commands


@pytest.mark.parametrize("command", _commands(), ids=lambda c: " ".join(c[:3]))
def test_every_command_the_image_runs_parses(command: list[str]) -> None:
    """`--help` after the command's words: the subcommand exists and the flags are known."""
    words = [w for w in command[1:] if not w.startswith("-")][:2]
    flags = [w.split("=")[0] for w in command if w.startswith("--")]
    help_text = subprocess.run(
        [sys.executable, "-m", "simulator.cli", *words, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert help_text.returncode == 0, help_text.stderr
    for flag in flags:
        assert flag in help_text.stdout, f"{flag} is not an option of `sandbank {' '.join(words)}`"


def test_compose_wires_the_integration_to_the_simulator() -> None:
    services = COMPOSE["services"]
    assert "--allow-webhook-host=integration" in services["simulator"]["command"]
    assert services["wire"]["depends_on"]["simulator"]["condition"] == "service_healthy"
    assert services["integration"]["depends_on"]["wire"]["condition"] == (
        "service_completed_successfully"
    )
    for name in ("simulator", "integration"):
        assert services[name]["healthcheck"]["test"][0] == "CMD"
    mounted = services["wire"]["volumes"][0].split(":")[0]
    assert (ROOT / mounted).is_file()
