"""`make bench`: the simulator against the ceiling of its own server stack, on 127.0.0.1.

Starts `sandbank serve` (one worker, a real database file in a temporary data dir) and
bench/bare_app.py (a pure ASGI app answering fixed JSON under the same uvicorn settings), drives
both with the same bounded wrk workload (POST /v1/checkouts with a valid body for a buyer created
beforehand; GET /v1/orders/{id} for an order created and approved beforehand) and prints req/s,
p50/p99 latency, the error counts and the ratios to the ceiling.

Then, against the same simulator process, the cost of fault injection: the same GET and POST with
0 and with 20 loaded rules that do not match them (interleaved rounds, best of each, target: at most
5 % slower; the server's CPU time per request is printed too, as other load on the machine disturbs
it less than req/s), and GET with 500 ms of latency injected on every request under 500
connections for at least 10 s (target: at least 800 req/s of the theoretical 1,000; injected delays
must never block the server).

Then webhooks, against a fresh simulator and bench/webhook_receiver.py (a bare ASGI receiver
answering 204 and recording each delivery's webhook-id and arrival time; it verifies a sample of
the signatures with `standardwebhooks`): commit -> first attempt latency with 200 events/s paced
by an open-loop client (p99 target < 50 ms; each event's created_at joined with its arrival), the
sustained delivery rate of a burst of at least 5,000 events made by wrk (target >= 1,000
deliveries/s, first to last arrival) and its drain time, and API req/s with webhooks on vs off
(interleaved rounds, target: at most 10 % slower).

    .venv/bin/python bench/run.py [--duration 10] [--connections 32] [--threads 1]
    .venv/bin/python bench/run.py --skip-faults    # only the scenarios without fault rules
    .venv/bin/python bench/run.py --skip-webhooks  # without the webhook scenarios
    .venv/bin/python bench/run.py --profile        # where the time goes during a POST run

Every process it starts it also stops (by pid); every wait and every load run is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import platform
import pstats
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "sbadm_bench"
STARTUP_TIMEOUT = 30.0
WARMUP_SECONDS = 1
BUYER = {
    "legal_name": "Bench Widgets LLC",
    "email": "ap+approve@bench.test",
    "annual_revenue": 900_000_000,
    "years_in_business": 9,
}


def fail(message: str) -> None:
    print(f"bench: error: {message}", file=sys.stderr)
    raise SystemExit(2)


# --- tools ----------------------------------------------------------------------------------
def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        fail("wrk is not installed and this is not root; run 'sudo apt-get install -y wrk'")
    print("bench: installing wrk (apt-get install -y wrk)", flush=True)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "timeout": 300}
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.call(["apt-get", "install", "-y", "wrk"], env=env, **quiet) != 0:  # type: ignore[arg-type]
        subprocess.call(["apt-get", "update"], env=env, **quiet)  # type: ignore[arg-type]
        subprocess.call(["apt-get", "install", "-y", "wrk"], env=env, **quiet)  # type: ignore[arg-type]
    found = shutil.which("wrk")
    if not found:
        fail("could not install wrk with apt-get; install it and run again")
    return str(found)


def find_py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- servers --------------------------------------------------------------------------------
@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    url: str

    def wait_ready(self, path: str) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                fail(f"{self.name} exited with {self.proc.returncode} before it was ready")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + path, timeout=1.0).status_code < 500:
                    return
            time.sleep(0.05)
        fail(f"{self.name} was not ready within {STARTUP_TIMEOUT:.0f}s")

    def stop(self) -> None:
        """SIGINT (uvicorn shuts down gracefully, cProfile writes its file), then SIGKILL."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


@contextlib.contextmanager
def serving(name: str, cmd: list[str], port: int, ready: str, log: Path | None) -> Iterator[Server]:
    out = log.open("wb") if log else subprocess.DEVNULL
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBANK_")}
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    server = Server(name, proc, f"http://127.0.0.1:{port}")
    try:
        server.wait_ready(ready)
        yield server
    finally:
        server.stop()
        if log:
            out.close()  # type: ignore[union-attr]


def sandbank_cmd(
    port: int, data_dir: Path, log_level: str, prefix: list[str] | None = None
) -> list[str]:
    return [
        *(prefix or [sys.executable]),
        "-m",
        "simulator.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--admin-token",
        ADMIN,
        "--seed",
        "7",
        "--log-level",
        log_level,
    ]


def bare_cmd(port: int) -> list[str]:
    return [sys.executable, str(ROOT / "bench" / "bare_app.py"), "--port", str(port)]


# --- the fixture data and the wrk scripts ---------------------------------------------------
@dataclass
class Fixture:
    account_id: str
    api_key: str
    checkout_body: dict[str, Any]
    order_id: str


def checkout_body(buyer_id: str) -> dict[str, Any]:
    return {
        "amount": 125_000,
        "merchant_order_id": "SO-BENCH",
        "buyer_id": buyer_id,
        "line_items": [{"name": "Widget", "sku": "W-1", "quantity": 5, "unit_amount": 25_000}],
        "return_url": "https://shop.test/ok",
        "cancel_url": "https://shop.test/no",
        "metadata": {"source": "bench"},
    }


def prepare(url: str) -> Fixture:
    """An account, a buyer, and an approved order, through the public APIs."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=url, timeout=10.0) as c:
        r = c.post("/_sandbox/accounts", json={"name": "bench"}, headers=admin)
        r.raise_for_status()
        key, account_id = r.json()["api_key"], r.json()["id"]
        auth = {"Authorization": f"Bearer {key}"}
        r = c.post("/v1/buyers", json=BUYER, headers=auth)
        r.raise_for_status()
        body = checkout_body(r.json()["id"])
        r = c.post("/v1/checkouts", json=body, headers=auth)
        r.raise_for_status()
        r = c.post(
            f"/_sandbox/checkouts/{r.json()['id']}/approve", json={"terms": "net30"}, headers=admin
        )
        r.raise_for_status()
        order_id = r.json()["order_id"]
        if c.get(f"/v1/orders/{order_id}", headers=auth).status_code != 200:
            fail("the prepared order cannot be read back")
    return Fixture(account_id, key, body, order_id)


DONE = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"status":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
"""

IDEMPOTENCY = r"""
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local counter = 0
local prefix = "bench-" .. os.time() .. "-"
function request()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = prefix .. tid .. "-" .. counter
  return wrk.format()
end
"""


def lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal for ASCII text


def write_scripts(tmp: Path, fx: Fixture) -> dict[str, Path]:
    auth = f'wrk.headers["Authorization"] = {lua_string("Bearer " + fx.api_key)}\n'
    post = (
        'wrk.method = "POST"\n'
        f"wrk.body = {lua_string(json.dumps(fx.checkout_body, separators=(',', ':')))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n' + auth
    )
    get = 'wrk.method = "GET"\n' + auth
    scripts = {"post": post + DONE, "post_idem": post + IDEMPOTENCY + DONE, "get": get + DONE}
    paths = {}
    for name, text in scripts.items():
        paths[name] = tmp / f"{name}.lua"
        paths[name].write_text(text)
    return paths


