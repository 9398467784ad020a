"""What `sandbank serve` sets for its whole process, put back after each test that runs it
in process (its logging, the connection limits, a frozen heap), and its workers' parent
machinery stubbed out (no child processes, no parent to watch)."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator

import pytest

from simulator import cli, connections, lifecycle


@pytest.fixture
def unfrozen(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Whatever a test freezes is unfrozen after it; serve's global settings are restored."""
    logger = logging.getLogger("sandbank")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    monkeypatch.setattr(connections, "LIMITS", connections.LIMITS)
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()
        logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate


@pytest.fixture
def no_children(monkeypatch: pytest.MonkeyPatch) -> None:
    """`serve --workers N` in process: its settings' environment restored after the test, no
    supervised child processes, and a worker's factory watches no parent."""
    for name in ("SANDBANK_SERVE_SETTINGS", "SANDBANK_SERVE_PID"):  # restored after the test
        monkeypatch.setenv(name, "")
    monkeypatch.setattr(lifecycle, "die_with_parent", lambda parent: None)
    monkeypatch.setattr(cli, "_supervise", lambda settings: None)
