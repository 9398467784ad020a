"""`sandbank fakes zendesk|servicenow [--host H] [--port P] ...`: run one fake on 127.0.0.1.

The credentials default to fixed, documented values (they guard nothing: the fakes hold no
real data); the startup line says what to pass.
"""

from __future__ import annotations

import argparse

DEFAULT_PORTS = {"zendesk": 8090, "servicenow": 8091}


class _OneLineErrors(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"sandbank fakes: error: {message}\n")


def parser() -> argparse.ArgumentParser:
    p = _OneLineErrors(prog="sandbank fakes", description="Local fakes of support systems.")
    sub = p.add_subparsers(dest="fake", metavar="FAKE", required=True, parser_class=_OneLineErrors)
    for name, what in (
        ("zendesk", "a Zendesk-shaped tickets API (/api/v2/tickets.json)"),
        ("servicenow", "a ServiceNow-shaped Table API (/api/now/table/incident)"),
    ):
        one = sub.add_parser(name, help=what, description=f"Run {what}, in memory.")
        one.add_argument("--host", default="127.0.0.1")
        one.add_argument("--port", type=int, default=DEFAULT_PORTS[name])
        if name == "zendesk":
            one.add_argument("--token", default="fake-token", help="the API token to accept")
        else:
            one.add_argument("--user", default="admin")
            one.add_argument("--password", default="fake-password")
    return p


def main(argv: list[str]) -> int:
    import uvicorn  # noqa: PLC0415 - only when a fake is really run

    from fakes.common import system_clock  # noqa: PLC0415
    from fakes.servicenow import create_servicenow_app  # noqa: PLC0415
    from fakes.zendesk import create_zendesk_app  # noqa: PLC0415

    args = parser().parse_args(argv)
    if not 0 < args.port < 65536:
        parser().error(f"--port {args.port}: not a port")
    if args.fake == "zendesk":
        app = create_zendesk_app(token=args.token, clock=system_clock)
        hint = f"basic auth 'you@example.test/token:{args.token}'"
    else:
        app = create_servicenow_app(user=args.user, password=args.password, clock=system_clock)
        hint = f"basic auth '{args.user}:{args.password}'"
    print(  # noqa: T201 - the one line the user needs
        f"fake {args.fake} on http://{args.host}:{args.port} ({hint}); in memory, a FAKE",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
