"""`sandbank`: serve the simulator, export and run the contract."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simulator import __version__
from simulator.settings import Settings

_SETTINGS_ENV = "SANDBANK_SERVE_SETTINGS"
_PARENT_ENV = "SANDBANK_SERVE_PID"  # the workers' parent: they end when it does
_LIMIT_KEYS = (
    "header_timeout_s",
    "body_timeout_s",
    "keep_alive_s",
    "max_connections",
    "max_in_flight",
)


class _Help(argparse.HelpFormatter):
    """Room for `integration` beside its description: one line per subcommand in --help."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30)
        self._action_max_length = 17


class _OneLineErrors(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"sandbank: error: {message} (see --help)\n")


def _positive(kind: Callable[[str], float]) -> Callable[[str], Any]:
    """An argparse type: a number above zero (else a one-line usage error)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be above zero")
        return value

    parse.__name__ = kind.__name__
    return parse


def _contract_parser(sub: Any) -> None:
    """`sandbank contract`'s options (kept apart: `_parser` lists every command)."""
    contract = sub.add_parser(
        "contract",
        help="run the contract suite, or export the documents",
        description="Run the schemathesis contract suite in-process, or against --base-url. "
        "Against a server it runs in a throwaway account made with the admin token, and touches "
        "no other data; with an API key alone it refuses unless --i-know-this-writes.",
    )
    contract.add_argument(
        "--base-url",
        default=os.environ.get("CONTRACT_BASE_URL"),
        help="test this server instead of an in-process simulator (or CONTRACT_BASE_URL)",
    )
    contract.add_argument(
        "--api-key",
        default=os.environ.get("CONTRACT_API_KEY"),
        help="run in this key's account instead of a throwaway one; needs --i-know-this-writes "
        "(or CONTRACT_API_KEY)",
    )
    contract.add_argument(
        "--admin-token",
        default=os.environ.get("CONTRACT_ADMIN_TOKEN") or os.environ.get("SANDBANK_ADMIN_TOKEN"),
        help="the server's admin token: the suite makes a throwaway account with it "
        "(or CONTRACT_ADMIN_TOKEN / SANDBANK_ADMIN_TOKEN)",
    )
    contract.add_argument(
        "--i-know-this-writes",
        action="store_true",
        help="allow --api-key alone: the suite creates and refunds orders in that account",
    )
    contract.add_argument(
        "--junit", type=Path, default=None, metavar="PATH", help="also write a JUnit XML report"
    )
    contract.add_argument(
        "-k",
        dest="select",
        default=None,
        metavar="EXPR",
        help="run only the tests whose names match (pytest -k), e.g. 'examples and checkouts'",
    )
    contract.add_argument(
        "--export",
        action="store_true",
        help="write contracts/openapi.yaml, sandbox.yaml, creditkey.yaml, gateway.yaml, "
        "vcards.yaml and invoicing.yaml from the code",
    )
    contract.add_argument(
        "--check",
        action="store_true",
        help="exit non-zero if the committed documents differ from the code",
    )


