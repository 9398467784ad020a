"""The console's pages and actions. Server-rendered HTML (Jinja2, autoescaped); one small
script (`static/console.js`) streams the journal and draws the charts; every asset is served
from this package (the Content-Security-Policy allows nothing else).

Like the control plane, a handler calls the services only (accounts, faults, journal,
webhooks, dispatcher, finance); an action is a POST form (CSRF-checked) that answers with a
redirect back to its page and a one-line message. A service's error (a bad duration, an
unknown account) becomes that message, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson
from jinja2 import Environment, PackageLoader
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from rehearsal.result import RunResult
from simulator.api.guard import retrying
from simulator.asgi import read_body
from simulator.clock import parse_duration, virtual_now
from simulator.console.live import Live, LiveFilter
from simulator.console.session import LOGIN_COOKIE, PATH, SESSION_COOKIE, TTL_S, Sessions, mask
from simulator.console.session import matches as token_ok
from simulator.domain.errors import NotFound, SandbankError
from simulator.domain.models import Account
from simulator.domain.records import StoredCounts
from simulator.faults.presets import PRESETS
from simulator.metrics import Metrics
from simulator.runtime import Runtime

FLASH_COOKIE = "sandbank_console_flash"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# A scenario's own report: shown as a document, never allowed to run script or reach out.
REPORT_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"
NAV = (
    ("", "Overview"),
    ("accounts", "Accounts"),
    ("faults", "Faults"),
    ("traffic", "Live traffic"),
    ("webhooks", "Webhooks"),
    ("money", "Money"),
    ("scenarios", "Scenarios"),
)
MAX_REPORTS = 200
Handler = Callable[[Request, str], Awaitable[Response]]
Action = Callable[[Request, dict[str, str]], Awaitable[str]]


class Console:
    def __init__(
        self,
        runtime: Runtime,
        sessions: Sessions,
        live: Live,
        stored: Callable[[], StoredCounts],
        metrics: Metrics | None,
    ) -> None:
        self.rt = runtime
        self.sessions = sessions
        self.live = live
        self.stored = stored
        self.metrics = metrics
        self.reports = Path(runtime.settings.reports_path)
        self.env = Environment(
            loader=PackageLoader("simulator.console", "templates"),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["mask"] = mask
        self.env.filters["when"] = _when

    # --- routing -----------------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        get, post = self._page, self._action
        return [
            Mount(
                PATH,
                routes=[
                    Route("/", get(self.overview), methods=["GET"]),
                    Route("/login", self.login_form, methods=["GET"]),
                    Route("/login", self.login, methods=["POST"]),
                    Route("/logout", post(self.logout), methods=["POST"]),
                    Route("/accounts", get(self.accounts), methods=["GET"]),
                    Route("/accounts", post(self.create_account), methods=["POST"]),
                    Route("/accounts/{id}/reset", post(self.reset), methods=["POST"]),
                    Route("/accounts/{id}/seed", post(self.seed), methods=["POST"]),
                    Route("/accounts/{id}/clock/advance", post(self.advance), methods=["POST"]),
                    Route("/accounts/{id}/clock/freeze", post(self.freeze), methods=["POST"]),
                    Route("/accounts/{id}/clock/unfreeze", post(self.unfreeze), methods=["POST"]),
                    Route("/faults", get(self.faults), methods=["GET"]),
                    Route("/faults/rules", post(self.add_rule), methods=["POST"]),
                    Route("/faults/presets", post(self.apply_preset), methods=["POST"]),
                    Route("/faults/outage", post(self.outage), methods=["POST"]),
                    Route("/faults/clear", post(self.clear_faults), methods=["POST"]),
                    Route("/faults/{id}/delete", post(self.delete_rule), methods=["POST"]),
                    Route("/traffic", get(self.traffic), methods=["GET"]),
                    Route("/traffic/stream", get(self.stream), methods=["GET"]),
                    Route("/charts.json", get(self.charts), methods=["GET"]),
                    Route("/webhooks", get(self.webhooks), methods=["GET"]),
                    Route("/webhooks/flush", post(self.flush), methods=["POST"]),
                    Route("/webhooks/events/{id}/replay", post(self.replay), methods=["POST"]),
                    Route("/webhooks/endpoints/{id}/recover", post(self.recover), methods=["POST"]),
                    Route("/money", get(self.money), methods=["GET"]),
                    Route("/scenarios", get(self.scenarios), methods=["GET"]),
                    Route("/scenarios/{run}/report.html", get(self.report), methods=["GET"]),
                    Mount(
                        "/static",
                        StaticFiles(packages=[("simulator.console", "static")]),
                        name="console-static",
                    ),
                ],
            )
        ]

    def _page(self, view: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A GET that needs a session (else: to the login form). Run like an API call
        (`simulator.api.guard.retrying`): due work in steps, and a write lock another process
        holds (the webhook dispatcher delivering) waited for off the loop, not an error page."""

        async def handler(request: Request) -> Response:
            cookie = request.cookies.get(SESSION_COOKIE)
            if cookie is None or not self.sessions.valid_session(cookie):
                return RedirectResponse(f"{PATH}/login", 303)
            return await retrying(request, lambda: view(request, cookie))

        return handler

    def _action(self, act: Action) -> Callable[[Request], Awaitable[Response]]:
        """A POST form: session, same origin and CSRF token checked; the action returns the
        message to show; the answer is a redirect back (`back`, a console path)."""

        async def handler(request: Request) -> Response:
            cookie = request.cookies.get(SESSION_COOKIE)
            if cookie is None or not self.sessions.valid_session(cookie):
                return RedirectResponse(f"{PATH}/login", 303)
            form = await _form(request)
            if not _same_origin(request) or not token_ok(
                form.get("csrf"), self.sessions.csrf_for(cookie)
            ):
                return _forbidden()
            back = form.get("back", "")
            if not back.startswith(f"{PATH}/") or "//" in back or "\\" in back:
                back = f"{PATH}/"
            try:
                # As an API call: due work in steps, a lock taken elsewhere waited for.
                message, ok = await retrying(request, lambda: act(request, form)), True
            except SandbankError as err:
                message, ok = err.detail, False
            except ValidationError as err:
                first = err.errors()[0]
                message = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
                ok = False
            except ValueError as err:
                message, ok = str(err), False
            if act == self.logout:
                response = RedirectResponse(f"{PATH}/login", 303)
                response.delete_cookie(SESSION_COOKIE, path=PATH)
                return response
            response = RedirectResponse(back, 303)
            _flash(response, request, message, ok)
            return response

        return handler

    def render(self, request: Request, cookie: str, template: str, **context: Any) -> Response:
        flash = _read_flash(request)
        html = self.env.get_template(template).render(
            csrf=self.sessions.csrf_for(cookie),
            nav=NAV,
            base=PATH,
            here=request.url.path,
            back=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            flash=flash,
            **context,
        )
        response = HTMLResponse(html, headers=SECURITY_HEADERS)
        if flash is not None:
            response.delete_cookie(FLASH_COOKIE, path=PATH)
        return response

    # --- login -------------------------------------------------------------------------------
    async def login_form(self, request: Request) -> Response:
        nonce = request.cookies.get(LOGIN_COOKIE) or self.sessions.new_login_nonce()
        error = _read_flash(request)
        html = self.env.get_template("login.html").render(
            base=PATH, csrf=self.sessions.login_csrf_for(nonce), error=error
        )
        response = HTMLResponse(html, headers=SECURITY_HEADERS)
        _cookie(response, request, LOGIN_COOKIE, nonce, 600)
        if error is not None:
            response.delete_cookie(FLASH_COOKIE, path=PATH)
        return response

    async def login(self, request: Request) -> Response:
        form = await _form(request)
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        if (
            not _same_origin(request)
            or not nonce
            or not token_ok(form.get("csrf"), self.sessions.login_csrf_for(nonce))
        ):
            return _forbidden()
        response = RedirectResponse(f"{PATH}/login", 303)
        if not self.sessions.token_matches(form.get("token", "")):
            _flash(response, request, "that is not the admin token", False)
            return response
        response = RedirectResponse(f"{PATH}/", 303)
        _cookie(response, request, SESSION_COOKIE, self.sessions.new_session(), TTL_S)
        response.delete_cookie(LOGIN_COOKIE, path=PATH)
        return response

    async def logout(self, request: Request, form: dict[str, str]) -> str:
        return "signed out"

    # --- overview ----------------------------------------------------------------------------
    async def overview(self, request: Request, cookie: str) -> Response:
        counts = self.stored()
        return self.render(
            request,
            cookie,
            "overview.html",
            accounts=len(self.rt.accounts.all()),
            rules=len(self.rt.faults.rules()),
            backlog=sum(counts.backlog.values()),
            counts=counts,
            metrics_on=self.metrics is not None,
        )

    async def charts(self, request: Request, cookie: str) -> Response:
        if self.metrics is None:
            return JSONResponse({"off": True}, headers={"Cache-Control": "no-store"})
        return JSONResponse(self.metrics.charts(), headers={"Cache-Control": "no-store"})

    # --- accounts ----------------------------------------------------------------------------
    async def accounts(self, request: Request, cookie: str) -> Response:
        now = self.rt.service.wall.now()
        rows = [
            (a, virtual_now(now, a.clock_offset_us, a.clock_frozen_at_us))
            for a in self.rt.accounts.all()
        ]
        return self.render(request, cookie, "accounts.html", rows=rows)

    async def create_account(self, request: Request, form: dict[str, str]) -> str:
        seed = _int(form.get("seed"), "seed") if form.get("seed") else None
        account = self.rt.accounts.create(
            name=form.get("name") or "sandbox", seed=seed, settings=None
        )
        return f"created {account.id} (API key {mask(account.api_key)}; full key: control plane)"

    async def reset(self, request: Request, form: dict[str, str]) -> str:
        account = self.rt.accounts.reset(_path_id(request))
        return f"{account.id} reset: no objects, clock and random sequence restarted"

    async def seed(self, request: Request, form: dict[str, str]) -> str:
        account = self.rt.accounts.set_seed(_path_id(request), _int(form.get("seed"), "seed"))
        return f"{account.id} seed set to {account.seed}"

    async def advance(self, request: Request, form: dict[str, str]) -> str:
        by = parse_duration(form.get("by", ""))
        service = self.rt.service
        with service.scope(_path_id(request)) as ctx:
            now = service.advance_clock(ctx, by=by, to=None)
        return f"{ctx.aid} clock advanced by {form['by'].strip()} to {_when(now)}"

    async def freeze(self, request: Request, form: dict[str, str]) -> str:
        with self.rt.service.scope(_path_id(request)) as ctx:
            now = self.rt.service.freeze_clock(ctx, True)
        return f"{ctx.aid} clock frozen at {_when(now)}"

    async def unfreeze(self, request: Request, form: dict[str, str]) -> str:
        with self.rt.service.scope(_path_id(request)) as ctx:
            now = self.rt.service.freeze_clock(ctx, False)
        return f"{ctx.aid} clock running from {_when(now)}"

    # --- faults ------------------------------------------------------------------------------
    async def faults(self, request: Request, cookie: str) -> Response:
        return self.render(
            request,
            cookie,
            "faults.html",
            rules=self.rt.faults.rules(),
            presets=[PRESETS[n] for n in sorted(PRESETS)],
            accounts=self.rt.accounts.all(),
            operations=sorted(self.rt.faults.operations),
        )

    def _now_for(self, account: str | None) -> datetime:
        if account is None:
            return self.rt.service.wall.now()
        with self.rt.service.scope(account) as ctx:
            return ctx.now

    async def add_rule(self, request: Request, form: dict[str, str]) -> str:
        raw = form.get("json", "").strip()
        data: Any
        if raw:
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise ValueError("the rule is not valid JSON") from None
        else:
            data = _rule_from_form(form)
        rule = self.rt.faults.validate(data, "form")
        stored = self.rt.faults.add(rule, self._now_for(rule.account))
        return f"rule {stored.id} added"

    async def apply_preset(self, request: Request, form: dict[str, str]) -> str:
        name = form.get("preset", "")
        if name not in PRESETS:
            raise NotFound("preset", name)
        return self._preset(name, form)

    async def outage(self, request: Request, form: dict[str, str]) -> str:
        form.setdefault("duration", "5m")
        return self._preset("total-outage", form)

    def _preset(self, name: str, form: dict[str, str]) -> str:
        account = form.get("account") or None
        duration = form.get("duration", "").strip() or None
        if duration is not None:
            parse_duration(duration)
        rules = self.rt.faults.apply_preset(name, account, duration, self._now_for(account))
        where = account or "every account"
        return (
            f"{name} on {where}"
            + (f" for {duration}" if duration else "")
            + (f": rules {', '.join(r.id for r in rules)}")
        )

    async def clear_faults(self, request: Request, form: dict[str, str]) -> str:
        account = form.get("account") or None
        return f"{self.rt.faults.clear(account)} fault rules deleted"

    async def delete_rule(self, request: Request, form: dict[str, str]) -> str:
        return f"rule {self.rt.faults.delete(_path_id(request)).id} deleted"

    # --- live traffic ------------------------------------------------------------------------
    async def traffic(self, request: Request, cookie: str) -> Response:
        return self.render(
            request,
            cookie,
            "traffic.html",
            operations=sorted(self.rt.faults.operations),
            journal_size=self.rt.journal.size,
        )

    async def stream(self, request: Request, cookie: str) -> Response:
        q = request.query_params
        flt = LiveFilter(
            operation=q.get("operation") or None,
            status=(q.get("status") or "")[:8] or None,
            faulted=q.get("faulted") in ("1", "true", "on"),
        )
        last = request.headers.get("last-event-id", q.get("after", "0"))
        after = int(last) if last.isdigit() else 0
        return StreamingResponse(
            self.live.stream(flt, after),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # --- webhooks ----------------------------------------------------------------------------
    def _account(self, request: Request) -> tuple[Sequence[Account], Account | None]:
        accounts = self.rt.accounts.all()
        wanted = request.query_params.get("account")
        chosen = next((a for a in accounts if a.id == wanted), None)
        return accounts, chosen or (accounts[0] if accounts else None)

    async def webhooks(self, request: Request, cookie: str) -> Response:
        accounts, account = self._account(request)
        endpoints: list[Any] = []
        deliveries: list[Any] = []
        if account is not None:
            # A snapshot (no write lock): the dispatcher process retakes the lock as soon as
            # it is free while it delivers, and a page waiting for it could lose every race.
            with self.rt.service.scope(account.id, write=False) as ctx:
                endpoints = self.rt.webhooks.list_endpoints(ctx)
            deliveries = self.rt.webhooks.deliveries(
                account.id, endpoint_id=None, event_id=None, status=None, limit=50
            ).items
        backlog = self.stored().backlog
        return self.render(
            request,
            cookie,
            "webhooks.html",
            accounts=accounts,
            account=account,
            endpoints=endpoints,
            deliveries=deliveries,
            backlog={e: n for (a, e), n in backlog.items() if account and a == account.id},
            quirks=_quirks,
        )

    async def flush(self, request: Request, form: dict[str, str]) -> str:
        attempts = await self.rt.dispatcher.flush(form.get("account") or None)
        return f"{attempts} delivery attempts made"

    async def replay(self, request: Request, form: dict[str, str]) -> str:
        event_id = _path_id(request)
        with self.rt.service.scope_for("event", event_id) as ctx:
            made = self.rt.webhooks.replay_event(ctx, event_id)
        return f"{event_id} replayed: {', '.join(d.id for d in made) or 'no endpoint wants it'}"

    async def recover(self, request: Request, form: dict[str, str]) -> str:
        endpoint_id = _path_id(request)
        with self.rt.service.scope_for("webhook_endpoint", endpoint_id) as ctx:
            n = self.rt.webhooks.recover(ctx, endpoint_id, datetime(1970, 1, 1, tzinfo=UTC))
        return f"{n} failed deliveries of {endpoint_id} queued again"

    # --- money -------------------------------------------------------------------------------
    async def money(self, request: Request, cookie: str) -> Response:
        accounts, account = self._account(request)
        settlements: list[Any] = []
        disputes: list[Any] = []
        injections: list[Any] = []
        drift: Any = None
        if account is not None:
            finance = self.rt.service.finance
            with self.rt.service.scope(account.id, write=False) as ctx:  # a snapshot
                settlements = finance.list_settlements(
                    ctx, status=None, limit=50, cursor=None
                ).items
                disputes = finance.list_disputes(
                    ctx, status=None, order_id=None, limit=50, cursor=None
                ).items
                injections = finance.injections(ctx)[-100:]
                drift = finance.drift_state(ctx)
        return self.render(
            request,
            cookie,
            "money.html",
            accounts=accounts,
            account=account,
            settlements=settlements,
            disputes=disputes,
            injections=injections,
            drift=drift,
        )

    # --- scenarios ---------------------------------------------------------------------------
    async def scenarios(self, request: Request, cookie: str) -> Response:
        return self.render(
            request, cookie, "scenarios.html", runs=self._runs(), reports_dir=str(self.reports)
        )

    def _runs(self) -> list[dict[str, Any]]:
        """The run directories, newest first: finished (report.json) or still running."""
        if not self.reports.is_dir():
            return []
        dirs = sorted(
            (d for d in os.scandir(self.reports) if d.is_dir()),
            key=lambda d: d.stat().st_mtime,
            reverse=True,
        )[:MAX_REPORTS]
        runs = []
        for d in dirs:
            path = Path(d.path)
            run: dict[str, Any] = {"name": d.name, "html": (path / "report.html").is_file()}
            report = path / "report.json"
            if not report.is_file():
                run["state"] = "in progress"
            else:
                try:
                    run["result"] = RunResult.model_validate_json(report.read_bytes())
                    run["state"] = "finished"
                except (ValidationError, OSError):
                    run["state"] = "unreadable report.json"
            runs.append(run)
        return runs

    async def report(self, request: Request, cookie: str) -> Response:
        name = str(request.path_params["run"])
        known = {r["name"] for r in self._runs() if r["html"]}
        if name not in known:
            return PlainTextResponse("no such report\n", 404)
        return FileResponse(
            self.reports / name / "report.html",
            media_type="text/html",
            headers={**SECURITY_HEADERS, "Content-Security-Policy": REPORT_CSP},
        )


def off_routes() -> list[BaseRoute]:
    """What answers on /_sandbox/console when the console is off."""

    async def off(request: Request) -> Response:
        return PlainTextResponse(
            "The console is off. Start sandbank with --admin-token (or SANDBANK_ADMIN_TOKEN) "
            "to turn it on.\n",
            404,
        )

    return [Route(PATH, off), Route(PATH + "/{rest:path}", off, methods=["GET", "POST"])]


# --- helpers -----------------------------------------------------------------------------------
async def _form(request: Request) -> dict[str, str]:
    body = await read_body(request.scope, request.receive)
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


def _same_origin(request: Request) -> bool:
    headers = {k: request.headers[k] for k in ("origin", "sec-fetch-site") if k in request.headers}
    return Sessions.same_origin(headers, request.headers.get("host"))


def _forbidden() -> Response:
    return PlainTextResponse(
        "refused: the form's CSRF token or origin does not match this session; reload the page\n",
        403,
        headers=SECURITY_HEADERS,
    )


def _cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _flash(response: Response, request: Request, message: str, ok: bool) -> None:
    """The one-line outcome of an action, for the next page (a cookie, not the URL, so that
    no link can put words on the page)."""
    text = ("ok:" if ok else "error:") + message[:500]
    encoded = base64.urlsafe_b64encode(text.encode()).decode()
    _cookie(response, request, FLASH_COOKIE, encoded, 60)


def _read_flash(request: Request) -> dict[str, Any] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        text = base64.urlsafe_b64decode(raw.encode()).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    kind, _, message = text.partition(":")
    return {"ok": kind == "ok", "message": message}


def _path_id(request: Request) -> str:
    return str(request.path_params["id"])


def _int(text: str | None, name: str) -> int:
    value = (text or "").strip()
    if not value.isdigit() or len(value) > 19 or int(value) > 2**63 - 1:
        raise ValueError(f"{name}: give a whole number from 0 to 2^63-1")
    return int(value)


def _number(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name}: give a number") from None


def _rule_from_form(form: dict[str, str]) -> dict[str, Any]:
    effect_type = form.get("effect", "status")
    effect: dict[str, Any] = {"type": effect_type}
    if effect_type == "status":
        effect["status"] = _int(form.get("status") or "503", "status")
    elif effect_type == "latency":
        effect["ms"] = _int(form.get("ms") or "1000", "ms")
    operation = form.get("operation") or None
    rule: dict[str, Any] = {
        "match": {"operation": operation} if operation else {"path": "/v1/*"},
        "effect": effect,
        "phase": form.get("phase") or "before",
        "probability": _number(form.get("probability") or "1", "probability"),
    }
    if form.get("account"):
        rule["account"] = form["account"]
    if form.get("duration", "").strip():
        rule["window"] = {"duration": form["duration"].strip()}
    return rule


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") + "Z"


def _quirks(endpoint: Any) -> str:
    """The quirks switched on, as `name` or `name(settings)`."""
    data = endpoint.quirks.model_dump(exclude_defaults=True, exclude_none=True)
    return ", ".join(
        name if value is True else f"{name}({orjson.dumps(value).decode()})"
        for name, value in data.items()
    )
