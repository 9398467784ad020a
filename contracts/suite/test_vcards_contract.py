"""The virtual cards personality's contract: schemathesis against `contracts/vcards.yaml`,
with the provider suite's configuration and every project check (it is a Sandbank-native API:
integer amounts, problem+json, idempotent replays). In-process by default; against
CONTRACT_BASE_URL with CONTRACT_API_KEY, as the provider suite."""

from __future__ import annotations

from typing import Any

import pytest

import contracts
from contracts.suite.test_contract import check, contract_schema

examples = contract_schema("examples", document=contracts.VCARDS)
coverage = contract_schema("coverage", document=contracts.VCARDS)
fuzzing = contract_schema("fuzzing", document=contracts.VCARDS)


@examples.parametrize()  # type: ignore[untyped-decorator]
def test_vcards_examples(case: Any) -> None:
    """Every virtual-card operation accepts a case built from its schema."""
    check(case)


@coverage.parametrize()  # type: ignore[untyped-decorator]
def test_vcards_coverage(case: Any) -> None:
    """Boundary values, missing and unexpected parameters, undeclared methods."""
    check(case)


@pytest.mark.slow
@fuzzing.parametrize()  # type: ignore[untyped-decorator]
def test_vcards_fuzzing(case: Any) -> None:
    """Hypothesis-generated positive and negative requests."""
    check(case)
