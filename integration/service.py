"""Order-to-cash over a `ProviderAdapter`: place an order on credit, ship (capture), cancel,
refund, and read an order with its ERP state, provider state, holds and ledger postings.

Every provider mutation is a *hold* first: written to the `OrderBook` with the intent id it will
use, then attempted. Success resolves the hold, moves the ERP order and posts the ledger in that
order (the posting is idempotent by provider id, the hold's resolution is one transaction with
the order's change), so a crash anywhere leaves work the resumer finishes. When the provider is
down or a breaker is open the hold simply stays open: the shop gets the ERP state ("credit
pending") instead of an error, and `resume()` drives the hold again later with the SAME intent
id, hence the same Idempotency-Key. An ambiguous capture or refund is resolved by reading the
provider's order first and by that same-key retry, never by a request under a new key.

`create_service_app` puts it behind a small Starlette API (errors as application/problem+json)
with a background resumer, an events poller and an event worker in the lifespan, and
Prometheus text at `GET /metrics` (`integration.metrics`: approval velocity, orders by state,
retries, breakers, open holds). Provider events come by webhook, by the poller, or both
(one inbox row per event id); `GET /orders/{id}` shows every ledger posting of the order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from integration import logs
from integration.adapters.base import (
    AuthorizationStatus,
    Buyer,
    CheckoutStatus,
    LineItem,
    PlaceOrder,
    ProviderAdapter,
)
from integration.client import ProviderRejected, ProviderUnavailable, ResilientClient
from integration.inbox import Inbox
from integration.ledger import Ledger, Posting
from integration.metrics import CONTENT_TYPE, Metrics
from integration.model import (
    Authorization,
    Capture,
    EventKind,
    Money,
    ProviderEvent,
    Refund,
)
from integration.orders import ErpOrder, ErpState, Hold, HoldKind, OrderBook, stamp
from integration.receiver import (
    DEFAULT_TOLERANCE_S,
    Verifier,
    apoll_since,
    aprocess_pending,
    webhook_endpoint,
)
from integration.settlements import post_payouts

log = logging.getLogger("sandbank.integration")

PROBLEM = "application/problem+json"
# A partial refund does not end the shipping: the provider captures the rest after a refund.
SHIPPABLE = frozenset(
    {ErpState.AUTHORIZED, ErpState.PARTIALLY_SHIPPED, ErpState.PARTIALLY_REFUNDED}
)
REFUNDABLE = frozenset({ErpState.PARTIALLY_SHIPPED, ErpState.SHIPPED, ErpState.PARTIALLY_REFUNDED})
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
WEBHOOK_PATH = "/webhooks/provider"
_ENDED: dict[str, ErpState] = {
    AuthorizationStatus.EXPIRED: ErpState.EXPIRED,
    AuthorizationStatus.CANCELED: ErpState.CANCELED,
}
BUYER_FIELDS = ("tax_id", "domain", "annual_revenue", "years_in_business", "external_id")


class OrderProblem(Exception):
    """An answer for the shop, as problem+json."""

    status = 400
    code = "bad_request"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class OrderNotFound(OrderProblem):
    status, code = 404, "not_found"


class InvalidTransition(OrderProblem):
    status, code = 409, "invalid_transition"


class InvalidOrder(OrderProblem):
    status, code = 422, "validation_failed"


class ProviderRefused(OrderProblem):
    status, code = 502, "rejected"  # `code` is the adapter's canonical rejection code


class ProviderDown(OrderProblem):
    status, code = 503, "provider_unavailable"


@dataclass(frozen=True, slots=True)
class Outcome:
    order: ErpOrder
    hold: Hold | None  # the hold left open (degraded mode), None when the work completed


def _utc_now() -> datetime:
    return datetime.now(UTC)


class OrderToCash:
    def __init__(
        self,
        adapter: ProviderAdapter,
        book: OrderBook,
        ledger: Ledger,
        clock: Callable[[], datetime] = _utc_now,
        metrics: Metrics | None = None,
    ) -> None:
        self.adapter = adapter
        self.book = book
        self.ledger = ledger
        self.clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        self.metrics = metrics or Metrics()
        self.metrics.watch_holds(book)
        client = getattr(adapter, "client", None)  # adapters on a ResilientClient report retries
        if isinstance(client, ResilientClient):
            self.metrics.watch_client(client)

    # --- the shop's actions -------------------------------------------------------------------
    async def place_order(self, body: Any) -> Outcome:
        merchant_order_id, money, request = parse_order(body)
        _checked_place_order(merchant_order_id, money, request)
        async with self._lock(merchant_order_id):
            try:
                self.book.get(merchant_order_id)
            except KeyError:
                pass
            else:
                raise InvalidTransition(f"order {merchant_order_id!r} exists already")
            self.book.create(merchant_order_id, money.amount, money.currency, request, self._now())
            self.metrics.order_entered(ErpState.PLACED)
            hold = self.book.open_hold(
                merchant_order_id,
                HoldKind.CREDIT_PENDING,
                f"checkout:{merchant_order_id}",
                {},
                self._now(),
            )
            return await self._run(hold, resuming=False)

    async def ship(self, merchant_order_id: str, amount: Any) -> Outcome:
        async with self._lock(merchant_order_id):
            order = await self._ready(merchant_order_id)
            if order.erp_state not in SHIPPABLE:
                raise InvalidTransition(f"cannot ship an order that is {order.erp_state}")
            _checked_amount(amount, order.amount - order.shipped, "to ship")
            return await self._start(order, HoldKind.CAPTURE_PENDING, "capture", amount)

    async def refund(self, merchant_order_id: str, amount: Any) -> Outcome:
        async with self._lock(merchant_order_id):
            order = await self._ready(merchant_order_id)
            if order.erp_state not in REFUNDABLE:
                raise InvalidTransition(f"cannot refund an order that is {order.erp_state}")
            _checked_amount(amount, order.shipped - order.refunded, "to refund")
            return await self._start(order, HoldKind.REFUND_PENDING, "refund", amount)

    async def cancel(self, merchant_order_id: str) -> Outcome:
        async with self._lock(merchant_order_id):
            order = await self._ready(merchant_order_id)
            if order.erp_state is not ErpState.AUTHORIZED:
                raise InvalidTransition(f"cannot cancel an order that is {order.erp_state}")
            return await self._start(order, HoldKind.CANCEL_PENDING, "cancel", None)

    async def get_order(self, merchant_order_id: str) -> dict[str, Any]:
        async with self._lock(merchant_order_id):
            order = self._order(merchant_order_id)
            provider: dict[str, Any] | None = None
            note: str | None = None
            try:
                if order.erp_state is ErpState.AWAITING_BUYER:
                    order = await self._refresh(order)
                provider = await self._provider_view(order)
                if provider is None:
                    note = "nothing at the provider yet"
            except ProviderUnavailable as exc:
                note = f"the provider could not be read: {exc}"
            except ProviderRejected as exc:
                note = f"the provider refused the read: {exc.code}"
            view = self.view(order)
            view["provider"] = provider
            if note is not None:
                view["provider_note"] = note
            return view

    # --- the resumer --------------------------------------------------------------------------
    async def resume(self) -> int:
        """Drive every open hold again (same intent id, same key). Returns how many resolved."""
        done = 0
        for hold in self.book.holds(open_only=True):
            async with self._lock(hold.merchant_order_id):
                current = self.book.holds(hold.merchant_order_id, open_only=True)
                if all(h.id != hold.id for h in current):
                    continue  # resolved meanwhile
                done += await self._drive(hold)
        return done

    async def _drive(self, hold: Hold) -> bool:
        """Run an open hold again (the order's lock held); True when it ended."""
        with logs.bound(logs.correlation_id() or hold.intent_id):
            try:
                outcome = await self._run(hold, resuming=True)
            except (OrderProblem, ProviderRejected) as exc:
                log.warning("hold %s of %s ended: %s", hold.id, hold.merchant_order_id, exc)
                return True
            return outcome.hold is None

    # --- provider events (webhooks, polled events) ---------------------------------------------
    async def apply_event(self, event: ProviderEvent) -> str:
        """Fold one provider event into the ERP order and the ledger. Idempotent (events come
        at least once, in any order), and it never moves an order backwards.

        - The ledger gets every capture and refund the event's order snapshot lists, each
          posted by its provider id: what the service already posted from its own API call
          (same id) is not posted again.
        - An order with held work is not changed from the event's figures: the event drives
          the hold now, with the same key (the provider replays what it did), so a hold and
          an event can never both count the same money.
        - Otherwise the order follows the provider: the buyer's answer (awaiting_buyer ->
          authorized / rejected), amounts only growing (shipped, refunded), a release
          (canceled) or a lapse (expired) of an authorization nothing was shipped against.

        A paid settlement's event posts its fees and payout (by settlement id, as a
        reconciliation run does: whichever comes first posts).

        Returns what happened: posted, unknown_order, ignored, held, unchanged or updated."""
        if event.settlement is not None:
            if event.settlement.status != "paid":
                return "ignored"
            post_payouts(self.ledger, [event.settlement])
            return "posted"
        snapshot = event.order
        found = self.book.find(
            provider_order_id=event.provider_order_id
            or (snapshot.provider_order_id if snapshot else None),
            provider_checkout_id=event.provider_checkout_id,
        )
        if found is None:
            if event.provider_order_id or event.provider_checkout_id:
                log.info("event %s is about no ERP order; recorded only", event.provider_event_id)
                return "unknown_order"
            return "ignored"
        async with self._lock(found.merchant_order_id):
            order = self.book.get(found.merchant_order_id)
            if snapshot is not None:
                self._post_movements(snapshot)
            held = self.book.holds(order.merchant_order_id, open_only=True)
            if held:
                for hold in held:
                    await self._drive(hold)
                return "held"
            return self._follow(order, event)

    async def process_events(self, inbox: Inbox, limit: int = 100) -> int:
        """Apply up to `limit` queued inbox events (`apply_event`), each under its own
        correlation id (the provider's event id), and log one line per event."""

        async def handle(event: ProviderEvent) -> None:
            with logs.bound(event.provider_event_id):
                outcome = await self.apply_event(event)
                logs.emit(
                    log,
                    "provider_event",
                    event_id=event.provider_event_id,
                    type=event.raw.get("type"),
                    provider_order_id=event.provider_order_id,
                    outcome=outcome,
                )

        return await aprocess_pending(inbox, handle, limit)

    async def poll_events(self, inbox: Inbox) -> int:
        """Read the provider's events after the inbox's poll cursor into the inbox (the events
        poller: catches what no webhook brought) and move the cursor. Returns how many were
        new; `process_events` folds them in like delivered ones (one row per event id, so an
        event both delivered and polled is processed once)."""
        # Its provider calls and log line share one id (the poll's start, by the service clock).
        with logs.bound(logs.correlation_id() or f"poll_{self.clock():%Y%m%dT%H%M%S%f}"):
            new = await apoll_since(self.adapter.list_events, inbox)
            if new:
                logs.emit(log, "provider_events_polled", new=new)
        return new

    def _post_movements(self, snapshot: Authorization) -> None:
        for capture in snapshot.captures:
            money = capture.amount
            self.ledger.post(
                EventKind.CAPTURED,
                {"gross": money.amount},
                money.currency,
                capture.provider_id,
                at=capture.at,
                order_id=snapshot.provider_order_id,
            )
        for refund in snapshot.refunds:
            money = refund.amount
            self.ledger.post(
                EventKind.REFUNDED,
                {"gross": money.amount, "fee": 0},
                money.currency,
                refund.provider_id,
                at=refund.at,
                order_id=snapshot.provider_order_id,
            )

    def _follow(self, order: ErpOrder, event: ProviderEvent) -> str:
        """Move an order with no held work to what the event says (never backwards)."""
        changes: dict[str, Any] = {}
        state = _buyer_answer(order, event, changes)
        granted = order.erp_state is ErpState.AWAITING_BUYER and state is ErpState.AUTHORIZED
        snapshot = event.order
        if snapshot is not None and state in MONEY_STATES:
            state = _followed_figures(order, snapshot, changes)
        if state is not order.erp_state:
            changes["erp_state"] = state
        if snapshot is not None and state in (ErpState.CANCELED, ErpState.EXPIRED):
            kind = EventKind.CANCELED if state is ErpState.CANCELED else EventKind.EXPIRED
            oid = snapshot.provider_order_id
            self.ledger.post(kind, {"gross": 0}, order.currency, oid, at=event.at, order_id=oid)
        if not changes:
            return "unchanged"
        updated = self.book.update(order.merchant_order_id, self._now(), **changes)
        if granted:
            self._approved(updated)
        if state is not order.erp_state and not (granted and state is ErpState.AUTHORIZED):
            self.metrics.order_entered(state)
        return "updated"

    # --- views --------------------------------------------------------------------------------
    def view(self, order: ErpOrder) -> dict[str, Any]:
        holds = self.book.holds(order.merchant_order_id)
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
            "holds": [_hold_json(h) for h in holds],
            "ledger": [_posting_json(p) for p in self._postings(order, holds)],
        }

    def _postings(self, order: ErpOrder, holds: Sequence[Hold]) -> list[Posting]:
        """Every posting of the order, in the order written: those made for its provider order
        (by the service, from events or by a reconciliation run: captures, refunds, disputes,
        their reversals) and, from before postings carried an order, those under a reference
        one of its holds recorded. A settlement's fees and payout belong to no one order."""
        references = [h.reference for h in holds if h.reference]
        if order.provider_order_id is None:
            found = {p.id: p for ref in references for p in self.ledger.postings(reference=ref)}
            return list(found.values())
        references.append(order.provider_order_id)  # a release or a lapse is posted under it
        return self.ledger.order_postings(order.provider_order_id, references)

    # --- internals ----------------------------------------------------------------------------
    def _lock(self, merchant_order_id: str) -> asyncio.Lock:
        return self._locks.setdefault(merchant_order_id, asyncio.Lock())

    def _now(self) -> str:
        return stamp(self.clock())

    def _order(self, merchant_order_id: str) -> ErpOrder:
        try:
            return self.book.get(merchant_order_id)
        except KeyError:
            raise OrderNotFound(f"no order {merchant_order_id!r}") from None

    async def _ready(self, merchant_order_id: str) -> ErpOrder:
        """The order, its buyer's answer fetched if still awaited, with no provider work open."""
        order = self._order(merchant_order_id)
        open_holds = self.book.holds(merchant_order_id, open_only=True)
        if open_holds:
            raise InvalidTransition(
                f"a provider operation is pending for this order ({open_holds[0].kind}); "
                "it completes when the provider recovers"
            )
        if order.erp_state is ErpState.AWAITING_BUYER:
            try:
                order = await self._refresh(order)
            except ProviderUnavailable as exc:
                raise ProviderDown(f"cannot learn the buyer's answer: {exc}") from None
        return order

    async def _refresh(self, order: ErpOrder) -> ErpOrder:
        assert order.provider_checkout_id is not None
        ref = await self.adapter.get_checkout(order.provider_checkout_id)
        if ref.status is CheckoutStatus.COMPLETED and ref.provider_order_id:
            order = self.book.update(
                order.merchant_order_id,
                self._now(),
                provider_order_id=ref.provider_order_id,
                erp_state=ErpState.AUTHORIZED,
            )
            self._approved(order)
        elif ref.status in (CheckoutStatus.DECLINED, CheckoutStatus.EXPIRED):
            order = self.book.update(
                order.merchant_order_id, self._now(), erp_state=ErpState.REJECTED
            )
            self.metrics.order_entered(ErpState.REJECTED)
        return order

    async def _provider_view(self, order: ErpOrder) -> dict[str, Any] | None:
        if order.provider_order_id is not None:
            auth = await self.adapter.get_authorization(order.provider_order_id)
            return {
                "order_id": auth.provider_order_id,
                "status": str(auth.status),
                "amount": auth.amount.amount,
                "currency": auth.amount.currency,
                "captured_amount": auth.captured,
                "refunded_amount": auth.refunded,
            }
        if order.provider_checkout_id is not None:
            ref = await self.adapter.get_checkout(order.provider_checkout_id)
            return {"checkout_id": ref.provider_checkout_id, "checkout_status": ref.status.value}
        return None

    async def _start(
        self, order: ErpOrder, kind: HoldKind, verb: str, amount: int | None
    ) -> Outcome:
        seq = self.book.next_seq(order.merchant_order_id, self._now())
        detail = {} if amount is None else {"amount": amount}
        hold = self.book.open_hold(
            order.merchant_order_id,
            kind,
            f"{verb}:{order.merchant_order_id}:{seq}",
            detail,
            self._now(),
        )
        return await self._run(hold, resuming=False)

    async def _run(self, hold: Hold, *, resuming: bool) -> Outcome:
        """Attempt the hold's work; an unavailable provider leaves it open (degraded mode)."""
        try:
            if hold.kind is HoldKind.CREDIT_PENDING:
                await self._checkout(hold)
            elif hold.kind is HoldKind.CANCEL_PENDING:
                await self._cancel(hold, resuming=resuming)
            else:
                await self._money_movement(hold, resuming=resuming)
        except ProviderUnavailable as exc:
            log.warning("hold %s (%s) stays open: %s", hold.id, hold.kind, exc)
            order = self.book.get(hold.merchant_order_id)
            if hold.kind is HoldKind.CREDIT_PENDING and order.erp_state is ErpState.PLACED:
                order = self.book.update(
                    hold.merchant_order_id, self._now(), erp_state=ErpState.CREDIT_PENDING
                )
                self.metrics.order_entered(ErpState.CREDIT_PENDING)
            return Outcome(order, hold)
        return Outcome(self.book.get(hold.merchant_order_id), None)

    async def _checkout(self, hold: Hold) -> None:
        order = self.book.get(hold.merchant_order_id)
        try:
            ref = await self.adapter.create_checkout(_place_order(order), intent_id=hold.intent_id)
        except ProviderRejected as exc:
            self._refused(hold, exc, erp_state=ErpState.REJECTED)
            raise ProviderRefused(exc.detail or str(exc), code=exc.code) from None
        completed = ref.status is CheckoutStatus.COMPLETED and ref.provider_order_id is not None
        state = ErpState.AUTHORIZED if completed else ErpState.AWAITING_BUYER
        if self.book.resolve_hold(
            hold.id,
            "checkout created",
            self._now(),
            reference=ref.provider_checkout_id,
            provider_checkout_id=ref.provider_checkout_id,
            provider_order_id=ref.provider_order_id,
            checkout_url=ref.redirect_url,
            erp_state=state,
        ):
            if completed:
                self._approved(order)
            else:
                self.metrics.order_entered(state)

    async def _money_movement(self, hold: Hold, *, resuming: bool) -> None:
        order = self.book.get(hold.merchant_order_id)
        assert order.provider_order_id is not None
        money = Money(int(hold.detail["amount"]), order.currency)
        capture = hold.kind is HoldKind.CAPTURE_PENDING
        already = False
        auth: Authorization | None = None
        if resuming:
            # Read first: did an earlier (ambiguous) attempt of this intent already happen?
            auth = await self.adapter.get_authorization(order.provider_order_id)
            known = order.shipped if capture else order.refunded
            seen = auth.captured if capture else auth.refunded
            already = seen >= known + money.amount
        try:
            # The same intent id: the same key, so the provider replays what it already did.
            done: Capture | Refund
            if capture:
                done = await self.adapter.capture(
                    order.provider_order_id, money, intent_id=hold.intent_id
                )
            else:
                done = await self.adapter.refund(
                    order.provider_order_id, money, intent_id=hold.intent_id
                )
        except ProviderRejected as exc:
            if not already:
                # Refused because the authorization ended meanwhile (lapsed or released while
                # the work was held): the order ends with it, as the event said.
                ended = _ENDED.get(auth.status) if auth is not None and not order.shipped else None
                self._refused(hold, exc, **({"erp_state": ended} if ended else {}))
                raise ProviderRefused(exc.detail or str(exc), code=exc.code) from None
            # The provider shows it done but no longer replays the key: settle from the read,
            # on the provider's id for it when the read lists one no other hold has claimed
            # (the id an event about it posts under too).
            assert auth is not None
            reference, at = self._unclaimed(order, auth, money, capture=capture) or (
                f"{order.provider_order_id}:{hold.intent_id}",
                self.clock(),
            )
        else:
            reference, at = done.provider_id, done.at
        kind = EventKind.CAPTURED if capture else EventKind.REFUNDED
        figures = {"gross": money.amount} if capture else {"gross": money.amount, "fee": 0}
        self.ledger.post(
            kind, figures, money.currency, reference, at=at, order_id=order.provider_order_id
        )
        shipped = order.shipped + (money.amount if capture else 0)
        refunded = order.refunded + (0 if capture else money.amount)
        state = _derived(order.amount, shipped, refunded)
        if (
            self.book.resolve_hold(
                hold.id,
                f"{'captured' if capture else 'refunded'} {money.amount}",
                self._now(),
                reference=reference,
                shipped=shipped,
                refunded=refunded,
                erp_state=state,
            )
            and state is not order.erp_state
        ):
            self.metrics.order_entered(state)

    def _unclaimed(
        self, order: ErpOrder, auth: Authorization, money: Money, *, capture: bool
    ) -> tuple[str, datetime] | None:
        """The oldest capture (refund) of `money` no hold of the order names as its reference."""
        claimed = {h.reference for h in self.book.holds(order.merchant_order_id) if h.reference}
        movements: tuple[Capture | Refund, ...] = auth.captures if capture else auth.refunds
        for movement in movements:
            if movement.amount == money and movement.provider_id not in claimed:
                return movement.provider_id, movement.at
        return None

    async def _cancel(self, hold: Hold, *, resuming: bool) -> None:
        order = self.book.get(hold.merchant_order_id)
        assert order.provider_order_id is not None
        try:
            canceled = await self.adapter.cancel(order.provider_order_id, intent_id=hold.intent_id)
            at = canceled.at
        except ProviderRejected as exc:
            auth = await self.adapter.get_authorization(order.provider_order_id)
            if not (resuming and auth.status is AuthorizationStatus.CANCELED):
                self._refused(hold, exc)
                raise ProviderRefused(exc.detail or str(exc), code=exc.code) from None
            at = self.clock()
        oid = order.provider_order_id
        self.ledger.post(EventKind.CANCELED, {"gross": 0}, order.currency, oid, at=at, order_id=oid)
        if self.book.resolve_hold(
            hold.id,
            "canceled",
            self._now(),
            reference=order.provider_order_id,
            erp_state=ErpState.CANCELED,
        ):
            self.metrics.order_entered(ErpState.CANCELED)

    def _refused(self, hold: Hold, exc: ProviderRejected, **changes: Any) -> None:
        resolved = self.book.resolve_hold(hold.id, f"rejected: {exc.code}", self._now(), **changes)
        if resolved and "erp_state" in changes:
            self.metrics.order_entered(changes["erp_state"])

    def _approved(self, order: ErpOrder) -> None:
        """The buyer's credit is authorized: approval velocity from the order's placing."""
        self.metrics.order_entered(ErpState.AUTHORIZED)
        self.metrics.approved_after((self.clock() - order.created_at).total_seconds())


