"""SLOs as k6 thresholds over the integration's own figures.

A scenario writes `metric{tag:value,...}` and `agg op number` (`p(99) < 1000`, `rate < 0.01`,
`max <= 60`). The runner turns what the integration logged and exposed into tagged samples:

    erp_latency_ms{route,phase,status}   the ERP's own access-log latency of each shop request
                                         (POST /orders, /ship, /refund, /cancel), joined to the
                                         runner's action by X-Correlation-Id; phase is before /
                                         during / after the faults on the account clock
    erp_errors{route,phase}              1 per shop request the ERP answered 5xx other than
                                         503 (by the shop's reading, else the ERP's access
                                         log when the answer was lost on the way), else 0
    erp_unavailable{route,phase}         1 per shop request answered 503 (the ERP's explicit
                                         "try again later"), else 0
    erp_no_answer{route,phase}           1 per shop request the ERP never saw (refused while
                                         it was down or restarting, or the shop's own
                                         connection failing), else 0
    held_work_completion_s{kind}         per hold still open when the provider recovered:
                                         seconds from the recovery to its resolution
    event_to_state_ms{type}              first delivery attempt of a provider event -> the ERP
                                         applying it (its provider_event log line)
    prom:<name>{label:value}             any sample of the integration's GET /metrics;
                                         histograms answer p(N) from their buckets

Judging is pure (`judge`), so it is unit-tested without processes.

Some of these figures are wall-clock figures (`timed`): latencies, the time held work takes,
and requests the ERP never saw (on a loaded machine, the shop's own connections fail). A 503
is not one: the reference ERP holds (202) what its time budget cannot finish rather than
answer 503, so any 503 is a verdict on the ERP, not on the machine.
Same seed, same scenario gives the same verdict on every other check; a timed one depends on
how loaded the machine is, so speed targets are judged where the machine is quiet enough to
mean something (`sandbank scenario run`, `make bench-scenarios`), as the project's rule puts
speed targets in benchmarks. Each SLO's verdict says whether it is timed.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from rehearsal.model import SLO_METRIC, SLO_THRESHOLD, Slo
from rehearsal.result import CheckResult

OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class Point:
    value: float
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Histogram:
    """A Prometheus histogram's cumulative buckets (upper bound -> count), for `p(N)`."""

    buckets: list[tuple[float, float]]
    count: float
    total: float

    def quantile(self, q: float) -> float | None:
        """histogram_quantile's linear interpolation inside the bucket that holds rank q."""
        if self.count <= 0 or not self.buckets:
            return None
        rank = q * self.count
        lower_bound, lower_count = 0.0, 0.0
        for bound, cumulative in self.buckets:
            if cumulative >= rank:
                if math.isinf(bound):
                    return lower_bound
                width = cumulative - lower_count
                share = 0.0 if width == 0 else (rank - lower_count) / width
                return lower_bound + (bound - lower_bound) * share
            lower_bound, lower_count = bound, cumulative
        return lower_bound


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample in Prometheus text exposition."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match.group(3) or ""))
        try:
            value = float(match.group(4))
        except ValueError:
            continue
        out.append((match.group(1), labels, value))
    return out


TIMED = frozenset(
    {"erp_latency_ms", "held_work_completion_s", "event_to_state_ms", "erp_no_answer"}
)


def timed(metric: str) -> bool:
    """Whether an SLO's metric is a wall-clock figure (see the module's docstring): the
    runner's timed figures, and any of the integration's metrics in seconds or counting
    request outcomes (held or unavailable is decided by the ERP's time budget)."""
    name = metric.split("{", 1)[0]
    if name.startswith("prom:"):
        return "_seconds" in name or name.endswith("_requests_total")
    return name in TIMED


def _matches(tags: dict[str, str], wanted: dict[str, str]) -> bool:
    return all(tags.get(k) == v for k, v in wanted.items())


def histogram(
    samples: Iterable[tuple[str, dict[str, str], float]], name: str, wanted: dict[str, str]
) -> Histogram | None:
    """Sum the histogram `name`'s series that match `wanted` into one."""
    buckets: dict[float, float] = {}
    count = total = 0.0
    found = False
    for sample, labels, value in samples:
        rest = {k: v for k, v in labels.items() if k != "le"}
        if not _matches(rest, wanted):
            continue
        if sample == f"{name}_bucket":
            found = True
            bound = float(labels["le"].replace("+Inf", "inf"))
            buckets[bound] = buckets.get(bound, 0.0) + value
        elif sample == f"{name}_count":
            count += value
        elif sample == f"{name}_sum":
            total += value
    if not found:
        return None
    return Histogram(sorted(buckets.items()), count, total)


def split_metric(metric: str) -> tuple[str, dict[str, str]]:
    match = SLO_METRIC.match(metric)
    assert match is not None  # validated by the model
    tags = {}
    for part in (match.group(2) or "{}")[1:-1].split(","):
        if part:
            key, value = part.split(":", 1)
            tags[key.strip()] = value.strip()
    return match.group(1), tags


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (k6's Trend p(N))."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * p / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def aggregate(agg: str, values: list[float]) -> float | None:
    if agg == "count":
        return float(len(values))
    if not values:
        return None
    if agg.startswith("p("):
        return percentile(values, float(agg[2:-1]))
    if agg in ("avg", "rate"):
        return sum(values) / len(values)
    if agg == "min":
        return min(values)
    if agg == "max":
        return max(values)
    if agg == "med":
        return percentile(values, 50)
    return sum(values)  # value: a counter's or gauge's total


def judge(
    slo: Slo,
    points: dict[str, list[Point]],
    prometheus: list[tuple[str, dict[str, str], float]],
    runbook: str | None = None,
) -> CheckResult:
    """One SLO's verdict on the collected samples (`skipped` when no sample matched)."""
    name, wanted = split_metric(slo.metric)
    match = SLO_THRESHOLD.match(slo.threshold)
    assert match is not None
    agg, op, limit = match.group(1), match.group(2), float(match.group(3))
    observed: float | None
    if name.startswith("prom:"):
        metric = name.removeprefix("prom:")
        hist = histogram(prometheus, metric, wanted)
        if hist is not None and agg.startswith("p("):
            observed = hist.quantile(float(agg[2:-1]) / 100)
        elif hist is not None and agg in ("count", "avg"):
            avg = hist.total / hist.count if hist.count else None
            observed = hist.count if agg == "count" else avg
        else:
            values = [v for n, labels, v in prometheus if n == metric and _matches(labels, wanted)]
            observed = aggregate(agg if agg != "count" else "value", values) if values else None
    else:
        values = [p.value for p in points.get(name, []) if _matches(p.tags, wanted)]
        observed = aggregate(agg, values)
        n = len(values)
    base = CheckResult(
        kind="slo", name=slo.label(), phase="end", status="passed", expected=slo.threshold,
        detail=slo.description, runbook=runbook, timed=timed(slo.metric),
    )  # fmt: skip
    if observed is None:
        return base.model_copy(
            update={"status": "skipped", "observed": "no samples matched " + slo.metric}
        )
    text = f"{agg} = {observed:.6g}" + ("" if name.startswith("prom:") else f" over {n} samples")
    status = "passed" if OPS[op](observed, limit) else "failed"
    return base.model_copy(update={"status": status, "observed": text})


__all__ = [
    "TIMED",
    "Histogram",
    "Point",
    "aggregate",
    "judge",
    "parse_prometheus",
    "percentile",
    "timed",
]
