"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_servers import StartServer, starting


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start `sandbank serve` processes (`start_server(data_dir, port, *extra)`), each healthy;
    all are killed by pid at the end of the test."""
    yield from starting(tmp_path)