# --- load -----------------------------------------------------------------------------------
@dataclass
class Result:
    scenario: str
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    requests: int = 0
    cpu_us: float | None = None  # the server's CPU time per request (user + system), if known


def wrk(
    binary: str,
    url: str,
    script: Path,
    args: argparse.Namespace,
    *,
    seconds: int,
    scenario: str,
    connections: int | None = None,
    threads: int | None = None,
) -> Result:
    cmd = [
        binary,
        "-t",
        str(threads or args.threads),
        "-c",
        str(connections or args.connections),
        "-d",
        f"{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, check=False)
    found = re.search(r"^BENCH_JSON (\{.*\})$", done.stdout, re.M)
    if done.returncode != 0 or not found:
        fail(f"wrk failed on {scenario}: {done.stderr.strip() or done.stdout.strip()}")
    s = json.loads(found.group(1))  # type: ignore[union-attr]
    return Result(
        scenario,
        s["requests"] / (s["duration_us"] / 1e6),
        s["p50_us"] / 1000,
        s["p99_us"] / 1000,
        s["status"],
        s["connect"] + s["read"] + s["write"] + s["timeout"],
        s["requests"],
    )


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def measure(
    binary: str,
    url: str,
    script: Path,
    args: argparse.Namespace,
    scenario: str,
    *,
    connections: int | None = None,
    threads: int | None = None,
    seconds: int | None = None,
    warm_up: bool = True,
    cpu_of: int | None = None,
) -> Result:
    """A warm-up run, then the measured one; with `cpu_of` (the server's pid), also the server's
    CPU time per request, which other load on the machine disturbs much less than req/s."""
    load = {"connections": connections, "threads": threads}
    if warm_up:
        wrk(binary, url, script, args, seconds=WARMUP_SECONDS, scenario=scenario, **load)
    seconds = seconds or args.duration
    before = cpu_seconds(cpu_of) if cpu_of else None
    result = wrk(binary, url, script, args, seconds=seconds, scenario=scenario, **load)
    after = cpu_seconds(cpu_of) if cpu_of else None
    cpu = ""
    if before is not None and after is not None and result.requests:
        result.cpu_us = (after - before) / result.requests * 1e6
        cpu = f"  server CPU {result.cpu_us:5.0f} us/req"
    print(
        f"  {scenario:<44} {result.rps:>9,.0f} req/s  p50 {result.p50_ms:6.2f} ms"
        f"  p99 {result.p99_ms:6.2f} ms{cpu}",
        flush=True,
    )
    return result


# --- fault rules ----------------------------------------------------------------------------
NON_MATCHING = 20
LATENCY_MS = 500
LATENCY_CONNECTIONS = 500
LATENCY_TARGET = 800  # req/s; 500 connections / 0.5 s = 1,000 at best
LATENCY_MIN_SECONDS = 10
OVERHEAD_TARGET = 0.05


def non_matching_rules(account_id: str) -> list[dict[str, Any]]:
    """20 realistic rules that neither GET /v1/orders/{id} nor POST /v1/checkouts (without the
    headers named here) match: 10 for every account, then 10 for the bench account. Some get as
    far as the header check (same method, or no other condition), some have a probability, a
    window, a ramp, `times` or an attempt bound, so the rejection path is not only the cheapest."""
    shared: list[dict[str, Any]] = [
        {"match": {"operation": "createRefund"}, "effect": {"type": "status", "status": 503}},
        {
            "match": {"operation": "createCapture", "attempt": {"eq": 1}},
            "phase": "after",
            "effect": {"type": "reset"},
        },
        {"match": {"method": "DELETE"}, "effect": {"type": "status", "status": 500}},
        {"match": {"path": "/v1/buyers/*"}, "effect": {"type": "latency", "ms": 200}},
        {
            "match": {"path": "/v1/orders/{id}/captures"},
            "effect": {"type": "status", "status": 502},
        },
        {
            "name": "chaos switch",
            "match": {"header": {"X-Bench-Chaos": "on"}},
            "effect": {"type": "status", "status": 500},
        },
        {
            "match": {"operation": "approveCheckout"},
            "effect": {"type": "latency", "distribution": "lognormal", "median_ms": 3000},
        },
        {
            "match": {"method": "PATCH"},
            "probability": 0.3,
            "effect": {"type": "status", "status": 429, "retry_after_s": 2},
        },
        {
            "match": {"operation": "createPrequalification"},
            "window": {"duration": "15m"},
            "effect": {"type": "status", "status": 503, "retry_after_s": 30},
        },
        {
            "match": {"method": "GET", "path": "/v1/checkouts/{id}"},
            "probability": 0.05,
            "effect": {"type": "status", "status": 500},
        },
    ]
    own: list[dict[str, Any]] = [
        {"match": {"operation": "listOrders"}, "effect": {"type": "latency", "ms": 300}},
        {"match": {"operation": "cancelOrder"}, "effect": {"type": "status", "status": 500}},
        {
            "match": {"operation": "updateOrder"},
            "phase": "after",
            "effect": {"type": "malformed"},
        },
        {
            "match": {"operation": "getBuyer"},
            "phase": "after",
            "effect": {"type": "content_type"},
        },
        {"match": {"path": "/v1/events*"}, "effect": {"type": "status", "status": 504}},
        {
            "match": {"operation": "createBuyer", "attempt": {"gte": 2}},
            "effect": {"type": "status", "status": 503},
        },
        {
            "match": {"method": "GET", "header": {"Sandbank-Chaos": "hang"}},
            "effect": {"type": "hang", "max_ms": 1000},
        },
        {
            "match": {"operation": "listBuyers"},
            "window": {"duration": "1h"},
            "ramp": {"from": 0.0, "to": 1.0},
            "effect": {"type": "status", "status": 503},
        },
        {
            "match": {"operation": "declineCheckout"},
            "times": 3,
            "effect": {"type": "status", "status": 502},
        },
        {
            "match": {"path": "/v1/orders/{id}/refunds"},
            "phase": "after",
            "probability": 0.5,
            "effect": {"type": "truncate", "fraction": 0.3},
        },
    ]
    rules = shared + [{**r, "account": account_id} for r in own]
    assert len(rules) == NON_MATCHING
    return rules


def set_rules(url: str, rules: list[dict[str, Any]]) -> None:
    """Replace every fault rule of the server with `rules`."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=url, timeout=10.0, headers=admin) as c:
        c.delete("/_sandbox/faults").raise_for_status()
        for rule in rules:
            r = c.post("/_sandbox/faults", json=rule)
            if r.status_code != 201:
                fail(f"could not create the fault rule {rule}: {r.status_code} {r.text[:300]}")
        if len(c.get("/_sandbox/faults").json()["data"]) != len(rules):
            fail("the server does not hold the fault rules just created")


def fired(url: str) -> int:
    """How often the server's fault rules fired, all together."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    r = httpx.get(url + "/_sandbox/faults", headers=admin, timeout=10.0)
    r.raise_for_status()
    return sum(int(rule["fired"]) for rule in r.json()["data"])


@dataclass
class Comparison:
    label: str
    without: list[Result]
    with_rules: list[Result]

    @staticmethod
    def best(results: list[Result]) -> Result:
        return max(results, key=lambda r: r.rps)

    def overhead(self) -> float:
        """1 - best with rules / best without (positive: rules cost throughput)."""
        return 1 - self.best(self.with_rules).rps / self.best(self.without).rps

    def median_overhead(self) -> float:
        with_rules = statistics.median(r.rps for r in self.with_rules)
        return 1 - with_rules / statistics.median(r.rps for r in self.without)

    def median_cpu(self, loaded: bool) -> float | None:
        """The median server CPU per request of one side (None if not measured)."""
        runs = self.with_rules if loaded else self.without
        cpu = [r.cpu_us for r in runs if r.cpu_us is not None]
        return statistics.median(cpu) if cpu else None

    def cpu_overhead(self) -> float | None:
        """Median server CPU per request with rules / without, - 1 (None if not measured)."""
        without, with_rules = self.median_cpu(loaded=False), self.median_cpu(loaded=True)
        if without is None or with_rules is None:
            return None
        return with_rules / without - 1

    def row(self, loaded: bool) -> Result:
        """The best run of one side for the summary table, with the errors of all its runs."""
        runs = self.with_rules if loaded else self.without
        best = self.best(runs)
        tag = f"{NON_MATCHING} rules" if loaded else "0 rules"
        return Result(
            f"{self.label}, {tag} (best of {len(runs)})",
            best.rps,
            best.p50_ms,
            best.p99_ms,
            sum(r.non_2xx for r in runs),
            sum(r.socket_errors for r in runs),
            sum(r.requests for r in runs),
            best.cpu_us,
        )


def compare_rules(  # noqa: PLR0917 - the load, spelled out
    binary: str,
    sim_url: str,
    path: str,
    script: Path,
    args: argparse.Namespace,
    label: str,
    rules: list[dict[str, Any]],
    *,
    pid: int,
) -> Comparison:
    """The same load with no rules and with `rules`, interleaved A B B A A B ... so that drift
    (a growing database, another process) hits both; each run has its own warm-up. `pid` is
    the server's, whose CPU time per request is measured too."""
    cmp = Comparison(label, [], [])
    for n in range(args.rounds):
        order = (False, True) if n % 2 == 0 else (True, False)
        for loaded in order:
            set_rules(sim_url, rules if loaded else [])
            tag = f"{len(rules)} rules" if loaded else "0 rules"
            scenario = f"{label}, {tag} #{n + 1}"
            result = measure(binary, sim_url + path, script, args, scenario, cpu_of=pid)
            if loaded:
                if fired(sim_url):
                    fail(f"a rule meant not to match fired during '{label}'")
                cmp.with_rules.append(result)
            else:
                cmp.without.append(result)
    set_rules(sim_url, [])
    return cmp


def latency_seconds(args: argparse.Namespace) -> int:
    return max(int(args.duration), LATENCY_MIN_SECONDS)


def latency_ceiling(args: argparse.Namespace) -> float:
    """The best req/s a closed loop of N connections can show in a D-second wrk run when every
    request takes LATENCY_MS: nothing completes in the first LATENCY_MS, and the requests in
    flight when wrk stops are not counted, so N / latency x (D - latency) / D."""
    seconds, latency = latency_seconds(args), LATENCY_MS / 1000
    return int(args.latency_connections) / latency * (seconds - latency) / seconds


def latency_run(
    binary: str, sim_url: str, path: str, script: Path, args: argparse.Namespace
) -> Result:
    """Every /v1 request waits LATENCY_MS before it is processed, under LATENCY_CONNECTIONS,
    for at least LATENCY_MIN_SECONDS (see `latency_ceiling`: a 2 s run could not show more than
    750 req/s). No warm-up run: the server is warm, and a warm-up's abandoned requests would
    wake up in the middle of the measured run."""
    rule = {"match": {"path": "/v1/*"}, "effect": {"type": "latency", "ms": LATENCY_MS}}
    set_rules(sim_url, [rule])
    try:
        result = measure(
            binary,
            sim_url + path,
            script,
            args,
            f"GET, {LATENCY_MS} ms latency, {args.latency_connections} conns",
            connections=args.latency_connections,
            threads=2,
            seconds=latency_seconds(args),
            warm_up=False,
        )
        if not fired(sim_url):
            fail("the latency rule never fired")
    finally:
        set_rules(sim_url, [])
    return result


def raise_open_files(connections: int) -> bool:
    """The server and wrk each hold one descriptor per connection (and a few more); children
    inherit this process's limit, so raise the soft limit up to the hard one if needed."""
    need = 2 * connections + 100
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return True
    if hard != resource.RLIM_INFINITY and hard < need:
        print(
            f"bench: warning: the open-file limit is {soft} (hard {hard}); {connections}"
            f" connections need about {need}: run 'ulimit -n {need}' as root, or pass"
            " --latency-connections lower. Skipping the latency scenario.",
            file=sys.stderr,
            flush=True,
        )
        return False
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    print(f"bench: raised the open-file soft limit from {soft} to {need}", flush=True)
    return True


def stack() -> str:
    def has(module: str) -> bool:
        try:
            __import__(module)
        except ImportError:
            return False
        return True

    loop = "uvloop" if has("uvloop") else "asyncio"
    http = "httptools" if has("httptools") else "h11"
    return f"uvicorn {uvicorn.__version__} ({loop}, {http}), 1 worker"


def bench(args: argparse.Namespace) -> int:
    binary = ensure_wrk()
    load = (
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s (+{WARMUP_SECONDS}s warm-up)"
    )
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {stack()}; {load}")
    latency_ok = not args.skip_faults and raise_open_files(args.latency_connections)
    results: dict[str, Result] = {}
    comparisons: list[Comparison] = []
    with tempfile.TemporaryDirectory(prefix="sandbank-bench-") as name:
        tmp = Path(name)
        bare_port, sim_port = free_port(), free_port()
        with (
            serving("bare app", bare_cmd(bare_port), bare_port, "/", tmp / "bare.log") as bare,
            serving(
                "simulator",
                sandbank_cmd(sim_port, tmp / "data", "warning"),
                sim_port,
                "/_sandbox/health",
                tmp / "sim.log",
            ) as sim,
        ):
            fx = prepare(sim.url)
            scripts = write_scripts(tmp, fx)
            for key, scenario, url, script in [
                ("bare_post", "bare ASGI POST (ceiling)", bare.url + "/v1/checkouts", "post"),
                (
                    "bare_get",
                    "bare ASGI GET (ceiling)",
                    bare.url + f"/v1/orders/{fx.order_id}",
                    "get",
                ),
                ("post", "sandbank POST /v1/checkouts", sim.url + "/v1/checkouts", "post"),
                (
                    "post_idem",
                    "sandbank POST /v1/checkouts + Idempotency-Key",
                    sim.url + "/v1/checkouts",
                    "post_idem",
                ),
                (
                    "get",
                    "sandbank GET /v1/orders/{id}",
                    sim.url + f"/v1/orders/{fx.order_id}",
                    "get",
                ),
            ]:
                results[key] = measure(binary, url, scripts[script], args, scenario)
            if not args.skip_faults:
                rules = non_matching_rules(fx.account_id)
                order = f"/v1/orders/{fx.order_id}"
                print(
                    f"fault rules: 0 vs {len(rules)} non-matching, {args.rounds} interleaved"
                    " rounds each",
                    flush=True,
                )
                for label, path, script in [
                    ("GET /v1/orders/{id}", order, "get"),
                    ("POST /v1/checkouts", "/v1/checkouts", "post"),
                ]:
                    cmp = compare_rules(
                        binary, sim.url, path, scripts[script], args, label, rules, pid=sim.proc.pid
                    )
                    comparisons.append(cmp)
                    results[f"{script}_0rules"] = cmp.row(loaded=False)
                    results[f"{script}_rules"] = cmp.row(loaded=True)
                if latency_ok:
                    results["latency"] = latency_run(binary, sim.url, order, scripts["get"], args)
        # the same POST with the access log on (one JSON line per request, to /dev/null)
        info_port = free_port()
        with serving(
            "simulator (log info)",
            sandbank_cmd(info_port, tmp / "data-info", "info"),
            info_port,
            "/_sandbox/health",
            None,
        ) as sim:
            fx = prepare(sim.url)
            scripts = write_scripts(tmp, fx)
            results["post_log"] = measure(
                binary,
                sim.url + "/v1/checkouts",
                scripts["post"],
                args,
                "sandbank POST /v1/checkouts, access log on",
            )
        hooks = None if args.skip_webhooks else webhook_section(binary, tmp, args, results)
    report(results, comparisons, args, hooks)
    return 0


def report(
    results: dict[str, Result],
    comparisons: list[Comparison],
    args: argparse.Namespace,
    hooks: HookReport | None = None,
) -> None:
    print()
    print(
        f"{'scenario':<46} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'sock err':>8}"
        f" {'CPU us/req':>10}"
    )
    print("-" * 103)
    for r in results.values():
        cpu = f"{r.cpu_us:>10.0f}" if r.cpu_us is not None else f"{'':>10}"
        print(
            f"{r.scenario:<46} {r.rps:>9,.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f}"
            f" {r.non_2xx:>8} {r.socket_errors:>8} {cpu}"
        )
    print()
    post, get = results["post"], results["get"]
    bare_post, bare_get = results["bare_post"], results["bare_get"]
    print(f"ratio sandbank POST / bare POST     : {post.rps / bare_post.rps:.3f}")
    print(f"ratio sandbank GET  / bare GET      : {get.rps / bare_get.rps:.3f}")
    idem, logged = results["post_idem"], results["post_log"]
    print(f"POST with Idempotency-Key vs without : {idem.rps / post.rps - 1:+.1%} req/s")
    print(f"POST with access log (info) vs off   : {logged.rps / post.rps - 1:+.1%} req/s")
    target = 4000
    verdict = "meets" if post.rps >= target and post.rps >= 0.25 * bare_post.rps else "misses"
    print(
        f"target POST >= {target:,} req/s and >= 0.25 x ceiling ({0.25 * bare_post.rps:,.0f}):"
        f" {verdict} ({post.rps:,.0f} req/s)"
    )
    for cmp in comparisons:
        overhead = cmp.overhead()
        verdict = "meets" if overhead <= OVERHEAD_TARGET else "misses"
        without = ", ".join(f"{r.rps:,.0f}" for r in cmp.without)
        loaded = ", ".join(f"{r.rps:,.0f}" for r in cmp.with_rules)
        print(
            f"{cmp.label}: {NON_MATCHING} non-matching rules cost {overhead:+.1%} req/s"
            f" (best {Comparison.best(cmp.without).rps:,.0f} -> "
            f"{Comparison.best(cmp.with_rules).rps:,.0f}; median {cmp.median_overhead():+.1%};"
            f" runs 0 rules [{without}], {NON_MATCHING} rules [{loaded}])"
        )
        print(f"  target overhead <= {OVERHEAD_TARGET:.0%} (best req/s): {verdict}")
        cpu_cost = cmp.cpu_overhead()
        if cpu_cost is not None:
            print(
                f"  server CPU per request, median: {cmp.median_cpu(loaded=False) or 0:.0f}"
                f" -> {cmp.median_cpu(loaded=True) or 0:.0f} us ({cpu_cost:+.1%}; less"
                " disturbed by other load on the machine than req/s):"
                f" {'meets' if cpu_cost <= OVERHEAD_TARGET else 'misses'}"
            )
    latency = results.get("latency")
    if latency is not None:
        ok = latency.rps >= LATENCY_TARGET and not latency.non_2xx and not latency.socket_errors
        ceiling = latency_ceiling(args)
        print(
            f"GET with {LATENCY_MS} ms injected, {args.latency_connections} connections:"
            f" {latency.rps:,.0f} req/s in {latency_seconds(args)} s (at most {ceiling:,.0f}),"
            f" p50 {latency.p50_ms:,.0f} ms, p99 {latency.p99_ms:,.0f} ms,"
            f" {latency.non_2xx} non-2xx, {latency.socket_errors} socket errors"
        )
        print(f"  target >= {LATENCY_TARGET} req/s without errors: {'meets' if ok else 'misses'}")
    elif not args.skip_faults:
        print("the latency scenario was skipped (open-file limit); see the warning above")
    if hooks is not None:
        report_hooks(hooks)
    if any(r.non_2xx or r.socket_errors for r in results.values()):
        print("warning: some requests failed; see the non-2xx and socket error columns")


# --- webhooks -------------------------------------------------------------------------------
HOOK_RATE_TARGET = 1000  # signed deliveries/s, sustained, to a local receiver
HOOK_MIN_DELIVERIES = 5000  # the sustained rate is measured over at least this many
HOOK_BURST_RUNS = 4  # at most this many wrk runs to make HOOK_MIN_DELIVERIES events
HOOK_PACE = 200  # events/s for the latency scenario
HOOK_PACE_SECONDS = 10
HOOK_PACE_RUNS = 2  # the verdict takes the better p99: a noisy machine stalls a run now and then
HOOK_PACE_CONNECTIONS = 32
HOOK_LATENCY_TARGET_MS = 50.0  # p99, commit -> first attempt arriving at the receiver
HOOK_OVERHEAD_TARGET = 0.10  # API req/s with webhooks on vs off
HOOK_DRAIN_TIMEOUT = 180.0  # seconds to wait for a backlog to be delivered
HOOK_SAMPLE = 100  # the receiver verifies the signature of every 100th delivery


def receiver_cmd(port: int) -> list[str]:
    return [sys.executable, str(ROOT / "bench" / "webhook_receiver.py"), "--port", str(port)]


@dataclass
class HookAccount:
    """A fresh account (its clock never advanced: its `created_at` are wall-clock times), a
    buyer, the checkout body for that buyer (one `checkout.created` event per POST) and, if
    made, an endpoint for every event type pointing at the receiver."""

    fixture: Fixture
    endpoint_id: str | None
    secret: str | None


def hook_account(url: str, name: str, hook_url: str | None) -> HookAccount:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=url, timeout=10.0) as c:
        r = c.post("/_sandbox/accounts", json={"name": name}, headers=admin)
        r.raise_for_status()
        key, account_id = r.json()["api_key"], r.json()["id"]
        auth = {"Authorization": f"Bearer {key}"}
        endpoint_id = secret = None
        if hook_url is not None:
            r = c.post(
                "/v1/webhook_endpoints",
                json={"url": hook_url, "enabled_events": ["*"], "description": "bench"},
                headers=auth,
            )
            if r.status_code != 201:
                fail(f"could not create the webhook endpoint: {r.status_code} {r.text[:300]}")
            endpoint_id, secret = r.json()["id"], r.json()["secret"]
        r = c.post("/v1/buyers", json=BUYER, headers=auth)
        r.raise_for_status()
        body = checkout_body(r.json()["id"])
    return HookAccount(Fixture(account_id, key, body, ""), endpoint_id, secret)


