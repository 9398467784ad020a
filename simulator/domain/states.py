"""Transitions as data: one table per resource, `(state, event) -> state`.

`transition()` is the only function that decides a new status; nothing else assigns one.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from simulator.domain.errors import InvalidTransition

Table = Mapping[tuple[str, str], str]

CHECKOUT_STATES = ("open", "completed", "declined", "expired")
CHECKOUT: Table = MappingProxyType(
    {
        ("open", "complete"): "completed",
        ("open", "decline"): "declined",
        ("open", "expire"): "expired",
    }
)

# Order events are computed by the service from amounts: a capture that leaves nothing to
# capture is `capture_full`, otherwise `capture_partial`; a refund that returns everything
# captured while nothing is left to capture is `refund_full`, otherwise `refund_partial`.
ORDER_STATES = (
    "pending_review",
    "authorized",
    "partially_captured",
    "captured",
    "partially_refunded",
    "refunded",
    "canceled",
    "expired",
    "declined",
)
ORDER: Table = MappingProxyType(
    {
        ("pending_review", "approve"): "authorized",
        ("pending_review", "decline"): "declined",
        ("pending_review", "cancel"): "canceled",
        ("pending_review", "update"): "pending_review",
        ("authorized", "update"): "authorized",
        ("authorized", "capture_partial"): "partially_captured",
        ("authorized", "capture_full"): "captured",
        ("authorized", "cancel"): "canceled",
        ("authorized", "expire"): "expired",
        ("partially_captured", "capture_partial"): "partially_captured",
        ("partially_captured", "capture_full"): "captured",
        ("partially_captured", "refund_partial"): "partially_refunded",
        # The uncaptured remainder lapses; what was captured stands.
        ("partially_captured", "expire"): "captured",
        ("captured", "refund_partial"): "partially_refunded",
        ("captured", "refund_full"): "refunded",
        ("partially_refunded", "capture_partial"): "partially_refunded",
        ("partially_refunded", "capture_full"): "partially_refunded",
        ("partially_refunded", "refund_partial"): "partially_refunded",
        ("partially_refunded", "refund_full"): "refunded",
        ("partially_refunded", "expire"): "partially_refunded",
        # The remainder lapses and everything captured had already been refunded.
        ("partially_refunded", "expire_all_refunded"): "refunded",
    }
)
ORDER_TERMINAL = frozenset({"refunded", "canceled", "expired", "declined"})

CREDIT_LINE_STATES = ("unreviewed", "in_review", "active", "declined", "suspended")
CREDIT_LINE: Table = MappingProxyType(
    {
        ("unreviewed", "approve"): "active",
        ("unreviewed", "decline"): "declined",
        ("unreviewed", "review"): "in_review",
        ("in_review", "approve"): "active",
        ("in_review", "decline"): "declined",
        ("in_review", "review"): "in_review",
        ("active", "approve"): "active",  # re-underwriting may change the limit
        ("active", "decline"): "declined",
        ("active", "review"): "active",  # an active line keeps its status while one order waits
        ("declined", "approve"): "active",
        ("declined", "decline"): "declined",
        ("declined", "review"): "in_review",
        # A buyer who defaulted on a repayment: no new credit, whatever underwriting says.
        ("active", "suspend"): "suspended",
        ("suspended", "suspend"): "suspended",
        ("suspended", "approve"): "suspended",
        ("suspended", "decline"): "suspended",
        ("suspended", "review"): "suspended",
    }
)

TABLES: Mapping[str, Table] = MappingProxyType(
    {"checkout": CHECKOUT, "order": ORDER, "credit_line": CREDIT_LINE}
)
STATES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"checkout": CHECKOUT_STATES, "order": ORDER_STATES, "credit_line": CREDIT_LINE_STATES}
)


def transition(resource: str, state: str, event: str) -> str:
    """The state after `event`, or InvalidTransition (a 409 problem) if the table has no entry."""
    try:
        return TABLES[resource][(state, event)]
    except KeyError:
        raise InvalidTransition(resource, state, event.split("_", maxsplit=1)[0]) from None


def allowed(resource: str, state: str, event: str) -> bool:
    return (state, event) in TABLES[resource]
