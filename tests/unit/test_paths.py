"""The path tree answers what an ordered scan of the templates' regexes answers."""

from __future__ import annotations

import pytest

from simulator.faults.engine import path_pattern
from simulator.paths import UNSURE, PathTable

TEMPLATES = [
    ("/v1/orders", {"GET", "POST"}, "orders"),
    ("/v1/orders/{id}", {"GET"}, "order"),
    ("/v1/orders/search", {"GET", "PATCH"}, "search"),  # after {id}: never chosen for GET
    ("/v1/orders/{id}/captures", {"POST"}, "captures"),
    ("/v1/{kind}/{id}/captures", {"GET"}, "any-captures"),
    ("/", {"GET"}, "index"),
]
TABLE = PathTable(TEMPLATES)


def scan(method: str, path: str) -> str | None:
    """The answer the templates' regexes give, tried in order."""
    for template, methods, value in TEMPLATES:
        if method in methods and path_pattern(template).match(path):
            return value
    return None


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/orders"),
        ("POST", "/v1/orders"),
        ("GET", "/v1/orders/ord_1"),
        ("GET", "/v1/orders/search"),
        ("PATCH", "/v1/orders/search"),
        ("POST", "/v1/orders/ord_1/captures"),
        ("GET", "/v1/orders/ord_1/captures"),
        ("GET", "/v1/refunds/ref_1/captures"),
        ("GET", "/"),
        ("GET", "/v1/orders/"),
        ("GET", "/v1/orders//captures"),
        ("GET", "/v1//ord_1/captures"),
        ("DELETE", "/v1/orders"),
        ("GET", "/v2/orders"),
        ("GET", ""),
        ("GET", "/v1/orders/ord 1"),
    ],
)
def test_the_tree_picks_the_first_listed_template_that_matches(method: str, path: str) -> None:
    found = TABLE.match(method, path)
    assert (found[0] if isinstance(found, tuple) else found) == scan(method, path)


def test_the_parameters_come_back_by_name() -> None:
    assert TABLE.match("GET", "/v1/refunds/ref_1/captures") == (
        "any-captures",
        {"kind": "refunds", "id": "ref_1"},
    )


def test_a_path_with_a_newline_is_left_to_the_regexes() -> None:
    # `$` matches before a final newline: the regex of /v1/orders matches "/v1/orders\n".
    assert scan("GET", "/v1/orders\n") == "orders"
    assert TABLE.match("GET", "/v1/orders\n") is UNSURE


def test_a_template_the_tree_cannot_model_is_refused() -> None:
    with pytest.raises(ValueError, match="not a plain path template"):
        PathTable([("/files/{name:path}", {"GET"}, "file")])
