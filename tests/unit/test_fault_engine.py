"""The pure side of faults: matching, windows and ramps, dice, latency draws, rule validation,
and fault files."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from simulator.api import v1
from simulator.dialects import creditkey, gateway, invoicing, vcards
from simulator.faults import engine
from simulator.faults.files import FaultFileError, load
from simulator.faults.models import Latency, RuleIn
from simulator.faults.presets import PRESETS
from simulator.faults.registry import FaultDice, FaultRegistry, could_match
from simulator.rng import SeededRng
from simulator.store.sqlite import SqliteStore

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
OPS = [op.operation_id for op in v1.OPERATIONS]
# Every operation rules may name (presets must name real ones): /v1's, Credit Key's and the
# gateway, virtual-card and traditional-invoicing personalities'.
ALL_OPS = [
    *OPS,
    *(op.operation_id for op in creditkey.OPERATIONS),
    *(op.operation_id for op in gateway.OPERATIONS),
    *(op.operation_id for op in vcards.OPERATIONS),
    *(op.operation_id for op in invoicing.OPERATIONS),
]


def facts(**overrides: Any) -> engine.RequestFacts:
    values: dict[str, Any] = {
        "account": "acct_a",
        "method": "POST",
        "path": "/v1/orders/ord_1/captures",
        "operation": "createCapture",
        "headers": {"x-run": "blue"},
        "attempt": None,
    }
    values.update(overrides)
    return engine.RequestFacts(**values)


def rule(reg: FaultRegistry, now: datetime = T0, **data: Any) -> Any:
    data.setdefault("effect", {"type": "status", "status": 503})
    return reg.add(RuleIn.model_validate(data), now)


def pick(reg: FaultRegistry, dice: Any) -> Any:
    """The registry's choice for a createCapture request of acct_a, its firing claimed."""
    return asyncio.run(reg.choose(reg.candidates("acct_a"), facts(), lambda _: T0, dice))


@pytest.fixture
def reg() -> FaultRegistry:
    return FaultRegistry(store=SqliteStore(":memory:"), server_seed=1, operations=ALL_OPS)


@pytest.mark.parametrize(
    ("template", "path", "hit"),
    [
        ("/v1/orders/{id}/captures", "/v1/orders/ord_1/captures", True),
        ("/v1/orders/{id}/captures", "/v1/orders/ord_1/refunds", False),
        ("/v1/orders/{id}", "/v1/orders/ord_1/captures", False),
        ("/v1/*", "/v1/checkouts", True),
        ("/v1/orders*", "/v1/orders/ord_1", True),
        ("/v1/orders*", "/v1/checkouts", False),
        ("/v1/a.b", "/v1/aXb", False),  # a dot is a dot, not a regex wildcard
    ],
)
def test_path_templates_match_one_segment_per_parameter(
    template: str, path: str, hit: bool
) -> None:
    assert bool(engine.path_pattern(template).match(path)) is hit


def test_every_given_match_field_must_hold(reg: FaultRegistry) -> None:
    r = rule(
        reg, match={"operation": "createCapture", "method": "POST", "header": {"X-Run": "blue"}}
    )
    assert engine.matches(r.match, r.account, facts())
    assert not engine.matches(r.match, r.account, facts(operation="getOrder"))
    assert not engine.matches(r.match, r.account, facts(headers={"x-run": "green"}))
    assert not engine.matches(r.match, "acct_other", facts())


def test_attempt_bounds_need_an_idempotency_key(reg: FaultRegistry) -> None:
    r = rule(reg, match={"attempt": {"lte": 2}})
    assert not engine.matches(r.match, None, facts(attempt=None))
    assert [engine.matches(r.match, None, facts(attempt=n)) for n in (1, 2, 3)] == [
        True,
        True,
        False,
    ]


