"""The scenario file: what a rehearsal does, as data an SRE can read and review.

A scenario is YAML validated by the pydantic models below. Every error names the file, the
line and the field (`scenarios/x.yaml:14: timeline[2].preset: unknown preset 'outage'`): the
YAML is composed into nodes first, so a pydantic error location (`('timeline', 2, 'preset')`)
is walked down the node tree to the line that holds it.

Times are durations on the account's (virtual) clock, written as `90s`, `15m`, `1h30m`, `2d`
or `250ms` (a leading `T+` is allowed: `T+10m`); they are kept as integer milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
MAX_DURATION_MS = 400 * 86_400_000  # a rehearsal covers at most 400 days of account clock

# The simulator's presets (`GET /_sandbox/faults/presets`); checked here so a typo fails at
# validation, not at T+30m of a run.
PRESETS = (
    "flaky-5xx",
    "rate-limited",
    "total-outage",
    "slow-decisions",
    "lost-response-after-capture",
    "timeout-storm",
)
DRIFT_KINDS = ("missing_line", "duplicate_line", "off_by_one_cent", "late_line", "unknown_order")
QUIRKS = (
    "duplicate",
    "reorder",
    "delay",
    "drop",
    "stale_timestamp",
    "bad_signature",
    "old_secret",
    "thin_payload",
)
TERMS = ("net30", "net60", "installments_3", "installments_6", "installments_12")


def parse_ms(value: Any) -> int:
    """'T+1h30m' / '90s' / '250ms' (or an int of ms) -> milliseconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is text like '15m', not a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return value
    if not isinstance(value, str):
        raise ValueError("a duration is text like '90s', '15m', '1h30m' or '2d'")
    text = value.strip()
    if text.upper().startswith("T+"):
        text = text[2:].strip()
    pos, total = 0, 0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _UNIT_MS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"{value!r} is not a duration like '90s', '15m', '1h30m', '2d'")
    if total > MAX_DURATION_MS:
        raise ValueError(f"{value!r} is longer than 400 days")
    return total


def format_ms(ms: int) -> str:
    """Milliseconds back to the shortest duration text ('1h30m', '250ms', '0s')."""
    if ms == 0:
        return "0s"
    out = []
    for unit in ("d", "h", "m", "s", "ms"):
        size = _UNIT_MS[unit]
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(out)


