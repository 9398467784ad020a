"""`sandbank scenario run|list|validate`: rehearse an incident from the command line.

    sandbank scenario run FILE|NAME [--seed N] [--speed X] [--fast] [--report DIR]
                          [--junit PATH] [--provider-url U --admin-token T]
                          [--integration-url U --account A --api-key K] [--quiet]
    sandbank scenario list
    sandbank scenario validate [FILE ...]

Exit status: 0 every check passed; 1 a check failed (a deviation, or the steady state did not
hold before the faults); 2 the scenario, the arguments or the environment were invalid, or the
runner itself failed. A failure prints the seed and the exact command that replays it.

Scenarios are found by NAME in the catalogue directory: `$SANDBANK_SCENARIOS`, else
`./scenarios`, else the `scenarios/` folder next to the installed `rehearsal` package (the
repository's own catalogue in a source checkout).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rehearsal.model import Scenario, ScenarioError, load
from rehearsal.result import EXIT_CODES, RunResult

ENV_DIR = "SANDBANK_SCENARIOS"


def catalogue_dir() -> Path:
    """Where scenarios live: $SANDBANK_SCENARIOS, ./scenarios, or the repository's."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR])
    here = Path("scenarios")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "scenarios"


def catalogue() -> list[Path]:
    return sorted(catalogue_dir().glob("*.yaml"))