def _faults_args(serve: Any) -> None:
    """`serve`'s options for fault rules and the request journal."""
    serve.add_argument(
        "--journal-size",
        type=int,
        default=None,
        metavar="N",
        help="requests the journal keeps per account (default 10000; 0: no journal, which "
        "saves a row written per request)",
    )
    serve.add_argument(
        "--wal-limit-mb",
        type=int,
        default=None,
        metavar="MB",
        help="bound on the SQLite WAL under continuous writes (default 256; 0: no bound; "
        "docs/performance.md)",
    )
    serve.add_argument(
        "--faults",
        type=Path,
        default=None,
        metavar="FILE",
        help="fault rules and presets to load at start (YAML or JSON; see README)",
    )


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
        help="database file, :memory: for a throwaway run, or a postgresql:// URL that "
        "several servers share (default DATA_DIR/sandbank.db)",
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
        "--creditkey-prefix",
        action="append",
        default=None,
        metavar="PREFIX",
        help="where Credit Key's v1 API answers (repeatable; default /app/ecomm and /ecomm)",
    )
    serve.add_argument(
        "--allow-webhook-host",
        action="append",
        default=None,
        metavar="HOST",
        help="a host webhooks may be delivered to besides loopback (repeatable; '*' for any)",
    )
    limits = serve.add_argument_group("connection limits (per worker process)")
    limits.add_argument(
        "--header-timeout",
        type=_positive(float),
        default=10.0,
        metavar="SECONDS",
        help="close a connection whose request head has not arrived within this (default 10)",
    )
    limits.add_argument(
        "--body-timeout",
        type=_positive(float),
        default=30.0,
        metavar="SECONDS",
        help="answer 408 when a body has not arrived within this after its head (default 30)",
    )
    limits.add_argument(
        "--keep-alive-timeout",
        type=_positive(float),
        default=5.0,
        metavar="SECONDS",
        help="close an idle kept-alive connection after this (default 5)",
    )
    limits.add_argument(
        "--max-connections",
        type=_positive(int),
        default=None,
        metavar="N",
        help="open connections; past it the oldest idle one is closed (default: the "
        "open-files limit less 256)",
    )
    limits.add_argument(
        "--max-in-flight",
        type=_positive(int),
        default=1024,
        metavar="N",
        help="requests in progress; past it a request gets 503 at once (default 1024)",
    )
    serve.add_argument(
        "--reports-dir",
        type=Path,
        default=None,
        help="scenario run directories the console lists (default DATA_DIR/reports)",
    )
    serve.add_argument(
        "--no-console",
        action="store_true",
        help="no /_sandbox/console even with an admin token (it is on only when a token is given)",
    )
    serve.add_argument(
        "--no-metrics",
        action="store_true",
        help="no GET /metrics and no console charts (the metrics cost a few µs per request)",
    )
    serve.add_argument(
        "--no-reuse-reads",
        action="store_true",
        help="every GET reads the database (by default a GET of an object, or a list, that "
        "did not change since the last GET answers that GET's bytes)",
    )
    _faults_args(serve)

    _contract_parser(sub)

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

    # The connection options, after `clock show|advance` (where people type them).
    remote = _OneLineErrors(add_help=False)
    remote.add_argument(
        "--url",
        default=os.environ.get("SANDBANK_URL", "http://127.0.0.1:8080"),
        help="the simulator (or SANDBANK_URL; default http://127.0.0.1:8080)",
    )
    remote.add_argument(
        "--admin-token",
        default=os.environ.get("SANDBANK_ADMIN_TOKEN"),
        help="control-plane token (or SANDBANK_ADMIN_TOKEN; default: the one `sandbank serve` "
        "kept in --data-dir)",
    )
    remote.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("SANDBANK_DATA_DIR", ".sandbank")),
        help="where `sandbank serve` keeps its admin token (or SANDBANK_DATA_DIR; default "
        ".sandbank)",
    )
    remote.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds to wait for the answer (default 300: a long advance runs every job due)",
    )
    clock = sub.add_parser(
        "clock",
        help="read or advance an account's clock on a running simulator",
        description="Read or advance an account's virtual clock through a running simulator's "
        "control plane. Prints the clock as one line: ACCOUNT NOW running|frozen.",
    )
    clock_sub = clock.add_subparsers(
        dest="clock_command", metavar="COMMAND", required=True, parser_class=_OneLineErrors
    )
    show = clock_sub.add_parser(
        "show",
        parents=[remote],
        help="print the account's clock",
        description="Print the account's clock: ACCOUNT NOW running|frozen.",
    )
    show.add_argument("account", metavar="ACCOUNT", help="account id (acct_...)")
    advance = clock_sub.add_parser(
        "advance",
        parents=[remote],
        help="move the clock forward, running what falls due",
        description="Move the account's clock forward by a duration (30d, 1h30m, 90s, 250ms) "
        "or to an RFC 3339 time (2027-01-01T00:00:00Z), running everything that falls due on "
        "the way, in time order; then print the clock: ACCOUNT NOW running|frozen.",
    )
    advance.add_argument("account", metavar="ACCOUNT", help="account id (acct_...)")
    advance.add_argument("by", metavar="DURATION|TIME", help="e.g. 30d, 1h30m, or an RFC 3339 time")

    _load_parser(sub)

    _delegated_parsers(sub)
    return p


