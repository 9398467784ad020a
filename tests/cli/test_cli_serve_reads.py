"""`sandbank serve --no-reuse-reads` reaches the app, with one worker and with several (whose
settings travel in the environment): every GET then reads the database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from rehearsal.processes import free_port
from simulator import cli
from simulator.cli import main


@pytest.fixture
def served(
    unfrozen: None, no_children: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """What `serve` hands uvicorn (a worker's app, with `--workers N`), without serving."""
    seen: dict[str, Any] = {}

    def run(target: Any, **options: Any) -> None:
        seen["app"] = cli._factory() if options.get("factory") else target

    monkeypatch.setattr(uvicorn, "run", run)
    yield seen
    if "app" in seen:
        seen["app"].runtime.store.close()


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize(("flag", "reuse"), [([], True), (["--no-reuse-reads"], False)])
def test_serve_reuses_reads_unless_told_not_to(
    served: dict[str, Any], tmp_path: Path, workers: str, flag: list[str], reuse: bool
) -> None:
    args = ["--data-dir", str(tmp_path), "--port", str(free_port()), "--no-metrics"]
    assert main(["serve", "--workers", workers, *args, *flag]) == 0
    assert served["app"].runtime.reads.reuse is reuse
