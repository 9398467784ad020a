"""The transition tables are data; these tests check the data as a graph."""

from __future__ import annotations

from collections import deque

import pytest

from simulator.domain import states
from simulator.domain.errors import InvalidTransition

INITIAL = {"checkout": "open", "order": "pending_review", "credit_line": "unreviewed"}
TERMINAL = {
    "checkout": frozenset({"completed", "declined", "expired"}),
    "order": states.ORDER_TERMINAL,
    "credit_line": frozenset(),
}


def reachable(resource: str) -> set[str]:
    table = states.TABLES[resource]
    seen = {INITIAL[resource]}
    todo = deque(seen)
    while todo:
        state = todo.popleft()
        for (src, _event), dst in table.items():
            if src == state and dst not in seen:
                seen.add(dst)
                todo.append(dst)
    return seen


@pytest.mark.parametrize("resource", sorted(states.TABLES))
def test_every_state_is_reachable_from_the_initial_state(resource: str) -> None:
    assert reachable(resource) == set(states.STATES[resource])


@pytest.mark.parametrize("resource", sorted(states.TABLES))
def test_every_table_entry_names_known_states(resource: str) -> None:
    known = set(states.STATES[resource])
    for (src, event), dst in states.TABLES[resource].items():
        assert src in known, (src, event)
        assert dst in known, (src, event, dst)


@pytest.mark.parametrize("resource", sorted(states.TABLES))
def test_terminal_states_have_no_exits(resource: str) -> None:
    exits = {src for (src, _event) in states.TABLES[resource]}
    assert not exits & TERMINAL[resource]


def test_non_terminal_order_states_all_have_an_exit() -> None:
    exits = {src for (src, _event) in states.ORDER}
    assert set(states.ORDER_STATES) - states.ORDER_TERMINAL <= exits


@pytest.mark.parametrize(
    ("resource", "state", "event", "expected"),
    [
        ("checkout", "open", "complete", "completed"),
        ("order", "authorized", "capture_partial", "partially_captured"),
        ("order", "partially_captured", "expire", "captured"),
        ("order", "partially_refunded", "expire_all_refunded", "refunded"),
        ("credit_line", "in_review", "approve", "active"),
    ],
)
def test_transition_applies_the_table(resource: str, state: str, event: str, expected: str) -> None:
    assert states.transition(resource, state, event) == expected
    assert states.allowed(resource, state, event)


@pytest.mark.parametrize(
    ("resource", "state", "event"),
    [
        ("order", "captured", "cancel"),
        ("order", "canceled", "capture_partial"),
        ("order", "authorized", "refund_partial"),
        ("order", "refunded", "refund_full"),
        ("checkout", "completed", "complete"),
        ("checkout", "expired", "decline"),
        ("order", "authorized", "no_such_event"),
    ],
)
def test_illegal_transition_raises_invalid_transition_409(
    resource: str, state: str, event: str
) -> None:
    with pytest.raises(InvalidTransition) as info:
        states.transition(resource, state, event)
    assert info.value.status == 409
    assert info.value.code == "invalid_transition"
    assert state in info.value.detail
    assert not states.allowed(resource, state, event)


def test_invalid_transition_names_the_verb_not_the_internal_event() -> None:
    with pytest.raises(InvalidTransition) as info:
        states.transition("order", "canceled", "capture_partial")
    assert info.value.detail == "cannot capture an order that is canceled"


def test_tables_cannot_be_mutated() -> None:
    with pytest.raises(TypeError):
        states.ORDER[("canceled", "approve")] = "authorized"  # type: ignore[index]
