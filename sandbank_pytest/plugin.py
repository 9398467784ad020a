"""The pytest plugin (entry point `pytest11: sandbank`): options, the marker and the fixtures.

Fixtures are lazy: a session that uses none of them starts no simulator and imports no client.

- `sandbank_server` (session): the simulator; a child process on a free 127.0.0.1 port unless
  `--sandbank-url` (or SANDBANK_URL) names a shared one, whose control plane takes
  `--sandbank-admin-token` (or SANDBANK_ADMIN_TOKEN).
- `sandbank_account` (alias `sandbank`): a fresh account per test, seeded from the test's id
  (the same test gets the same ids run after run) unless `--sandbank-seed` or
  `@pytest.mark.sandbank(seed=..., settings={...})` says otherwise.
- `sandbank_webhooks`: a signature-verifying receiver registered on that account.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sandbank_pytest.account import SandbankAccount
    from sandbank_pytest.server import SandbankServer
    from sandbank_pytest.webhooks import WebhookReceiver


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sandbank", "Sandbank simulator")
    group.addoption(
        "--sandbank-url",
        default=None,
        help="run against this simulator instead of starting one (or SANDBANK_URL)",
    )
    group.addoption(
        "--sandbank-admin-token",
        default=None,
        help="the shared simulator's admin token (or SANDBANK_ADMIN_TOKEN)",
    )
    group.addoption(
        "--sandbank-seed",
        type=int,
        default=None,
        help="seed every test's account with this (default: derived from the test's id)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "sandbank(seed=None, settings=None): the seed and settings of the test's Sandbank account",
    )


@pytest.fixture(scope="session")
def sandbank_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SandbankServer]:
    """The simulator for this session (started here, or `--sandbank-url`)."""
    from sandbank_pytest.server import SandbankServer

    url = request.config.getoption("sandbank_url") or os.environ.get("SANDBANK_URL")
    if url:
        token = request.config.getoption("sandbank_admin_token") or os.environ.get(
            "SANDBANK_ADMIN_TOKEN"
        )
        if not token:
            raise pytest.UsageError(
                "--sandbank-url needs the server's admin token: --sandbank-admin-token or "
                "SANDBANK_ADMIN_TOKEN (each test creates its own account on it)"
            )
        yield SandbankServer(url, token)
        return
    with SandbankServer.start(tmp_path_factory.mktemp("sandbank")) as server:
        yield server


@pytest.fixture
def sandbank_account(
    request: pytest.FixtureRequest, sandbank_server: SandbankServer
) -> Iterator[SandbankAccount]:
    """A fresh account for this test; its fault rules are removed after it."""
    from sandbank_pytest.account import SandbankAccount

    marker = request.node.get_closest_marker("sandbank")
    options = dict(marker.kwargs) if marker else {}
    seed = options.get("seed", request.config.getoption("sandbank_seed"))
    if seed is None:
        seed = zlib.crc32(request.node.nodeid.encode())
    with sandbank_server.admin() as admin:
        account = SandbankAccount.create(
            sandbank_server.url,
            admin,
            name=request.node.name,
            seed=seed,
            settings=options.get("settings"),
        )
        try:
            yield account
        finally:
            account.clear_faults()
            account.close()


@pytest.fixture
def sandbank(sandbank_account: SandbankAccount) -> SandbankAccount:
    """`sandbank_account`, by a shorter name: `with sandbank.fault(...)`."""
    return sandbank_account


@pytest.fixture
def sandbank_webhooks(sandbank_account: SandbankAccount) -> Iterator[WebhookReceiver]:
    """A receiver on 127.0.0.1 registered for every event type of the test's account. With
    `--sandbank-url`, the shared server must be able to reach this machine's loopback."""
    from sandbank_pytest.webhooks import WebhookReceiver

    receiver = WebhookReceiver(sandbank_account)
    try:
        yield receiver
    finally:
        receiver.close()
