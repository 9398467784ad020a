"""The control plane under schemathesis: every `/_sandbox` operation of contracts/sandbox.yaml,
coverage and fuzzing phases, all default checks. It is not the provider contract, but it takes
user input (fault rules, filters, clock moves) and must never answer a 500 or a body that
breaks its own document. Cross-field rules the schema cannot say (a fixed latency needs `ms`,
a ramp needs a window) are 422 problems, so 422 counts as an answer to valid-looking input, and
the provider contract's `valid_requests_pass_validation` check does not apply here. The other
project checks (problem+json, Request-Id, integer amounts, identical replays) do."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from factories import ADMIN_TOKEN, build_app
from schemathesis.config import HttpBearerAuthConfig

import contracts
from contracts.suite import checks

pytestmark = pytest.mark.slow

schema = schemathesis.openapi.from_path(
    contracts.SANDBOX,
    config=schemathesis.Config.from_dict(
        {
            "phases": {
                "examples": {"enabled": False},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
            "generation": {"max-examples": 40},
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429"]
                }
            },
        }
    ),
)
schema.app = build_app(seed=3)
schema.config.auth.openapi.schemes["bearer"] = HttpBearerAuthConfig(bearer=ADMIN_TOKEN)


@schema.parametrize()
def test_control_plane_operations_conform_and_never_fail(case: Any) -> None:
    case.call_and_validate(excluded_checks=[checks.valid_requests_pass_validation])
