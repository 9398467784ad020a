"""The gateway + net terms approach (Sandbank's `/gateway/v1`) behind the canonical
`ProviderAdapter`.

Everything gateway-specific stays here: its paths, invoices and charges, its statuses and event
types. The canonical model reads it this way:

- An order is an invoice: `create_checkout` creates a draft invoice for the order (the seller
  grants its own terms, so there is no buyer decision: the checkout is completed at once and
  the buyer goes straight back to `return_url`). Checkout id and order id are the invoice id.
- A capture (shipment) issues part or all of the invoice; a refund is a credit note; a cancel
  voids the draft. The gateway returns the invoice, not a capture, so a capture (refund) is
  identified by the invoice id and the caller's intent id, dated by the invoice's update time.
  `final` is not a gateway notion: the rest of the order simply stays uninvoiced.
- A buyer's payment (`charge.succeeded`) is the canonical `payment_received` event, with the
  gateway's fee; those are what the gateway settles (`payment` lines), which the approach's GL
  mapping (`gl_mapping_gateway.yaml`) tells reconciliation. A credit note beyond what was due
  refunds paid money: `charge.refunded` lists the charge's refunds, each `payment_refunded`
  (a negative `refund` line).
- Settlements, their lines and events are Sandbank's own shapes under `/gateway/v1`: read by
  the native adapter's parsers. Chargebacks are not simulated: `list_disputes` is empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from integration.adapters.base import AuthorizationStatus, CheckoutRef, PlaceOrder
from integration.adapters.mounted import (
    MountedAdapter,
    cancellation,
    completed_checkout,
    invoice_checkout,
)
from integration.adapters.sandbank import (
    CAPTURES,
    READS,
    REFUNDS,
    ProviderDataError,
    _int,
    _list,
    _seg,
    _str,
    _time,
    event_settlement,
)
from integration.model import (
    Authorization,
    Cancellation,
    Capture,
    EventKind,
    Money,
    Payment,
    ProviderEvent,
    Refund,
)

PREFIX: Final = "/gateway/v1"
NET_DAYS: Final = 30

EVENT_KIND: Final[Mapping[str, EventKind]] = {
    "invoice.created": EventKind.AUTHORIZED,
    "invoice.voided": EventKind.CANCELED,
    "charge.succeeded": EventKind.PAYMENT_RECEIVED,
    "charge.refunded": EventKind.PAYMENT_REFUNDED,
    "settlement.paid": EventKind.PAYOUT,
}


class GatewayAdapter(MountedAdapter):
    name = "gateway"
    prefix: str = PREFIX  # where the API is mounted (the virtual cards adapter mounts its own)

    # --- checkouts -------------------------------------------------------------------------
    async def create_checkout(
        self, order: PlaceOrder, *, intent_id: str | None = None
    ) -> CheckoutRef:
        buyer = order.buyer
        customer: dict[str, Any] = {"name": buyer.legal_name, "email": buyer.email}
        if buyer.external_id is not None:
            customer["external_id"] = buyer.external_id
        body = {
            "number": order.merchant_order_id,
            "customer": customer,
            "amount": order.amount.amount,
            "currency": order.amount.currency,
            "net_days": NET_DAYS,
            "line_items": [
                {
                    "name": li.name,
                    "quantity": li.quantity,
                    "unit_amount": li.unit_amount,
                    **({"sku": li.sku} if li.sku is not None else {}),
                }
                for li in order.line_items
            ],
        }
        data = await self._put_on_file(f"{self.prefix}/invoices", body, order, intent_id)
        return _checkout(data, order.return_url)

    async def get_checkout(self, provider_checkout_id: str) -> CheckoutRef:
        # Nothing for the buyer to accept: no page to send them to once the order exists.
        return _checkout(await self._invoice(provider_checkout_id), "")

    # --- orders ----------------------------------------------------------------------------
    async def get_authorization(self, provider_order_id: str) -> Authorization:
        return authorization(await self._invoice(provider_order_id))

    async def find_by_merchant_order_id(self, merchant_order_id: str) -> list[Authorization]:
        found = await self._listed(f"{self.prefix}/invoices", number=merchant_order_id)
        return [authorization(x) for x in found]

    async def capture(
        self, provider_order_id: str, amount: Money, *, intent_id: str, final: bool = False
    ) -> Capture:
        data = await self._act(provider_order_id, "issue", amount, intent_id, CAPTURES)
        return Capture(
            provider_id=f"{_str(data, 'id')}:{intent_id}",
            provider_order_id=_str(data, "id"),
            amount=amount,
            at=_time(data, "updated_at"),
        )

    async def refund(
        self,
        provider_order_id: str,
        amount: Money,
        *,
        intent_id: str,
        reason: str | None = None,
    ) -> Refund:
        data = await self._act(provider_order_id, "credit_notes", amount, intent_id, REFUNDS)
        return Refund(
            provider_id=f"{_str(data, 'id')}:{intent_id}",
            provider_order_id=_str(data, "id"),
            amount=amount,
            at=_time(data, "updated_at"),
        )

    async def cancel(
        self, provider_order_id: str, *, intent_id: str, reason: str | None = None
    ) -> Cancellation:
        path = f"{self.prefix}/invoices/{_seg(provider_order_id)}/void"
        data = await self._cancel(path, intent_id=intent_id, reason=reason)
        return cancellation(data, _str(data, "id"))

    # --- events and plumbing ---------------------------------------------------------------
    def to_event(self, raw: Mapping[str, Any]) -> ProviderEvent:
        return to_event(raw)

    async def _invoice(self, invoice_id: str) -> dict[str, Any]:
        return await self._call(READS, "GET", f"{self.prefix}/invoices/{_seg(invoice_id)}")

    async def _act(
        self, invoice_id: str, verb: str, amount: Money, intent_id: str, family: str
    ) -> dict[str, Any]:
        return await self._call(
            family,
            "POST",
            f"{self.prefix}/invoices/{_seg(invoice_id)}/{verb}",
            {"amount": amount.amount},
            intent_id=intent_id,
        )


# --- gateway JSON -> canonical -----------------------------------------------------------------
def _status(data: Mapping[str, Any]) -> AuthorizationStatus:
    status = _str(data, "status")
    if status == "draft":
        return AuthorizationStatus.AUTHORIZED
    if status == "void":
        return AuthorizationStatus.CANCELED
    if status in ("open", "paid", "short_paid"):
        credited = _int(data, "credited_amount")
        return AuthorizationStatus.REFUNDED if credited else AuthorizationStatus.CAPTURED
    raise ProviderDataError(f"unknown invoice status {status!r}")


def authorization(data: Mapping[str, Any]) -> Authorization:
    return Authorization(
        provider_order_id=_str(data, "id"),
        merchant_order_id=_str(data, "number"),
        amount=Money(_int(data, "amount"), _str(data, "currency")),
        status=_status(data),
        captured=_int(data, "issued_amount"),
        refunded=_int(data, "credited_amount"),
    )


def _checkout(data: Mapping[str, Any], return_url: str) -> CheckoutRef:
    void = _str(data, "status") == "void"
    return completed_checkout(_str(data, "id"), declined=void, return_url=return_url)


OBJECT_TYPES: Final = frozenset({"invoice", "charge"})


def event_facts(
    raw: Mapping[str, Any],
) -> tuple[str | None, Authorization | None, Payment | None, tuple[Payment, ...]]:
    """(invoice id, invoice snapshot, payment, the payment's refunds) of a gateway event body,
    each None (or empty) when the event does not carry it (another object, a thin payload,
    unreadable data)."""
    data = raw.get("data")
    object_type = raw.get("object_type")
    if not isinstance(data, Mapping) or object_type not in OBJECT_TYPES:
        return None, None, None, ()
    try:
        if object_type == "invoice":
            order = authorization(data)
            return order.provider_order_id, order, None, ()
        invoice_id = _str(data, "invoice_id")
        currency = _str(data, "currency")
        if raw.get("type") == "charge.refunded":
            refunds = tuple(
                Payment(
                    provider_id=_str(r, "id"),
                    provider_order_id=invoice_id,
                    amount=Money(_int(r, "amount"), currency),
                    fee=0,
                    at=_time(r, "created_at"),
                )
                for r in _list(data, "refunds")
            )
            return invoice_id, None, None, refunds
        if raw.get("type") != "charge.succeeded":
            return invoice_id, None, None, ()
        payment = Payment(
            provider_id=_str(data, "id"),
            provider_order_id=invoice_id,
            amount=Money(_int(data, "amount"), currency),
            fee=_int(data, "fee"),
            at=_time(data, "succeeded_at"),
        )
    except (ProviderDataError, TypeError, ValueError):
        return None, None, None, ()
    return invoice_id, None, payment, ()


def to_event(raw: Mapping[str, Any]) -> ProviderEvent:
    """A gateway event (webhook body or listed) in canonical terms."""
    invoice_id, order, payment, refunds = event_facts(raw)
    return invoice_event(raw, EVENT_KIND, invoice_id, order, payment=payment, refunds=refunds)


def invoice_event(
    raw: Mapping[str, Any],
    kinds: Mapping[str, EventKind],
    invoice_id: str | None,
    order: Authorization | None,
    *,
    payment: Payment | None = None,
    payments: tuple[Payment, ...] = (),
    refunds: tuple[Payment, ...] = (),
) -> ProviderEvent:
    """An event of an approach whose orders are the seller's invoices, in canonical terms: an
    invoice snapshot is a completed checkout (no buyer decision)."""
    checkout_id, checkout_status = invoice_checkout(invoice_id, order)
    return ProviderEvent(
        provider_event_id=_str(raw, "id"),
        kind=kinds.get(_str(raw, "type")),
        provider_order_id=invoice_id,
        at=_time(raw, "created_at"),
        raw=dict(raw),
        order=order,
        provider_checkout_id=checkout_id,
        checkout_status=checkout_status,
        settlement=event_settlement(raw),
        payment=payment,
        payment_refunds=refunds,
        payments=payments,
    )


__all__ = [
    "EVENT_KIND",
    "OBJECT_TYPES",
    "GatewayAdapter",
    "authorization",
    "event_facts",
    "invoice_event",
    "to_event",
]
