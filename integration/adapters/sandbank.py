"""Sandbank's native `/v1` API behind the canonical `ProviderAdapter`.

Everything Sandbank-specific stays in this module: paths, field names, its nine order statuses,
its event types and its error codes. Out of it come only `integration.model` types, the
canonical statuses of `integration.adapters.base`, and `ProviderRejected` errors whose `code`
is canonical (Sandbank's own code is kept in `provider_code` for logs).

Money stays integer minor units end to end; Sandbank speaks the same, so no conversion is
needed beyond pairing each amount with its currency.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from urllib.parse import quote

from integration.adapters.base import (
    AuthorizationStatus,
    CheckoutRef,
    CheckoutStatus,
    PlaceOrder,
)
from integration.client import ProviderRejected, ProviderResponse, ResilientClient
from integration.errors import IntegrationError
from integration.model import (
    Authorization,
    Cancellation,
    Capture,
    Dispute,
    EventKind,
    LineKind,
    Money,
    ProviderEvent,
    Refund,
    Settlement,
    SettlementLine,
)

# Operation families: each has its own circuit breaker.
CHECKOUTS: Final = "checkouts"
READS: Final = "reads"
CAPTURES: Final = "captures"
REFUNDS: Final = "refunds"
CANCELS: Final = "cancels"
EVENTS: Final = "events"

ORDER_STATUS: Final[Mapping[str, AuthorizationStatus]] = {
    "pending_review": AuthorizationStatus.PENDING,
    "authorized": AuthorizationStatus.AUTHORIZED,
    "partially_captured": AuthorizationStatus.CAPTURED,
    "captured": AuthorizationStatus.CAPTURED,
    "partially_refunded": AuthorizationStatus.REFUNDED,
    "refunded": AuthorizationStatus.REFUNDED,
    "canceled": AuthorizationStatus.CANCELED,
    "expired": AuthorizationStatus.EXPIRED,
    "declined": AuthorizationStatus.DECLINED,
}

# The inbox's order states (`integration.inbox.RANK`) of Sandbank's order statuses, as the
# order snapshots of its events carry them: unlike `ORDER_STATUS`, partial captures and refunds
# stay states of their own (the inbox ranks them between authorized and refunded).
SNAPSHOT_STATUS: Final[Mapping[str, str]] = {
    "pending_review": "pending",
    "authorized": "authorized",
    "partially_captured": "partially_captured",
    "captured": "captured",
    "partially_refunded": "partially_refunded",
    "refunded": "refunded",
    "canceled": "canceled",
    "expired": "expired",
    "declined": "declined",
}

CHECKOUT_STATUS: Final[Mapping[str, CheckoutStatus]] = {
    "open": CheckoutStatus.OPEN,
    "completed": CheckoutStatus.COMPLETED,
    "declined": CheckoutStatus.DECLINED,
    "expired": CheckoutStatus.EXPIRED,
}

EVENT_KIND: Final[Mapping[str, EventKind]] = {
    "order.authorized": EventKind.AUTHORIZED,
    "order.captured": EventKind.CAPTURED,
    "order.refunded": EventKind.REFUNDED,
    "order.canceled": EventKind.CANCELED,
    "order.expired": EventKind.EXPIRED,
    "order.declined": EventKind.DECLINED,
    "settlement.paid": EventKind.PAYOUT,
}

# Settlement line types -> canonical kinds: a won dispute's reversal is a dispute line too
# (positive), as the canonical model has one kind for a dispute's money.
LINE_KIND: Final[Mapping[str, LineKind]] = {
    "capture": LineKind.CAPTURE,
    "refund": LineKind.REFUND,
    "fee": LineKind.FEE,
    "dispute": LineKind.DISPUTE,
    "dispute_reversal": LineKind.DISPUTE,
    "carry_forward": LineKind.CARRY_FORWARD,
    "payment": LineKind.PAYMENT,  # a gateway payment (the same balance, another approach)
}

SETTLEMENT_STATUS: Final[Mapping[str, str]] = {"pending": "pending", "paid": "paid"}

# Dispute statuses -> canonical (open, won, lost, accepted); `accepted` is Sandbank's flag.
DISPUTE_STATUS: Final[Mapping[str, str]] = {
    "needs_response": "open",
    "under_review": "open",
    "won": "won",
    "lost": "lost",
}

# Sandbank error code -> canonical rejection code (anything else: "rejected").
REJECTION: Final[Mapping[str, str]] = {
    "not_found": "not_found",
    "invalid_transition": "invalid_state",
    "conflict": "invalid_state",
    "amount_exceeds_capturable": "amount_exceeds_available",
    "amount_exceeds_refundable": "amount_exceeds_available",
    "invalid_amount": "invalid_amount",
    "currency_mismatch": "currency_mismatch",
    "unknown_currency": "currency_mismatch",
    "insufficient_credit": "credit_declined",
    "validation_failed": "invalid_request",
    "bad_request": "invalid_request",
    "unauthorized": "unauthorized",
    "forbidden": "unauthorized",
    "idempotency_key_reused": "idempotency_conflict",
    "idempotency_key_in_use": "idempotency_conflict",
}

PAGE: Final = 100

# "Another request with this Idempotency-Key is still running": wait, do not give up.
IN_FLIGHT_CODES: Final = frozenset({"idempotency_key_in_use"})


class ProviderDataError(IntegrationError, ValueError):
    """The provider answered 2xx with something this adapter cannot read."""


class SandbankAdapter:
    name = "sandbank"

    def __init__(self, client: ResilientClient, *, prefix: str = "/v1") -> None:
        """`prefix`: where the API is mounted (the gateway personality serves the same
        settlements under its own)."""
        self.client = client
        self.prefix = prefix

    # --- checkouts -------------------------------------------------------------------------
    async def create_checkout(
        self, order: PlaceOrder, *, intent_id: str | None = None
    ) -> CheckoutRef:
        buyer = order.buyer
        buyer_body: dict[str, Any] = {"legal_name": buyer.legal_name, "email": buyer.email}
        optional = {
            "tax_id": buyer.tax_id,
            "domain": buyer.domain,
            "annual_revenue": buyer.annual_revenue,
            "years_in_business": buyer.years_in_business,
            "external_id": buyer.external_id,
        }
        buyer_body.update({k: v for k, v in optional.items() if v is not None})
        body: dict[str, Any] = {
            "amount": order.amount.amount,
            "currency": order.amount.currency,
            "merchant_order_id": order.merchant_order_id,
            "buyer": buyer_body,
            "line_items": [
                {
                    "name": li.name,
                    "quantity": li.quantity,
                    "unit_amount": li.unit_amount,
                    **({"sku": li.sku} if li.sku is not None else {}),
                }
                for li in order.line_items
            ],
            "return_url": order.return_url,
            "cancel_url": order.cancel_url,
        }
        data = await self._call(
            CHECKOUTS,
            "POST",
            "/v1/checkouts",
            body,
            intent_id=intent_id or f"checkout:{order.merchant_order_id}",
        )
        return _checkout(data)

    async def get_checkout(self, provider_checkout_id: str) -> CheckoutRef:
        """The checkout; one that completed into the underwriter's review says where the review
        stands now (its order read: still `pending_review`, declined, or decided for it)."""
        ref = _checkout(
            await self._call(READS, "GET", f"/v1/checkouts/{_seg(provider_checkout_id)}")
        )
        if ref.status is CheckoutStatus.IN_REVIEW and ref.provider_order_id is not None:
            order = await self.get_authorization(ref.provider_order_id)
            if order.status is AuthorizationStatus.DECLINED:
                ref = dataclasses.replace(ref, status=CheckoutStatus.DECLINED)
            elif order.status is not AuthorizationStatus.PENDING:
                ref = dataclasses.replace(ref, status=CheckoutStatus.COMPLETED)
        return ref

    # --- orders ----------------------------------------------------------------------------
    async def get_authorization(self, provider_order_id: str) -> Authorization:
        return _authorization(
            await self._call(READS, "GET", f"/v1/orders/{_seg(provider_order_id)}")
        )

    async def find_by_merchant_order_id(self, merchant_order_id: str) -> list[Authorization]:
        """Every order with that merchant reference, newest first (normally zero or one)."""
        found: list[Authorization] = []
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"merchant_order_id": merchant_order_id, "limit": PAGE}
            if cursor:
                params["cursor"] = cursor
            page = await self._call(READS, "GET", "/v1/orders", params=params)
            found.extend(_authorization(o) for o in _list(page, "data"))
            cursor = _next_cursor(page)
            if cursor is None:
                return found

    async def capture(
        self, provider_order_id: str, amount: Money, *, intent_id: str, final: bool = False
    ) -> Capture:
        body: dict[str, Any] = {"amount": amount.amount, "currency": amount.currency}
        if final:
            body["final"] = True
        data = await self._call(
            CAPTURES,
            "POST",
            f"/v1/orders/{_seg(provider_order_id)}/captures",
            body,
            intent_id=intent_id,
        )
        return Capture(
            provider_id=_str(data, "id"),
            provider_order_id=_str(data, "order_id"),
            amount=_money(data),
            at=_time(data, "created_at"),
        )

    async def refund(
        self,
        provider_order_id: str,
        amount: Money,
        *,
        intent_id: str,
        reason: str | None = None,
    ) -> Refund:
        body: dict[str, Any] = {"amount": amount.amount, "currency": amount.currency}
        if reason is not None:
            body["reason"] = reason
        data = await self._call(
            REFUNDS,
            "POST",
            f"/v1/orders/{_seg(provider_order_id)}/refunds",
            body,
            intent_id=intent_id,
        )
        return Refund(
            provider_id=_str(data, "id"),
            provider_order_id=_str(data, "order_id"),
            amount=_money(data),
            at=_time(data, "created_at"),
        )

    async def cancel(
        self, provider_order_id: str, *, intent_id: str, reason: str | None = None
    ) -> Cancellation:
        data = await self._call(
            CANCELS,
            "POST",
            f"/v1/orders/{_seg(provider_order_id)}/cancel",
            {"reason": reason} if reason is not None else {},
            intent_id=intent_id,
        )
        released = _int(data, "amount") - _int(data, "captured_amount")
        at = data.get("canceled_at") or data.get("updated_at")
        return Cancellation(
            provider_order_id=_str(data, "id"),
            released=Money(released, _str(data, "currency")),
            at=_parse_time(at, "canceled_at"),
        )

    # --- events ----------------------------------------------------------------------------
    async def list_events(self, since_cursor: str | None) -> tuple[list[ProviderEvent], str | None]:
        """Events after `since_cursor`, oldest first, and the cursor to pass next time.

        The cursor is opaque to callers (it is the newest event id seen). Sandbank lists newest
        first, so this walks back until it meets the cursor's event, then returns the walk
        reversed. Consumers dedupe on `provider_event_id` anyway (webhooks are at least once).
        """
        events = [_event(raw) for raw in await self.raw_events_after(since_cursor)]
        return events, (events[-1].provider_event_id if events else since_cursor)

    async def raw_events_after(self, since_cursor: str | None) -> list[dict[str, Any]]:
        """The event bodies after `since_cursor` (an event id), oldest first."""
        newest_first: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": PAGE}
            if cursor:
                params["cursor"] = cursor
            page = await self._call(EVENTS, "GET", f"{self.prefix}/events", params=params)
            met = False
            for raw in _list(page, "data"):
                if since_cursor is not None and raw.get("id") == since_cursor:
                    met = True
                    break
                newest_first.append(raw)
            cursor = None if met else _next_cursor(page)
            if cursor is None:
                return newest_first[::-1]

    # --- settlements and disputes -----------------------------------------------------------
    async def list_settlements(
        self, *, since: date | None = None, limit: int | None = None
    ) -> list[Settlement]:
        """Settlements newest first (Sandbank makes them in batch order, so the walk stops at
        the first one whose batch is before `since`), without lines."""
        found: list[Settlement] = []
        cursor: str | None = None
        while limit is None or len(found) < limit:
            params: dict[str, str | int] = {"limit": PAGE}
            if cursor:
                params["cursor"] = cursor
            page = await self._call(READS, "GET", f"{self.prefix}/settlements", params=params)
            for raw in _list(page, "data"):
                settlement = _settlement(raw)
                if since is not None and settlement.batch is not None and settlement.batch < since:
                    return found
                found.append(settlement)
                if limit is not None and len(found) >= limit:
                    return found
            cursor = _next_cursor(page)
            if cursor is None:
                break
        return found

    async def get_settlement(self, provider_settlement_id: str) -> Settlement:
        data = await self._call(
            READS, "GET", f"{self.prefix}/settlements/{_seg(provider_settlement_id)}"
        )
        return _settlement(data, with_lines=True)

    async def list_disputes(self) -> list[Dispute]:
        found: list[Dispute] = []
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": PAGE}
            if cursor:
                params["cursor"] = cursor
            page = await self._call(READS, "GET", "/v1/disputes", params=params)
            found.extend(_dispute(d) for d in _list(page, "data"))
            cursor = _next_cursor(page)
            if cursor is None:
                return found

    def settlement_batch(self, at: datetime) -> date:
        """Sandbank batches each business day's movements (UTC dates); weekend movements
        join Monday's batch."""
        day = at.astimezone(UTC).date()
        while day.weekday() >= 5:
            day += timedelta(days=1)
        return day

    # --- plumbing --------------------------------------------------------------------------
    async def _call(
        self,
        family: str,
        method: str,
        path: str,
        body: Any = None,
        *,
        intent_id: str | None = None,
        params: Mapping[str, str | int] | None = None,
    ) -> dict[str, Any]:
        try:
            response: ProviderResponse = await self.client.call(
                family, method, path, body, intent_id=intent_id, params=params
            )
        except ProviderRejected as exc:
            raise exc.canonical(REJECTION.get(exc.code, "rejected")) from exc
        try:
            return response.json()
        except TypeError as exc:
            raise ProviderDataError(f"{method} {path}: {exc}") from exc


