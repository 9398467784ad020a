"""One kind of finance row (`Tx.finance`, `finance_all`, `finance_page`, `save_finance`), read
and written the one way: the gateway's and the cards' invoices (`simulator.invoices`), and
invoicing's purchase orders, EDI invoices and remittances (`simulator.invoicing`).

Why: each of those kept its own copy of get-or-`NotFound`, a page of a listing and the save,
each naming its model, the account and its row kind again. Their models and lifecycles differ
(credit notes that refund paid money against credit memos off what is due, owners by customer
against owners by PO); how a row is found and stored does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

from simulator.context import Ctx
from simulator.domain.errors import NotFound
from simulator.domain.records import Page

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class FinanceRows(Generic[M]):
    """The rows of one `kind`, each a `model`; `noun` is what `NotFound` calls one."""

    model: type[M]
    kind: str
    noun: str

    def find(self, ctx: Ctx, ident: str) -> M | None:
        return ctx.tx.finance(self.model, ctx.aid, self.kind, ident)

    def get(self, ctx: Ctx, ident: str) -> M:
        found = self.find(ctx, ident)
        if found is None:
            raise NotFound(self.noun, ident)
        return found

    def all(
        self,
        ctx: Ctx,
        *,
        ref: str | None = None,
        owner: str | None = None,
        status: str | tuple[str, ...] | None = None,
    ) -> list[M]:
        return ctx.tx.finance_all(
            self.model, ctx.aid, self.kind, ref=ref, owner=owner, status=status
        )

    def page(
        self,
        ctx: Ctx,
        *,
        status: str | None = None,
        ref: str | None = None,
        limit: int,
        cursor: str | None,
    ) -> Page[M]:
        return ctx.tx.finance_page(
            self.model, ctx.aid, self.kind, status=status, ref=ref, limit=limit, cursor=cursor
        )

    def save(
        self,
        ctx: Ctx,
        obj: M,
        *,
        ref: str | None = None,
        owner: str | None = None,
        status: str | None = None,
    ) -> None:
        ctx.tx.save_finance(ctx.aid, self.kind, obj, ref=ref, owner=owner, status=status)


__all__ = ["FinanceRows"]
