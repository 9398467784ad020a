"""Request plumbing shared by the endpoints: body limits, parsing, and `run`, which executes an
operation inside one account transaction and saves its idempotent result in that same
transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from simulator.api import body, problems
from simulator.asgi import (
    ACCOUNT_KEY,
    IDEMPOTENCY_KEY,
    JOURNAL_KEY,
    JOURNALED_KEY,
    REQUEST_ID_KEY,
    IdempotentRequest,
    read_body,
)
from simulator.context import Ctx
from simulator.domain.errors import (
    IdempotencyKeyReused,
    SandbankError,
    StoreBusy,
    UnsupportedMediaType,
    ValidationFailed,
)
from simulator.domain.records import SavedResponse
from simulator.runtime import runtime_of
from simulator.service import ProviderService
from simulator.webhooks.service import WebhookService

M = TypeVar("M", bound=BaseModel)
JSON = "application/json"


READS = frozenset({"GET", "HEAD"})  # HEAD: a GET route's answer without its body


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == JSON or (media.startswith("application/") and media.endswith("+json"))


async def parse(request: Request, model: type[M], *, optional: bool = False) -> M:
    """Body -> model: 413 too large, 415 not JSON or not UTF-8, 400 malformed JSON (or a
    duplicate key, or U+0000 in a string), 422 schema violations."""
    raw = await read_body(request.scope, request.receive)
    if optional and body.is_empty(raw):
        return model()
    content_type = request.headers.get("content-type", "")
    if not _is_json(content_type):
        raise UnsupportedMediaType("send the body as application/json")
    body.check_charset(content_type)
    body.check(raw)  # duplicate keys, U+0000 (simulator/api/body.py)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise body.malformed() from None
        raise problems.validation(exc, "body") from None


def query(request: Request, model: type[M]) -> M:
    params = request.query_params
    data: dict[str, Any] = {}
    for key in params:
        values = params.getlist(key)
        if len(values) > 1:
            raise ValidationFailed(
                [{"path": f"query.{key}", "message": "given more than once", "type": "duplicate"}]
            )
        data[key] = values[0]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise problems.validation(exc, "query") from None


def request_id(request: Request) -> str:
    return str(request.scope.get(REQUEST_ID_KEY, "req_unknown"))


class Refused(BaseModel):
    """An operation's answer that is an error *and* keeps what the operation stored: a card
    network records a decline (its count, its event) while the merchant gets a 402. Return it
    instead of raising, which would undo everything."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    error: SandbankError


def json_response(payload: BaseModel | dict[str, Any], status: int = 200) -> Response:
    data = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
    return Response(orjson.dumps(data), status, media_type=JSON)


async def run(
    request: Request,
    operation: Callable[[Ctx], BaseModel],
    status: int = 200,
    *,
    reusable: bool = False,
) -> Response:
    """Execute `operation` in the caller's account transaction.

    `reusable`: a read whose answer is a function of the stored rows and the request's path
    and query alone (no clock, no header): its answer is reused while those rows are unchanged
    (`simulator.api.reads`).

    With an Idempotency-Key: a saved result is replayed (`Idempotent-Replayed: true`), a saved
    result for another request is a 422, and otherwise this result, success or domain error, is
    saved in the same transaction as the state it produced.

    The transaction's COMMIT is shared with the operations of the same event-loop turn
    (`Store.grouped`); the response, whatever it says, leaves only once that COMMIT is done.
    """
    if request.method in READS:
        if reusable and IDEMPOTENCY_KEY not in request.scope:
            return _reused(request, operation, status)
        # Reads write nothing, so they gain nothing from a shared COMMIT; alone, in a snapshot
        # of committed data that takes no lock (work due first: `simulator.api.guard`).
        with service_of(request).scope(request.scope[ACCOUNT_KEY], write=False) as ctx:
            return _execute(ctx, request, operation, status)
    await service_of(request).store.writable()  # the lock, awaited off the loop
    pending: list[Awaitable[None]] = []
    try:
        response = _grouped(request, operation, status, pending)
    except Exception:
        if pending:
            await pending[0]  # what the error says was read in the group: it must be kept too
        raise
    try:
        await pending[0]
    except Exception:
        request.scope.pop(JOURNALED_KEY, None)  # its journal entry was not kept either
        raise
    return response


