"""`sandbank integration ...`: run the order-to-cash service, and reconcile.

sandbank integration serve --provider-url URL --api-key KEY [--db PATH] [--host H] [--port P]
                           [--webhook-secret whsec_... (repeatable)] [--resume-every S]
                           [--process-every S] [--log-level info]
sandbank integration reconcile --provider-url URL --api-key KEY [--db PATH]

`serve` logs JSON lines on stderr (`integration.logs`): one per request, one per provider
attempt, each with its correlation id. With `--webhook-secret` (the secret the provider gave
when the endpoint was registered; twice during a rotation) it receives the provider's webhooks
at `POST /webhooks/provider` into the inbox (same SQLite file) and folds them into the ERP
orders and the ledger.
"""

from __future__ import annotations

import argparse
import logging
import sys
import uuid
from pathlib import Path
from typing import Any

from integration import logs
from integration.adapters import ConfigError, ProviderAdapter, make_adapter
from integration.inbox import Inbox
from integration.ledger import Ledger
from integration.orders import OrderBook
from integration.service import OrderToCash, create_service_app
from integration.store import IntegrationStore

NO_SETTLEMENTS = "no settlements yet: the provider has no settlement API (issue: time and money)"


class _OneLineErrors(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"sandbank integration: error: {message} (see --help)\n")


def _provider_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--provider-url", required=True, help="the provider's base URL")
    p.add_argument("--api-key", required=True, help="the merchant's API key at the provider")
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
        default=30.0,
        help="seconds between runs of the resumer of held work (default 30)",
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
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="JSON log level on stderr (default info)",
    )
    reconcile = sub.add_parser("reconcile", help="reconcile the provider's settlements")
    _provider_args(reconcile)
    return p


def _adapter(args: argparse.Namespace, store: IntegrationStore) -> ProviderAdapter:
    config: dict[str, Any] = {
        "provider": "sandbank",
        "base_url": args.provider_url,
        "api_key": args.api_key,
    }
    return make_adapter(config, store=store)


def _fail(message: str) -> int:
    sys.stderr.write(f"sandbank integration: error: {message}\n")
    return 2


def serve(args: argparse.Namespace) -> int:
    if not args.provider_url.startswith(("http://", "https://")):
        return _fail(f"--provider-url must be an http(s) URL, got {args.provider_url!r}")
    if not 0 < args.port < 65536:
        return _fail(f"--port must be 1-65535, got {args.port}")
    if args.resume_every <= 0:
        return _fail("--resume-every must be positive")
    if args.process_every <= 0:
        return _fail("--process-every must be positive")
    import uvicorn  # noqa: PLC0415 - only `serve` needs it

    db = Path(args.db)
    store = IntegrationStore(db, new_key=lambda: uuid.uuid4().hex)
    try:
        adapter = _adapter(args, store)
    except ConfigError as exc:
        store.close()
        return _fail(str(exc))
    book = OrderBook(db)
    ledger = Ledger.sqlite(db)
    inbox = Inbox(db)
    try:
        app = create_service_app(
            OrderToCash(adapter, book, ledger),
            resume_every_s=float(args.resume_every),
            inbox=inbox,
            webhook_secrets=list(args.webhook_secret),
            process_every_s=float(args.process_every),
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


def reconcile(args: argparse.Namespace) -> int:
    store = IntegrationStore(":memory:", new_key=lambda: uuid.uuid4().hex)
    try:
        adapter = _adapter(args, store)
    except ConfigError as exc:
        return _fail(str(exc))
    finally:
        store.close()
    if not callable(getattr(adapter, "list_settlements", None)):
        sys.stdout.write(NO_SETTLEMENTS + "\n")
        return 0
    return _fail("settlement reconciliation through the CLI is not implemented yet")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return reconcile(args)


__all__ = ["NO_SETTLEMENTS", "main"]
