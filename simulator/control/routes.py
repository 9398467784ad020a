"""`/_sandbox/*`, authorised by the admin token. Its own document: contracts/sandbox.yaml."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated, Any, Literal, cast

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from simulator import stepping
from simulator.api import schemas as s
from simulator.api.operations import Op
from simulator.api.runtime import json_response, parse, path_id, query, service_of
from simulator.clock import parse_duration
from simulator.control.health import Health, health
from simulator.dialects.creditkey.credentials import credentials
from simulator.domain.errors import ValidationFailed
from simulator.domain.models import (
    DEFAULT_FEE_BPS,
    Account,
    AccountSettings,
    GatewayFees,
    VcardFees,
)
from simulator.domain.money import CURRENCIES
from simulator.runtime import runtime_of


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _default_fees() -> dict[s.Terms, int]:
    return cast("dict[s.Terms, int]", dict(DEFAULT_FEE_BPS))


class GatewayFeesIn(GatewayFees):
    """The same knobs and bounds as the stored setting; unknown keys refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class VcardFeesIn(VcardFees):
    """The same knobs and bounds as the stored setting; unknown keys refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class AccountSettingsIn(Strict):
    checkout_ttl: Annotated[int, Field(ge=1, le=366 * 86400)] = 24 * 3600
    authorization_ttl: Annotated[int, Field(ge=1, le=366 * 86400)] = 30 * 24 * 3600
    review_delay: Annotated[int, Field(ge=0, le=366 * 86400)] = 2 * 3600
    idempotency_ttl: Annotated[int, Field(ge=1, le=366 * 86400)] = 24 * 3600
    default_currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    allow_fault_header: bool = Field(
        False, description="Accept one-off faults in the `Sandbank-Fault` request header."
    )
    webhook_schedule_s: Annotated[
        list[Annotated[int, Field(ge=0, le=30 * 86400)]], Field(min_length=1, max_length=20)
    ] = Field(
        default_factory=lambda: [0, 5, 300, 1800, 7200, 18000, 36000, 36000],
        description="Seconds before each webhook attempt (the first is usually 0).",
    )
    webhook_timeout_ms: Annotated[int, Field(ge=100, le=60_000)] = 15_000
    settlement_delay_days: Annotated[int, Field(ge=0, le=30)] = Field(
        2, description="Batches are paid out this many business days after their day (T+N)."
    )
    discount_fee_bps: dict[s.Terms, Annotated[int, Field(ge=0, le=10_000)]] = Field(
        default_factory=_default_fees,
        description="Merchant discount fee per term, basis points of the captured amount.",
    )
    late_probability: Annotated[float, Field(ge=0, le=1)] = Field(
        0.0, description="Chance (seeded) that a repayment is paid late, without a magic value."
    )
    default_probability: Annotated[float, Field(ge=0, le=1)] = Field(
        0.0, description="Chance (seeded) that a repayment defaults, without a magic value."
    )
    late_fee_bps: Annotated[int, Field(ge=0, le=10_000)] = 150
    late_payment_days: Annotated[int, Field(ge=1, le=365)] = 10
    default_after_days: Annotated[int, Field(ge=1, le=365)] = 30
    dispute_response_days: Annotated[int, Field(ge=1, le=365)] = 7
    dispute_decision_days: Annotated[int, Field(ge=1, le=365)] = 14
    dispute_win_probability: Annotated[float, Field(ge=0, le=1)] = 0.5
    gateway_fees: GatewayFeesIn = Field(
        default_factory=GatewayFeesIn,
        description="Gateway + net terms (`/gateway/v1`): the gateway's fee per charge (card: "
        "bps + fixed; ACH: bps, capped) and the business days an ACH debit takes to clear.",
    )
    vcard_fees: VcardFeesIn = Field(
        default_factory=VcardFeesIn,
        description="Virtual cards (`/vcards/v1`): interchange and scheme fee per card "
        "transaction (bps + fixed each), business days to clear, how long a card is valid.",
    )
    lockbox_fee: Annotated[int, Field(ge=0, le=100_000)] = Field(
        0,
        description="Traditional invoicing (`/invoicing/v1`): the lockbox's fee per remittance "
        "deposited, minor units (on the remittance's first settlement line).",
    )

    @field_validator("default_currency")
    @classmethod
    def _known_currency(cls, code: str) -> str:
        if code not in CURRENCIES:
            raise ValueError(f"{code!r} is not an ISO 4217 currency code")
        return code


class AccountCreate(Strict):
    name: Annotated[str, Field(min_length=1, max_length=100)] = "sandbox"
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = None
    settings: AccountSettingsIn | None = None


class SeedIn(Strict):
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)]


class AdvanceIn(Strict):
    model_config = ConfigDict(
        extra="forbid",
        strict=False,
        json_schema_extra={"oneOf": [{"required": ["by"]}, {"required": ["to"]}]},
    )
    by: Annotated[str, Field(min_length=1, max_length=40, examples=["30d", "1h30m"])] | None = None
    to: AwareDatetime | None = None


class ReviewIn(Strict):
    decision: Literal["approve", "decline"]


class ClockOut(BaseModel):
    account_id: str
    now: datetime
    frozen: bool


class CreditKeyKeys(BaseModel):
    public_key: str
    shared_secret: str


class AccountOut(BaseModel):
    id: str
    object: Literal["account"] = "account"
    name: str
    api_key: str
    creditkey: CreditKeyKeys = Field(
        description="Credentials for Credit Key's v1 dialect (`/app/ecomm/*`, `/ecomm/*`): "
        "give them to a Credit Key SDK or plugin as its public key and shared secret."
    )
    seed: int
    settings: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, a: Account) -> AccountOut:
        return cls(
            id=a.id,
            name=a.name,
            api_key=a.api_key,
            creditkey=CreditKeyKeys(**dataclasses.asdict(credentials(a))),
            seed=a.seed,
            settings=a.settings.model_dump(),
            created_at=a.created_at,
        )


class Dump(BaseModel):
    model_config = ConfigDict(extra="allow")
    account: dict[str, Any]
    buyers: list[dict[str, Any]]
    checkouts: list[dict[str, Any]]
    orders: list[dict[str, Any]]
    events: list[dict[str, Any]]
    scheduled: list[dict[str, Any]]
    money: list[dict[str, Any]] = Field(
        description="Settlement lines, settlements, disputes and drift records, grouped by "
        "kind (`line`, `settlement`, `dispute`, `drift`, `drift_injection`)."
    )


async def create_account(request: Request) -> Response:
    body = await parse(request, AccountCreate, optional=True)
    settings = AccountSettings(**body.settings.model_dump()) if body.settings else None
    account = runtime_of(request).accounts.create(name=body.name, seed=body.seed, settings=settings)
    return json_response(AccountOut.of(account), 201)


async def list_accounts(request: Request) -> Response:
    q = query(request, s.ListQuery)
    page = runtime_of(request).accounts.list(limit=q.limit, cursor=q.cursor)
    return json_response(s.listed(page, AccountOut.of))


async def get_account(request: Request) -> Response:
    with service_of(request).scope(path_id(request)) as ctx:
        return json_response(AccountOut.of(ctx.account))


async def reset_account(request: Request) -> Response:
    account = runtime_of(request).accounts.reset(path_id(request))
    return json_response(AccountOut.of(account))


async def set_seed(request: Request) -> Response:
    body = await parse(request, SeedIn)
    account = runtime_of(request).accounts.set_seed(path_id(request), body.seed)
    return json_response(AccountOut.of(account))


async def get_clock(request: Request) -> Response:
    with service_of(request).scope(path_id(request)) as ctx:
        return json_response(_clock(ctx.account.id, ctx.now, ctx.account))


def _clock(aid: str, now: datetime, account: Account) -> ClockOut:
    return ClockOut(account_id=aid, now=now, frozen=account.clock_frozen_at_us is not None)


async def advance_clock(request: Request) -> Response:
    body = await parse(request, AdvanceIn)
    if (body.by is None) == (body.to is None):
        raise ValidationFailed(
            [{"path": "body", "type": "one_of", "message": "give exactly one of 'by' and 'to'"}]
        )
    by = parse_duration(body.by) if body.by is not None else None
    # In bounded steps: other accounts' requests keep being served (`simulator.stepping`).
    now = await stepping.advance_clock(service_of(request), path_id(request), by=by, to=body.to)
    with service_of(request).scope(path_id(request), write=False) as ctx:
        return json_response(_clock(ctx.account.id, now, ctx.account))


async def freeze_clock(request: Request) -> Response:
    with service_of(request).scope(path_id(request)) as ctx:
        now = service_of(request).freeze_clock(ctx, True)
        return json_response(_clock(ctx.account.id, now, ctx.account))


async def unfreeze_clock(request: Request) -> Response:
    with service_of(request).scope(path_id(request)) as ctx:
        now = service_of(request).freeze_clock(ctx, False)
        return json_response(_clock(ctx.account.id, now, ctx.account))


async def dump(request: Request) -> Response:
    """Streamed a page at a time: memory stays flat and other requests go on (issue #17)."""
    service = service_of(request)
    with service.scope(path_id(request), write=False) as ctx:
        head = service.dump_head(ctx)
    return StreamingResponse(
        service.store.dump_stream(ctx.aid, head), media_type="application/json"
    )


async def approve_checkout(request: Request) -> Response:
    body = await parse(request, s.BuyerApproval, optional=True)
    cid = path_id(request)
    with service_of(request).scope_for("checkout", cid) as ctx:
        return json_response(
            ctx.shown(s.CheckoutOut.of, service_of(request).approve_checkout(ctx, cid, body.terms))
        )


async def decline_checkout(request: Request) -> Response:
    cid = path_id(request)
    with service_of(request).scope_for("checkout", cid) as ctx:
        return json_response(
            ctx.shown(s.CheckoutOut.of, service_of(request).decline_checkout(ctx, cid))
        )


async def review_order(request: Request) -> Response:
    body = await parse(request, ReviewIn)
    oid = path_id(request)
    with service_of(request).scope_for("order", oid) as ctx:
        return json_response(
            ctx.shown(s.OrderOut.of, service_of(request).review_order(ctx, oid, body.decision))
        )


_W = (400, 401, 404, 409, 413, 415, 422)
A = "/_sandbox/accounts/{id}"
OPERATIONS: list[Op] = [
    Op(
        "health",
        "GET",
        "/_sandbox/health",
        health,
        "Each component's state and versions (no token needed); 503 when one is down",
        Health,
        also={503: "A component is down (`status` degraded); the body says which"},
        tag="Health",
    ),
    Op(
        "createAccount",
        "POST",
        "/_sandbox/accounts",
        create_account,
        "Create a sandbox account; returns its id and API key",
        AccountOut,
        201,
        body=AccountCreate,
        body_required=False,
        errors=_W,
        tag="Accounts",
    ),
    Op(
        "listAccounts",
        "GET",
        "/_sandbox/accounts",
        list_accounts,
        "List accounts, oldest first (`limit`, `cursor`: `next_cursor` of the last page)",
        s.ListOut[AccountOut],
        query=s.ListQuery,
        errors=(401, 422),
        tag="Accounts",
    ),
    Op(
        "getAccount",
        "GET",
        A,
        get_account,
        "Get an account",
        AccountOut,
        errors=(401, 404),
        tag="Accounts",
    ),
    Op(
        "resetAccount",
        "POST",
        f"{A}/reset",
        reset_account,
        "Delete every object of the account; keep id, key, seed; restart its RNG and clock",
        AccountOut,
        errors=(401, 404),
        tag="Accounts",
    ),
    Op(
        "setSeed",
        "PUT",
        f"{A}/seed",
        set_seed,
        "Set the account seed (restarts its random sequence)",
        AccountOut,
        body=SeedIn,
        errors=_W,
        tag="Accounts",
    ),
    Op(
        "getClock",
        "GET",
        f"{A}/clock",
        get_clock,
        "The account's clock",
        ClockOut,
        errors=(401, 404),
        tag="Clock",
    ),
    Op(
        "advanceClock",
        "POST",
        f"{A}/clock/advance",
        advance_clock,
        "Advance by a duration (`30d`, `1h30m`) or to an RFC 3339 time; runs what falls due",
        ClockOut,
        body=AdvanceIn,
        errors=_W,
        tag="Clock",
    ),
    Op(
        "freezeClock",
        "POST",
        f"{A}/clock/freeze",
        freeze_clock,
        "Stop the account clock where it is",
        ClockOut,
        errors=(401, 404),
        tag="Clock",
    ),
    Op(
        "unfreezeClock",
        "POST",
        f"{A}/clock/unfreeze",
        unfreeze_clock,
        "Let the account clock run again from where it stands",
        ClockOut,
        errors=(401, 404),
        tag="Clock",
    ),
    Op(
        "dumpAccount",
        "GET",
        f"{A}/dump",
        dump,
        "Everything the account holds, as JSON",
        Dump,
        errors=(401, 404),
        tag="Accounts",
    ),
    Op(
        "buyerApprove",
        "POST",
        "/_sandbox/checkouts/{id}/approve",
        approve_checkout,
        "Act as the buyer: accept the checkout with terms",
        s.CheckoutOut,
        body=s.BuyerApproval,
        body_required=False,
        errors=_W,
        tag="Buyer and underwriter",
    ),
    Op(
        "buyerDecline",
        "POST",
        "/_sandbox/checkouts/{id}/decline",
        decline_checkout,
        "Act as the buyer: decline the checkout",
        s.CheckoutOut,
        errors=_W,
        tag="Buyer and underwriter",
    ),
    Op(
        "reviewOrder",
        "POST",
        "/_sandbox/orders/{id}/review",
        review_order,
        "Act as the underwriter on a pending review",
        s.OrderOut,
        body=ReviewIn,
        errors=_W,
        tag="Buyer and underwriter",
    ),
]
