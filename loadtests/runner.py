"""`sandbank load run NAME`: the servers a load test needs, then Locust, headless, on loopback.

Unless URLs are given, it starts `sandbank serve` (a fresh data directory) and, for the
order-to-cash test, `sandbank integration serve` with its receiver registered as the account's
webhook endpoint, each on a free 127.0.0.1 port, as child processes it stops by pid at the
end. It creates a fresh account through the control plane, then runs Locust: one process, or a
master and `--workers N` workers (`--master` / `--worker` on loopback, `--expect-workers N`),
writing Locust's CSV (`locust_stats.csv`, `..._history`, `..._failures`, `..._exceptions`), its
HTML report (`report.html`) and the per-phase figures (`phases.json`, `phases.csv`,
`checks.json`) into `--out`. Its exit status is Locust's: the thresholds' verdict
(`loadtests/common.py`). Every wait is bounded; Locust is killed if it outlives its budget.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
# name -> (locustfile, default users, default spawn rate, default seconds)
TESTS: dict[str, tuple[str, int, float, float]] = {
    "simulator": ("simulator_mix.py", 20, 10.0, 60.0),
    "order-to-cash": ("order_to_cash.py", 10, 5.0, 60.0),
    "smoke": ("order_to_cash.py", 4, 4.0, 20.0),
}
NEEDS_SHOP = {"order-to-cash", "smoke"}
STARTUP_S = 60.0
# Beyond the four phases: the drain, the end checks' settling, Locust's own start and stop.
OVERHEAD_S = 120.0


class LoadError(Exception):
    """A run that could not start (a server did not come up, a bad option): one line."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_seconds(text: str) -> float:
    """`20`, `20s`, `2m`, `1h` -> seconds (at least 4, at most 24 h)."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        value = float(text[:-1]) * units[text[-1]] if text[-1:] in units else float(text)
    except (ValueError, IndexError):
        raise LoadError(f"--time: {text!r} is not a duration like 20, 20s, 2m") from None
    if not 4 <= value <= 86_400:
        raise LoadError("--time must be between 4 s and 24 h")
    return value


@dataclass
class Child:
    """A child process, its output in a file, stopped by its pid only."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, name: str, cmd: Sequence[str], log: Path, env: dict[str, str]) -> Child:
        with log.open("wb") as out:
            proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, env=env)
        return cls(name, proc, log)

    def wait_http(self, url: str) -> None:
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LoadError(f"{self.name} exited with {self.proc.returncode}: {self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            time.sleep(0.1)
        raise LoadError(f"{self.name} not ready within {STARTUP_S:g} s: {self.tail()}")

    def tail(self) -> str:
        text = self.log.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-3:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=15)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SANDBANK_")}


@dataclass
class Options:
    name: str
    users: int | None = None
    spawn_rate: float | None = None
    seconds: float | None = None
    workers: int = 0
    out: Path | None = None
    sim_url: str | None = None
    admin_token: str | None = None
    account: str | None = None
    api_key: str | None = None
    shop_url: str | None = None
    thresholds: str | None = None  # JSON, as SANDBANK_LOAD_THRESHOLDS


def run(opts: Options) -> int:
    if opts.name not in TESTS:
        raise LoadError(f"unknown load test {opts.name!r}; one of {', '.join(TESTS)}")
    if not 0 <= opts.workers <= 16:
        raise LoadError("--workers must be 0..16")
    locustfile, users, rate, seconds = TESTS[opts.name]
    users = opts.users if opts.users is not None else users
    rate = opts.spawn_rate if opts.spawn_rate is not None else rate
    seconds = opts.seconds if opts.seconds is not None else seconds
    if not 1 <= users <= 10_000 or not 0 < rate <= 10_000:
        raise LoadError("--users must be 1..10000 and --spawn-rate 0..10000")
    with tempfile.TemporaryDirectory(prefix="sandbank-load-") as name:
        tmp = Path(name)
        out = opts.out or Path(f"loadtest-{opts.name}-{time.strftime('%Y%m%dT%H%M%S')}")
        out.mkdir(parents=True, exist_ok=True)
        with _servers(opts, tmp, shop=opts.name in NEEDS_SHOP) as target:
            env = {
                **_clean_env(),
                "SANDBANK_LOAD_SIM_URL": target["sim_url"],
                "SANDBANK_LOAD_ADMIN_TOKEN": target["admin_token"],
                "SANDBANK_LOAD_ACCOUNT": target["account"],
                "SANDBANK_LOAD_API_KEY": target["api_key"],
                "SANDBANK_LOAD_USERS": str(users),
                "SANDBANK_LOAD_SPAWN_RATE": str(rate),
                "SANDBANK_LOAD_TIME": str(seconds),
                "SANDBANK_LOAD_OUT": str(out.resolve()),
                "SANDBANK_LOAD_RUN": target["account"].removeprefix("acct_")[:8],
            }
            if target.get("shop_url"):
                env["SANDBANK_LOAD_SHOP_URL"] = target["shop_url"]
            if opts.thresholds:
                env["SANDBANK_LOAD_THRESHOLDS"] = opts.thresholds
            for key in ("SANDBANK_LOAD_INVARIANTS",):
                if key in os.environ:
                    env[key] = os.environ[key]
            print(
                f"load {opts.name}: {users} users (+{rate:g}/s), {seconds:g} s of phases"
                f" steady/outage/storm/recovery; simulator {target['sim_url']}"
                + (f", shop {target['shop_url']}" if target.get("shop_url") else "")
                + (f"; master + {opts.workers} workers" if opts.workers else ""),
                flush=True,
            )
            return _locust(HERE / locustfile, env, out, tmp, workers=opts.workers, seconds=seconds)


