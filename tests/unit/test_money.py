"""Money: integer minor units, one currency per amount, exact splitting."""

from __future__ import annotations

import pytest
from factories import amounts, currencies, not_currencies
from hypothesis import given
from hypothesis import strategies as st

from simulator.domain.errors import CurrencyMismatch, InvalidAmount, UnknownCurrency
from simulator.domain.money import CURRENCIES, Money, check_currency


@given(amount=amounts, parts=st.integers(min_value=1, max_value=500), currency=currencies)
def test_allocate_sums_exactly_and_parts_differ_by_at_most_one(
    amount: int, parts: int, currency: str
) -> None:
    split = Money(amount, currency).allocate(parts)
    assert len(split) == parts
    assert sum(m.amount for m in split) == amount
    assert max(m.amount for m in split) - min(m.amount for m in split) <= 1
    assert {m.currency for m in split} == {currency}


@pytest.mark.parametrize("parts", [0, -1])
def test_allocate_into_no_parts_is_rejected(parts: int) -> None:
    with pytest.raises(InvalidAmount):
        Money(100).allocate(parts)


@given(a=amounts, b=amounts, currency=currencies)
def test_same_currency_arithmetic_is_integer_arithmetic(a: int, b: int, currency: str) -> None:
    x, y = Money(a, currency), Money(b, currency)
    assert (x + y).amount == a + b
    assert (x - y).amount == a - b
    assert (-x).amount == -a
    assert (x < y) == (a < b)
    assert (x <= y) == (a <= b)
    assert (x > y) == (a > b)
    assert (x >= y) == (a >= b)


@given(a=amounts, b=amounts, pair=st.lists(currencies, min_size=2, max_size=2, unique=True))
def test_mixed_currency_arithmetic_raises_currency_mismatch(
    a: int, b: int, pair: list[str]
) -> None:
    x, y = Money(a, pair[0]), Money(b, pair[1])
    for op in (
        lambda: x + y,
        lambda: x - y,
        lambda: x < y,
        lambda: x <= y,
        lambda: x > y,
        lambda: x >= y,
    ):
        with pytest.raises(CurrencyMismatch) as info:
            op()
        assert info.value.status == 422


@given(code=not_currencies | st.text(max_size=5).filter(lambda c: c not in CURRENCIES))
def test_unknown_currency_is_rejected(code: str) -> None:
    with pytest.raises(UnknownCurrency) as info:
        Money(1, code)
    assert info.value.code == "unknown_currency"
    with pytest.raises(UnknownCurrency):
        check_currency(code)


def test_lower_case_currency_is_not_a_currency() -> None:
    with pytest.raises(UnknownCurrency):
        Money(1, "usd")


@pytest.mark.parametrize("amount", [1.0, 0.5, True, False, "100", None])
def test_non_integer_amounts_are_rejected(amount: object) -> None:
    with pytest.raises(InvalidAmount):
        Money(amount)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (125_000, "USD", "1,250.00 USD"),
        (5, "USD", "0.05 USD"),
        (-1_234_567, "EUR", "-12,345.67 EUR"),
        (1500, "JPY", "1,500 JPY"),
        (1500, "KWD", "1.500 KWD"),
        (0, "USD", "0.00 USD"),
    ],
)
def test_format_uses_the_currency_exponent(amount: int, currency: str, text: str) -> None:
    assert Money(amount, currency).format() == text


def test_zero_and_is_positive() -> None:
    assert Money.zero("EUR") == Money(0, "EUR")
    assert not Money.zero().is_positive()
    assert Money(1).is_positive()
    assert not Money(-1).is_positive()


def test_money_is_immutable() -> None:
    m = Money(1)
    with pytest.raises(AttributeError):
        m.amount = 2  # type: ignore[misc]
