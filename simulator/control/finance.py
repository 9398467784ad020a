"""`/_sandbox` for money movement: open disputes as the buyer's side, and switch on
settlement-report drift (with the record of what was injected)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from simulator.api import schemas as s
from simulator.api.operations import Op
from simulator.api.runtime import json_response, parse, path_id, service_of
from simulator.context import Ctx
from simulator.domain.finance import DISPUTE_REASONS, DriftSettings
from simulator.domain.money import MAX_AMOUNT
from simulator.finance import DriftState

Count = Annotated[int, Field(ge=0, le=1000)]
Probability = Annotated[float, Field(ge=0, le=1)]
DriftValue = Count | Probability
_DRIFT_TEXT = (
    "An integer N: the next N settlements get one such deviation each (counted down). A number "
    "with a fraction point (0.25, 1.0): the probability, drawn from the account's seeded dice, "
    "that each settlement gets one."
)


class DisputeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    reason: Literal[DISPUTE_REASONS] = "general"  # type: ignore[valid-type]
    amount: Annotated[int, Field(ge=1, le=MAX_AMOUNT)] | None = Field(
        None, description="Minor units; by default everything captured, not refunded or disputed."
    )


class DriftIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    missing_line: DriftValue = Field(0, description="A true line left out of the report.")
    duplicate_line: DriftValue = Field(0, description="A line reported twice.")
    off_by_one_cent: DriftValue = Field(0, description="A line's gross and net one unit high.")
    late_line: DriftValue = Field(
        0, description="A line left out of one report and given in the next one instead."
    )
    unknown_order: DriftValue = Field(0, description="A line for an order that does not exist.")


class DriftOut(BaseModel):
    account_id: str
    settings: DriftIn = Field(description="What is still switched on (counts count down).")
    held_back_lines: int = Field(description="Lines a `late_line` holds for the next report.")
    injected: list[s.DriftInjectionOut]


async def open_dispute(request: Request) -> Response:
    body = await parse(request, DisputeIn, optional=True)
    oid = path_id(request)
    with service_of(request).scope_for("order", oid) as ctx:
        dispute = service_of(request).finance.open_dispute(
            ctx, oid, reason=body.reason, amount=body.amount
        )
        return json_response(s.DisputeOut.of(dispute), 201)


def _drift_out(ctx: Ctx, state: DriftState, request: Request) -> DriftOut:
    injected = service_of(request).finance.injections(ctx)
    return DriftOut(
        account_id=ctx.aid,
        settings=DriftIn.model_validate(state.settings.model_dump()),
        held_back_lines=len(state.held_back),
        injected=[s.DriftInjectionOut.of(x) for x in injected],
    )


async def get_drift(request: Request) -> Response:
    with service_of(request).scope(path_id(request)) as ctx:
        state = service_of(request).finance.drift_state(ctx)
        return json_response(_drift_out(ctx, state, request))


async def set_drift(request: Request) -> Response:
    body = await parse(request, DriftIn, optional=True)
    with service_of(request).scope(path_id(request)) as ctx:
        state = service_of(request).finance.set_drift(
            ctx, DriftSettings.model_validate(body.model_dump())
        )
        return json_response(_drift_out(ctx, state, request))


_W = (400, 401, 404, 409, 413, 415, 422)
DRIFT = "/_sandbox/accounts/{id}/settlement_drift"
OPERATIONS: list[Op] = [
    Op(
        "openDispute",
        "POST",
        "/_sandbox/orders/{id}/disputes",
        open_dispute,
        "Act as the buyer: dispute a captured order (its amount is held from settlements)",
        s.DisputeOut,
        201,
        body=DisputeIn,
        body_required=False,
        errors=_W,
        tag="Money",
    ),
    Op(
        "getSettlementDrift",
        "GET",
        DRIFT,
        get_drift,
        "Settlement-report drift switches, and every deviation injected so far",
        DriftOut,
        errors=(401, 404),
        tag="Money",
    ),
    Op(
        "setSettlementDrift",
        "PUT",
        DRIFT,
        set_drift,
        "Replace the drift switches (`{}` turns drift off); the record of injections stays",
        DriftOut,
        body=DriftIn,
        body_required=False,
        errors=_W,
        tag="Money",
        description=_DRIFT_TEXT,
    ),
]
