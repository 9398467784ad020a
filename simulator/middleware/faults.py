"""Faults and the request journal for `/v1`: decide (pure, `faults.engine`), act (here, and at
the socket through `faults.sockets`), and record every request in the journal.

Sits after auth and before idempotency (see `create_app`), so a `before` fault acts while
nothing is stored, and an `after` fault lets the operation commit, its event and its saved
idempotent response included, and then loses or spoils the response: a retry with the same
Idempotency-Key replays the committed result.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, MutableMapping
from datetime import datetime
from typing import Any

import orjson

from simulator.api import problems
from simulator.asgi import (
    ACCOUNT_KEY,
    JOURNAL_KEY,
    JOURNALED_KEY,
    REQUEST_ID_KEY,
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    read_body,
)
from simulator.clock import WallClock, to_us, virtual_now
from simulator.domain.errors import Forbidden, SandbankError, ValidationFailed
from simulator.domain.models import Account
from simulator.faults import engine, sockets
from simulator.faults.journal import Entry, Journal
from simulator.faults.models import Hang, Rule
from simulator.faults.presets import PRESETS
from simulator.faults.registry import FaultDice, FaultRegistry
from simulator.paths import UNSURE, PathTable

log = logging.getLogger("sandbank.faults")
FAULT_HEADER = b"sandbank-fault"
_STATUS_TEXT = {
    429: ("rate_limited", "Too many requests", "slow down and retry after the given delay"),
    500: ("internal_error", "Internal error", "the provider failed to process the request"),
    502: ("bad_gateway", "Bad gateway", "an upstream service of the provider failed"),
    503: ("service_unavailable", "Service unavailable", "the provider is temporarily down"),
    504: ("gateway_timeout", "Gateway timeout", "an upstream service of the provider timed out"),
}


# Set by an after-phase fault: the real response (held back) was an idempotent replay.
REPLAYED_KEY = "sandbank.replayed"


class OperationIndex:
    """(method, path) -> operationId, for matching rules and labelling the journal."""

    def __init__(self, ops: Iterable[tuple[str, str, str]]) -> None:
        ops = list(ops)
        self._ops = [(m, engine.path_pattern(p), op_id) for m, p, op_id in ops]
        self._table = PathTable((p, (m,), op_id) for m, p, op_id in ops)
        self.ids = frozenset(op_id for _, _, op_id in self._ops)
        self.templates = {op_id: p for _, p, op_id in ops}

    def resolve(self, method: str, path: str) -> str | None:
        method = "GET" if method == "HEAD" else method
        found = self._table.match(method, path)  # the first op of the list, as the scan below
        if found is not UNSURE:
            return found[0] if isinstance(found, tuple) else None
        for m, pattern, op_id in self._ops:
            if m == method and pattern.match(path):
                return op_id
        return None


class FaultMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        registry: FaultRegistry,
        journal: Journal,
        operations: OperationIndex,
        load_account: Callable[[str], Account | None],
        wall_clock: WallClock,
    ) -> None:
        self.app = app
        self.registry = registry
        self.journal = journal
        self.operations = operations
        self.load_account = load_account
        self.wall = wall_clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        account = scope.get(ACCOUNT_KEY) if scope["type"] == "http" else None
        if account is None:  # not an authenticated /v1 request
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        key = header = None
        for name, value in scope["headers"]:
            if name == b"idempotency-key":
                key = value.decode("latin-1")
            elif name == FAULT_HEADER:
                header = value.decode("latin-1")
        method, path = scope["method"], scope["path"]
        operation = self.operations.resolve(method, path)
        attempt = None
        if key is not None:
            attempt = await self.registry.attempt(account, key, to_us(self.wall.now()))
        status: int | None = None
        replayed = False
        rec = _Recording(self.journal, self.wall, scope, operation, key, attempt, started)

        async def observe(message: MutableMapping[str, Any]) -> None:
            nonlocal status, replayed
            if message["type"] == "http.response.start":
                status = message["status"]
                replayed = (b"idempotent-replayed", b"true") in message.get("headers", ())
                if not scope.get(JOURNALED_KEY):  # stored before the response leaves
                    await rec.save(status, replayed)
            await send(message)

        try:
            try:
                rule, dice = await self._choose(
                    scope, account, method, path, operation, attempt, header
                )
            except SandbankError as err:
                await problems.from_error(err, str(scope.get(REQUEST_ID_KEY, "")))(
                    scope, receive, observe
                )
                return
            if rule is None:
                if self.journal.store is not None:  # stored in the operation's transaction
                    scope[JOURNAL_KEY] = rec.write
                await self.app(scope, receive, observe)
            else:
                fault = {
                    "rule": rule.id,
                    "effect": rule.effect.type,
                    "phase": rule.phase,
                    "preset": rule.preset,
                }
                scope.setdefault("sandbank.log", {})["fault"] = fault
                await self._act(rule, dice, scope, receive, observe)
        finally:
            if not scope.get(JOURNALED_KEY):  # no response was started (reset, empty, hang)
                await rec.save(status, replayed)
            rec.announce()

    # --- deciding --------------------------------------------------------------------------
    async def _choose(  # noqa: PLR0917 - the request's facts, named
        self,
        scope: Scope,
        account: str,
        method: str,
        path: str,
        operation: str | None,
        attempt: int | None,
        header: str | None,
    ) -> tuple[Rule | None, FaultDice | None]:
        rules = self.registry.candidates_for(
            account, method, operation, self.operations.templates.get(operation or "")
        )
        if not rules and header is None:
            return None, None  # the usual request: nothing to decide, no closures to build
        loaded: list[Account] = []

        def the_account() -> Account:
            if not loaded:
                found = self.load_account(account)
                if found is None:  # deleted while the request was in flight
                    raise Forbidden("the account no longer exists")
                loaded.append(found)
            return loaded[0]

        def account_now() -> datetime:
            a = the_account()
            return virtual_now(self.wall.now(), a.clock_offset_us, a.clock_frozen_at_us)

        if header is not None:
            if not the_account().settings.allow_fault_header:
                raise Forbidden(
                    "this account does not accept the Sandbank-Fault header; create it with "
                    '`"settings": {"allow_fault_header": true}`'
                )
            rules = [*self._header_rules(header, account, account_now()), *rules]
        if not rules:
            return None, None
        facts = engine.RequestFacts(
            account=account,
            method=method,
            path=path,
            operation=operation,
            headers=_HeaderView(scope["headers"]),
            attempt=attempt,
        )

        def now_for(rule: Rule) -> datetime:
            if rule.account is not None and (
                rule.active_from is not None or rule.active_until is not None
            ):
                return account_now()
            return self.wall.now()

        def seed_of(_: str) -> int:
            return the_account().seed

        dice = self.registry.dice(account, seed_of)
        return await self.registry.choose(rules, facts, now_for, dice), dice

    def _header_rules(self, header: str, account: str, now: datetime) -> list[Rule]:
        text = header.strip()
        where = "header.Sandbank-Fault"
        if text.startswith("{"):
            try:
                data = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise ValidationFailed(
                    [{"path": where, "type": "json_invalid", "message": "not valid JSON"}]
                ) from None
            if isinstance(data, dict):
                data["account"] = account
            rule = self.registry.validate(data, where)
            return [FaultRegistry.resolve(rule, now, "hdr_inline")]
        rules: list[Rule] = []
        for name in (n.strip() for n in text.split(",")):
            preset = PRESETS.get(name)
            if preset is None:
                raise ValidationFailed(
                    [
                        {
                            "path": where,
                            "type": "unknown_preset",
                            "message": f"{name!r} is neither a preset "
                            f"({', '.join(sorted(PRESETS))}) nor a JSON rule",
                        }
                    ]
                )
            built = preset.build(account, None)
            rules.extend(
                FaultRegistry.resolve(r, now, f"hdr_{name}_{i}", preset=name)
                for i, r in enumerate(built, 1)
            )
        return rules

    # --- acting ----------------------------------------------------------------------------
    async def _act(
        self, rule: Rule, dice: FaultDice | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        effect = rule.effect
        assert dice is not None  # a rule was chosen, so the dice were thrown
        if rule.phase == "before":
            if effect.type == "latency":
                # The request arrived whole, then the provider is slow: read the body first, so
                # a client that gives up during the wait does not leave a cut body behind.
                await read_body(scope, receive)
                await asyncio.sleep(engine.latency_ms(effect, dice) / 1000)
                await self.app(scope, receive, send)
                return
            await self._spoil(rule, scope, receive, send, None)
            return
        captured = _Captured()
        await self.app(scope, receive, captured.send)
        # The journal says what the operation did, whatever the fault makes of its answer.
        scope[REPLAYED_KEY] = (b"idempotent-replayed", b"true") in captured.start["headers"]
        if effect.type == "latency":
            await asyncio.sleep(engine.latency_ms(effect, dice) / 1000)
            await captured.replay(send)
            return
        await self._spoil(rule, scope, receive, send, captured)

    async def _spoil(
        self,
        rule: Rule,
        scope: Scope,
        receive: Receive,
        send: Send,
        real: _Captured | None,
    ) -> None:
        effect = rule.effect
        rid = str(scope.get(REQUEST_ID_KEY, ""))
        if effect.type == "status":
            code, title, default = _STATUS_TEXT[effect.status]
            extra = {"Sandbank-Fault": rule.id}
            if effect.retry_after_s is not None:
                extra["Retry-After"] = str(effect.retry_after_s)
            body = problems.body(
                status=effect.status,
                code=code,
                title=title,
                detail=effect.detail or default,
                request_id=rid,
            )
            await _send(send, effect.status, problems.PROBLEM_JSON, body, extra)
        elif effect.type == "hang":
            await _hang(effect, scope, receive)
        elif effect.type == "reset":
            await sockets.reset(scope, receive)
        elif effect.type == "empty":
            await sockets.close(scope, receive)
        elif effect.type == "malformed":
            whole = (
                real.body if real is not None else b'{"id": "' + rid.encode() + b'", "object": "'
            )
            cut = whole[: max(1, len(whole) // 2)]
            await _send(send, 200, "application/json", cut, {"Sandbank-Fault": rule.id})
        elif real is None:  # pragma: no cover - RuleIn refuses these effects `before`
            raise AssertionError(f"effect {effect.type} needs the real response")
        elif effect.type == "truncate":
            start = dict(real.start)
            start["headers"] = _with_length(real.start, len(real.body))
            await send(start)
            keep = int(len(real.body) * effect.fraction)
            await send({"type": "http.response.body", "body": real.body[:keep], "more_body": True})
            await sockets.close(scope, receive)
        elif effect.type == "dribble":
            start = dict(real.start)
            start["headers"] = _with_length(real.start, len(real.body))
            await send(start)
            size = max(1, -(-len(real.body) // effect.chunks))
            pieces = [real.body[i : i + size] for i in range(0, len(real.body), size)] or [b""]
            pause = effect.ms / 1000 / max(1, len(pieces))
            for i, piece in enumerate(pieces):
                await asyncio.sleep(pause)
                more = i < len(pieces) - 1
                await send({"type": "http.response.body", "body": piece, "more_body": more})
        elif effect.type == "content_type":
            start = dict(real.start)
            headers = [(k, v) for k, v in real.start.get("headers", []) if k != b"content-type"]
            start["headers"] = [*headers, (b"content-type", effect.content_type.encode("latin-1"))]
            await send(start)
            await send({"type": "http.response.body", "body": real.body, "more_body": False})


class _Recording:
    """One request's journal entry: stored in the operation's own transaction (`write`, when
    no fault acts), or before the response starts (`save`), or, when no response starts, at
    the end; the listeners hear of it at the end, with the whole request's latency."""

    def __init__(  # noqa: PLR0917 - the request's facts, named
        self,
        journal: Journal,
        wall: WallClock,
        scope: Scope,
        operation: str | None,
        key: str | None,
        attempt: int | None,
        started: float,
    ) -> None:
        self.journal, self.wall, self.scope = journal, wall, scope
        self.operation, self.key, self.attempt, self.started = operation, key, attempt, started
        self.stored: Entry | None = None

    def entry(self, status: int | None, replayed: bool) -> Entry:
        scope = self.scope
        return Entry(
            seq=0,  # the stored row's
            at=self.wall.now(),
            request_id=str(scope.get(REQUEST_ID_KEY, "")),
            account=scope[ACCOUNT_KEY],
            method=scope["method"],
            path=scope["path"],
            operation=self.operation,
            status=status,
            latency_ms=self.elapsed_ms(),
            idempotency_key=self.key,
            attempt=self.attempt,
            # The journal says what the operation did, whatever a fault makes of its answer.
            replayed=replayed or bool(scope.get(REPLAYED_KEY)),
            fault=scope.get("sandbank.log", {}).get("fault"),
        )

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 3)

    def write(self, tx: Any, status: int, replayed: bool) -> None:
        """In the operation's transaction (`simulator.api.runtime.run`)."""
        self.stored = self.entry(status, replayed)
        self.journal.write(tx, self.stored)

    async def save(self, status: int | None, replayed: bool) -> None:
        """In a group commit of its own, awaited."""
        self.stored = self.entry(status, replayed)
        self.scope[JOURNALED_KEY] = True
        await self.journal.save(self.stored)

    def announce(self) -> None:
        if self.stored is not None:
            self.stored.latency_ms = self.elapsed_ms()
            self.journal.record(self.stored)


