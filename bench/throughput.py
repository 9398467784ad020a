"""`make bench`, first benchmark: the simulator against the ceiling of its own server stack.

bench/bare_app.py (a pure ASGI app answering fixed JSON under the simulator's uvicorn settings)
and `sandbank serve` (one worker, a real database file in a temporary data dir) under the same
bounded wrk workload: POST /v1/checkouts with a valid body for a buyer created beforehand, and
GET /v1/orders/{id} for an order created and approved beforehand. Then the simulator's POST with
an Idempotency-Key, and with the access log on (a second simulator at log level info, its
output discarded). Target: POST >= 4,000 req/s and >= 0.25 x the ceiling. Then the journal's
cost: POST and GET on two more fresh simulators, journal on and off (target: on > 0.5 x off).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness import Comparison, Fixture, Result, measure, prepare, simulator, write_scripts

from rehearsal.processes import Process, Server

TARGET = 4000  # req/s of POST /v1/checkouts
CEILING_SHARE = 0.25  # ... and at least this share of the bare app's
JOURNAL_FLOOR = 0.5  # req/s with the journal on, as a share of it off


def run(
    binary: str,
    fx: Fixture,
    scripts: dict[str, Path],
    args: argparse.Namespace,
    *,
    bare: Process,
    sim: Server,
) -> dict[str, Result]:
    """The ceiling's POST and GET, then the simulator's POST, POST + Idempotency-Key, GET."""
    order = f"/v1/orders/{fx.order_id}"
    return {
        key: measure(binary, url, scripts[script], args, scenario)
        for key, scenario, url, script in [
            ("bare_post", "bare ASGI POST (ceiling)", bare.url + "/v1/checkouts", "post"),
            ("bare_get", "bare ASGI GET (ceiling)", bare.url + order, "get"),
            ("post", "sandbank POST /v1/checkouts", sim.url + "/v1/checkouts", "post"),
            (
                "post_idem",
                "sandbank POST /v1/checkouts + Idempotency-Key",
                sim.url + "/v1/checkouts",
                "post_idem",
            ),
            ("get", "sandbank GET /v1/orders/{id}", sim.url + order, "get"),
        ]
    }


def access_log(binary: str, tmp: Path, args: argparse.Namespace) -> Result:
    """The same POST on a fresh simulator with the access log on (one JSON line per request,
    to /dev/null: the cost of logging, not of a disk)."""
    with simulator(tmp / "data-info", None, log_level="info") as sim:
        fx = prepare(sim.url)
        scripts = write_scripts(tmp, fx)
        return measure(
            binary,
            sim.url + "/v1/checkouts",
            scripts["post"],
            args,
            "sandbank POST /v1/checkouts, access log on",
        )


def journal_cost(binary: str, tmp: Path, args: argparse.Namespace) -> list[Comparison]:
    """What the request journal costs (a row stored per request, issue #16): the same POST and
    GET on two fresh simulators side by side, the journal off (`--journal-size 0`) and on (the
    default), in interleaved rounds (A B B A ...), with each server's CPU time per request."""
    with (
        simulator(tmp / "data-journal-off", None, more=["--journal-size", "0"]) as off,
        simulator(tmp / "data-journal-on", None) as on,
    ):
        ready = {}
        for journal, sim in ((False, off), (True, on)):
            fx = prepare(sim.url)
            (tmp / f"journal-{journal}").mkdir()
            ready[journal] = (sim, fx, write_scripts(tmp / f"journal-{journal}", fx))
        found = []
        for verb in ("post", "get"):
            cmp = Comparison(f"{verb.upper()} journal", [], [])
            for n in range(args.rounds):
                for journal in (False, True) if n % 2 == 0 else (True, False):
                    sim, fx, scripts = ready[journal]
                    path = "/v1/checkouts" if verb == "post" else f"/v1/orders/{fx.order_id}"
                    result = measure(
                        binary,
                        sim.url + path,
                        scripts[verb],
                        args,
                        f"{verb.upper()}, journal {'on' if journal else 'off'} #{n + 1}",
                        cpu_of=sim.proc.pid,
                    )
                    (cmp.with_rules if journal else cmp.without).append(result)
            found.append(cmp)
    return found


def report_journal(comparisons: list[Comparison]) -> None:
    for cmp in comparisons:
        ratio = cmp.best(cmp.with_rules).rps / cmp.best(cmp.without).rps
        verdict = "meets" if ratio > JOURNAL_FLOOR else "misses"
        print(
            f"{cmp.label} on / off, best req/s: {ratio:.3f} (target > {JOURNAL_FLOOR}: the"
            f" journal must not halve throughput): {verdict} ({cmp.figures('off', 'on')})"
        )
        cpu = cmp.cpu_overhead()
        if cpu is not None:
            print(
                f"  server CPU per request, median: {cmp.median_cpu(loaded=False) or 0:.0f}"
                f" -> {cmp.median_cpu(loaded=True) or 0:.0f} us ({cpu:+.1%})"
            )


def report(results: dict[str, Result]) -> None:
    post, get = results["post"], results["get"]
    bare_post, bare_get = results["bare_post"], results["bare_get"]
    print(f"ratio sandbank POST / bare POST     : {post.rps / bare_post.rps:.3f}")
    print(f"ratio sandbank GET  / bare GET      : {get.rps / bare_get.rps:.3f}")
    idem, logged = results["post_idem"], results["post_log"]
    print(f"POST with Idempotency-Key vs without : {idem.rps / post.rps - 1:+.1%} req/s")
    print(f"POST with access log (info) vs off   : {logged.rps / post.rps - 1:+.1%} req/s")
    floor = CEILING_SHARE * bare_post.rps
    verdict = "meets" if post.rps >= TARGET and post.rps >= floor else "misses"
    print(
        f"target POST >= {TARGET:,} req/s and >= {CEILING_SHARE} x ceiling ({floor:,.0f}):"
        f" {verdict} ({post.rps:,.0f} req/s)"
    )
