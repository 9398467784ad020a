"""The scheduler runs due clock work of running accounts with no request (bounded, once, under a
lease); health reads the supervisor's records and heartbeats (issue #17). In-process, on the
manual wall clock: nothing here sleeps."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest
from factories import Account, Api

from simulator import scheduler as scheduler_module
from simulator.app import SandbankApp
from simulator.clock import ManualClock, to_us
from simulator.scheduler import Scheduler
from simulator.supervisor import STALE_S, STARTUP_GRACE_S, status


def _scheduler(app: SandbankApp, owner: str = "test") -> Scheduler:
    return Scheduler(app.runtime.service, app.runtime.service.wall, owner)


def _stored(app: SandbankApp, account: Account, event_type: str) -> list[Any]:
    """Events as stored: reading them this way runs no due work (an API call would)."""
    with app.runtime.store.read() as tx:
        page = tx.list_events(account.id, type_=event_type, limit=100, cursor=None)
    return list(page.items)


def _captured(api: Api, account: Account) -> None:
    order = api.approved_order(account)
    r = api.post(f"/v1/orders/{order['id']}/captures", headers=account.headers, json={})
    assert r.status_code == 201, r.text


def test_due_settlement_batches_of_running_clocks_run_without_a_request(
    api: Api, app: SandbankApp, clock: ManualClock, account: Account
) -> None:
    _captured(api, account)
    clock.advance(timedelta(days=3))  # past the batch's midnight, in real time
    assert _stored(app, account, "settlement.created") == []
    assert _scheduler(app).run_round() == 1
    assert len(_stored(app, account, "settlement.created")) == 1
    assert _scheduler(app).run_round() == 0  # nothing due any more


def test_frozen_clocks_are_left_to_their_owner(
    api: Api, app: SandbankApp, clock: ManualClock, account: Account, admin: dict[str, str]
) -> None:
    _captured(api, account)
    assert api.post(f"/_sandbox/accounts/{account.id}/clock/freeze", headers=admin).is_success
    clock.advance(timedelta(days=3))
    assert _scheduler(app).run_round() == 0
    assert _stored(app, account, "settlement.created") == []


def test_a_scheduler_without_the_lease_runs_nothing(
    api: Api, app: SandbankApp, clock: ManualClock, account: Account
) -> None:
    _captured(api, account)
    clock.advance(timedelta(days=3))
    assert _scheduler(app, "first").take_lease()
    assert _scheduler(app, "second").run_round() == 0
    assert _stored(app, account, "settlement.created") == []
    clock.advance(timedelta(minutes=1))  # the first owner's lease has run out
    assert _scheduler(app, "second").run_round() == 1


def test_each_transaction_runs_a_bounded_batch_of_jobs(
    api: Api,
    app: SandbankApp,
    clock: ManualClock,
    account: Account,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _captured(api, account)
    clock.advance(timedelta(days=60))  # batch, payout, repayment: several jobs due
    monkeypatch.setattr(scheduler_module, "JOBS_PER_TX", 1)
    worker = _scheduler(app)
    rounds = 0
    while worker.run_round():
        rounds += 1
        assert rounds < 50
    assert rounds >= 3
    with app.runtime.store.read() as tx:
        left = tx.next_due(account.id)
    assert left is None or left > to_us(clock.now())  # everything due has run


# --- health ----------------------------------------------------------------------------------
def _record(app: SandbankApp, key: str, value: dict[str, Any]) -> None:
    with app.runtime.store.transaction():
        app.runtime.store.set_meta(key, orjson.dumps(value).decode())


def test_health_reports_each_component_and_in_process_work_as_up(api: Api) -> None:
    r = api.get("/_sandbox/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    parts = body["components"]
    assert {n: p["status"] for n, p in parts.items()} == dict.fromkeys(
        ("api", "store", "dispatcher", "scheduler"), "up"
    )
    assert parts["dispatcher"]["mode"] == "in-process"
    assert parts["dispatcher"]["pending"] == 0


def test_health_is_503_while_a_supervised_dispatcher_is_down(
    api: Api, app: SandbankApp, clock: ManualClock
) -> None:
    now = to_us(clock.now())
    _record(
        app,
        "component:dispatcher",
        {"pid": 41, "state": "down", "restarts": 2, "since_us": now, "exit_code": 1},
    )
    r = api.get("/_sandbox/health")
    assert r.status_code == 503
    part = r.json()["components"]["dispatcher"]
    assert r.json()["status"] == "degraded"
    assert (part["status"], part["restarts"], part["last_exit_code"]) == ("down", 2, 1)


@pytest.mark.parametrize(
    "case",  # (state, restarts, pid of the last heartbeat, its age in s, health says)
    [
        ("starting", 0, None, None, "starting"),  # first start, no heartbeat yet
        ("starting", 1, None, None, "down"),  # restarted after a crash, not yet beating
        ("starting", 1, 7, 1.0, "up"),
        ("starting", 0, 7, STALE_S + 1, "down"),  # silent: stale heartbeat
        ("starting", 0, 8, 1.0, "starting"),  # a heartbeat of an older process
        ("down", 0, 7, 1.0, "down"),
    ],
)
def test_a_component_is_up_only_on_a_fresh_heartbeat_of_its_current_process(
    app: SandbankApp, case: tuple[str, int, int | None, float | None, str]
) -> None:
    state, restarts, beat_pid, beat_age_s, expected = case
    now = 10_000_000_000
    _record(
        app,
        "component:scheduler",
        {"pid": 7, "state": state, "restarts": restarts, "since_us": now, "exit_code": None},
    )
    if beat_pid is not None and beat_age_s is not None:
        at = now - int(beat_age_s * 1_000_000)
        _record(app, "heartbeat:scheduler", {"pid": beat_pid, "at_us": at})
    found = status(app.runtime.store, "scheduler", now)
    assert found is not None
    assert found["status"] == expected


def test_a_first_start_that_never_beats_is_down_after_the_grace(app: SandbankApp) -> None:
    _record(
        app,
        "component:scheduler",
        {"pid": 7, "state": "starting", "restarts": 0, "since_us": 0, "exit_code": None},
    )
    found = status(app.runtime.store, "scheduler", int((STARTUP_GRACE_S + 1) * 1_000_000))
    assert found is not None
    assert found["status"] == "down"
