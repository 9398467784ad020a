"""The virtual cards approach (Sandbank's `/vcards/v1`) behind the canonical `ProviderAdapter`.

The seller's side of this approach is the gateway's (an invoice per order, issued on shipment,
credited, voided: the same shapes under another prefix), so `VcardAdapter` is the gateway
adapter mounted at `/vcards/v1`; what differs is how the money comes, and that is all here:

- The buyer's AP pays with single-use virtual cards; the merchant's processor captures them and
  a capture is *allocated* to invoices (one card may pay several invoices, one invoice may be
  paid by several cards). Each allocation is a canonical payment of its own (provider id
  `val_...`, the order its invoice, the fee its share of the capture's interchange and scheme
  fee), received when the capture clears (`vcard.cleared`), and each is one `payment`
  settlement line (`source_id` = the allocation): card-level matching is the allocation table.
- A credit note beyond what was due refunds the card: `vcard.refunded` lists the capture's
  refunds, each a canonical `payment_refunded` (a negative `refund` line) for its invoice.
- Card tokens (`vcard_tok_...`) are the buyer's, not the merchant's to keep: nothing here
  stores them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from integration.adapters.gateway import GatewayAdapter, authorization, invoice_event
from integration.adapters.sandbank import (
    ProviderDataError,
    _int,
    _list,
    _str,
    _time,
)
from integration.model import Authorization, EventKind, Money, Payment, ProviderEvent

PREFIX: Final = "/vcards/v1"

EVENT_KIND: Final[Mapping[str, EventKind]] = {
    "invoice.created": EventKind.AUTHORIZED,
    "invoice.voided": EventKind.CANCELED,
    "vcard.cleared": EventKind.PAYMENT_RECEIVED,
    "vcard.refunded": EventKind.PAYMENT_REFUNDED,
    "settlement.paid": EventKind.PAYOUT,
}
OBJECT_TYPES: Final = frozenset({"vcard_invoice", "vcard", "vcard_payment"})


class VcardAdapter(GatewayAdapter):
    name = "vcard"
    prefix = PREFIX

    def to_event(self, raw: Mapping[str, Any]) -> ProviderEvent:
        return to_event(raw)


Facts = tuple[str | None, Authorization | None, tuple[Payment, ...], tuple[Payment, ...]]


def _payments(data: Mapping[str, Any], event_type: object) -> Facts:
    """A capture's event: its cleared allocations (`vcard.cleared`) or its refunds."""
    currency = _str(data, "currency")
    allocations = _list(data, "allocations")
    first = _str(allocations[0], "invoice_id") if allocations else None
    if event_type == "vcard.cleared":
        at = _time(data, "cleared_at")
        paid = tuple(
            Payment(
                provider_id=_str(a, "id"),
                provider_order_id=_str(a, "invoice_id"),
                amount=Money(_int(a, "amount"), currency),
                fee=_int(a, "fee"),
                at=at,
            )
            for a in allocations
        )
        return first, None, paid, ()
    if event_type == "vcard.refunded":
        refunds = tuple(
            Payment(
                provider_id=_str(r, "id"),
                provider_order_id=_str(r, "invoice_id"),
                amount=Money(_int(r, "amount"), currency),
                fee=0,
                at=_time(r, "created_at"),
            )
            for r in _list(data, "refunds")
        )
        return first, None, (), refunds
    return first, None, (), ()


def event_facts(raw: Mapping[str, Any]) -> Facts:
    """(invoice id, invoice snapshot, payments, refunds) of a virtual-card event body, each
    None (or empty) when the event does not carry it (another object, unreadable data)."""
    data = raw.get("data")
    object_type = raw.get("object_type")
    if not isinstance(data, Mapping) or object_type not in OBJECT_TYPES:
        return None, None, (), ()
    try:
        if object_type == "vcard_invoice":
            order = authorization(data)
            return order.provider_order_id, order, (), ()
        if object_type == "vcard_payment":
            return _payments(data, raw.get("type"))
        intended = _list(data, "invoices")
        return (_str(intended[0], "invoice_id") if intended else None), None, (), ()
    except (ProviderDataError, TypeError, ValueError):
        return None, None, (), ()


def to_event(raw: Mapping[str, Any]) -> ProviderEvent:
    """A virtual-card event (webhook body or listed) in canonical terms."""
    invoice_id, order, payments, refunds = event_facts(raw)
    return invoice_event(raw, EVENT_KIND, invoice_id, order, payments=payments, refunds=refunds)


__all__ = ["EVENT_KIND", "OBJECT_TYPES", "VcardAdapter", "event_facts", "to_event"]
