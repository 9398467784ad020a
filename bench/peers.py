"""`make bench`, the side-by-side table: the simulator beside the servers a load test could use
instead, under one wrk workload on 127.0.0.1, in interleaved rounds (median of each).

- sandbank serve (SQLite file store, one worker): POST /v1/checkouts with an inline buyer (a
  new buyer each time: the heaviest create) and GET /v1/checkouts/{id} — a polled checkout,
  whose answer is reused from the second GET on (`simulator/api/reads.py`)
- "sb-read": the same server with `--no-reuse-reads`, GET only: what a GET that must read
  costs (the GETs after a write, in a mixed load); `--skip-read-row` leaves it out
- bench/bare_app.py: a bare ASGI app under the same uvicorn settings (the ceiling)
- bench/starlette_app.py: a plain Starlette app with a dict (the GET baseline)
- Stoplight Prism (`prism mock contracts/openapi.yaml`): a stateless mock that validates the
  request against the same contract. Found on PATH or in ~/.cache/sandbank-bench/prism, else
  installed there from npm (bounded), else skipped with the reason printed.

Targets (issue #18): POST >= 1.5 x Prism and >= 0.3 x the bare app; GET >= 0.5 x Starlette;
p99 <= 50 ms under 64 connections (req/s: the median round's; p99: the median of the rounds').

Beside req/s, each server's CPU time per request (user + system of its process, median of the
rounds; not Prism's, whose node processes are not ours to find): req/s on a shared machine
swings with the other load, the CPU a request costs far less, so that column is what an A/B
of two trees (`--baseline-python`) should be read by.

    .venv/bin/python bench/peers.py [--duration 10] [--connections 64] [--threads 2] [--rounds 2]
                                    [--skip-prism]

Every process it starts it also stops (by pid); every wait and load run is bounded.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from harness import (
    BENCH,
    DONE,
    Result,
    admin_auth,
    auth,
    bench_app,
    ensure_wrk,
    fail,
    lua_string,
    measure,
    new_account,
    simulator,
)

from rehearsal.processes import NotReady, Process, Server, free_port

PRISM_CACHE = Path.home() / ".cache" / "sandbank-bench" / "prism"
PRISM_INSTALL_TIMEOUT = 300
POST_VS_PRISM, POST_VS_BARE, GET_VS_STARLETTE, P99_MS = 1.5, 0.3, 0.5, 50.0

INLINE_BODY = {
    "amount": 125_000,
    "currency": "USD",
    "merchant_order_id": "SO-PEERS",
    "buyer": {
        "legal_name": "Peers Widgets LLC",
        "email": "ap+approve@peers.test",
        "annual_revenue": 900_000_000,
        "years_in_business": 9,
    },
    "line_items": [{"name": "Widget", "sku": "W-1", "quantity": 5, "unit_amount": 25_000}],
    "return_url": "https://shop.test/ok",
    "cancel_url": "https://shop.test/no",
}


class AnyAnswer(Process):
    """A server that is ready once it answers anything over HTTP (Prism has no health path)."""

    def ready(self, response: httpx.Response) -> bool:
        return True


def find_prism() -> tuple[str | None, str]:
    """Prism's executable, or None and why it is skipped."""
    found = shutil.which("prism")
    cached = PRISM_CACHE / "node_modules" / ".bin" / "prism"
    if found:
        return found, ""
    if cached.exists():
        return str(cached), ""
    npm = shutil.which("npm")
    if npm is None:
        return None, "npm is not installed"
    print(f"bench: installing @stoplight/prism-cli into {PRISM_CACHE} (npm)", flush=True)
    PRISM_CACHE.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(PRISM_CACHE),
             "@stoplight/prism-cli"],
            capture_output=True, text=True, timeout=PRISM_INSTALL_TIMEOUT, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None, f"npm install did not finish in {PRISM_INSTALL_TIMEOUT}s"
    if done.returncode != 0 or not cached.exists():
        return None, f"npm install failed: {done.stderr.strip()[-200:]}"
    return str(cached), ""


@dataclass
class Peer:
    name: str
    post_url: str
    get_url: str
    headers: dict[str, str] = field(default_factory=dict)
    pid: int | None = None  # the server process, whose CPU time per request is reported
    post: list[Result] = field(default_factory=list)
    get: list[Result] = field(default_factory=list)
    get_only: bool = False  # measured on GET only (its POST is another row's)

    def median(self, kind: str) -> Result:
        runs = self.post if kind == "post" else self.get
        mid = statistics.median(r.rps for r in runs)
        return min(runs, key=lambda r: abs(r.rps - mid))

    def p99_ms(self, kind: str) -> float:
        """The median of the rounds' p99: one 10 s run's p99 is set by its worst moment on a
        shared machine (bare uvicorn's swung from 9 to 142 ms between rounds of one run)."""
        return statistics.median(r.p99_ms for r in (self.post if kind == "post" else self.get))

    def cpu_us(self, kind: str) -> float | None:
        """The median of the server's CPU time per request over the rounds: what one request
        costs, which the other load on a shared machine disturbs far less than req/s."""
        found = [r.cpu_us for r in (self.post if kind == "post" else self.get)]
        known = [c for c in found if c is not None]
        return statistics.median(known) if known else None


