"""Degraded mode as the incident rehearsals (issue #11) hold it to: during a total outage the
shop is answered held (202) within the request budget and the breaker soon answers at once;
held work completes after recovery under the same key; shipping after a partial refund works;
and the SLO figures (requests held vs ok, held work after recovery, event to ERP) are exposed.

The harness is `shop_harness.Shop`: virtual time (the client's clock moves only when its
injected sleep is called), the real simulator in-process, the resumer run by hand.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from factories import ADMIN
from shop_harness import RECEIVABLE, Shop, order_body
from test_metrics import samples, value

from integration.erp import derived
from integration.orders import ErpState

PLACE = "POST /orders"
SHIP = "POST /orders/{order_id}/ship"


@pytest.fixture
def shop(new_shop: Callable[..., Shop]) -> Shop:
    # The shipped policy: a 0.8 s budget per request, a breaker that opens after 3 failures.
    s: Shop = new_shop(failure_threshold=3, cooldown_s=10.0, inbox=True)
    return s


def authorized(shop: Shop, merchant_order_id: str, amount: int = 100_000) -> str:
    placed = shop.post("/orders", order_body(merchant_order_id, amount))
    assert placed.status_code == 201, placed.text
    shop.api.approve(placed.json()["provider_checkout_id"])
    got = shop.get(f"/orders/{merchant_order_id}").json()
    assert got["erp_state"] == "authorized", got
    return str(got["provider_order_id"])


def checkout_attempts(shop: Shop) -> int:
    return len(shop.journal(operation="createCheckout"))


def metric(shop: Shop, name: str, **labels: str) -> float | None:
    return value(samples(shop.get("/metrics").text), name, **labels)


# --- a total outage -------------------------------------------------------------------------------
def test_during_a_total_outage_orders_are_held_within_the_budget_and_then_at_once(
    shop: Shop,
) -> None:
    shop.outage()  # every /v1 request: 503 with Retry-After: 30
    for n in range(6):
        before = shop.monotonic
        r = shop.post("/orders", order_body(f"SO-{n}"))
        assert r.status_code == 202, r.text
        assert r.json()["pending"]["kind"] == "credit_pending"
        # No wait for the provider's Retry-After: it would outlast the 0.8 s budget.
        assert shop.monotonic - before <= 0.8
    assert shop.sleeps == []
    # Three failed attempts opened the checkouts breaker: the later orders made none.
    assert checkout_attempts(shop) == 3
    status = shop.get("/status").json()
    assert status["holds_open"]["credit_pending"] == 6
    assert status["breakers"]["checkouts"] == "open"
    assert status["provider"]["reachable"] is False
    assert status["requests"][PLACE] == {"held": 6}
    assert metric(shop, "requests_total", route=PLACE, outcome="held") == 6
    assert metric(shop, "request_seconds_count", route=PLACE) == 6


def test_held_orders_complete_after_recovery_with_their_own_keys_once(shop: Shop) -> None:
    shop.outage()
    for n in range(4):
        assert shop.post("/orders", order_body(f"SO-{n}")).status_code == 202
    shop.clear_faults()
    assert shop.resume() == 0  # the breaker is still cooling down: nothing is sent yet
    shop.monotonic += 10.0
    assert shop.resume() == 4
    assert shop.get("/status").json()["holds_open_total"] == 0
    for n in range(4):
        got = shop.get(f"/orders/SO-{n}").json()
        assert got["erp_state"] == "awaiting_buyer"
        intent = shop.store.intent(f"checkout:SO-{n}")
        assert intent is not None
        sent = [
            e
            for e in shop.journal(operation="createCheckout")
            if e["idempotency_key"] == intent.idempotency_key
        ]
        assert sum(200 <= e["status"] < 300 for e in sent) == 1  # one checkout per order
    assert metric(shop, "held_work_seconds_count", kind="credit_pending") == 4
    assert shop.get("/status").json()["provider"]["reachable"] is True


def test_a_ship_during_an_outage_is_held_and_captured_once_after_recovery(shop: Shop) -> None:
    provider_order_id = authorized(shop, "SO-S")
    shop.outage()
    held = shop.post("/orders/SO-S/ship", {"amount": 100_000})
    assert held.status_code == 202, held.text
    assert held.json()["pending"]["kind"] == "capture_pending"
    assert shop.sleeps == []
    shop.clear_faults()
    shop.monotonic += 10.0
    assert shop.resume() == 1
    got = shop.get("/orders/SO-S").json()
    assert (got["erp_state"], got["shipped_amount"]) == ("shipped", 100_000)
    assert shop.api.order(shop.account, provider_order_id)["captured_amount"] == 100_000
    captures = [e for e in shop.api.events(shop.account) if e["type"] == "order.captured"]
    assert len(captures) == 1
    assert shop.ledger.balance(RECEIVABLE, "USD") == 100_000
    assert shop.balanced()
    status = shop.get("/status").json()["requests"]
    assert status[SHIP] == {"held": 1}
    assert status[PLACE] == {"ok": 1}


def test_a_provider_that_fails_fast_is_retried_within_the_budget(shop: Shop) -> None:
    shop.fault(
        match={"operation": "createCheckout", "attempt": {"lte": 2}},
        effect={"type": "status", "status": 503},
    )
    r = shop.post("/orders", order_body("SO-R"))
    assert r.status_code == 201, r.text  # two quick retries fit in the budget
    assert len(shop.sleeps) == 2
    assert sum(shop.sleeps) < 0.8


def test_a_drive_budget_leaves_the_hold_open_for_the_next_round(
    new_shop: Callable[..., Shop],
) -> None:
    shop: Shop = new_shop(failure_threshold=50, drive_budget_s=0.5)
    shop.outage()
    assert shop.post("/orders", order_body("SO-D")).status_code == 202
    assert shop.resume() == 0
    assert shop.sleeps == []  # the resumer did not wait out the Retry-After either
    assert len(shop.book.holds("SO-D", open_only=True)) == 1


# --- the buyer's answer unknown: a ship or cancel is held, not refused ---------------------------
def awaiting_buyer_in_an_outage(shop: Shop, merchant_order_id: str) -> str:
    """An order placed (awaiting its buyer), then a total outage; its checkout id."""
    placed = shop.post("/orders", order_body(merchant_order_id))
    assert placed.status_code == 201, placed.text
    assert placed.json()["erp_state"] == "awaiting_buyer"
    shop.outage()
    return str(placed.json()["provider_checkout_id"])


def captures_of(shop: Shop) -> list[dict[str, object]]:
    return [e for e in shop.journal(operation="createCapture") if 200 <= e["status"] < 300]


def test_a_ship_whose_buyers_answer_is_unknown_is_held_and_captured_after_recovery(
    shop: Shop,
) -> None:
    checkout = awaiting_buyer_in_an_outage(shop, "SO-U")
    shop.api.approve(checkout)  # the buyer approves; the ERP cannot learn it yet
    held = shop.post("/orders/SO-U/ship", {"amount": 100_000})
    assert held.status_code == 202, held.text
    assert held.json()["erp_state"] == "awaiting_buyer"
    assert held.json()["pending"]["kind"] == "capture_pending"
    again = shop.post("/orders/SO-U/ship", {"amount": 100_000})
    assert again.status_code == 409  # the held ship is pending: not a second one
    assert shop.resume() == 0  # the provider is still down: the hold stays open
    assert captures_of(shop) == []
    shop.clear_faults()
    shop.monotonic += 10.0
    assert shop.resume() == 1
    got = shop.get("/orders/SO-U").json()
    assert (got["erp_state"], got["shipped_amount"]) == ("shipped", 100_000)
    assert len(captures_of(shop)) == 1
    assert shop.api.order(shop.account, got["provider_order_id"])["captured_amount"] == 100_000
    assert shop.ledger.balance(RECEIVABLE, "USD") == 100_000
    assert shop.get("/status").json()["requests"][SHIP] == {"held": 1, "rejected": 1}


def test_a_held_ship_is_refused_once_the_provider_says_the_buyer_declined(shop: Shop) -> None:
    checkout = awaiting_buyer_in_an_outage(shop, "SO-N")
    assert shop.post("/orders/SO-N/ship", {"amount": 100_000}).status_code == 202
    declined = shop.api.post(f"/_sandbox/checkouts/{checkout}/decline", headers=ADMIN)
    assert declined.status_code == 200, declined.text
    shop.clear_faults()
    shop.monotonic += 10.0
    assert shop.resume() == 1  # the hold ended: refused
    got = shop.get("/orders/SO-N").json()
    assert (got["erp_state"], got["shipped_amount"]) == ("rejected", 0)
    [hold] = [h for h in got["holds"] if h["kind"] == "capture_pending"]
    assert hold["resolution"] == "rejected: the buyer declined"
    assert captures_of(shop) == []
    assert shop.ledger.balance(RECEIVABLE, "USD") == 0


def test_a_held_ship_waits_while_the_buyer_has_not_answered(shop: Shop) -> None:
    """No capture before the buyer approved: the recovered provider says the checkout is still
    open, so the hold stays open; the buyer's approval lets the next round capture."""
    checkout = awaiting_buyer_in_an_outage(shop, "SO-W")
    assert shop.post("/orders/SO-W/ship", {"amount": 60_000}).status_code == 202
    shop.clear_faults()
    shop.monotonic += 10.0
    assert shop.resume() == 0
    assert shop.book.get("SO-W").erp_state is ErpState.AWAITING_BUYER
    assert len(shop.book.holds("SO-W", open_only=True)) == 1
    assert captures_of(shop) == []
    shop.api.approve(checkout)
    assert shop.resume() == 1
    got = shop.get("/orders/SO-W").json()
    assert (got["erp_state"], got["shipped_amount"]) == ("partially_shipped", 60_000)