# --- parsing and derived state ---------------------------------------------------------------
def _buyer_answer(order: ErpOrder, event: ProviderEvent, changes: dict[str, Any]) -> ErpState:
    """The state an order awaiting its buyer moves to on this event (others keep theirs)."""
    if order.erp_state is not ErpState.AWAITING_BUYER:
        return order.erp_state
    if event.checkout_status == CheckoutStatus.COMPLETED and event.provider_order_id:
        changes["provider_order_id"] = event.provider_order_id
        return ErpState.AUTHORIZED
    if event.checkout_status in (CheckoutStatus.DECLINED, CheckoutStatus.EXPIRED):
        return ErpState.REJECTED
    snapshot = event.order
    if snapshot is None:
        return order.erp_state
    changes["provider_order_id"] = snapshot.provider_order_id
    if snapshot.status == AuthorizationStatus.DECLINED:
        return ErpState.REJECTED
    if snapshot.status == AuthorizationStatus.PENDING:
        return order.erp_state  # in review: the buyer's answer is not final yet
    # Any other status means credit was granted; events arrive in any order, so a later status
    # (captured, canceled, expired) may be the first one seen. The figures then carry it on.
    return ErpState.AUTHORIZED


def _followed_figures(
    order: ErpOrder, snapshot: Authorization, changes: dict[str, Any]
) -> ErpState:
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
    return _derived(order.amount, shipped, refunded)