def _reused(request: Request, operation: Callable[[Ctx], BaseModel], status: int) -> Response:
    """A reusable read: its kept answer while still valid, else read as any read and kept."""
    reads = runtime_of(request).reads
    scope = request.scope
    key = (scope[ACCOUNT_KEY], scope["path"], scope["query_string"])
    version = reads.version()  # before the snapshot: a later commit shows as a new version
    kept = reads.get(key, version)
    if kept is not None:
        return Response(kept.body, kept.status, media_type=kept.media_type)
    with service_of(request).scope(scope[ACCOUNT_KEY], write=False) as ctx:
        response = _execute(ctx, request, operation, status)
    reads.keep(key, version, ctx, response.body, response.status_code, response.media_type)
    return response


def service_of(request: Request) -> ProviderService:
    """The app's provider service (endpoints and the control plane reach it this way)."""
    return runtime_of(request).service


def webhooks_of(request: Request) -> WebhookService:
    return runtime_of(request).webhooks


def path_id(request: Request) -> str:
    """The `{id}` of the route."""
    return str(request.path_params["id"])


def _grouped(
    request: Request,
    operation: Callable[[Ctx], BaseModel],
    status: int,
    pending: list[Awaitable[None]],
) -> Response:
    """The operation in the current group; its commit waiter goes into `pending`. (A function
    of its own, so that nothing of the work outlives it while the response waits.)"""
    journal: Callable[[Any, int, bool], None] | None = request.scope.get(JOURNAL_KEY)
    with service_of(request).shared_scope(request.scope[ACCOUNT_KEY]) as (ctx, committed):
        pending.append(committed)
        response = _execute(ctx, request, operation, status)
        if journal is not None:  # the request's journal entry, in the same transaction
            replayed = response.headers.get("idempotent-replayed") == "true"
            journal(ctx.tx, response.status_code, replayed)
    if journal is not None:
        request.scope[JOURNALED_KEY] = True
    return response


def _json(ctx: Ctx, result: BaseModel) -> bytes:
    """The answer's JSON bytes: straight from pydantic's serializer (no intermediate dict), or
    the JSON an event's snapshot of this very model already has (`Ctx.shown`), unless the
    model shapes its own JSON by overriding `model_dump` (the Credit Key dialect's answers
    write Decimal dollars as numbers)."""
    if type(result).model_dump is BaseModel.model_dump:
        known = ctx.json_of(result)
        return known if known is not None else result.__pydantic_serializer__.to_json(result)
    return orjson.dumps(result.model_dump(mode="json"))


def _execute(
    ctx: Ctx, request: Request, operation: Callable[[Ctx], BaseModel], status: int
) -> Response:
    service = service_of(request)
    idem: IdempotentRequest | None = request.scope.get(IDEMPOTENCY_KEY)
    if idem is not None:
        saved = service.saved_response(ctx, idem.key)
        if saved is not None:
            if saved.fingerprint != idem.fingerprint:
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was used with a different request; use a new key"
                )
            return Response(
                saved.body,
                saved.status,
                {"Idempotent-Replayed": "true"},
                media_type=saved.content_type,
            )
    mark = len(ctx.events)
    # A read writes nothing of its own (due jobs ran when the scope opened), so it needs no
    # savepoint to undo: two statements fewer on the busiest path.
    undo = ctx.tx.savepoint() if request.method not in READS else contextlib.nullcontext()
    try:
        with undo:
            result = operation(ctx)
        if isinstance(result, Refused):
            err = result.error
            body, code = problems.error_body(err, request_id(request)), err.status
            media = problems.PROBLEM_JSON
        else:
            body, code, media = _json(ctx, result), status, JSON
    except StoreBusy:
        raise  # not the operation's answer: never saved for a replay
    except SandbankError as err:
        del ctx.events[mark:]
        rid = request_id(request)
        body, code, media = problems.error_body(err, rid), err.status, problems.PROBLEM_JSON
    if idem is not None:
        service.save_response(ctx, idem.key, SavedResponse(idem.fingerprint, code, body, media))
    return Response(body, code, media_type=media)
