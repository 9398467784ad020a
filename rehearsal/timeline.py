"""The scenario's timeline as spans on the account clock: which faults are active when.

Pure functions of the scenario, so the phase of every request (`before` the first fault,
`during` one, `after` them) and the shaded windows of the report follow from the file alone.
A fault rule or preset lasts its own `duration` (rule `window.duration`, preset `duration`,
`total-outage` 15 minutes by default), or until the next `clear_faults`, or until the end of
the scenario (the runner clears every fault there). Quirks last until replaced or cleared
(`webhook_quirks: {}`); a stopped receiver until `receiver: start`; a killed integration until
its restart.
"""

from __future__ import annotations

from dataclasses import dataclass

from rehearsal.model import Scenario, Step, format_ms, parse_ms

PRESET_DEFAULT_MS = {"total-outage": 15 * 60_000}


@dataclass(frozen=True)
class Window:
    start_ms: int
    end_ms: int
    label: str
    kind: str  # fault | quirks | receiver | crash


def _own_duration(step: Step) -> int | None:
    if step.preset is not None:
        if step.preset.duration is not None:
            return step.preset.duration
        return PRESET_DEFAULT_MS.get(step.preset.name)
    if step.fault is not None:
        window = step.fault.get("window")
        if isinstance(window, dict) and isinstance(window.get("duration"), str):
            return parse_ms(window["duration"])
    return None


def _fault_label(step: Step) -> str:
    if step.label:
        return step.label
    if step.preset is not None:
        return f"preset {step.preset.name}"
    assert step.fault is not None
    effect = step.fault.get("effect", {})
    what = effect.get("type", "fault")
    if what == "status":
        what = f"{effect.get('status', '')} status"
    match = step.fault.get("match", {})
    on = match.get("operation") or match.get("path") or "/v1"
    return f"{what} on {on}"


def windows(scenario: Scenario) -> list[Window]:
    """Every span of the run during which something was injected, in start order."""
    end = scenario.duration
    steps = sorted(enumerate(scenario.timeline), key=lambda p: (p[1].at, p[0]))
    clears = [s.at for _, s in steps if s.clear_faults]
    out: list[Window] = []

    def until(start: int, *candidates: int | None) -> int:
        later = [c for c in candidates if c is not None and c >= start]
        return min([*later, end])

    for i, step in steps:
        if step.fault is not None or step.preset is not None:
            own = _own_duration(step)
            clear = next((c for c in clears if c >= step.at), None)
            stop = until(step.at, None if own is None else step.at + own, clear)
            out.append(Window(step.at, stop, _fault_label(step), "fault"))
        elif step.webhook_quirks:
            nxt = next(
                (
                    s.at
                    for j, s in steps
                    if s.webhook_quirks is not None and (s.at, j) > (step.at, i)
                ),
                None,
            )
            label = step.label or "webhook quirks: " + ", ".join(step.webhook_quirks)
            out.append(Window(step.at, until(step.at, nxt), label, "quirks"))
        elif step.receiver == "stop":
            nxt = next((s.at for _, s in steps if s.receiver == "start" and s.at >= step.at), None)
            out.append(
                Window(step.at, until(step.at, nxt), step.label or "receiver down", "receiver")
            )
        elif step.kill_integration is not None:
            back = step.at + step.kill_integration.restart_after
            label = step.label or "integration killed (kill -9)"
            out.append(Window(step.at, min(back, end), label, "crash"))
    return sorted(out, key=lambda w: (w.start_ms, w.end_ms))


def phase_of(at_ms: int, spans: list[Window]) -> str:
    """before / during / after the injected trouble, for a request made at `at_ms`."""
    faults = [w for w in spans if w.kind in ("fault", "receiver", "crash")]
    if not faults or at_ms < faults[0].start_ms:
        return "before"
    if any(w.start_ms <= at_ms < w.end_ms for w in faults):
        return "during"
    return "after"


def describe(step: Step) -> str:
    """One line for the progress display and the journal."""
    return f"T+{format_ms(step.at)} {step.action}"


__all__ = ["Window", "describe", "phase_of", "windows"]
