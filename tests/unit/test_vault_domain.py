"""The vault's pure rules: derived ids and instrument details, card expiry, and the check that
keeps card numbers out of a token file."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from simulator.domain.vault import (
    end_of_month,
    fingerprint,
    instrument,
    looks_like_a_number,
    token_id,
)

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    ["4242424242424242", "4242 4242 4242 4242", "tok_4242-4242-4242-4242", "5555555555554444"],
)
def test_a_card_number_in_clear_is_recognised(text: str) -> None:
    assert looks_like_a_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "tok_3a123456789012345678b9",  # digits inside an id
        "4242424242424241",  # fails the Luhn check
        "ntk_0000000000000000000a",
        "cl_buy_8f3k2",
        "1234",
    ],
)
def test_an_id_with_digits_or_a_short_number_is_not_a_card_number(text: str) -> None:
    assert not looks_like_a_number(text)


def test_a_card_is_good_through_its_expiry_month() -> None:
    assert end_of_month(2027, 12) == datetime(2028, 1, 1, tzinfo=UTC)
    assert end_of_month(2027, 2) == datetime(2027, 3, 1, tzinfo=UTC)


def test_derived_details_are_deterministic_and_never_a_number() -> None:
    for owner in (f"CUST-{n}" for n in range(300)):
        print_ = fingerprint("acct_1", "card", owner)
        card = instrument("card", owner, print_, NOW)
        assert card == instrument("card", owner, print_, NOW)
        assert card["expires_at"] > NOW
        assert not any(looks_like_a_number(str(v)) for v in card.values())
    assert token_id("a", "b") == token_id("a", "b") != token_id("a", "c")
