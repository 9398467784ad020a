"""The pipeline's router (`simulator.middleware.routing`) sends every request where Starlette's
router would, and leaves to Starlette what it does not route itself."""

from __future__ import annotations

import pytest
from factories import ADMIN, Account, Api, checkout_body
from starlette.routing import Match, Route
from test_api_errors import assert_problem

from simulator.app import SandbankApp
from simulator.middleware.routing import OperationRouter


def _router(app: SandbankApp) -> OperationRouter:
    asgi = app._asgi  # the composed pipeline, walked down to its last layer
    while not isinstance(asgi, OperationRouter):
        asgi = asgi.app
    return asgi


def _starlette_choice(app: SandbankApp, method: str, path: str) -> Route | None:
    """The route Starlette's router runs for a request: the first full match, in order."""
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    for route in app.app.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route if isinstance(route, Route) else None
    return None


def _paths(template: str) -> list[str]:
    concrete = "/".join("x_1" if p.startswith("{") else p for p in template.split("/"))
    return [concrete, concrete + "/", concrete + "/more", concrete + "\n", "/" + concrete]


def test_every_route_is_found_where_starlette_finds_it(app: SandbankApp) -> None:
    router = _router(app)
    checked = 0
    for route in app.app.routes:
        if not isinstance(route, Route):
            continue
        for path in _paths(route.path):
            for method in [*sorted(route.methods or ()), "DELETE", "OPTIONS"]:
                found = router.table.match(method, path)
                if not isinstance(found, tuple):
                    continue  # left to Starlette: its answer by definition
                expected = _starlette_choice(app, method, path)
                assert found[0] is None or found[0] is expected, (method, path)
                checked += 1
    assert checked > 300  # the tree answered for most of them itself


def test_a_trailing_slash_is_still_redirected(api: Api, account: Account) -> None:
    r = api.get("/v1/checkouts/", headers=account.headers)
    assert r.status_code == 307
    assert r.headers["location"].endswith("/v1/checkouts")


def test_head_answers_as_get_without_a_body(api: Api, account: Account) -> None:
    made = api.post("/v1/checkouts", headers=account.headers, json=checkout_body())
    url = f"/v1/checkouts/{made.json()['id']}"
    head, get = (
        api.request("HEAD", url, headers=account.headers),
        api.get(url, headers=account.headers),
    )
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == get.headers["content-length"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/no_such_thing", 404),
        ("DELETE", "/v1/checkouts", 405),
        ("PUT", "/v1/checkouts/chk_1", 405),
        ("GET", "/_sandbox/no_such_thing", 404),
    ],
)
def test_unknown_paths_and_methods_are_the_same_problems(
    api: Api, account: Account, method: str, path: str, status: int
) -> None:
    headers = account.headers if path.startswith("/v1") else ADMIN
    doc = assert_problem(api.request(method, path, headers=headers), status)
    if status == 404 and path.startswith("/v1"):
        assert "/openapi.yaml" in doc["detail"]


def test_an_error_raised_before_the_operation_runs_is_its_problem(
    api: Api, account: Account
) -> None:
    r = api.post(
        "/v1/checkouts",
        headers={**account.headers, "content-type": "application/json"},
        content=b"{not json",
    )
    assert_problem(r, 400)
