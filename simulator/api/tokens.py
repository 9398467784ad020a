"""The token vault's endpoints, once per personality: `token_operations("/v1", "native")` gives
`GET /v1/tokens`, `GET /v1/tokens/{id}` and `POST /v1/tokens/{id}/revoke` over that
personality's tokens (`simulator.vault`), and makes the personality a target of the control
plane's `token_import`. A personality adds them to its operation table with one line."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from simulator import vault
from simulator.api import schemas as s
from simulator.api.operations import Op
from simulator.api.runtime import parse, path_id, query, run
from simulator.api.schemas.common import ListQuery, RequestModel
from simulator.domain.states import TokenStatus
from simulator.domain.vault import Token, TokenType

TAG = "Tokens"


class TokenOut(BaseModel):
    id: str
    object: Literal["token"] = "token"
    personality: str
    type: TokenType
    owner: str = Field(description="The buyer or customer whose instrument it is.")
    fingerprint: str = Field(description="The instrument's identity, the same at any provider.")
    brand: str | None = Field(description="Card network or bank name.")
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    network_reference: str | None = Field(
        description="Network token, bank mandate or credit line reference (never a number)."
    )
    status: TokenStatus
    expires_at: datetime | None
    revoked_at: datetime | None
    expired_at: datetime | None
    imported_from: str | None = Field(description="The source provider's token it replaced.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, token: Token) -> TokenOut:
        return cls.model_validate(token.model_dump())


class TokenListQuery(ListQuery):
    status: TokenStatus | None = None


class RevokeIn(RequestModel):
    pass


def token_operations(prefix: str, personality: str, op_prefix: str = "") -> list[Op]:
    """The vault's read and revoke operations for `personality`, under `prefix`."""
    vault.register_personality(personality, prefix)

    async def list_tokens(request: Request) -> Response:
        q = query(request, TokenListQuery)
        return await run(
            request,
            lambda ctx: s.listed(
                vault.list_tokens(
                    ctx, personality, status=q.status, limit=q.limit, cursor=q.cursor
                ),
                TokenOut.of,
            ),
        )

    async def get_token(request: Request) -> Response:
        return await run(
            request, lambda ctx: TokenOut.of(vault.get(ctx, personality, path_id(request)))
        )

    async def revoke_token(request: Request) -> Response:
        await parse(request, RevokeIn, optional=True)
        return await run(
            request, lambda ctx: TokenOut.of(vault.revoke(ctx, personality, path_id(request)))
        )

    return [
        Op(
            f"{op_prefix}listTokens",
            "GET",
            f"{prefix}/tokens",
            list_tokens,
            "List the payment tokens in the vault, newest first; filter by status",
            s.ListOut[TokenOut],
            query=TokenListQuery,
            errors=(401, 422),
            tag=TAG,
        ),
        Op(
            f"{op_prefix}getToken",
            "GET",
            f"{prefix}/tokens/{{id}}",
            get_token,
            "Get a payment token",
            TokenOut,
            errors=(401, 404, 422),
            tag=TAG,
        ),
        Op(
            f"{op_prefix}revokeToken",
            "POST",
            f"{prefix}/tokens/{{id}}/revoke",
            revoke_token,
            "Revoke an active payment token (an expired or revoked one: 409)",
            TokenOut,
            body=RevokeIn,
            body_required=False,
            errors=(400, 401, 404, 409, 413, 415, 422),
            tag=TAG,
        ),
    ]
