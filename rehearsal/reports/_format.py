"""What the three views say the same way: check marks, verdict words, times on the scenario's
axis, and the k6-style name of a check. One place, so the terminal, the HTML page and the JUnit
file never describe one run in three dialects."""

from __future__ import annotations

from rehearsal.result import CheckResult, RunResult

MARKS: dict[str, str] = {"passed": "✓", "failed": "✗", "errored": "!", "skipped": "-"}

VERDICTS: dict[str, str] = {
    "passed": "every check held",
    "deviated": "the integration showed a weakness: an invariant or SLO failed",
    "precondition_failed": "the steady state did not hold before the faults",
    "errored": "the runner failed; the verdict is unknown",
    "invalid": "the scenario or the environment was invalid",
}


def clock(ms: int | float) -> str:
    """A point on the virtual axis: `T+05:00`, `T+1:05:00` (ms since T0 of the account clock)."""
    total = int(ms) // 1000
    sign = "-" if total < 0 else "+"
    hours, rest = divmod(abs(total), 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"T{sign}{hours}:{minutes:02d}:{seconds:02d}"
    return f"T{sign}{minutes:02d}:{seconds:02d}"


def seconds(value: float) -> str:
    """A span for humans: `0.42 s`, `12.3 s`, `4 min 05 s`, `2 h 03 min`."""
    if value < 10:
        return f"{value:.2f} s"
    if value < 60:
        return f"{value:.1f} s"
    whole = round(value)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def check_title(check: CheckResult) -> str:
    """`slo - erp_place_p99`, `probe - provider_healthy (before)`: a probe is one check per
    phase."""
    name = check.name if check.kind != "probe" else f"{check.name} ({check.phase})"
    return f"{check.kind} - {name}"


def check_label(check: CheckResult) -> str:
    """The name a check goes by in JUnit and failure lines, as k6 names thresholds
    (`metric - expression`): `slo - erp_place_p99: p(99) < 1000 ms`,
    `probe - provider_healthy (before): 200`, `invariant - no_order_lost: 0 orders missing`."""
    return check_title(check) + (f": {check.expected}" if check.expected else "")


def failed_checks(result: RunResult) -> list[CheckResult]:
    return [c for c in result.all_checks() if not c.passed]


def tally(result: RunResult) -> dict[str, int]:
    """How many checks ended in each status (all four keys, zero included)."""
    counts = dict.fromkeys(MARKS, 0)
    for check in result.all_checks():
        counts[check.status] += 1
    return counts
