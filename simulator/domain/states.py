"""Transitions as data: one table per resource, `(state, event) -> state`.

A `Machine` holds a resource's statuses (a `Literal`, the one place they are written: the API
schemas and the models take them from here), its initial and terminal states and its table;
`Machine.transition()` is the only function that decides a new status, and nothing else
assigns one. Every entity with a status changes it through its machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Generic, Literal, TypeVar, get_args

from simulator.domain.errors import InvalidTransition

S = TypeVar("S", bound=str)


@dataclass(frozen=True)
class Machine(Generic[S]):
    """A resource's states and its `(state, event) -> state` table (read-only)."""

    resource: str
    states: tuple[S, ...]
    initial: S
    terminal: frozenset[S]
    table: Mapping[tuple[S, str], S]

    def transition(self, state: S, event: str) -> S:
        """The state after `event`, or InvalidTransition (a 409 problem) if the table has no
        entry; the error names the verb (`capture`), not the internal event."""
        try:
            return self.table[(state, event)]
        except KeyError:
            verb = event.split("_", maxsplit=1)[0]
            raise InvalidTransition(self.resource, state, verb) from None

    def allowed(self, state: S, event: str) -> bool:
        return (state, event) in self.table


def _machine(
    resource: str,
    statuses: Any,  # a Literal type: its members are the states, in order
    initial: S,
    terminal: frozenset[S],
    table: dict[tuple[S, str], S],
) -> Machine[S]:
    return Machine(resource, get_args(statuses), initial, terminal, MappingProxyType(table))


CheckoutStatus = Literal["open", "completed", "declined", "expired"]
CHECKOUT: Machine[CheckoutStatus] = _machine(
    "checkout",
    CheckoutStatus,
    "open",
    frozenset({"completed", "declined", "expired"}),
    {
        ("open", "complete"): "completed",
        ("open", "decline"): "declined",
        ("open", "expire"): "expired",
    },
)

# Order events are computed by the service from amounts: a capture that leaves nothing to
# capture is `capture_full`, otherwise `capture_partial`; a refund that returns everything
# captured while nothing is left to capture is `refund_full`, otherwise `refund_partial`.
OrderStatus = Literal[
    "pending_review",
    "authorized",
    "partially_captured",
    "captured",
    "partially_refunded",
    "refunded",
    "canceled",
    "expired",
    "declined",
]
ORDER: Machine[OrderStatus] = _machine(
    "order",
    OrderStatus,
    "pending_review",
    frozenset({"refunded", "canceled", "expired", "declined"}),
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
    },
)

CreditLineStatus = Literal["unreviewed", "in_review", "active", "declined", "suspended"]
CREDIT_LINE: Machine[CreditLineStatus] = _machine(
    "credit_line",
    CreditLineStatus,
    "unreviewed",
    frozenset(),
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
    },
)

# A repayment falls due: paid on time, or late (then paid late, or defaulted). Refunds and lost
# disputes cancel what they take off entirely.
RepaymentStatus = Literal["scheduled", "late", "paid", "defaulted", "canceled"]
REPAYMENT: Machine[RepaymentStatus] = _machine(
    "repayment",
    RepaymentStatus,
    "scheduled",
    frozenset({"paid", "defaulted", "canceled"}),
    {
        ("scheduled", "pay"): "paid",
        ("scheduled", "miss"): "late",
        ("scheduled", "cancel"): "canceled",
        ("late", "pay"): "paid",
        ("late", "default"): "defaulted",
        ("late", "cancel"): "canceled",
    },
)

SettlementStatus = Literal["pending", "paid"]
SETTLEMENT: Machine[SettlementStatus] = _machine(
    "settlement",
    SettlementStatus,
    "pending",
    frozenset({"paid"}),
    {("pending", "pay"): "paid"},
)

# Evidence puts a dispute under review; no answer by the deadline (or accepting it) loses it.
DisputeStatus = Literal["needs_response", "under_review", "won", "lost"]
DISPUTE: Machine[DisputeStatus] = _machine(
    "dispute",
    DisputeStatus,
    "needs_response",
    frozenset({"won", "lost"}),
    {
        ("needs_response", "submit_evidence"): "under_review",
        ("needs_response", "lose"): "lost",
        ("under_review", "win"): "won",
        ("under_review", "lose"): "lost",
    },
)

# A failed delivery is not final: recovery (control plane) sends it again.
DeliveryStatus = Literal["pending", "succeeded", "failed", "dropped"]
DELIVERY: Machine[DeliveryStatus] = _machine(
    "webhook_delivery",
    DeliveryStatus,
    "pending",
    frozenset({"succeeded", "dropped"}),
    {
        ("pending", "succeed"): "succeeded",
        ("pending", "fail"): "failed",
        ("pending", "drop"): "dropped",
        ("failed", "recover"): "pending",
    },
)