# Commands whose own parsers own everything after their word (`main` hands them the rest).
_DELEGATED = (
    (
        "integration",
        "the reference integration (serve, reconcile, compare)",
        "The reference integration's commands: see `sandbank integration --help`.",
    ),
    (
        "scenario",
        "incident rehearsals (run, list, validate)",
        "Incident rehearsals: see `sandbank scenario --help`.",
    ),
    (
        "fakes",
        "local fakes of support systems (zendesk, servicenow)",
        "Local fakes of support systems: see `sandbank fakes --help`.",
    ),
)


def _delegated_parsers(sub: Any) -> None:
    for name, help_, description in _DELEGATED:
        one = sub.add_parser(name, help=help_, description=description, add_help=False)
        one.add_argument(f"{name}_argv", nargs=argparse.REMAINDER)


def _load_parser(sub: Any) -> None:
    """`sandbank load run NAME ...` (loadtests/runner.py)."""
    load = sub.add_parser(
        "load",
        help="load tests with Locust (loadtests/)",
        description="Headless Locust load tests through fault phases; see loadtests/.",
    )
    load_sub = load.add_subparsers(dest="load_command", metavar="SUBCOMMAND", required=True)
    lrun = load_sub.add_parser(
        "run",
        help="run one load test: simulator, order-to-cash, smoke",
        description="Start what the test needs on 127.0.0.1 (unless URLs are given), run "
        "Locust headless through steady/outage/storm/recovery; exit 0 when every threshold "
        "and end check holds, 1 when one does not.",
    )
    lrun.add_argument("name", metavar="NAME", help="simulator, order-to-cash or smoke")
    lrun.add_argument("--users", type=int, help="concurrent users (default per test)")
    lrun.add_argument("--spawn-rate", type=float, help="users started per second")
    lrun.add_argument("--time", help="length of the four phases: 60, 60s, 2m (default per test)")
    lrun.add_argument("--workers", type=int, default=0, help="distributed: a master + N workers")
    lrun.add_argument("--out", type=Path, help="report directory (default loadtest-NAME-TIME)")
    lrun.add_argument("--sim-url", help="a running simulator instead of starting one")
    lrun.add_argument("--admin-token", help="its admin token (with --sim-url)")
    lrun.add_argument("--account", help="the account to load (with --sim-url)")
    lrun.add_argument("--api-key", help="that account's API key (with --sim-url)")
    lrun.add_argument("--shop-url", help="a running reference integration (with --sim-url)")
    lrun.add_argument("--thresholds", help='JSON overriding thresholds: {"p99_ms": {"*": 500}}')


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("sandbank")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def _factory() -> Any:
    """Worker entry point for --workers > 1 (settings travel in the environment)."""
    from simulator import connections, lifecycle
    from simulator.app import create_app
    from simulator.heap import freeze_start_up_heap

    lifecycle.die_with_parent(int(os.environ[_PARENT_ENV]))
    raw = json.loads(os.environ[_SETTINGS_ENV])
    raw["data_dir"] = Path(raw["data_dir"])
    raw["reports_dir"] = Path(raw["reports_dir"])
    raw["fault_rules"] = tuple(raw.get("fault_rules", ()))
    raw["webhook_allowed_hosts"] = tuple(raw.get("webhook_allowed_hosts", ()))
    raw["creditkey_prefixes"] = tuple(raw.get("creditkey_prefixes", ("/app/ecomm", "/ecomm")))
    settings = Settings(**raw)
    _configure_logging(settings.log_level)
    connections.configure(settings, lifecycle.raise_open_files_limit())
    app = create_app(settings)
    freeze_start_up_heap()  # as `serve` does with one worker
    return app


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


