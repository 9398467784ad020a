"""What both locustfiles share: the target (from the environment), the fault phases applied
through the control plane on schedule, per-phase figures, the thresholds, and the exit code.

Why it is built this way (Locust's own facts, /work/shared/reference/rehearsals.md §4):

- **Phases on the master.** `FaultPhases` is a `LoadTestShape`; the shape runs on the master
  (or the one local process), so the faults are applied once, on schedule: steady -> outage
  (the `total-outage` preset) -> 5xx storm (a rule: half the account's /v1 requests get a 503)
  -> recovery (every rule of the account deleted). Then a short drain with no users, in which
  workers send their last figures and the end checks run, then the shape returns None (quit).
- **Per-phase figures from a `request` listener.** Locust's own stats are whole-run. Every node
  counts each request in half-second buckets (operation, count, failures, a latency histogram
  rounded as Locust rounds), and workers ship their buckets to the master with every stats
  report (`report_to_master` / `worker_report`). The master knows when each phase began, so a
  bucket belongs to the phase its time falls in: no clock is sent between processes, only
  wall-clock seconds on one machine (loopback only).
- **The exit code from thresholds, not from single errors.** Fault phases fail requests on
  purpose, so the run uses `--exit-code-on-error 0` semantics and a `quitting` listener sets
  `environment.process_exit_code`: 0 when every check passed, 1 when one did not.

Configuration comes from the environment (`sandbank load run` sets it; set it yourself to run
`locust -f loadtests/<file>.py` by hand):

    SANDBANK_LOAD_SIM_URL, SANDBANK_LOAD_ADMIN_TOKEN, SANDBANK_LOAD_ACCOUNT, SANDBANK_LOAD_API_KEY
    SANDBANK_LOAD_SHOP_URL            the reference integration (order_to_cash.py only)
    SANDBANK_LOAD_USERS, SANDBANK_LOAD_SPAWN_RATE, SANDBANK_LOAD_TIME (seconds, the four phases)
    SANDBANK_LOAD_OUT                 directory for phases.json / phases.csv / checks.json
    SANDBANK_LOAD_THRESHOLDS          JSON overriding thresholds, e.g. {"p99_ms": {"*": 0}}
    SANDBANK_LOAD_RUN                 a tag for ids (merchant order ids, idempotency keys)
"""

from __future__ import annotations

import csv
import json
import math
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from locust import LoadTestShape, events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from rehearsal.busy import BusyRetrySyncTransport

PHASES = ("steady", "outage", "storm", "recovery")
SHARES = {"steady": 0.4, "outage": 0.2, "storm": 0.2, "recovery": 0.2}
DRAIN_S = 4.0  # after recovery: users stopped, workers' last reports arrive (every 3 s)
BUCKET_S = 0.5
STORM_PROBABILITY = 0.5


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(f"SANDBANK_LOAD_{name}", default)
    if value is None:
        raise SystemExit(f"loadtests: set SANDBANK_LOAD_{name} (see loadtests/common.py)")
    return value


@dataclass
class Target:
    sim_url: str
    admin_token: str
    account: str
    api_key: str
    shop_url: str | None
    users: int
    spawn_rate: float
    seconds: float
    out: Path
    run: str

    @classmethod
    def from_env(cls) -> Target:
        return cls(
            sim_url=env("SIM_URL").rstrip("/"),
            admin_token=env("ADMIN_TOKEN"),
            account=env("ACCOUNT"),
            api_key=env("API_KEY"),
            shop_url=os.environ.get("SANDBANK_LOAD_SHOP_URL"),
            users=int(env("USERS", "10")),
            spawn_rate=float(env("SPAWN_RATE", "5")),
            seconds=float(env("TIME", "60")),
            out=Path(env("OUT", "loadtest-out")),
            run=env("RUN", str(int(time.time()))),
        )


def admin(target: Target) -> httpx.Client:
    return httpx.Client(
        base_url=target.sim_url,
        headers={"Authorization": f"Bearer {target.admin_token}"},
        timeout=30.0,
        transport=BusyRetrySyncTransport(),  # a busy moment must not end a fault phase
    )


