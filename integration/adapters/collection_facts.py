"""Collection facts (`integration.model.CollectionFact`) from the providers' event bodies: the
one place the ticket sink learns that an invoice went overdue or was settled, or that a
dispute opened or closed, so `integration.tickets` names no provider.

Approaches where the provider carries the credit risk report no overdue invoices to the seller
(the provider chases its buyer); they report disputes. Gateway + net terms and virtual cards
report the seller's invoices going overdue and being paid (the same invoice shape); traditional
invoicing reports its dunning. None of the three has disputes yet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, Final

from integration.adapters import gateway, invoicing, sandbank
from integration.adapters.sandbank import ProviderDataError
from integration.model import CollectionFact, CollectionKind, Money

_INVOICE_TURNS: Final[Mapping[str, tuple[CollectionKind, str]]] = {
    "invoice.overdue": (CollectionKind.OVERDUE, "past due"),
    "invoice.paid": (CollectionKind.SETTLED, "paid in full"),
    "invoice.written_off": (CollectionKind.SETTLED, "written off"),
    "invoice.voided": (CollectionKind.SETTLED, "voided"),
}
# Traditional invoicing: its dunning says when an invoice is past due.
_EDI_TURNS: Final[Mapping[str, tuple[CollectionKind, str]]] = {
    "collections.reminder": (CollectionKind.OVERDUE, "past due"),
    # Later dunning steps open the case too, should the reminder have been missed.
    "collections.escalated": (CollectionKind.OVERDUE, "in collections"),
    "collections.defaulted": (CollectionKind.OVERDUE, "defaulted"),
    "edi_invoice.paid": (CollectionKind.SETTLED, "paid in full"),
    "edi_invoice.written_off": (CollectionKind.SETTLED, "written off"),
}
_DISPUTE_TURNS: Final[Mapping[str, CollectionKind]] = {
    "dispute.created": CollectionKind.DISPUTE_OPENED,
    "dispute.won": CollectionKind.DISPUTE_CLOSED,
    "dispute.lost": CollectionKind.DISPUTE_CLOSED,
    "dispute.updated": CollectionKind.DISPUTE_CLOSED,  # only once it is accepted (below)
}


def _invoice(raw: Mapping[str, Any], data: Mapping[str, Any]) -> CollectionFact | None:
    turn = _INVOICE_TURNS.get(str(raw.get("type")))
    if turn is None:
        return None
    kind, detail = turn
    due = data.get("due_date")
    invoice = gateway.authorization(data)
    return CollectionFact(
        kind=kind,
        obligation_id=invoice.provider_order_id,
        provider_order_id=invoice.provider_order_id,
        amount=Money(int(data.get("amount_due") or 0), invoice.amount.currency),
        at=sandbank._time(raw, "created_at"),
        detail=detail,
        due_date=date.fromisoformat(due) if isinstance(due, str) else None,
    )


def _edi_invoice(raw: Mapping[str, Any], data: Mapping[str, Any]) -> CollectionFact | None:
    turn = _EDI_TURNS.get(str(raw.get("type")))
    if turn is None:
        return None
    kind, detail = turn
    due = data.get("due_date")
    invoice_id = sandbank._str(data, "id")
    return CollectionFact(
        kind=kind,
        obligation_id=invoice_id,
        provider_order_id=invoicing.order_of(data),
        amount=Money(int(data.get("amount_due") or 0), sandbank._str(data, "currency")),
        at=sandbank._time(raw, "created_at"),
        detail=detail,
        due_date=date.fromisoformat(due) if isinstance(due, str) else None,
    )


def _dispute(raw: Mapping[str, Any], data: Mapping[str, Any]) -> CollectionFact | None:
    kind = _DISPUTE_TURNS.get(str(raw.get("type")))
    if kind is None:
        return None
    dispute = sandbank._dispute(data)
    if kind is CollectionKind.DISPUTE_CLOSED and dispute.status == "open":
        return None  # evidence submitted, still under review: nothing to tell the desk
    return CollectionFact(
        kind=kind,
        obligation_id=dispute.provider_id,
        provider_order_id=dispute.provider_order_id,
        amount=dispute.amount,
        at=sandbank._time(raw, "created_at"),
        detail=dispute.reason if kind is CollectionKind.DISPUTE_OPENED else dispute.status,
    )


_BY_OBJECT: Final[Mapping[str, Callable[..., CollectionFact | None]]] = {
    "invoice": _invoice,
    "vcard_invoice": _invoice,  # virtual cards: the gateway's invoice, paid by the AP's cards
    "edi_invoice": _edi_invoice,
    "dispute": _dispute,
}


def collection_fact(payload: Mapping[str, Any]) -> CollectionFact | None:
    """The collection fact of any provider's event body; None when it says none (another
    event, or a body too thin or unreadable to tell)."""
    data = payload.get("data")
    parse = _BY_OBJECT.get(str(payload.get("object_type")))
    if parse is None or not isinstance(data, Mapping):
        return None
    try:
        return parse(payload, data)
    except (ProviderDataError, TypeError, ValueError, KeyError):
        return None


__all__ = ["collection_fact"]
