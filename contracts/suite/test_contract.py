"""The provider contract: every operation of `contracts/openapi.yaml`, phase by phase, and
stateful scenarios that follow the document's links (checkout → approve → capture → refund).

All default schemathesis checks run, plus the project checks in `checks.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import settings
from schemathesis.config import HttpBearerAuthConfig

import contracts
from contracts.suite import target

TARGET = target.resolve()
IDEMPOTENCY_KEY = "Idempotency-Key"


def contract_schema(*phases: str, document: Path = contracts.PROVIDER) -> Any:
    """A published document (the provider's by default), aimed at the target, with only
    `phases` enabled."""
    config: dict[str, Any] = {
        "phases": {
            name: {"enabled": name in phases}
            for name in ("examples", "coverage", "fuzzing", "stateful")
        },
        "generation": {"max-examples": target.max_examples()},
        "checks": {
            # Business rules refuse some well-formed requests with a documented 422 (an inline
            # buyer in EUR for a USD checkout, a capture above what is capturable). The default
            # list is kept and 422 added; `checks.valid_requests_pass_validation` still fails
            # any schema-valid request that validation refuses.
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
            }
        },
    }
    # An operation without an `example` still gets one case built from its schema.
    config["phases"]["examples"]["fill-missing"] = True
    if TARGET.base_url:
        config["base-url"] = TARGET.base_url
    schema = schemathesis.openapi.from_path(document, config=schemathesis.Config.from_dict(config))
    if TARGET.app is not None:
        schema.app = TARGET.app
    # The scheme name must match `components.securitySchemes` in the document.
    schema.config.auth.openapi.schemes["bearer"] = HttpBearerAuthConfig(bearer=TARGET.api_key)
    return schema


def fresh_idempotency_key(case: Any) -> None:
    """Give a generated Idempotency-Key a value of its own.

    Generators reuse one valid key ("0", "00000000") across cases with different bodies, and the
    server rightly answers such reuse with a 422. Each generated request is a new logical
    request, so a valid key is replaced by a fresh one; absent and invalid keys are sent as
    generated (those cases test the header itself). Reuse is tested on purpose by the
    `idempotent_replay_identical` check.
    """
    headers = case.headers or {}
    value = headers.get(IDEMPOTENCY_KEY)
    if not isinstance(value, str):
        return
    if 1 <= len(value) <= 255 and value.isascii() and value.isprintable() and " " not in value:
        headers[IDEMPOTENCY_KEY] = target.fresh_key()


def check(case: Any) -> None:
    fresh_idempotency_key(case)
    case.call_and_validate()


examples = contract_schema("examples")
coverage = contract_schema("coverage")
fuzzing = contract_schema("fuzzing")
stateful = contract_schema("stateful")


@examples.parametrize()  # type: ignore[untyped-decorator]
def test_examples(case: Any) -> None:
    """Every operation accepts the document's own examples (or a case filled from its schema)."""
    check(case)


@coverage.parametrize()  # type: ignore[untyped-decorator]
def test_coverage(case: Any) -> None:
    """Boundary values, missing and unexpected parameters, undeclared methods."""
    check(case)


@pytest.mark.slow
@fuzzing.parametrize()  # type: ignore[untyped-decorator]
def test_fuzzing(case: Any) -> None:
    """Hypothesis-generated positive and negative requests."""
    check(case)


class ProviderWorkflow(stateful.as_state_machine()):  # type: ignore[misc]
    """Scenarios chained by the document's links: create → approve → capture → refund."""

    def setup(self) -> None:
        if TARGET.reset is not None:
            TARGET.reset()

    def before_call(self, case: Any) -> None:
        fresh_idempotency_key(case)
        super().before_call(case)


TestStateful = pytest.mark.slow(ProviderWorkflow.TestCase)
TestStateful.settings = settings(
    ProviderWorkflow.TestCase.settings,
    max_examples=target.max_examples(),
    stateful_step_count=8,
    # Scenarios replayed from an example database would meet a server in another state.
    database=None,
)
