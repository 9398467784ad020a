"""`sandbank load run` end to end: real processes on 127.0.0.1, Locust headless, bounded.

The smoke is what `make load-smoke` runs (20 s of phases through the reference integration,
webhooks flowing back); the distributed run is a Locust master with 2 workers on loopback,
given a threshold it cannot meet, so it also proves that a breach is a non-zero exit.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow
BUDGET_S = 240  # a run stops itself well within this; the test kills it after


def load_run(
    out: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "simulator.cli", "load", "run", *args, "--out", str(out)]
    base = {k: v for k, v in os.environ.items() if not k.startswith("SANDBANK_")}
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=BUDGET_S, env={**base, **(env or {})},
        check=False,
    )  # fmt: skip


def read(out: Path, name: str) -> Any:
    return json.loads((out / name).read_text())


def invariants_env() -> dict[str, str]:
    """The money checks come from the scenario runner; on a tree without it they are skipped
    (and say so) rather than failing this test."""
    if importlib.util.find_spec("rehearsal.invariants") is None:
        return {"SANDBANK_LOAD_INVARIANTS": "optional"}
    return {}


def test_load_smoke_passes_every_phase_and_end_check_through_the_integration(
    tmp_path: Path,
) -> None:
    done = load_run(tmp_path, "smoke", env=invariants_env())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    phases = read(tmp_path, "phases.json")
    assert list(phases) == ["steady", "outage", "storm", "recovery"]
    assert all(p["requests"] > 0 for p in phases.values()), phases
    checks = {c["name"]: c for c in read(tmp_path, "checks.json")}
    assert checks["holds_resolved (GET /status)"]["ok"]
    assert all(c["ok"] for c in checks.values())
    assert any(name.startswith(("invariant ", "money_invariants")) for name in checks)
    for report in ("report.html", "locust_stats.csv", "locust_stats_history.csv", "phases.csv"):
        assert (tmp_path / report).stat().st_size > 0, report


# Every p99 bound at 0 ms is breached; error rates are allowed in full, so the exit code can only
# come from the latency breach (a loaded machine's stray timeout must not decide it).
ONLY_LATENCY_BREACHES = {
    "p99_ms": {"*": 0},
    "error_rate": {"steady": 1.0},
}


def test_a_threshold_breach_exits_non_zero_with_a_master_and_two_workers(tmp_path: Path) -> None:
    done = load_run(
        tmp_path, "simulator", "--workers", "2", "--users", "4", "--spawn-rate", "4",
        "--time", "6", "--thresholds", json.dumps(ONLY_LATENCY_BREACHES),
        env=invariants_env(),
    )  # fmt: skip
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    checks = read(tmp_path, "checks.json")
    breached = [c for c in checks if c["name"].startswith("p99") and not c["ok"]]
    assert breached, checks
    assert all(c["ok"] for c in checks if c["name"].startswith("error_rate")), checks
    # The workers' requests reached the master: figures per phase, and Locust's totals.
    phases = read(tmp_path, "phases.json")
    assert phases["steady"]["requests"] > 0
    assert "Aggregated" in (tmp_path / "locust_stats.csv").read_text()