def test_window_from_duration_opens_at_creation_and_closes_after(reg: FaultRegistry) -> None:
    r = rule(reg, window={"duration": "15m"})
    assert engine.probability(r, T0 - timedelta(seconds=1)) == 0.0
    assert engine.probability(r, T0) == 1.0
    assert engine.probability(r, T0 + timedelta(minutes=14, seconds=59)) == 1.0
    assert engine.probability(r, T0 + timedelta(minutes=15)) == 0.0


def test_ramp_rises_linearly_across_its_window(reg: FaultRegistry) -> None:
    r = rule(reg, window={"duration": "100s"}, ramp={"from": 0.0, "to": 1.0})
    assert engine.probability(r, T0) == 0.0
    assert engine.probability(r, T0 + timedelta(seconds=25)) == pytest.approx(0.25)
    assert engine.probability(r, T0 + timedelta(seconds=90)) == pytest.approx(0.9)


def test_times_retires_a_rule_after_it_fired_that_often(reg: FaultRegistry) -> None:
    rule(reg, times=2)
    dice = FaultDice("acct_a", 1)
    chosen = [pick(reg, dice) for _ in range(3)]
    assert [c is not None for c in chosen] == [True, True, False]


def test_first_matching_rule_in_creation_order_wins(reg: FaultRegistry) -> None:
    rule(reg, match={"operation": "getOrder"})
    second = rule(reg, match={"operation": "createCapture"})
    third = rule(reg)
    got = pick(reg, FaultDice("a", 1))
    assert got is not None
    assert got.id == second.id
    assert reg.get(second.id).fired == 1
    assert reg.get(third.id).fired == 0


class CountingDice:
    def __init__(self) -> None:
        self.draws = 0

    def random(self) -> float:
        self.draws += 1
        return 0.5

    def randint(self, low: int, high: int) -> int:
        self.draws += 1
        return low


def test_certain_rules_throw_no_dice(reg: FaultRegistry) -> None:
    """Adding a rule of probability 1 (or 0) must not shift the seeded fault sequence."""
    rule(reg, probability=0.0)
    rule(reg, probability=1.0)
    dice = CountingDice()
    assert pick(reg, dice) is not None
    assert dice.draws == 0


def test_fault_dice_follow_the_seed() -> None:
    a = [FaultDice("acct_a", 7).random() for _ in range(1)]
    b = [FaultDice("acct_a", 7).random() for _ in range(1)]
    c = [FaultDice("acct_a", 8).random() for _ in range(1)]
    assert a == b != c


@given(seed=st.integers(0, 2**32), low=st.integers(0, 5000), span=st.integers(0, 5000))
def test_uniform_latency_stays_within_its_bounds(seed: int, low: int, span: int) -> None:
    effect = Latency(type="latency", distribution="uniform", min_ms=low, max_ms=low + span)
    assert low <= engine.latency_ms(effect, SeededRng("t", seed)) <= low + span