def hook_scripts(tmp: Path, name: str, account: HookAccount) -> Path:
    folder = tmp / name
    folder.mkdir(exist_ok=True)
    return write_scripts(folder, account.fixture)["post"]


class Receiver:
    def __init__(self, url: str) -> None:
        self.url = url
        self.hook_url = url + "/hook"

    def reset(self, secret: str | None = None) -> None:
        body = {"secret": secret, "sample": HOOK_SAMPLE} if secret else {}
        httpx.post(self.url + "/reset", json=body, timeout=10.0).raise_for_status()

    def stats(self) -> dict[str, Any]:
        r = httpx.get(self.url + "/stats", timeout=30.0)
        r.raise_for_status()
        return r.json()  # type: ignore[no-any-return]

    def count(self) -> int:
        return int(self.stats()["count"])


def pending_deliveries(sim_url: str, account_id: str) -> bool:
    """Whether the account has a delivery not yet attempted (or due for a retry)."""
    r = httpx.get(
        sim_url + "/_sandbox/webhooks/deliveries",
        params={"account": account_id, "status": "pending", "limit": 1},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=30.0,
    )
    r.raise_for_status()
    return bool(r.json()["data"])


def failed_deliveries(sim_url: str, account_id: str) -> int:
    r = httpx.get(
        sim_url + "/_sandbox/webhooks/deliveries",
        params={"account": account_id, "status": "failed", "limit": 1000},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=30.0,
    )
    r.raise_for_status()
    return len(r.json()["data"])


