"""The contract suite's pytest wiring: project checks registered, `slow` marker known (also when
the suite runs from an installed package, outside this repository's pyproject), and the target
named in the report header."""

from __future__ import annotations

import pytest

from contracts.suite import checks, target

assert checks.PROBLEM_JSON  # imported for its side effect: the checks are registered


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running suites; `make test-fast` skips them")


def pytest_report_header(config: pytest.Config) -> str:
    where = target.base_url() or "in-process simulator"
    return f"contract target: {where} (CONTRACT_MAX_EXAMPLES={target.max_examples()})"
