"""The contract suite's pytest wiring: project checks registered, `slow` marker known (also when
the suite runs from an installed package, outside this repository's pyproject), and the target
named in the report header."""

from __future__ import annotations

import pytest

from contracts.suite import checks, target

assert checks.PROBLEM_JSON  # imported for its side effect: the checks are registered


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running suites; `make test-fast` skips them")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give each generated test its own node id (`test_examples[POST /v1/buyers]`).

    schemathesis 4 names every test it generates after the function (`...::test_examples`), so
    under pytest 9 the progress counts four distinct tests out of ~100 and ends near 3 %, and a
    JUnit report has ~100 cases of the same name. Setting the id as pytest itself would derive
    it from the name (a private attribute, hence the check that it is still there) fixes both.
    """
    for item in items:
        parent = item.parent
        if parent is not None and not item.nodeid.endswith(item.name) and hasattr(item, "_id"):
            item._id = parent.id.child(item.name)


def pytest_report_header(config: pytest.Config) -> str:
    where = target.base_url() or "in-process simulator"
    return f"contract target: {where} (CONTRACT_MAX_EXAMPLES={target.max_examples()})"
