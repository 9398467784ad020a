"""`POST /_sandbox/accounts/{id}/token_import`: the receiving provider's side of a token
migration. The body carries rows of another provider's `token_migration` export file (its
JSON-lines rows as they are); the answer is the old-token -> new-token map. Idempotent by
construction (`simulator.vault.import_tokens`): the same rows again create nothing and answer
the same map; a row that changes an imported token is a 409 and nothing is stored."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator
from starlette.requests import Request
from starlette.responses import Response

from simulator import vault
from simulator.api.operations import Op
from simulator.api.runtime import json_response, parse, path_id, service_of
from simulator.api.schemas.common import RequestModel, Rfc3339, Text
from simulator.domain.states import TokenStatus
from simulator.domain.vault import TokenType, looks_like_a_number

MAX_ROWS = 1000  # a migration file is sent in parts of at most this many rows
Short = Annotated[str, Field(min_length=1, max_length=64)]


class TokenRowIn(RequestModel):
    """One row of a `token_migration` file (the export's columns; `token` is the source's)."""

    token: Short = Field(description="The source provider's token.")
    imported_from: Short | None = None
    personality: Short | None = Field(None, description="The source's personality.")
    type: TokenType
    owner: Text
    fingerprint: Annotated[str, Field(pattern=r"^[0-9a-f]{16,64}$")]
    brand: Short | None = None
    last4: Annotated[str, Field(pattern=r"^[0-9]{4}$")] | None = None
    exp_month: Annotated[int, Field(ge=1, le=12)] | None = None
    exp_year: Annotated[int, Field(ge=2000, le=2200)] | None = None
    network_reference: Text | None = None
    status: TokenStatus = "active"
    expires_at: Rfc3339 | None = None
    created_at: Rfc3339 | None = None
    updated_at: Rfc3339 | None = None

    @field_validator("owner", "network_reference", "brand", "token")
    @classmethod
    def _no_numbers(cls, value: str | None) -> str | None:
        if value is not None and looks_like_a_number(value):
            raise ValueError("looks like a card or account number: a token file never has one")
        return value


class TokenImportIn(RequestModel):
    personality: Short = Field(
        description="The receiving personality: native (/v1), gateway (/gateway/v1), ..."
    )
    tokens: list[TokenRowIn] = Field(max_length=MAX_ROWS)


class TokenMapping(BaseModel):
    source_token: str
    token: str = Field(description="The new token at this provider.")
    status: TokenStatus
    created: bool = Field(description="Made by this import (false: an earlier one made it).")


class TokenImportOut(BaseModel):
    object: Literal["token_import"] = "token_import"
    account_id: str
    personality: str
    created: int = Field(description="Tokens this import made (0 on a repeat).")
    map: list[TokenMapping] = Field(description="One entry per row, in the rows' order.")


async def token_import(request: Request) -> Response:
    body = await parse(request, TokenImportIn)
    rows = [row.model_dump() for row in body.tokens]
    with service_of(request).scope(path_id(request)) as ctx:
        done = vault.import_tokens(ctx, body.personality, rows)
        made = {item.token.id for item in done if item.created}
        return json_response(
            TokenImportOut(
                account_id=ctx.aid,
                personality=body.personality,
                created=len(made),
                map=[
                    TokenMapping(
                        source_token=item.source_token,
                        token=item.token.id,
                        status=item.token.status,
                        created=item.created,
                    )
                    for item in done
                ],
            )
        )


OPERATIONS: list[Op] = [
    Op(
        "importTokens",
        "POST",
        "/_sandbox/accounts/{id}/token_import",
        token_import,
        "Import another provider's payment tokens (rows of its `token_migration` export file); "
        "answers the old-token -> new-token map. The same rows again create nothing",
        TokenImportOut,
        body=TokenImportIn,
        errors=(400, 401, 404, 409, 413, 415, 422),
        tag="Tokens",
    )
]
