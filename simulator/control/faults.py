"""`/_sandbox/faults` and `/_sandbox/requests`: fault rules, presets, and the request journal.

Rules for one account count their window on that account's clock; rules for every account
(no `account`) on the server's wall clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from simulator.api import schemas as s
from simulator.api.operations import Op
from simulator.api.runtime import json_response, parse, query, service_of
from simulator.domain.errors import NotFound
from simulator.faults.journal import Journal, RequestFilter
from simulator.faults.models import Duration, Rule, RuleIn
from simulator.faults.presets import PRESETS
from simulator.faults.registry import FaultRegistry
from simulator.runtime import runtime_of

_ERRORS = (400, 401, 404, 413, 415, 422)


class RuleOut(Rule):
    object: Literal["fault_rule"] = "fault_rule"


class RuleList(s.ListOut[RuleOut]):
    """Oldest first."""


class AccountQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class RuleQuery(AccountQuery):
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    cursor: s.Cursor | None = None


class Cleared(BaseModel):
    deleted: int


class PresetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        None, description="An account id; omit for every account."
    )
    duration: Duration | None = Field(
        None, description="Bound every rule of the preset to this window from now (e.g. 15m)."
    )


class PresetOut(BaseModel):
    object: Literal["preset"] = "preset"
    name: str
    summary: str
    rules: list[dict[str, Any]]
    default_duration: str | None = None


class PresetList(BaseModel):
    object: Literal["list"] = "list"
    data: list[PresetOut]


class AppliedPreset(BaseModel):
    object: Literal["applied_preset"] = "applied_preset"
    preset: str
    rules: list[RuleOut]


class CountBody(RequestFilter):
    """The same filters as a JSON body, where `true` is a boolean and `0` is not."""

    model_config = ConfigDict(extra="forbid", strict=True)


class RequestQuery(RequestFilter):
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    cursor: s.Cursor | None = None


class JournalEntry(BaseModel):
    seq: int
    at: str
    request_id: str
    account: str | None
    method: str
    path: str
    operation: str | None
    status: int | None = Field(description="null when the connection was reset or closed.")
    latency_ms: float
    idempotency_key: str | None
    attempt: int | None = Field(description="Attempt number of the Idempotency-Key (1 = first).")
    replayed: bool
    fault: dict[str, Any] | None


class JournalList(s.ListOut[JournalEntry]):
    """Newest first."""


class Count(BaseModel):
    count: int


def _registry(request: Request) -> FaultRegistry:
    return runtime_of(request).faults


def _journal(request: Request) -> Journal:
    return runtime_of(request).journal


def _out(rule: Rule) -> dict[str, Any]:
    return RuleOut(**rule.model_dump(by_alias=True)).model_dump(mode="json", by_alias=True)


def _now_for(request: Request, account: str | None) -> datetime:
    """The clock a new rule's window counts from; 404 for an unknown account."""
    if account is None:
        return service_of(request).wall.now()
    with service_of(request).scope(account) as ctx:
        return ctx.now


async def create_fault(request: Request) -> Response:
    data = await parse(request, _AnyObject, optional=True)
    rule = _registry(request).validate(data.model_dump(), "body")
    stored = _registry(request).add(rule, _now_for(request, rule.account))
    return json_response(_out(stored), 201)


async def list_faults(request: Request) -> Response:
    q = query(request, RuleQuery)
    page = _registry(request).rule_page(q.account, limit=q.limit, cursor=q.cursor)
    return json_response(
        {
            "object": "list",
            "data": [_out(r) for r in page.items],
            "has_more": page.has_more,
            "next_cursor": page.next_cursor,
        }
    )


async def get_fault(request: Request) -> Response:
    return json_response(_out(_registry(request).get(str(request.path_params["id"]))))


async def delete_fault(request: Request) -> Response:
    return json_response(_out(_registry(request).delete(str(request.path_params["id"]))))


async def clear_faults(request: Request) -> Response:
    q = query(request, AccountQuery)
    return json_response(Cleared(deleted=_registry(request).clear(q.account)))


