"""What the order-to-cash API answers with: an ERP order as JSON, with its holds and ledger
postings (`order_view`), and a hold alone (`hold_json`, the `pending` of a 202)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from integration.ledger import Posting
from integration.orders import ErpOrder, Hold


def order_view(
    order: ErpOrder, holds: Sequence[Hold], postings: Sequence[Posting]
) -> dict[str, Any]:
    return {
        "merchant_order_id": order.merchant_order_id,
        "amount": order.amount,
        "currency": order.currency,
        "erp_state": order.erp_state.value,
        "shipped_amount": order.shipped,
        "refunded_amount": order.refunded,
        "provider_checkout_id": order.provider_checkout_id,
        "provider_order_id": order.provider_order_id,
        "checkout_url": order.checkout_url,
        "holds": [hold_json(h) for h in holds],
        "ledger": [posting_json(p) for p in postings],
    }


def hold_json(hold: Hold) -> dict[str, Any]:
    return {
        "id": hold.id,
        "kind": hold.kind.value,
        "intent_id": hold.intent_id,
        "detail": hold.detail,
        "created_at": hold.created_at.isoformat(),
        "resolved_at": None if hold.resolved_at is None else hold.resolved_at.isoformat(),
        "resolution": hold.resolution,
        "reference": hold.reference,
    }


def posting_json(posting: Posting) -> dict[str, Any]:
    return {
        "id": posting.id,
        "event_kind": str(posting.event_kind),
        "reference": posting.reference,
        "currency": posting.currency,
        "at": posting.at.isoformat(),
        "legs": [
            {"account": g.account, "debit": g.debit, "credit": g.credit} for g in posting.legs
        ],
    }


__all__ = ["hold_json", "order_view", "posting_json"]
