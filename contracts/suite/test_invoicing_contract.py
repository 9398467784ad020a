"""The traditional-invoicing personality's contract: schemathesis against
`contracts/invoicing.yaml`, X12 bodies included, with the provider suite's configuration and
every project check (it is a Sandbank-native API: integer amounts, problem+json, idempotent
replays). In-process by default; against CONTRACT_BASE_URL with CONTRACT_API_KEY, as the
provider suite."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
import schemathesis
from hypothesis import strategies as st

import contracts
from contracts.suite.test_contract import check, contract_schema
from simulator.domain.x12 import Invoice810, Line810


def _x12(number: str) -> bytes:
    doc = Invoice810(
        invoice_number=number,
        invoice_date=date(2026, 3, 1),
        po_number="PO-1",
        currency="USD",
        buyer_name="Acme",
        buyer_id=None,
        buyer_email="ap@acme.test",
        net_days=30,
        lines=(Line810(2, 500),),
        total=1_000,
    )
    return doc.render().encode()


# X12 text bodies: real 810s (each number sent once, then 409), and anything else (400/422).
schemathesis.openapi.media_type(
    "application/edi-x12",
    st.one_of(
        st.integers(1, 10**9).map(lambda n: _x12(f"INV-{n}")),
        st.text(max_size=200).map(str.encode),
    ),
)

examples = contract_schema("examples", document=contracts.INVOICING)
coverage = contract_schema("coverage", document=contracts.INVOICING)
fuzzing = contract_schema("fuzzing", document=contracts.INVOICING)


@examples.parametrize()  # type: ignore[untyped-decorator]
def test_invoicing_examples(case: Any) -> None:
    """Every invoicing operation accepts a case built from its schema."""
    check(case)


@coverage.parametrize()  # type: ignore[untyped-decorator]
def test_invoicing_coverage(case: Any) -> None:
    """Boundary values, missing and unexpected parameters, undeclared methods."""
    check(case)


@pytest.mark.slow
@fuzzing.parametrize()  # type: ignore[untyped-decorator]
def test_invoicing_fuzzing(case: Any) -> None:
    """Hypothesis-generated positive and negative requests."""
    check(case)