def _serve_fault_rules(args: argparse.Namespace) -> tuple[Any, ...]:
    """Checks the worker flags and loads `--faults` (one-line errors, before anything starts)."""
    if args.workers < 1:
        raise SystemExit("sandbank: error: --workers must be at least 1")
    if args.journal_size is not None and args.journal_size < 0:
        raise SystemExit("sandbank: error: --journal-size must be 0 or more")
    if args.wal_limit_mb is not None and args.wal_limit_mb < 0:
        raise SystemExit("sandbank: error: --wal-limit-mb must be 0 or more")
    if args.workers > 1 and args.db == ":memory:":
        raise SystemExit("sandbank: error: --db :memory: cannot be shared by several workers")
    if args.faults is None:
        return ()
    from simulator.faults.files import FaultFileError, load

    try:
        return tuple(load(args.faults))
    except FaultFileError as exc:
        raise SystemExit(f"sandbank: error: {exc}") from None


def serve(args: argparse.Namespace) -> int:
    fault_rules = _serve_fault_rules(args)
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
        creditkey_prefixes=tuple(args.creditkey_prefix) if args.creditkey_prefix else None,
        # On a database file, webhooks go out from a process of their own (not the API's loop).
        webhook_process=args.db != ":memory:",
        header_timeout_s=args.header_timeout,
        body_timeout_s=args.body_timeout,
        keep_alive_s=args.keep_alive_timeout,
        max_connections=args.max_connections,
        max_in_flight=args.max_in_flight,
        reports_dir=args.reports_dir,
        metrics=not args.no_metrics,
        reuse_reads=not args.no_reuse_reads,
        console=False if args.no_console else None,
        journal_size=args.journal_size,
        wal_limit_mb=args.wal_limit_mb,
    )
    problem = _preflight(settings)
    if problem:  # one line, before the banner promises a server that will not be there
        raise SystemExit(f"sandbank: error: {problem}")
    if settings.metrics and (settings.webhook_process or args.workers > 1):
        # Several processes count: set before prometheus_client is first imported (below).
        from simulator.metrics_dir import prepare_multiprocess

        prepare_multiprocess(settings.data_dir)
    import uvicorn

    from simulator import connections, lifecycle
    from simulator.app import create_app, demo_account
    from simulator.heap import freeze_start_up_heap
    from simulator.store import redacted

    _configure_logging(settings.log_level)
    # Idle connections are open files: allow as many as the system lets this user have.
    limits = connections.configure(settings, lifecycle.raise_open_files_limit())
    # Migrates the database and creates the demo account, once, before any worker or
    # background process starts.
    try:
        app = create_app(settings)
    except ValueError as exc:  # e.g. a PostgreSQL database that cannot be reached
        raise SystemExit(f"sandbank: error: {exc}") from None
    demo = demo_account(app)
    print(f"Sandbank {__version__} on {settings.base_url}", flush=True)
    print(f"  contract:    {settings.base_url}/openapi.yaml", flush=True)
    if demo is not None:
        print(f"  demo account {demo.id}  API key: {demo.api_key}", flush=True)
    print(f"  admin token: {app.runtime.admin_token}", flush=True)
    if settings.console_on:
        print(f"  console:     {settings.base_url}/_sandbox/console", flush=True)
    if settings.metrics:
        print(f"  metrics:     {settings.base_url}/metrics", flush=True)
    print(f"  data:        {redacted(settings.db_path)}", flush=True)
    if fault_rules:
        print(f"  faults:      {len(fault_rules)} rules from {args.faults}", flush=True)
    print(
        f"  limits:      head {limits.header_timeout_s:g}s, body {limits.body_timeout_s:g}s, "
        f"keep-alive {settings.keep_alive_s:g}s, {limits.max_in_flight} requests in flight, "
        f"{limits.max_connections} connections (per worker)",
        flush=True,
    )
    # The same server, with each connection's socket reachable by socket-level faults and
    # the connection bounds of `simulator.connections`.
    common = {
        **uvicorn_options(settings.host, settings.port),
        "http": connections.protocol_class(),
        "timeout_keep_alive": settings.keep_alive_s,
    }
    app.runtime.dispatcher.release_leases()  # the only dispatcher: old leases are a crash's
    supervisor = _supervise(settings) if settings.webhook_process else None
    try:
        if args.workers == 1:
            freeze_start_up_heap()  # full GCs walk what requests make, not the app (issue #18)
            uvicorn.run(app, **common)
        else:
            _run_workers(args.workers, settings, app, fault_rules, common)
    finally:
        if supervisor is not None:
            supervisor.stop()
    return 0


