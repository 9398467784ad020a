"""The timeline's windows and phases, SLO judging (k6 thresholds, Prometheus histograms), CTK
tolerances, and the seeded workload: pure functions of the scenario."""

from __future__ import annotations

from typing import Any

import pytest

from rehearsal.invariants import Observation
from rehearsal.model import Scenario, Slo, parse
from rehearsal.runner import (
    FINISH_CAP_S,
    STALL_S,
    held_completions,
    next_monday_9,
    request_points,
    stalled,
    tolerance_met,
)
from rehearsal.shop import Call
from rehearsal.slos import Point, histogram, judge, parse_prometheus, percentile
from rehearsal.timeline import phase_of, windows
from rehearsal.workload import buyers, plan

BASE = """\
title: t
failure_mode: provider-outage
runbook: docs/runbooks/provider-outage.md
seed: 42
duration: 60m
workload: {orders_per_minute: 2}
"""


def scenario(extra: str = "") -> Scenario:
    return parse(BASE + extra)


# --- timeline ---------------------------------------------------------------------------------
def test_a_preset_lasts_its_duration_and_a_rule_until_cleared() -> None:
    s = scenario(
        """timeline:
  - {at: 10m, preset: {name: total-outage, duration: 5m}}
  - {at: 20m, fault: {match: {operation: createCapture}, effect: {type: status, status: 503}}}
  - {at: 30m, clear_faults: true}
  - {at: 40m, preset: rate-limited}
"""
    )
    spans = [(w.start_ms // 60_000, w.end_ms // 60_000, w.label) for w in windows(s)]
    assert spans == [
        (10, 15, "preset total-outage"),
        (20, 30, "503 status on createCapture"),
        (40, 60, "preset rate-limited"),  # until the end: the runner clears it there
    ]


def test_total_outage_defaults_to_fifteen_minutes() -> None:
    (w,) = windows(scenario("timeline: [{at: 5m, preset: total-outage}]\n"))
    assert (w.start_ms, w.end_ms) == (300_000, 1_200_000)


def test_receiver_kill_and_quirk_windows() -> None:
    s = scenario(
        """timeline:
  - {at: 5m, webhook_quirks: {duplicate: {probability: 0.5}}}
  - {at: 10m, receiver: stop}
  - {at: 12m, kill_integration: {restart_after: 3m}}
  - {at: 20m, receiver: start}
  - {at: 25m, webhook_quirks: {}}
"""
    )
    kinds = [(w.kind, w.start_ms // 60_000, w.end_ms // 60_000) for w in windows(s)]
    assert kinds == [("quirks", 5, 25), ("receiver", 10, 20), ("crash", 12, 15)]


def test_phase_of_a_request() -> None:
    spans = windows(scenario("timeline: [{at: 10m, preset: {name: total-outage, duration: 5m}}]\n"))
    assert phase_of(0, spans) == "before"
    assert phase_of(600_000, spans) == "during"
    assert phase_of(899_999, spans) == "during"
    assert phase_of(900_000, spans) == "after"
    assert phase_of(5, []) == "before"


def test_the_clock_starts_on_the_next_monday_at_nine() -> None:
    from datetime import UTC, datetime  # noqa: PLC0415

    t0 = next_monday_9(datetime(2026, 12, 6, 0, 32, tzinfo=UTC))  # a Sunday
    assert t0 == datetime(2026, 12, 7, 9, tzinfo=UTC)
    assert next_monday_9(datetime(2026, 12, 7, 10, tzinfo=UTC)) == datetime(
        2026, 12, 14, 9, tzinfo=UTC
    )


# --- SLOs --------------------------------------------------------------------------------------
def slo(metric: str, threshold: str) -> Slo:
    return Slo(metric=metric, threshold=threshold)


def test_a_latency_slo_filters_by_tags_and_judges_p99() -> None:
    points = {
        "erp_latency_ms": [
            Point(float(v), {"route": "place", "phase": "during"}) for v in range(1, 101)
        ]
        + [Point(20_000.0, {"route": "ship", "phase": "during"})] * 3
    }
    ok = judge(slo("erp_latency_ms{route:place,phase:during}", "p(99) < 1000"), points, [])
    assert ok.status == "passed"
    assert "over 100 samples" in ok.observed
    bad = judge(slo("erp_latency_ms{phase:during}", "p(99) < 1000"), points, [])
    assert bad.status == "failed"


def test_a_rate_slo_and_an_slo_without_samples() -> None:
    points = {"erp_errors": [Point(1.0), Point(0.0), Point(0.0), Point(0.0)]}
    assert judge(slo("erp_errors", "rate < 0.01"), points, []).status == "failed"
    assert judge(slo("erp_errors", "rate <= 0.25"), points, []).status == "passed"
    skipped = judge(slo("erp_errors{phase:during}", "rate < 0.01"), points, [])
    assert skipped.status == "skipped"


def test_wall_clock_slos_are_marked_timed_and_the_others_not() -> None:
    timed = ["erp_latency_ms{route:place}", "erp_no_answer{phase:during}",
             "held_work_completion_s", "event_to_state_ms",
             "prom:sandbank_integration_request_seconds{route:ship}",
             "prom:sandbank_integration_requests_total{outcome:held}"]  # fmt: skip
    for metric in timed:
        assert judge(slo(metric, "max < 1"), {}, []).timed, metric
    untimed = ["erp_errors", "erp_errors{route:ship}", "erp_unavailable",
               "prom:sandbank_integration_holds_open"]  # fmt: skip
    for metric in untimed:
        assert not judge(slo(metric, "max < 1"), {}, []).timed, metric


def _call(cid: str, status: int | None, route: str = "ship") -> Call:
    return Call(cid, route, "SO-1", 0, 0.0, 12.0, status, "")


def test_request_samples_count_the_erps_own_answers_and_apart_what_it_never_saw() -> None:
    calls = [
        _call("reh-1", 200),
        _call("reh-2", 502),  # the ERP refused: an error
        _call("reh-3", 503),  # the ERP's "try again later"
        _call("reh-4", None),  # the answer lost on the way back: the ERP's log says 500
        _call("reh-5", None),  # lost on the way back, but the ERP answered 202
        _call("reh-6", None),  # the ERP never saw it (connect failed, keep-alive race)
        _call("reh-7", 200, route="place"),
    ]
    log = [
        {"event": "request", "correlation_id": "reh-1", "status": 200, "latency_ms": 40.0},
        {"event": "request", "correlation_id": "reh-2", "status": 502, "latency_ms": 5.0},
        {"event": "request", "correlation_id": "reh-3", "status": 503, "latency_ms": 800.0},
        {"event": "request", "correlation_id": "reh-4", "status": 0, "latency_ms": 3.0},
        {"event": "request", "correlation_id": "reh-5", "status": 202, "latency_ms": 9.0},
        {"event": "provider_call", "correlation_id": "reh-6", "status": 500},
    ]
    points = request_points(calls, log, [])

    def flagged(metric: str) -> list[str]:
        return [c.correlation_id for c, p in zip(calls, points[metric], strict=True) if p.value]

    assert flagged("erp_errors") == ["reh-2", "reh-4"]
    assert flagged("erp_unavailable") == ["reh-3"]
    assert flagged("erp_no_answer") == ["reh-6"]
    latencies = [(p.value, p.tags["status"]) for p in points["erp_latency_ms"]]
    assert latencies == [(40.0, "200"), (5.0, "502"), (800.0, "503"), (12.0, "200")]
    assert points["erp_errors"][-1].tags == {"route": "place", "phase": "before"}


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5], 99) == 5
    assert percentile(list(range(101)), 99) == 99


PROM = """# HELP x
sandbank_integration_held_seconds_bucket{kind="capture",le="1.0"} 2.0
sandbank_integration_held_seconds_bucket{kind="capture",le="5.0"} 8.0
sandbank_integration_held_seconds_bucket{kind="capture",le="+Inf"} 10.0
sandbank_integration_held_seconds_count{kind="capture"} 10.0
sandbank_integration_held_seconds_sum{kind="capture"} 30.0
sandbank_integration_holds_open{kind="capture_pending"} 3.0
sandbank_integration_holds_open{kind="refund_pending"} 1.0
"""


def test_prometheus_histograms_answer_quantiles_from_their_buckets() -> None:
    samples = parse_prometheus(PROM)
    hist = histogram(samples, "sandbank_integration_held_seconds", {})
    assert hist is not None
    assert hist.count == 10
    assert hist.quantile(0.5) == pytest.approx(1 + 4 * (5 - 2) / 6)
    assert hist.quantile(0.99) == 5.0  # in the +Inf bucket: its lower bound
    got = judge(slo("prom:sandbank_integration_held_seconds", "p(50) < 2"), {}, samples)
    assert got.status == "failed"
    assert judge(slo("prom:sandbank_integration_holds_open", "value == 4"), {}, samples).passed
    one = judge(
        slo("prom:sandbank_integration_holds_open{kind:refund_pending}", "value == 1"), {}, samples
    )
    assert one.passed


def test_held_work_completion_counts_holds_open_at_recovery() -> None:
    def hold(created: str, resolved: str | None) -> dict[str, Any]:
        return {"kind": "capture_pending", "created_at": created, "resolved_at": resolved}

    recovered = 1_000_000.0
    from datetime import UTC, datetime  # noqa: PLC0415

    def iso(ts: float) -> str:
        return datetime.fromtimestamp(ts, UTC).isoformat()

    obs = Observation(
        erp={
            "A": {"holds": [hold(iso(recovered - 50), iso(recovered + 12))]},
            "B": {"holds": [hold(iso(recovered - 50), iso(recovered - 1))]},  # done before
            "C": {"holds": [hold(iso(recovered + 5), iso(recovered + 6))]},  # opened after
            "D": {"holds": [hold(iso(recovered - 5), None)]},  # never done
        }
    )
    got = sorted(v for _, v in held_completions(obs, recovered))
    assert got == [pytest.approx(12.0), float("inf")]


# --- tolerances ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "tolerance", "met"),
    [
        (200, 200, True),
        (503, 200, False),
        (3, [0, 5], True),
        (6, [0, 5], False),
        ("ok", ["ok", "degraded", "fine"], True),
        ("down", ["ok", "degraded", "fine"], False),
        (None, [0, 5], False),
    ],
)
def test_ctk_tolerances(value: Any, tolerance: Any, met: bool) -> None:
    assert tolerance_met(value, tolerance) is met


# --- workload ----------------------------------------------------------------------------------
def test_the_same_seed_gives_the_same_plan_and_another_seed_another() -> None:
    a = [(o.merchant_order_id, o.story, o.amount, o.buyer, [s.journal() for s in o.steps])
         for o in plan(scenario())]  # fmt: skip
    b = [(o.merchant_order_id, o.story, o.amount, o.buyer, [s.journal() for s in o.steps])
         for o in plan(scenario())]  # fmt: skip
    c = plan(scenario().model_copy(update={"seed": 43}))
    assert a == b
    assert [o.amount for o in c] != [o[2] for o in a]


def test_a_plan_follows_the_rate_and_its_steps_add_up() -> None:
    orders = plan(scenario())
    assert len(orders) == 120  # 2 a minute for an hour
    for order in orders:
        shipped = sum(s.args["amount"] for s in order.steps if s.kind == "ship")
        assert shipped in (0, order.amount), order
        refunded = sum(s.args["amount"] for s in order.steps if s.kind == "refund")
        assert refunded < shipped or refunded == 0
        assert [s.at_ms for s in order.steps] == sorted(s.at_ms for s in order.steps)
        assert order.steps[0].kind == "place"
        assert order.amount % 100 == 0
        assert 50_000 <= order.amount <= 400_000


def test_buyers_read_like_businesses() -> None:
    pool = buyers(7, 5)
    assert pool == buyers(7, 5)
    for b in pool:
        assert b.email.startswith("ap+approve@")
        assert b.email.endswith(b.domain)
        assert len(b.tax_id.replace("-", "")) == 9
        assert b.annual_revenue > 0
        assert 1 <= b.years_in_business <= 60
        assert b.legal_name
        assert b.address


def test_the_journal_digest_ignores_the_order_steps_went_out_in() -> None:
    from rehearsal.runner import journal_digest  # noqa: PLC0415

    a = {"shop": {"at_ms": 1, "kind": "place", "order": "SO-1", "args": {}}}
    b = {"timeline": {"at_ms": 0, "action": "preset", "args": {"name": "total-outage"}}}
    assert journal_digest([a, b]) == journal_digest([b, a])
    assert journal_digest([a, b]) != journal_digest([a])


def test_deferred_steps_go_on_after_the_end_while_the_shop_makes_progress() -> None:
    """Measured from the method's end (wall time 100), not from the run's start: a slow run
    still gets its time, a stalled one ends, and nothing runs on for ever."""
    assert not stalled(100.0, 90.0, now=100.0 + STALL_S - 1)
    assert stalled(100.0, 90.0, now=100.0 + STALL_S + 1)
    assert not stalled(100.0, 150.0, now=150.0 + STALL_S - 1)  # a step taken at 150
    assert stalled(100.0, 100.0 + FINISH_CAP_S, now=100.0 + FINISH_CAP_S + 1)
