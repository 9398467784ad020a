"""What every HTTP benchmark of `make bench` shares: the servers it starts, the data it prepares
through the public APIs, and wrk, the load generator (bounded runs, figures read from a Lua
`done` hook rather than from wrk's human-readable text).

The benchmarks themselves are one module each (throughput.py, fault_overhead.py,
webhook_delivery.py); run.py parses the flags, runs them in order and prints the summary.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
import uvicorn

from rehearsal.processes import Process, Server, free_port
from simulator.cli import uvicorn_options

BENCH = Path(__file__).resolve().parent
ADMIN = "sbadm_bench"
WARMUP_SECONDS = 1
BUYER = {
    "legal_name": "Bench Widgets LLC",
    "email": "ap+approve@bench.test",
    "annual_revenue": 900_000_000,
    "years_in_business": 9,
}


def fail(message: str) -> NoReturn:
    print(f"bench: error: {message}", file=sys.stderr)
    raise SystemExit(2)


# --- tools and servers ----------------------------------------------------------------------
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


def simulator(
    data_dir: Path,
    log: Path | None,
    *,
    log_level: str = "warning",
    python: Sequence[str] = (sys.executable,),
    more: Sequence[str] = (),
) -> Server:
    """`sandbank serve` on a free port for the bench: its own data dir, the bench's admin token,
    seed 7, then `more` arguments; `log` None discards its output (the access-log run measures
    logging, not a disk)."""
    extra = ["--admin-token", ADMIN, "--seed", "7", *more]
    return Server(data_dir, free_port(), log, extra, log_level=log_level, python=python)


def bench_app(script: str, log: Path) -> Process:
    """bench/SCRIPT (bare_app.py, webhook_receiver.py: an ASGI app run by `serve_bench_app`)
    on a free port."""
    port = free_port()
    return Process(
        [sys.executable, str(BENCH / script), "--port", str(port)], port, log, name=script
    )


def serve_bench_app(app: Any, description: str, what: str) -> None:
    """The `main` of a bench ASGI app: `--port N [--host H]`, one line saying where `what`
    listens, then uvicorn with exactly the simulator's settings (`uvicorn_options`), so that
    only the app differs from `sandbank serve`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    print(f"{what} on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(app, **uvicorn_options(args.host, args.port))


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


def new_account(c: httpx.Client, name: str) -> tuple[str, str]:
    """A fresh account through the control plane: its API key and its id."""
    r = c.post("/_sandbox/accounts", json={"name": name}, headers=admin_auth())
    r.raise_for_status()
    return r.json()["api_key"], r.json()["id"]


def new_checkout_body(c: httpx.Client, key: str) -> dict[str, Any]:
    """A buyer on the account (approved: see BUYER's email), and a checkout body for it."""
    r = c.post("/v1/buyers", json=BUYER, headers=auth(key))
    r.raise_for_status()
    return checkout_body(r.json()["id"])


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def admin_auth() -> dict[str, str]:
    return auth(ADMIN)


def prepare(url: str) -> Fixture:
    """An account, a buyer, and an approved order, through the public APIs."""
    with httpx.Client(base_url=url, timeout=10.0) as c:
        key, account_id = new_account(c, "bench")
        body = new_checkout_body(c, key)
        r = c.post("/v1/checkouts", json=body, headers=auth(key))
        r.raise_for_status()
        r = c.post(
            f"/_sandbox/checkouts/{r.json()['id']}/approve",
            json={"terms": "net30"},
            headers=admin_auth(),
        )
        r.raise_for_status()
        order_id = r.json()["order_id"]
        if c.get(f"/v1/orders/{order_id}", headers=auth(key)).status_code != 200:
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
    s = json.loads(found.group(1))
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


@dataclass
class Comparison:
    """One A/B of the same load, in interleaved rounds: `without` the change under test (no
    fault rules; webhooks off) and `with_rules` (20 non-matching rules; webhooks on)."""

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

    def figures(self, without: str, with_rules: str) -> str:
        """The req/s behind the verdict: best of each side, the median overhead, every run."""
        off = ", ".join(f"{r.rps:,.0f}" for r in self.without)
        on = ", ".join(f"{r.rps:,.0f}" for r in self.with_rules)
        return (
            f"best {self.best(self.without).rps:,.0f} -> {self.best(self.with_rules).rps:,.0f};"
            f" median {self.median_overhead():+.1%}; runs {without} [{off}], {with_rules} [{on}]"
        )

    def row(self, loaded: bool, tag: str) -> Result:
        """The best run of one side for the summary table, with the errors of all its runs."""
        runs = self.with_rules if loaded else self.without
        best = self.best(runs)
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
