"""deploy/compose.shared.yaml checked without a Docker daemon: its pieces name each other
consistently (the balancer's upstreams are the replicas, the replicas' database URL is the
database service's own user, password and name), every replica runs a `sandbank serve` the CLI
accepts, and the image it builds installs the PostgreSQL driver. The nginx site itself runs for
real in tests/e2e/test_shared_deployment.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from simulator.cli import _parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.shared.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
REPLICAS = {name: s for name, s in SERVICES.items() if s.get("command", [None])[0] == "sandbank"}


def _flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_there_are_two_replicas_of_the_same_server() -> None:
    assert len(REPLICAS) == 2
    first, second = REPLICAS.values()
    assert first == second


@pytest.mark.parametrize("name", sorted(REPLICAS))
def test_each_replica_runs_a_serve_command_the_cli_accepts(name: str) -> None:
    args = _parser().parse_args(REPLICAS[name]["command"][1:])
    assert args.command == "serve"
    assert args.db.startswith("postgresql://")
    assert args.host == "0.0.0.0"  # noqa: S104 - inside the container, behind the balancer


def test_the_replicas_database_url_is_the_database_service() -> None:
    pg = SERVICES["postgres"]["environment"]
    for replica in REPLICAS.values():
        url = urlsplit(_flag(replica["command"], "--db"))
        assert url.hostname == "postgres"
        assert (url.username, url.password) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])
        assert url.path.lstrip("/") == pg["POSTGRES_DB"]
        assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_balancer_forwards_to_exactly_the_replicas_on_their_port() -> None:
    lb = SERVICES["lb"]
    mounted, target, _mode = lb["volumes"][0].split(":")
    site = (DEPLOY / mounted).read_text()
    assert target.startswith("/etc/nginx/conf.d/")
    upstreams = set(re.findall(r"^\s*server (\S+?) ", site, re.MULTILINE))
    assert upstreams == {f"{n}:{_flag(s['command'], '--port')}" for n, s in REPLICAS.items()}
    published = lb["ports"][0].split(":")[-1]
    assert re.search(rf"listen {published};", site)
    for name in REPLICAS:
        assert lb["depends_on"][name]["condition"] == "service_healthy"
        assert REPLICAS[name]["healthcheck"]["test"][0] == "CMD"


def test_the_image_the_replicas_build_installs_the_postgresql_driver() -> None:
    build = next(iter(REPLICAS.values()))["build"]
    context = (DEPLOY / build["context"]).resolve()
    dockerfile = (context / build["dockerfile"]).read_text()
    extras = re.search(r'pip install "?\.\[([a-z,]+)\]"?', dockerfile)
    assert extras
    assert "postgres" in extras.group(1).split(",")