def _supervise(settings: Settings) -> Any:
    """Start the dispatcher and the scheduler, supervised (`simulator.supervisor`)."""
    from simulator.store import is_url, open_store
    from simulator.supervisor import Supervisor

    def restarted(store: Any, name: str) -> None:
        # The only sender on a file: its leases are the dead process's. A shared database's
        # other servers may be sending: there the leases run out instead (`PgTx`).
        if name == "dispatcher" and not is_url(settings.db_path):
            with store.transaction() as tx:
                tx.release_leases()

    supervisor = Supervisor(settings, lambda: open_store(settings.db_path), on_restart=restarted)
    supervisor.start()
    return supervisor


def _run_workers(
    workers: int, settings: Settings, app: Any, fault_rules: Any, common: dict[str, Any]
) -> None:
    import uvicorn

    app.runtime.store.close()
    os.environ[_SETTINGS_ENV] = json.dumps(
        {
            **{
                k: getattr(settings, k)
                for k in ("host", "port", "db", "seed", "public_url", "log_level", "demo_account")
            },
            "journal_size": settings.journal_size,
            "wal_limit_mb": settings.wal_limit_mb,
            **{k: getattr(settings, k) for k in _LIMIT_KEYS},
            "fault_rules": list(fault_rules),
            "webhook_allowed_hosts": list(settings.webhook_allowed_hosts),
            "creditkey_prefixes": list(settings.creditkey_prefixes),
            "webhook_process": settings.webhook_process,
            "data_dir": str(settings.data_dir),
            "admin_token": app.runtime.admin_token,
            "console": settings.console_on,  # a token generated above must not turn it on
            "reports_dir": str(settings.reports_path),
            "metrics": settings.metrics,
            "reuse_reads": settings.reuse_reads,
        }
    )
    os.environ[_PARENT_ENV] = str(os.getpid())
    uvicorn.run("simulator.cli:_factory", factory=True, workers=workers, **common)


