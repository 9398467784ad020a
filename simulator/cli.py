"""`sandbank`: serve the simulator, export and run the contract."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from simulator import __version__
from simulator.settings import Settings

_SETTINGS_ENV = "SANDBANK_SERVE_SETTINGS"


class _OneLineErrors(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"sandbank: error: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _OneLineErrors(prog="sandbank", description="Sandbank: a B2B credit provider simulator.")
    p.add_argument("--version", action="version", version=f"sandbank {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_OneLineErrors)

    serve = sub.add_parser(
        "serve", help="run the simulator (HTTP)", description="Run the simulator on HOST:PORT."
    )
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the database and admin token live (default .sandbank)",
    )
    serve.add_argument(
        "--db",
        default=None,
        help="database file, or :memory: for a throwaway run (default DATA_DIR/sandbank.db)",
    )
    serve.add_argument(
        "--seed",
        type=int,
        default=None,
        help="server seed: account ids and API keys (default: random, kept)",
    )
    serve.add_argument(
        "--admin-token",
        default=None,
        help="control-plane token (or SANDBANK_ADMIN_TOKEN; default: generated, kept)",
    )
    serve.add_argument(
        "--public-url",
        default=None,
        help="base URL for hosted checkout pages (default http://HOST:PORT)",
    )
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="default info",
    )
    serve.add_argument("--no-demo", action="store_true", help="do not create the demo account")
    serve.add_argument(
        "--allow-webhook-host",
        action="append",
        default=None,
        metavar="HOST",
        help="a host webhooks may be delivered to besides loopback (repeatable; '*' for any)",
    )
    serve.add_argument(
        "--faults",
        type=Path,
        default=None,
        metavar="FILE",
        help="fault rules and presets to load at start (YAML or JSON; see README)",
    )

    contract = sub.add_parser(
        "contract",
        help="run the contract suite, or export the documents",
        description="Run the schemathesis contract suite in-process, or against --base-url.",
    )
    contract.add_argument(
        "--base-url",
        default=os.environ.get("CONTRACT_BASE_URL"),
        help="test this server instead of an in-process simulator (or CONTRACT_BASE_URL)",
    )
    contract.add_argument(
        "--api-key",
        default=os.environ.get("CONTRACT_API_KEY"),
        help="API key for --base-url (or CONTRACT_API_KEY)",
    )
    contract.add_argument(
        "--export",
        action="store_true",
        help="write contracts/openapi.yaml and contracts/sandbox.yaml from the code",
    )
    contract.add_argument(
        "--check",
        action="store_true",
        help="exit non-zero if the committed documents differ from the code",
    )

    webhooks = sub.add_parser(
        "webhooks", help="webhook tools", description="Tools for your webhook receiver."
    )
    webhooks_sub = webhooks.add_subparsers(
        dest="webhooks_command", metavar="COMMAND", required=True, parser_class=_OneLineErrors
    )
    check = webhooks_sub.add_parser(
        "check",
        help="test your webhook receiver",
        description="Send your receiver valid, duplicate, forged, stale, reordered, unknown-type "
        "and oversized webhooks (Standard Webhooks, signed with --secret) and print what it did "
        "against what it must do. Exit status 1 when any case fails.",
    )
    check.add_argument("--url", required=True, help="your receiver's endpoint (http or https)")
    check.add_argument("--secret", required=True, help="the endpoint's signing secret (whsec_...)")
    check.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for each answer (default 10)"
    )

    integration = sub.add_parser(
        "integration",
        help="the reference integration (serve, reconcile)",
        description="The reference integration's commands: see `sandbank integration --help`.",
        add_help=False,
    )
    integration.add_argument("integration_argv", nargs=argparse.REMAINDER)
    return p


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("sandbank")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def _factory() -> Any:
    """Worker entry point for --workers > 1 (settings travel in the environment)."""
    from simulator.app import create_app

    raw = json.loads(os.environ[_SETTINGS_ENV])
    raw["data_dir"] = Path(raw["data_dir"])
    raw["fault_rules"] = tuple(raw.get("fault_rules", ()))
    raw["webhook_allowed_hosts"] = tuple(raw.get("webhook_allowed_hosts", ()))
    settings = Settings(**raw)
    _configure_logging(settings.log_level)
    return create_app(settings)


def uvicorn_options(host: str, port: int) -> dict[str, Any]:
    """How uvicorn runs the simulator (bench/bare_app.py serves its ceiling with the same).

    uvloop and httptools come with uvicorn[standard]; "auto" picks them and falls back to
    asyncio and h11 where they are missing. Our own access log replaces uvicorn's.
    """
    return {
        "host": host,
        "port": port,
        "loop": "auto",
        "http": "auto",
        "log_level": "warning",
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": 5,
    }


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from simulator.app import create_app, demo_account

    if args.workers < 1:
        raise SystemExit("sandbank: error: --workers must be at least 1")
    if args.workers > 1 and args.db == ":memory:":
        raise SystemExit("sandbank: error: --db :memory: cannot be shared by several workers")
    fault_rules: tuple[Any, ...] = ()
    if args.faults is not None:
        from simulator.faults.files import FaultFileError, load

        try:
            fault_rules = load(args.faults)
        except FaultFileError as exc:
            raise SystemExit(f"sandbank: error: {exc}") from None
    settings = Settings.from_env(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        db=args.db,
        seed=args.seed,
        admin_token=args.admin_token,
        public_url=args.public_url,
        log_level=args.log_level,
        demo_account=not args.no_demo,
        fault_rules=fault_rules,
        webhook_allowed_hosts=tuple(args.allow_webhook_host) if args.allow_webhook_host else None,
        # On a database file, webhooks go out from a process of their own (not the API's loop).
        webhook_process=args.db != ":memory:",
    )
    _configure_logging(settings.log_level)
    app = create_app(settings)  # also migrates the database and creates the demo account once
    demo = demo_account(app)
    print(f"Sandbank {__version__} on {settings.base_url}", flush=True)
    print(f"  contract:    {settings.base_url}/openapi.yaml", flush=True)
    if demo is not None:
        print(f"  demo account {demo.id}  API key: {demo.api_key}", flush=True)
    print(f"  admin token: {app.state.admin_token}", flush=True)
    print(f"  data:        {settings.db_path}", flush=True)
    if fault_rules:
        print(f"  faults:      {len(fault_rules)} rules from {args.faults}", flush=True)
    from simulator.faults.sockets import protocol_class

    # The same server, with each connection's socket reachable by socket-level faults.
    common = {**uvicorn_options(settings.host, settings.port), "http": protocol_class()}
    app.state.dispatcher.release_leases()  # the only dispatcher: old leases are a crash's
    if settings.webhook_process:
        from simulator.webhooks import worker

        worker.start(settings)
    if args.workers == 1:
        uvicorn.run(app, **common)
        return 0
    app.state.store.close()
    os.environ[_SETTINGS_ENV] = json.dumps(
        {
            **{
                k: getattr(settings, k)
                for k in ("host", "port", "db", "seed", "public_url", "log_level", "demo_account")
            },
            "fault_rules": list(fault_rules),
            "webhook_allowed_hosts": list(settings.webhook_allowed_hosts),
            "webhook_process": settings.webhook_process,
            "data_dir": str(settings.data_dir),
            "admin_token": app.state.admin_token,
        }
    )
    uvicorn.run("simulator.cli:_factory", factory=True, workers=args.workers, **common)
    return 0


def contract(args: argparse.Namespace) -> int:
    import yaml

    import contracts
    from simulator.api.docs import provider_document, sandbox_document

    docs = {contracts.PROVIDER: provider_document(), contracts.SANDBOX: sandbox_document()}
    if args.export or args.check:
        stale = []
        for path, doc in docs.items():
            text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
            if args.export:
                path.write_text(text)
                print(f"wrote {path}")
            elif not path.exists() or path.read_text() != text:
                stale.append(path.name)
        if stale:
            print(
                f"sandbank: error: {', '.join(stale)} differ from the code; "
                "run 'sandbank contract --export'",
                file=sys.stderr,
            )
            return 1
        return 0
    env = dict(os.environ)
    if args.base_url:
        env["CONTRACT_BASE_URL"] = args.base_url
    if args.api_key:
        env["CONTRACT_API_KEY"] = args.api_key
    suite = Path(contracts.__file__).parent / "suite"
    cmd = [sys.executable, "-m", "pytest", str(suite), "-p", "no:cacheprovider", "-q"]
    return subprocess.call(cmd, env=env)  # noqa: S603 - our own interpreter and suite


def webhooks_check(args: argparse.Namespace) -> int:
    try:
        from simulator.webhooks import check
    except ModuleNotFoundError as exc:  # httpx: `pip install httpx` where it is missing
        raise SystemExit(
            f"sandbank: error: webhooks check needs {exc.name} (pip install it)"
        ) from None
    try:
        results = check.run_battery(args.url, args.secret, timeout=args.timeout)
    except ValueError as exc:
        print(f"sandbank: error: {exc}", file=sys.stderr)
        return 2
    print(f"Checking the webhook receiver at {args.url}")
    print(check.render(results), end="")
    return 0 if all(r.passed for r in results) else 1


def integration(argv: list[str]) -> int:
    try:
        from integration import cli
    except ModuleNotFoundError as exc:
        raise SystemExit(
            f"sandbank: error: integration needs {exc.name} (pip install it)"
        ) from None
    return cli.main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["integration"]:  # its own parser owns everything after the word
        return integration(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if args.command == "contract":
        return contract(args)
    if args.command == "webhooks":
        return webhooks_check(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
