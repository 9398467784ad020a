"""JUnit XML for CI: one `<testsuite>` per scenario run, one `<testcase>` per SLO, invariant
and probe-phase, named as k6 names its thresholds (`slo - erp_place_p99: p(99) < 1000 ms`).

The mapping follows the JUnit schema's meaning of each element (rehearsals.md, design note 5):
a check that failed is a `<failure>` (the integration deviated: the test ran and found a
weakness); a check that could not be judged, or a run the runner itself could not finish
(status errored or invalid), is an `<error>`; a check that never ran is `<skipped>`. Each suite
carries the seed and the exact replay command in `<properties>`, so a red build says how to
reproduce it without opening the HTML report.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # writing only: nothing untrusted is parsed here
from collections.abc import Sequence
from pathlib import Path

from rehearsal.reports._format import check_label
from rehearsal.reports._format import tally as count_checks
from rehearsal.result import CheckResult, RunResult

RUNNER_FAULT = ("errored", "invalid")
# Characters XML 1.0 cannot carry at all (ElementTree would write them and break the file).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def write_junit(results: list[RunResult], path: Path) -> None:
    """Write one `<testsuites>` document holding a suite per result."""
    root = junit_tree(results)
    _xml_safe(root)
    ET.indent(root)
    path.write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n")


def junit_tree(results: Sequence[RunResult]) -> ET.Element:
    root = ET.Element("testsuites", name="sandbank rehearsals")
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    elapsed = 0.0
    for result in results:
        suite = _suite(result)
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
        elapsed += result.duration_s
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{elapsed:.3f}")
    return root


def _suite(result: RunResult) -> ET.Element:
    info = result.scenario
    suite = ET.Element("testsuite", name=info.name, timestamp=result.started_at)
    properties = ET.SubElement(suite, "properties")
    props = {
        "seed": str(result.seed),
        "replay_command": result.replay_command,
        "status": result.status,
        "exit_code": str(result.exit_code),
        "speed": f"{result.speed:g}",
        "simulated_s": f"{result.simulated_s:.3f}",
        "failure_mode": info.failure_mode,
        "runbook": info.runbook,
        "scenario_file": info.file,
        "actions_sha256": result.actions_sha256,
        **{f"version.{k}": v for k, v in sorted(result.versions.items())},
    }
    for name, value in props.items():
        ET.SubElement(properties, "property", name=name, value=value)

    classname = f"rehearsal.{info.name}"
    if result.status in RUNNER_FAULT:
        case = ET.SubElement(
            suite, "testcase", name=f"run - {info.name}", classname=classname, time="0"
        )
        error = ET.SubElement(
            case, "error", message=result.error or result.status, type=result.status
        )
        error.text = _replay_text(result)
    for check in result.all_checks():
        suite.append(_case(check, classname, result))

    counts = count_checks(result)
    runner_fault = 1 if result.status in RUNNER_FAULT else 0
    suite.set("tests", str(len(result.all_checks()) + runner_fault))
    suite.set("failures", str(counts["failed"]))
    suite.set("errors", str(counts["errored"] + runner_fault))
    suite.set("skipped", str(counts["skipped"]))
    suite.set("time", f"{result.duration_s:.3f}")
    return suite


def _case(check: CheckResult, classname: str, result: RunResult) -> ET.Element:
    case = ET.Element(
        "testcase", name=check_label(check), classname=f"{classname}.{check.kind}", time="0"
    )
    message = f"expected {check.expected or '—'}, observed {check.observed or '—'}"
    if check.status == "failed":
        failure = ET.SubElement(case, "failure", message=message, type="deviation")
        failure.text = _explanation(check, result)
    elif check.status == "errored":
        error = ET.SubElement(case, "error", message=message, type="check_errored")
        error.text = _explanation(check, result)
    elif check.status == "skipped":
        ET.SubElement(case, "skipped", message=check.detail or "not run")
    return case


def _explanation(check: CheckResult, result: RunResult) -> str:
    lines = [check.detail] if check.detail else []
    if check.runbook:
        lines.append(f"runbook: {check.runbook}")
    lines.append(_replay_text(result))
    return "\n".join(lines)


def _replay_text(result: RunResult) -> str:
    return f"seed: {result.seed}\nreplay: {result.replay_command or '(no replay command)'}"


def _xml_safe(root: ET.Element) -> None:
    """Replace what XML cannot carry (NUL, other C0 controls, lone surrogates) with U+FFFD in
    every attribute and text, so an odd byte in an observation never breaks the CI's parser."""
    for element in root.iter():
        for key, value in element.attrib.items():
            element.set(key, _NOT_XML.sub("\ufffd", value))
        if element.text:
            element.text = _NOT_XML.sub("\ufffd", element.text)
