"""The API suite runs twice: on SQLite (`:memory:`, the embedded default) and on PostgreSQL
(the shared store, simulator/store/postgres.py), each app on an empty schema of its own on
the run's throwaway server. The PostgreSQL run skips, saying why, where no server can run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from factories import BACKEND


@pytest.fixture(autouse=True, params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "postgres":
        server = request.getfixturevalue("pg_server")
        BACKEND.fresh_db = server.fresh_url
    try:
        yield request.param
    finally:
        BACKEND.fresh_db = None
        BACKEND.close_all()
