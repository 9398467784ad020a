"""X12 810/820 text: the renderer is the parser's inverse (`parse(render(d)) == d`, and a
rendered document renders again to the same text), amounts stay integer minor units, and a
broken document is refused naming the segment."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.domain.errors import SandbankError
from simulator.domain.x12 import (
    Invoice810,
    Line810,
    MalformedX12,
    Remittance820,
    Rmr820,
    decimal_to_minor,
    minor_to_decimal,
    parse_810,
    parse_820,
)

_TEXT = st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=1, max_size=20)
_CURRENCY = st.sampled_from(["USD", "EUR", "JPY", "BHD"])
_DAY = st.dates(date(2000, 1, 1), date(2099, 12, 31))


@st.composite
def invoices(draw: st.DrawFn) -> Invoice810:
    lines = draw(
        st.lists(
            st.builds(
                Line810,
                quantity=st.integers(1, 1000),
                unit_price=st.integers(0, 10**9),
                unit=st.sampled_from(["EA", "CS"]),
                product_id=st.none() | _TEXT,
            ),
            min_size=1,
            max_size=5,
        )
    )
    return Invoice810(
        invoice_number=draw(_TEXT),
        invoice_date=draw(_DAY),
        po_number=draw(st.none() | _TEXT),
        currency=draw(_CURRENCY),
        # No N1/PER (name ''): the buyer is the PO's on file.
        buyer_name=(name := draw(st.just("") | _TEXT)),
        buyer_id=draw(st.none() | _TEXT) if name else None,
        buyer_email=draw(_TEXT) + "@x.test" if name else "",
        net_days=draw(st.integers(0, 365)),
        lines=tuple(lines),
        total=sum(li.quantity * li.unit_price for li in lines),
    )


@st.composite
def remittances(draw: st.DrawFn) -> Remittance820:
    lines = draw(
        st.lists(
            st.builds(
                Rmr820,
                qualifier=st.sampled_from(["IV", "PO"]),
                reference=_TEXT,
                paid=st.integers(1, 10**9),
                invoice_amount=st.none() | st.integers(1, 10**9),
                adjustment=st.integers(-(10**6), 0),
                adjustment_reason=st.none() | st.sampled_from(["PRICING", "DAMAGED"]),
            ),
            max_size=5,
        )
    )
    return Remittance820(
        trace=draw(_TEXT),
        method=draw(st.sampled_from(["ACH", "CHK"])),
        paid_on=draw(_DAY),
        currency=draw(_CURRENCY),
        total=sum(x.paid for x in lines),
        payer=draw(_TEXT),
        lines=tuple(lines),
    )


@given(invoices())
def test_an_810_parses_back_to_the_invoice_it_was_rendered_from(doc: Invoice810) -> None:
    text = doc.render()
    assert parse_810(text) == doc
    assert parse_810(text).render() == text


@given(remittances())
def test_an_820_parses_back_to_the_remittance_it_was_rendered_from(doc: Remittance820) -> None:
    text = doc.render()
    assert parse_820(text) == doc
    assert parse_820(text).render() == text


@given(st.integers(-(10**12), 10**12), _CURRENCY)
def test_amounts_go_to_decimal_text_and_back_as_the_same_integer(amount: int, cur: str) -> None:
    back = decimal_to_minor(minor_to_decimal(amount, cur), cur, "X")
    assert type(back) is int
    assert back == amount


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", MalformedX12),
        ("ISA*short~", MalformedX12),
        ("ST*810*1~BIG*20260101*A~SE*3*1~", SandbankError),  # no buyer, lines, total
        ("ST*810*1~SE*2*2~", MalformedX12),  # control numbers differ
        ("ST*850*1~SE*2*1~", SandbankError),  # not an invoice
    ],
)
def test_a_broken_810_is_refused_never_guessed(text: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_810(text)


def test_a_bare_transaction_set_without_envelope_is_read_too() -> None:
    text = (
        "ST*810*0001~BIG*20260301*INV-1~N1*BY*Acme~PER*AP**EM*ap@acme.test~ITD*05*3*****15~"
        "IT1*1*3*EA*10.00~TDS*3000~SE*8*0001~"
    )
    doc = parse_810(text)
    assert (doc.total, doc.net_days, doc.lines[0].unit_price, doc.currency) == (
        3000,
        15,
        1000,
        "USD",
    )