# --- per-phase figures ----------------------------------------------------------------------
def rounded(ms: float) -> int:
    """Locust's own rounding for its histograms: exact below 100 ms, 2 digits above."""
    value = round(ms)
    if value < 100:
        return value
    digits = 10 ** (len(str(value)) - 2)
    return int(round(value / digits) * digits)


Bucket = dict[str, Any]  # {"n": int, "fails": int, "ms": {rounded_ms: count}}


class Figures:
    """Requests counted per (half-second bucket, operation) on this node; `take` hands over
    what was counted since the last call (a worker's report), `merge` adds another node's."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buckets: dict[tuple[float, str], Bucket] = {}

    def add(self, at: float, name: str, ms: float, failed: bool) -> None:
        key = (math.floor(at / BUCKET_S) * BUCKET_S, name)
        with self.lock:
            b = self.buckets.get(key)
            if b is None:
                b = self.buckets[key] = {"n": 0, "fails": 0, "ms": defaultdict(int)}
            b["n"] += 1
            b["fails"] += failed
            b["ms"][rounded(ms)] += 1

    def take(self) -> list[list[Any]]:
        with self.lock:
            taken, self.buckets = self.buckets, {}
        return [[at, name, b["n"], b["fails"], dict(b["ms"])] for (at, name), b in taken.items()]

    def merge(self, rows: list[list[Any]]) -> None:
        for at, name, n, fails, hist in rows:
            key = (float(at), str(name))
            with self.lock:
                b = self.buckets.get(key)
                if b is None:
                    b = self.buckets[key] = {"n": 0, "fails": 0, "ms": defaultdict(int)}
                b["n"] += n
                b["fails"] += fails
                for ms, count in hist.items():
                    b["ms"][int(ms)] += count


def percentile(hist: dict[int, int], q: float) -> float | None:
    total = sum(hist.values())
    if not total:
        return None
    rank = math.ceil(q / 100 * total)
    seen = 0
    for ms in sorted(hist):
        seen += hist[ms]
        if seen >= rank:
            return float(ms)
    return float(max(hist))


FIGURES = Figures()
FACTS: dict[str, Any] = {}  # what a locustfile reports besides requests (see `share`)
FACT_MERGERS: dict[str, Callable[[Any, Any], Any]] = {}


def share(kind: str, merge: Callable[[Any, Any], Any]) -> None:
    """Register a kind of fact the users record (e.g. orders placed) and how two nodes'
    values of it combine on the master."""
    FACT_MERGERS[kind] = merge


def record_fact(kind: str, value: Any) -> None:
    FACTS[kind] = FACT_MERGERS[kind](FACTS.get(kind), value)


_SENT_FACTS: dict[str, Any] = {}


@events.request.add_listener
def _on_request(
    request_type: str,
    name: str,
    response_time: float,
    exception: BaseException | None,
    **_: Any,
) -> None:
    FIGURES.add(time.time(), f"{request_type} {name}", response_time or 0.0, exception is not None)


@events.report_to_master.add_listener
def _to_master(client_id: str, data: dict[str, Any]) -> None:
    data["sandbank_buckets"] = FIGURES.take()
    data["sandbank_facts"] = dict(FACTS)
    FACTS.clear()


@events.worker_report.add_listener
def _from_worker(client_id: str, data: dict[str, Any]) -> None:
    FIGURES.merge(data.get("sandbank_buckets", []))
    for kind, value in data.get("sandbank_facts", {}).items():
        if kind in FACT_MERGERS:
            record_fact(kind, value)


# --- thresholds -------------------------------------------------------------------------------
@dataclass
class Check:
    name: str
    ok: bool
    expected: str
    observed: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "expected": self.expected,
            "observed": self.observed,
        }


@dataclass
class Thresholds:
    """`error_rate`: phase -> the most failures per request allowed in it; `p95_ms`, `p99_ms`:
    operation (or "*") -> the bound in the phases listed in `latency_phases`."""

    error_rate: dict[str, float]
    p95_ms: dict[str, float]
    p99_ms: dict[str, float]
    latency_phases: tuple[str, ...] = ("steady", "recovery")

    def with_overrides(self) -> Thresholds:
        raw = os.environ.get("SANDBANK_LOAD_THRESHOLDS")
        if not raw:
            return self
        given = json.loads(raw)
        unknown = set(given) - {"error_rate", "p95_ms", "p99_ms"}
        if unknown:
            raise SystemExit(f"loadtests: unknown thresholds {sorted(unknown)}")
        return Thresholds(
            error_rate={**self.error_rate, **given.get("error_rate", {})},
            p95_ms={**self.p95_ms, **given.get("p95_ms", {})},
            p99_ms={**self.p99_ms, **given.get("p99_ms", {})},
            latency_phases=self.latency_phases,
        )


def phase_figures(windows: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """Per phase: requests, failures, error rate, req/s, and per operation n/fails/p50/p95/p99."""
    out: dict[str, Any] = {}
    with FIGURES.lock:
        items = list(FIGURES.buckets.items())
    for phase, (start, end) in windows.items():
        ops: dict[str, dict[str, Any]] = {}
        for (at, name), b in items:
            if not start <= at + BUCKET_S / 2 < end:
                continue
            op = ops.setdefault(name, {"n": 0, "fails": 0, "ms": defaultdict(int)})
            op["n"] += b["n"]
            op["fails"] += b["fails"]
            for ms, count in b["ms"].items():
                op["ms"][ms] += count
        n = sum(o["n"] for o in ops.values())
        fails = sum(o["fails"] for o in ops.values())
        out[phase] = {
            "start": start,
            "end": end,
            "requests": n,
            "failures": fails,
            "error_rate": fails / n if n else 0.0,
            "rps": n / (end - start) if end > start else 0.0,
            "operations": {
                name: {
                    "requests": o["n"],
                    "failures": o["fails"],
                    "p50_ms": percentile(o["ms"], 50),
                    "p95_ms": percentile(o["ms"], 95),
                    "p99_ms": percentile(o["ms"], 99),
                }
                for name, o in sorted(ops.items())
            },
        }
    return out


def threshold_checks(figures: dict[str, Any], limits: Thresholds) -> list[Check]:
    checks = []
    for phase, limit in limits.error_rate.items():
        fig = figures.get(phase)
        if fig is None:
            continue
        checks.append(
            Check(
                f"error_rate{{phase:{phase}}}",
                fig["requests"] > 0 and fig["error_rate"] <= limit,
                f"rate <= {limit}, some requests",
                f"{fig['error_rate']:.4f} of {fig['requests']}",
            )
        )
    for q, bounds in (("p95", limits.p95_ms), ("p99", limits.p99_ms)):
        for phase in limits.latency_phases:
            for name, op in figures.get(phase, {}).get("operations", {}).items():
                bound = bounds.get(name, bounds.get("*"))
                value = op[f"{q}_ms"]
                if bound is None or value is None:
                    continue
                checks.append(
                    Check(
                        f"{q}{{phase:{phase},op:{name}}}",
                        value <= bound,
                        f"p({q[1:]}) <= {bound:g} ms",
                        f"{value:g} ms",
                    )
                )
    return checks


# --- the shape: phases, faults, end checks ------------------------------------------------------
EndChecks = Callable[[Target, Environment], list[Check]]


@dataclass
class RunState:
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    done: bool = False


STATE = RunState()


class FaultPhases(LoadTestShape):
    """steady -> outage -> storm -> recovery, then a drain and the end checks (see module)."""

    abstract = True  # each locustfile's subclass is the shape Locust runs
    end_checks: EndChecks | None = None
    thresholds: Thresholds = Thresholds({"steady": 0.01}, {}, {})

    def __init__(self) -> None:
        super().__init__()
        self.target = Target.from_env()
        self.phase: str | None = None
        self.bounds: list[tuple[str, float]] = []
        at = 0.0
        for name in PHASES:
            at += SHARES[name] * self.target.seconds
            self.bounds.append((name, at))

    def phase_at(self, t: float) -> str | None:
        return next((name for name, end in self.bounds if t < end), None)

    def tick(self) -> tuple[int, float] | None:
        t = self.get_run_time()
        phase = self.phase_at(t)
        if phase != self.phase:
            self.enter(phase)
        if phase is not None:
            return self.target.users, self.target.spawn_rate
        if t < self.target.seconds + DRAIN_S:
            return 0, max(self.target.users, 1.0)
        if not STATE.done:
            self.finish()
        return None

    def enter(self, phase: str | None) -> None:
        now = time.time()
        if self.phase is not None:
            start, _ = STATE.windows[self.phase]
            STATE.windows[self.phase] = (start, now)
        self.phase = phase
        if phase is not None:
            STATE.windows[phase] = (now, math.inf)
            apply_faults(self.target, phase)

    def finish(self) -> None:
        STATE.done = True
        assert self.runner is not None
        environment = self.runner.environment
        checks: list[Check] = []
        try:
            if self.end_checks is not None:
                checks += type(self).end_checks(self.target, environment)  # type: ignore[misc]
        except Exception as exc:  # a broken check is a failed check, reported as such
            checks.append(Check("end_checks", False, "the end checks run", f"{exc!r}"))
        finally:
            apply_faults(self.target, None)
        figures = phase_figures(STATE.windows)
        STATE.checks = threshold_checks(figures, self.thresholds.with_overrides()) + checks
        write_report(self.target, figures, STATE.checks)


def apply_faults(target: Target, phase: str | None) -> None:
    """The account's faults for `phase`: outage preset, 5xx storm rule, or none."""
    with admin(target) as c:
        c.delete("/_sandbox/faults", params={"account": target.account}).raise_for_status()
        if phase == "outage":
            c.post(
                "/_sandbox/faults/presets/total-outage",
                json={"account": target.account, "duration": "1h"},
            ).raise_for_status()
        elif phase == "storm":
            c.post(
                "/_sandbox/faults",
                json={
                    "account": target.account,
                    "name": "loadtest 5xx storm",
                    "match": {"path": "/v1/*"},
                    "probability": STORM_PROBABILITY,
                    "effect": {"type": "status", "status": 503, "retry_after_s": 1},
                },
            ).raise_for_status()


