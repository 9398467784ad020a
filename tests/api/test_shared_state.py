"""Two apps on one database file stand in for two workers of `sandbank serve --workers 2`
(issue #16): fault rules, their fired counts, attempt counts and the journal are the same
whichever app answers; `--faults FILE` rules are stored once. (The real processes:
tests/e2e/test_shared_state_workers.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from factories import ADMIN, ADMIN_TOKEN, START, Api, checkout_body, deterministic_entropy

from simulator.app import create_app
from simulator.clock import ManualClock
from simulator.settings import Settings

RULE = {"match": {"operation": "listBuyers"}, "effect": {"type": "status", "status": 503}}


def worker(tmp_path: Path, clock: ManualClock, **settings: Any) -> Api:
    app = create_app(
        Settings(
            data_dir=tmp_path, db=str(tmp_path / "shared.db"), admin_token=ADMIN_TOKEN, **settings
        ),
        wall_clock=clock,
        entropy=deterministic_entropy(),
    )
    return Api(app, clock)


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Api, Api]]:
    clock = ManualClock(START)
    a, b = worker(tmp_path, clock), worker(tmp_path, clock)
    yield a, b
    a.close()
    b.close()


def new_key(api: Api) -> dict[str, str]:
    r = api.post("/_sandbox/accounts", headers=ADMIN, json={"name": "shared"})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['api_key']}"}


def count(api: Api, **match: Any) -> int:
    r = api.post("/_sandbox/requests/count", headers=ADMIN, json=match)
    assert r.status_code == 200, r.text
    return int(r.json()["count"])


def test_a_times_rule_made_on_one_worker_fires_that_often_across_both(
    two: tuple[Api, Api],
) -> None:
    a, b = two
    key = new_key(a)
    rule = a.post("/_sandbox/faults", headers=ADMIN, json={**RULE, "times": 3}).json()
    statuses = [api.get("/v1/buyers", headers=key).status_code for api in (b, a) * 3]
    assert statuses == [503, 503, 503, 200, 200, 200]
    assert b.get(f"/_sandbox/faults/{rule['id']}", headers=ADMIN).json()["fired"] == 3
    assert a.request("DELETE", f"/_sandbox/faults/{rule['id']}", headers=ADMIN).status_code == 200
    assert b.get("/_sandbox/faults", headers=ADMIN).json()["data"] == []


def test_the_journal_and_attempt_counts_are_the_same_on_both_workers(
    two: tuple[Api, Api],
) -> None:
    a, b = two
    key = new_key(a)
    body = checkout_body()
    for api in (a, b, a):  # one Idempotency-Key, three attempts on alternating workers
        r = api.post("/v1/checkouts", headers={**key, "Idempotency-Key": "k-1"}, json=body)
        assert r.status_code == 201, r.text
    b.get("/v1/buyers", headers=key)
    for api in (a, b):
        assert count(api, operation="createCheckout") == 3
        assert count(api, operation="listBuyers") == 1
        found = api.get(
            "/_sandbox/requests", headers=ADMIN, params={"operation": "createCheckout"}
        ).json()["data"]
        assert [(e["attempt"], e["replayed"]) for e in found] == [(3, True), (2, True), (1, False)]


def test_the_faults_file_is_stored_once_and_another_file_replaces_its_rules(
    tmp_path: Path,
) -> None:
    clock = ManualClock(START)
    first, second = (worker(tmp_path, clock, fault_rules=(RULE,)) for _ in range(2))
    rules = second.get("/_sandbox/faults", headers=ADMIN).json()["data"]
    assert [r["effect"]["status"] for r in rules] == [503]
    other = {**RULE, "effect": {"type": "status", "status": 502}}
    third = worker(tmp_path, clock, fault_rules=(other,))
    rules = first.get("/_sandbox/faults", headers=ADMIN).json()["data"]
    assert [r["effect"]["status"] for r in rules] == [502]
    for api in (first, second, third):
        api.close()


def test_without_a_journal_nothing_is_stored_and_requests_still_answer(tmp_path: Path) -> None:
    api = worker(tmp_path, ManualClock(START), journal_size=0)
    key = new_key(api)
    assert api.get("/v1/buyers", headers=key).status_code == 200
    assert count(api) == 0
    api.close()