# --- Sandbank JSON -> canonical ----------------------------------------------------------------
def _seg(value: str) -> str:
    return quote(value, safe="")


def _checkout(data: Mapping[str, Any]) -> CheckoutRef:
    status = _str(data, "status")
    if status not in CHECKOUT_STATUS:
        raise ProviderDataError(f"unknown checkout status {status!r}")
    order_id = data.get("order_id")
    return CheckoutRef(
        provider_checkout_id=_str(data, "id"),
        status=_checkout_status(data, CHECKOUT_STATUS[status]),
        redirect_url=_str(data, "url"),
        provider_order_id=order_id if isinstance(order_id, str) else None,
    )


def _checkout_status(data: Mapping[str, Any], status: CheckoutStatus) -> CheckoutStatus:
    """A completed checkout whose decision was `review` opened an order `pending_review`:
    in review as of the checkout's snapshot (`get_checkout` reads on where it is now)."""
    decision = data.get("decision")
    reviewed = isinstance(decision, Mapping) and decision.get("outcome") == "review"
    return CheckoutStatus.IN_REVIEW if status is CheckoutStatus.COMPLETED and reviewed else status


def _authorization(data: Mapping[str, Any]) -> Authorization:
    status = _str(data, "status")
    if status not in ORDER_STATUS:
        raise ProviderDataError(f"unknown order status {status!r}")
    merchant = data.get("merchant_order_id")
    order_id = _str(data, "id")
    return Authorization(
        provider_order_id=order_id,
        merchant_order_id=merchant if isinstance(merchant, str) else "",
        amount=_money(data),
        status=ORDER_STATUS[status],
        captured=_int(data, "captured_amount"),
        refunded=_int(data, "refunded_amount"),
        captures=tuple(_capture(c, order_id) for c in _optional_list(data, "captures")),
        refunds=tuple(_refund(r, order_id) for r in _optional_list(data, "refunds")),
    )


