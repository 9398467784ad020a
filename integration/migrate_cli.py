"""`sandbank integration migrate`: move the open obligations from one provider to another and
prove nothing was lost or duplicated (`integration.migration`).

sandbank integration migrate --from NAME --from-url URL --from-key KEY
                             --to NAME [--to-url URL] --to-key KEY [--to-account ACCT]
                             [--admin-token TOKEN] [--dry-run] [--report-dir DIR]
                             [--concurrency N]

Exit status: 0 every invariant holds; 1 an invariant failed; 2 bad input (one line on stderr:
options, credentials, an unreachable provider before anything was written);
3 the cut-over did not finish (a provider refused or stayed down for some steps: run it again,
it resumes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from integration.adapters.migration import MIGRATABLE, Http, MigrationSide
from integration.migration import (
    EXIT_INPUT,
    MigrationFailed,
    MigrationInputError,
    Report,
    migrate,
    render_html,
    render_text,
)
from rehearsal.reports.html import CSS


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "migrate",
        help="move open obligations and tokens from one provider to another, checked",
        description="Reads provider A's full export, imports its tokens into provider B, "
        "replays the open obligations at B and releases them at A, then checks that every "
        "open obligation exists exactly once, no history is duplicated and per-buyer totals "
        "agree. Exit 0 ok, 1 an invariant failed, 2 bad input, 3 unfinished (run again).",
    )
    names = ", ".join(MIGRATABLE)
    p.add_argument(
        "--from",
        dest="source",
        required=True,
        choices=MIGRATABLE,
        help=f"the provider moved from ({names})",
    )
    p.add_argument("--from-url", required=True, help="its base URL")
    p.add_argument("--from-key", required=True, help="the merchant's API key there")
    p.add_argument(
        "--to",
        dest="target",
        required=True,
        choices=MIGRATABLE,
        help=f"the provider moved to ({names})",
    )
    p.add_argument("--to-url", help="its base URL (default: --from-url)")
    p.add_argument("--to-key", required=True, help="the merchant's API key there")
    p.add_argument("--to-account", help="the target's account id (for the token import)")
    p.add_argument(
        "--admin-token",
        default=os.environ.get("SANDBANK_ADMIN_TOKEN"),
        help="the target's admin token: token import, buyer approvals "
        "(default $SANDBANK_ADMIN_TOKEN)",
    )
    p.add_argument("--dry-run", action="store_true", help="plan and check; write nothing")
    p.add_argument(
        "--report-dir",
        type=Path,
        default=Path("migration-report"),
        help="where migration.json and migration.html go (default ./migration-report)",
    )
    p.add_argument("--concurrency", type=int, default=4, help="steps at once (default 4, 1-32)")


def _fail(message: str) -> int:
    sys.stderr.write(f"sandbank integration migrate: error: {message}\n")
    return EXIT_INPUT


def _bad_options(args: argparse.Namespace, to_url: str) -> str | None:
    """What is wrong with the options, before anything is read or written."""
    for name, url in (("--from-url", args.from_url), ("--to-url", to_url)):
        if not url.startswith(("http://", "https://")):
            return f"{name} must be an http(s) URL, got {url!r}"
    if not 1 <= args.concurrency <= 32:
        return f"--concurrency must be 1-32, got {args.concurrency}"
    if args.source == args.target and args.from_key == args.to_key and args.from_url == to_url:
        return "--from and --to are the same account: nothing to migrate"
    if not args.dry_run and not (args.to_account and args.admin_token):
        return "a cut-over needs --to-account and --admin-token (or use --dry-run)"
    return None


async def run_migrate(
    args: argparse.Namespace, *, transport: httpx.AsyncBaseTransport | None = None
) -> int:
    """The command (async for tests; `transport` replaces the network)."""
    to_url = args.to_url or args.from_url
    bad = _bad_options(args, to_url)
    if bad:
        return _fail(bad)
    source_http = Http(args.from_url, args.from_key, transport=transport)
    target_http = Http(to_url, args.to_key, admin_token=args.admin_token, transport=transport)
    source = MigrationSide(args.source, source_http)
    target = MigrationSide(args.target, target_http, account=args.to_account)
    try:
        if not args.dry_run:  # the target account and the admin token, before any write
            await target_http.call("GET", f"/_sandbox/accounts/{args.to_account}", admin=True)
        report = await migrate(source, target, dry_run=args.dry_run, concurrency=args.concurrency)
    except MigrationInputError as exc:
        return _fail(str(exc))
    except MigrationFailed as exc:
        if exc.status == 404 and "/_sandbox/accounts/" in str(exc):
            return _fail(f"--to-account {args.to_account}: no such account at {to_url}")
        return _fail(f"a provider cannot be read: {exc}")
    finally:
        await source_http.aclose()
        await target_http.aclose()
    report.requests = source_http.stats.requests + target_http.stats.requests
    report.retries = source_http.stats.retries + target_http.stats.retries
    try:
        write_reports(report, args.report_dir)
    except OSError as exc:
        return _fail(f"--report-dir {args.report_dir}: {exc.strerror or exc}")
    sys.stdout.write(render_text(report) + f"\n  report: {args.report_dir}/migration.html\n")
    return report.exit_code


def write_reports(report: Report, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "migration.json").write_text(json.dumps(report.to_json(), indent=1) + "\n")
    (directory / "migration.html").write_text(render_html(report, CSS), encoding="utf-8")


def main(args: argparse.Namespace) -> int:
    return asyncio.run(run_migrate(args))