def _derived(amount: int, shipped: int, refunded: int) -> ErpState:
    if refunded > 0:
        return ErpState.REFUNDED if refunded >= shipped else ErpState.PARTIALLY_REFUNDED
    if shipped >= amount:
        return ErpState.SHIPPED
    return ErpState.PARTIALLY_SHIPPED if shipped > 0 else ErpState.AUTHORIZED


def _int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _checked_amount(amount: Any, available: int, what: str) -> None:
    if not _int(amount) or amount <= 0:
        raise InvalidOrder("amount must be a positive integer of minor units")
    if amount > available:
        raise InvalidOrder(f"amount {amount} exceeds the {available} left {what}")


def _text(body: dict[str, Any], key: str, where: str = "") -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidOrder(f"{where}{key} is required (a non-empty string)")
    return value


def parse_order(body: Any) -> tuple[str, Money, dict[str, Any]]:
    """(merchant_order_id, amount, the checkout's request) from a POST /orders body."""
    if not isinstance(body, dict):
        raise InvalidOrder("the body must be a JSON object")
    merchant_order_id = _text(body, "merchant_order_id")
    amount = body.get("amount")
    if not _int(amount) or amount <= 0:
        raise InvalidOrder("amount must be a positive integer of minor units")
    try:
        money = Money(amount, _text(body, "currency"))
    except ValueError as exc:
        raise InvalidOrder(str(exc)) from None
    buyer = body.get("buyer")
    if not isinstance(buyer, dict):
        raise InvalidOrder("buyer is required (legal_name, email)")
    buyer_out: dict[str, Any] = {
        "legal_name": _text(buyer, "legal_name", "buyer."),
        "email": _text(buyer, "email", "buyer."),
    }
    buyer_out.update({k: buyer[k] for k in BUYER_FIELDS if buyer.get(k) is not None})
    items = body.get("line_items", [])
    if not isinstance(items, list):
        raise InvalidOrder("line_items must be a list")
    lines: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            raise InvalidOrder("each line item is an object (name, quantity, unit_amount)")
        quantity, unit = item.get("quantity"), item.get("unit_amount")
        if not (_int(quantity) and _int(unit) and quantity > 0 and unit >= 0):
            raise InvalidOrder("line item quantity and unit_amount are non-negative integers")
        line = {
            "name": _text(item, "name", "line item "),
            "quantity": quantity,
            "unit_amount": unit,
        }
        if isinstance(item.get("sku"), str):
            line["sku"] = item["sku"]
        lines.append(line)
    request = {
        "buyer": buyer_out,
        "line_items": lines,
        "return_url": _text(body, "return_url"),
        "cancel_url": _text(body, "cancel_url"),
    }
    return merchant_order_id, money, request


