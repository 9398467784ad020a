"""Order-to-cash over a `ProviderAdapter`: place an order on credit, ship (capture), cancel,
refund, and read an order with its ERP state, provider state, holds and ledger postings.

Every provider mutation is a *hold* first: written to the `OrderBook` with the intent id it will
use, then attempted. Success resolves the hold, moves the ERP order and posts the ledger in that
order (the posting is idempotent by provider id, the hold's resolution is one transaction with
the order's change), so a crash anywhere leaves work the resumer finishes. When the provider is
down or a breaker is open the hold simply stays open: the shop gets the ERP state ("credit
pending") instead of an error, and `resume()` drives the hold again later with the SAME intent
id, hence the same Idempotency-Key. An ambiguous capture or refund is resolved by reading the
provider's order first and by that same-key retry, never by a request under a new key. A ship or
cancel of an order awaiting its buyer, when the provider cannot tell the buyer's answer in time,
is held the same way (202, not 503): its drive learns the answer first, captures or releases
only once the buyer approved, ends refused if the buyer declined, and waits while no answer is
given.

Provider events (webhooks, polled events) fold in through `apply_event`, never moving an order
backwards. The rules of the ERP order (what it allows, the state its figures put it in) are
`integration.erp`; the HTTP API around this is `integration.app`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from integration import deadline, erp, logs
from integration.adapters.base import (
    AuthorizationStatus,
    PlaceOrder,
    ProviderAdapter,
)
from integration.bodies import place_order_of, stored_request
from integration.client import ProviderRejected, ProviderUnavailable, ResilientClient
from integration.errors import (
    InvalidOrder,
    InvalidTransition,
    OrderNotFound,
    Problem,
    ProviderRefused,
)
from integration.inbox import Inbox
from integration.ledger import Ledger, Posting
from integration.metrics import Metrics
from integration.model import (
    Authorization,
    Capture,
    EventKind,
    Money,
    Payment,
    ProviderEvent,
    Refund,
)
from integration.orders import ErpOrder, ErpState, Hold, HoldKind, OrderBook, stamp
from integration.receiver import apoll_since, aprocess_pending
from integration.settlements import post_payouts
from integration.tickets import TicketSink
from integration.views import order_view

log = logging.getLogger("sandbank.integration")
_ENDED: dict[str, ErpState] = {
    AuthorizationStatus.EXPIRED: ErpState.EXPIRED,
    AuthorizationStatus.CANCELED: ErpState.CANCELED,
}


@dataclass(frozen=True, slots=True)
class Outcome:
    order: ErpOrder
    hold: Hold | None  # the hold left open (degraded mode), None when the work completed


class OrderToCash:
    def __init__(
        self,
        adapter: ProviderAdapter,
        book: OrderBook,
        ledger: Ledger,
        *,
        clock: Callable[[], datetime],
        metrics: Metrics | None = None,
        drive_budget_s: float | None = 5.0,
        tickets: TicketSink | None = None,
    ) -> None:
        """`drive_budget_s`: the time the provider calls of one drive of a held operation get
        together (resumer, events); the work stays held when it runs out (None: no limit but
        the client's retry rules). The shop's own requests get theirs from the app.
        `tickets`: the ticket sink every processed event is shown to (collections and
        disputes to a support desk); the resumer runs its rounds, order views list its cases."""
        self.adapter = adapter
        self.book = book
        self.ledger = ledger
        self.clock = clock
        self.drive_budget_s = drive_budget_s
        self.tickets = tickets
        self._locks: dict[str, asyncio.Lock] = {}
        self.metrics = metrics or Metrics()
        self.metrics.watch_holds(book, clock)
        client = getattr(adapter, "client", None)  # adapters on a ResilientClient report retries
        if isinstance(client, ResilientClient):
            self.metrics.watch_client(client)

    # --- the shop's actions -------------------------------------------------------------------
    async def place_order(self, placed: PlaceOrder) -> Outcome:
        merchant_order_id, money = placed.merchant_order_id, placed.amount
        request = stored_request(placed)
        async with self._lock(merchant_order_id):
            try:
                existing = self.book.get(merchant_order_id)
            except KeyError:
                self.book.create(
                    merchant_order_id, money.amount, money.currency, request, self._now()
                )
                self.metrics.order_entered(ErpState.PLACED)
            else:
                # Only a crash between creating the order and opening its hold leaves it
                # placed with no hold at all: the shop's retry finishes the placing.
                if existing.erp_state is not ErpState.PLACED or self.book.holds(merchant_order_id):
                    raise InvalidTransition(f"order {merchant_order_id!r} exists already")
            hold = self.book.open_hold(
                merchant_order_id,
                HoldKind.CREDIT_PENDING,
                f"checkout:{merchant_order_id}",
                {},
                self._now(),
            )
            return await self._run(hold, resuming=False)

    async def ship(self, merchant_order_id: str, amount: int) -> Outcome:
        async with self._lock(merchant_order_id):
            order, known = await self._ready(merchant_order_id)
            if known and order.erp_state not in erp.SHIPPABLE:
                raise InvalidTransition(f"cannot ship an order that is {order.erp_state}")
            _checked_amount(amount, order.amount - order.shipped, "to ship")
            if not known:
                return self._hold(order, HoldKind.CAPTURE_PENDING, "capture", amount)
            return await self._start(order, HoldKind.CAPTURE_PENDING, "capture", amount)

    async def refund(self, merchant_order_id: str, amount: int) -> Outcome:
        async with self._lock(merchant_order_id):
            order, _ = await self._ready(merchant_order_id)
            if order.erp_state not in erp.REFUNDABLE:
                raise InvalidTransition(f"cannot refund an order that is {order.erp_state}")
            _checked_amount(amount, order.shipped - order.refunded, "to refund")
            return await self._start(order, HoldKind.REFUND_PENDING, "refund", amount)

    async def cancel(self, merchant_order_id: str) -> Outcome:
        async with self._lock(merchant_order_id):
            order, known = await self._ready(merchant_order_id)
            if not known:
                return self._hold(order, HoldKind.CANCEL_PENDING, "cancel", None)
            if order.erp_state not in erp.CANCELABLE:
                raise InvalidTransition(f"cannot cancel an order that is {order.erp_state}")
            return await self._start(order, HoldKind.CANCEL_PENDING, "cancel", None)

    async def get_order(self, merchant_order_id: str) -> dict[str, Any]:
        async with self._lock(merchant_order_id):
            order = self._order(merchant_order_id)
            provider: dict[str, Any] | None = None
            note: str | None = None
            try:
                if order.erp_state in erp.UNDECIDED:
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
        if self.tickets is not None:
            await self.tickets.run()  # an unavailable desk keeps its work owed
        return done

    async def _drive(self, hold: Hold) -> bool:
        """Run an open hold again (the order's lock held); True when it ended."""
        with logs.bound(logs.correlation_id() or hold.intent_id):
            try:
                with deadline.within(self.drive_budget_s):
                    outcome = await self._run(hold, resuming=True)
            except (Problem, ProviderRejected) as exc:
                log.warning("hold %s of %s ended: %s", hold.id, hold.merchant_order_id, exc)
            else:
                if outcome.hold is not None:
                    return False
            self.metrics.held_work_done(hold.kind.value, hold.created_at, self.clock())
            return True

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
        reconciliation run does: whichever comes first posts). A payment's event (a buyer paid
        the provider: gateway + net terms) posts `payment_received` by the payment's id, and its
        refunds `payment_refunded` by theirs; an event with several payments (a remittance
        paying several orders) posts each.

        Returns what happened: posted, unknown_order, ignored, held, unchanged or updated."""
        if event.settlement is not None:
            if event.settlement.status != "paid":
                return "ignored"
            post_payouts(self.ledger, [event.settlement])
            return "posted"
        if event.payment is not None:
            return self._post_payment(EventKind.PAYMENT_RECEIVED, event.payment)
        if event.payments:
            outcomes = [self._post_payment(EventKind.PAYMENT_RECEIVED, p) for p in event.payments]
            return "posted" if "posted" in outcomes else outcomes[0]
        if event.payment_refunds:
            outcomes = [
                self._post_payment(EventKind.PAYMENT_REFUNDED, r) for r in event.payment_refunds
            ]
            return outcomes[0]
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
                ended = [await self._drive(hold) for hold in held]
                if any(ended):
                    self.metrics.event_applied(event.at, self.clock())
                return "held"
            outcome = self._follow(order, event)
            if outcome == "updated":
                self.metrics.event_applied(event.at, self.clock())
            return outcome

    async def process_events(self, inbox: Inbox, limit: int = 100) -> int:
        """Apply up to `limit` queued inbox events (`apply_event`), each under its own
        correlation id (the provider's event id), and log one line per event."""

        async def handle(event: ProviderEvent) -> None:
            with logs.bound(event.provider_event_id):
                outcome = await self.apply_event(event)
                if self.tickets is not None:
                    self._show_ticket_sink(event)
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

    def _show_ticket_sink(self, event: ProviderEvent) -> None:
        """Record what the event asks of the support desk (sent by the sink's own rounds)."""
        assert self.tickets is not None

        def merchant_order_id(provider_order_id: str) -> str | None:
            found = self.book.find(provider_order_id=provider_order_id)
            return found.merchant_order_id if found else None

        self.tickets.observe(event, merchant_order_id)

    def _post_payment(self, kind: EventKind, payment: Payment) -> str:
        """A buyer's payment collected by the provider (approaches where the seller carries
        the credit risk), or a refund of one, posted by its provider id for an order the ERP
        knows (again: nothing new)."""
        if self.book.find(provider_order_id=payment.provider_order_id) is None:
            return "unknown_order"
        money = payment.amount
        self.ledger.post(
            kind,
            {"gross": money.amount, "fee": payment.fee},
            money.currency,
            payment.provider_id,
            at=payment.at,
            order_id=payment.provider_order_id,
        )
        return "posted"

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
        state = erp.buyer_answer(order, event, changes)
        granted = order.erp_state in erp.UNDECIDED and state is ErpState.AUTHORIZED
        snapshot = event.order
        if snapshot is not None and state in erp.MONEY_STATES:
            state = erp.followed_figures(order, snapshot, changes)
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
        view = order_view(order, holds, self._postings(order, holds))
        if self.tickets is not None:
            view["tickets"] = self.tickets.view(order.merchant_order_id)
        return view

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

    async def _ready(self, merchant_order_id: str) -> tuple[ErpOrder, bool]:
        """The order with no provider work open, its buyer's answer (or the provider's review)
        fetched if still awaited; and whether that answer is known (False: the order is
        undecided and the provider could not tell in time: a ship or cancel is then held, see
        `_buyer_answered`)."""
        order = self._order(merchant_order_id)
        open_holds = self.book.holds(merchant_order_id, open_only=True)
        if open_holds:
            raise InvalidTransition(
                f"a provider operation is pending for this order ({open_holds[0].kind}); "
                "it completes when the provider recovers"
            )
        if order.erp_state in erp.UNDECIDED:
            try:
                order = await self._refresh(order)
            except ProviderUnavailable as exc:
                log.warning("the buyer's answer for %s is unknown: %s", merchant_order_id, exc)
                return order, False
        return order, True

    async def _refresh(self, order: ErpOrder) -> ErpOrder:
        """An undecided order, with what its checkout says now: the buyer's answer, and the
        provider's review where it reviews (the ERP shows the provider's real state)."""
        assert order.provider_checkout_id is not None
        ref = await self.adapter.get_checkout(order.provider_checkout_id)
        state = erp.checkout_answer(ref.status, ref.provider_order_id is not None)
        if state is None or state is order.erp_state:
            return order
        changes: dict[str, Any] = {"erp_state": state}
        if ref.provider_order_id and state is not ErpState.REJECTED:
            changes["provider_order_id"] = ref.provider_order_id
        order = self.book.update(order.merchant_order_id, self._now(), **changes)
        if state is ErpState.AUTHORIZED:
            self._approved(order)
        else:
            self.metrics.order_entered(state)
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
        return await self._run(self._open(order, kind, verb, amount), resuming=False)

    def _hold(self, order: ErpOrder, kind: HoldKind, verb: str, amount: int | None) -> Outcome:
        """Hold the work without trying it: the request's budget went on asking for the
        buyer's answer. The resumer (or the provider's next event about the order) drives it."""
        hold = self._open(order, kind, verb, amount)
        log.warning("hold %s (%s) stays open: the buyer's answer is unknown", hold.id, kind)
        return Outcome(order, hold)

    def _open(self, order: ErpOrder, kind: HoldKind, verb: str, amount: int | None) -> Hold:
        seq = self.book.next_seq(order.merchant_order_id, self._now())
        detail = {} if amount is None else {"amount": amount}
        return self.book.open_hold(
            order.merchant_order_id,
            kind,
            f"{verb}:{order.merchant_order_id}:{seq}",
            detail,
            self._now(),
        )

    async def _buyer_answered(self, hold: Hold) -> ErpOrder:
        """The order of a held ship or cancel, with its buyer's answer: a hold taken while the
        answer was unknown learns it first. Nothing is captured or released before the buyer
        approved, nothing captured while the provider still reviews the credit (a release
        is fine); a decline (or a lapsed checkout) ends the hold refused, the order rejected;
        no answer yet (or no provider) keeps it open (`ProviderUnavailable`)."""
        order = self.book.get(hold.merchant_order_id)
        if order.erp_state not in erp.UNDECIDED:
            return order
        order = await self._refresh(order)
        if order.erp_state is ErpState.REJECTED:
            self.book.resolve_hold(hold.id, "rejected: the buyer declined", self._now())
            raise InvalidTransition(f"the buyer declined order {order.merchant_order_id!r}")
        if order.erp_state is ErpState.AWAITING_BUYER:
            raise ProviderUnavailable(
                "checkouts", ambiguous=False, attempts=1, last_error="the buyer has not answered"
            )
        if order.erp_state is ErpState.UNDER_REVIEW and hold.kind is not HoldKind.CANCEL_PENDING:
            raise ProviderUnavailable(
                "checkouts", ambiguous=False, attempts=1, last_error="the provider is reviewing"
            )
        return order

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
        placed = place_order_of(
            order.merchant_order_id, Money(order.amount, order.currency), order.request
        )
        try:
            ref = await self.adapter.create_checkout(placed, intent_id=hold.intent_id)
        except ProviderRejected as exc:
            self._refused(hold, exc, erp_state=ErpState.REJECTED)
            raise ProviderRefused(exc.detail or str(exc), code=exc.code) from None
        answer = erp.checkout_answer(ref.status, ref.provider_order_id is not None)
        completed = answer is ErpState.AUTHORIZED
        state = ErpState.AWAITING_BUYER
        if answer is ErpState.AUTHORIZED or answer is ErpState.UNDER_REVIEW:
            state = answer  # the checkout completed at once (no buyer to ask)
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
        order = await self._buyer_answered(hold)
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
        state = erp.derived(order.amount, shipped, refunded)
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
        order = await self._buyer_answered(hold)
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


__all__ = ["OrderToCash", "Outcome"]


def _checked_amount(amount: int, available: int, what: str) -> None:
    if amount > available:
        raise InvalidOrder(f"amount {amount} exceeds the {available} left {what}")
