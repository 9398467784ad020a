"""`report.html`: one self-contained page an SRE opens after a rehearsal, shaped like a game-day
record (rehearsals.md §5: summary, hypothesis vs observed, timeline, impact, action items,
went well / wrong / lucky) with charts over the scenario's virtual time axis.

Why it is built this way:
- One file, nothing fetched: the CSS is inline and the charts are SVG written here, so the page
  opens from a CI artifact, an e-mail or an air-gapped laptop exactly as it was rendered.
- Deterministic: the same `RunResult` (and the same place to write it) gives the same bytes —
  dicts are walked in sorted order, numbers are formatted at a fixed precision, no clock is read.
- Every string from the run goes through `html.escape`; links are kept only when relative (a
  runbook in the checkout), so a scenario cannot make the page reach out to another host.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from urllib.parse import urlsplit

from rehearsal.reports._format import MARKS, VERDICTS, check_title, clock, tally
from rehearsal.reports._format import seconds as fmt_seconds
from rehearsal.result import CheckResult, FaultWindow, RunResult, Sample

Linker = Callable[[str], str | None]


def write_html(result: RunResult, path: Path, *, repo_root: Path | None = None) -> None:
    """Write the page to `path`. Runbook links (`docs/runbooks/x.md#act`, relative to the
    repository) are rewritten relative to the page's folder so they open from it; `repo_root`
    defaults to the current directory when the runbook is found there, else links stay as
    given."""
    root = repo_root
    if root is None:
        candidate = Path.cwd()
        if (candidate / _path_of(result.scenario.runbook)).exists():
            root = candidate
    prefix = ""
    if root is not None:
        prefix = os.path.relpath(root.resolve(), path.parent.resolve()).replace(os.sep, "/")
        prefix = "" if prefix == "." else prefix + "/"
    path.write_text(render_html(result, link_prefix=prefix), encoding="utf-8")


def render_html(result: RunResult, *, link_prefix: str = "") -> str:
    """The page as a string; `link_prefix` is put before every relative runbook link."""

    def link(target: str) -> str | None:
        parts = urlsplit(target)
        if parts.scheme or parts.netloc or target.startswith(("/", "\\")):
            return None  # absolute or another host: shown as text, never followed
        return link_prefix + target

    axis = _Axis.of(result)
    body = "\n".join(
        [
            _header(result, link),
            _summary(result, link),
            _hypothesis(result),
            _timeline(result, axis),
            _charts(result, axis),
            _impact(result, axis),
            _checks_section("Invariants", result.invariants, link),
            _checks_section("SLOs", result.slos, link),
            _checks_section("Steady-state probes", result.steady_state, link),
            _record(result),
            _footer(result),
        ]
    )
    title = escape(f"{result.status.upper()} · {result.scenario.title} · seed {result.seed}")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"{body}\n</body>\n</html>\n"
    )


# --- sections -------------------------------------------------------------------------------
def _header(result: RunResult, link: Linker) -> str:
    info = result.scenario
    runbook = _anchor(info.runbook, link)
    facts = [
        ("Scenario", f"<code>{escape(info.name)}</code> ({escape(info.file)})"),
        ("Failure mode", escape(info.failure_mode)),
        ("Runbook", runbook),
        ("Seed", f"<code>{result.seed}</code>"),
        ("Wall time", escape(fmt_seconds(result.duration_s))),
        (
            "Simulated",
            escape(f"{fmt_seconds(result.simulated_s)} of account clock (x{result.speed:g})"),
        ),
        ("Started", escape(result.started_at)),
        ("Exit code", str(result.exit_code)),
    ]
    parts = [
        f'<header class="verdict {escape(result.status)}">',
        f'<p class="badge">{escape(result.status.replace("_", " ").upper())}</p>',
        f"<h1>{escape(info.title)}</h1>",
        f"<p>{escape(VERDICTS[result.status])}</p>",
        "</header>",
        _definition_list(facts),
    ]
    if result.error:
        parts.append(f'<p class="error"><strong>Error:</strong> {escape(result.error)}</p>')
    if result.status != "passed" and result.replay_command:
        parts.append(
            '<p class="replay"><strong>Replay:</strong> '
            f"<code>{escape(result.replay_command)}</code></p>"
        )
    return "\n".join(parts)


def _summary(result: RunResult, link: Linker) -> str:
    counts = tally(result)
    total = sum(counts.values())
    held = total - counts["failed"] - counts["errored"]
    text = (
        f"Rehearsal of “{result.scenario.failure_mode}” over "
        f"{fmt_seconds(result.simulated_s)} of the account clock "
        f"({fmt_seconds(result.duration_s)} of wall time), seed {result.seed}: "
        f"{held} of {total} checks held"
        + (f", {counts['skipped']} skipped" if counts["skipped"] else "")
        + f". Verdict: {result.status.replace('_', ' ')}."
    )
    parts = ["<section><h2>Summary</h2>", f"<p>{escape(text)}</p>"]
    failed = [c for c in result.all_checks() if not c.passed]
    if failed:
        parts.append("<h3>Look at first</h3><ul class='first'>")
        for check in failed:
            more = f" — {escape(check.detail)}" if check.detail else ""
            runbook = f" ({_anchor(check.runbook, link)})" if check.runbook else ""
            parts.append(
                f"<li>{_mark(check.status)} <strong>{escape(check_title(check))}</strong>: "
                f"expected {escape(check.expected or '—')}, observed "
                f"{escape(check.observed or '—')}{more}{runbook}</li>"
            )
        parts.append("</ul>")
    parts.append("</section>")
    return "\n".join(parts)


def _hypothesis(result: RunResult) -> str:
    """The steady-state hypothesis: each probe, what it should return, and what it returned
    in each phase it ran."""
    phases = [p for p in ("before", "during", "after", "end") if _has_phase(result, p)]
    by_name: dict[str, dict[str, CheckResult]] = {}
    expected: dict[str, str] = {}
    for check in result.steady_state:
        by_name.setdefault(check.name, {})[check.phase] = check
        expected.setdefault(check.name, check.expected)
    table_rows = []
    for name, by_phase in by_name.items():
        cells = []
        for phase in phases:
            probe = by_phase.get(phase)
            if probe is None:
                cells.append("<td class='muted'>—</td>")
            else:
                cells.append(
                    f"<td class='{probe.status}'>{_mark(probe.status)} "
                    f"{escape(probe.observed)}</td>"
                )
        table_rows.append(
            f"<tr><td>{escape(name)}</td><td>{escape(expected[name])}</td>{''.join(cells)}</tr>"
        )
    return _table_section(
        "Hypothesis vs observed",
        ["Probe", "Expected", *phases],
        table_rows,
        empty="No steady-state probe ran.",
    )


def _has_phase(result: RunResult, phase: str) -> bool:
    return any(c.phase == phase for c in result.steady_state)


@dataclass(frozen=True, slots=True)
class _Event:
    at_ms: int
    source: str  # "timeline", "fault window", "samples"
    what: str
    detail: str
    outcome: str = "ok"


def _timeline(result: RunResult, axis: _Axis) -> str:
    """What was done (the timeline as applied), when each fault was active, and when the
    integration was first seen degraded and then recovered (read from the samples)."""
    events: list[_Event] = []
    for entry in result.timeline:
        args = json.dumps(entry.args, sort_keys=True, separators=(", ", ": "), default=str)
        detail = " ".join(x for x in (args if entry.args else "", entry.detail) if x)
        events.append(_Event(entry.at_ms, "timeline", entry.action, detail, entry.outcome))
    for window in result.fault_windows:
        events.append(_Event(window.start_ms, "fault window", "fault starts", window.label))
        if window.end_ms is not None:
            events.append(_Event(window.end_ms, "fault window", "fault ends", window.label))
        else:
            events.append(
                _Event(axis.end_ms, "fault window", "fault cleared at end of run", window.label)
            )
    events.extend(_detections(result.samples, result.fault_windows))
    events.sort(key=lambda e: (e.at_ms, _SOURCE_ORDER[e.source]))
    rows = []
    for e in events:
        css = "failed" if e.outcome == "error" else e.source.replace(" ", "-")
        rows.append(
            f"<tr class='{css}'><td><code>{clock(e.at_ms)}</code></td><td>{escape(e.source)}"
            f"</td><td>{escape(e.what)}</td><td>{escape(e.detail)}</td>"
            f"<td>{escape(e.outcome)}</td></tr>"
        )
    return _table_section(
        "Timeline",
        ["At", "Source", "What", "Detail", "Outcome"],
        rows,
        empty="Nothing happened on the timeline.",
    )


_SOURCE_ORDER = {"timeline": 0, "fault window": 1, "samples": 2}


def _degraded(s: Sample) -> bool:
    return s.requests_held > 0 or s.requests_error > 0 or s.holds_open > 0


def _detections(samples: Sequence[Sample], windows: Sequence[FaultWindow]) -> list[_Event]:
    """Per fault window: the first sample at or after its start where the integration held or
    failed requests or had holds open, and the first sample at or after its end with nothing
    held, open or backlogged again."""
    found: list[_Event] = []
    for window in windows:
        seen = next((s for s in samples if s.at_ms >= window.start_ms and _degraded(s)), None)
        if seen is None:
            continue
        found.append(
            _Event(
                seen.at_ms,
                "samples",
                "degradation seen",
                f"{window.label}: {seen.requests_held} held, {seen.requests_error} errors, "
                f"{seen.holds_open} holds open",
            )
        )
        if window.end_ms is None:
            continue
        back = next(
            (
                s
                for s in samples
                if s.at_ms >= max(window.end_ms, seen.at_ms)
                and not _degraded(s)
                and s.webhook_backlog == 0
            ),
            None,
        )
        if back is not None:
            found.append(
                _Event(
                    back.at_ms,
                    "samples",
                    "recovered",
                    f"{window.label}: nothing held, no hold open, no webhook backlog "
                    f"({fmt_seconds((back.at_ms - window.end_ms) / 1000)} after the fault ended)",
                )
            )
    return found


def _impact(result: RunResult, axis: _Axis) -> str:
    samples = result.samples
    total = sum(s.requests_ok + s.requests_held + s.requests_error for s in samples)
    in_fault = [s for s in samples if axis.in_fault(s.at_ms)]
    faulted = sum(s.requests_ok + s.requests_held + s.requests_error for s in in_fault)
    held = sum(s.requests_held for s in samples)
    errors = sum(s.requests_error for s in samples)
    p99s = [s.p99_ms for s in samples if s.p99_ms is not None]
    facts = [
        ("ERP requests", str(total)),
        ("Answered during a fault window", f"{faulted} ({_share(faulted, total)})"),
        ("Held (202)", f"{held} ({_share(held, total)})"),
        ("Errors (4xx/5xx/transport)", f"{errors} ({_share(errors, total)})"),
        ("Peak holds open", str(max((s.holds_open for s in samples), default=0))),
        ("Peak webhook backlog", str(max((s.webhook_backlog for s in samples), default=0))),
        ("Worst interval p99", f"{max(p99s):.0f} ms" if p99s else "—"),
        ("Time under fault", fmt_seconds(axis.fault_ms / 1000)),
    ]
    parts = [
        "<section><h2>Blast radius and impact</h2>",
        _definition_list([(k, escape(v)) for k, v in facts]),
    ]
    if result.figures:
        parts.append("<h3>Figures</h3><table><tbody>")
        for key in sorted(result.figures):
            parts.append(
                f"<tr><th>{escape(key)}</th><td>{escape(_number(result.figures[key]))}</td></tr>"
            )
        parts.append("</tbody></table>")
    parts.append("</section>")
    return "\n".join(parts)


def _checks_section(title: str, checks: Sequence[CheckResult], link: Linker) -> str:
    rows = []
    for c in checks:
        runbook = f"<br>{_anchor(c.runbook, link)}" if c.runbook else ""
        rows.append(
            f"<tr class='{c.status}'><td>{_mark(c.status)}</td><td>{escape(c.name)}</td>"
            f"<td>{escape(c.phase)}</td><td>{escape(c.expected)}</td>"
            f"<td>{escape(c.observed)}</td><td>{escape(c.detail)}{runbook}</td></tr>"
        )
    return _table_section(
        title, ["", "Check", "Phase", "Expected", "Observed", "Detail"], rows, empty="None."
    )


def _table_section(title: str, headings: Sequence[str], rows: Sequence[str], *, empty: str) -> str:
    """A titled table; `rows` are HTML already (escaped by the caller). Without rows, `empty`."""
    if not rows:
        return f"<section><h2>{escape(title)}</h2><p class='muted'>{escape(empty)}</p></section>"
    head = "".join(f"<th>{escape(h)}</th>" for h in headings)
    return (
        f"<section><h2>{escape(title)}</h2><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _record(result: RunResult) -> str:
    """The part of the game-day record people fill in after the run: blank on purpose."""
    rows = [
        f"<tr><td>{escape(item)}</td><td></td><td></td><td></td></tr>"
        for item in result.action_items
    ]
    rows.extend("<tr><td>&nbsp;</td><td></td><td></td><td></td></tr>" for _ in range(3))
    lessons = "".join(
        f"<div class='lesson'><h3>{name}</h3><div class='blank'></div></div>"
        for name in ("What went well", "What went wrong", "Where we got lucky")
    )
    return (
        "<section class='record'><h2>Action items</h2>"
        "<table><thead><tr><th>Action</th><th>Type</th><th>Owner</th><th>Bug</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        f"<h2>Lessons</h2><div class='lessons'>{lessons}</div></section>"
    )


def _footer(result: RunResult) -> str:
    facts = [(k, escape(v)) for k, v in sorted(result.versions.items())]
    facts.append(("actions sha256", f"<code>{escape(result.actions_sha256 or '—')}</code>"))
    if result.replay_command:
        facts.append(("replay", f"<code>{escape(result.replay_command)}</code>"))
    return f"<footer><h2>Run</h2>{_definition_list(facts)}</footer>"


# --- charts ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Axis:
    """The shared virtual time axis of every chart, with the fault windows on it."""

    start_ms: int
    end_ms: int
    windows: tuple[tuple[int, int, str], ...]  # (start, end, label), end clipped to the axis

    @classmethod
    def of(cls, result: RunResult) -> _Axis:
        ends = [int(result.simulated_s * 1000)]
        ends += [s.at_ms for s in result.samples]
        ends += [w.end_ms or w.start_ms for w in result.fault_windows]
        ends += [t.at_ms for t in result.timeline]
        starts = [0] + [s.at_ms for s in result.samples]
        start, end = min(starts), max(ends)
        end = max(end, start + 1)
        windows = tuple(
            (w.start_ms, end if w.end_ms is None else w.end_ms, w.label)
            for w in result.fault_windows
        )
        return cls(start, end, windows)

    def in_fault(self, at_ms: int) -> bool:
        return any(a <= at_ms <= b for a, b, _ in self.windows)

    @property
    def fault_ms(self) -> int:
        """The time covered by at least one fault window (overlaps counted once)."""
        covered, reach = 0, self.start_ms
        for start, end, _ in sorted(self.windows):
            begin = max(start, reach)
            if end > begin:
                covered += end - begin
                reach = end
        return covered


@dataclass(frozen=True, slots=True)
class _Series:
    label: str
    color: str
    values: tuple[float | None, ...]


# (title, unit, stacked?, [(label, colour, Sample field)]): the four charts, in page order.
CHARTS: tuple[tuple[str, str, bool, tuple[tuple[str, str, str], ...]], ...] = (
    (
        "Request outcomes at the ERP",
        "requests per interval",
        True,
        (
            ("ok", "#2e7d32", "requests_ok"),
            ("held (202)", "#f9a825", "requests_held"),
            ("error", "#c62828", "requests_error"),
        ),
    ),
    ("Holds open", "holds", False, (("holds open", "#6a1b9a", "holds_open"),)),
    (
        "Webhook backlog at the provider",
        "pending deliveries",
        False,
        (("pending deliveries", "#1565c0", "webhook_backlog"),),
    ),
    (
        "ERP latency",
        "ms (wall)",
        False,
        (("p50", "#90caf9", "p50_ms"), ("p95", "#1e88e5", "p95_ms"), ("p99", "#0d47a1", "p99_ms")),
    ),
)
W, H = 760, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 14, 30


def _charts(result: RunResult, axis: _Axis) -> str:
    samples = result.samples
    parts = ["<section><h2>Over the account clock</h2>"]
    if not samples:
        parts.append("<p class='muted'>No samples were recorded.</p></section>")
        return "\n".join(parts)

    at = [s.at_ms for s in samples]
    for title, unit, stacked, fields in CHARTS:
        lines = [
            _Series(label, color, tuple(getattr(s, field) for s in samples))
            for label, color, field in fields
        ]
        parts.append(_chart(title, unit, at, lines, axis, stacked=stacked))
    if axis.windows:
        legend = "".join(
            f"<li><span class='swatch fault'></span> {clock(a)} → {clock(b)} {escape(label)}</li>"
            for a, b, label in axis.windows
        )
        parts.append(f"<ul class='legend'>{legend}</ul>")
    parts.append("</section>")
    return "\n".join(parts)


def _chart(
    title: str,
    unit: str,
    at: Sequence[int],
    lines: Sequence[_Series],
    axis: _Axis,
    *,
    stacked: bool,
) -> str:
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    span = axis.end_ms - axis.start_ms

    def x(ms: float) -> float:
        return LEFT + (ms - axis.start_ms) / span * plot_w

    if stacked:
        columns = zip(*(s.values for s in lines), strict=True)
        peak = max((sum(v or 0 for v in col) for col in columns), default=0)
    else:
        peak = max((v for s in lines for v in s.values if v is not None), default=0)
    top = _nice_ceiling(float(peak))

    def y(value: float) -> float:
        return TOP + plot_h - value / top * plot_h

    out = [
        f'<figure><figcaption>{escape(title)}</figcaption><svg viewBox="0 0 {W} {H}" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for a, b, label in axis.windows:  # shaded first, under the data
        out.append(
            f'<rect class="fault-window" x="{_f(x(a))}" y="{TOP}" width="{_f(max(x(b) - x(a), 1))}"'
            f' height="{plot_h}"><title>{escape(label)}: {clock(a)} → {clock(b)}</title></rect>'
        )
    for i in range(5):  # horizontal grid and y labels
        value = top * i / 4
        out.append(
            f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{_f(y(value))}" '
            f'y2="{_f(y(value))}"/><text class="ylabel" x="{LEFT - 6}" y="{_f(y(value) + 4)}">'
            f"{value:g}</text>"
        )
    for i in range(6):  # x ticks on the virtual clock
        ms = axis.start_ms + span * i / 5
        out.append(
            f'<text class="xlabel" x="{_f(x(ms))}" y="{H - 10}">{clock(ms)}</text>'
            f'<line class="tick" x1="{_f(x(ms))}" x2="{_f(x(ms))}" y1="{TOP + plot_h}" '
            f'y2="{TOP + plot_h + 4}"/>'
        )
    out.append(
        f'<text class="unit" x="{LEFT}" y="{TOP - 3}">{escape(unit)}</text>'
        f'<line class="axis" x1="{LEFT}" x2="{W - RIGHT}" y1="{TOP + plot_h}" '
        f'y2="{TOP + plot_h}"/>'
    )
    if stacked:
        out.extend(_bars(at, lines, x, y, plot_w / max(len(at), 1)))
    else:
        for s in lines:
            out.extend(_polyline(at, s, x, y))
    out.append("</svg>")
    legend = "".join(
        f"<li><span class='swatch' style='background:{s.color}'></span> {escape(s.label)}</li>"
        for s in lines
    )
    out.append(f"<ul class='legend'>{legend}</ul></figure>")
    return "".join(out)


def _bars(
    at: Sequence[int],
    lines: Sequence[_Series],
    x: Callable[[float], float],
    y: Callable[[float], float],
    slot: float,
) -> Iterable[str]:
    width = max(slot * 0.8, 1.0)
    for i, ms in enumerate(at):
        base = 0.0
        for s in lines:
            value = s.values[i] or 0
            if value <= 0:
                continue
            y0, y1 = y(base), y(base + value)
            yield (
                f'<rect class="bar" x="{_f(max(x(ms) - width / 2, LEFT))}" y="{_f(y1)}" '
                f'width="{_f(width)}" '
                f'height="{_f(y0 - y1)}" fill="{s.color}"><title>{clock(ms)} {escape(s.label)}: '
                f"{escape(_number(value))}</title></rect>"
            )
            base += value


def _polyline(
    at: Sequence[int],
    s: _Series,
    x: Callable[[float], float],
    y: Callable[[float], float],
) -> Iterable[str]:
    """One polyline per run of known values (a gap where the interval had no measurement)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for ms, value in zip(at, s.values, strict=True):
        if value is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append((x(ms), y(value)))
    for run in runs:
        if len(run) == 1:
            px, py = run[0]
            yield f'<circle cx="{_f(px)}" cy="{_f(py)}" r="2.5" fill="{s.color}"/>'
        elif run:
            points = " ".join(f"{_f(px)},{_f(py)}" for px, py in run)
            yield (
                f'<polyline class="line" points="{points}" stroke="{s.color}">'
                f"<title>{escape(s.label)}</title></polyline>"
            )


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^k at or above `value` (1 for nothing measured)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * power:
            return step * power
    return 10.0 * power