@given(seed=st.integers(0, 2**32))
def test_lognormal_latency_never_exceeds_its_cap(seed: int) -> None:
    effect = Latency(
        type="latency", distribution="lognormal", median_ms=3000, sigma=2.0, cap_ms=5000
    )
    assert 0 <= engine.latency_ms(effect, SeededRng("t", seed)) <= 5000


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ({"effect": {"type": "truncate"}}, "use phase `after`"),
        ({"effect": {"type": "status", "status": 418}}, "Input should be 429, 500, 502, 503"),
        ({"effect": {"type": "latency"}}, "needs `ms`"),
        ({"effect": {"type": "explode"}}, "does not match any of the expected tags"),
        ({"effect": {"type": "reset"}, "probability": 1.5}, "less than or equal to 1"),
        ({"effect": {"type": "reset"}, "window": {"duration": "soon"}}, "a duration such as"),
        ({"effect": {"type": "reset"}, "ramp": {"from": 0, "to": 1}}, "a ramp needs a bounded"),
        ({"effect": {"type": "reset"}, "match": {"path": "/_sandbox/faults"}}, "String should"),
        ({"effect": {"type": "reset"}, "surprise": 1}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_rules_say_what_is_wrong(data: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        RuleIn.model_validate(data)


def test_an_unknown_operation_is_refused_with_its_field_path(reg: FaultRegistry) -> None:
    with pytest.raises(Exception, match="not an operationId") as info:
        reg.validate({"match": {"operation": "capture"}, "effect": {"type": "reset"}}, "body")
    assert info.value.errors[0]["path"] == "body.match.operation"  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_valid_rules(reg: FaultRegistry, name: str) -> None:
    created = reg.apply_preset(name, "acct_a", None, T0)
    assert created
    assert all(r.preset == name and r.account == "acct_a" for r in created)


def test_a_fault_file_loads_rules_and_presets(tmp_path: Path) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text(
        "rules:\n"
        "  - match: {operation: createCapture, attempt: {lte: 2}}\n"
        "    effect: {type: status, status: 503, retry_after_s: 1}\n"
        "presets:\n"
        "  - rate-limited\n"
        "  - {name: total-outage, duration: 5m}\n"
    )
    rules = load(path)
    assert len(rules) == 3
    assert rules[0]["effect"]["retry_after_s"] == 1
    assert rules[2]["window"] == {"duration": "5m"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules:\n  - effect: {type: status, status: 200}\n", "rules[0].effect.status"),
        ("presets: [no-such-plan]\n", "presets[0]: not a preset name"),
        ("rules: [\n", "is not valid YAML or JSON"),
        ("surprise: 1\n", "expected a list of rules"),
    ],
)
def test_a_bad_fault_file_is_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text(text)
    with pytest.raises(FaultFileError, match=message.replace("[", r"\[").replace("]", r"\]")) as e:
        load(path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("rule_path", "template", "possible"),
    [
        ("/v1/*", "/v1/orders/{id}", True),
        ("/v1/orders*", "/v1/orders/{id}/captures", True),
        ("/v1/ord*", "/v1/orders", True),
        ("/v1/orders/{id}", "/v1/orders/{id}", True),
        ("/v1/orders/ord_1", "/v1/orders/{id}", True),
        ("/v1/orders/ord_1*", "/v1/orders/{id}/refunds", True),
        ("/v1/buyers/*", "/v1/orders/{id}", False),
        ("/v1/orders/{id}/captures", "/v1/orders/{id}", False),
        ("/v1/orders/{id}/captures*", "/v1/orders/{id}", False),
        ("/v1/events*", "/v1/orders/{id}", False),
        ("/v1/orders", "/v1/orders/{id}", False),
    ],
)
def test_path_pruning_keeps_every_rule_that_could_match(
    rule_path: str, template: str, possible: bool
) -> None:
    assert could_match(rule_path, template) is possible


@given(
    rule_path=st.sampled_from(
        [
            "/v1/*",
            "/v1/orders*",
            "/v1/orders/{id}",
            "/v1/orders/ord_1",
            "/v1/orders/{id}/captures",
            "/v1/buyers*",
            "/v1/ord*",
            "/v1/orders/{x}/refunds*",
        ]
    ),
    op=st.sampled_from(OPS),
    ident=st.sampled_from(["ord_1", "chk_2", "buy_3"]),
)
def test_path_pruning_never_drops_a_rule_that_matches_a_real_path(
    rule_path: str, op: str, ident: str
) -> None:
    template = next(o.path for o in v1.OPERATIONS if o.operation_id == op)
    path = re.sub(r"\{[^}]+\}", ident, template)
    if engine.path_pattern(rule_path).match(path):
        assert could_match(rule_path, template)


def test_cached_candidates_follow_rule_changes(reg: FaultRegistry) -> None:
    template = "/v1/orders/{id}/captures"
    assert reg.candidates_for("acct_a", "POST", "createCapture", template) == []
    hit = rule(reg, match={"operation": "createCapture"})
    rule(reg, match={"operation": "getOrder"})
    assert reg.candidates_for("acct_a", "POST", "createCapture", template) == [hit]
    reg.delete(hit.id)
    assert reg.candidates_for("acct_a", "POST", "createCapture", template) == []
