"""The Credit Key dialect's contract: schemathesis against `contracts/creditkey.yaml`.

In-process by default (the demo account's Credit Key keys); against CONTRACT_BASE_URL with
CONTRACT_CK_PUBLIC_KEY and CONTRACT_CK_SHARED_SECRET. Credit Key's clients read only statuses,
and its answers are not Sandbank's (decimal dollars, its own error body, 400 for a refused
request), so the native project checks that assert problem+json, integer amounts and 422s are
off here; every default schemathesis check runs.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from schemathesis.config import ApiKeyAuthConfig

import contracts
from contracts.suite import target

NATIVE_ONLY = (
    "problem_json_on_errors",
    "integer_amounts",
    "valid_requests_pass_validation",
    "idempotent_replay_identical",
)


def _keys() -> tuple[Any, str, str] | None:
    """(in-process app or None, public key, shared secret), or None: nothing to test."""
    if target.base_url():
        public = os.environ.get("CONTRACT_CK_PUBLIC_KEY")
        secret = os.environ.get("CONTRACT_CK_SHARED_SECRET")
        return (None, public, secret) if public and secret else None
    from simulator.app import demo_account  # noqa: PLC0415 - in-process only
    from simulator.dialects.creditkey import credentials  # noqa: PLC0415

    app = target.resolve().app
    assert app is not None  # no CONTRACT_BASE_URL: the in-process simulator
    demo = demo_account(app)
    assert demo is not None
    creds = credentials(demo)
    return app, creds.public_key, creds.shared_secret


KEYS = _keys()


def creditkey_schema(*phases: str) -> Any:
    config: dict[str, Any] = {
        "phases": {
            name: {"enabled": name in phases}
            for name in ("examples", "coverage", "fuzzing", "stateful")
        },
        "generation": {"max-examples": target.max_examples()},
        "checks": {
            **{name: {"enabled": False} for name in NATIVE_ONLY},
            # Credit Key refuses a well-formed request it cannot carry out (an unknown order, a
            # state that does not allow it) with a 400 or 404, as its SDKs expect.
            "positive_data_acceptance": {"expected-statuses": ["2xx", "400", "401", "404"]},
        },
    }
    config["phases"]["examples"]["fill-missing"] = True
    if target.base_url():
        config["base-url"] = target.base_url()
    schema = schemathesis.openapi.from_path(
        contracts.CREDITKEY, config=schemathesis.Config.from_dict(config)
    )
    if KEYS is not None:
        app, public, secret = KEYS
        if app is not None:
            schema.app = app
        schema.config.auth.openapi.schemes["publicKey"] = ApiKeyAuthConfig(api_key=public)
        schema.config.auth.openapi.schemes["sharedSecret"] = ApiKeyAuthConfig(api_key=secret)
    return schema


pytestmark = pytest.mark.skipif(
    KEYS is None, reason="set CONTRACT_CK_PUBLIC_KEY and CONTRACT_CK_SHARED_SECRET"
)
examples = creditkey_schema("examples")
coverage = creditkey_schema("coverage")
fuzzing = creditkey_schema("fuzzing")


@examples.parametrize()  # type: ignore[untyped-decorator]
def test_creditkey_examples(case: Any) -> None:
    """Every Credit Key operation accepts a case built from its schema."""
    case.call_and_validate()


@coverage.parametrize()  # type: ignore[untyped-decorator]
def test_creditkey_coverage(case: Any) -> None:
    """Boundary values, missing and unexpected parameters, undeclared methods."""
    case.call_and_validate()


@pytest.mark.slow
@fuzzing.parametrize()  # type: ignore[untyped-decorator]
def test_creditkey_fuzzing(case: Any) -> None:
    """Hypothesis-generated positive and negative requests."""
    case.call_and_validate()