class _HeaderView:
    """Lower-case header lookup straight over the ASGI header list (rules look up one or two
    names, so no map is built)."""

    __slots__ = ("_headers",)

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self._headers = headers

    def get(self, name: str, default: str | None = None, /) -> str | None:
        wanted = name.lower().encode("latin-1")
        for key, value in self._headers:
            if key == wanted:
                return value.decode("latin-1")
        return default


class _Captured:
    """The real response, held back so a fault can replace, cut or delay it."""

    def __init__(self) -> None:
        self.start: Message = {
            "type": "http.response.start",
            "status": 500,
            "headers": [],
        }
        self.chunks: list[bytes] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.start = message
        elif message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    async def replay(self, send: Send) -> None:
        await send(self.start)
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


def _with_length(start: Message, length: int) -> list[tuple[bytes, bytes]]:
    headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
    return [*headers, (b"content-length", str(length).encode())]


async def _send(
    send: Send, status: int, media: str, body: bytes, extra: dict[str, str] | None = None
) -> None:
    headers = [
        (b"content-type", media.encode()),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode("latin-1")) for k, v in (extra or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _hang(effect: Hang, scope: Scope, receive: Receive) -> None:
    """Answer nothing until the client gives up (or `max_ms`), then close the connection."""
    try:
        async with asyncio.timeout(effect.max_ms / 1000):
            while (await receive())["type"] != "http.disconnect":
                pass
            return  # the client went away first
    except TimeoutError:
        pass
    await sockets.close(scope, receive)
