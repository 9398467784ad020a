"""Credit Key's v1 "ecomm" API behind the canonical `ProviderAdapter`.

Everything Credit Key-specific stays here: its paths, its field names, its decimal dollars, its
six order statuses. Out of it come only `integration.model` types and canonical statuses.

What Credit Key v1 gives, and what it does not:
- One id per order, from `begin_checkout` on (the `%CKKEY%` value): it is both the checkout id
  and the order id here.
- Credentials (`public_key`, `shared_secret`) go in the query string, as the Odoo module sends
  them, so the secret never lands in the intent store with the request bodies.
- Money is decimal US dollars: sent as strings with two decimals (exact, from integer cents),
  read back through `Decimal`. Only USD exists.
- `confirm_order` is the capture: `charges.grand_total` is the amount captured now. Credit Key
  returns the order, not a capture, so a capture (refund) is identified by the order id and the
  caller's intent id, and dated when the answer arrived. An order says only whether it was
  captured (`capture_status`), not how much: `captured` reads as the whole amount once it has
  been, so callers must take their own records for partial amounts.
- No event feed, no webhooks, no settlement or dispute API: `list_events` is always empty (the
  service reads order state with `find_order` instead), and there is nothing to reconcile.
- The operation families (one circuit breaker each) and the settlement calendar are the
  native adapter's: the same provider stands behind both APIs.
- Error bodies are not part of Credit Key's contract: rejections are classified by status
  (400 invalid request, 401 unauthorized, 404 not found).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from integration.adapters.base import AuthorizationStatus, CheckoutRef, CheckoutStatus, PlaceOrder
from integration.adapters.sandbank import (
    CANCELS,
    CAPTURES,
    CHECKOUTS,
    READS,
    REFUNDS,
    ProviderDataError,
    SandbankAdapter,
)
from integration.client import ProviderRejected, ResilientClient
from integration.model import (
    Authorization,
    Cancellation,
    Capture,
    Dispute,
    Money,
    ProviderEvent,
    Refund,
    Settlement,
)

CURRENCY: Final = "USD"

ORDER_STATUS: Final[Mapping[str, AuthorizationStatus]] = {
    "new": AuthorizationStatus.PENDING,
    "placed": AuthorizationStatus.PENDING,
    "authorized": AuthorizationStatus.AUTHORIZED,
    "shipped": AuthorizationStatus.CAPTURED,
    "returned": AuthorizationStatus.REFUNDED,
    "refunded": AuthorizationStatus.REFUNDED,
    "canceled": AuthorizationStatus.CANCELED,
}
REJECTION: Final[Mapping[int, str]] = {
    400: "invalid_request",
    401: "unauthorized",
    404: "not_found",
}


class CreditKeyDataError(ProviderDataError):
    """Credit Key answered 200 with something this adapter cannot read."""


class CreditKeyAdapter:
    name = "creditkey"

    def __init__(
        self,
        client: ResilientClient,
        public_key: str,
        shared_secret: str,
        *,
        now: Callable[[], datetime],
    ) -> None:
        """`now`: the wall clock that dates captures, refunds and cancellations (Credit Key's
        answers carry no time), the same one the client is given."""
        self.client = client
        self.credentials = {"public_key": public_key, "shared_secret": shared_secret}
        self.now = now

    # --- checkouts -------------------------------------------------------------------------
    async def create_checkout(
        self, order: PlaceOrder, *, intent_id: str | None = None
    ) -> CheckoutRef:
        _usd(order.amount)
        buyer = order.buyer
        address = {
            "first_name": buyer.legal_name,
            "last_name": "",
            "company_name": buyer.legal_name,
            "email": buyer.email,
            "address1": "",
            "address2": "",
            "city": "",
            "state": "",
            "zip": "",
            "phone_number": "",
        }
        items = [
            {
                "merchant_id": li.sku or li.name,
                "name": li.name,
                "price": dollars(li.unit_amount),
                "sku": li.sku,
                "quantity": li.quantity,
                "size": None,
                "color": None,
            }
            for li in order.line_items
        ] or [{"merchant_id": order.merchant_order_id, "name": order.merchant_order_id}]
        total = dollars(order.amount.amount)
        body = {
            "cart_items": items,
            "billing_address": address,
            "shipping_address": address,
            "charges": {
                "total": total,
                "shipping": "0.00",
                "tax": "0.00",
                "discount_amount": "0.00",
                "grand_total": total,
            },
            "remote_id": order.merchant_order_id,
            "remote_customer_id": buyer.external_id,
            "return_url": order.return_url,
            "cancel_url": order.cancel_url,
            "mode": "redirect",
        }
        data = await self._call(
            CHECKOUTS,
            "POST",
            "begin_checkout",
            body,
            intent_id=intent_id or f"checkout:{order.merchant_order_id}",
        )
        return CheckoutRef(
            provider_checkout_id=_str(data, "id"),
            status=CheckoutStatus.OPEN,
            redirect_url=_str(data, "checkout_url"),
        )

    async def get_checkout(self, provider_checkout_id: str) -> CheckoutRef:
        data = await self._call(READS, "GET", "find_order", params={"id": provider_checkout_id})
        status = _str(data, "status")
        ck_id = _str(data, "id")
        if status == "new":
            state = CheckoutStatus.OPEN
        elif status == "placed":
            state = CheckoutStatus.IN_REVIEW  # the borrower finished; Credit Key is deciding
        elif status == "canceled" and _str(data, "capture_status") != "captured":
            state = CheckoutStatus.DECLINED  # declined, abandoned or expired before approval
        else:
            state = CheckoutStatus.COMPLETED
        has_order = state in (CheckoutStatus.COMPLETED, CheckoutStatus.IN_REVIEW)
        return CheckoutRef(
            provider_checkout_id=ck_id,
            status=state,
            redirect_url="",  # find_order does not repeat it
            provider_order_id=ck_id if has_order else None,
        )

    # --- orders ----------------------------------------------------------------------------
    async def get_authorization(self, provider_order_id: str) -> Authorization:
        data = await self._call(READS, "GET", "find_order", params={"id": provider_order_id})
        return _authorization(data)

    async def find_by_merchant_order_id(self, merchant_order_id: str) -> list[Authorization]:
        try:
            data = await self._call(
                READS,
                "GET",
                "find_order_by_merchant_order_id",
                params={"merchant_order_id": merchant_order_id},
            )
        except ProviderRejected as exc:
            if exc.code == "not_found":
                return []
            raise
        return [_authorization(data)]

    async def capture(
        self, provider_order_id: str, amount: Money, *, intent_id: str, final: bool = False
    ) -> Capture:
        """`final` has no Credit Key equivalent: what stays uncaptured lapses with the
        authorization (or is released by `cancel_order` before any capture)."""
        _usd(amount)
        body = {
            "id": provider_order_id,
            "merchant_status": "shipped",
            "charges": {"grand_total": dollars(amount.amount)},
        }
        data = await self._call(CAPTURES, "POST", "confirm_order", body, intent_id=intent_id)
        return Capture(
            provider_id=f"{_str(data, 'id')}:{intent_id}",
            provider_order_id=_str(data, "id"),
            amount=amount,
            at=self.now(),
        )

    async def refund(
        self,
        provider_order_id: str,
        amount: Money,
        *,
        intent_id: str,
        reason: str | None = None,
    ) -> Refund:
        _usd(amount)
        body = {"id": provider_order_id, "amount": dollars(amount.amount)}
        data = await self._call(REFUNDS, "POST", "refund", body, intent_id=intent_id)
        return Refund(
            provider_id=f"{_str(data, 'id')}:{intent_id}",
            provider_order_id=_str(data, "id"),
            amount=amount,
            at=self.now(),
        )

    async def cancel(
        self, provider_order_id: str, *, intent_id: str, reason: str | None = None
    ) -> Cancellation:
        data = await self._call(
            CANCELS, "POST", "cancel_order", {"id": provider_order_id}, intent_id=intent_id
        )
        return Cancellation(
            provider_order_id=_str(data, "id"),
            released=Money(cents(data, "amount"), CURRENCY),
            at=self.now(),
        )

    # --- what Credit Key v1 does not publish ---------------------------------------------
    async def list_events(self, since_cursor: str | None) -> tuple[list[ProviderEvent], str | None]:
        return [], since_cursor

    async def list_settlements(
        self, *, since: date | None = None, limit: int | None = None
    ) -> list[Settlement]:
        return []

    async def get_settlement(self, provider_settlement_id: str) -> Settlement:
        raise ProviderRejected(
            "not_found", 404, "Credit Key's v1 API publishes no settlements", request_id=None
        )

    async def list_disputes(self) -> list[Dispute]:
        return []

    # Sandbank pays out the orders of both APIs in the same settlements, by one calendar.
    settlement_batch = SandbankAdapter.settlement_batch

    # --- plumbing --------------------------------------------------------------------------
    async def _call(
        self,
        family: str,
        method: str,
        action: str,
        body: Any = None,
        *,
        intent_id: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        try:
            response = await self.client.call(
                family,
                method,
                f"/ecomm/{action}",
                body,
                intent_id=intent_id,
                params={**(params or {}), **self.credentials},
            )
        except ProviderRejected as exc:
            raise exc.canonical(REJECTION.get(exc.status, "rejected")) from exc
        try:
            return response.json()
        except TypeError as exc:
            raise CreditKeyDataError(f"{method} {action}: {exc}") from exc


# --- Credit Key JSON -> canonical -------------------------------------------------------------
def dollars(amount: int) -> str:
    """Integer cents -> Credit Key's decimal dollars, as an exact string ("1250.00")."""
    return str((Decimal(amount) / 100).quantize(Decimal("0.01")))


