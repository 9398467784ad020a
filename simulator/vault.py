"""The token vault: every personality's payment tokens, per account, on the account's clock
(issue #15). A token is `active` until its instrument expires on the account clock (a job at
`expires_at`, run in time order with the others) or it is revoked; both are final.

Registering a personality's tokens (the one call a personality makes)
----------------------------------------------------------------------
Where a buyer first uses an instrument (an order authorized on a credit line, an invoice
created with a card on file, a virtual card issued), the personality's service calls

    vault.register_instrument(ctx, personality="vcards", type_="card", owner=customer_key)

and gets the owner's active token of that type back (the same one on every later call; a new
one after the last expired or was revoked). Pass `details=` (brand, last4, exp_month,
exp_year, network_reference, expires_at) when the personality knows them (a virtual card's
own expiry); otherwise they are derived from the fingerprint. To publish the read and revoke
endpoints, add `*token_operations(PREFIX, "vcards")` (`simulator.api.tokens`) to the
personality's operation table: that also makes the personality a known target of
`POST /_sandbox/accounts/{id}/token_import`.

Why these rules:
- Ids and details are derived from what makes a token unique (account, personality, type,
  owner, generation; for an import: the source token), never drawn from the account's RNG:
  adding tokens to a flow does not shift the ids of what comes after it, and an import can
  recognise a token it already made.
- An import is all or nothing: every row is checked (against the rows before it and the tokens
  already imported) before anything is stored, so a conflicting re-import (409) leaves the vault
  as it was, and the same file again creates nothing and answers the same map.
- Vault changes emit no events yet (tokens are read by their API and exported in
  `token_migration`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from simulator.clock import to_us
from simulator.context import Ctx
from simulator.domain.errors import Conflict, NotFound, ValidationFailed
from simulator.domain.records import Page
from simulator.domain.vault import Token, TokenType, fingerprint, instrument, token_id

KIND = "token"
JOB_TOKEN_EXPIRE = "token.expire"  # noqa: S105 - a job kind, not a secret
# Personalities whose tokens the vault holds: name -> API prefix (`token_operations` adds).
PERSONALITIES: dict[str, str] = {"native": "/v1", "gateway": "/gateway/v1"}


def register_personality(name: str, prefix: str) -> None:
    PERSONALITIES[name] = prefix


def _save(ctx: Ctx, token: Token) -> None:
    token.updated_at = ctx.now
    ctx.tx.save_finance(
        ctx.aid, KIND, token, ref=token.personality, owner=token.owner, status=token.status
    )


def _schedule_expiry(ctx: Ctx, token: Token) -> None:
    if token.status == "active" and token.expires_at is not None:
        ctx.tx.schedule(
            ctx.aid, max(to_us(token.expires_at), ctx.now_us), JOB_TOKEN_EXPIRE, token.id
        )


def register_instrument(
    ctx: Ctx,
    *,
    personality: str,
    type_: TokenType,
    owner: str,
    details: Mapping[str, Any] | None = None,
) -> Token:
    """The owner's active token of this type at this personality, made on first use."""
    active = ctx.tx.finance_all(Token, ctx.aid, KIND, ref=personality, owner=owner, status="active")
    found = next((t for t in active if t.type == type_), None)
    if found is not None:
        return found
    generation = 0
    while ctx.tx.finance(
        Token, ctx.aid, KIND, ident := _id(ctx, personality, type_, owner, generation)
    ):
        generation += 1
    print_ = fingerprint(ctx.aid, type_, owner)
    shown = {**instrument(type_, owner, print_, ctx.now), **(details or {})}
    token = Token(
        id=ident,
        personality=personality,
        type=type_,
        owner=owner,
        fingerprint=print_,
        created_at=ctx.now,
        updated_at=ctx.now,
        **shown,
    )
    _save(ctx, token)
    _schedule_expiry(ctx, token)
    return token


