"""`sandbank serve` keeps its start-up heap out of the garbage collector before it serves
(`simulator.heap`, issue #18: full collections of the app's ~80,000 start-up objects stopped
the event loop for 40-130 ms under load)."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from rehearsal.processes import free_port
from simulator import cli
from simulator.cli import main
from simulator.heap import freeze_start_up_heap


def test_serve_freezes_the_start_up_heap_before_uvicorn_serves(
    unfrozen: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}

    def run(app: Any, **options: Any) -> None:  # what uvicorn finds when it starts serving
        seen["frozen"] = gc.get_freeze_count()
        seen["app"] = app

    monkeypatch.setattr(uvicorn, "run", run)
    args = ["--db", ":memory:", "--data-dir", str(tmp_path), "--port", str(free_port())]
    assert main(["serve", *args]) == 0
    assert seen["app"] is not None
    assert seen["frozen"] > 0


def test_each_worker_freezes_its_heap_once_its_app_is_built(
    unfrozen: None, no_children: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}

    def run(target: str, *, factory: bool, workers: int, **options: Any) -> None:
        gc.unfreeze()  # what the parent froze is not what a worker's factory freezes
        seen["app"] = cli._factory()  # what each worker process runs
        seen["frozen"] = gc.get_freeze_count()
        seen["app"].runtime.store.close()

    monkeypatch.setattr(uvicorn, "run", run)
    args = ["--data-dir", str(tmp_path), "--port", str(free_port()), "--no-metrics"]
    assert main(["serve", "--workers", "2", *args]) == 0
    assert seen["app"] is not None
    assert seen["frozen"] > 0


def test_a_frozen_heap_leaves_start_up_objects_out_of_later_collections(unfrozen: None) -> None:
    made_at_start_up = [{"app": "state"}]
    # How many were frozen (a frozen object still freed when its last reference goes, so the
    # count may fall right after; CI once saw two fewer).
    assert freeze_start_up_heap() > 0
    assert not any(o is made_at_start_up for o in gc.get_objects())
    made_later = [{"request": "state"}]
    assert any(o is made_later for o in gc.get_objects())