Ms = Annotated[int, BeforeValidator(parse_ms)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- workload -------------------------------------------------------------------------------
class Mix(Strict):
    """Relative weights of what happens to an order after it is placed."""

    ship: float = Field(5, ge=0, description="approved, shipped in one part")
    ship_parts: float = Field(2, ge=0, description="approved, shipped in `parts` shipments")
    refund: float = Field(1, ge=0, description="shipped in part, partly refunded, rest shipped")
    cancel: float = Field(1, ge=0, description="approved, canceled before shipping")
    decline: float = Field(1, ge=0, description="the buyer declines at the provider")
    abandon: float = Field(0, ge=0, description="the buyer never answers (checkout expires)")
    hold: float = Field(0, ge=0, description="approved, never shipped (authorization may lapse)")

    @model_validator(mode="after")
    def _some_weight(self) -> Mix:
        if sum(self.weights().values()) <= 0:
            raise ValueError("at least one weight must be positive")
        return self

    def weights(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.model_dump().items()}


class Workload(Strict):
    orders_per_minute: float = Field(gt=0, le=600, description="on the account clock")
    mix: Mix = Mix()
    amount_min: int = Field(50_000, gt=0, description="minor units")
    amount_max: int = Field(400_000, gt=0, description="minor units")
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    terms: list[Literal[TERMS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["net30", "net60", "installments_3"], min_length=1
    )
    buyers: int = Field(0, ge=0, le=10_000, description="buyer pool (0: orders / 3, >= 5)")
    parts: int = Field(3, ge=2, le=10, description="shipments of a ship_parts order")
    approve_after: Ms = Field(60_000, description="placing -> the buyer's answer")
    ship_after: Ms = Field(300_000, description="approval -> first shipment")
    ship_every: Ms = Field(300_000, description="between shipments of one order")
    refund_after: Ms = Field(600_000, description="first shipment -> refund")
    cancel_after: Ms = Field(600_000, description="approval -> cancel")
    stop_at: Ms | None = Field(None, description="no new orders from here (default: duration)")

    @model_validator(mode="after")
    def _amounts(self) -> Workload:
        if self.amount_max < self.amount_min:
            raise ValueError("amount_max must be at least amount_min")
        return self


# --- timeline -------------------------------------------------------------------------------
class PresetStep(Strict):
    name: Literal[PRESETS]  # type: ignore[valid-type]
    duration: Ms | None = None


class DisputeStep(Strict):
    count: int = Field(1, ge=1, le=1000, description="orders disputed (captured ones, seeded)")
    reason: str = "product_not_received"
    share: float = Field(1.0, gt=0, le=1, description="of the order's captured amount")
    respond: Literal["win", "lose", "accept", "none"] = Field(
        "win", description="how the integrator's team answers (evidence +win/+lose, accept)"
    )


class KillStep(Strict):
    restart_after: Ms = Field(30_000, description="account clock until the service is back")


class RotateStep(Strict):
    overlap: str = Field("24h", pattern=r"^\d+(ms|s|m|h|d)$")
    restart_integration: bool = Field(
        True, description="restart the integration with the old and the new secret"
    )


ACTIONS = (
    "fault",
    "preset",
    "webhook_quirks",
    "settlement_drift",
    "rotate_webhook_secret",
    "open_disputes",
    "receiver",
    "kill_integration",
    "clear_faults",
    "advance_clock",
)


class Step(Strict):
    """One timeline entry: at T+`at`, exactly one action."""

    at: Ms
    fault: dict[str, Any] | None = Field(None, description="a fault rule, as POST /_sandbox/faults")
    preset: PresetStep | None = None
    webhook_quirks: dict[str, Any] | None = Field(None, description="{} clears")
    settlement_drift: dict[str, float] | None = Field(None, description="{} turns drift off")
    rotate_webhook_secret: RotateStep | None = None
    open_disputes: DisputeStep | None = None
    receiver: Literal["stop", "start"] | None = None
    kill_integration: KillStep | None = None
    clear_faults: Literal[True] | None = None
    advance_clock: Ms | None = Field(None, description="jump the account clock by this much")
    label: str | None = Field(None, description="how the report's timeline names it")

    @field_validator("preset", mode="before")
    @classmethod
    def _preset_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("webhook_quirks")
    @classmethod
    def _quirks(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        for key in value or {}:
            if key not in QUIRKS:
                raise ValueError(f"unknown quirk {key!r} (one of: {', '.join(QUIRKS)})")
        return value

    @field_validator("settlement_drift")
    @classmethod
    def _drift(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for key in value or {}:
            if key not in DRIFT_KINDS:
                raise ValueError(f"unknown drift {key!r} (one of: {', '.join(DRIFT_KINDS)})")
        return value

    @field_validator("fault")
    @classmethod
    def _fault(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            if "effect" not in value:
                raise ValueError("a fault rule needs an effect (see README, Faults)")
            if "account" in value:
                raise ValueError("a scenario's faults are scoped to its account; drop 'account'")
        return value

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        given = [a for a in ACTIONS if getattr(self, a) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a timeline step has exactly one action of: {', '.join(ACTIONS)}"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    @property
    def action(self) -> str:
        return next(a for a in ACTIONS if getattr(self, a) is not None)

    def args(self) -> Any:
        value = getattr(self, self.action)
        return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


# --- steady state, SLOs ---------------------------------------------------------------------
Tolerance = int | float | str | bool | list[int | float | str]


class Probe(Strict):
    """A steady-state probe (CTK-like): an HTTP status or a metric value within a tolerance."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    get: str | None = Field(None, description="'provider:/path' or 'integration:/path'")
    metric: str | None = Field(None, description="a Prometheus sample of the integration, summed")
    labels: dict[str, str] = Field(default_factory=dict)
    tolerance: Tolerance = Field(
        description="scalar: equal; [lo, hi]: inclusive range; longer list: one of"
    )
    phases: list[Literal["before", "after"]] = ["before", "after"]

    @model_validator(mode="after")
    def _one_source(self) -> Probe:
        if (self.get is None) == (self.metric is None):
            raise ValueError("a probe has exactly one of 'get' and 'metric'")
        if self.get is not None and not re.match(r"^(provider|integration):/", self.get):
            raise ValueError("get is 'provider:/path' or 'integration:/path'")
        return self


class SteadyState(Strict):
    title: str
    probes: list[Probe] = Field(min_length=1)


SLO_METRIC = re.compile(r"^([a-z_][a-z0-9_:]*)(\{[^}]*\})?$")
SLO_THRESHOLD = re.compile(
    r"^\s*(p\(\d+(?:\.\d+)?\)|avg|min|max|med|count|rate|value)\s*(<=|>=|<|>|==|!=)\s*"
    r"(-?\d+(?:\.\d+)?)\s*$"
)


class Slo(Strict):
    """k6-style: `metric{tag:value,...}` and `agg op number` (`p(99) < 1000`)."""

    metric: str
    threshold: str
    name: str | None = None
    description: str = ""

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        match = SLO_METRIC.match(value.replace(" ", ""))
        if not match:
            raise ValueError(f"{value!r} is not a metric like 'erp_latency_ms{{route:place}}'")
        for part in (match.group(2) or "{}")[1:-1].split(","):
            if part and ":" not in part:
                raise ValueError(f"tag filter {part!r} is not 'tag:value'")
        return value.replace(" ", "")

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, value: str) -> str:
        if not SLO_THRESHOLD.match(value):
            raise ValueError(
                f"{value!r} is not a threshold like 'p(99) < 1000', 'rate < 0.01', 'max <= 60'"
            )
        return value.strip()

    def label(self) -> str:
        return self.name or f"{self.metric} - {self.threshold}"


class IntegrationOptions(Strict):
    """How the runner starts the integration for this scenario (ignored when attached)."""

    resume_every: float = Field(0.5, gt=0, le=60, description="wall seconds")
    process_every: float = Field(0.2, gt=0, le=60, description="wall seconds")
    poll_every: float = Field(2.0, ge=0, le=600, description="wall seconds; 0: no poller")


def standard_hypothesis() -> SteadyState:
    """The steady state every scenario assumes unless it writes its own."""
    return SteadyState(
        title="The provider is up, the ERP answers and holds no provider work",
        probes=[
            Probe(name="provider_healthy", get="provider:/_sandbox/health", tolerance=200),
            Probe(name="erp_metrics_up", get="integration:/metrics", tolerance=200),
            Probe(name="no_open_holds", metric="sandbank_integration_holds_open", tolerance=0),
        ],
    )


class Scenario(Strict):
    title: str = Field(min_length=1)
    failure_mode: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str = ""
    runbook: str = Field(pattern=r"^docs/runbooks/[a-z0-9-]+\.md(#[a-z0-9-]+)?$")
    seed: int = Field(ge=0, le=2**63 - 1)
    duration: Ms
    speed: float = Field(120.0, gt=0, le=100_000, description="account seconds per wall second")
    recovery: Ms = Field(600_000, description="after `duration`: faults cleared, work drains")
    settle: Ms = Field(
        4 * 86_400_000, description="then the clock jumps this far so settlements are paid"
    )
    workload: Workload
    timeline: list[Step] = Field(default_factory=list)
    steady_state: SteadyState = Field(default_factory=standard_hypothesis)
    invariants: list[str] = Field(default_factory=lambda: ["all"])
    slos: list[Slo] = Field(default_factory=list)
    integration: IntegrationOptions = IntegrationOptions()
    fast: dict[str, Any] = Field(
        default_factory=dict,
        description="overrides for --fast (CI): e.g. {orders_per_minute: 2, speed: 600}",
    )

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("duration must be positive")
        return value

    @field_validator("invariants")
    @classmethod
    def _invariants(cls, value: list[str]) -> list[str]:
        from rehearsal.invariants import REGISTRY  # noqa: PLC0415 - the registry imports us

        for name in value:
            if name != "all" and name not in REGISTRY:
                raise ValueError(f"unknown invariant {name!r} (known: {', '.join(REGISTRY)})")
        return value

    @field_validator("fast")
    @classmethod
    def _fast(cls, value: dict[str, Any]) -> dict[str, Any]:
        allowed = {"orders_per_minute", "speed", "duration", "recovery"}
        for key in value:
            if key not in allowed:
                raise ValueError(f"fast may override only {', '.join(sorted(allowed))}")
        return value

    @model_validator(mode="after")
    def _timeline_fits(self) -> Scenario:
        for i, step in enumerate(self.timeline):
            if step.at > self.duration:
                raise ValueError(f"timeline[{i}] at T+{format_ms(step.at)} is after the duration")
        return self

    def invariant_names(self) -> list[str]:
        from rehearsal.invariants import REGISTRY  # noqa: PLC0415 - the registry imports us

        return list(REGISTRY) if "all" in self.invariants else list(dict.fromkeys(self.invariants))

    def for_fast_mode(self) -> Scenario:
        """The CI variant: a smaller workload at a higher speed (the `fast` overrides, else
        defaults that keep every phase of the timeline)."""
        fast = {"orders_per_minute": min(self.workload.orders_per_minute, 1.0), **self.fast}
        workload = self.workload.model_copy(
            update={"orders_per_minute": float(fast.pop("orders_per_minute"))}
        )
        update: dict[str, Any] = {"workload": workload, "speed": max(self.speed, 600.0)}
        for key, value in fast.items():
            update[key] = parse_ms(value) if key in ("duration", "recovery") else float(value)
        return self.model_copy(update=update)


# --- loading with file:line errors ------------------------------------------------------------
class ScenarioError(Exception):
    """A scenario that cannot be used; `str()` is one line per problem, `file:line: field: why`."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def _line_of(node: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """The 1-based line of the deepest node on `loc` (a pydantic error location)."""
    line = None if node is None else node.start_mark.line + 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            found = next(
                (
                    (k, v)
                    for k, v in node.value
                    if isinstance(k, yaml.ScalarNode) and k.value == key
                ),
                None,
            )
            if found is None:
                return line
            line = found[0].start_mark.line + 1
            node = found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            if key >= len(node.value):
                return line
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _field(loc: Sequence[int | str]) -> str:
    out = ""
    for key in loc:
        if isinstance(key, int):
            out += f"[{key}]"
        elif key in ACTIONS or not str(key)[:1].isupper():
            out += ("." if out else "") + str(key)
    return out or "(top level)"


def parse(text: str, source: str = "<scenario>") -> Scenario:
    """Validate scenario YAML; `ScenarioError` names `source`, the line and the field."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        reason = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError([f"{where}: not valid YAML: {reason}"]) from None
    if not isinstance(data, Mapping):
        raise ScenarioError([f"{source}:1: a scenario is a mapping (title, seed, workload, ...)"])
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            # Union members and validator wrappers add loc parts no file has; drop them.
            loc = [p for p in err["loc"] if not (isinstance(p, str) and "[" in p)]
            line = _line_of(node, loc)
            message = err["msg"].removeprefix("Value error, ")
            problems.append(f"{source}:{line or 1}: {_field(loc)}: {message}")
        raise ScenarioError(problems) from None


def load(path: str | Path) -> Scenario:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError([f"{p}: cannot read: {exc.strerror or exc}"]) from None
    return parse(text, str(p))
