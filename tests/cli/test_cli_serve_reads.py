"""`sandbank serve --no-reuse-reads` reaches the app, with one worker and with several (whose
settings travel in the environment): every GET then reads the database."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from rehearsal.processes import free_port
from simulator import cli, connections, lifecycle
from simulator.cli import main


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """What `serve` hands uvicorn, without serving; global state restored after."""
    logger = logging.getLogger("sandbank")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    monkeypatch.setattr(connections, "LIMITS", connections.LIMITS)
    for name in ("SANDBANK_SERVE_SETTINGS", "SANDBANK_SERVE_PID"):  # restored after the test
        monkeypatch.setenv(name, "")
    monkeypatch.setattr(lifecycle, "die_with_parent", lambda parent: None)
    monkeypatch.setattr(cli, "_supervise", lambda settings: None)  # no child processes here
    seen: dict[str, Any] = {}

    def run(target: Any, **options: Any) -> None:
        seen["app"] = cli._factory() if options.get("factory") else target

    monkeypatch.setattr(uvicorn, "run", run)
    try:
        yield seen
    finally:
        if "app" in seen:
            seen["app"].runtime.store.close()
        gc.unfreeze()
        logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize(("flag", "reuse"), [([], True), (["--no-reuse-reads"], False)])
def test_serve_reuses_reads_unless_told_not_to(
    served: dict[str, Any], tmp_path: Path, workers: str, flag: list[str], reuse: bool
) -> None:
    args = ["--data-dir", str(tmp_path), "--port", str(free_port()), "--no-metrics"]
    assert main(["serve", "--workers", workers, *args, *flag]) == 0
    assert served["app"].runtime.reads.reuse is reuse
