"""The integration's retry policy and circuit breakers, on manual clocks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from integration.breaker import Breaker, BreakerOpen, Breakers, State
from integration.retry import Backoff, Transport, Verdict, classify, retry_after_s

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize(
    ("status", "transport", "verdict"),
    [
        (200, None, Verdict.SUCCESS),
        (201, None, Verdict.SUCCESS),
        (429, None, Verdict.RETRY),
        (503, None, Verdict.RETRY),
        (500, None, Verdict.RETRY_AMBIGUOUS),
        (502, None, Verdict.RETRY_AMBIGUOUS),
        (504, None, Verdict.RETRY_AMBIGUOUS),
        (400, None, Verdict.FINAL),
        (401, None, Verdict.FINAL),
        (404, None, Verdict.FINAL),
        (409, None, Verdict.FINAL),
        (422, None, Verdict.FINAL),
        (301, None, Verdict.FINAL),
        (None, Transport.CONNECT_ERROR, Verdict.RETRY),
        (None, Transport.CONNECT_TIMEOUT, Verdict.RETRY),
        (None, Transport.READ_TIMEOUT, Verdict.RETRY_AMBIGUOUS),
        (None, Transport.RESET, Verdict.RETRY_AMBIGUOUS),
        (None, Transport.PROTOCOL_ERROR, Verdict.RETRY_AMBIGUOUS),
    ],
)
def test_only_transient_failures_are_retried_and_maybe_committed_ones_are_flagged(
    status: int | None, transport: Transport | None, verdict: Verdict
) -> None:
    assert classify(status, transport) is verdict


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_s({"Retry-After": "30"}, NOW) == 30.0
    assert retry_after_s({"retry-after": "Wed, 25 Nov 2026 12:00:45 GMT"}, NOW) == 45.0
    assert retry_after_s({"Retry-After": "Wed, 25 Nov 2026 11:00:00 GMT"}, NOW) == 0.0
    assert retry_after_s({"Retry-After": "soon"}, NOW) is None
    assert retry_after_s({}, NOW) is None


@given(attempt=st.integers(1, 20), draw=st.floats(0, 1, exclude_max=True))
def test_backoff_stays_under_its_ceiling_and_cap(attempt: int, draw: float) -> None:
    b = Backoff()
    wait = b.wait_s(attempt, lambda: draw, None)
    assert 0 <= wait <= min(b.max_wait_s, b.base_s * b.factor ** (attempt - 1))


def test_a_longer_retry_after_wins_but_never_past_the_cap() -> None:
    b = Backoff(max_wait_s=10.0)
    assert b.wait_s(1, lambda: 0.5, 3.0) == 3.0
    assert b.wait_s(1, lambda: 0.5, 60.0) == 10.0


def test_backoff_gives_up_on_attempts_or_total_time() -> None:
    b = Backoff(max_attempts=3, max_total_s=5.0)
    assert not b.gives_up(2, 1.0, 1.0)
    assert b.gives_up(3, 1.0, 1.0)
    assert b.gives_up(1, 4.5, 1.0)


def test_consecutive_failures_open_the_breaker_and_it_refuses_calls() -> None:
    clock = Clock()
    b = Breaker("captures", clock, failure_threshold=3, cooldown_s=30)
    for _ in range(2):
        b.before_call()
        b.on_failure()
    assert b.state is State.CLOSED
    b.before_call()
    b.on_failure()
    assert b.state is State.OPEN
    clock.t += 10
    with pytest.raises(BreakerOpen, match=r"retry in 20\.0s"):
        b.before_call()


def test_a_success_resets_the_failure_count() -> None:
    b = Breaker("captures", Clock(), failure_threshold=2)
    b.on_failure()
    b.on_success()
    b.on_failure()
    assert b.state is State.CLOSED


def test_after_the_cooldown_one_trial_call_decides() -> None:
    clock = Clock()
    b = Breaker("captures", clock, failure_threshold=1, cooldown_s=30)
    b.on_failure()
    clock.t += 30
    b.before_call()  # the trial
    assert b.state is State.HALF_OPEN
    with pytest.raises(BreakerOpen):
        b.before_call()  # only one trial at a time
    b.on_failure()
    assert b.state is State.OPEN  # the trial failed: another full cooldown
    clock.t += 29
    with pytest.raises(BreakerOpen):
        b.before_call()
    clock.t += 1
    b.before_call()
    b.on_success()
    assert b.state is State.CLOSED
    b.before_call()


def test_each_operation_family_has_its_own_breaker() -> None:
    clock = Clock()
    board = Breakers(clock, failure_threshold=1)
    board["captures"].on_failure()
    board["reads"].before_call()
    assert board.states() == {"captures": State.OPEN, "reads": State.CLOSED}
