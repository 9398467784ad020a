"""The ServiceNow-shaped fake: incidents by correlation id, state codes, ServiceNow's errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from desk_client import Desk

from fakes.servicenow import create_servicenow_app

AUTH = ("admin", "pw")
AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
TABLE = "/api/now/table/incident"


@pytest.fixture
def desk() -> Iterator[Desk]:
    d = Desk(create_servicenow_app(user="admin", password="pw", clock=lambda: AT))
    yield d
    d.close()


def new_incident(desk: Desk, correlation_id: str = "dsp_1") -> dict[str, str]:
    body = {"short_description": "Dispute", "urgency": 2, "correlation_id": correlation_id}
    r = desk.post(TABLE, json=body, auth=AUTH)
    assert r.status_code == 201, r.text
    return dict(r.json()["result"])


def test_incidents_get_numbers_and_stable_sys_ids_and_are_found_by_correlation_id(
    desk: Desk,
) -> None:
    first = new_incident(desk, "dsp_1")
    new_incident(desk, "dsp_2")
    assert first["number"] == "INC0010001"
    assert (first["state"], first["urgency"]) == ("1", "2")
    assert len(first["sys_id"]) == 32
    again = Desk(create_servicenow_app(user="admin", password="pw", clock=lambda: AT))
    assert new_incident(again)["sys_id"] == first["sys_id"]  # deterministic
    found = desk.get(TABLE, params={"sysparm_query": "correlation_id=dsp_2"}, auth=AUTH).json()
    assert [i["number"] for i in found["result"]] == ["INC0010002"]
    assert desk.get(f"{TABLE}/{first['sys_id']}", auth=AUTH).json()["result"] == first


def test_resolving_records_the_time_and_notes_and_a_closed_incident_refuses_updates(
    desk: Desk,
) -> None:
    sys_id = new_incident(desk)["sys_id"]
    r = desk.patch(f"{TABLE}/{sys_id}", json={"state": "6", "work_notes": "paid"}, auth=AUTH)
    got = r.json()["result"]
    assert (got["state"], got["resolved_at"]) == ("6", "2026-03-01 09:00:00")
    assert "paid" in got["comments_and_work_notes"]
    desk.patch(f"{TABLE}/{sys_id}", json={"state": "7"}, auth=AUTH)
    r = desk.patch(f"{TABLE}/{sys_id}", json={"state": "2"}, auth=AUTH)
    assert r.status_code == 403
    assert r.json()["status"] == "failure"


@pytest.mark.parametrize(
    "case",
    [
        ("GET", TABLE, None, ("admin", "wrong"), 401),
        ("GET", f"{TABLE}/nope", None, AUTH, 404),
        ("POST", TABLE, {"urgency": "1"}, AUTH, 400),
        ("POST", TABLE, {"short_description": "x", "state": "5"}, AUTH, 400),
        ("POST", TABLE, {"short_description": "x", "urgency": "9"}, AUTH, 400),
        ("POST", TABLE, [1], AUTH, 400),
        ("GET", TABLE, None, AUTH, 200),
        ("GET", "/api/now/table/problem", None, AUTH, 400),
    ],
)
def test_bad_requests_get_servicenow_shaped_errors(desk: Desk, case: tuple[Any, ...]) -> None:
    method, path, body, auth, status = case
    r = desk.request(method, path, json=body, auth=auth)
    assert r.status_code == status
    if status >= 400:
        assert r.json()["status"] == "failure"
        assert set(r.json()["error"]) == {"message", "detail"}