# --- small pieces ---------------------------------------------------------------------------
def _f(value: float) -> str:
    return f"{value:.1f}"


def _number(value: float | int | str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.2f}"
    return str(int(value))


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "—"


def _mark(status: str) -> str:
    return f"<span class='mark {status}'>{MARKS[status]}</span>"


def _path_of(target: str) -> str:
    return target.split("#", 1)[0]


def _anchor(target: str, link: Linker) -> str:
    href = link(target)
    if href is None:
        return f"<code>{escape(target)}</code>"
    return f'<a href="{escape(href)}">{escape(target)}</a>'


def _definition_list(facts: Sequence[tuple[str, str]]) -> str:
    """`facts` values are HTML already (escaped by the caller); keys are escaped here."""
    items = "".join(f"<dt>{escape(k)}</dt><dd>{v}</dd>" for k, v in facts)
    return f"<dl>{items}</dl>"


CSS = """
:root{--ok:#2e7d32;--bad:#c62828;--warn:#f9a825;--err:#6a1b9a;--muted:#6b7280;--line:#e5e7eb}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111827;
max-width:1040px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:4px 0}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid
var(--line);padding-bottom:4px}h3{font-size:14px;margin:14px 0 6px}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-all}
header.verdict{border-left:8px solid var(--muted);padding:8px 16px;background:#f9fafb}
header.passed{border-color:var(--ok)}header.deviated,header.precondition_failed{border-color:
var(--bad)}header.errored,header.invalid{border-color:var(--err)}
.badge{display:inline-block;margin:0;font-weight:700;letter-spacing:.05em}
header.passed .badge{color:var(--ok)}header.deviated .badge,header.precondition_failed .badge{
color:var(--bad)}header.errored .badge,header.invalid .badge{color:var(--err)}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:12px 0}
dt{color:var(--muted)}dd{margin:0}
.error,.replay{background:#fef2f2;border:1px solid #fecaca;padding:8px 12px}
table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{text-align:left;vertical-align:top;padding:4px 8px;border-bottom:1px solid var(--line)}
th{font-weight:600;background:#f9fafb}
tr.failed td,td.failed{background:#fef2f2}tr.errored td,td.errored{background:#f5f3ff}
tr.skipped td,td.skipped{color:var(--muted)}
.mark{font-weight:700}.mark.passed{color:var(--ok)}.mark.failed{color:var(--bad)}
.mark.errored{color:var(--err)}.mark.skipped{color:var(--muted)}
.muted{color:var(--muted)}
tr.fault-window td{background:#fff7f7}tr.samples td{color:#374151;font-style:italic}
figure{margin:12px 0}figcaption{font-weight:600}
svg{width:100%;height:auto;background:#fff}
svg .fault-window{fill:#ef5350;fill-opacity:.15}
svg .grid{stroke:var(--line)}svg .axis,svg .tick{stroke:#9ca3af}
svg .line{fill:none;stroke-width:2}
svg text{font-size:11px;fill:var(--muted)}svg .ylabel{text-anchor:end}
svg .xlabel{text-anchor:middle}
.legend{list-style:none;padding:0;margin:4px 0;display:flex;flex-wrap:wrap;gap:4px 16px}
.swatch{display:inline-block;width:12px;height:12px;vertical-align:-2px;border-radius:2px}
.swatch.fault{background:#ef5350;opacity:.3}
.lessons{display:grid;grid-template-columns:repeat(3,1fr);gap:12px}
.blank{min-height:96px;border:1px dashed #d1d5db;border-radius:4px}
footer{margin-top:32px;color:var(--muted)}
@media print{body{max-width:none}.blank{min-height:140px}}
"""
