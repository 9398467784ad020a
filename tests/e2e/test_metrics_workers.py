"""GET /metrics with `--workers 2`: whichever worker answers the scrape, the counts are every
worker's (prometheus_client's multiprocess mode under DATA_DIR/metrics), and the files of an
earlier run do not count again."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from e2e_servers import StartServer

from rehearsal.processes import free_port

pytestmark = pytest.mark.slow
MAX_REQUESTS = 400


def _answered(text: str) -> float:
    return sum(
        float(v)
        for v in re.findall(
            r'^sandbank_requests_total\{[^}]*operation="listBuyers"[^}]*\} (\S+)', text, re.M
        )
    )


def test_every_worker_counts_in_every_scrape(start_server: StartServer, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "metrics").mkdir(parents=True)
    (data / "metrics" / "counter_99999.db").write_bytes(b"left over from an earlier run")
    server = start_server(data, free_port(), "--workers", "2")
    key = server.banner().demo_key
    workers: set[str] = set()  # each worker numbers its Request-Ids under a prefix of its own
    sent = 0
    while sent < MAX_REQUESTS and (len(workers) < 2 or sent < 20):
        # A new connection each time: the kernel spreads them over the workers.
        with httpx.Client(base_url=server.url, timeout=10) as c:
            r = c.get("/v1/buyers", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200
        workers.add(r.headers["request-id"][:12])
        sent += 1
    assert len(workers) == 2, "every request went to one worker"
    for _ in range(6):
        with httpx.Client(base_url=server.url, timeout=10) as c:
            assert _answered(c.get("/metrics").text) == sent
    assert not (data / "metrics" / "counter_99999.db").exists()