def drain(sim_url: str, account_id: str, timeout: float = HOOK_DRAIN_TIMEOUT) -> float | None:
    """Wait (bounded) until the account has no pending delivery; the seconds it took, or None
    if the backlog was not delivered within `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not pending_deliveries(sim_url, account_id):
            return time.monotonic() - started
        time.sleep(0.1)
    return None


def event_times(
    sim_url: str, account: HookAccount, since: float, expected: int
) -> dict[str, float]:
    """event id -> created_at (unix seconds) of the account's events created since `since`,
    paging GET /v1/events (bounded: enough pages for `expected` events, and 60 s)."""
    auth = {"Authorization": f"Bearer {account.fixture.api_key}"}
    gte = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since - 1))
    params: dict[str, Any] = {"limit": 100, "created_gte": gte}
    out: dict[str, float] = {}
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=sim_url, timeout=30.0, headers=auth) as c:
        for _ in range(expected // 100 + 20):
            r = c.get("/v1/events", params=params)
            r.raise_for_status()
            page = r.json()
            for e in page["data"]:
                created = e["created_at"].replace("Z", "+00:00")
                at = datetime.fromisoformat(created).timestamp()
                if at >= since:
                    out[e["id"]] = at
            if not page["has_more"] or time.monotonic() > deadline:
                break
            params["cursor"] = page["next_cursor"]
    return out


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


@dataclass
class HookLatency:
    """Commit -> first attempt at the receiver, for the events matched by id."""

    events: int
    arrived: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def hook_latency(times: dict[str, float], arrivals: list[list[Any]]) -> HookLatency:
    first: dict[str, float] = {}
    for webhook_id, at in arrivals:
        if webhook_id in times and webhook_id not in first:
            first[webhook_id] = at
    lags = [(at - times[i]) * 1000 for i, at in first.items()]
    if not lags:
        fail("no delivery reached the receiver for the events created")
    return HookLatency(
        len(times), len(first), percentile(lags, 50), percentile(lags, 99), max(lags)
    )


@dataclass
class Burst:
    events: int  # POST /v1/checkouts answered 201 (one event each)
    deliveries: int  # requests the receiver got
    unique: int  # distinct webhook-ids among them
    rate: float  # deliveries / (last arrival - first arrival)
    rate_loaded: float  # while the API load ran
    rate_drain: float  # after the API load stopped
    load_s: float
    drain_s: float | None  # from the end of the API load to the last arrival
    api_rps: float
    latency: HookLatency
    failed: int
    verified: int
    bad: int


def hook_burst(
    binary: str,
    sim_url: str,
    receiver: Receiver,
    script: Path,
    args: argparse.Namespace,
    *,
    account: HookAccount,
) -> Burst:
    """wrk POST /v1/checkouts (one event each) until at least HOOK_MIN_DELIVERIES events exist
    (at most HOOK_BURST_RUNS runs of --duration); the dispatcher delivers them while the load
    runs and after; the receiver's arrival times give the sustained rate."""
    receiver.reset(account.secret)
    seconds = max(args.duration, 5)
    events, runs, api_rps = 0, 0, []
    started = time.time()
    while events < HOOK_MIN_DELIVERIES and runs < HOOK_BURST_RUNS:
        result = wrk(
            binary,
            sim_url + "/v1/checkouts",
            script,
            args,
            seconds=seconds,
            scenario="webhooks burst",
        )
        events += result.requests - result.non_2xx
        api_rps.append(result.rps)
        runs += 1
    load_end = time.time()
    drained = drain(sim_url, account.fixture.account_id)
    stats = receiver.stats()
    arrivals: list[list[Any]] = stats["arrivals"]
    at = sorted(a for _, a in arrivals)
    if len(at) < 2:
        fail("the receiver got fewer than 2 deliveries during the burst")
    after = [a for a in at if a > load_end]
    loaded = len(at) - len(after)
    times = event_times(sim_url, account, started, events + 1000)
    return Burst(
        events=len(times) or events,
        deliveries=len(at),
        unique=len({i for i, _ in arrivals}),
        rate=(len(at) - 1) / (at[-1] - at[0]),
        rate_loaded=loaded / max(1e-9, load_end - at[0]),
        rate_drain=len(after) / max(1e-9, at[-1] - load_end) if after else 0.0,
        load_s=load_end - started,
        drain_s=(at[-1] - load_end) if drained is not None else None,
        api_rps=statistics.mean(api_rps),
        latency=hook_latency(times, arrivals),
        failed=failed_deliveries(sim_url, account.fixture.account_id),
        verified=int(stats["verified"]),
        bad=int(stats["bad_signature"]) + int(stats["unsigned"]),
    )


