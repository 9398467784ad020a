"""The views of one `RunResult`: the terminal summary, `report.json`, `report.html` and JUnit
XML. Each renders the same object and computes no verdict of its own, so they cannot disagree
with one another or with the exit code."""

from __future__ import annotations

from pathlib import Path

from rehearsal.reports.html import render_html, write_html
from rehearsal.reports.junit import write_junit
from rehearsal.reports.terminal import render_terminal
from rehearsal.result import RunResult

JSON_NAME = "report.json"
HTML_NAME = "report.html"


def write_all(result: RunResult, report_dir: Path, junit: Path | None = None) -> list[Path]:
    """Write `report.json` and `report.html` into `report_dir` (made if missing) and, when
    asked, the JUnit file; returns the paths written."""
    report_dir.mkdir(parents=True, exist_ok=True)
    as_json = report_dir / JSON_NAME
    as_json.write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")
    as_html = report_dir / HTML_NAME
    write_html(result, as_html)
    written = [as_json, as_html]
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        write_junit([result], junit)
        written.append(junit)
    return written


__all__ = [
    "HTML_NAME",
    "JSON_NAME",
    "render_html",
    "render_terminal",
    "write_all",
    "write_html",
    "write_junit",
]
