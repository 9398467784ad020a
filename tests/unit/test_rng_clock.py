"""The counter-based RNG and the clocks: deterministic, injectable, strict about input."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.clock import ManualClock, from_us, parse_duration, to_us, virtual_now
from simulator.domain.errors import InvalidDuration
from simulator.rng import ID_LENGTH, SORT_DIGITS, SeededRng

seeds = st.integers(min_value=0, max_value=2**63 - 1)


@given(seed=seeds, counter=st.integers(0, 10**6), namespace=st.text(max_size=20))
def test_same_namespace_seed_and_counter_give_the_same_ids(
    seed: int, counter: int, namespace: str
) -> None:
    a, b = SeededRng(namespace, seed, counter), SeededRng(namespace, seed, counter)
    assert [a.id("ord") for _ in range(3)] == [b.id("ord") for _ in range(3)]
    assert a.counter == b.counter == counter + 3


@given(seed=seeds)
def test_a_different_seed_gives_different_ids(seed: int) -> None:
    assert SeededRng("acct", seed).id("ord") != SeededRng("acct", seed + 1).id("ord")


def test_a_different_namespace_gives_different_ids() -> None:
    assert SeededRng("acct_a", 1).id("ord") != SeededRng("acct_b", 1).id("ord")


def test_resuming_from_a_counter_continues_the_sequence() -> None:
    rng = SeededRng("acct", 5)
    first = [rng.token() for _ in range(4)]
    resumed = SeededRng("acct", 5, counter=2)
    assert [resumed.token(), resumed.token()] == first[2:]


@given(seed=seeds, counter=st.integers(0, 2**40), namespace=st.text(max_size=20))
def test_draw_n_is_blake2b_keyed_by_namespace_and_seed(
    seed: int, counter: int, namespace: str
) -> None:
    # The module's promise, spelled out: stored seeds and counters must keep giving the same
    # draws, however the keyed state is made (today at the first draw, not in the constructor).
    key = hashlib.blake2b(f"{namespace}\x00{seed}".encode(), digest_size=32).digest()
    expected = []
    for n in (counter, counter + 1):
        digest = hashlib.blake2b(key=key, digest_size=16)
        digest.update(n.to_bytes(8, "little"))
        expected.append(int.from_bytes(digest.digest()[:8], "little"))
    rng = SeededRng(namespace, seed, counter)
    assert [rng.u64(), rng.u64()] == expected
    assert rng.counter == counter + 2


def test_ids_carry_the_prefix_and_a_base62_token() -> None:
    ident = SeededRng("acct", 1).id("chk")
    assert re.fullmatch(rf"chk_[0-9A-Za-z]{{{ID_LENGTH}}}", ident)


@given(
    seed=seeds,
    counter=st.sampled_from([0, 51, 52, 2703, 2704, 52**3 - 2, 52**4 - 3, 52**5 - 1, 52**6 - 81]),
    draws=st.integers(2, 40),
)
def test_an_accounts_ids_sort_in_the_order_it_drew_them(
    seed: int, counter: int, draws: int
) -> None:
    # Across the places where a letter of the counter carries into the next (52, 52**2, ...):
    # new rows of a table then go where the last ones went in its `id` index.
    rng = SeededRng("acct", seed, counter)
    ids = []
    for _ in range(draws):
        rng.randint(1, 6)  # other draws between two ids, as a request makes them
        ids.append(rng.id("chk"))
    assert ids == sorted(ids)
    assert len(set(ids)) == draws


def test_the_counter_is_spelled_in_letters_so_no_id_looks_like_a_card_number() -> None:
    rng = SeededRng("acct", 3)
    for counter in (0, 9, 10**6, 52**6 - 1):
        rng.counter = counter
        assert rng.id("evt")[4 : 4 + SORT_DIGITS].isalpha()
    rng.counter = 0
    assert not any(re.search(r"\d{12}", rng.id("tok")) for _ in range(20_000))


@pytest.mark.parametrize("length", [1, 20, 21, 22, 32, 64])
def test_tokens_have_the_requested_length(length: int) -> None:
    assert len(SeededRng("x", 1).token(length)) == length


@given(seed=seeds, low=st.integers(-1000, 1000), span=st.integers(0, 1000))
def test_randint_is_inclusive_and_in_range(seed: int, low: int, span: int) -> None:
    rng = SeededRng("x", seed)
    for _ in range(5):
        assert low <= rng.randint(low, low + span) <= low + span


def test_randint_reaches_both_ends() -> None:
    rng = SeededRng("x", 3)
    assert {rng.randint(0, 2) for _ in range(200)} == {0, 1, 2}


def test_random_is_a_unit_interval_float() -> None:
    rng = SeededRng("x", 3)
    values = [rng.random() for _ in range(200)]
    assert all(0.0 <= v < 1.0 for v in values)
    assert len(set(values)) == 200


# --- clock -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("90s", timedelta(seconds=90)),
        ("250ms", timedelta(milliseconds=250)),
        ("2w", timedelta(weeks=2)),
        ("25h", timedelta(hours=25)),
        (" 1m ", timedelta(minutes=1)),
        ("1d2h3m4s5ms", timedelta(days=1, hours=2, minutes=3, seconds=4, milliseconds=5)),
        ("0s", timedelta(0)),
    ],
)
def test_parse_duration_accepts_unit_suffixed_numbers(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "30",
        "d",
        "-1h",
        "1.5h",
        "1 h",
        "1h 30m",
        "1y",
        "1H",
        "h1",
        "1h-",
        "99999w",
        "1hx",
    ],
)
def test_parse_duration_rejects_anything_else_as_invalid_duration(text: str) -> None:
    with pytest.raises(InvalidDuration) as info:
        parse_duration(text)
    assert info.value.status == 422


@given(st.text(max_size=20))
def test_parse_duration_either_parses_or_raises_invalid_duration(text: str) -> None:
    try:
        result = parse_duration(text)
    except InvalidDuration:
        return
    assert timedelta(0) <= result <= timedelta(days=100 * 365)


def test_manual_clock_moves_only_when_told() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = ManualClock(start)
    assert clock.now() == clock.now() == start
    clock.advance(timedelta(hours=1))
    assert clock.now() == start + timedelta(hours=1)


# Hypothesis takes naive bounds and attaches the zone from `timezones`.
@given(st.datetimes(min_value=datetime(1970, 1, 2), timezones=st.just(UTC)))  # noqa: DTZ001
def test_microsecond_round_trip(moment: datetime) -> None:
    assert from_us(to_us(moment)) == moment


def test_virtual_clock_runs_at_an_offset_from_the_wall() -> None:
    wall = datetime(2026, 1, 1, tzinfo=UTC)
    offset = to_us(wall + timedelta(days=2)) - to_us(wall)
    assert virtual_now(wall, offset, None) == wall + timedelta(days=2)
    assert virtual_now(wall + timedelta(seconds=5), offset, None) == wall + timedelta(
        days=2, seconds=5
    )


def test_a_frozen_virtual_clock_ignores_the_wall() -> None:
    wall = datetime(2026, 1, 1, tzinfo=UTC)
    frozen = to_us(wall)
    assert virtual_now(wall + timedelta(hours=3), 12345, frozen) == wall