@dataclass
class Paced:
    sent: int
    ok: int
    errors: int
    rate: float  # POST /v1/checkouts answered per second, as paced
    late_ms: float  # the worst lag of a scheduled send behind its time (the client's own)
    api_p99_ms: float
    latency: HookLatency
    drain_s: float | None
    verified: int
    bad: int


async def _paced_posts(url: str, account: HookAccount, rate: int, seconds: int) -> dict[str, Any]:
    """An open loop: POST number i starts at t0 + i / rate whatever the earlier ones are doing
    (at most rate x seconds requests; the whole run is bounded by seconds + 30)."""
    total = rate * seconds
    headers = {"Authorization": f"Bearer {account.fixture.api_key}"}
    body = json.dumps(account.fixture.checkout_body).encode()
    headers["Content-Type"] = "application/json"
    statuses: list[int] = []
    latencies: list[float] = []
    late = 0.0
    limits = httpx.Limits(max_connections=HOOK_PACE_CONNECTIONS)
    async with httpx.AsyncClient(base_url=url, timeout=10.0, limits=limits) as client:

        async def one() -> None:
            began = time.perf_counter()
            try:
                r = await client.post("/v1/checkouts", content=body, headers=headers)
                statuses.append(r.status_code)
            except httpx.HTTPError:
                statuses.append(0)
            latencies.append((time.perf_counter() - began) * 1000)

        tasks = []
        async with asyncio.timeout(seconds + 30):
            t0 = time.perf_counter()
            for i in range(total):
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    late = max(late, -delay * 1000)
                tasks.append(asyncio.create_task(one()))
            await asyncio.gather(*tasks)
            elapsed = time.perf_counter() - t0
    return {"statuses": statuses, "latencies": latencies, "late_ms": late, "elapsed": elapsed}


