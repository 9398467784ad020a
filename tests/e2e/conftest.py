"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_servers import StartServer, starting
from reliability_kit import Sink


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start `sandbank serve` processes (`start_server(data_dir, port, *extra)`), each healthy;
    all are killed by pid at the end of the test."""
    yield from starting(tmp_path)


@pytest.fixture
def sink() -> Iterator[Sink]:
    """A webhook receiver on 127.0.0.1 that accepts everything and keeps the event types."""
    receiver = Sink()
    yield receiver
    receiver.close()
