"""The layers' import rules, checked on the source (ast, no imports run):

- simulator/domain imports nothing of the app: the standard library, pydantic and itself only;
- simulator/api, simulator/control, simulator/dialects (other APIs' edges, Credit Key's) and
  simulator/console never import simulator.store (they call services);
- integration never imports simulator (it talks HTTP only);
- rehearsal (the scenario runner) imports neither simulator nor integration;
- loadtests (the Locust load tests) neither;
- sandbank_pytest (the pytest plugin) imports neither: it starts and drives a server over HTTP.

Every import counts: inside functions and `if TYPE_CHECKING:` blocks too.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Rule:
    package: str  # the files under this dotted package obey the rule
    forbidden: tuple[str, ...] = ()  # no import of these packages (or their modules)
    only: tuple[str, ...] | None = None  # if set: the standard library and these, nothing else
    why: str = ""


RULES = (
    Rule(
        "simulator.domain",
        only=("simulator.domain", "pydantic"),
        why="the domain is pure: no app, no I/O",
    ),
    Rule("simulator.api", forbidden=("simulator.store",), why="endpoints call services"),
    Rule("simulator.control", forbidden=("simulator.store",), why="endpoints call services"),
    Rule("simulator.dialects", forbidden=("simulator.store",), why="endpoints call services"),
    Rule("simulator.console", forbidden=("simulator.store",), why="pages call services"),
    Rule("integration", forbidden=("simulator",), why="the integration talks HTTP only"),
    Rule(
        "rehearsal",
        forbidden=("simulator", "integration"),
        why="scenarios drive both over HTTP only",
    ),
    Rule(
        "sandbank_pytest",
        forbidden=("simulator", "integration"),
        why="the plugin drives a server over HTTP, local or shared alike",
    ),
    Rule(
        "loadtests",
        forbidden=("simulator", "integration"),
        why="load tests drive both over HTTP only (they start them as processes)",
    ),
)


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _module_of(path: str) -> str:
    parts = list(Path(path).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path: str, source: str) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of everything the source imports; `from a import b` yields `a` and
    `a.b` (b may be a module), relative imports resolved against `path`."""
    module = _module_of(path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            if base == "__future__":
                continue
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def violations(path: str, source: str) -> list[str]:
    """What the file at `path` (relative to the project root) imports against the rules."""
    module = _module_of(path)
    found = []
    for rule in RULES:
        if not _within(module, rule.package):
            continue
        for line, name in imported(path, source):
            top = name.split(".")[0]
            if any(_within(name, f) for f in rule.forbidden) or (
                rule.only is not None
                and top not in sys.stdlib_module_names
                and not any(_within(name, allowed) for allowed in rule.only)
            ):
                found.append(f"{path}:{line} imports {name} ({rule.why})")
    return sorted(set(found))


def _sources() -> list[Path]:
    roots = [ROOT / r.package.split(".")[0] for r in RULES]
    return sorted({p for root in roots if root.is_dir() for p in root.rglob("*.py")})


def test_the_source_keeps_the_import_rules() -> None:
    files = _sources()
    assert any(p.match("simulator/domain/*.py") for p in files)  # the rules look somewhere
    broken = [
        v
        for p in files
        for v in violations(p.relative_to(ROOT).as_posix(), p.read_text(encoding="utf-8"))
    ]
    assert broken == []


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("simulator/domain/x.py", "from simulator.store.base import Tx"),
        ("simulator/domain/x.py", "import starlette.requests"),
        ("simulator/domain/x.py", "from simulator import service"),
        ("simulator/domain/x.py", "from .. import clock"),
        ("simulator/domain/x.py", "def f():\n    from simulator.rng import SeededRng\n"),
        ("simulator/api/x.py", "import simulator.store.sqlite"),
        ("simulator/api/x.py", "from simulator import store"),
        ("simulator/api/x.py", "from ..store.base import Tx"),
        (
            "simulator/control/x.py",
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n"
            "    from simulator.store import Tx\n",
        ),
        ("simulator/dialects/creditkey/x.py", "from simulator.store.base import Store"),
        ("simulator/console/x.py", "from simulator.store.stats import stored_counts"),
        ("integration/x.py", "from simulator.domain import money"),
        ("integration/sub/x.py", "import simulator"),
        ("rehearsal/x.py", "import integration.client"),
        ("rehearsal/x.py", "from simulator.app import create_app"),
    ],
)
def test_a_forbidden_import_is_reported(path: str, source: str) -> None:
    assert violations(path, source)


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("simulator/domain/x.py", "from __future__ import annotations\nimport re\nimport pydantic"),
        (
            "simulator/domain/x.py",
            "from simulator.domain.errors import NotFound\nfrom . import states",
        ),
        ("simulator/api/x.py", "from simulator.service import ProviderService"),
        ("simulator/api/x.py", "from simulator.domain.records import Page"),
        ("simulator/store/x.py", "from simulator.store.base import Tx"),
        ("integration/x.py", "import httpx\nfrom integration import client"),
        ("rehearsal/x.py", "import httpx\nimport yaml"),
    ],
)
def test_an_allowed_import_is_not_reported(path: str, source: str) -> None:
    assert violations(path, source) == []
