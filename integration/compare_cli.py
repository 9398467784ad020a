"""`sandbank integration compare`: the approaches compared on one seeded book of business
(`integration.compare`), against a simulator it starts on 127.0.0.1 (or the one at
`--provider-url` with `--admin-token`). Prints the table; `--report DIR` also writes
compare.json and compare.html. Exit 0, or 2 with one line when it cannot run."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

from integration import logs
from integration.adapters import PROVIDERS
from integration.compare import CompareError, Figures, Simulator, compare, write_reports

MAX_ORDERS = 10_000
MAX_DAYS = 730


def _bounded(low: int, high: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not in {low}..{high}")
        return value

    return parse


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "compare",
        help="run one seeded book of business through every approach and compare them",
        description="The same seeded book of business (orders, buyers who pay on time, late, "
        "partly or never, refunds, disputes) through every adapter, on the simulator's "
        "virtual clock; per approach: calls per order, reconciliation discrepancies, days "
        "from shipment to cash, fees, the seller's share of the risk, support tickets.",
    )
    p.add_argument("--orders", type=_bounded(1, MAX_ORDERS), default=40, help="default 40")
    p.add_argument("--seed", type=_bounded(0, 2**31 - 1), default=7, help="default 7")
    p.add_argument(
        "--days", type=_bounded(7, MAX_DAYS), default=90, help="virtual days (default 90)"
    )
    p.add_argument(
        "--approach",
        action="append",
        choices=PROVIDERS,
        help="only these adapters (repeat; default: every one)",
    )
    p.add_argument("--report", type=Path, metavar="DIR", help="write compare.json, compare.html")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--provider-url", help="a running simulator (default: start one)")
    p.add_argument(
        "--admin-token",
        default=os.environ.get("SANDBANK_ADMIN_TOKEN"),
        help="its control plane's token (default $SANDBANK_ADMIN_TOKEN)",
    )


def run(args: argparse.Namespace) -> int:
    if args.provider_url and not args.admin_token:
        print("sandbank integration: error: --provider-url needs --admin-token", file=sys.stderr)
        return 2
    logs.configure(logging.ERROR)  # the table is the output; errors still go to stderr
    with tempfile.TemporaryDirectory(prefix="approaches-compare-") as tmp:
        work = Path(tmp)
        try:
            if args.provider_url:
                sim = Simulator(args.provider_url.rstrip("/"), args.admin_token)
                comparison = asyncio.run(_compare(sim, args, work))
            else:
                comparison = _with_own_simulator(args, work)
        except CompareError as exc:
            print(f"sandbank integration: error: {exc}", file=sys.stderr)
            return 2
    print(comparison.render_markdown() if args.markdown else comparison.render_text())
    if args.report:
        for path in write_reports(comparison, args.report):
            print(f"wrote {path}")
    return 0


async def _compare(sim: Simulator, args: argparse.Namespace, work: Path) -> Any:
    def progress(f: Figures) -> None:
        print(f"  {f.label}: done", file=sys.stderr, flush=True)

    return await compare(
        sim,
        seed=args.seed,
        orders=args.orders,
        days=args.days,
        providers=tuple(args.approach or PROVIDERS),
        workdir=work,
        on_done=progress,
    )


def _with_own_simulator(args: argparse.Namespace, work: Path) -> Any:
    from rehearsal.processes import NotReady, Server, free_port  # noqa: PLC0415 - only here

    token = "sbadm_" + secrets.token_hex(18)
    try:
        with Server(
            work / "data",
            free_port(),
            work / "simulator.log",
            ["--db", ":memory:", "--no-demo"],
            env={"SANDBANK_ADMIN_TOKEN": token},  # not on a command line others can read
        ) as server:
            return asyncio.run(_compare(Simulator(server.url, token), args, work))
    except NotReady as exc:
        raise CompareError(f"the simulator did not start: {exc.reason}") from None


__all__ = ["add_parser", "run"]
