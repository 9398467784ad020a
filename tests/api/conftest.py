"""The API suite runs twice: on SQLite (`:memory:`, the embedded default) and on PostgreSQL
(the shared store, simulator/store/postgres.py), each app on an empty schema of its own on
the run's throwaway server. The PostgreSQL run skips, saying why, where no server can run.

A few modules run on SQLite only: they test what no store changes (the console's pages, the
Grafana dashboard, the Credit Key dialect's translation), build their app at import
(the control plane's fuzz), or build their own apps on one SQLite file (the shared state of
two workers: on PostgreSQL, tests/unit/test_store_contract.py and the two-replica e2e test),
or test what only the SQLite store does (reusing answers of reads: the PostgreSQL store
cannot tell cheaply when to, so it never does); and each PostgreSQL test costs a schema and
its migrations.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from factories import BACKEND

SQLITE_ONLY = {
    "test_console",
    "test_control_plane_fuzz",
    "test_grafana_dashboard",
    "test_creditkey_dialect",
    "test_shared_state",
    "test_read_cache",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        only_sqlite = metafunc.module.__name__.rsplit(".", 1)[-1] in SQLITE_ONLY
        metafunc.parametrize(
            "backend", ["sqlite"] if only_sqlite else ["sqlite", "postgres"], indirect=True
        )


@pytest.fixture(autouse=True)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "postgres":
        server = request.getfixturevalue("pg_server")
        BACKEND.fresh_db = server.fresh_url
    try:
        yield request.param
    finally:
        BACKEND.fresh_db = None
        BACKEND.close_all()