def hook_paced(sim_url: str, receiver: Receiver, account: HookAccount) -> Paced:
    receiver.reset(account.secret)
    started = time.time()
    run = asyncio.run(_paced_posts(sim_url, account, HOOK_PACE, HOOK_PACE_SECONDS))
    drained = drain(sim_url, account.fixture.account_id)
    stats = receiver.stats()
    statuses = run["statuses"]
    ok = sum(1 for s in statuses if 200 <= s < 300)
    times = event_times(sim_url, account, started, ok + 100)
    return Paced(
        sent=len(statuses),
        ok=ok,
        errors=len(statuses) - ok,
        rate=ok / run["elapsed"],
        late_ms=run["late_ms"],
        api_p99_ms=percentile(run["latencies"], 99),
        latency=hook_latency(times, stats["arrivals"]),
        drain_s=drained,
        verified=int(stats["verified"]),
        bad=int(stats["bad_signature"]) + int(stats["unsigned"]),
    )


def best_paced(runs: list[Paced]) -> Paced:
    return min(runs, key=lambda p: p.latency.p99_ms)


@dataclass
class HookComparison:
    cmp: Comparison  # `without`: webhooks off, `with_rules`: webhooks on
    backlog: list[int]  # per "on" run: events not yet delivered when wrk stopped
    drain_s: list[float | None]  # per "on" run: how long that backlog took
    cpu_with_delivery: list[float]  # per "on" run: server CPU us/req, its deliveries included


def compare_hooks(  # noqa: PLR0917 - the load, spelled out
    binary: str,
    sim_url: str,
    receiver: Receiver,
    scripts: dict[bool, Path],
    accounts: dict[bool, HookAccount],
    args: argparse.Namespace,
    *,
    pid: int,
) -> HookComparison:
    """The same wrk POST /v1/checkouts on an account without an endpoint (off) and one with an
    endpoint pointing at the receiver (on), interleaved A B B A ...; after each "on" run its
    backlog is delivered (bounded) before the next run, so no run pays for another's."""
    out = HookComparison(Comparison("POST /v1/checkouts", [], []), [], [], [])
    receiver.reset()
    for n in range(args.rounds):
        order = (False, True) if n % 2 == 0 else (True, False)
        for on in order:
            tag = "webhooks on" if on else "webhooks off"
            url = sim_url + "/v1/checkouts"
            before_cpu = cpu_seconds(pid)
            before_count = receiver.count() if on else 0
            warm = wrk(binary, url, scripts[on], args, seconds=WARMUP_SECONDS, scenario=tag)
            scenario = f"POST /v1/checkouts, {tag} #{n + 1}"
            result = measure(binary, url, scripts[on], args, scenario, warm_up=False, cpu_of=pid)
            if not on:
                out.cmp.without.append(result)
                continue
            made = warm.requests - warm.non_2xx + result.requests - result.non_2xx
            out.cmp.with_rules.append(result)
            out.backlog.append(max(0, made - (receiver.count() - before_count)))
            out.drain_s.append(drain(sim_url, accounts[True].fixture.account_id))
            after_cpu = cpu_seconds(pid)
            if before_cpu is not None and after_cpu is not None and result.requests:
                # from the warm-up to the last delivery: divide by the warm-up's requests too
                total = warm.requests + result.requests
                out.cpu_with_delivery.append((after_cpu - before_cpu) / total * 1e6)
    return out


@dataclass
class HookReport:
    paced: list[Paced]
    burst: Burst
    onoff: HookComparison