def scripts(tmp: Path, peer: Peer) -> tuple[Path, Path]:
    head = "".join(
        f"wrk.headers[{lua_string(k)}] = {lua_string(v)}\n" for k, v in peer.headers.items()
    )
    post = (
        'wrk.method = "POST"\n'
        f"wrk.body = {lua_string(json.dumps(INLINE_BODY, separators=(',', ':')))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n' + head + DONE
    )
    get = 'wrk.method = "GET"\n' + head + DONE
    paths = tmp / f"{peer.name}-post.lua", tmp / f"{peer.name}-get.lua"
    paths[0].write_text(post)
    paths[1].write_text(get)
    return paths


def read_server(skip: bool, tmp: Path) -> Server | _NoServer:
    """`sandbank serve --no-reuse-reads`: the "sb-read" row (every GET reads)."""
    if skip:
        return _NoServer()
    return simulator(tmp / "sb-read", tmp / "sb-read.log", more=["--no-reuse-reads"])


def baseline_server(python: str | None, tmp: Path) -> Server | _NoServer:
    """Another tree's `sandbank serve` (its interpreter, e.g. main's .venv/bin/python): the
    "before" of a change, measured in the same run as the "after"."""
    if python is None:
        return _NoServer()
    # -P: `python -m` would put the working directory first on sys.path, so run from a
    # worktree the "baseline" imported that worktree's code, not its own tree's.
    return simulator(tmp / "baseline", tmp / "baseline.log", python=[python, "-P"])


def sandbank_peer(
    url: str, name: str = "sandbank", pid: int | None = None, *, get_only: bool = False
) -> Peer:
    with httpx.Client(base_url=url, timeout=10.0) as c:
        key, _ = new_account(c, "peers")
        r = c.post("/v1/checkouts", json=INLINE_BODY, headers=auth(key))
        r.raise_for_status()
        ident = r.json()["id"]
        if c.get(f"/v1/checkouts/{ident}", headers=auth(key)).status_code != 200:
            fail("the prepared checkout cannot be read back")
        c.get("/_sandbox/accounts", headers=admin_auth()).raise_for_status()
    get_url = f"{url}/v1/checkouts/{ident}"
    return Peer(name, url + "/v1/checkouts", get_url, auth(key), pid, get_only=get_only)


def starlette_peer(url: str, pid: int | None = None) -> Peer:
    r = httpx.post(url + "/v1/checkouts", json=INLINE_BODY, timeout=10.0)
    r.raise_for_status()
    ident = r.json()["id"]
    return Peer("starlette", url + "/v1/checkouts", f"{url}/v1/checkouts/{ident}", pid=pid)


def bench(args: argparse.Namespace) -> int:
    binary = ensure_wrk()
    prism, why = (None, "--skip-prism") if args.skip_prism else find_prism()
    load = f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s"
    print(f"peers: {load}, {args.rounds} interleaved rounds, median of each", flush=True)
    with tempfile.TemporaryDirectory(prefix="sandbank-peers-") as name:
        tmp = Path(name)
        with (
            simulator(tmp / "data", tmp / "sim.log") as sim,
            bench_app("bare_app.py", tmp / "bare.log") as bare,
            any_answer(
                [sys.executable, str(BENCH / "starlette_app.py")], tmp / "starlette.log"
            ) as plain,
            prism_server(prism, tmp) as mock,
            baseline_server(args.baseline_python, tmp) as base,
            read_server(args.skip_read_row, tmp) as read,
        ):
            # Measure once the dispatcher and scheduler processes are up: each imports the
            # whole app first, seconds of CPU that would otherwise fall into the first
            # measured run (sandbank's POST of round 1 was half its later rounds).
            sim.wait_components()
            for other in (base, read):
                if other is not None:
                    other.wait_components()
            peers = [
                sandbank_peer(sim.url, pid=sim.proc.pid),
                *(
                    [sandbank_peer(read.url, "sb-read", read.proc.pid, get_only=True)]
                    if read is not None
                    else []
                ),
                *([sandbank_peer(base.url, "baseline", base.proc.pid)] if base is not None else []),
                Peer("bare", bare.url + "/v1/checkouts", bare.url + "/v1/checkouts/chk_1",
                     pid=bare.proc.pid),
                starlette_peer(plain.url, plain.proc.pid),
            ]  # fmt: skip
            if mock is not None:
                token = {"Authorization": "Bearer sk_test_prism"}
                peers.append(
                    Peer("prism", mock.url + "/v1/checkouts", mock.url + "/v1/checkouts/chk_1",
                         token)
                )  # fmt: skip
            paths = {p.name: scripts(tmp, p) for p in peers}
            for round_ in range(args.rounds):
                print(f"round {round_ + 1}", flush=True)
                for p in peers:
                    post, get = paths[p.name]
                    for kind, url, script, runs in (
                        *([] if p.get_only else [("POST", p.post_url, post, p.post)]),
                        ("GET", p.get_url, get, p.get),
                    ):
                        runs.append(measure(binary, url, script, args, f"{p.name} {kind}",
                                            cpu_of=p.pid))  # fmt: skip
    report({p.name: p for p in peers}, why if prism is None else "")
    return 0