def _id(ctx: Ctx, personality: str, type_: str, owner: str, generation: int) -> str:
    return token_id(ctx.aid, personality, type_, owner, str(generation))


def get(ctx: Ctx, personality: str, ident: str) -> Token:
    token = ctx.tx.finance(Token, ctx.aid, KIND, ident)
    if token is None or token.personality != personality:
        raise NotFound("token", ident)
    return token


def list_tokens(
    ctx: Ctx, personality: str, *, status: str | None, limit: int, cursor: str | None
) -> Page[Token]:
    """Newest first."""
    return ctx.tx.finance_page(
        Token, ctx.aid, KIND, ref=personality, status=status, limit=limit, cursor=cursor
    )


def revoke(ctx: Ctx, personality: str, ident: str) -> Token:
    """Revoke an active token (409 when it is already expired or revoked)."""
    token = get(ctx, personality, ident)
    token.apply("revoke", ctx.now)
    token.revoked_at = ctx.now
    _save(ctx, token)
    return token


def job_expire(ctx: Ctx, ref: str) -> None:
    token = ctx.tx.finance(Token, ctx.aid, KIND, ref)
    if token is None or token.status != "active":
        return
    token.apply("expire", ctx.now)
    token.expired_at = ctx.now
    _save(ctx, token)


JOBS: dict[str, Callable[[Ctx, str], None]] = {JOB_TOKEN_EXPIRE: job_expire}


@dataclass(frozen=True)
class Imported:
    source_token: str
    token: Token
    created: bool


def import_tokens(ctx: Ctx, personality: str, rows: Iterable[Mapping[str, Any]]) -> list[Imported]:
    """Import another provider's tokens (rows of its `token_migration` export file) into this
    personality: one new token per source token, the same one when imported again. A row that
    contradicts an earlier row or an earlier import of its source token is a 409, and then
    nothing is stored."""
    if personality not in PERSONALITIES:
        raise ValidationFailed(
            [
                {
                    "path": "personality",
                    "message": f"unknown personality {personality!r} (known: "
                    f"{', '.join(sorted(PERSONALITIES))})",
                    "type": "enum",
                }
            ]
        )
    planned: dict[str, Imported] = {}
    out: list[Imported] = []
    for row in rows:
        source = str(row["token"])
        token = _imported(ctx, personality, row)
        earlier = planned.get(source)
        if earlier is None:
            kept = ctx.tx.finance(Token, ctx.aid, KIND, token.id)
            earlier = Imported(source, kept, False) if kept is not None else None
            if earlier is None:
                earlier = Imported(source, token, True)
            planned[source] = earlier
        if not earlier.token.same_instrument(token):
            raise Conflict(
                f"source token {source} was imported as {earlier.token.id} with other details "
                "(type, owner, fingerprint, brand, last4, expiry or reference): a token "
                "migration file must not change a token"
            )
        out.append(earlier)
    for item in planned.values():
        if item.created:
            _save(ctx, item.token)
            _schedule_expiry(ctx, item.token)
    return out


def _imported(ctx: Ctx, personality: str, row: Mapping[str, Any]) -> Token:
    source = str(row["token"])
    expires_at = row.get("expires_at")
    status = row.get("status") or "active"
    if status == "active" and isinstance(expires_at, datetime) and expires_at <= ctx.now:
        status = "expired"
    return Token(
        id=token_id(ctx.aid, personality, "import", source),
        personality=personality,
        type=row["type"],
        owner=row["owner"],
        fingerprint=row["fingerprint"],
        brand=row.get("brand"),
        last4=row.get("last4"),
        exp_month=row.get("exp_month"),
        exp_year=row.get("exp_year"),
        network_reference=row.get("network_reference"),
        status=status,
        expires_at=expires_at,
        revoked_at=ctx.now if status == "revoked" else None,
        expired_at=ctx.now if status == "expired" else None,
        imported_from=source,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
