"""Order-to-cash against the real simulator, in-process (the harness: `shop_harness.Shop`).

Faults come from the simulator's control plane; time is a manual clock the injected sleep
advances (nothing really sleeps); the resumer is called by hand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from factories import ADMIN, BASE_URL
from shop_harness import Shop, balanced, order_body

from integration.app import create_service_app
from integration.cli import main as integration_main
from simulator.cli import main as sandbank_main

RETRY = {"base_s": 0.1, "max_wait_s": 10.0, "max_attempts": 3, "max_total_s": 20.0}


@pytest.fixture
def shop(new_shop: Callable[..., Shop]) -> Shop:
    return new_shop(retry=RETRY)


def place_and_approve(shop: Shop, merchant_order_id: str, amount: int = 100_000) -> dict[str, Any]:
    r = shop.post("/orders", order_body(merchant_order_id, amount))
    assert r.status_code == 201, r.text
    assert r.json()["erp_state"] == "awaiting_buyer"
    shop.api.approve(r.json()["provider_checkout_id"])
    got = shop.get(f"/orders/{merchant_order_id}").json()
    assert got["erp_state"] == "authorized"
    return dict(got)


def assert_problem(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert (r.json()["status"], r.json()["code"]) == (status, code)


# --- the happy path ------------------------------------------------------------------------------
def test_place_approve_ship_twice_refund_and_read_back(shop: Shop) -> None:
    place_and_approve(shop, "SO-1")
    first = shop.post("/orders/SO-1/ship", {"amount": 60_000})
    assert first.status_code == 200, first.text
    assert first.json()["erp_state"] == "partially_shipped"
    second = shop.post("/orders/SO-1/ship", {"amount": 40_000})
    assert second.json()["erp_state"] == "shipped"
    refund = shop.post("/orders/SO-1/refund", {"amount": 15_000})
    assert refund.status_code == 200, refund.text
    assert refund.json()["erp_state"] == "partially_refunded"

    got = shop.get("/orders/SO-1").json()
    assert (got["shipped_amount"], got["refunded_amount"]) == (100_000, 15_000)
    provider = got["provider"]
    assert (provider["status"], provider["captured_amount"], provider["refunded_amount"]) == (
        "refunded",
        100_000,
        15_000,
    )
    kinds = [p["event_kind"] for p in got["ledger"]]
    assert kinds == ["captured", "captured", "refunded"]
    assert all(h["resolved_at"] is not None for h in got["holds"])
    assert balanced(shop.ledger)
    assert shop.ledger.balance("1210 Receivable - Credit provider", "USD") == 85_000


def test_cancel_an_authorized_order(shop: Shop) -> None:
    place_and_approve(shop, "SO-C")
    r = shop.post("/orders/SO-C/cancel")
    assert r.status_code == 200, r.text
    got = shop.get("/orders/SO-C").json()
    assert (got["erp_state"], got["provider"]["status"]) == ("canceled", "canceled")
    assert got["ledger"] == []  # the mapping posts nothing on a release (memo only)


@pytest.mark.parametrize("provider", ["sandbank", "creditkey"])
@pytest.mark.parametrize(
    ("decision", "decided"), [("approve", "authorized"), ("decline", "rejected")]
)
def test_an_order_in_the_providers_review_is_under_review_in_the_erp_until_decided(
    new_shop: Callable[..., Shop], provider: str, decision: str, decided: str
) -> None:
    """The buyer accepted but the provider's underwriter has not decided: the ERP shows the
    order under review (not authorized, not shippable), through a read and through events,
    until the decision moves it on."""
    shop = new_shop(retry=RETRY, provider=provider, inbox=provider == "sandbank")
    body = order_body("SO-R")
    body["buyer"]["email"] = "ap+review_manual@acme.test"
    r = shop.post("/orders", body)
    assert (r.status_code, r.json()["erp_state"]) == (201, "awaiting_buyer"), r.text
    done = shop.api.approve(r.json()["provider_checkout_id"])
    assert done["status"] == "completed", done
    got = shop.get("/orders/SO-R").json()
    assert (got["erp_state"], got["provider"]["status"]) == ("under_review", "pending")
    assert got["provider_order_id"] is not None
    assert_problem(shop.post("/orders/SO-R/ship", {"amount": 1}), 409, "invalid_transition")
    if provider == "sandbank":  # the events say the same (the checkout completed in review)
        shop.poll()
        shop.process()
        assert shop.book.get("SO-R").erp_state == "under_review"
    r = shop.api.post(
        f"/_sandbox/orders/{done['order_id']}/review", headers=ADMIN, json={"decision": decision}
    )
    assert r.status_code == 200, r.text
    if provider == "sandbank":  # the decision's event moves the ERP without a read
        shop.poll()
        shop.process()
        assert shop.book.get("SO-R").erp_state == decided
    assert shop.get("/orders/SO-R").json()["erp_state"] == decided


def test_an_order_under_review_can_be_canceled(new_shop: Callable[..., Shop]) -> None:
    shop = new_shop(retry=RETRY)
    body = order_body("SO-RC")
    body["buyer"]["email"] = "ap+review_manual@acme.test"
    shop.api.approve(shop.post("/orders", body).json()["provider_checkout_id"])
    assert shop.get("/orders/SO-RC").json()["erp_state"] == "under_review"
    r = shop.post("/orders/SO-RC/cancel")
    assert (r.status_code, r.json()["erp_state"]) == (200, "canceled"), r.text
    assert shop.get("/orders/SO-RC").json()["provider"]["status"] == "canceled"


# --- errors as problem+json ------------------------------------------------------------------
def test_invalid_transitions_are_409_and_unknown_orders_404(shop: Shop) -> None:
    assert_problem(shop.get("/orders/SO-nope"), 404, "not_found")
    assert_problem(shop.post("/orders/SO-nope/ship", {"amount": 1}), 404, "not_found")
    place_and_approve(shop, "SO-2")
    assert_problem(shop.post("/orders/SO-2/refund", {"amount": 1}), 409, "invalid_transition")
    assert_problem(shop.post("/orders", order_body("SO-2")), 409, "invalid_transition")
    assert_problem(shop.post("/orders/SO-2/ship", {"amount": 0}), 422, "validation_failed")
    assert_problem(shop.post("/orders/SO-2/ship", {"amount": 100_001}), 422, "validation_failed")
    assert shop.post("/orders/SO-2/ship", {"amount": 100_000}).status_code == 200
    assert_problem(shop.post("/orders/SO-2/cancel"), 409, "invalid_transition")
    assert_problem(shop.post("/orders/SO-2/ship", {"amount": 1}), 409, "invalid_transition")
    assert_problem(shop.post("/orders", {"merchant_order_id": "x"}), 422, "validation_failed")


def test_a_provider_rejection_is_502_with_the_canonical_code(shop: Shop) -> None:
    body = order_body("SO-EUR")
    body["currency"] = "XXX"
    assert_problem(shop.post("/orders", body), 502, "currency_mismatch")
    assert shop.book.get("SO-EUR").erp_state == "rejected"


# --- degraded mode -------------------------------------------------------------------------------
def test_an_outage_holds_the_order_and_the_resumer_completes_it(shop: Shop) -> None:
    place_and_approve(shop, "SO-up")
    r = shop.api.post(
        "/_sandbox/faults/presets/total-outage", headers=ADMIN, json={"account": shop.account.id}
    )
    assert r.status_code in (200, 201), r.text
    placed = shop.post("/orders", order_body("SO-3"))
    assert placed.status_code == 202, placed.text
    body = placed.json()
    assert body["erp_state"] == "credit_pending"
    assert body["pending"]["kind"] == "credit_pending"
    assert body["pending"]["resolved_at"] is None
    assert shop.resume() == 0  # still down: the hold stays

    down = shop.get("/orders/SO-3").json()
    assert down["provider"] is None
    assert down["provider_note"] == "nothing at the provider yet"
    known = shop.get("/orders/SO-up")  # an order the provider knows, read while it is down
    assert known.status_code == 200
    assert known.json()["provider"] is None
    assert known.json()["provider_note"].startswith("the provider could not be read")
    assert known.json()["erp_state"] == "authorized"

    assert shop.api.request("DELETE", "/_sandbox/faults", headers=ADMIN).status_code == 200
    assert shop.resume() == 1
    got = shop.get("/orders/SO-3").json()
    assert got["erp_state"] == "awaiting_buyer"
    assert [h["resolved_at"] is not None for h in got["holds"]] == [True]
    # One intent, one key: every attempt at the provider was the same checkout.
    up, so3 = shop.store.intent("checkout:SO-up"), shop.store.intent("checkout:SO-3")
    assert up is not None
    assert so3 is not None
    sent = [
        e
        for e in shop.journal(operation="createCheckout")
        if e["idempotency_key"] != up.idempotency_key
    ]
    assert {e["idempotency_key"] for e in sent} == {so3.idempotency_key}
    assert sum(200 <= e["status"] < 300 for e in sent) == 1
    shop.api.approve(got["provider_checkout_id"])
    found = shop.run(shop.service.adapter.find_by_merchant_order_id("SO-3"))  # one order
    assert len(found) == 1
    assert shop.get("/orders/SO-3").json()["erp_state"] == "authorized"


def test_an_after_commit_500_on_capture_never_charges_twice(shop: Shop) -> None:
    order = place_and_approve(shop, "SO-4")
    r = shop.api.post(
        "/_sandbox/faults",
        headers=ADMIN,
        json={
            "account": shop.account.id,
            "match": {"operation": "createCapture"},
            "phase": "after",
            "effect": {"type": "status", "status": 500},
            "times": 1,
        },
    )
    assert r.status_code == 201, r.text
    shipped = shop.post("/orders/SO-4/ship", {"amount": 30_000})
    assert shipped.status_code in (200, 202), shipped.text
    if shipped.status_code == 202:
        assert shipped.json()["pending"]["kind"] == "capture_pending"
    shop.resume()
    got = shop.get("/orders/SO-4").json()
    assert all(h["resolved_at"] is not None for h in got["holds"])
    provider = shop.api.order(shop.account, order["provider_order_id"])
    assert provider["captured_amount"] == 30_000
    captures = [e for e in shop.api.events(shop.account) if e["type"] == "order.captured"]
    assert len(captures) == 1
    assert [p["event_kind"] for p in got["ledger"]] == ["captured"]
    assert len(shop.ledger.postings(event_kind="captured")) == 1  # type: ignore[arg-type]
    assert balanced(shop.ledger)


def test_an_ambiguous_capture_left_on_hold_is_resolved_by_the_same_key(shop: Shop) -> None:
    place_and_approve(shop, "SO-5")
    r = shop.api.post(
        "/_sandbox/faults",
        headers=ADMIN,
        json={
            "account": shop.account.id,
            "match": {"operation": "createCapture"},
            "phase": "after",
            "effect": {"type": "status", "status": 500},
            "times": 3,  # every attempt of this call: the client gives up, ambiguous
        },
    )
    assert r.status_code == 201, r.text
    held = shop.post("/orders/SO-5/ship", {"amount": 25_000})
    assert held.status_code == 202, held.text
    assert held.json()["pending"]["kind"] == "capture_pending"
    assert_problem(shop.post("/orders/SO-5/ship", {"amount": 1}), 409, "invalid_transition")

    assert shop.resume() == 1
    got = shop.get("/orders/SO-5").json()
    assert (got["erp_state"], got["shipped_amount"]) == ("partially_shipped", 25_000)
    assert got["provider"]["captured_amount"] == 25_000
    sent = shop.journal(operation="createCapture")
    assert len({e["idempotency_key"] for e in sent}) == 1
    assert [p["event_kind"] for p in got["ledger"]] == ["captured"]
    assert balanced(shop.ledger)


# --- the command line -----------------------------------------------------------------------------
def test_reconcile_without_the_integration_database_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = str(tmp_path / "missing.db")
    argv = ["integration", "reconcile", "--provider-url", BASE_URL, "--api-key", "k", "--db", db]
    assert sandbank_main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("sandbank integration: error: --db ")


def test_bad_cli_input_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        integration_main(["serve", "--api-key", "k"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--provider-url" in err
    args = ["serve", "--provider-url", "ftp://x", "--api-key", "k"]
    assert integration_main(args) == 2
    assert capsys.readouterr().err.startswith("sandbank integration: error:")


def test_the_background_resumer_in_the_lifespan_completes_held_work(shop: Shop) -> None:
    r = shop.api.post(
        "/_sandbox/faults/presets/total-outage", headers=ADMIN, json={"account": shop.account.id}
    )
    assert r.status_code in (200, 201), r.text
    assert shop.post("/orders", order_body("SO-6")).status_code == 202
    assert shop.api.request("DELETE", "/_sandbox/faults", headers=ADMIN).status_code == 200
    app = create_service_app(shop.service, resume_every_s=0.01)

    async def serve_a_while() -> None:
        async with app.router.lifespan_context(app):
            for _ in range(200):
                await asyncio.sleep(0.01)
                if not shop.book.holds("SO-6", open_only=True):
                    return

    shop.run(serve_a_while())
    assert shop.book.get("SO-6").erp_state == "awaiting_buyer"
    assert shop.book.holds("SO-6", open_only=True) == []


# --- found by the rehearsals (scenarios/) ------------------------------------------------------
def test_the_rest_of_an_order_ships_after_a_partial_refund(shop: Shop) -> None:
    """baseline: the provider captures after a refund, so the ERP must let the rest ship."""
    place_and_approve(shop, "SO-R")
    assert shop.post("/orders/SO-R/ship", {"amount": 50_000}).status_code == 200
    assert shop.post("/orders/SO-R/refund", {"amount": 10_000}).status_code == 200
    rest = shop.post("/orders/SO-R/ship", {"amount": 50_000})
    assert rest.status_code == 200, rest.text
    got = shop.get("/orders/SO-R").json()
    assert (got["shipped_amount"], got["refunded_amount"]) == (100_000, 10_000)
    assert got["provider"]["captured_amount"] == 100_000
    assert_problem(shop.post("/orders/SO-R/ship", {"amount": 1}), 422, "validation_failed")


def test_a_held_shipment_on_a_lapsed_authorization_ends_the_order_expired(shop: Shop) -> None:
    """authorization-lapse: captures down for a month, the authorization lapses; the resumer's
    refused capture must leave the ERP order expired, as at the provider, not authorized."""
    place_and_approve(shop, "SO-L")
    shop.fault(match={"operation": "createCapture"}, effect={"type": "status", "status": 503})
    held = shop.post("/orders/SO-L/ship", {"amount": 100_000})
    assert held.status_code == 202, held.text
    shop.api.advance(shop.account, "31d")
    shop.clear_faults()
    shop.resume()
    got = shop.get("/orders/SO-L").json()
    assert got["provider"]["status"] == "expired"
    assert got["erp_state"] == "expired"
    assert all(h["resolved_at"] is not None for h in got["holds"])


def test_an_order_left_placed_without_its_hold_by_a_crash_is_finished_by_the_retry(
    shop: Shop,
) -> None:
    """integration-crash: a kill -9 between creating the order and opening its hold left it
    `placed` forever; the shop's retry of POST /orders now finishes the placing."""
    body = order_body("SO-K", 100_000)
    shop.book.create("SO-K", 100_000, "USD", {k: v for k, v in body.items() if k not in (
        "merchant_order_id", "amount", "currency")}, "2026-03-02T09:00:00+00:00")  # fmt: skip
    again = shop.post("/orders", body)
    assert again.status_code == 201, again.text
    assert again.json()["erp_state"] == "awaiting_buyer"
    assert_problem(shop.post("/orders", body), 409, "invalid_transition")
