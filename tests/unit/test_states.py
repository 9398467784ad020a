"""The transition tables are data; these tests check the data as a graph."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest

from simulator.domain import states
from simulator.domain.errors import InvalidTransition

MACHINES = sorted(states.MACHINES)


def reachable(machine: states.Machine[Any]) -> set[str]:
    seen = {machine.initial}
    todo = deque(seen)
    while todo:
        state = todo.popleft()
        for (src, _event), dst in machine.table.items():
            if src == state and dst not in seen:
                seen.add(dst)
                todo.append(dst)
    return seen


def test_every_resource_with_a_status_has_a_machine() -> None:
    assert set(MACHINES) == {
        "checkout",
        "order",
        "credit_line",
        "repayment",
        "settlement",
        "dispute",
        "webhook_delivery",
        "webhook_endpoint",
        "invoice",
        "charge",
        "vcard",
        "vcard_payment",
        "edi_invoice",
        "token",
    }


@pytest.mark.parametrize("resource", MACHINES)
def test_every_state_is_reachable_from_the_initial_state(resource: str) -> None:
    machine = states.MACHINES[resource]
    assert reachable(machine) == set(machine.states)


@pytest.mark.parametrize("resource", MACHINES)
def test_every_table_entry_names_known_states(resource: str) -> None:
    machine = states.MACHINES[resource]
    known = set(machine.states)
    assert machine.initial in known
    assert machine.terminal <= known
    for (src, event), dst in machine.table.items():
        assert src in known, (src, event)
        assert dst in known, (src, event, dst)


@pytest.mark.parametrize("resource", MACHINES)
def test_terminal_states_have_no_exits(resource: str) -> None:
    machine = states.MACHINES[resource]
    exits = {src for (src, _event) in machine.table}
    assert not exits & machine.terminal


@pytest.mark.parametrize("resource", MACHINES)
def test_every_non_terminal_state_has_an_exit(resource: str) -> None:
    machine = states.MACHINES[resource]
    exits = {src for (src, _event) in machine.table}
    assert set(machine.states) - machine.terminal <= exits


@pytest.mark.parametrize(
    ("resource", "state", "event", "expected"),
    [
        ("checkout", "open", "complete", "completed"),
        ("order", "authorized", "capture_partial", "partially_captured"),
        ("order", "partially_captured", "expire", "captured"),
        ("order", "partially_refunded", "expire_all_refunded", "refunded"),
        ("credit_line", "in_review", "approve", "active"),
        ("repayment", "scheduled", "miss", "late"),
        ("repayment", "late", "default", "defaulted"),
        ("settlement", "pending", "pay", "paid"),
        ("dispute", "needs_response", "submit_evidence", "under_review"),
        ("dispute", "under_review", "win", "won"),
        ("webhook_delivery", "failed", "recover", "pending"),
        ("webhook_endpoint", "disabled", "disable", "disabled"),
        ("invoice", "paid", "issue", "open"),
        ("invoice", "open", "write_off", "short_paid"),
        ("charge", "pending", "clear", "succeeded"),
    ],
)
def test_transition_applies_the_table(resource: str, state: str, event: str, expected: str) -> None:
    machine = states.MACHINES[resource]
    assert machine.transition(state, event) == expected
    assert machine.allowed(state, event)


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
        ("repayment", "paid", "default"),
        ("settlement", "paid", "pay"),
        ("dispute", "needs_response", "win"),
        ("webhook_delivery", "succeeded", "fail"),
        ("invoice", "open", "void"),
        ("invoice", "void", "issue"),
    ],
)
def test_illegal_transition_raises_invalid_transition_409(
    resource: str, state: str, event: str
) -> None:
    machine = states.MACHINES[resource]
    with pytest.raises(InvalidTransition) as info:
        machine.transition(state, event)
    assert info.value.status == 409
    assert info.value.code == "invalid_transition"
    assert state in info.value.detail
    assert not machine.allowed(state, event)


def test_invalid_transition_names_the_verb_not_the_internal_event() -> None:
    with pytest.raises(InvalidTransition) as info:
        states.ORDER.transition("canceled", "capture_partial")
    assert info.value.detail == "cannot capture an order that is canceled"


def test_tables_cannot_be_mutated() -> None:
    with pytest.raises(TypeError):
        states.ORDER.table[("canceled", "approve")] = "authorized"  # type: ignore[index]
