"""The scenario file: validation errors name the file, the line and the field; durations;
the fast-mode variant; the whole catalogue is valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from rehearsal.cli import catalogue, main
from rehearsal.model import ScenarioError, format_ms, load, parse, parse_ms

GOOD = """\
title: A small rehearsal
failure_mode: provider-outage
runbook: docs/runbooks/provider-outage.md
seed: 7
duration: 30m
workload:
  orders_per_minute: 2
timeline:
  - {at: 5m, preset: total-outage}
  - at: T+10m
    clear_faults: true
slos:
  - {metric: "erp_latency_ms{route:place,phase:during}", threshold: "p(99) < 1000"}
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        parse(text, "scenarios/x.yaml")
    return caught.value.problems


def test_a_valid_scenario_parses_with_durations_in_milliseconds() -> None:
    s = parse(GOOD)
    assert s.duration == 30 * 60_000
    assert [step.at for step in s.timeline] == [300_000, 600_000]
    assert s.timeline[0].action == "preset"
    assert s.timeline[0].preset is not None
    assert s.timeline[0].preset.name == "total-outage"
    assert [p.name for p in s.steady_state.probes] == [
        "provider_healthy",
        "erp_metrics_up",
        "no_open_holds",
    ]


def test_an_unknown_preset_names_file_line_and_field() -> None:
    text = GOOD.replace("preset: total-outage", "preset: total-outgae")
    (problem,) = problems_of(text)
    assert problem.startswith("scenarios/x.yaml:9: timeline[0].preset.name: ")
    assert "total-outage" in problem


def test_a_bad_duration_names_its_line() -> None:
    (problem,) = problems_of(GOOD.replace("duration: 30m", "duration: 30 minutes"))
    assert problem.startswith("scenarios/x.yaml:5: duration: ")
    assert "not a duration" in problem


def test_a_step_with_two_actions_is_refused_at_its_line() -> None:
    text = GOOD.replace("    clear_faults: true", "    clear_faults: true\n    receiver: stop")
    (problem,) = problems_of(text)
    assert problem.startswith("scenarios/x.yaml:10: timeline[1]: ")
    assert "exactly one action" in problem


def test_a_missing_field_and_an_unknown_field_are_both_reported() -> None:
    text = GOOD.replace("seed: 7\n", "").replace("  orders_per_minute: 2", "  orders_per_minte: 2")
    found = problems_of(text)
    assert any(p.startswith("scenarios/x.yaml:1: seed: Field required") for p in found)
    assert any(p.startswith("scenarios/x.yaml:6: workload.orders_per_minte: ") for p in found)


def test_a_malformed_slo_threshold_is_refused() -> None:
    (problem,) = problems_of(GOOD.replace("p(99) < 1000", "p99 under 1s"))
    assert problem.startswith("scenarios/x.yaml:13: slos[0].threshold: ")


def test_an_unknown_invariant_is_refused() -> None:
    (problem,) = problems_of(GOOD + "invariants: [no_order_lost, no_money_lost]\n")
    assert "invariants: unknown invariant 'no_money_lost'" in problem


def test_a_step_after_the_duration_is_refused() -> None:
    (problem,) = problems_of(GOOD.replace("at: T+10m", "at: T+40m"))
    assert "after the duration" in problem


def test_invalid_yaml_names_its_line() -> None:
    (problem,) = problems_of("title: x\nseed: [1,\n")
    assert problem.startswith("scenarios/x.yaml:3: not valid YAML")


def test_durations_round_trip() -> None:
    assert parse_ms("1h30m") == 5_400_000
    assert parse_ms("T+250ms") == 250
    assert format_ms(parse_ms("31d1h")) == "31d1h"
    for bad in ("", "10", "5 m", "1h-", True, -1):
        with pytest.raises(ValueError, match="duration"):
            parse_ms(bad)


def test_fast_mode_shrinks_the_workload_and_speeds_up() -> None:
    s = parse(GOOD + "fast: {orders_per_minute: 1, speed: 900, duration: 20m}\n")
    fast = s.for_fast_mode()
    assert fast.workload.orders_per_minute == 1
    assert fast.speed == 900
    assert fast.duration == 20 * 60_000
    assert s.workload.orders_per_minute == 2  # the original is untouched


def test_every_scenario_of_the_catalogue_is_valid_and_links_its_runbook() -> None:
    files = catalogue()
    assert len(files) >= 13
    modes = set()
    for path in files:
        s = load(path)
        modes.add(s.failure_mode)
        assert s.runbook == f"docs/runbooks/{s.failure_mode}.md", path
    assert len(modes) == len(files)


def test_validate_exits_2_with_one_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("seed: 7", "seed: -1"))
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{bad}:4: seed: Input should be greater than or equal to 0"]
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    assert main(["validate", str(good)]) == 0
