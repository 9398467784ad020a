"""The ERP order's rules, as pure functions of its figures and of what the provider says:
which actions an order allows, the state its amounts put it in, and how an event moves an
order that has no held work (never backwards). `integration.ordertocash` applies them; nothing
here does I/O.

Shipping follows the provider, which allows a capture of the authorized remainder after a
partial refund: an order ships whatever of its amount is not shipped yet in any state below
that allows it, refunds in between included. `refunded` is final only once everything is
shipped and everything shipped is refunded; before that the order is `partially_refunded`
(it may still ship the rest), as the provider's own order is.
"""

from __future__ import annotations

from typing import Any

from integration.adapters.base import AuthorizationStatus, CheckoutStatus
from integration.model import Authorization, ProviderEvent
from integration.orders import ErpOrder, ErpState

# The credit is not decided yet: the buyer has not answered, or the provider is reviewing.
UNDECIDED = frozenset({ErpState.AWAITING_BUYER, ErpState.UNDER_REVIEW})
SHIPPABLE = frozenset(
    {ErpState.AUTHORIZED, ErpState.PARTIALLY_SHIPPED, ErpState.PARTIALLY_REFUNDED}
)
REFUNDABLE = frozenset({ErpState.PARTIALLY_SHIPPED, ErpState.SHIPPED, ErpState.PARTIALLY_REFUNDED})
CANCELABLE = frozenset({ErpState.AUTHORIZED, ErpState.UNDER_REVIEW})
# ERP states whose amounts follow the provider's figures (events only ever raise them).
MONEY_STATES = frozenset(
    {
        ErpState.AUTHORIZED,
        ErpState.PARTIALLY_SHIPPED,
        ErpState.SHIPPED,
        ErpState.PARTIALLY_REFUNDED,
        ErpState.REFUNDED,
    }
)


def derived(amount: int, shipped: int, refunded: int) -> ErpState:
    """The state an order's figures put it in (shipped and refunded of its amount)."""
    if refunded > 0:
        everything_back = refunded >= shipped >= amount
        return ErpState.REFUNDED if everything_back else ErpState.PARTIALLY_REFUNDED
    if shipped >= amount:
        return ErpState.SHIPPED
    return ErpState.PARTIALLY_SHIPPED if shipped > 0 else ErpState.AUTHORIZED


def buyer_answer(order: ErpOrder, event: ProviderEvent, changes: dict[str, Any]) -> ErpState:
    """The state an order whose credit is undecided (awaiting its buyer, or in the provider's
    review) moves to on this event; others keep theirs. Never backwards: a review the ERP saw
    decided stays decided, whatever older event arrives late."""
    if order.erp_state not in UNDECIDED:
        return order.erp_state
    if event.checkout_status == CheckoutStatus.COMPLETED and event.provider_order_id:
        changes["provider_order_id"] = event.provider_order_id
        return ErpState.AUTHORIZED
    if event.checkout_status == CheckoutStatus.IN_REVIEW and event.provider_order_id:
        changes["provider_order_id"] = event.provider_order_id
        return ErpState.UNDER_REVIEW
    if event.checkout_status in (CheckoutStatus.DECLINED, CheckoutStatus.EXPIRED):
        return ErpState.REJECTED
    snapshot = event.order
    if snapshot is None:
        return order.erp_state
    changes["provider_order_id"] = snapshot.provider_order_id
    if snapshot.status == AuthorizationStatus.DECLINED:
        return ErpState.REJECTED
    if snapshot.status == AuthorizationStatus.PENDING:
        return ErpState.UNDER_REVIEW  # the provider has the order, and is still deciding
    # Any other status means credit was granted; events arrive in any order, so a later status
    # (captured, canceled, expired) may be the first one seen. The figures then carry it on.
    return ErpState.AUTHORIZED


def checkout_answer(status: CheckoutStatus, has_order: bool) -> ErpState | None:
    """The state a read of the checkout puts an undecided order in (None: no answer yet)."""
    if status is CheckoutStatus.COMPLETED and has_order:
        return ErpState.AUTHORIZED
    if status is CheckoutStatus.IN_REVIEW and has_order:
        return ErpState.UNDER_REVIEW
    if status in (CheckoutStatus.DECLINED, CheckoutStatus.EXPIRED):
        return ErpState.REJECTED
    return None


def followed_figures(order: ErpOrder, snapshot: Authorization, changes: dict[str, Any]) -> ErpState:
    """Amounts only grow to the provider's; a release or lapse with nothing shipped ends it."""
    shipped = max(order.shipped, snapshot.captured)
    refunded = max(order.refunded, snapshot.refunded)
    if shipped != order.shipped:
        changes["shipped"] = shipped
    if refunded != order.refunded:
        changes["refunded"] = refunded
    if shipped == 0 and snapshot.status == AuthorizationStatus.CANCELED:
        return ErpState.CANCELED
    if shipped == 0 and snapshot.status == AuthorizationStatus.EXPIRED:
        return ErpState.EXPIRED
    return derived(order.amount, shipped, refunded)


__all__ = [
    "CANCELABLE",
    "MONEY_STATES",
    "REFUNDABLE",
    "SHIPPABLE",
    "UNDECIDED",
    "buyer_answer",
    "checkout_answer",
    "derived",
    "followed_figures",
]