def _checked_place_order(merchant_order_id: str, money: Money, request: dict[str, Any]) -> None:
    try:
        _place_order_of(merchant_order_id, money, request)
    except (TypeError, ValueError) as exc:
        raise InvalidOrder(str(exc)) from None


def _place_order_of(merchant_order_id: str, money: Money, request: dict[str, Any]) -> PlaceOrder:
    return PlaceOrder(
        merchant_order_id=merchant_order_id,
        amount=money,
        buyer=Buyer(**request["buyer"]),
        return_url=request["return_url"],
        cancel_url=request["cancel_url"],
        line_items=tuple(LineItem(**li) for li in request["line_items"]),
    )


def _place_order(order: ErpOrder) -> PlaceOrder:
    return _place_order_of(
        order.merchant_order_id, Money(order.amount, order.currency), order.request
    )


def _hold_json(hold: Hold) -> dict[str, Any]:
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


def _posting_json(posting: Posting) -> dict[str, Any]:
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


# --- the HTTP service -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Loops:
    """What runs in the background, and how often (None: not at all)."""

    resume_every_s: float | None
    inbox: Inbox | None
    process_every_s: float | None
    poll_every_s: float | None
    sleep: Callable[[float], Awaitable[None]]


def _background(
    service: OrderToCash, loops: _Loops, wake: asyncio.Event
) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    """The lifespan: the resumer, the events poller and the event worker run while the
    service does."""
    sleep = loops.sleep

    async def resumer(every_s: float) -> None:
        while True:
            await sleep(every_s)
            try:
                await service.resume()
            except Exception:
                log.exception("the resumer failed; trying again in %ss", every_s)

    async def poller(box: Inbox, every_s: float) -> None:
        while True:  # at once on start: what was missed while the service was down
            try:
                if await service.poll_events(box):
                    wake.set()
            except Exception:
                log.exception("the events poller failed; trying again in %ss", every_s)
            await sleep(every_s)

    async def event_worker(box: Inbox, every_s: float) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), every_s)
            wake.clear()
            try:
                await service.process_events(box)
            except Exception:
                log.exception("the event worker failed; trying again in %ss", every_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks = []
        if loops.resume_every_s is not None:
            tasks.append(asyncio.create_task(resumer(loops.resume_every_s)))
        if loops.inbox is not None and loops.poll_every_s is not None:
            tasks.append(asyncio.create_task(poller(loops.inbox, loops.poll_every_s)))
        if loops.inbox is not None and loops.process_every_s is not None:
            tasks.append(asyncio.create_task(event_worker(loops.inbox, loops.process_every_s)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    return lifespan


def problem(status: int, code: str, detail: str) -> JSONResponse:
    titles = {404: "Not found", 409: "Conflict", 422: "Unprocessable", 502: "Provider refused"}
    body = {
        "type": "about:blank",
        "title": titles.get(status, "Error"),
        "status": status,
        "code": code,
        "detail": detail,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def create_service_app(
    service: OrderToCash,
    *,
    resume_every_s: float | None = 30.0,
    inbox: Inbox | None = None,
    webhook_secrets: str | Sequence[str] = (),
    process_every_s: float | None = 1.0,
    poll_every_s: float | None = None,
    webhook_clock: Callable[[], datetime] | None = None,
    webhook_tolerance_s: int = DEFAULT_TOLERANCE_S,
    correlation_ids: Callable[[], str] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Starlette:
    """The order-to-cash API.

    `resume_every_s` (None: off) paces the background resumer. With an `inbox`, the event
    worker folds provider events into the ERP and the ledger (`OrderToCash.process_events`)
    every `process_every_s` (None: off; tests call it) and at once after each new delivery
    or poll that brought something new; with `webhook_secrets` too, `POST /webhooks/provider`
    receives Standard Webhooks into that inbox (verified on `webhook_clock`, default the
    service's clock). `poll_every_s` (None: off) runs the events poller
    (`OrderToCash.poll_events`) at start and then every so often: it reads the provider's
    event list after the inbox's stored cursor into the same inbox, so an event no webhook
    brought still arrives, and one both delivered and polled is processed once. The resumer
    and the poller wait with `sleep`. `correlation_ids` makes the ids of requests that bring
    no `X-Correlation-Id` (default: random, from the OS).
    """
    new_correlation_id = correlation_ids or logs.random_ids()
    wake = asyncio.Event()
    secrets = [webhook_secrets] if isinstance(webhook_secrets, str) else list(webhook_secrets)
    if secrets and inbox is None:
        raise ValueError("webhook secrets need an inbox to receive into")
    if poll_every_s is not None and inbox is None:
        raise ValueError("the events poller needs an inbox to poll into")

    def answer(outcome: Outcome, created: bool = False) -> JSONResponse:
        body = service.view(outcome.order)
        if outcome.hold is not None:
            body["pending"] = _hold_json(outcome.hold)
            return JSONResponse(body, status_code=202)
        return JSONResponse(body, status_code=201 if created else 200)

    async def json_body(request: Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            raise InvalidOrder("the body is not JSON") from None

    async def amount_of(request: Request) -> Any:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise InvalidOrder("the body must be a JSON object with an amount")
        return body.get("amount")

    async def place(request: Request) -> JSONResponse:
        return answer(await service.place_order(await json_body(request)), created=True)

    async def ship(request: Request) -> JSONResponse:
        oid = request.path_params["order_id"]
        return answer(await service.ship(oid, await amount_of(request)))

    async def refund(request: Request) -> JSONResponse:
        oid = request.path_params["order_id"]
        return answer(await service.refund(oid, await amount_of(request)))

    async def cancel(request: Request) -> JSONResponse:
        return answer(await service.cancel(request.path_params["order_id"]))

    async def get(request: Request) -> JSONResponse:
        return JSONResponse(await service.get_order(request.path_params["order_id"]))

    async def metrics(request: Request) -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, OrderProblem)
        return problem(exc.status, exc.code, exc.detail)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        status = int(getattr(exc, "status_code", 500))
        return problem(status, "not_found" if status == 404 else "http_error", str(exc))

    def delivered(webhook_id: str, new: bool) -> None:
        if new:
            wake.set()

    routes = [
        Route("/orders", place, methods=["POST"]),
        Route("/orders/{order_id}", get, methods=["GET"]),
        Route("/orders/{order_id}/ship", ship, methods=["POST"]),
        Route("/orders/{order_id}/cancel", cancel, methods=["POST"]),
        Route("/orders/{order_id}/refund", refund, methods=["POST"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    if secrets:
        assert inbox is not None
        verifier = Verifier(
            secrets, clock=webhook_clock or service.clock, tolerance_s=webhook_tolerance_s
        )
        receive = webhook_endpoint(inbox, verifier, on_accepted=delivered)
        routes.append(Route(WEBHOOK_PATH, receive, methods=["POST"]))
    app = Starlette(
        routes=routes,
        exception_handlers={OrderProblem: on_problem, HTTPException: on_http},
        # Outermost of the user middleware: the id is bound before any endpoint runs.
        middleware=[Middleware(logs.CorrelationMiddleware, new_id=new_correlation_id)],
        lifespan=_background(
            service,
            _Loops(resume_every_s, inbox, process_every_s, poll_every_s, sleep),
            wake,
        ),
    )
    app.state.inbox = inbox
    return app


__all__ = [
    "WEBHOOK_PATH",
    "InvalidOrder",
    "InvalidTransition",
    "OrderNotFound",
    "OrderProblem",
    "OrderToCash",
    "Outcome",
    "ProviderDown",
    "ProviderRefused",
    "create_service_app",
    "parse_order",
    "problem",
]