# Disabled by hand, by a 410 or after failing for days; enabled by hand. Either again is a no-op.
EndpointStatus = Literal["enabled", "disabled"]
ENDPOINT: Machine[EndpointStatus] = _machine(
    "webhook_endpoint",
    EndpointStatus,
    "enabled",
    frozenset(),
    {
        ("enabled", "disable"): "disabled",
        ("enabled", "enable"): "enabled",
        ("disabled", "enable"): "enabled",
        ("disabled", "disable"): "disabled",
    },
)

# Gateway + net terms (simulator/gateway.py): the seller's own invoice. A draft is an order not
# yet shipped; issuing (on shipment, several times for partial shipments) opens it; payments
# and credit notes bring what is due to 0 (`settle`); the seller may close an underpaid
# invoice by writing the rest off (`write_off`). Issuing more reopens a settled invoice.
InvoiceStatus = Literal["draft", "open", "paid", "short_paid", "void"]
INVOICE: Machine[InvoiceStatus] = _machine(
    "invoice",
    InvoiceStatus,
    "draft",
    frozenset({"void"}),
    {
        ("draft", "issue"): "open",
        ("draft", "void"): "void",
        ("open", "issue"): "open",
        ("open", "settle"): "paid",
        ("open", "write_off"): "short_paid",
        ("paid", "issue"): "open",
        ("short_paid", "issue"): "open",
    },
)

# A gateway charge: a card is captured at once; an ACH debit clears days later.
ChargeStatus = Literal["pending", "succeeded"]
CHARGE: Machine[ChargeStatus] = _machine(
    "charge",
    ChargeStatus,
    "pending",
    frozenset({"succeeded"}),
    {("pending", "clear"): "succeeded"},
)

# A virtual card the buyer's AP issued (simulator/vcards.py): single use, so its one capture
# uses it up; one never captured expires on the clock (any hold is released).
VcardStatus = Literal["active", "used", "expired"]
VCARD: Machine[VcardStatus] = _machine(
    "vcard",
    VcardStatus,
    "active",
    frozenset({"used", "expired"}),
    {("active", "capture"): "used", ("active", "expire"): "expired"},
)

# A capture of a virtual card: pending until it clears, business days later.
VcardPaymentStatus = Literal["pending", "cleared"]
VCARD_PAYMENT: Machine[VcardPaymentStatus] = _machine(
    "vcard_payment",
    VcardPaymentStatus,
    "pending",
    frozenset({"cleared"}),
    {("pending", "clear"): "cleared"},
)

# Traditional invoicing (simulator/invoicing.py): an EDI 810 invoice is open once sent; money
# applied from remittances and credit memos bring what is due to 0 (`settle`); dunning escalates
# an unpaid one to `collections` (+30 days) and `defaulted` (+90); the seller may write off the
# rest of an unpaid one. Late money still settles a collections or defaulted invoice.
EdiInvoiceStatus = Literal["open", "paid", "collections", "defaulted", "written_off"]
EDI_INVOICE: Machine[EdiInvoiceStatus] = _machine(
    "edi_invoice",
    EdiInvoiceStatus,
    "open",
    frozenset({"paid", "written_off"}),
    {
        ("open", "settle"): "paid",
        ("open", "escalate"): "collections",
        ("open", "write_off"): "written_off",
        ("collections", "settle"): "paid",
        ("collections", "default"): "defaulted",
        ("collections", "write_off"): "written_off",
        ("defaulted", "settle"): "paid",
        ("defaulted", "write_off"): "written_off",
    },
)
# A remittance's status is derived from its figures (`Remittance.restate`), not transitioned.
RemittanceStatus = Literal["unmatched", "partially_matched", "matched"]
# A payment token in an account's vault (simulator/vault.py): usable until its instrument
# expires on the account clock or the merchant (or the buyer) revokes it; both are final.
TokenStatus = Literal["active", "expired", "revoked"]
TOKEN: Machine[TokenStatus] = _machine(
    "token",
    TokenStatus,
    "active",
    frozenset({"expired", "revoked"}),
    {("active", "expire"): "expired", ("active", "revoke"): "revoked"},
)

MACHINES: Mapping[str, Machine[Any]] = MappingProxyType(
    {
        m.resource: m
        for m in (
            CHECKOUT,
            ORDER,
            CREDIT_LINE,
            REPAYMENT,
            SETTLEMENT,
            DISPUTE,
            DELIVERY,
            ENDPOINT,
            INVOICE,
            CHARGE,
            VCARD,
            VCARD_PAYMENT,
            EDI_INVOICE,
            TOKEN,
        )
    }
)
