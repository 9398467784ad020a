"""The result of one rehearsal: the journal that every report renders.

`report.json` is `RunResult.model_dump_json()`; the terminal summary, `report.html` and the
JUnit XML are views of the same object, so they can never disagree. Times on the scenario's
axis are virtual milliseconds since T0 of the account clock (`at_ms`); wall times are kept
beside them only for the "how long did it take" figures.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["passed", "deviated", "precondition_failed", "errored", "invalid"]
"""passed: every check held. deviated: the integration showed a weakness (an invariant or SLO
failed). precondition_failed: the steady state did not hold before the faults. errored: the
runner itself failed (a process would not start, the simulator answered nonsense). invalid: the
scenario file or the environment was invalid."""

EXIT_CODES: dict[str, int] = {
    "passed": 0,
    "deviated": 1,
    "precondition_failed": 1,
    "errored": 2,
    "invalid": 2,
}

CheckKind = Literal["invariant", "slo", "probe"]
CheckStatus = Literal["passed", "failed", "errored", "skipped"]
Phase = Literal["before", "during", "after", "end"]


class CheckResult(BaseModel):
    """One verdict: a steady-state probe in a phase, an invariant at the end, or an SLO."""

    kind: CheckKind
    name: str  # "no_order_lost", "erp_place_p99", "provider_healthy"
    phase: Phase
    status: CheckStatus
    expected: str = ""  # "p(99) < 1000 ms", "0 orders missing", "200"
    observed: str = ""  # "p(99) = 412 ms", "2 orders missing: ord_..., ord_..."
    detail: str = ""  # longer explanation; for failures, what to look at first
    runbook: str | None = None  # "docs/runbooks/provider-outage.md#symptoms"
    # A wall-clock figure (an SLO on latency, or on answers the ERP's time budget decides):
    # its verdict depends on the machine's load; every other verdict is fixed by the seed.
    timed: bool = False

    @property
    def passed(self) -> bool:
        return self.status in ("passed", "skipped")


class TimelineEntry(BaseModel):
    """A timeline step as it was applied (or failed to apply)."""

    at_ms: int  # virtual ms since T0
    wall_ms: int  # wall ms since the run started
    action: str  # "fault", "preset", "clear_faults", "kill_integration", ...
    args: dict[str, Any] = Field(default_factory=dict)
    outcome: Literal["ok", "error"] = "ok"
    detail: str = ""


class Sample(BaseModel):
    """One point of the time series the HTML report charts (taken every sample interval)."""

    at_ms: int  # virtual ms since T0
    requests_ok: int = 0  # ERP answers 2xx (not held) in this interval
    requests_held: int = 0  # ERP answers 202 (held) in this interval
    requests_error: int = 0  # ERP answers 4xx/5xx or transport errors in this interval
    holds_open: int = 0  # the integration's open holds at the sample
    webhook_backlog: int = 0  # the simulator's pending webhook deliveries at the sample
    p50_ms: float | None = None  # ERP latency in this interval (wall ms)
    p95_ms: float | None = None
    p99_ms: float | None = None


class FaultWindow(BaseModel):
    """A span of the virtual axis during which a fault, quirk or outage was active."""

    start_ms: int
    end_ms: int | None = None  # None: still active when the run ended (then cleared)
    label: str  # "preset outage", "503 storm on captures", "receiver stopped"


class ScenarioInfo(BaseModel):
    name: str  # file stem, "provider-outage-checkout"
    title: str
    failure_mode: str
    runbook: str  # "docs/runbooks/provider-outage.md"
    file: str  # path as given
    definition: dict[str, Any]  # the validated scenario, as data


class RunResult(BaseModel):
    """Everything one run produced. Serialised as report.json."""

    scenario: ScenarioInfo
    seed: int
    speed: float  # virtual seconds per wall second
    status: Status
    exit_code: int
    started_at: str  # wall clock, RFC 3339 (for humans only; not part of determinism)
    duration_s: float  # wall seconds
    simulated_s: float  # virtual seconds covered
    versions: dict[str, str] = Field(default_factory=dict)  # sandbank, python, platform
    steady_state: list[CheckResult] = Field(default_factory=list)  # probes, phase before/after
    invariants: list[CheckResult] = Field(default_factory=list)
    slos: list[CheckResult] = Field(default_factory=list)
    figures: dict[str, int | float | str] = Field(default_factory=dict)  # orders_placed, ...
    timeline: list[TimelineEntry] = Field(default_factory=list)
    samples: list[Sample] = Field(default_factory=list)
    fault_windows: list[FaultWindow] = Field(default_factory=list)
    actions_sha256: str = ""  # digest of the ordered action journal: same seed => same digest
    replay_command: str = ""  # the exact command that replays this run
    error: str | None = None  # for errored/invalid: what went wrong, one line
    # Game-day record (rehearsals.md §5): filled by people after the run, rendered blank.
    action_items: list[str] = Field(default_factory=list)

    def all_checks(self) -> list[CheckResult]:
        return [*self.steady_state, *self.invariants, *self.slos]