def _capture(data: Mapping[str, Any], order_id: str) -> Capture:
    return Capture(
        provider_id=_str(data, "id"),
        provider_order_id=order_id,
        amount=_money(data),
        at=_time(data, "created_at"),
    )


def _refund(data: Mapping[str, Any], order_id: str) -> Refund:
    return Refund(
        provider_id=_str(data, "id"),
        provider_order_id=order_id,
        amount=_money(data),
        at=_time(data, "created_at"),
    )


def _settlement(data: Mapping[str, Any], *, with_lines: bool = False) -> Settlement:
    settlement_id = _str(data, "id")
    status = _str(data, "status")
    if status not in SETTLEMENT_STATUS:
        raise ProviderDataError(f"unknown settlement status {status!r}")
    paid_at = data.get("paid_at")
    lines = _list(data, "lines") if with_lines else []
    return Settlement(
        provider_id=settlement_id,
        currency=_str(data, "currency"),
        payout=_int(data, "amount"),
        paid_at=None if paid_at is None else _parse_time(paid_at, "paid_at"),
        # A line held back from an earlier report says that report's id; it belongs to the
        # one it is reported in (as the report file's `settlement_id` column says).
        lines=tuple(_line(raw, settlement_id) for raw in lines),
        status=SETTLEMENT_STATUS[status],
        batch=_date(data, "batch_date"),
        payout_date=_date(data, "payout_date"),
        gross=_int(data, "gross"),
        fees=_int(data, "fees"),
    )


