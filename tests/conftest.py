"""Shared fixtures: a fresh in-memory app per test on a manual wall clock with deterministic
entropy, a synchronous client over `httpx.ASGITransport`, and a ready account.

Payload factories, the `Api` harness and Hypothesis strategies live in `tests/factories.py`.
The tests that start servers as subprocesses (tests/e2e, tests/cli) use `rehearsal.processes`,
the one such helper, shared with rehearsals and `make bench`. bench/ is appended to sys.path
here, before anything imports tests/factories.py, for bench/processes.py (a process tree read
from /proc, shared by the reliability suites and bench/reliability.py) and
bench/fixed_entropy.py (the deterministic entropy tests and benchmarks give `create_app`);
appended, so no bench module can shadow a test module.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parent.parent / "bench"))
from factories import ADMIN, START, Account, Api, build_app
from hypothesis import HealthCheck, settings
from throwaway_pg import ThrowawayPostgres, unavailable

from simulator.app import SandbankApp
from simulator.clock import ManualClock

# Property tests that go through the app do I/O: no deadline, and no complaints about
# function-scoped fixtures (each example builds what it needs itself).
settings.register_profile(
    "sandbank",
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# `HYPOTHESIS_PROFILE=thorough pytest tests/unit tests/api` hunts harder (minutes, not seconds).
settings.register_profile("thorough", parent=settings.get_profile("sandbank"), max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "sandbank"))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[ThrowawayPostgres]:
    """A throwaway PostgreSQL server for the whole run (bench/throwaway_pg.py), started when a
    test first asks for it and stopped by its pid at the end; skips where none can run."""
    why = unavailable()
    if why is not None:
        pytest.skip(f"PostgreSQL tests skipped: {why}")
    server = ThrowawayPostgres().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def make_app(clock: ManualClock) -> Callable[..., SandbankApp]:
    """Build another app on the same wall clock (e.g. to compare two runs)."""

    def make(seed: int = 1) -> SandbankApp:
        return build_app(seed=seed, clock=clock)

    return make


@pytest.fixture
def app(make_app: Callable[..., SandbankApp]) -> SandbankApp:
    return make_app()


@pytest.fixture
def api(app: SandbankApp, clock: ManualClock) -> Iterator[Api]:
    client = Api(app, clock)
    yield client
    client.close()


@pytest.fixture
def admin() -> dict[str, str]:
    return dict(ADMIN)


@pytest.fixture
def account(api: Api) -> Account:
    """A fresh account with seed 7."""
    return api.new_account(seed=7)


@pytest.fixture
def headers(account: Account) -> dict[str, str]:
    return account.headers


@pytest.fixture
def approved_order(api: Api, account: Account) -> Callable[..., dict[str, object]]:
    """Create an authorized order of `amount` (default 1,250.00 USD) for an `+approve` buyer."""

    def make(amount: int = 125_000, **kw: object) -> dict[str, object]:
        return api.approved_order(account, amount, **kw)

    return make