def cents(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise CreditKeyDataError(f"expected an amount at {key!r}, got {value!r}")
    try:
        # A JSON number arrives as a float here (the client's parser): its shortest repr is
        # the decimal the server wrote, so going through str() is exact.
        amount = Decimal(str(value)) * 100
    except InvalidOperation as exc:
        raise CreditKeyDataError(f"bad amount at {key!r}: {value!r}") from exc
    if amount != amount.to_integral_value():
        raise CreditKeyDataError(f"{key!r} has fractions of a cent: {value!r}")
    return int(amount)


def _authorization(data: Mapping[str, Any]) -> Authorization:
    status = _str(data, "status")
    if status not in ORDER_STATUS:
        raise CreditKeyDataError(f"unknown order status {status!r}")
    amount = cents(data, "amount")
    merchant = data.get("merchant_order_id")
    return Authorization(
        provider_order_id=_str(data, "id"),
        merchant_order_id=merchant if isinstance(merchant, str) else "",
        amount=Money(amount, CURRENCY),
        status=ORDER_STATUS[status],
        captured=amount if data.get("capture_status") == "captured" else 0,
        refunded=cents(data, "refunded_amount"),
    )


def _usd(money: Money) -> None:
    if money.currency != CURRENCY:
        raise ProviderRejected(
            "currency_mismatch",
            422,
            f"Credit Key takes US dollars only, not {money.currency}",
            request_id=None,
        )


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise CreditKeyDataError(f"expected a string at {key!r}, got {value!r}")
    return value


__all__ = ["CreditKeyAdapter", "CreditKeyDataError"]