def _line(data: Mapping[str, Any], settlement_id: str) -> SettlementLine:
    type_ = _str(data, "type")
    if type_ not in LINE_KIND:
        raise ProviderDataError(f"unknown settlement line type {type_!r}")
    order_id = data.get("order_id")
    source_id = data.get("source_id")
    gross, fee, net = _int(data, "gross"), _int(data, "fee"), _int(data, "net")
    if net != gross - fee:
        raise ProviderDataError(f"line {data.get('id')!r}: net {net} is not gross - fee")
    return SettlementLine(
        settlement_id=settlement_id,
        line_id=_str(data, "id"),
        provider_order_id=order_id if isinstance(order_id, str) and order_id else None,
        merchant_order_id=None,  # Sandbank's lines name its own order id only
        kind=LINE_KIND[type_],
        gross=gross,
        fee=fee,
        currency=_str(data, "currency"),
        source_id=source_id if isinstance(source_id, str) else None,
        at=_time(data, "created_at"),
    )


def _dispute(data: Mapping[str, Any]) -> Dispute:
    status = _str(data, "status")
    if status not in DISPUTE_STATUS:
        raise ProviderDataError(f"unknown dispute status {status!r}")
    canonical = "accepted" if data.get("accepted") is True else DISPUTE_STATUS[status]
    closed_at = data.get("closed_at")
    return Dispute(
        provider_id=_str(data, "id"),
        provider_order_id=_str(data, "order_id"),
        amount=_money(data),
        status=canonical,
        reason=_str(data, "reason"),
        opened_at=_time(data, "created_at"),
        closed_at=None if closed_at is None else _parse_time(closed_at, "closed_at"),
    )