def _preflight(settings: Settings) -> str | None:
    """Why the server cannot start (data directory, address), or None. The address is bound
    and released here as uvicorn will bind it (SO_REUSEADDR), so what fails here fails there."""
    import errno
    import socket

    if not settings.in_memory:
        for folder in {Path(settings.data_dir), Path(settings.db_path).parent}:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                return f"cannot create the data directory {folder}: {exc.strerror or exc}"
    try:
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((settings.host, settings.port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return f"{settings.host}:{settings.port} is already in use (try --port)"
        return f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
    return None


def contract(args: argparse.Namespace) -> int:
    import yaml

    import contracts
    from simulator.api.docs import provider_document, sandbox_document
    from simulator.dialects.creditkey.document import creditkey_document
    from simulator.dialects.gateway.document import gateway_document
    from simulator.dialects.invoicing.document import invoicing_document
    from simulator.dialects.vcards.document import vcards_document

    docs = {
        contracts.PROVIDER: provider_document(),
        contracts.SANDBOX: sandbox_document(),
        contracts.CREDITKEY: creditkey_document(),
        contracts.GATEWAY: gateway_document(),
        contracts.VCARDS: vcards_document(),
        contracts.INVOICING: invoicing_document(),
    }
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
    require("contract", "sandbank contract")
    env = _contract_env(args)
    if env is None:
        return 2
    suite = Path(contracts.__file__).parent / "suite"
    cmd = [sys.executable, "-m", "pytest", str(suite), "-p", "no:cacheprovider", "-q"]
    if args.junit:
        cmd.append(f"--junitxml={args.junit}")
    if args.select:
        cmd.extend(["-k", args.select])
    return subprocess.call(cmd, env=env)  # noqa: S603 - our own interpreter and suite


def _contract_env(args: argparse.Namespace) -> dict[str, str] | None:
    """The suite's environment: a throwaway account made with the admin token, or (with
    --i-know-this-writes) the API key's own; None after saying why neither may be used."""
    from contracts.suite.target import refusal

    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTRACT_")}
    if "CONTRACT_MAX_EXAMPLES" in os.environ:
        env["CONTRACT_MAX_EXAMPLES"] = os.environ["CONTRACT_MAX_EXAMPLES"]
    if not args.base_url:
        return env
    admin = None if args.api_key and args.i_know_this_writes else args.admin_token
    why = refusal(api_key=args.api_key, admin_token=admin, writes_ok=args.i_know_this_writes)
    if why:
        print(f"sandbank: error: {why}", file=sys.stderr)
        return None
    env["CONTRACT_BASE_URL"] = args.base_url
    if admin:
        env["CONTRACT_ADMIN_TOKEN"] = admin
    else:
        env["CONTRACT_API_KEY"] = args.api_key
        env["CONTRACT_I_KNOW_THIS_WRITES"] = "1"
    return env


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


def _admin_token(args: argparse.Namespace) -> str | None:
    if args.admin_token:
        return str(args.admin_token)
    kept = args.data_dir / "admin_token"
    try:
        return kept.read_text().strip() or None
    except OSError:
        return None


def _clock_request(args: argparse.Namespace) -> tuple[str, str, dict[str, str] | None]:
    """(method, path, body) of the control-plane call; raises ValueError for a bad argument."""
    from datetime import datetime

    from simulator.clock import parse_duration
    from simulator.domain.errors import InvalidDuration

    account = args.account.strip()
    if not account or "/" in account:
        raise ValueError(f"{args.account!r} is not an account id")
    path = f"/_sandbox/accounts/{account}/clock"
    if args.clock_command == "show":
        return "GET", path, None
    when = args.by.strip()
    if "T" in when.upper() and "-" in when:  # an RFC 3339 time: advance to it
        try:
            moment = datetime.fromisoformat(when.replace("z", "Z"))
        except ValueError:
            raise ValueError(f"{when!r} is not an RFC 3339 time") from None
        if moment.tzinfo is None:
            raise ValueError(f"{when!r} needs a UTC offset (e.g. Z or +02:00)")
        return "POST", f"{path}/advance", {"to": moment.isoformat()}
    try:
        parse_duration(when)
    except InvalidDuration as exc:
        raise ValueError(exc.detail) from None
    return "POST", f"{path}/advance", {"by": when}


def clock_command(args: argparse.Namespace) -> int:
    """`sandbank clock show|advance`: one line on stdout, or one line on stderr and exit 1
    (2 for a bad argument); never a traceback."""
    import httpx

    def error(message: str, status: int = 1) -> int:
        print(f"sandbank: error: {message}", file=sys.stderr)
        return status

    try:
        method, path, body = _clock_request(args)
    except ValueError as exc:
        return error(str(exc), 2)
    token = _admin_token(args)
    if token is None:
        return error(
            "no admin token: pass --admin-token, set SANDBANK_ADMIN_TOKEN, or point --data-dir "
            "at the server's data directory"
        )
    url = args.url.rstrip("/")
    try:
        r = httpx.request(
            method,
            url + path,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=args.timeout,
        )
    except httpx.TimeoutException:
        return error(f"{url} did not answer within {args.timeout:g}s")
    except (httpx.HTTPError, ValueError) as exc:  # refused, DNS, bad URL, ...
        return error(f"cannot reach the simulator at {url} ({exc or type(exc).__name__})")
    try:
        data = r.json()
    except ValueError:
        data = None
    if r.status_code != 200 or not isinstance(data, dict):
        if r.status_code == 401:
            return error(f"{url} refused the admin token (--admin-token / SANDBANK_ADMIN_TOKEN)")
        detail = (data.get("detail") or data.get("title")) if isinstance(data, dict) else None
        text = " ".join(str(detail or r.text[:200] or r.reason_phrase).split())
        return error(f"{r.status_code}: {text}")
    try:
        now, frozen = str(data["now"]), bool(data["frozen"])
    except KeyError:
        return error(f"{url} answered {r.status_code} without a clock: is it a Sandbank server?")
    now = now.replace("+00:00", "Z")
    print(f"{data.get('account_id', args.account)} {now} {'frozen' if frozen else 'running'}")
    return 0


# What each extra brings (pyproject.toml), checked before a command that needs it starts.
EXTRAS = {
    "contract": ("pytest", "schemathesis"),
    "integration": ("faker", "rich"),
    "load": ("locust",),
}


def require(extra: str, command: str) -> None:
    """One line and exit 2 when `command` needs an extra that is not installed."""
    import importlib.util

    missing = [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]
    if missing:
        raise SystemExit(
            f"sandbank: error: {command} needs {', '.join(missing)}: "
            f"pip install 'sandbank[{extra}]'"
        )


def integration(argv: list[str]) -> int:
    require("integration", "sandbank integration")
    from integration import cli

    return cli.main(argv)


def load_command(args: argparse.Namespace) -> int:
    require("load", "sandbank load")
    try:
        from loadtests import runner
    except ModuleNotFoundError as exc:
        raise SystemExit(f"sandbank: error: load needs {exc.name} (pip install it)") from None
    try:
        opts = runner.Options(
            name=args.name,
            users=args.users,
            spawn_rate=args.spawn_rate,
            seconds=runner.parse_seconds(args.time) if args.time else None,
            workers=args.workers,
            out=args.out,
            sim_url=args.sim_url,
            admin_token=args.admin_token,
            account=args.account,
            api_key=args.api_key,
            shop_url=args.shop_url,
            thresholds=args.thresholds,
        )
        return runner.run(opts)
    except runner.LoadError as exc:
        print(f"sandbank: error: {exc}", file=sys.stderr)
        return 2


def scenario(argv: list[str]) -> int:
    """`sandbank scenario ...`: the only place the simulator's CLI names `rehearsal` (imported
    here, lazily; the rehearsal package never imports the simulator)."""
    require("integration", "sandbank scenario")
    from rehearsal import cli

    return cli.main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["integration"]:  # its own parser owns everything after the word
        return integration(argv[1:])
    if argv[:1] == ["scenario"]:  # likewise
        return scenario(argv[1:])
    if argv[:1] == ["fakes"]:  # likewise (fakes/cli.py)
        from fakes import cli as fakes_cli

        return fakes_cli.main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if args.command == "contract":
        return contract(args)
    if args.command == "webhooks":
        return webhooks_check(args)
    if args.command == "clock":
        return clock_command(args)
    if args.command == "load":
        return load_command(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
