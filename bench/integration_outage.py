"""The reference integration's answer time during a total provider outage.

Starts a real `sandbank serve` and a real `sandbank integration serve` on 127.0.0.1 (both
stopped by pid at the end), applies a fault preset to a fresh account (default `total-outage`:
every /v1 request 503 with Retry-After: 30; `--hang`: every /v1 request hangs; `--refuse`
stops the simulator instead, so every call is a refused connection), then places `--orders`
orders one after another through `POST /orders` and prints the status codes and the latency
percentiles the shop saw.

    .venv/bin/python bench/integration_outage.py [--orders 40] [--preset total-outage | --hang
        | --refuse]
        [--extra "--budget-ms 800"]

Bounded in count (`--orders`) and in time (`--max-seconds`, default 300). The issue's target:
p99 under 1 s, every answer 202 (held).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

ADMIN = "sbadm_bench_outage"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str], log: Path, health: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBANK_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "simulator.cli", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{args[0]} exited: {log.read_text(errors='replace')}")
        try:
            if httpx.get(health, timeout=1.0).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    stop(proc)
    sys.exit(f"{args[0]} not ready within 30 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def order(i: int) -> dict[str, object]:
    return {
        "merchant_order_id": f"SO-OUT-{i}",
        "amount": 100_000,
        "currency": "USD",
        "buyer": {"legal_name": "Acme Supply Co", "email": "ap+approve@acme.test"},
        "return_url": "https://shop.test/return",
        "cancel_url": "https://shop.test/cancel",
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--orders", type=int, default=40)
    p.add_argument("--preset", default="total-outage")
    p.add_argument("--refuse", action="store_true", help="stop the simulator (refused connects)")
    p.add_argument("--hang", action="store_true", help="every /v1 request hangs (60 s at most)")
    p.add_argument("--extra", default="", help="more `integration serve` arguments")
    p.add_argument("--max-seconds", type=float, default=300.0)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-outage-"))
    sim_port, erp_port = free_port(), free_port()
    sim_url, erp_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{erp_port}"
    sim = start(
        ["serve", "--host", "127.0.0.1", "--port", str(sim_port), "--data-dir", str(tmp / "d"),
         "--admin-token", ADMIN, "--no-demo", "--log-level", "warning"],
        tmp / "sim.log",
        f"{sim_url}/_sandbox/health",
    )  # fmt: skip
    procs = [sim]
    try:
        admin = httpx.Client(base_url=sim_url, headers={"Authorization": f"Bearer {ADMIN}"})
        r = admin.post("/_sandbox/accounts", json={"name": "bench-outage", "seed": 7})
        r.raise_for_status()
        account, key = r.json()["id"], r.json()["api_key"]
        erp = start(
            ["integration", "serve", "--host", "127.0.0.1", "--port", str(erp_port),
             "--provider-url", sim_url, "--api-key", key, "--db", str(tmp / "erp.db"),
             "--log-level", "error", *shlex.split(args.extra)],
            tmp / "erp.log",
            f"{erp_url}/metrics",
        )  # fmt: skip
        procs.append(erp)
        if args.refuse:
            stop(sim)
        elif args.hang:
            rule = {"match": {"path": "/v1/*"}, "effect": {"type": "hang", "max_ms": 60_000}}
            admin.post("/_sandbox/faults", json={"account": account, **rule}).raise_for_status()
        else:
            admin.post(
                f"/_sandbox/faults/presets/{args.preset}", json={"account": account}
            ).raise_for_status()
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        until = time.monotonic() + args.max_seconds
        with httpx.Client(base_url=erp_url, timeout=120.0) as shop:
            for i in range(args.orders):
                if time.monotonic() > until:
                    break
                t0 = time.perf_counter()
                statuses[shop.post("/orders", json=order(i)).status_code] += 1
                latencies.append(time.perf_counter() - t0)
        what = (
            "refused connections"
            if args.refuse
            else "hanging requests"
            if args.hang
            else f"preset {args.preset}"
        )
        print(f"POST /orders x{len(latencies)} during {what}: statuses {dict(statuses)}")
        print(
            "latency s: "
            f"first {latencies[0]:.3f}  p50 {percentile(latencies, 0.5):.3f}  "
            f"p99 {percentile(latencies, 0.99):.3f}  max {max(latencies):.3f}"
        )
    finally:
        for proc in reversed(procs):
            stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
