"""The Grafana dashboard (docs/grafana/sandbank-dashboard.json) charts metrics that exist: every
`sandbank_*` name in its queries is one the simulator's GET /metrics describes, or one the
reference integration defines (integration/metrics.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from factories import Api

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docs" / "grafana" / "sandbank-dashboard.json"
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def _queried() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs
    return {m for e in exprs for m in re.findall(r"\bsandbank_[a-z_]+", e)}


def _base(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def test_every_metric_the_dashboard_queries_exists(api: Api) -> None:
    described = set(re.findall(r"^# HELP (sandbank_\w+)", api.get("/metrics").text, re.M))
    source = (ROOT / "integration" / "metrics.py").read_text()
    integration = {f"sandbank_integration_{n}" for n in re.findall(r'f"\{PREFIX\}_(\w+)"', source)}
    known = {_base(n) for n in described} | integration
    missing = sorted(n for n in _queried() if _base(n) not in known and n not in known)
    assert missing == []


def test_the_dashboard_covers_the_simulator_and_the_integration() -> None:
    names = _queried()
    assert any(n.startswith("sandbank_integration_") for n in names)
    assert {"sandbank_requests_total", "sandbank_webhook_backlog"} <= names
