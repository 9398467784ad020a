"""`sandbank integration ...`: run the order-to-cash service, and reconcile.

sandbank integration serve --provider-url URL [--provider NAME] (--api-key KEY | --public-key K
                           --shared-secret S) [--db PATH] [--host H] [--port P]
                           [--webhook-secret whsec_... (repeatable)] [--resume-every S]
                           [--process-every S] [--poll-every S] [--budget-ms MS]
                           [--drive-budget-ms MS] [--breaker-failures N] [--breaker-cooldown S]
                           [--log-level info]
sandbank integration reconcile --provider-url URL --api-key KEY [--db PATH] [--since YYYY-MM-DD]
                               [--limit N] [--metrics-file PATH]
sandbank integration migrate --from NAME --from-url URL --from-key KEY --to NAME --to-key KEY
                             [--to-url URL] [--to-account ACCT] [--admin-token T] [--dry-run]
                             (integration/migrate_cli.py)

`serve` logs JSON lines on stderr (`integration.logs`): one per request, one per provider
attempt, each with its correlation id. With `--webhook-secret` (the secret the provider gave
when the endpoint was registered; twice during a rotation) it receives the provider's webhooks
at `POST /webhooks/provider` into the inbox (same SQLite file) and folds them into the ERP
orders and the ledger. The events poller reads the provider's `GET /v1/events` into the same
inbox at start and every `--poll-every` seconds (default 30; 0 turns it off), from where the
last poll stopped (the cursor is kept in the database): what no webhook brought still
arrives, and an event both delivered and polled is processed once. Without a webhook secret
the poller is the only way events arrive.

Degraded mode: every shop request's provider calls share `--budget-ms` (default 800); when the
provider has not answered by then the work is held (202) and the resumer (every
`--resume-every` seconds, default 5; each hold's calls get `--drive-budget-ms`, default 5000)
finishes it with the same idempotency key. `--breaker-failures` consecutive failures (default
3) open a family's breaker, so later calls hold at once, until `--breaker-cooldown` seconds
(default 10) have passed and one trial call may go.

`reconcile` reads the provider's latest settlements (each report's lines) and disputes, posts
the disputes, fees and payouts into the ledger of `--db` (idempotent), reconciles the report
lines against the ledger (`integration.settlements`) and prints one line per discrepancy and a
summary. Exit status: 0 nothing found, 1 discrepancies found, 2 an error (one line on stderr:
bad input, the database missing, the provider down or refusing).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from integration import compare_cli, logs, migrate_cli
from integration.adapters import (
    CREDENTIALS,
    PROVIDERS,
    TICKET_CREDENTIALS,
    TICKET_SYSTEMS,
    ConfigError,
    ProviderAdapter,
    ProviderDataError,
    gl_mapping_path,
    make_adapter,
    make_ticket_system,
    refused_api_key,
)
from integration.app import create_service_app
from integration.client import ProviderRejected, ProviderUnavailable
from integration.gl_mapping import GlMapping, GlMappingError, load
from integration.inbox import Inbox
from integration.ledger import Ledger, LedgerError
from integration.metrics import Metrics
from integration.orders import OrderBook
from integration.ordertocash import OrderToCash
from integration.settlements import run_reconciliation
from integration.store import IntegrationStore
from integration.tickets import TicketSink
from integration.wallclock import utc_now

# A reconcile run is interactive: give up on an unreachable provider within seconds.
RECONCILE_RETRY = {"max_attempts": 3, "max_total_s": 5.0}


class _OneLineErrors(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"sandbank integration: error: {message} (see --help)\n")


def _provider_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--provider-url", required=True, help="the provider's base URL")
    needs = "; ".join(f"{name}: {', '.join(CREDENTIALS[name])}" for name in PROVIDERS)
    p.add_argument(
        "--provider",
        choices=PROVIDERS,
        default=PROVIDERS[0],
        help=f"the provider's API (default {PROVIDERS[0]}); each needs its credentials ({needs})",
    )
    p.add_argument("--api-key", help="the merchant's API key at the provider")
    p.add_argument("--public-key", help="the merchant's public key at the provider")
    p.add_argument("--shared-secret", help="the merchant's shared secret at the provider")
    p.add_argument(
        "--gl-mapping",
        type=Path,
        default=None,
        help="the GL mapping YAML (default: the one of the provider's approach)",
    )
    p.add_argument(
        "--db",
        default="integration.db",
        help="SQLite file for intents, ERP orders, holds and the ledger (default integration.db)",
    )


def _parser() -> argparse.ArgumentParser:
    p = _OneLineErrors(
        prog="sandbank integration",
        description="The reference integration: order-to-cash over a credit provider.",
    )
    sub = p.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_OneLineErrors
    )
    serve = sub.add_parser("serve", help="run the order-to-cash API")
    _provider_args(serve)
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8090, help="port (default 8090)")
    serve.add_argument(
        "--resume-every",
        type=float,
        default=5.0,
        help="seconds between runs of the resumer of held work (default 5)",
    )
    serve.add_argument(
        "--budget-ms",
        type=int,
        default=800,
        help="time the provider calls of one shop request get together before the work is "
        "held (202) (default 800; 0: no budget, only the retry rules)",
    )
    serve.add_argument(
        "--drive-budget-ms",
        type=int,
        default=5000,
        help="time the provider calls of one resumed hold get together (default 5000)",
    )
    serve.add_argument(
        "--breaker-failures",
        type=int,
        default=3,
        help="consecutive provider failures that open an operation family's breaker (default 3)",
    )
    serve.add_argument(
        "--breaker-cooldown",
        type=float,
        default=10.0,
        help="seconds an open breaker refuses calls before one trial (default 10)",
    )
    serve.add_argument(
        "--webhook-secret",
        action="append",
        default=[],
        metavar="WHSEC",
        help="receive webhooks at POST /webhooks/provider signed with this secret "
        "(repeat during a rotation)",
    )
    serve.add_argument(
        "--process-every",
        type=float,
        default=1.0,
        help="seconds between runs of the event worker (default 1; also woken by deliveries)",
    )
    serve.add_argument(
        "--poll-every",
        type=float,
        default=30.0,
        help="seconds between polls of the provider's event list (default 30; 0: off)",
    )
    serve.add_argument(
        "--tickets",
        choices=TICKET_SYSTEMS,
        help="open collections and dispute tickets in this support desk (docs/tickets.md)",
    )
    serve.add_argument("--tickets-url", help="the support desk's base URL")
    serve.add_argument(
        "--tickets-user",
        help="the desk's user ("
        + ", ".join(f"{name}: {TICKET_CREDENTIALS[name][0]}" for name in TICKET_SYSTEMS)
        + ")",
    )
    serve.add_argument(
        "--tickets-secret",
        default=os.environ.get("SANDBANK_TICKETS_SECRET"),
        help="the desk's API token or password (default $SANDBANK_TICKETS_SECRET)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="JSON log level on stderr (default info)",
    )
    reconcile = sub.add_parser("reconcile", help="reconcile the provider's settlements")
    _provider_args(reconcile)
    reconcile.add_argument(
        "--since",
        type=_date,
        metavar="YYYY-MM-DD",
        help="only settlements whose batch (business day) is on or after this date",
    )
    reconcile.add_argument(
        "--limit",
        type=_positive,
        default=31,
        metavar="N",
        help="at most the N newest settlements (default 31)",
    )
    reconcile.add_argument(
        "--metrics-file",
        metavar="PATH",
        help="write the run's Prometheus metrics (mismatch rate, settlement lag, disputed "
        "ratio) to this file, e.g. for node_exporter's textfile collector",
    )
    compare_cli.add_parser(sub)
    migrate_cli.add_parser(sub)
    return p


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive integer: {text!r}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return _parser().parse_args(argv)


def _adapter(
    args: argparse.Namespace,
    store: IntegrationStore,
    *,
    retry: dict[str, Any] | None = None,
    breaker: dict[str, Any] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ProviderAdapter:
    config: dict[str, Any] = {
        "provider": args.provider,
        "base_url": args.provider_url,
        "api_key": args.api_key,
        "public_key": args.public_key,
        "shared_secret": args.shared_secret,
    }
    if retry is not None:
        config["retry"] = retry
    if breaker is not None:
        config["breaker"] = breaker
    return make_adapter(config, store=store, now=utc_now, transport=transport)


def _mapping(args: argparse.Namespace) -> GlMapping:
    """The GL mapping: `--gl-mapping`, else the provider's approach's. Raises GlMappingError."""
    return load(args.gl_mapping or gl_mapping_path(args.provider))


def _fail(message: str) -> int:
    sys.stderr.write(f"sandbank integration: error: {message}\n")
    return 2


def _refused_key(args: argparse.Namespace) -> str | None:
    """Why the provider refuses the API key, asked once at start (a bad key is one line now,
    not a traceback every poll); None when it accepts it, or cannot be asked (down or slow: the
    service starts and its degraded mode holds the work). The adapters know where to ask."""
    return refused_api_key(args.provider, args.provider_url, args.api_key)


def serve(args: argparse.Namespace) -> int:
    if not args.provider_url.startswith(("http://", "https://")):
        return _fail(f"--provider-url must be an http(s) URL, got {args.provider_url!r}")
    if not 0 < args.port < 65536:
        return _fail(f"--port must be 1-65535, got {args.port}")
    if args.resume_every <= 0:
        return _fail("--resume-every must be positive")
    if args.process_every <= 0:
        return _fail("--process-every must be positive")
    if args.poll_every < 0:
        return _fail("--poll-every must be positive (or 0: no polling)")
    if args.budget_ms < 0 or args.drive_budget_ms <= 0:
        return _fail("--budget-ms must be positive (or 0: none), --drive-budget-ms positive")
    if args.breaker_failures < 1 or args.breaker_cooldown <= 0:
        return _fail("--breaker-failures must be at least 1, --breaker-cooldown positive")
    refused = _refused_key(args)
    if refused:
        return _fail(refused)
    import uvicorn  # noqa: PLC0415 - only `serve` needs it

    db = Path(args.db)
    store = IntegrationStore(db, new_key=lambda: uuid.uuid4().hex, now=utc_now)
    try:
        adapter = _adapter(
            args,
            store,
            breaker={
                "failure_threshold": args.breaker_failures,
                "cooldown_s": args.breaker_cooldown,
            },
        )
        mapping = _mapping(args)
        tickets = _tickets(args, store, db)
    except (ConfigError, GlMappingError) as exc:
        store.close()
        return _fail(str(exc))
    book = OrderBook(db)
    ledger = Ledger.sqlite(db, mapping)
    inbox = Inbox(db, clock=utc_now)
    try:
        app = create_service_app(
            OrderToCash(
                adapter,
                book,
                ledger,
                clock=utc_now,
                drive_budget_s=args.drive_budget_ms / 1000,
                tickets=tickets,
            ),
            resume_every_s=float(args.resume_every),
            inbox=inbox,
            webhook_secrets=list(args.webhook_secret),
            process_every_s=float(args.process_every),
            poll_every_s=float(args.poll_every) or None,
            request_budget_s=args.budget_ms / 1000 or None,
        )
    except Exception as exc:  # a malformed webhook secret (standardwebhooks' own errors)
        for closable in (inbox, ledger, book, store):
            closable.close()
        return _fail(f"--webhook-secret: {exc}")
    level = getattr(logging, args.log_level.upper())
    logs.configure(level)
    try:
        # Our JSON access line replaces uvicorn's; its other records go through our handler.
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_config=None,
            log_level=level,
            access_log=False,
        )
    finally:
        inbox.close()
        ledger.close()
        book.close()
        store.close()
    return 0


def _tickets(args: argparse.Namespace, store: IntegrationStore, db: Path) -> TicketSink | None:
    """The ticket sink `--tickets` asks for (None without it)."""
    if args.tickets is None:
        return None
    if not (args.tickets_url or "").startswith(("http://", "https://")):
        raise ConfigError(f"--tickets-url must be an http(s) URL, got {args.tickets_url!r}")
    user_key, secret_key = TICKET_CREDENTIALS[args.tickets]
    config = {
        "system": args.tickets,
        "base_url": args.tickets_url,
        user_key: args.tickets_user,
        secret_key: args.tickets_secret,
    }
    try:
        system = make_ticket_system(config, store=store, now=utc_now)
    except ConfigError as exc:
        flag = "--tickets-user" if user_key in str(exc) else "--tickets-secret"
        raise ConfigError(f"{flag} is required with --tickets {args.tickets}") from exc
    return TicketSink(system, db, clock=utc_now)


async def run_reconcile(
    args: argparse.Namespace, *, transport: httpx.AsyncBaseTransport | None = None
) -> int:
    """`sandbank integration reconcile` (async, so tests can run it on their own loop;
    `transport` replaces the network, as in tests)."""
    if not args.provider_url.startswith(("http://", "https://")):
        return _fail(f"--provider-url must be an http(s) URL, got {args.provider_url!r}")
    db = Path(args.db)
    if not db.is_file():
        return _fail(f"--db {args.db}: no such file (the integration's database: run `serve`)")
    store = IntegrationStore(":memory:", new_key=lambda: uuid.uuid4().hex, now=utc_now)
    try:
        adapter = _adapter(args, store, retry=RECONCILE_RETRY, transport=transport)
    except ConfigError as exc:
        store.close()
        return _fail(str(exc))
    metrics = Metrics()
    try:
        ledger = Ledger.sqlite(db, _mapping(args))
    except (GlMappingError, LedgerError, OSError) as exc:
        store.close()
        return _fail(f"the ledger cannot be opened: {exc}")
    book = OrderBook(db)
    try:
        run = await run_reconciliation(
            adapter, ledger, book, since=args.since, limit=args.limit, metrics=metrics
        )
    except ProviderUnavailable as exc:
        return _fail(f"the provider cannot be reached at {args.provider_url}: {exc}")
    except ProviderRejected as exc:
        return _fail(f"the provider refused: {exc}")
    except (ProviderDataError, LedgerError, ValueError) as exc:
        return _fail(f"the settlements cannot be reconciled: {exc}")
    finally:
        client = getattr(adapter, "client", None)
        if client is not None:
            await client.aclose()
        book.close()
        ledger.close()
        store.close()
    sys.stdout.write(run.render_text() + "\n")
    if args.metrics_file:
        try:
            Path(args.metrics_file).write_bytes(metrics.render())
        except OSError as exc:
            return _fail(f"--metrics-file {args.metrics_file}: {exc.strerror or exc}")
    return 0 if run.ok else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if args.command == "compare":
        return compare_cli.run(args)
    if args.command == "migrate":
        return migrate_cli.main(args)
    return asyncio.run(run_reconcile(args))


__all__ = ["RECONCILE_RETRY", "main", "parse_args", "run_reconcile"]