def write_report(target: Target, figures: dict[str, Any], checks: list[Check]) -> None:
    target.out.mkdir(parents=True, exist_ok=True)
    (target.out / "phases.json").write_text(json.dumps(figures, indent=2, default=str) + "\n")
    (target.out / "checks.json").write_text(
        json.dumps([c.as_dict() for c in checks], indent=2) + "\n"
    )
    with (target.out / "phases.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["phase", "operation", "requests", "failures", "p50_ms", "p95_ms", "p99_ms"])
        for phase, fig in figures.items():
            w.writerow([phase, "(all)", fig["requests"], fig["failures"], "", "", ""])
            for name, op in fig["operations"].items():
                w.writerow(
                    [phase, name, op["requests"], op["failures"], op["p50_ms"], op["p95_ms"],
                     op["p99_ms"]]
                )  # fmt: skip
    print(f"\nper-phase figures: {target.out / 'phases.json'}")
    for phase, fig in figures.items():
        print(
            f"  {phase:<9} {fig['requests']:>7} requests  {fig['rps']:>8.1f} req/s"
            f"  errors {fig['error_rate']:7.2%}"
        )
    print("checks:")
    for c in checks:
        mark = "PASS" if c.ok else "FAIL"
        print(f"  {mark} {c.name}: expected {c.expected}; observed {c.observed}")


@events.quitting.add_listener
def _exit_code(environment: Environment, **_: Any) -> None:
    """The run's verdict, on the master or the one local process (workers have no say)."""
    if isinstance(environment.runner, WorkerRunner):
        return
    if not STATE.done:
        print("loadtests: the run ended before its end checks (interrupted?)")
        environment.process_exit_code = 1
        return
    environment.process_exit_code = 0 if all(c.ok for c in STATE.checks) else 1


def is_master(environment: Environment) -> bool:
    return isinstance(environment.runner, MasterRunner)
