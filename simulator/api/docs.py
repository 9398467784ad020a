"""The two published documents, built from the operation tables."""

from __future__ import annotations

from typing import Any

from simulator import __version__
from simulator.api import openapi, v1
from simulator.control import faults as control_faults
from simulator.control import routes as control

PROVIDER_DESCRIPTION = """\
Sandbank's native provider API: embedded B2B credit (pay on terms at checkout) with buyers,
credit decisions, checkouts, orders, captures, refunds and cancellations.

Money is always an integer in minor units plus an ISO 4217 `currency`. Every response carries
`Request-Id`; every error is `application/problem+json`. POST and PATCH take an optional
`Idempotency-Key`. `/v1/test_helpers/*` exist only in the sandbox.
"""

SANDBOX_DESCRIPTION = """\
Sandbank's control plane: accounts, seeds, per-account virtual clocks, buyer and underwriter
actions, state dumps, fault rules and presets, and the request journal. Authorised with the
admin token (`Authorization: Bearer ...`). Not part of the provider contract.
"""


def provider_document() -> dict[str, Any]:
    return openapi.build(
        v1.OPERATIONS,
        title="Sandbank provider API",
        version=__version__,
        description=PROVIDER_DESCRIPTION,
        transient=True,
    )


def sandbox_document() -> dict[str, Any]:
    doc = openapi.build(
        [*control.OPERATIONS, *control_faults.OPERATIONS],
        title="Sandbank control plane",
        version=__version__,
        description=SANDBOX_DESCRIPTION,
        idempotency=False,
    )
    doc["paths"]["/_sandbox/health"]["get"]["security"] = []
    return doc