def webhook_section(
    binary: str, tmp: Path, args: argparse.Namespace, results: dict[str, Result]
) -> HookReport:
    """A fresh simulator and the local receiver: the latency at 200 events/s, the sustained
    delivery rate of a burst, then API req/s with webhooks on vs off."""
    sim_port, hook_port = free_port(), free_port()
    with (
        serving(
            "webhook receiver",
            receiver_cmd(hook_port),
            hook_port,
            "/",
            tmp / "receiver.log",
        ) as hooks,
        serving(
            "simulator (webhooks)",
            sandbank_cmd(sim_port, tmp / "data-webhooks", "warning"),
            sim_port,
            "/_sandbox/health",
            tmp / "sim-webhooks.log",
        ) as sim,
    ):
        receiver = Receiver(hooks.url)
        print(
            f"webhooks: receiver {receiver.hook_url}; {HOOK_PACE} events/s for"
            f" {HOOK_PACE_SECONDS} s, a burst of >= {HOOK_MIN_DELIVERIES:,} events, then"
            f" {args.rounds} interleaved rounds of webhooks off vs on",
            flush=True,
        )
        paced_runs = []
        for n in range(HOOK_PACE_RUNS):
            paced_account = hook_account(sim.url, f"bench-hooks-paced-{n}", receiver.hook_url)
            paced = hook_paced(sim.url, receiver, paced_account)
            paced_runs.append(paced)
            print(
                f"  {HOOK_PACE} events/s paced #{n + 1}: {paced.ok:,} events ({paced.rate:,.0f}/s),"
                f" commit -> first attempt p50 {paced.latency.p50_ms:.1f} ms p99"
                f" {paced.latency.p99_ms:.1f} ms max {paced.latency.max_ms:.1f} ms",
                flush=True,
            )
        paced = best_paced(paced_runs)
        results["hook_paced"] = Result(
            f"webhooks: {HOOK_PACE}/s, commit->arrival (best of {len(paced_runs)})",
            paced.latency.arrived / HOOK_PACE_SECONDS,
            paced.latency.p50_ms,
            paced.latency.p99_ms,
            paced.errors,
            0,
            paced.sent,
        )
        burst_account = hook_account(sim.url, "bench-hooks-burst", receiver.hook_url)
        burst = hook_burst(
            binary,
            sim.url,
            receiver,
            hook_scripts(tmp, "hooks-burst", burst_account),
            args,
            account=burst_account,
        )
        print(
            f"  burst: {burst.events:,} events in {burst.load_s:.1f} s ({burst.api_rps:,.0f}"
            f" req/s); {burst.deliveries:,} deliveries at {burst.rate:,.0f}/s (first to last;"
            f" {burst.rate_loaded:,.0f}/s under the API load, {burst.rate_drain:,.0f}/s after)",
            flush=True,
        )
        results["hook_burst"] = Result(
            f"webhooks: burst of {burst.events:,}, deliveries/s",
            burst.rate,
            burst.latency.p50_ms,
            burst.latency.p99_ms,
            burst.failed,
            0,
            burst.deliveries,
        )
        accounts = {
            False: hook_account(sim.url, "bench-hooks-off", None),
            True: hook_account(sim.url, "bench-hooks-on", receiver.hook_url),
        }
        scripts = {
            False: hook_scripts(tmp, "hooks-off", accounts[False]),
            True: hook_scripts(tmp, "hooks-on", accounts[True]),
        }
        onoff = compare_hooks(binary, sim.url, receiver, scripts, accounts, args, pid=sim.proc.pid)
        for on, runs in ((False, onoff.cmp.without), (True, onoff.cmp.with_rules)):
            best = Comparison.best(runs)
            tag = "webhooks on" if on else "webhooks off"
            results[f"hooks_{'on' if on else 'off'}"] = Result(
                f"POST /v1/checkouts, {tag} (best of {len(runs)})",
                best.rps,
                best.p50_ms,
                best.p99_ms,
                sum(r.non_2xx for r in runs),
                sum(r.socket_errors for r in runs),
                sum(r.requests for r in runs),
                best.cpu_us,
            )
    return HookReport(paced_runs, burst, onoff)


def report_hooks(hooks: HookReport) -> None:
    paced, burst, onoff = best_paced(hooks.paced), hooks.burst, hooks.onoff
    verified = sum(p.verified for p in hooks.paced) + burst.verified
    bad = sum(p.bad for p in hooks.paced) + burst.bad
    print(
        f"webhooks: {verified} sampled deliveries verified with standardwebhooks"
        f" ({bad} failed verification)"
    )
    enough = burst.deliveries >= HOOK_MIN_DELIVERIES
    ok = burst.rate >= HOOK_RATE_TARGET and enough and not bad
    drain_s = f"{burst.drain_s:.1f} s" if burst.drain_s is not None else "not within the bound"
    print(
        f"webhook deliveries/s, burst: {burst.deliveries:,} deliveries ({burst.unique:,} distinct"
        f" ids) of {burst.events:,} events at {burst.rate:,.0f}/s first to last arrival"
        f" ({burst.rate_loaded:,.0f}/s while the API load ran at {burst.api_rps:,.0f} req/s,"
        f" {burst.rate_drain:,.0f}/s after); backlog drained {drain_s} after the load stopped;"
        f" commit->arrival p50 {burst.latency.p50_ms:,.0f} ms p99 {burst.latency.p99_ms:,.0f} ms;"
        f" {burst.failed} failed"
    )
    print(
        f"  target >= {HOOK_RATE_TARGET:,} signed deliveries/s over >= {HOOK_MIN_DELIVERIES:,}:"
        f" {'meets' if ok else 'misses'}"
    )
    ok = paced.latency.p99_ms < HOOK_LATENCY_TARGET_MS and all(
        p.latency.arrived == p.latency.events and not p.errors for p in hooks.paced
    )
    p99s = ", ".join(f"{p.latency.p99_ms:.1f}" for p in hooks.paced)
    print(
        f"webhook latency at {HOOK_PACE} events/s, best of {len(hooks.paced)} runs (p99 of each:"
        f" [{p99s}] ms): {paced.ok:,} events in {HOOK_PACE_SECONDS} s"
        f" ({paced.rate:,.0f}/s, client lag <= {paced.late_ms:.0f} ms, API p99"
        f" {paced.api_p99_ms:.1f} ms), {paced.latency.arrived:,} arrived; commit -> first attempt"
        f" p50 {paced.latency.p50_ms:.1f} ms, p99 {paced.latency.p99_ms:.1f} ms, max"
        f" {paced.latency.max_ms:.1f} ms (from the event's created_at, taken just before the"
        " commit)"
    )
    print(
        f"  target p99 < {HOOK_LATENCY_TARGET_MS:.0f} ms (best run), every event delivered:"
        f" {'meets' if ok else 'misses'}"
    )
    cmp = onoff.cmp
    overhead = cmp.overhead()
    off = ", ".join(f"{r.rps:,.0f}" for r in cmp.without)
    on = ", ".join(f"{r.rps:,.0f}" for r in cmp.with_rules)
    print(
        f"POST /v1/checkouts: webhooks on cost {overhead:+.1%} req/s vs off (best"
        f" {Comparison.best(cmp.without).rps:,.0f} -> {Comparison.best(cmp.with_rules).rps:,.0f};"
        f" median {cmp.median_overhead():+.1%}; runs off [{off}], on [{on}])"
    )
    backlog = ", ".join(f"{b:,}" for b in onoff.backlog)
    drains = ", ".join(f"{d:.1f} s" if d is not None else "unbounded" for d in onoff.drain_s)
    print(f"  undelivered when each 'on' run stopped: [{backlog}], delivered after [{drains}]")
    print(
        f"  target overhead <= {HOOK_OVERHEAD_TARGET:.0%} (best req/s):"
        f" {'meets' if overhead <= HOOK_OVERHEAD_TARGET else 'misses'}"
    )
    cpu_cost = cmp.cpu_overhead()
    if cpu_cost is not None and onoff.cpu_with_delivery:
        off_cpu = cmp.median_cpu(loaded=False) or 0
        with_delivery = statistics.median(onoff.cpu_with_delivery)
        print(
            f"  server CPU per request, median: off {off_cpu:.0f} us, on {cmp.median_cpu(True):.0f}"
            f" us during the run ({cpu_cost:+.1%}), {with_delivery:.0f} us with its deliveries"
            f" ({with_delivery / off_cpu - 1:+.1%})"
        )