def _date(data: Mapping[str, Any], key: str) -> date:
    value = data.get(key)
    if not isinstance(value, str):
        raise ProviderDataError(f"expected a date at {key!r}, got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ProviderDataError(f"bad date at {key!r}: {value!r}") from exc


def _optional_list(data: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    return [] if data.get(key) is None else _list(data, key)


def _event(raw: Mapping[str, Any]) -> ProviderEvent:
    object_id = raw.get("object_id")
    is_order = raw.get("object_type") == "order" and isinstance(object_id, str)
    order, checkout_id, checkout_status = event_facts(raw)
    return ProviderEvent(
        provider_event_id=_str(raw, "id"),
        kind=EVENT_KIND.get(_str(raw, "type")),
        provider_order_id=object_id if is_order else None,
        at=_time(raw, "created_at"),
        raw=dict(raw),
        order=order,
        provider_checkout_id=checkout_id,
        checkout_status=checkout_status,
        settlement=event_settlement(raw),
    )


def event_settlement(payload: Mapping[str, Any]) -> Settlement | None:
    """The settlement a settlement event carries (None: another object, or unreadable)."""
    data = payload.get("data")
    if payload.get("object_type") != "settlement" or not isinstance(data, Mapping):
        return None
    try:
        return _settlement(data)
    except (ProviderDataError, TypeError, ValueError):
        return None


def order_state(payload: Mapping[str, Any]) -> tuple[str, int, int, str] | None:
    """(inbox state, captured, refunded, currency) of the order snapshot an event body carries
    (`object_type` "order"), or None: another object, a thin payload, a status outside
    `SNAPSHOT_STATUS` (not guessed at), amounts that are not whole non-negative numbers."""
    data = payload.get("data")
    if payload.get("object_type") != "order" or not isinstance(data, dict):
        return None
    status = SNAPSHOT_STATUS.get(str(data.get("status")))
    captured = data.get("captured_amount", 0)
    refunded = data.get("refunded_amount", 0)
    currency = data.get("currency")
    if (
        status is None
        or not isinstance(currency, str)
        or not _is_amount(captured)
        or not _is_amount(refunded)
    ):
        return None
    return status, captured, refunded, currency


def _is_amount(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def event_facts(
    payload: Mapping[str, Any],
) -> tuple[Authorization | None, str | None, str | None]:
    """(order snapshot, checkout id, canonical checkout status) of an event body, each None
    when the event does not carry it (another object, a thin payload, an unknown status)."""
    data = payload.get("data")
    if not isinstance(data, Mapping):
        return None, None, None
    if payload.get("object_type") == "order":
        try:
            order = _authorization(data)
        except (ProviderDataError, TypeError, ValueError):
            return None, None, None
        checkout_id = data.get("checkout_id")
        return order, checkout_id if isinstance(checkout_id, str) else None, None
    if payload.get("object_type") == "checkout":
        checkout_id = payload.get("object_id")
        status = CHECKOUT_STATUS.get(str(data.get("status")))
        if status is not None:
            status = _checkout_status(data, status)
        return (
            None,
            checkout_id if isinstance(checkout_id, str) and checkout_id else None,
            None if status is None else status.value,
        )
    return None, None, None


def _money(data: Mapping[str, Any]) -> Money:
    return Money(_int(data, "amount"), _str(data, "currency"))


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ProviderDataError(f"expected a string at {key!r}, got {value!r}")
    return value


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProviderDataError(f"expected an integer at {key!r}, got {value!r}")
    return value


def _time(data: Mapping[str, Any], key: str) -> datetime:
    return _parse_time(data.get(key), key)


def _parse_time(value: object, key: str) -> datetime:
    if not isinstance(value, str):
        raise ProviderDataError(f"expected a timestamp at {key!r}, got {value!r}")
    try:
        at = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ProviderDataError(f"bad timestamp at {key!r}: {value!r}") from exc
    if at.tzinfo is None:
        raise ProviderDataError(f"timestamp without a zone at {key!r}: {value!r}")
    return at


def _list(page: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    items = page.get(key)
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ProviderDataError(f"expected a list of objects at {key!r}")
    return items


def _next_cursor(page: Mapping[str, Any]) -> str | None:
    if not page.get("has_more"):
        return None
    cursor = page.get("next_cursor")
    return cursor if isinstance(cursor, str) and cursor else None


__all__ = ["SandbankAdapter", "event_facts", "event_settlement"]