class _NoServer:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def prism_server(prism: str | None, tmp: Path) -> AnyAnswer | _NoServer:
    if prism is None:
        return _NoServer()
    contract = str(BENCH.parent / "contracts" / "openapi.yaml")
    return any_answer([prism, "mock", contract, "-h", "127.0.0.1"], tmp / "prism.log", "-p")


def any_answer(cmd: list[str], log: Path, port_flag: str = "--port") -> AnyAnswer:
    """`cmd PORT_FLAG N` on a free port, ready once it answers at all."""
    port = free_port()
    return AnyAnswer([*cmd, port_flag, str(port)], port, log, name=Path(cmd[0]).name)


def report(peers: dict[str, Peer], skipped: str) -> None:
    print()
    print(f"{'server':<12} {'POST req/s':>11} {'p99 ms':>8} {'GET req/s':>11} {'p99 ms':>8}"
          f" {'non-2xx':>8} {'CPU us/POST':>12} {'CPU us/GET':>11}")  # fmt: skip
    print("-" * 89)
    for p in peers.values():
        get = p.median("get")
        errors = sum(r.non_2xx + r.socket_errors for r in p.post + p.get)
        cpu = [f"{c:,.0f}" if c is not None else "-" for c in (p.cpu_us("post"), p.cpu_us("get"))]
        if p.get_only:
            post_cols = f"{'-':>11} {'-':>8}"
        else:
            post_cols = f"{p.median('post').rps:>11,.0f} {p.p99_ms('post'):>8.2f}"
        print(f"{p.name:<12} {post_cols} {get.rps:>11,.0f}"
              f" {p.p99_ms('get'):>8.2f} {errors:>8} {cpu[0]:>12} {cpu[1]:>11}")  # fmt: skip
    if skipped:
        print(f"prism: skipped ({skipped})")
    for name in [n for n in ("baseline", "sandbank") if n in peers]:
        ratios(name, peers)
    if "sb-read" in peers:
        read, plain = peers["sb-read"], peers["starlette"]
        rps = read.median("get").rps / plain.median("get").rps
        ours, theirs = read.cpu_us("get"), plain.cpu_us("get")
        by_cpu = f", {theirs / ours:.2f}x by CPU per request" if ours and theirs else ""
        print(f"\nsb-read (every GET reads): GET / starlette {rps:.2f}x by req/s{by_cpu}"
              f" (what the GETs after a write see)")  # fmt: skip


def ratios(name: str, peers: dict[str, Peer]) -> None:
    sb = peers[name]
    post, get = sb.median("post"), sb.median("get")
    checks = [
        ("POST / bare", post.rps / peers["bare"].median("post").rps, POST_VS_BARE),
        ("GET / starlette", get.rps / peers["starlette"].median("get").rps, GET_VS_STARLETTE),
    ]
    if "prism" in peers:
        checks.insert(0, ("POST / prism", post.rps / peers["prism"].median("post").rps,
                          POST_VS_PRISM))  # fmt: skip
    print(f"\n{name}:")
    for label, ratio, target in checks:
        verdict = "meets" if ratio >= target else "misses"
        print(f"ratio {name} {label:<16}: {ratio:6.2f}x  (target >= {target}x: {verdict})")
    for label, kind, peer in (
        ("POST / bare", "post", "bare"),
        ("GET / starlette", "get", "starlette"),
    ):
        ours, theirs = sb.cpu_us(kind), peers[peer].cpu_us(kind)
        if ours and theirs:  # what the req/s ratio would be were both CPU-bound on one core
            print(f"ratio {name} {label:<16}: {theirs / ours:6.2f}x  by CPU per request")
    post_p99, get_p99 = sb.p99_ms("post"), sb.p99_ms("get")
    worst = max(post_p99, get_p99)
    verdict = "meets" if worst <= P99_MS else "misses"
    print(f"{name} p99 (POST, GET; median of the rounds): {post_p99:.1f} / {get_p99:.1f} ms"
          f"  (target <= {P99_MS:.0f} ms: {verdict})")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="sandbank beside bare uvicorn, Starlette and Prism")
    p.add_argument("--duration", type=int, default=10, help="seconds per load run (default 10)")
    p.add_argument("--connections", type=int, default=64, help="wrk -c (default 64)")
    p.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    p.add_argument("--skip-prism", action="store_true", help="leave Prism out")
    p.add_argument(
        "--skip-read-row", action="store_true", help="leave out sb-read (every GET reads)"
    )
    p.add_argument(
        "--baseline-python",
        help="also run `sandbank serve` with this interpreter (another tree's venv) as 'baseline'",
    )
    args = p.parse_args(argv)
    if not 1 <= args.duration <= 60:
        fail("--duration must be 1..60 seconds")
    if not 1 <= args.rounds <= 5:
        fail("--rounds must be 1..5")
    try:
        return bench(args)
    except NotReady as e:
        fail(str(e))


if __name__ == "__main__":
    sys.exit(main())