def test_a_cancel_whose_buyers_answer_is_unknown_is_held_and_releases_after_recovery(
    shop: Shop,
) -> None:
    checkout = awaiting_buyer_in_an_outage(shop, "SO-C")
    shop.api.approve(checkout)
    held = shop.post("/orders/SO-C/cancel")
    assert held.status_code == 202, held.text
    assert held.json()["pending"]["kind"] == "cancel_pending"
    shop.clear_faults()
    shop.monotonic += 10.0
    assert shop.resume() == 1
    got = shop.get("/orders/SO-C").json()
    assert got["erp_state"] == "canceled"
    assert shop.api.order(shop.account, got["provider_order_id"])["status"] == "canceled"


# --- shipping after a refund ------------------------------------------------------------------
def test_ship_after_a_partial_refund_captures_the_rest_and_the_ledger_follows(
    shop: Shop,
) -> None:
    provider_order_id = authorized(shop, "SO-PR")
    assert shop.post("/orders/SO-PR/ship", {"amount": 40_000}).status_code == 200
    refunded = shop.post("/orders/SO-PR/refund", {"amount": 40_000})
    assert refunded.json()["erp_state"] == "partially_refunded"  # 60,000 still to ship
    shipped = shop.post("/orders/SO-PR/ship", {"amount": 60_000})
    assert shipped.status_code == 200, shipped.text
    body = shipped.json()
    assert (body["erp_state"], body["shipped_amount"], body["refunded_amount"]) == (
        "partially_refunded",
        100_000,
        40_000,
    )
    provider = shop.api.order(shop.account, provider_order_id)
    assert (provider["captured_amount"], provider["refunded_amount"]) == (100_000, 40_000)
    assert shop.ledger.balance(RECEIVABLE, "USD") == 60_000
    assert shop.balanced()
    over = shop.post("/orders/SO-PR/ship", {"amount": 1})
    assert over.status_code == 422, over.text  # nothing left to ship
    assert shop.post("/orders/SO-PR/refund", {"amount": 60_000}).json()["erp_state"] == "refunded"


@pytest.mark.parametrize(
    ("shipped", "refunded", "state"),
    [
        (0, 0, ErpState.AUTHORIZED),
        (40, 0, ErpState.PARTIALLY_SHIPPED),
        (100, 0, ErpState.SHIPPED),
        (40, 40, ErpState.PARTIALLY_REFUNDED),  # the remainder can still ship
        (100, 40, ErpState.PARTIALLY_REFUNDED),
        (100, 100, ErpState.REFUNDED),
    ],
)
def test_an_orders_figures_decide_its_state(shipped: int, refunded: int, state: ErpState) -> None:
    assert derived(100, shipped, refunded) is state


# --- event to ERP -----------------------------------------------------------------------------
def test_the_time_from_a_provider_event_to_the_erp_change_is_observed(shop: Shop) -> None:
    placed = shop.post("/orders", order_body("SO-E"))
    assert placed.status_code == 201, placed.text
    shop.api.approve(placed.json()["provider_checkout_id"])
    assert metric(shop, "event_to_state_seconds_count") == 0
    assert shop.poll() > 0
    assert shop.process() > 0
    assert shop.book.get("SO-E").erp_state is ErpState.AUTHORIZED
    assert metric(shop, "event_to_state_seconds_count") == 1  # the one that authorized it
