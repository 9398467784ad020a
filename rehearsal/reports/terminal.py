"""The summary printed when a rehearsal ends: the verdict, the run's figures, one line per
check with ✓/✗ and expected vs observed, and, when anything went wrong, what to look at first,
the seed and the exact command that replays the run.

Every string that comes from the run (check names, observations, errors) goes in as a rich
`Text`, never as markup, so a `[bold]` in a check name prints as itself."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rehearsal.reports._format import (
    MARKS,
    VERDICTS,
    check_label,
    check_title,
    clock,
    failed_checks,
)
from rehearsal.reports._format import seconds as fmt_seconds
from rehearsal.reports._format import tally as count_checks
from rehearsal.result import RunResult

STATUS_STYLE = {
    "passed": "bold green",
    "deviated": "bold red",
    "precondition_failed": "bold red",
    "errored": "bold magenta",
    "invalid": "bold magenta",
}
CHECK_STYLE = {"passed": "green", "failed": "red", "errored": "magenta", "skipped": "dim"}


def render_terminal(result: RunResult, console: Console) -> None:
    """Print the run's summary on `console`."""
    info = result.scenario
    status = Text(result.status.upper(), style=STATUS_STYLE[result.status])
    status.append(f"  {VERDICTS[result.status]}", style="default")
    counts = count_checks(result)
    summary = Table(title=Text(f"{info.title} ({info.name})"), show_header=False, box=None)
    summary.add_column(style="bold")
    summary.add_column()
    rows: list[tuple[str, Text]] = [
        ("status", status),
        ("failure mode", Text(info.failure_mode)),
        ("seed", Text(str(result.seed))),
        ("duration", Text(f"{fmt_seconds(result.duration_s)} wall")),
        (
            "simulated",
            Text(f"{fmt_seconds(result.simulated_s)} of account clock (speed x{result.speed:g})"),
        ),
        ("checks", Text(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "none")),
        ("runbook", Text(info.runbook)),
    ]
    for key, value in rows:
        summary.add_row(key, value)
    console.print(summary)

    checks = result.all_checks()
    if checks:
        table = Table(title="Checks", title_justify="left", expand=False)
        table.add_column("", no_wrap=True)
        table.add_column("check")
        table.add_column("expected")
        table.add_column("observed")
        for check in checks:
            style = CHECK_STYLE[check.status]
            table.add_row(
                Text(MARKS[check.status], style=style),
                Text(check_title(check), style=style),
                Text(check.expected),
                Text(check.observed),
            )
        console.print(table)

    if result.fault_windows:
        console.print(Text("Fault windows", style="bold"))
        for window in result.fault_windows:
            end = "end of run" if window.end_ms is None else clock(window.end_ms)
            console.print(Text(f"  {clock(window.start_ms)} → {end}  {window.label}"))

    if result.status == "passed":
        return
    for check in failed_checks(result):
        line = Text(f"{MARKS[check.status]} {check_label(check)}", style=CHECK_STYLE[check.status])
        if check.observed:
            line.append(f" — observed {check.observed}", style="default")
        console.print(line, soft_wrap=True)
        if check.detail:
            console.print(Text(f"    {check.detail}"), soft_wrap=True)
        if check.runbook:
            console.print(Text(f"    runbook: {check.runbook}"), soft_wrap=True)
    if result.error:
        console.print(Text(f"error: {result.error}", style="magenta"), soft_wrap=True)
    console.print(Text(f"seed: {result.seed}", style="bold"), soft_wrap=True)
    if result.replay_command:
        console.print(Text("replay: ", style="bold") + Text(result.replay_command), soft_wrap=True)
