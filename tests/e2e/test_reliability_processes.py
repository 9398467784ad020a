"""End to end, issue #17: the server's processes. A crashed webhook dispatcher is restarted by
its supervisor and delivers without a flush, while health shows it down and then up again;
kill -9 of `sandbank serve` with several workers leaves no process behind, and a restart on
the same port and data directory succeeds at once.

Crashes are injected with the test hook SANDBANK_CRASH_ONCE (the component raises once, in
its first run only).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_servers import Server, StartServer
from processes import alive, descendants, on_linux, wait_for
from reliability_kit import Sink, health

from rehearsal.processes import free_port

pytestmark = pytest.mark.slow

ADMIN = "sbadm_e2e_reliability"
ARGS = ("--admin-token", ADMIN, "--no-demo")


@contextlib.contextmanager
def _account_with_endpoint(server: Server, sink: Sink) -> Iterator[httpx.Client]:
    """A new account whose endpoint sends every event to `sink`; its API client."""
    auth = {"Authorization": f"Bearer {ADMIN}"}
    r = httpx.post(f"{server.url}/_sandbox/accounts", json={"name": "rel"}, headers=auth)
    assert r.status_code == 201, r.text
    key = r.json()["api_key"]
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10.0
    ) as api:
        r = api.post("/v1/webhook_endpoints", json={"url": sink.url, "enabled_events": ["*"]})
        assert r.status_code == 201, r.text
        yield api


def _buyer(api: httpx.Client, n: int) -> None:
    body = {"legal_name": f"Buyer {n} LLC", "email": f"ap{n}@buyer.test"}
    r = api.post("/v1/buyers", json=body)
    assert r.status_code == 201, r.text


def _dispatcher(found: tuple[int, dict[str, Any]] | None) -> tuple[int, str, int] | None:
    """(HTTP status, dispatcher status, restarts) from a health answer."""
    if found is None:
        return None
    part = found[1]["components"]["dispatcher"]
    return found[0], part["status"], part["restarts"]


def test_a_dispatcher_crashing_at_startup_is_restarted_and_delivers_without_a_flush(
    start_server: StartServer, tmp_path: Path, sink: Sink
) -> None:
    server = start_server(
        tmp_path / "data",
        free_port(),
        *ARGS,
        env={"SANDBANK_CRASH_ONCE": "dispatcher.startup"},
        wait=False,
    )
    seen: list[tuple[int, str, int]] = []

    def restarted_and_up() -> bool:
        state = _dispatcher(health(server.url))
        if state is not None:
            seen.append(state)
        return state is not None and state[:2] == (200, "up") and state[2] >= 1

    assert wait_for(restarted_and_up, 30), f"never up again: {seen[-5:]}\n{server.output()}"
    assert (503, "down", 0) in seen, f"health never showed the crash: {sorted(set(seen))}"
    assert "crashed on purpose" in server.output()

    with _account_with_endpoint(server, sink) as api:
        _buyer(api, 1)
        assert wait_for(lambda: sink.count("buyer.created") == 1, 15), sink.types


def test_a_dispatcher_crashing_mid_run_is_down_then_up_and_deliveries_resume_without_a_flush(
    start_server: StartServer, tmp_path: Path, sink: Sink
) -> None:
    server = start_server(
        tmp_path / "data", free_port(), *ARGS, env={"SANDBANK_CRASH_ONCE": "dispatcher.running"}
    )
    with _account_with_endpoint(server, sink) as api:
        _buyer(api, 1)
        assert wait_for(lambda: sink.count("buyer.created") == 1, 15), sink.types
        # having sent something, the dispatcher crashes; health says so at once
        assert wait_for(lambda: _dispatcher(health(server.url)) == (503, "down", 0), 10)
        _buyer(api, 2)  # an event committed while no dispatcher runs
        assert wait_for(lambda: _dispatcher(health(server.url)) == (200, "up", 1), 20)
        assert wait_for(lambda: sink.count("buyer.created") == 2, 15), sink.types


@pytest.mark.skipif(not on_linux(), reason="reads the process tree from /proc")
@pytest.mark.parametrize("workers", [2, 4])
def test_kill_9_of_the_server_leaves_no_process_and_a_restart_on_the_same_port_works(
    start_server: StartServer, tmp_path: Path, workers: int
) -> None:
    data, port = tmp_path / "data", free_port()
    first = start_server(data, port, *ARGS, "--workers", str(workers))
    r = httpx.post(
        f"{first.url}/_sandbox/accounts",
        json={"name": "kept"},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert r.status_code == 201, r.text
    account = r.json()["id"]
    tree = descendants(first.proc.pid)
    assert len(tree) >= workers + 2  # the workers, the dispatcher and the scheduler

    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(timeout=10)
    assert wait_for(lambda: not alive(tree), 5), f"left running: {alive(tree)}"

    second = start_server(data, port, *ARGS, "--workers", str(workers))
    r = httpx.get(
        f"{second.url}/_sandbox/accounts/{account}", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert r.status_code == 200, r.text