@contextlib.contextmanager
def _servers(opts: Options, tmp: Path, *, shop: bool) -> Iterator[dict[str, str]]:
    children: list[Child] = []
    try:
        if opts.sim_url:
            if not (opts.admin_token and opts.account and opts.api_key):
                raise LoadError("with --sim-url, give --admin-token, --account and --api-key")
            target = {
                "sim_url": opts.sim_url.rstrip("/"),
                "admin_token": opts.admin_token,
                "account": opts.account,
                "api_key": opts.api_key,
            }
        else:
            target = _start_simulator(tmp, children)
        if shop:
            if opts.shop_url:
                target["shop_url"] = opts.shop_url.rstrip("/")
            elif opts.sim_url:
                raise LoadError("with --sim-url, also give --shop-url (the integration)")
            else:
                target["shop_url"] = _start_integration(tmp, target, children)
        yield target
    finally:
        for child in reversed(children):
            child.stop()


def _start_simulator(tmp: Path, children: list[Child]) -> dict[str, str]:
    port, token = free_port(), "sbadm_load_" + os.urandom(6).hex()
    cmd = [sys.executable, "-m", "simulator.cli", "serve", "--host", "127.0.0.1",
           "--port", str(port), "--data-dir", str(tmp / "sim"), "--admin-token", token,
           "--log-level", "warning"]  # fmt: skip
    sim = Child.start("sandbank serve", cmd, tmp / "sim.log", _clean_env())
    children.append(sim)
    url = f"http://127.0.0.1:{port}"
    sim.wait_http(url + "/_sandbox/health")
    r = httpx.post(
        url + "/_sandbox/accounts",
        json={"name": "load"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30.0,
    )
    r.raise_for_status()
    return {"sim_url": url, "admin_token": token, "account": r.json()["id"],
            "api_key": r.json()["api_key"]}  # fmt: skip


def _start_integration(tmp: Path, target: dict[str, str], children: list[Child]) -> str:
    port = free_port()
    r = httpx.post(
        target["sim_url"] + "/v1/webhook_endpoints",
        json={"url": f"http://127.0.0.1:{port}/webhooks/provider", "enabled_events": ["*"]},
        headers={"Authorization": f"Bearer {target['api_key']}"},
        timeout=30.0,
    )
    r.raise_for_status()
    cmd = [sys.executable, "-m", "simulator.cli", "integration", "serve",
           "--provider-url", target["sim_url"], "--api-key", target["api_key"],
           "--webhook-secret", r.json()["secret"], "--db", str(tmp / "integration.db"),
           "--port", str(port), "--resume-every", "1", "--process-every", "0.5",
           "--poll-every", "2", "--breaker-cooldown", "2", "--log-level", "warning"]  # fmt: skip
    shop = Child.start("integration serve", cmd, tmp / "integration.log", _clean_env())
    children.append(shop)
    url = f"http://127.0.0.1:{port}"
    shop.wait_http(url + "/status")
    return url


def _locust(
    locustfile: Path, env: dict[str, str], out: Path, tmp: Path, *, workers: int, seconds: float
) -> int:
    # --exit-code-on-error 0: fault phases fail requests on purpose; the thresholds decide.
    common = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless",
              "--exit-code-on-error", "0", "--stop-timeout", "2", "--loglevel", "WARNING",
              "--only-summary"]  # fmt: skip
    reports = ["--csv", str(out / "locust"), "--html", str(out / "report.html")]
    budget = seconds + OVERHEAD_S
    if not workers:
        return _bounded([Child.start("locust", [*common, *reports], out / "locust.log", env)],
                        budget)  # fmt: skip
    port = free_port()
    master = Child.start(
        "locust master",
        [*common, *reports, "--master", "--master-bind-host", "127.0.0.1",
         "--master-bind-port", str(port), "--expect-workers", str(workers),
         "--expect-workers-max-wait", "60"],
        out / "locust.log",
        env,
    )  # fmt: skip
    children = [master]
    for n in range(workers):
        children.append(
            Child.start(
                f"locust worker {n + 1}",
                [*common, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
                tmp / f"worker{n + 1}.log",
                env,
            )
        )
    return _bounded(children, budget)


def _bounded(children: list[Child], budget: float) -> int:
    """Wait for the first child (Locust, or its master) within `budget` seconds, print its
    output, stop every child; its exit status (124 when it had to be killed)."""
    main = children[0]
    try:
        code = main.proc.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        print(f"load: locust did not finish within {budget:g} s; stopped", file=sys.stderr)
        code = 124
    finally:
        for child in children:
            child.stop()
    sys.stdout.write(main.log.read_text(errors="replace"))
    return code
