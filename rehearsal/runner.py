"""Run one scenario end to end and judge it: the engine behind `sandbank scenario run`.

Phases (on the account's virtual clock, frozen and moved only by the runner):

1. setup: an account with the scenario's seed (on a simulator started here, or attached to),
   its clock frozen at T0 (the next Monday 09:00 UTC, so weekdays and settlement batches fall
   the same way every run), a webhook endpoint for the integration, and the integration itself.
2. steady state `before`: the hypothesis' probes; a miss skips the method
   (`precondition_failed`, exit 1).
3. method: the clock moves at `speed` account seconds per wall second, in ticks; each tick
   applies the timeline steps that fell due (at their exact times), then sends the shop's
   steps that fell due (concurrently, never blocking the clock), and samples the figures.
4. recovery: every fault cleared, the receiver and the integration back; the shop's remaining
   steps run and held work drains, for `recovery` more and until no hold is open (bounded).
5. settle: the clock jumps `settle` (settlements made and paid, disputes decided), webhooks are
   flushed, the ERP catches up, and the integration's reconciliation runs.
6. steady state `after`, invariants, SLOs; faults are cleared whatever happened.

The action journal (planned shop steps as first sent, and timeline steps, with their times on
the account clock) is hashed into `actions_sha256`: the same scenario and seed give the same
digest, however the wall clock jittered.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import json
import platform
import random
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from rehearsal import invariants as inv
from rehearsal.busy import BusyRetryTransport
from rehearsal.env import DeadPort, EnvironmentError_, Integration, Simulator, free_port
from rehearsal.model import Probe, Scenario, Step, format_ms
from rehearsal.result import (
    EXIT_CODES,
    CheckResult,
    FaultWindow,
    RunResult,
    Sample,
    ScenarioInfo,
    TimelineEntry,
)
from rehearsal.shop import DEFER, DONE, ERROR, HELD, REFUSED, Call, OrderState, Shop
from rehearsal.slos import Point, judge, parse_prometheus, percentile
from rehearsal.timeline import Window, phase_of, windows
from rehearsal.workload import Step as ShopStep
from rehearsal.workload import plan

TICK_S = 0.2  # wall seconds between clock moves
DRAIN_TIMEOUT_S = 60.0  # wall bound for held work to drain after recovery
# After the method's end on the account clock, the shop's deferred steps go on while they make
# progress: the run ends once no step was taken for STALL_S of wall time, and at the latest
# FINISH_CAP_S after the end. Measured from the end, not from the start: on a loaded machine
# the whole run is slow, and a budget from the start would leave steps undone that only
# needed the time (the `workload_completed` verdict must not depend on the machine's load).
STALL_S = 60.0
FINISH_CAP_S = 300.0
CATCH_UP_TIMEOUT_S = 30.0  # wall bound for the ERP to process the provider's events
MAX_IN_FLIGHT = 16  # shop requests in flight at once
# Between tries of a step the ERP cannot take yet: 5 s of account clock, and at least half a
# second of wall time (at high speed, what the integration waits for runs on the wall clock).
RETRY_MS = 5_000
RETRY_WALL_S = 0.5
# The shop's client is patient: a loaded machine (several rehearsals on two cores) can stall
# this process's event loop for seconds, and a connect or read timeout of the rehearsal's own
# client is not the ERP failing (the ERP answers within its budget or holds the work). Idle
# connections are dropped after 2 s, well before uvicorn closes them (its keep-alive timeout is
# 5 s): a request sent on a connection the server is closing at that instant gets no answer
# ("Server disconnected without sending a response").
SHOP_TIMEOUT = httpx.Timeout(60.0, connect=15.0)
SHOP_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=2.0)


class RunnerError(Exception):
    """The runner could not do its part (a control-plane call refused, a process gone)."""


@dataclass
class Options:
    seed: int | None = None
    speed: float | None = None
    fast: bool = False
    report_dir: Path | None = None
    provider_url: str | None = None
    integration_url: str | None = None
    admin_token: str | None = None
    account: str | None = None
    api_key: str | None = None
    workdir: Path | None = None
    command: str = "sandbank scenario run"  # how the user invoked it, for the replay line
    on_progress: Callable[[dict[str, Any]], None] | None = None


@dataclass
class Progress:
    phase: str = "setup"
    at_ms: int = 0
    total_ms: int = 1
    orders: int = 0
    holds: int = 0
    errors: int = 0
    held: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def next_monday_9(now: datetime) -> datetime:
    day = (now + timedelta(days=1)).date()
    day += timedelta(days=(7 - day.weekday()) % 7)
    return datetime(day.year, day.month, day.day, 9, tzinfo=UTC)


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class Run:
    """The state of one run (what the phases share)."""

    scenario: Scenario
    source: str
    options: Options
    simulator: Simulator
    integration: Integration
    admin: httpx.AsyncClient
    api: httpx.AsyncClient
    erp: httpx.AsyncClient
    account: str
    endpoint_id: str
    t0: datetime
    wall0: float = 0.0
    at_ms: int = 0  # the account clock, ms since T0
    progress: Progress = field(default_factory=Progress)
    journal: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    secrets: list[inv.Secret] = field(default_factory=list)
    dead_port: DeadPort | None = None
    receiver_down: bool = False
    receiver_url: str = ""
    restart_at: int | None = None  # a killed integration comes back at this account time
    recovered_wall: float | None = None  # time.time() when the faults were cleared
    method_ms: int = 0  # account clock covered by the method and the recovery
    method_wall_s: float = 0.0  # wall time they took
    failures: list[str] = field(default_factory=list)  # timeline steps that could not apply


class Runner:
    def __init__(
        self,
        scenario: Scenario,
        source: str,
        options: Options,
        simulator: Simulator | None = None,
    ) -> None:
        self.options = options
        if options.fast:
            scenario = scenario.for_fast_mode()
        updates: dict[str, Any] = {}
        if options.seed is not None:
            updates["seed"] = options.seed
        if options.speed is not None:
            updates["speed"] = options.speed
        self.scenario = scenario.model_copy(update=updates)
        self.source = source
        self.shared_simulator = simulator
        self.windows = windows(self.scenario)
        self.plan = plan(self.scenario)

    # --- the whole run ---------------------------------------------------------------------
    async def run(self) -> RunResult:
        started = datetime.now(UTC)
        wall = time.monotonic()
        result = self._result(started)
        tmp: tempfile.TemporaryDirectory[str] | None = None
        workdir = self.options.workdir
        if workdir is None:
            tmp = tempfile.TemporaryDirectory(prefix="rehearsal-")
            workdir = Path(tmp.name)
        workdir.mkdir(parents=True, exist_ok=True)
        run: Run | None = None
        simulator: Simulator | None = None
        try:
            simulator = self._simulator(workdir)
            run = await self._setup(simulator, workdir)
            await self._execute(run, result)
        except (EnvironmentError_, RunnerError, httpx.HTTPError) as exc:
            result.status = "errored"
            result.error = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]
        finally:
            if run is not None:
                await self._teardown(run)
                result.timeline = run.timeline
                result.samples = run.samples
                result.actions_sha256 = journal_digest(run.journal)
            if simulator is not None and self.shared_simulator is None:
                simulator.stop()
            if tmp is not None:
                tmp.cleanup()
        result.exit_code = EXIT_CODES[result.status]
        result.duration_s = round(time.monotonic() - wall, 3)
        if result.status != "passed":
            result.replay_command = self.replay_command(result.seed)
        return result

    def _result(self, started: datetime) -> RunResult:
        s = self.scenario
        from rehearsal import __version__  # noqa: PLC0415 - avoid a cycle at import

        return RunResult(
            scenario=ScenarioInfo(
                name=Path(self.source).stem,
                title=s.title,
                failure_mode=s.failure_mode,
                runbook=s.runbook,
                file=self.source,
                definition=s.model_dump(mode="json"),
            ),
            seed=s.seed,
            speed=s.speed,
            status="passed",
            exit_code=0,
            started_at=started.isoformat().replace("+00:00", "Z"),
            duration_s=0.0,
            simulated_s=0.0,
            versions={
                "sandbank": __version__,
                "python": platform.python_version(),
                "platform": platform.platform(terse=True),
            },
            fault_windows=[
                FaultWindow(start_ms=w.start_ms, end_ms=w.end_ms, label=w.label)
                for w in self.windows
            ],
        )

    def replay_command(self, seed: int) -> str:
        parts = ["sandbank", "scenario", "run", self.source, "--seed", str(seed)]
        if self.options.speed is not None:
            parts += ["--speed", f"{self.options.speed:g}"]
        if self.options.fast:
            parts.append("--fast")
        return shlex.join(parts)

    # --- setup -----------------------------------------------------------------------------
    def _simulator(self, workdir: Path) -> Simulator:
        if self.shared_simulator is not None:
            return self.shared_simulator
        if self.options.provider_url:
            token = self.options.admin_token
            if not token:
                raise EnvironmentError_(
                    "--provider-url needs --admin-token (or SANDBANK_ADMIN_TOKEN)"
                )
            return Simulator(self.options.provider_url.rstrip("/"), token)
        return Simulator.start(workdir)

    async def _setup(self, simulator: Simulator, workdir: Path) -> Run:
        s = self.scenario
        admin = httpx.AsyncClient(
            base_url=simulator.url,
            headers={"Authorization": f"Bearer {simulator.admin_token}"},
            timeout=60.0,
            transport=BusyRetryTransport(),
        )
        attached = bool(self.options.integration_url)
        if attached:
            if not (self.options.account and self.options.api_key):
                raise EnvironmentError_(
                    "--integration-url needs --account and --api-key (the integration's account)"
                )
            account, key = self.options.account, self.options.api_key
            await self._ok(admin.put(f"/_sandbox/accounts/{account}/seed", json={"seed": s.seed}))
        else:
            r = await self._ok(
                admin.post(
                    "/_sandbox/accounts",
                    json={"name": f"rehearsal {Path(self.source).stem}", "seed": s.seed},
                )
            )
            account, key = r["id"], r["api_key"]
        api = httpx.AsyncClient(
            base_url=simulator.url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=60.0,
            transport=BusyRetryTransport(),
        )
        clock = await self._ok(admin.post(f"/_sandbox/accounts/{account}/clock/freeze"))
        t0 = next_monday_9(_when(clock["now"]))
        await self._ok(
            admin.post(f"/_sandbox/accounts/{account}/clock/advance", json={"to": _stamp(t0)})
        )
        if attached:
            assert self.options.integration_url is not None
            integration = Integration(self.options.integration_url.rstrip("/"), simulator.url, key)
            endpoint_id, secret = await self._find_endpoint(api, integration.url)
        else:
            integration = Integration(
                f"http://127.0.0.1:{free_port()}",
                simulator.url,
                key,
                db=workdir / f"integration-{account}.db",
                log=workdir / f"integration-{account}.log",
                options=s.integration.model_dump(),
            )
            r = await self._ok(
                api.post(
                    "/v1/webhook_endpoints",
                    json={"url": f"{integration.url}/webhooks/provider", "description": s.title},
                )
            )
            endpoint_id, secret = r["id"], r["secret"]
            integration.secrets = [secret]
            await asyncio.to_thread(integration.start)
        erp = httpx.AsyncClient(base_url=integration.url, timeout=SHOP_TIMEOUT, limits=SHOP_LIMITS)
        run = Run(
            s, self.source, self.options, simulator, integration, admin, api, erp, account,
            endpoint_id, t0,
        )  # fmt: skip
        run.receiver_url = f"{integration.url}/webhooks/provider"
        run.secrets = [inv.Secret(secret)] if secret else []
        run.progress.total_ms = s.duration + s.recovery
        return run

    async def _find_endpoint(self, api: httpx.AsyncClient, url: str) -> tuple[str, str]:
        page = await self._ok(api.get("/v1/webhook_endpoints"))
        for endpoint in page.get("data", []):
            if str(endpoint.get("url", "")).startswith(url):
                return str(endpoint["id"]), ""
        raise EnvironmentError_(f"no webhook endpoint of the account points at {url}")

    @staticmethod
    async def _ok(request: Any, *statuses: int) -> dict[str, Any]:
        r: httpx.Response = await request
        if r.status_code not in (statuses or (200, 201)):
            raise RunnerError(
                f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:200]}"
            )
        body = r.json() if r.content else {}
        return body if isinstance(body, dict) else {"data": body}

    # --- the phases ------------------------------------------------------------------------
    async def _execute(self, run: Run, result: RunResult) -> None:
        s = self.scenario
        self._report(run, "steady state (before)")
        before = await self._probes(run, "before")
        result.steady_state.extend(before)
        if not all(c.passed for c in before):
            result.status = "precondition_failed"
            return
        shop = Shop(run.erp, run.admin)
        orders = {p.merchant_order_id: OrderState(p) for p in self.plan}
        await self._method(run, shop, orders)
        self._report(run, "settle")
        await self._settle(run)
        self._report(run, "steady state (after)")
        result.steady_state.extend(await self._probes(run, "after"))
        self._report(run, "checks")
        obs = await self._observe(run, orders)
        verdicts = inv.run_all(obs, s.invariant_names())
        managed = run.integration.managed
        for name, verdict in verdicts.items():
            skipped = name == "reconciliation_clean" and not managed
            result.invariants.append(
                CheckResult(
                    kind="invariant",
                    name=name,
                    phase="end",
                    status="skipped" if skipped else ("passed" if verdict.ok else "failed"),
                    expected=verdict.expected,
                    observed="attached: no integration database to reconcile"
                    if skipped
                    else verdict.observed,
                    detail=verdict.detail or inv.REGISTRY[name].doc,
                    runbook=s.runbook,
                )
            )
        points = self._points(run, shop, obs)
        metrics = await self._scrape(run)
        for slo in s.slos:
            result.slos.append(judge(slo, points, metrics, s.runbook))
        result.figures.update(self._figures(run, shop, orders, obs))
        result.simulated_s = run.method_ms / 1000
        if run.failures:
            result.status = "errored"
            result.error = "timeline steps failed: " + "; ".join(run.failures)[:400]
        elif not all(c.passed for c in result.all_checks()):
            result.status = "deviated"

    def _report(self, run: Run, phase: str) -> None:
        run.progress.phase = phase
        run.progress.at_ms = run.at_ms
        if self.options.on_progress is not None:
            self.options.on_progress(run.progress.as_dict())

    async def _advance_to(self, run: Run, at_ms: int) -> None:
        if at_ms <= run.at_ms:
            return
        target = run.t0 + timedelta(milliseconds=at_ms)
        await self._ok(
            run.admin.post(
                f"/_sandbox/accounts/{run.account}/clock/advance", json={"to": _stamp(target)}
            )
        )
        run.at_ms = at_ms

    async def _method(  # noqa: PLR0915 - one loop: the clock, the timeline and the shop, in order
        self, run: Run, shop: Shop, orders: dict[str, OrderState]
    ) -> None:
        """The method and the recovery: timeline, clock and shop steps, tick by tick."""
        s = self.scenario
        steps = sorted(enumerate(s.timeline), key=lambda p: (p[1].at, p[0]))
        queue: list[tuple[int, int, str]] = []  # (due at_ms, seq, order id): each order's head
        for moid, state in orders.items():
            heapq.heappush(queue, (state.planned.steps[0].at_ms, 0, moid))
        last_step = max((st.at_ms for p in self.plan for st in p.steps), default=0)
        recovery_start = max(s.duration, 0)
        end = max(s.duration, last_step) + s.recovery
        run.progress.total_ms = end
        in_flight: set[asyncio.Task[None]] = set()
        slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        journaled: set[tuple[str, int]] = set()
        next_timeline = 0
        recovered = False
        jumped = 0  # ms the timeline's clock jumps added
        run.wall0 = time.monotonic()
        progress = [run.wall0]  # wall time the shop last took a step
        ended: float | None = None  # wall time the account clock reached `end`
        sample_every = max(int(TICK_S * s.speed * 1000), 1)
        next_sample = 0
        last_calls = 0

        async def take(state: OrderState, step: ShopStep) -> None:
            async with slots:
                try:
                    outcome = await shop.perform(state, step, run.at_ms)
                except httpx.HTTPError:
                    outcome = DEFER
                finally:
                    state.busy = False
            if outcome == DEFER:
                retry_at = run.at_ms + max(RETRY_MS, int(s.speed * RETRY_WALL_S * 1000))
                heapq.heappush(queue, (retry_at, step.at_ms, state.planned.merchant_order_id))
                return
            state.outcomes.append((step.kind, outcome))
            progress[0] = time.monotonic()
            if outcome == HELD:
                run.progress.held += 1
            if outcome == ERROR:
                run.progress.errors += 1
            state.next_step += 1
            if state.next_step < len(state.planned.steps):
                nxt = state.planned.steps[state.next_step]
                heapq.heappush(
                    queue, (max(nxt.at_ms, run.at_ms), nxt.at_ms, state.planned.merchant_order_id)
                )

        while True:
            # The clock runs on past `end` while the shop still has steps (recovery lasts
            # until the work is done, within the wall budget).
            target = int((time.monotonic() - run.wall0) * s.speed * 1000) + jumped
            # Timeline steps that fell due, each at its exact time on the account clock.
            while next_timeline < len(steps) and steps[next_timeline][1].at <= target:
                due = steps[next_timeline][1]
                await self._advance_to(run, due.at)
                jumped += await self._apply(run, due)
                next_timeline += 1
                target = max(target, run.at_ms)
            if run.restart_at is not None and run.restart_at <= target:
                await self._advance_to(run, run.restart_at)
                await self._restart(run)
            if not recovered and target >= recovery_start:
                await self._advance_to(run, recovery_start)
                await self._recover(run)
                recovered = True
            await self._advance_to(run, target)
            # The shop's steps that fell due, sent without waiting for their answers.
            while queue and queue[0][0] <= run.at_ms:
                _, planned_at, moid = heapq.heappop(queue)
                state = orders[moid]
                step = state.planned.steps[state.next_step]
                if state.busy:
                    heapq.heappush(queue, (run.at_ms + RETRY_MS, planned_at, moid))
                    continue
                key = (moid, state.next_step)
                if key not in journaled:
                    journaled.add(key)
                    run.journal.append({"shop": step.journal()})
                    if step.kind == "place":
                        run.progress.orders += 1
                state.busy = True
                task = asyncio.create_task(take(state, step))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            if run.at_ms >= next_sample:
                last_calls = await self._sample(run, shop, last_calls)
                next_sample = run.at_ms + sample_every
            self._report(run, "recovery" if recovered else "method")
            if run.at_ms >= end:
                ended = ended or time.monotonic()
                # Done; or steps still deferred, out of time: undone, and the checks say so.
                if (not queue and not in_flight) or stalled(ended, progress[0]):
                    break
            await asyncio.sleep(TICK_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*in_flight, return_exceptions=True), 90)
        await self._drain(run)
        run.method_ms = run.at_ms
        run.method_wall_s = time.monotonic() - run.wall0

    async def _sample(self, run: Run, shop: Shop, last: int) -> int:
        calls = shop.calls[last:]
        lat = [c.latency_ms for c in calls]
        holds = await self._holds_open(run)
        backlog = 0
        with contextlib.suppress(httpx.HTTPError, ValueError):
            r = await run.admin.get(
                "/_sandbox/webhooks/deliveries",
                params={"account": run.account, "status": "pending", "limit": 1000},
            )
            backlog = len(r.json().get("data", []))
        run.progress.holds = int(holds or 0)
        run.samples.append(
            Sample(
                at_ms=run.at_ms,
                requests_ok=sum(1 for c in calls if c.status in (200, 201)),
                requests_held=sum(1 for c in calls if c.status == 202),
                requests_error=sum(1 for c in calls if c.status is None or c.status >= 500),
                holds_open=int(holds or 0),
                webhook_backlog=backlog,
                p50_ms=round(percentile(lat, 50), 3) if lat else None,
                p95_ms=round(percentile(lat, 95), 3) if lat else None,
                p99_ms=round(percentile(lat, 99), 3) if lat else None,
            )
        )
        return len(shop.calls)

    async def _holds_open(self, run: Run) -> float | None:
        with contextlib.suppress(httpx.HTTPError):
            r = await run.erp.get("/metrics", timeout=5.0)
            if r.status_code == 200:
                return sum(
                    v
                    for name, _, v in parse_prometheus(r.text)
                    if name == "sandbank_integration_holds_open"
                )
        return None

    # --- timeline --------------------------------------------------------------------------
    async def _apply(self, run: Run, step: Step) -> int:
        """Apply one timeline step; returns the ms the account clock jumped (advance_clock)."""
        action, args = step.action, step.args()
        run.journal.append({"timeline": {"at_ms": step.at, "action": action, "args": args}})
        entry = TimelineEntry(
            at_ms=step.at,
            wall_ms=int((time.monotonic() - run.wall0) * 1000),
            action=action,
            args=args if isinstance(args, dict) else {"value": args},
        )
        jumped = 0
        try:
            if action == "advance_clock":
                before = run.at_ms
                await self._advance_to(run, run.at_ms + int(args))
                jumped = run.at_ms - before
            else:
                entry.detail = await self._act(run, step)
        except (RunnerError, EnvironmentError_, httpx.HTTPError) as exc:
            entry.outcome = "error"
            entry.detail = str(exc)[:300]
            run.failures.append(f"T+{format_ms(step.at)} {action}: {entry.detail}")
        run.timeline.append(entry)
        return jumped

    async def _act(self, run: Run, step: Step) -> str:
        acct = run.account
        if step.fault is not None:
            r = await self._ok(
                run.admin.post("/_sandbox/faults", json={**step.fault, "account": acct})
            )
            return f"rule {r.get('id')}"
        if step.preset is not None:
            body: dict[str, Any] = {"account": acct}
            if step.preset.duration is not None:
                body["duration"] = format_ms(step.preset.duration)
            r = await self._ok(
                run.admin.post(f"/_sandbox/faults/presets/{step.preset.name}", json=body)
            )
            return f"{len(r.get('rules', r.get('data', [])))} rules"
        if step.clear_faults:
            await self._ok(run.admin.delete("/_sandbox/faults", params={"account": acct}))
            return "cleared"
        if step.webhook_quirks is not None:
            path = f"/_sandbox/webhook_endpoints/{run.endpoint_id}/quirks"
            await self._ok(run.admin.put(path, json=step.webhook_quirks))
            return "set" if step.webhook_quirks else "cleared"
        if step.settlement_drift is not None:
            path = f"/_sandbox/accounts/{acct}/settlement_drift"
            await self._ok(run.admin.put(path, json=step.settlement_drift))
            return "set" if step.settlement_drift else "off"
        if step.receiver is not None:
            return await self._receiver(run, step.receiver)
        if step.kill_integration is not None:
            if not run.integration.managed:
                raise RunnerError("kill_integration needs an integration started by the runner")
            await asyncio.to_thread(run.integration.kill)
            run.restart_at = step.at + step.kill_integration.restart_after
            return f"killed; back at T+{format_ms(run.restart_at)}"
        if step.rotate_webhook_secret is not None:
            return await self._rotate(run, step)
        if step.open_disputes is not None:
            return await self._disputes(run, step)
        raise RunnerError(f"unknown action {step.action}")

    async def _v1(self, run: Run, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """A runner call on the account's /v1 API: the scenario's own faults may hit it, so
        it is retried (same Idempotency-Key) a few times."""
        key = hashlib.sha256(f"{run.account}{method}{path}{run.at_ms}".encode()).hexdigest()[:32]
        last = ""
        for _ in range(8):
            try:
                r = await run.api.request(
                    method, path, json=body, headers={"Idempotency-Key": key}, timeout=10.0
                )
            except httpx.HTTPError as exc:
                last = repr(exc)
            else:
                if r.status_code < 300:
                    data = r.json()
                    return data if isinstance(data, dict) else {}
                last = f"{r.status_code} {r.text[:200]}"
                if r.status_code < 500 and r.status_code != 429:
                    break
            await asyncio.sleep(0.2)
        raise RunnerError(f"{method} {path}: {last}")

    async def _receiver(self, run: Run, what: str) -> str:
        path = f"/v1/webhook_endpoints/{run.endpoint_id}"
        if what == "stop":
            if run.dead_port is None:
                run.dead_port = DeadPort()
            url = f"http://127.0.0.1:{run.dead_port.port}/webhooks/provider"
            await self._v1(run, "PATCH", path, {"url": url})
            run.receiver_down = True
            return f"webhooks to {url} (refused)"
        await self._v1(run, "PATCH", path, {"url": run.receiver_url})
        run.receiver_down = False
        return "webhooks to the integration again"

    async def _rotate(self, run: Run, step: Step) -> str:
        assert step.rotate_webhook_secret is not None
        path = f"/v1/webhook_endpoints/{run.endpoint_id}/rotate_secret"
        r = await self._v1(run, "POST", path, {"overlap": step.rotate_webhook_secret.overlap})
        new = str(r["secret"])
        expires = r.get("previous_secret_expires_at")
        for secret in run.secrets:
            if secret.expires_at is None and expires:
                secret.expires_at = _when(expires)
        run.secrets.append(inv.Secret(new))
        if run.integration.managed and step.rotate_webhook_secret.restart_integration:
            run.integration.secrets = [*run.integration.secrets[-1:], new]
            await asyncio.to_thread(run.integration.restart)
            return "rotated; integration restarted with the old and the new secret"
        return "rotated"

    async def _disputes(self, run: Run, step: Step) -> str:
        d = step.open_disputes
        assert d is not None
        page = await self._ok(run.admin.get(f"/_sandbox/accounts/{run.account}/dump"))
        # An order already disputed is left out: the provider refuses a second dispute on it
        # (409), and a later wave must pick fresh orders, as a real wave would.
        disputed = {
            str(obj.get("order_id"))
            for group in page.get("money", [])
            if group.get("kind") == "dispute"
            for obj in group.get("objects", [])
        }
        candidates = sorted(
            (
                o
                for o in page.get("orders", [])
                if o["captured_amount"] > o["refunded_amount"] and o["id"] not in disputed
            ),
            key=lambda o: str(o["merchant_order_id"]),
        )
        rng = random.Random(self.scenario.seed * 1_000_003 + step.at)  # noqa: S311 - seeded pick
        chosen = rng.sample(candidates, min(d.count, len(candidates)))
        opened = 0
        for order in chosen:
            amount = max(1, int((order["captured_amount"] - order["refunded_amount"]) * d.share))
            r = await self._ok(
                run.admin.post(
                    f"/_sandbox/orders/{order['id']}/disputes",
                    json={"reason": d.reason, "amount": amount},
                )
            )
            opened += 1
            dispute = r.get("id")
            if d.respond in ("win", "lose"):
                evidence = {"evidence": {"note": f"signed delivery receipt +{d.respond}"}}
                await self._v1(run, "POST", f"/v1/disputes/{dispute}/evidence", evidence)
            elif d.respond == "accept":
                await self._v1(run, "POST", f"/v1/disputes/{dispute}/accept", {})
        return f"{opened} disputes opened ({d.respond})"

    async def _restart(self, run: Run) -> None:
        run.restart_at = None
        entry = TimelineEntry(
            at_ms=run.at_ms,
            wall_ms=int((time.monotonic() - run.wall0) * 1000),
            action="restart_integration",
        )
        try:
            await asyncio.to_thread(run.integration.restart, graceful=False)
        except EnvironmentError_ as exc:
            entry.outcome, entry.detail = "error", str(exc)[:300]
            run.failures.append(f"restart: {entry.detail}")
        run.timeline.append(entry)

    async def _recover(self, run: Run) -> None:
        """End of the method: every fault cleared, the receiver and the integration back."""
        await self._ok(run.admin.delete("/_sandbox/faults", params={"account": run.account}))
        detail = "faults cleared"
        if run.receiver_down:
            await self._receiver(run, "start")
            detail += "; receiver back"
        if run.restart_at is not None:
            await self._restart(run)
            detail += "; integration back"
        run.recovered_wall = time.time()
        run.timeline.append(
            TimelineEntry(
                at_ms=run.at_ms,
                wall_ms=int((time.monotonic() - run.wall0) * 1000),
                action="recover",
                detail=detail,
            )
        )

    async def _drain(self, run: Run) -> None:
        """Wait (bounded) until the integration holds no provider work."""
        self._report(run, "drain")
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            if (await self._holds_open(run)) == 0:
                return
            await asyncio.sleep(0.25)

    async def _settle(self, run: Run) -> None:
        """Jump the clock so settlements are made and paid, deliver, let the ERP catch up,
        then reconcile (the integration's own command, as a nightly job runs it)."""
        s = self.scenario
        await self._advance_to(run, run.at_ms + s.settle)
        await self._ok(run.admin.post("/_sandbox/webhooks/flush", json={"account": run.account}))
        self._report(run, "catch up")
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        while time.monotonic() < deadline:
            dump = await self._ok(run.admin.get(f"/_sandbox/accounts/{run.account}/dump"))
            done = {str(line.get("event_id")) for line in self._event_lines(run)}
            if all(e["id"] in done for e in dump.get("events", [])):
                break
            await asyncio.sleep(0.25)

    def _event_lines(self, run: Run) -> list[dict[str, Any]]:
        return [
            line for line in run.integration.log_lines() if line.get("event") == "provider_event"
        ]

    async def _reconcile(self, run: Run) -> tuple[int | None, str]:
        if not run.integration.managed:
            return None, ""
        db = run.integration.db
        cmd = [sys.executable, "-m", "simulator.cli", "integration", "reconcile"]
        cmd += ["--provider-url", run.simulator.url, "--api-key", run.integration.api_key]
        cmd += ["--db", str(db)]
        proc = await asyncio.to_thread(
            subprocess.run, cmd, capture_output=True, text=True, timeout=120, check=False
        )
        return proc.returncode, proc.stdout + proc.stderr

    # --- checks ----------------------------------------------------------------------------
    async def _probes(self, run: Run, phase: str) -> list[CheckResult]:
        out = []
        for probe in self.scenario.steady_state.probes:
            if phase not in probe.phases:
                continue
            value, error = await self._probe(run, probe)
            ok = error is None and tolerance_met(value, probe.tolerance)
            out.append(
                CheckResult(
                    kind="probe",
                    name=probe.name,
                    phase=phase,
                    status="errored" if error else ("passed" if ok else "failed"),
                    expected=f"tolerance {json.dumps(probe.tolerance)}",
                    observed=error or json.dumps(value),
                    detail=self.scenario.steady_state.title,
                    runbook=self.scenario.runbook,
                )
            )
        return out

    async def _probe(self, run: Run, probe: Probe) -> tuple[Any, str | None]:
        try:
            if probe.get is not None:
                target, path = probe.get.split(":", 1)
                client = run.erp if target == "integration" else run.admin
                path = path.replace("{account}", run.account)
                return (await client.get(path, timeout=10.0)).status_code, None
            assert probe.metric is not None
            r = await run.erp.get("/metrics", timeout=10.0)
            values = [
                v
                for name, labels, v in parse_prometheus(r.text)
                if name == probe.metric and all(labels.get(k) == x for k, x in probe.labels.items())
            ]
            return sum(values), None
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"

    async def _scrape(self, run: Run) -> list[tuple[str, dict[str, str], float]]:
        with contextlib.suppress(httpx.HTTPError):
            r = await run.erp.get("/metrics", timeout=10.0)
            if r.status_code == 200:
                return parse_prometheus(r.text)
        return []

    async def _observe(self, run: Run, orders: dict[str, OrderState]) -> inv.Observation:
        exit_code, report = await self._reconcile(run)
        dump = await self._ok(run.admin.get(f"/_sandbox/accounts/{run.account}/dump"))
        money = {m["kind"]: m["objects"] for m in dump.get("money", [])}
        erp: dict[str, dict[str, Any] | None] = {}
        placed = [m for m, st in orders.items() if st.placed or st.unsure is not None]
        for moid in placed:
            r = await run.erp.get(f"/orders/{moid}", timeout=30.0)
            erp[moid] = r.json() if r.status_code == 200 else None
        deliveries: list[dict[str, Any]] = []
        for status in ("succeeded", "failed", "dropped", "pending"):
            r = await run.admin.get(
                "/_sandbox/webhooks/deliveries",
                params={"account": run.account, "status": status, "limit": 1000},
            )
            deliveries += r.json().get("data", [])
        drift = await self._ok(run.admin.get(f"/_sandbox/accounts/{run.account}/settlement_drift"))
        return inv.Observation(
            shop_orders=placed,
            erp=erp,
            provider_orders=list(dump.get("orders", [])),
            provider_checkouts=list(dump.get("checkouts", [])),
            disputes=list(money.get("dispute", [])),
            events=list(dump.get("events", [])),
            deliveries=deliveries,
            secrets=run.secrets,
            event_log=self._event_lines(run),
            holds_open_metric=await self._holds_open(run),
            reconcile_exit=exit_code,
            findings=inv.parse_findings(report),
            drift=list(drift.get("injected", [])),
            steps=[
                {
                    "order": m,
                    "kind": k,
                    "outcome": o,
                    "erp_state": (erp.get(m) or {}).get("erp_state"),
                }
                for m, st in orders.items()
                for k, o in st.outcomes
            ]
            + [
                {
                    "order": m,
                    "kind": st.planned.steps[st.next_step].kind,
                    "outcome": "not_done",
                    "erp_state": (erp.get(m) or {}).get("erp_state"),
                }
                for m, st in orders.items()
                if st.next_step < len(st.planned.steps)
            ],
        )

    def _points(self, run: Run, shop: Shop, obs: inv.Observation) -> dict[str, list[Point]]:
        points = request_points(shop.calls, run.integration.log_lines(), self.windows)
        points["held_work_completion_s"] = [
            Point(v, {"kind": k}) for k, v in held_completions(obs, run.recovered_wall)
        ]
        points["event_to_state_ms"] = [Point(v, {"type": t}) for t, v in event_latencies(obs)]
        return points

    def _figures(
        self, run: Run, shop: Shop, orders: dict[str, OrderState], obs: inv.Observation
    ) -> dict[str, int | float | str]:
        outcomes = [o for st in orders.values() for _, o in st.outcomes]
        states: dict[str, int] = {}
        for view in obs.erp.values():
            if view:
                states[view["erp_state"]] = states.get(view["erp_state"], 0) + 1
        figures: dict[str, int | float | str] = {
            "orders_planned": len(orders),
            "orders_placed": len(obs.shop_orders),
            "shop_requests": len(shop.calls),
            "steps_done": outcomes.count(DONE),
            "steps_held": outcomes.count(HELD),
            "steps_refused": outcomes.count(REFUSED),
            "steps_errored": outcomes.count(ERROR),
            "steps_not_done": sum(len(st.planned.steps) - st.next_step for st in orders.values()),
            "provider_events": len(obs.events),
            "webhook_attempts": sum(len(d.get("attempts", [])) for d in obs.deliveries),
            "reconciliation_findings": len(obs.findings),
            "drift_injected": len(obs.drift),
            "t0": _stamp(run.t0),
            "simulated_to_wall": round(run.method_ms / 1000 / max(run.method_wall_s, 1e-3), 1),
            "settle_s": self.scenario.settle // 1000,
        }
        figures.update({f"erp_{k}": v for k, v in sorted(states.items())})
        figures["booked_amount"] = sum(p.amount for p in self.plan)
        return figures

    async def _teardown(self, run: Run) -> None:
        """Always: the account's faults and quirks cleared, the integration stopped."""
        with contextlib.suppress(httpx.HTTPError):
            await run.admin.delete("/_sandbox/faults", params={"account": run.account})
        with contextlib.suppress(httpx.HTTPError):
            await run.admin.put(f"/_sandbox/webhook_endpoints/{run.endpoint_id}/quirks", json={})
        if run.integration.managed:
            await asyncio.to_thread(run.integration.stop)
        if run.dead_port is not None:
            run.dead_port.close()
        for client in (run.admin, run.api, run.erp):
            await client.aclose()


def request_points(
    calls: list[Call], log_lines: list[dict[str, Any]], fault_windows: list[Window]
) -> dict[str, list[Point]]:
    """The shop's requests as SLO samples, joined to the ERP's access log (`request` lines) by
    correlation id: `erp_latency_ms` (the ERP's own latency), `erp_errors`, `erp_unavailable`,
    `erp_no_answer` (see `rehearsal.slos`)."""
    requests = [line for line in log_lines if line.get("event") == "request"]
    latency = {
        str(line.get("correlation_id")): float(line.get("latency_ms", 0.0)) for line in requests
    }
    # The access line's status is 0 when the endpoint raised (the server answered 500).
    answers = {str(line.get("correlation_id")): int(line.get("status") or 500) for line in requests}
    points: dict[str, list[Point]] = {
        "erp_latency_ms": [],
        "erp_errors": [],
        "erp_unavailable": [],
        "erp_no_answer": [],
    }
    for call in calls:
        tags = {"route": call.route, "phase": phase_of(call.at_ms, fault_windows)}
        # What the ERP answered, by its own access log when the shop heard nothing (the
        # answer was lost on the way back); None: the ERP never saw the request.
        answered = call.status if call.status is not None else answers.get(call.correlation_id)
        # 503 is the ERP's explicit "cannot ask the provider now, try again" (the shop does);
        # any other 5xx it answered is an error. A request the ERP never saw (the service down
        # or restarting, or the shop's own connection failing on a loaded machine) is
        # `erp_no_answer`: a figure of the environment as much as of the ERP.
        unavailable = answered == 503
        failed = answered is not None and answered >= 500 and not unavailable
        points["erp_errors"].append(Point(1.0 if failed else 0.0, tags))
        points["erp_unavailable"].append(Point(1.0 if unavailable else 0.0, tags))
        points["erp_no_answer"].append(Point(1.0 if answered is None else 0.0, tags))
        if call.status is not None:
            ms = latency.get(call.correlation_id, call.latency_ms)
            points["erp_latency_ms"].append(Point(ms, {**tags, "status": str(call.status)}))
    return points


def stalled(ended: float, progressed: float, now: float | None = None) -> bool:
    """Whether the shop's deferred steps should be given up, the account clock having reached
    the method's end at wall time `ended` and the last step taken at `progressed`."""
    now = time.monotonic() if now is None else now
    return now - max(ended, progressed) > STALL_S or now - ended > FINISH_CAP_S


def journal_digest(journal: list[dict[str, Any]]) -> str:
    """sha256 of the actions in account-clock order (their planned times, kinds, orders and
    arguments): which wall instant sent each one, and in what order concurrent steps went out,
    does not change it."""
    lines = sorted(json.dumps(entry, sort_keys=True) for entry in journal)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def tolerance_met(value: Any, tolerance: Any) -> bool:
    """CTK tolerances: a scalar must equal; [lo, hi] is an inclusive range; a longer list is
    a set of accepted values."""
    if isinstance(tolerance, list):
        if len(tolerance) == 2 and all(isinstance(t, int | float) for t in tolerance):
            return isinstance(value, int | float) and tolerance[0] <= value <= tolerance[1]
        return value in tolerance
    return bool(value == tolerance)


def held_completions(obs: inv.Observation, recovered_wall: float | None) -> list[tuple[str, float]]:
    """Per hold still open when the provider recovered: seconds from then to its resolution
    (its own resolved_at, the integration's clock)."""
    if recovered_wall is None:
        return []
    out = []
    for view in obs.erp.values():
        for hold in (view or {}).get("holds", []):
            created = _when(hold["created_at"]).timestamp()
            if created > recovered_wall:
                continue
            resolved = hold.get("resolved_at")
            if resolved is None:
                out.append((hold["kind"], float("inf")))
                continue
            done = _when(resolved).timestamp()
            if done >= recovered_wall:
                out.append((hold["kind"], done - recovered_wall))
    return out


def event_latencies(obs: inv.Observation) -> list[tuple[str, float]]:
    """Per event delivered by webhook: its first attempt (wall) -> the ERP applying it (the
    integration's provider_event log line), in ms."""
    first: dict[str, float] = {}
    for delivery in obs.deliveries:
        for attempt in delivery.get("attempts", []):
            at = _when(attempt["wall_at"]).timestamp()
            eid = delivery["event_id"]
            first[eid] = min(first.get(eid, at), at)
    out = []
    seen: set[str] = set()
    for line in obs.event_log:
        eid = str(line.get("event_id"))
        if eid in seen or eid not in first or "ts" not in line:
            continue
        seen.add(eid)
        out.append((str(line.get("type")), max(0.0, (float(line["ts"]) - first[eid]) * 1000)))
    return out


__all__ = [
    "Options",
    "Runner",
    "RunnerError",
    "event_latencies",
    "held_completions",
    "tolerance_met",
]
