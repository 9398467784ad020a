"""The views of a RunResult: the terminal summary, report.html, JUnit XML, write_all, and the
runbook pages the reports link to."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console

from rehearsal.reports import render_html, render_terminal, write_all, write_html, write_junit
from rehearsal.result import (
    EXIT_CODES,
    CheckResult,
    FaultWindow,
    RunResult,
    Sample,
    ScenarioInfo,
    Status,
    TimelineEntry,
)

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / "docs" / "runbooks"
FAILURE_MODES = (
    "baseline",
    "provider-outage",
    "5xx-storm",
    "rate-limited",
    "lost-response",
    "timeout-storm",
    "webhook-backlog",
    "duplicate-reordered-webhooks",
    "secret-rotation",
    "settlement-drift",
    "dispute-wave",
    "authorization-lapse",
    "integration-crash",
)
SECTIONS = ("## Symptoms", "## Check", "## Act", "## Confirm recovery", "## Rehearse")
EVIL = '<script>alert("x")</script>&<img src="http://evil.example/x.png">'
P99, SLOW = "p(99) < 1000 ms", "p(99) = 20112 ms"
REPLAY = "sandbank scenario run provider-outage --seed 7 --speed 120"


def check(kind: str, name: str, phase: str, status: str = "passed", **more: str) -> CheckResult:
    return CheckResult.model_validate(
        {"kind": kind, "name": name, "phase": phase, "status": status, **more}
    )


def a_result(status: Status = "passed", **changes: object) -> RunResult:
    """A provider-outage run: 30 one-minute samples, an outage from T+10:00 to T+20:00."""
    samples = [
        Sample(
            at_ms=m * 60_000,
            requests_ok=0 if 10 <= m < 20 else 12,
            requests_held=9 if 10 <= m < 20 else 0,
            requests_error=1 if m == 10 else 0,
            holds_open=min(m - 9, 8) if 10 <= m < 22 else 0,
            webhook_backlog=5 if 10 <= m < 21 else 0,
            p50_ms=None if m == 15 else 40.0 + m,
            p95_ms=None if m == 15 else 90.0 + m,
            p99_ms=None if m == 15 else 150.5 + m,
        )
        for m in range(30)
    ]
    base = RunResult(
        scenario=ScenarioInfo(
            name="provider-outage",
            title="Total provider outage during checkout",
            failure_mode="provider outage",
            runbook="docs/runbooks/provider-outage.md",
            file="scenarios/provider-outage.yaml",
            definition={"seed": 7},
        ),
        seed=7,
        speed=120.0,
        status=status,
        exit_code=EXIT_CODES[status],
        started_at="2026-03-02T09:00:00Z",
        duration_s=15.2,
        simulated_s=1800.0,
        versions={"sandbank": "0.1.0", "python": "3.11.9"},
        steady_state=[
            check("probe", "provider_healthy", phase, expected="200", observed="200")
            for phase in ("before", "after")
        ],
        invariants=[
            check("invariant", "no_order_lost", "end", expected="0 orders", observed="0 orders")
        ],
        slos=[check("slo", "erp_place_p99", "during", expected=P99, observed="p(99) = 412 ms")],
        figures={"orders_placed": 300, "holds_resolved": 80, "approval_ratio": 0.8125},
        timeline=[
            TimelineEntry(
                at_ms=600_000, wall_ms=5000, action="preset", args={"name": "total-outage"}
            ),
            TimelineEntry(at_ms=1_200_000, wall_ms=10_000, action="clear_faults"),
        ],
        samples=samples,
        fault_windows=[FaultWindow(start_ms=600_000, end_ms=1_200_000, label="preset outage")],
        actions_sha256="ab" * 32,
        replay_command=REPLAY,
    )
    return base.model_copy(update=changes)


def a_deviated_result() -> RunResult:
    base = a_result("deviated")
    return base.model_copy(
        update={
            "invariants": [
                *base.invariants,
                check(
                    "invariant",
                    "no_double_capture",
                    "end",
                    "failed",
                    expected="provider amounts = ERP amounts",
                    observed="2 orders differ: ord_1, ord_2",
                    detail="captures retried under fresh keys",
                    runbook="docs/runbooks/lost-response.md#check",
                ),
                check("invariant", "ledger_balanced", "end", "skipped", detail="ledger unreadable"),
            ],
            "slos": [
                check("slo", "erp_place_p99", "during", "failed", expected=P99, observed=SLOW)
            ],
        }
    )


def an_errored_result() -> RunResult:
    return a_result(
        "errored",
        error="the integration service did not start within 10 s",
        steady_state=[],
        invariants=[],
        slos=[],
        samples=[],
        fault_windows=[],
        timeline=[],
    )


# --- terminal ---------------------------------------------------------------------------------
def terminal_text(result: RunResult) -> str:
    console = Console(record=True, width=120, color_system=None)
    render_terminal(result, console)
    return console.export_text()


def test_a_passed_run_shows_each_check_with_a_tick_and_no_replay_line() -> None:
    text = terminal_text(a_result())
    assert "PASSED" in text
    assert "✓" in text
    assert "✗" not in text
    assert "slo - erp_place_p99" in text
    assert "p(99) = 412 ms" in text
    assert "probe - provider_healthy (before)" in text
    assert "replay:" not in text


def test_a_deviated_run_shows_the_failed_checks_the_seed_and_the_replay_command() -> None:
    text = terminal_text(a_deviated_result())
    assert "DEVIATED" in text
    failed = [line for line in text.splitlines() if line.startswith("✗")]
    assert any("invariant - no_double_capture" in line for line in failed)
    assert any("slo - erp_place_p99: p(99) < 1000 ms" in line for line in failed)
    assert "seed: 7" in text
    assert f"replay: {REPLAY}" in text
    assert "docs/runbooks/lost-response.md#check" in text


def test_an_errored_run_prints_its_error_and_the_replay_command() -> None:
    text = terminal_text(an_errored_result())
    assert "ERRORED" in text
    assert "error: the integration service did not start within 10 s" in text
    assert f"replay: {REPLAY}" in text


def test_markup_in_a_check_name_is_printed_as_itself() -> None:
    result = a_deviated_result()
    result.invariants[1].name = "[bold red]not markup[/]"
    assert "[bold red]not markup[/]" in terminal_text(result)


# --- HTML -------------------------------------------------------------------------------------
LINKS = re.compile(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)


def test_the_html_report_is_self_contained() -> None:
    page = render_html(a_deviated_result())
    assert "<script" not in page.lower()
    assert "@import" not in page
    assert "url(" not in page
    for target in LINKS.findall(page):
        assert not re.match(r"(?i)^(https?:)?//", target), target


def test_the_html_report_shades_each_fault_window_on_every_chart() -> None:
    page = render_html(a_result())
    assert page.count('class="fault-window"') == 4  # four charts, one window
    assert "preset outage: T+10:00 → T+20:00" in page
    for title in ("Request outcomes", "Holds open", "Webhook backlog", "ERP latency"):
        assert title in page
    assert "<polyline" in page  # latency and gauges drawn as lines (with a gap for None)


def test_the_html_report_lists_every_check_and_the_game_day_record() -> None:
    result = a_deviated_result()
    page = render_html(result)
    for check in result.all_checks():
        assert check.name in page
    assert "p(99) = 20112 ms" in page
    for heading in (
        "Summary",
        "Hypothesis vs observed",
        "Timeline",
        "Blast radius and impact",
        "Action items",
        "What went well",
        "What went wrong",
        "Where we got lucky",
    ):
        assert f">{heading}<" in page
    assert "degradation seen" in page
    assert "recovered" in page
    assert REPLAY in page
    assert 'href="docs/runbooks/provider-outage.md"' in page


def test_the_html_report_escapes_what_the_run_reports() -> None:
    result = a_deviated_result()
    result.invariants[0].name = EVIL
    result.figures[EVIL] = EVIL
    page = render_html(result)
    assert "<script>" not in page
    assert 'src="http://evil' not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page


def test_a_runbook_on_another_host_is_shown_not_linked() -> None:
    result = a_result()
    result.scenario.runbook = "https://evil.example/runbook"
    page = render_html(result)
    assert "https://evil.example/runbook" in page
    assert 'href="https://evil.example' not in page


def test_the_same_result_renders_the_same_page(tmp_path: Path) -> None:
    one, two = tmp_path / "one.html", tmp_path / "two.html"
    write_html(a_deviated_result(), one, repo_root=tmp_path)
    write_html(a_deviated_result(), two, repo_root=tmp_path)
    assert one.read_bytes() == two.read_bytes()


def test_runbook_links_are_made_relative_to_the_report(tmp_path: Path) -> None:
    out = tmp_path / "reports" / "provider-outage"
    out.mkdir(parents=True)
    write_html(a_result(), out / "report.html", repo_root=tmp_path)
    assert 'href="../../docs/runbooks/provider-outage.md"' in (out / "report.html").read_text()


def test_an_errored_run_without_samples_still_renders() -> None:
    page = render_html(an_errored_result())
    assert "ERRORED" in page
    assert "did not start within 10 s" in page
    assert "No samples were recorded." in page


# --- JUnit ------------------------------------------------------------------------------------
def parse_junit(results: list[RunResult], tmp_path: Path) -> ET.Element:
    path = tmp_path / "junit.xml"
    write_junit(results, path)
    return ET.parse(path).getroot()  # noqa: S314 - our own file, written just above


def test_junit_has_a_suite_per_run_with_failures_errors_and_skips_counted(
    tmp_path: Path,
) -> None:
    root = parse_junit([a_result(), a_deviated_result(), an_errored_result()], tmp_path)
    suites = root.findall("testsuite")
    assert len(suites) == 3
    counts = [
        {k: int(s.get(k, "-1")) for k in ("tests", "failures", "errors", "skipped")} for s in suites
    ]
    assert counts[0] == {"tests": 4, "failures": 0, "errors": 0, "skipped": 0}
    assert counts[1] == {"tests": 6, "failures": 2, "errors": 0, "skipped": 1}
    assert counts[2] == {"tests": 1, "failures": 0, "errors": 1, "skipped": 0}
    assert root.get("tests") == "11"
    assert root.get("failures") == "2"
    assert root.get("errors") == "1"
    assert root.get("skipped") == "1"
    for suite, c in zip(suites, counts, strict=True):
        cases = suite.findall("testcase")
        assert len(cases) == c["tests"]
        assert sum(len(case.findall("failure")) for case in cases) == c["failures"]
        assert sum(len(case.findall("error")) for case in cases) == c["errors"]
        assert sum(len(case.findall("skipped")) for case in cases) == c["skipped"]


def test_junit_cases_are_named_like_k6_thresholds_and_failures_carry_the_replay(
    tmp_path: Path,
) -> None:
    suite = parse_junit([a_deviated_result()], tmp_path).find("testsuite")
    assert suite is not None
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["seed"] == "7"
    assert props["replay_command"] == REPLAY
    names = {case.get("name") for case in suite.iter("testcase")}
    assert "slo - erp_place_p99: p(99) < 1000 ms" in names
    assert "probe - provider_healthy (before): 200" in names
    slo = next(c for c in suite.iter("testcase") if c.get("name", "").startswith("slo"))
    failure = slo.find("failure")
    assert failure is not None
    assert failure.get("message") == "expected p(99) < 1000 ms, observed p(99) = 20112 ms"
    assert REPLAY in (failure.text or "")


def test_junit_survives_characters_xml_cannot_carry(tmp_path: Path) -> None:
    result = a_deviated_result()
    result.invariants[1].observed = "bad\x00byte\x1b" + EVIL
    suite = parse_junit([result], tmp_path).find("testsuite")
    assert suite is not None
    messages = [f.get("message", "") for f in suite.iter("failure")]
    assert any(EVIL in m and "\ufffd" in m for m in messages)


# --- write_all --------------------------------------------------------------------------------
def test_write_all_writes_json_html_and_junit(tmp_path: Path) -> None:
    result = a_deviated_result()
    written = write_all(result, tmp_path / "out", tmp_path / "ci" / "junit.xml")
    assert [p.name for p in written] == ["report.json", "report.html", "junit.xml"]
    again = RunResult.model_validate(json.loads((tmp_path / "out" / "report.json").read_text()))
    assert again == result
    assert write_all(result, tmp_path / "plain", None)[-1].name == "report.html"


# --- runbooks ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", FAILURE_MODES)
def test_each_failure_mode_has_a_runbook_with_the_five_sections(mode: str) -> None:
    text = (RUNBOOKS / f"{mode}.md").read_text(encoding="utf-8")
    headings = [line.strip() for line in text.splitlines() if line.startswith("## ")]
    assert headings[: len(SECTIONS)] == list(SECTIONS)
    assert f"sandbank scenario run {mode}" in text


def test_the_runbook_index_links_every_page_and_no_other() -> None:
    pages = {p.stem for p in RUNBOOKS.glob("*.md")} - {"index"}
    assert pages == set(FAILURE_MODES)
    index = (RUNBOOKS / "index.md").read_text(encoding="utf-8")
    assert set(re.findall(r"\]\(([\w-]+)\.md\)", index)) == set(FAILURE_MODES)