# --- profile --------------------------------------------------------------------------------
def _short(frame: str) -> str:
    frame = re.sub(r"\(.*?site-packages/", "(", frame)
    frame = frame.replace(f"({ROOT}/", "(")
    return re.sub(r"\(.*?/lib/python3\.\d+/", "(stdlib/", frame)


def summarize_raw(path: Path, top: int) -> None:
    """py-spy's raw (collapsed) stacks -> self time per line and inclusive time per function."""
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack_text.split(";")]
        total += count
        self_time[frames[-1]] += count
        for fn in {re.sub(r":\d+\)$", ")", f) for f in frames}:
            inclusive[fn] += count
    if not total:
        fail("the profiler took no samples")
    print(f"\n{total} samples (CPU only, idle excluded)\n\nTop {top} by self time (line):")
    for frame, n in self_time.most_common(top):
        print(f"  {n / total:6.1%}  {frame}")
    print(f"\nTop {top} by inclusive time (function):")
    skip = ("<module>", "run (", "_run_once", "run_forever", "run_until_complete", "main (")
    shown = 0
    for frame, n in inclusive.most_common():
        if frame.startswith(skip):
            continue
        print(f"  {n / total:6.1%}  {frame}")
        shown += 1
        if shown == top:
            break


def profile(args: argparse.Namespace) -> int:
    binary = ensure_wrk()
    tool = args.profiler
    spy = find_py_spy()
    if tool == "auto":
        tool = "py-spy" if spy else "cprofile"
    if tool == "py-spy" and not spy:
        fail("py-spy is not installed; '.venv/bin/pip install py-spy' or use --profiler cprofile")
    with tempfile.TemporaryDirectory(prefix="sandbank-profile-") as name:
        tmp = Path(name)
        port = free_port()
        stats = tmp / "cprofile.out"
        prefix = (
            [sys.executable, "-m", "cProfile", "-o", str(stats)] if tool == "cprofile" else None
        )
        cmd = sandbank_cmd(port, tmp / "data", "warning", prefix)
        print(f"profiling POST /v1/checkouts with {tool} for {args.duration}s", flush=True)
        with serving("simulator", cmd, port, "/_sandbox/health", tmp / "sim.log") as sim:
            fx = prepare(sim.url)
            scripts = write_scripts(tmp, fx)
            url = sim.url + "/v1/checkouts"
            wrk(binary, url, scripts["post"], args, seconds=WARMUP_SECONDS, scenario="warm-up")
            if tool == "py-spy":
                raw = tmp / "py-spy.txt"
                spy_cmd = [str(spy), "record", "--pid", str(sim.proc.pid), "--rate", "250"]
                spy_cmd += ["--duration", str(args.duration), "--format", "raw", "-o", str(raw)]
                sampler = subprocess.Popen(
                    spy_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                )
                try:
                    result = wrk(
                        binary,
                        url,
                        scripts["post"],
                        args,
                        seconds=args.duration,
                        scenario="profiled",
                    )
                    _, err = sampler.communicate(timeout=args.duration + 30)
                finally:
                    if sampler.poll() is None:
                        sampler.kill()
                        sampler.wait(timeout=10)
                if sampler.returncode != 0 or not raw.exists():
                    fail(f"py-spy failed: {err.decode(errors='replace').strip()[-300:]}")
            else:
                result = wrk(
                    binary, url, scripts["post"], args, seconds=args.duration, scenario="profiled"
                )
        print(f"under the profiler: {result.rps:,.0f} req/s, p99 {result.p99_ms:.2f} ms")
        if tool == "py-spy":
            summarize_raw(raw, args.top)
        else:
            for order in ("tottime", "cumulative"):
                print(f"\nTop {args.top} by {order}:")
                pstats.Stats(str(stats)).strip_dirs().sort_stats(order).print_stats(args.top)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="sandbank vs a bare ASGI ceiling, with wrk")
    p.add_argument("--duration", type=int, default=10, help="seconds per load run (default 10)")
    p.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    p.add_argument("--threads", type=int, default=1, help="wrk -t (default 1)")
    p.add_argument("--skip-faults", action="store_true", help="skip the fault-rule scenarios")
    p.add_argument("--skip-webhooks", action="store_true", help="skip the webhook scenarios")
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved rounds of each A/B: 0 vs 20 rules, webhooks off vs on (default 3)",
    )
    p.add_argument(
        "--latency-connections",
        type=int,
        default=LATENCY_CONNECTIONS,
        help=f"wrk -c of the {LATENCY_MS} ms latency run (default {LATENCY_CONNECTIONS})",
    )
    p.add_argument("--profile", action="store_true", help="profile a POST run instead")
    p.add_argument("--profiler", choices=["auto", "py-spy", "cprofile"], default="auto")
    p.add_argument("--top", type=int, default=15, help="profile lines to print (default 15)")
    args = p.parse_args(argv)
    if not 1 <= args.duration <= 60:
        fail("--duration must be 1..60 seconds")
    if not 1 <= args.rounds <= 10:
        fail("--rounds must be 1..10")
    if not 1 <= args.latency_connections <= 10_000:
        fail("--latency-connections must be 1..10000")
    return profile(args) if args.profile else bench(args)


if __name__ == "__main__":
    raise SystemExit(main())
