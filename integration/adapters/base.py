"""What business logic asks of a credit provider, in canonical terms only.

`ProviderAdapter` is the one seam between the integration and a provider: every method takes and
returns the provider-neutral types of `integration.model` (and the few request types below), so a
second provider is a second adapter, not a change to business logic. Provider names (statuses,
event types, field names) never cross it.

Mutating methods take an `intent_id`: the caller's durable name for the action ("capture
SO-1001 shipment 2"). The same id after a restart sends the same Idempotency-Key, so a retry can
never do the action twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

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


class AuthorizationStatus(StrEnum):
    """Canonical order status. Partial captures and refunds keep their status (`captured`,
    `refunded`); how much is in `Authorization.captured` / `.refunded`."""

    PENDING = "pending"  # the provider is still deciding
    AUTHORIZED = "authorized"  # approved, nothing captured yet
    CAPTURED = "captured"  # some or all captured, nothing refunded
    REFUNDED = "refunded"  # some or all of the captured amount refunded
    CANCELED = "canceled"
    EXPIRED = "expired"
    DECLINED = "declined"


class CheckoutStatus(StrEnum):
    OPEN = "open"  # waiting for the buyer
    COMPLETED = "completed"  # the buyer accepted; there is an order, credit granted
    # The buyer accepted and there is an order, but the provider is still deciding whether to
    # grant the credit (an underwriter's review): its order is `pending`, not yet authorized.
    IN_REVIEW = "in_review"
    DECLINED = "declined"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Buyer:
    legal_name: str
    email: str
    tax_id: str | None = None
    domain: str | None = None
    annual_revenue: int | None = None  # minor units of the order's currency
    years_in_business: int | None = None
    external_id: str | None = None  # the merchant's (ERP's) id for the customer


@dataclass(frozen=True, slots=True)
class LineItem:
    name: str
    quantity: int
    unit_amount: int  # minor units
    sku: str | None = None


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """Ask the buyer to pay on terms: the provider answers with a page to send the buyer to."""

    merchant_order_id: str
    amount: Money
    buyer: Buyer
    return_url: str
    cancel_url: str
    line_items: tuple[LineItem, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class CheckoutRef:
    provider_checkout_id: str
    status: CheckoutStatus
    redirect_url: str  # where the buyer goes to accept
    provider_order_id: str | None = None  # once completed (or in review)


@runtime_checkable
class ProviderAdapter(Protocol):
    """A credit provider, as the integration uses it. Errors: `ProviderRejected` for a final
    refusal, `ProviderUnavailable` when the provider cannot be reached within the rules (the
    caller degrades, e.g. an ERP hold), both from `integration.client`."""

    name: str

    async def create_checkout(
        self, order: PlaceOrder, *, intent_id: str | None = None
    ) -> CheckoutRef: ...

    async def get_checkout(self, provider_checkout_id: str) -> CheckoutRef: ...

    async def get_authorization(self, provider_order_id: str) -> Authorization: ...

    async def find_by_merchant_order_id(
        self, merchant_order_id: str
    ) -> Sequence[Authorization]: ...

    async def capture(
        self, provider_order_id: str, amount: Money, *, intent_id: str, final: bool = False
    ) -> Capture: ...

    async def refund(
        self,
        provider_order_id: str,
        amount: Money,
        *,
        intent_id: str,
        reason: str | None = None,
    ) -> Refund: ...

    async def cancel(
        self, provider_order_id: str, *, intent_id: str, reason: str | None = None
    ) -> Cancellation: ...

    async def list_events(
        self, since_cursor: str | None
    ) -> tuple[Sequence[ProviderEvent], str | None]: ...

    # --- money after the checkout ------------------------------------------------------------
    async def list_settlements(
        self, *, since: date | None = None, limit: int | None = None
    ) -> Sequence[Settlement]:
        """Settlements (payouts), newest first, without their lines: those whose batch is on
        or after `since`, at most `limit` of them (None: no bound)."""
        ...

    async def get_settlement(self, provider_settlement_id: str) -> Settlement:
        """One settlement with its lines as the provider's report gives them."""
        ...

    async def list_disputes(self) -> Sequence[Dispute]:
        """Every dispute, newest first."""
        ...

    def settlement_batch(self, at: datetime) -> date:
        """The batch (business day) a money movement made at `at` is paid out in: the
        provider's settlement calendar, which is what the ledger expects lines by."""
        ...
