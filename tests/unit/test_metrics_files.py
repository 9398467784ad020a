"""Scraping the metrics files of several processes (`--workers > 1`): a file that a process
has only just created must not fail the scrape."""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.mmap_dict import MmapedDict

from simulator.metrics import ProcessFilesCollector


def _counter_file(path: Path, value: float) -> None:
    key = json.dumps(
        ["sandbank_requests", "sandbank_requests_total", {"operation": "listBuyers"}, "help"]
    )
    d = MmapedDict(str(path))
    d.write_value(key, value, 0.0)
    d.close()


def _scrape(path: Path) -> str:
    registry = CollectorRegistry()
    registry.register(ProcessFilesCollector(str(path)))
    return generate_latest(registry).decode()


def test_a_process_file_still_empty_is_left_out_and_the_others_are_summed(tmp_path: Path) -> None:
    _counter_file(tmp_path / "counter_101.db", 3)
    _counter_file(tmp_path / "counter_102.db", 4)
    (tmp_path / "counter_103.db").write_bytes(b"")  # created, not yet sized: a worker starting
    (tmp_path / "histogram_103.db").write_bytes(b"\x00\x00")

    text = _scrape(tmp_path)

    assert 'sandbank_requests_total{operation="listBuyers"} 7.0' in text


def test_a_file_once_written_is_counted_by_the_next_scrape(tmp_path: Path) -> None:
    (tmp_path / "counter_103.db").write_bytes(b"")
    assert "sandbank_requests_total" not in _scrape(tmp_path)

    (tmp_path / "counter_103.db").unlink()
    _counter_file(tmp_path / "counter_103.db", 2)

    assert 'sandbank_requests_total{operation="listBuyers"} 2.0' in _scrape(tmp_path)