def resolve(name: str) -> Path:
    """A file path as given, or a catalogue NAME (file stem or failure mode)."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    for candidate in catalogue():
        if candidate.stem == name:
            return candidate
    for candidate in catalogue():
        try:
            if load(candidate).failure_mode == name:
                return candidate
        except ScenarioError:
            continue
    known = ", ".join(p.stem for p in catalogue()) or f"none in {catalogue_dir()}"
    raise ScenarioError([f"{name}: no such scenario file or name (known: {known})"])


class _OneLineErrors(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"sandbank scenario: error: {message} (see --help)\n")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"not a positive number: {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"not a seed (a non-negative integer): {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    p = _OneLineErrors(
        prog="sandbank scenario",
        description="Incident rehearsals: run a scenario against a real simulator and the "
        "reference integration, and judge what the merchant side did.",
    )
    sub = p.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_OneLineErrors
    )
    run = sub.add_parser("run", help="run one scenario", description="Run one scenario.")
    run.add_argument("scenario", metavar="FILE|NAME", help="a scenario file or catalogue name")
    run.add_argument("--seed", type=_seed, help="override the scenario's seed")
    run.add_argument("--speed", type=_positive_float, help="account seconds per wall second")
    run.add_argument(
        "--fast", action="store_true", help="CI size: small workload, high speed (as in make test)"
    )
    run.add_argument("--report", type=Path, metavar="DIR", help="write report.json/.html here")
    run.add_argument("--junit", type=Path, metavar="PATH", help="write JUnit XML here")
    run.add_argument("--provider-url", help="attach to this simulator instead of starting one")
    run.add_argument(
        "--admin-token",
        default=os.environ.get("SANDBANK_ADMIN_TOKEN"),
        help="its control-plane token (or SANDBANK_ADMIN_TOKEN)",
    )
    run.add_argument("--integration-url", help="attach to this integration service")
    run.add_argument("--account", help="the account the attached integration uses")
    run.add_argument("--api-key", help="that account's API key")
    run.add_argument("--workdir", type=Path, help="keep processes' logs and databases here")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    sub.add_parser("list", help="list the catalogue", description="List the catalogue.")
    validate = sub.add_parser(
        "validate",
        help="validate scenario files",
        description="Validate scenario files (default: the whole catalogue).",
    )
    validate.add_argument("files", nargs="*", metavar="FILE")
    return p


def _err(message: str) -> None:
    sys.stderr.write(f"sandbank scenario: error: {message}\n")


def cmd_list() -> int:
    files = catalogue()
    if not files:
        _err(f"no scenarios in {catalogue_dir()}")
        return 2
    width = max(len(p.stem) for p in files)
    for path in files:
        try:
            s = load(path)
            print(f"{path.stem:<{width}}  {s.failure_mode:<30}  {s.title}")
        except ScenarioError as exc:
            print(f"{path.stem:<{width}}  INVALID: {exc.problems[0]}")
    return 0


def cmd_validate(files: Sequence[str]) -> int:
    paths = [Path(f) for f in files] or catalogue()
    if not paths:
        _err(f"no scenarios in {catalogue_dir()}")
        return 2
    bad = 0
    for path in paths:
        try:
            load(path)
        except ScenarioError as exc:
            bad += 1
            for problem in exc.problems:
                sys.stderr.write(problem + "\n")
        else:
            print(f"ok  {path}")
    return 2 if bad else 0


def _invalid(source: str, scenario: Scenario | None, error: str) -> RunResult:
    from rehearsal.result import ScenarioInfo

    return RunResult(
        scenario=ScenarioInfo(
            name=Path(source).stem,
            title=scenario.title if scenario else "",
            failure_mode=scenario.failure_mode if scenario else "",
            runbook=scenario.runbook if scenario else "",
            file=source,
            definition={},
        ),
        seed=scenario.seed if scenario else 0,
        speed=scenario.speed if scenario else 0.0,
        status="invalid",
        exit_code=EXIT_CODES["invalid"],
        started_at="",
        duration_s=0.0,
        simulated_s=0.0,
        error=error,
    )


def write_reports(result: RunResult, report_dir: Path | None, junit: Path | None) -> None:
    """report.json and report.html in DIR; JUnit XML at PATH (`rehearsal.reports`)."""
    from rehearsal.reports.html import write_html
    from rehearsal.reports.junit import write_junit

    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / "report.json").write_text(result.model_dump_json(indent=2) + "\n")
        write_html(result, report_dir / "report.html")
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        write_junit([result], junit)


def print_summary(result: RunResult) -> None:
    from rich.console import Console

    from rehearsal.reports.terminal import render_terminal

    render_terminal(result, Console())


def _progress(quiet: bool) -> tuple[Any, Any]:
    """A rich progress bar (phase, orders, holds, errors) and its update callback."""
    if quiet or not sys.stderr.isatty():
        return None, None
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]{task.fields[phase]:<20}"),
        BarColumn(),
        TextColumn("T+{task.fields[clock]}"),
        TextColumn("orders {task.fields[orders]}  held {task.fields[held]}"),
        TextColumn("holds open {task.fields[holds]}  errors {task.fields[errors]}"),
        TimeElapsedColumn(),
        transient=True,
    )
    task = bar.add_task(
        "run", total=1, phase="setup", clock="0s", orders=0, held=0, holds=0, errors=0
    )

    def update(p: dict[str, Any]) -> None:
        from rehearsal.model import format_ms

        bar.update(
            task,
            total=max(p["total_ms"], 1),
            completed=min(p["at_ms"], p["total_ms"]),
            phase=p["phase"],
            clock=format_ms(int(p["at_ms"]) // 1000 * 1000),
            orders=p["orders"],
            held=p["held"],
            holds=p["holds"],
            errors=p["errors"],
        )

    return bar, update


def cmd_run(args: argparse.Namespace) -> int:
    from rehearsal.runner import Options, Runner

    scenario: Scenario | None = None
    try:
        path = resolve(args.scenario)
        scenario = load(path)
    except ScenarioError as exc:
        for problem in exc.problems:
            sys.stderr.write(problem + "\n")
        result = _invalid(args.scenario, scenario, exc.problems[0])
        write_reports(result, args.report, args.junit)
        return 2
    if args.integration_url and not args.provider_url:
        _err("--integration-url needs --provider-url (the simulator it talks to)")
        return 2
    bar, update = _progress(args.quiet)
    options = Options(
        seed=args.seed,
        speed=args.speed,
        fast=args.fast,
        report_dir=args.report,
        provider_url=args.provider_url,
        integration_url=args.integration_url,
        admin_token=args.admin_token,
        account=args.account,
        api_key=args.api_key,
        workdir=args.workdir,
        on_progress=update,
    )
    runner = Runner(scenario, str(path), options)
    if bar is not None:
        with bar:
            result = asyncio.run(runner.run())
    else:
        result = asyncio.run(runner.run())
    write_reports(result, args.report, args.junit)
    print_summary(result)
    if result.error:
        _err(result.error)
    if result.status != "passed":
        sys.stderr.write(f"seed {result.seed}; replay with: {result.replay_command}\n")
    if args.report is not None:
        print(f"report: {args.report / 'report.json'}")
    return result.exit_code


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "list":
        return cmd_list()
    if args.command == "validate":
        return cmd_validate(args.files)
    return cmd_run(args)


__all__ = ["catalogue", "catalogue_dir", "main", "resolve", "write_reports"]
