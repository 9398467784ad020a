"""The gateway + net terms personality's contract: schemathesis against `contracts/gateway.yaml`,
with the provider suite's configuration and every project check (it is a Sandbank-native API:
integer amounts, problem+json, idempotent replays). In-process by default; against
CONTRACT_BASE_URL with CONTRACT_API_KEY, as the provider suite."""

from __future__ import annotations

from typing import Any

import pytest

import contracts
from contracts.suite.test_contract import check, contract_schema

examples = contract_schema("examples", document=contracts.GATEWAY)
coverage = contract_schema("coverage", document=contracts.GATEWAY)
fuzzing = contract_schema("fuzzing", document=contracts.GATEWAY)


@examples.parametrize()  # type: ignore[untyped-decorator]
def test_gateway_examples(case: Any) -> None:
    """Every gateway operation accepts a case built from its schema."""
    check(case)


@coverage.parametrize()  # type: ignore[untyped-decorator]
def test_gateway_coverage(case: Any) -> None:
    """Boundary values, missing and unexpected parameters, undeclared methods."""
    check(case)


@pytest.mark.slow
@fuzzing.parametrize()  # type: ignore[untyped-decorator]
def test_gateway_fuzzing(case: Any) -> None:
    """Hypothesis-generated positive and negative requests."""
    check(case)
