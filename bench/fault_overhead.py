"""`make bench`, second benchmark: what fault injection costs requests it does not touch, and
whether injected delays block the server. Runs against the simulator process the throughput
benchmark used (its data and warm-up are already there).

- The same GET /v1/orders/{id} and POST /v1/checkouts with 0 and with 20 loaded rules that do
  not match them, in interleaved rounds, best of each (target: at most 5 % slower). The
  server's CPU time per request is printed too, as other load on the machine disturbs it less
  than req/s.
- GET with 500 ms of latency injected on every request under 500 connections for at least 10 s
  (target: at least 800 req/s of the theoretical 1,000; a delay must never block the server).
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path
from typing import Any

import httpx
from harness import Comparison, Fixture, Result, admin_auth, fail, measure

from rehearsal.processes import Server

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
    with httpx.Client(base_url=url, timeout=10.0, headers=admin_auth()) as c:
        c.delete("/_sandbox/faults").raise_for_status()
        for rule in rules:
            r = c.post("/_sandbox/faults", json=rule)
            if r.status_code != 201:
                fail(f"could not create the fault rule {rule}: {r.status_code} {r.text[:300]}")
        if len(c.get("/_sandbox/faults").json()["data"]) != len(rules):
            fail("the server does not hold the fault rules just created")


def fired(url: str) -> int:
    """How often the server's fault rules fired, all together."""
    r = httpx.get(url + "/_sandbox/faults", headers=admin_auth(), timeout=10.0)
    r.raise_for_status()
    return sum(int(rule["fired"]) for rule in r.json()["data"])


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


def run(
    binary: str,
    fx: Fixture,
    scripts: dict[str, Path],
    args: argparse.Namespace,
    *,
    sim: Server,
    results: dict[str, Result],
    latency: bool,
) -> list[Comparison]:
    """Both A/Bs (their rows go into `results`), then the latency run if `latency`."""
    rules = non_matching_rules(fx.account_id)
    order = f"/v1/orders/{fx.order_id}"
    print(
        f"fault rules: 0 vs {len(rules)} non-matching, {args.rounds} interleaved rounds each",
        flush=True,
    )
    comparisons = []
    for label, path, script in [
        ("GET /v1/orders/{id}", order, "get"),
        ("POST /v1/checkouts", "/v1/checkouts", "post"),
    ]:
        cmp = compare_rules(
            binary, sim.url, path, scripts[script], args, label, rules, pid=sim.proc.pid
        )
        comparisons.append(cmp)
        results[f"{script}_0rules"] = cmp.row(loaded=False, tag="0 rules")
        results[f"{script}_rules"] = cmp.row(loaded=True, tag=f"{NON_MATCHING} rules")
    if latency:
        results["latency"] = latency_run(binary, sim.url, order, scripts["get"], args)
    return comparisons


def report(comparisons: list[Comparison], latency: Result | None, args: argparse.Namespace) -> None:
    for cmp in comparisons:
        overhead = cmp.overhead()
        verdict = "meets" if overhead <= OVERHEAD_TARGET else "misses"
        print(
            f"{cmp.label}: {NON_MATCHING} non-matching rules cost {overhead:+.1%} req/s"
            f" ({cmp.figures('0 rules', f'{NON_MATCHING} rules')})"
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
    else:
        print("the latency scenario was skipped (open-file limit); see the warning above")
