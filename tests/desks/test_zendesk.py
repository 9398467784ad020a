"""The Zendesk-shaped fake: tickets by external id, statuses, Zendesk's own error shape."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from desk_client import Desk

from fakes.zendesk import create_zendesk_app

AUTH = ("ops@shop.test/token", "tok")
AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def desk() -> Iterator[Desk]:
    d = Desk(create_zendesk_app(token="tok", clock=lambda: AT))
    yield d
    d.close()


def new_ticket(desk: Desk, external_id: str = "inv_1", **fields: object) -> dict[str, object]:
    body = {"subject": "Overdue", "comment": {"body": "Chase it"}, "external_id": external_id}
    r = desk.post("/api/v2/tickets.json", json={"ticket": {**body, **fields}}, auth=AUTH)
    assert r.status_code == 201, r.text
    return dict(r.json()["ticket"])


def test_tickets_get_counted_ids_and_are_found_by_external_id(desk: Desk) -> None:
    first = new_ticket(desk, "inv_1", priority="high", tags=["Collections"])
    second = new_ticket(desk, "inv_2")
    assert (first["id"], second["id"]) == (1, 2)
    assert first["status"] == "new"
    assert first["tags"] == ["collections"]
    assert first["created_at"] == "2026-03-01T09:00:00Z"
    found = desk.get("/api/v2/tickets.json", params={"external_id": "inv_2"}, auth=AUTH).json()
    assert [t["id"] for t in found["tickets"]] == [2]
    assert found["count"] == 1


def test_an_update_solves_with_a_comment_and_a_closed_ticket_refuses_updates(
    desk: Desk,
) -> None:
    new_ticket(desk)
    r = desk.put(
        "/api/v2/tickets/1.json",
        json={
            "ticket": {"status": "solved", "comment": {"body": "Paid"}, "additional_tags": ["x"]}
        },
        auth=AUTH,
    )
    assert r.json()["ticket"]["status"] == "solved"
    assert "x" in r.json()["ticket"]["tags"]
    comments = desk.get("/api/v2/tickets/1/comments.json", auth=AUTH).json()["comments"]
    assert [c["body"] for c in comments] == ["Chase it", "Paid"]
    desk.put("/api/v2/tickets/1.json", json={"ticket": {"status": "closed"}}, auth=AUTH)
    r = desk.put("/api/v2/tickets/1.json", json={"ticket": {"status": "open"}}, auth=AUTH)
    assert r.status_code == 422
    assert r.json()["error"] == "RecordInvalid"
    assert "closed" in r.json()["details"]["status"][0]["description"]


@pytest.mark.parametrize(
    "case",
    [
        ("GET", "/api/v2/tickets.json", None, ("ops@shop.test/token", "wrong"), 401, None),
        ("GET", "/api/v2/tickets.json", None, ("ops@shop.test", "tok"), 401, None),
        ("GET", "/api/v2/tickets/9.json", None, AUTH, 404, "RecordNotFound"),
        (
            "POST",
            "/api/v2/tickets.json",
            {"ticket": {"subject": "no comment"}},
            AUTH,
            422,
            "RecordInvalid",
        ),
        (
            "POST",
            "/api/v2/tickets.json",
            {"ticket": {"comment": {"body": "x"}, "priority": "p0"}},
            AUTH,
            422,
            "RecordInvalid",
        ),
        ("POST", "/api/v2/tickets.json", {"nope": 1}, AUTH, 400, "InvalidJSON"),
        ("GET", "/api/v2/users.json", None, AUTH, 404, "InvalidEndpoint"),
    ],
)
def test_bad_requests_get_zendesk_shaped_errors(desk: Desk, case: tuple[Any, ...]) -> None:
    method, path, body, auth, status, error = case
    r = desk.request(method, path, json=body, auth=auth)
    assert r.status_code == status
    assert r.json()["error"] == (error or "Couldn't authenticate you")
    assert isinstance(r.json()["description"], str)


def test_a_body_that_is_not_json_is_a_400_not_a_crash(desk: Desk) -> None:
    r = desk.post("/api/v2/tickets.json", content=b"{nope", auth=AUTH)
    assert (r.status_code, r.json()["error"]) == (400, "InvalidJSON")


def test_a_create_replayed_with_its_idempotency_key_answers_the_same_ticket(desk: Desk) -> None:
    body = {"ticket": {"comment": {"body": "Chase it"}, "external_id": "inv_1"}}
    headers = {"Idempotency-Key": "k-1"}
    first = desk.post("/api/v2/tickets.json", json=body, headers=headers, auth=AUTH)
    again = desk.post("/api/v2/tickets.json", json=body, headers=headers, auth=AUTH)
    assert first.json() == again.json()
    assert again.headers["x-idempotency-lookup"] == "hit"
    assert desk.get("/api/v2/tickets.json", auth=AUTH).json()["count"] == 1