def _preset_out(name: str) -> PresetOut:
    p = PRESETS[name]
    return PresetOut(
        name=p.name, summary=p.summary, rules=list(p.rules), default_duration=p.default_duration
    )


async def list_presets(request: Request) -> Response:
    return json_response(PresetList(data=[_preset_out(n) for n in sorted(PRESETS)]))


async def apply_preset(request: Request) -> Response:
    name = str(request.path_params["name"])
    if name not in PRESETS:
        raise NotFound("preset", name)
    body = await parse(request, PresetIn, optional=True)
    rules = _registry(request).apply_preset(
        name, body.account, body.duration, _now_for(request, body.account)
    )
    return json_response(
        {"object": "applied_preset", "preset": name, "rules": [_out(r) for r in rules]}, 201
    )


async def list_requests(request: Request) -> Response:
    q = query(request, RequestQuery)
    page = _journal(request).find(q, q.limit, q.cursor)
    return json_response(
        {
            "object": "list",
            "data": [e.public() for e in page.items],
            "has_more": page.has_more,
            "next_cursor": page.next_cursor,
        }
    )


async def count_requests(request: Request) -> Response:
    flt = await parse(request, CountBody, optional=True)
    return json_response(Count(count=_journal(request).count(flt)))


async def clear_requests(request: Request) -> Response:
    q = query(request, AccountQuery)
    return json_response(Cleared(deleted=_journal(request).clear(q.account)))


class _AnyObject(BaseModel):
    """The body of POST /_sandbox/faults before the registry validates it as a rule (so error
    paths read `body.effect.status`, and an unknown operation is caught too)."""

    model_config = ConfigDict(extra="allow")


F = "/_sandbox/faults"
OPERATIONS: list[Op] = [
    Op(
        "listFaultPresets",
        "GET",
        f"{F}/presets",
        list_presets,
        "The named fault plans and the rules each creates",
        PresetList,
        errors=(401,),
        tag="Faults",
    ),
    Op(
        "applyFaultPreset",
        "POST",
        f"{F}/presets/{{name}}",
        apply_preset,
        "Create a preset's rules for one account (or all), optionally bounded to a duration",
        AppliedPreset,
        201,
        body=PresetIn,
        body_required=False,
        errors=_ERRORS,
        tag="Faults",
    ),
    Op(
        "createFault",
        "POST",
        F,
        create_fault,
        "Create a fault rule",
        RuleOut,
        201,
        body=RuleIn,
        errors=_ERRORS,
        tag="Faults",
    ),
    Op(
        "listFaults",
        "GET",
        F,
        list_faults,
        "List fault rules (all, or one account's)",
        RuleList,
        query=RuleQuery,
        errors=(401, 422),
        tag="Faults",
    ),
    Op(
        "clearFaults",
        "DELETE",
        F,
        clear_faults,
        "Delete every fault rule (or one account's); always works, even during an outage",
        Cleared,
        query=AccountQuery,
        errors=(401, 422),
        tag="Faults",
    ),
    Op(
        "getFault",
        "GET",
        f"{F}/{{id}}",
        get_fault,
        "Get a fault rule, with how often it fired",
        RuleOut,
        errors=(401, 404),
        tag="Faults",
    ),
    Op(
        "deleteFault",
        "DELETE",
        f"{F}/{{id}}",
        delete_fault,
        "Delete a fault rule; returns it",
        RuleOut,
        errors=(401, 404),
        tag="Faults",
    ),
    Op(
        "listRequests",
        "GET",
        "/_sandbox/requests",
        list_requests,
        "The request journal, newest first, filtered",
        JournalList,
        query=RequestQuery,
        errors=(401, 422),
        tag="Journal",
    ),
    Op(
        "countRequests",
        "POST",
        "/_sandbox/requests/count",
        count_requests,
        "Count journal entries that match (verification)",
        Count,
        body=CountBody,
        body_required=False,
        errors=_ERRORS,
        tag="Journal",
    ),
    Op(
        "clearRequests",
        "DELETE",
        "/_sandbox/requests",
        clear_requests,
        "Forget the journal (or one account's part of it)",
        Cleared,
        query=AccountQuery,
        errors=(401, 422),
        tag="Journal",
    ),
]
