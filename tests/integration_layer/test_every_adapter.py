"""Order to cash through every adapter that exists (`integration.adapters.PROVIDERS`), against
the in-process simulator: the same service, ERP, ledger and reconciliation, only the adapter and
its approach's GL mapping differ. Each run places an order, ships it in two parts, refunds part,
lets the provider's clock run (payouts; for gateway + net terms, the buyer pays the invoice on
its due date), folds the provider's events in, and reconciles: the books balance and nothing is
left unexplained, whichever approach carried the money.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from shop_harness import Shop, order_body

from integration.adapters import PROVIDERS, CheckoutStatus, event_facts
from integration.model import Money
from integration.settlements import run_reconciliation

RETRY = {"base_s": 0.1, "max_wait_s": 10.0, "max_attempts": 3, "max_total_s": 20.0}


@pytest.fixture(params=PROVIDERS)
def shop(request: pytest.FixtureRequest, new_shop: Callable[..., Shop]) -> Shop:
    return new_shop(retry=RETRY, provider=request.param, inbox=True)


def place(shop: Shop, merchant_order_id: str, amount: int = 100_000) -> None:
    """Place the order; where the provider asks the buyer, the buyer accepts."""
    r = shop.post("/orders", order_body(merchant_order_id, amount))
    assert r.status_code == 201, r.text
    if r.json()["erp_state"] == "awaiting_buyer":
        done = shop.api.approve(r.json()["provider_checkout_id"])
        assert done["status"] == CheckoutStatus.COMPLETED.value, done
    got = shop.get(f"/orders/{merchant_order_id}").json()
    assert got["erp_state"] == "authorized", got


def test_order_to_cash_through_the_adapter_balances_and_reconciles(shop: Shop) -> None:
    place(shop, "SO-1")
    for amount, state in ((60_000, "partially_shipped"), (40_000, "shipped")):
        r = shop.post("/orders/SO-1/ship", {"amount": amount})
        assert (r.status_code, r.json()["erp_state"]) == (200, state), r.text
    r = shop.post("/orders/SO-1/refund", {"amount": 15_000})
    assert (r.status_code, r.json()["erp_state"]) == (200, "partially_refunded"), r.text
    got = shop.get("/orders/SO-1").json()
    assert (got["shipped_amount"], got["refunded_amount"]) == (100_000, 15_000)
    assert (got["provider"]["captured_amount"], got["provider"]["refunded_amount"]) == (
        100_000,
        15_000,
    )

    # Months pass at the provider: payouts, and the buyer's payment where the seller invoices.
    shop.api.advance(shop.account, "45d")
    shop.poll()
    shop.process()
    run = shop.run(run_reconciliation(shop.adapter, shop.ledger, shop.book))
    assert run.ok, run.render_text()
    assert shop.balanced()
    kinds = {p.event_kind for p in shop.ledger.postings()}
    assert {"captured", "refunded"} <= kinds
    if run.settlements:  # an approach whose provider reports settlements: they were paid
        assert {"payout"} <= kinds


def test_the_gateway_approach_posts_the_buyers_payment_and_settles_it(
    new_shop: Callable[..., Shop],
) -> None:
    shop = new_shop(retry=RETRY, provider="gateway", inbox=True)
    place(shop, "SO-9", 50_000)
    assert shop.post("/orders/SO-9/ship", {"amount": 50_000}).status_code == 200
    shop.api.advance(shop.account, "40d")
    shop.poll()
    shop.process()
    run = shop.run(run_reconciliation(shop.adapter, shop.ledger, shop.book))
    assert run.ok, run.render_text()
    (payment,) = shop.ledger.postings(event_kind="payment_received")
    assert payment.gross == 50_000
    fees = 50_000 * 290 // 10_000 + 30
    assert shop.ledger.balance("1200 Accounts receivable - Customers", "USD") == 0
    assert shop.ledger.balance("1220 Gateway clearing", "USD") == 0
    assert shop.ledger.balance("6150 Payment processing fees", "USD") == fees
    assert shop.ledger.balance("1010 Cash - Operating account", "USD") == 50_000 - fees


def test_a_gateway_buyer_who_never_pays_leaves_the_receivable_open(
    new_shop: Callable[..., Shop],
) -> None:
    shop = new_shop(retry=RETRY, provider="gateway", inbox=True)
    body = order_body("SO-7", 30_000)
    body["buyer"]["email"] = "ap+defaults@acme.test"
    assert shop.post("/orders", body).status_code == 201
    assert shop.post("/orders/SO-7/ship", {"amount": 30_000}).status_code == 200
    shop.api.advance(shop.account, "60d")
    shop.poll()
    shop.process()
    run = shop.run(run_reconciliation(shop.adapter, shop.ledger, shop.book))
    assert run.ok, run.render_text()
    assert shop.ledger.balance("1200 Accounts receivable - Customers", "USD") == 30_000
    r = shop.api.get(
        "/gateway/v1/invoices", headers=shop.account.headers, params={"number": "SO-7"}
    )
    assert r.json()["data"][0]["past_due"] is True


def test_a_gateway_refund_of_paid_money_is_posted_and_reconciles(
    new_shop: Callable[..., Shop],
) -> None:
    """A credit note after the buyer paid: the gateway refunds it (a negative `refund` line),
    the event posts `payment_refunded`, and reconciliation explains the line."""
    shop = new_shop(retry=RETRY, provider="gateway", inbox=True)
    place(shop, "SO-8", 40_000)
    assert shop.post("/orders/SO-8/ship", {"amount": 40_000}).status_code == 200
    shop.api.advance(shop.account, "31d")  # paid on the due date
    r = shop.post("/orders/SO-8/refund", {"amount": 10_000})
    assert (r.status_code, r.json()["erp_state"]) == (200, "partially_refunded"), r.text
    shop.api.advance(shop.account, "5d")
    shop.poll()
    shop.process()
    run = shop.run(run_reconciliation(shop.adapter, shop.ledger, shop.book))
    assert run.ok, run.render_text()
    (refund,) = shop.ledger.postings(event_kind="payment_refunded")
    assert refund.gross == 10_000
    assert any(line.gross == -10_000 for s in run.settlements for line in s.lines)
    assert shop.ledger.balance("1200 Accounts receivable - Customers", "USD") == 0
    assert shop.balanced()


def test_one_virtual_card_paying_two_orders_posts_a_payment_per_order_and_reconciles(
    new_shop: Callable[..., Shop],
) -> None:
    """Card-level matching: the buyer's AP pays two invoices with one card; the capture's two
    allocations are two `payment_received` postings and two `payment` lines, each with its
    share of the interchange and scheme fee."""
    shop = new_shop(retry=RETRY, provider="vcard", inbox=True)
    for moid, amount in (("SO-21", 30_000), ("SO-22", 70_000)):
        body = order_body(moid, amount)
        body["buyer"]["email"] = "ap+consolidates@acme.test"
        assert shop.post("/orders", body).status_code == 201
        assert shop.post(f"/orders/{moid}/ship", {"amount": amount}).status_code == 200
    shop.api.advance(shop.account, "40d")
    shop.poll()
    shop.process()
    run = shop.run(run_reconciliation(shop.adapter, shop.ledger, shop.book))
    assert run.ok, run.render_text()
    (card,) = shop.api.get("/vcards/v1/cards", headers=shop.account.headers).json()["data"]
    assert len(card["invoices"]) == 2
    payments = shop.ledger.postings(event_kind="payment_received")
    assert sorted(p.gross for p in payments) == [30_000, 70_000]
    fees = (100_000 * 263 + 5_000) // 10_000 + 12  # interchange 2.5 % + 10, scheme 0.13 % + 2
    assert shop.ledger.balance("1200 Accounts receivable - Customers", "USD") == 0
    assert shop.ledger.balance("1230 Card processor clearing", "USD") == 0
    assert shop.ledger.balance("6160 Card acceptance fees", "USD") == fees
    assert shop.ledger.balance("1010 Cash - Operating account", "USD") == 100_000 - fees


def test_a_virtual_card_refund_of_paid_money_is_posted_and_reconciles(
    new_shop: Callable[..., Shop],
) -> None:
    shop = new_shop(retry=RETRY, provider="vcard", inbox=True)
    place(shop, "SO-23", 40_000)
    assert shop.post("/orders/SO-23/ship", {"amount": 40_000}).status_code == 200
    shop.api.advance(shop.account, "35d")  # the card was captured on the due date and cleared
    r = shop.post("/orders/SO-23/refund", {"amount": 10_000})
    assert (r.status_code, r.json()["erp_state"]) == (200, "partially_refunded"), r.text
    shop.api.advance(shop.account, "5d")
    shop.poll()
    shop.process()
    run = shop.run(run_reconciliation(shop.adapter, shop.ledger, shop.book))
    assert run.ok, run.render_text()
    (refund,) = shop.ledger.postings(event_kind="payment_refunded")
    assert refund.gross == 10_000
    assert shop.ledger.balance("1200 Accounts receivable - Customers", "USD") == 0
    assert shop.balanced()


def test_a_card_capture_body_reads_as_a_payment_per_invoice_and_broken_data_as_none() -> None:
    """What the receiver learns of a webhook body (`integration.adapters.event_facts`): each
    allocation of a cleared capture is a payment for its own order; unreadable data is none."""
    allocation = {"id": "val_1", "invoice_id": "vinv_1", "amount": 300, "fee": 8}
    body = {
        "type": "vcard.cleared",
        "object_type": "vcard_payment",
        "data": {
            "currency": "USD",
            "cleared_at": "2026-04-02T00:00:00Z",
            "allocations": [allocation, {**allocation, "id": "val_2", "invoice_id": "vinv_2"}],
        },
    }
    facts = event_facts(body)
    assert [(p.provider_id, p.provider_order_id, p.fee) for p in facts.payments] == [
        ("val_1", "vinv_1", 8),
        ("val_2", "vinv_2", 8),
    ]
    assert facts.payment is None
    broken = {**body, "data": {"currency": "USD", "allocations": [{"id": "val_1"}]}}
    assert event_facts(broken).payments == ()


def test_traditional_invoicing_posts_the_applied_remittance_and_settles_it(
    new_shop: Callable[..., Shop],
) -> None:
    shop = new_shop(retry=RETRY, provider="invoicing", inbox=True)
    place(shop, "SO-5", 50_000)
    assert shop.post("/orders/SO-5/ship", {"amount": 50_000}).status_code == 200
    shop.api.advance(shop.account, "35d")
    shop.poll()
    shop.process()
    run = shop.run(run_reconciliation(shop.adapter, shop.ledger, shop.book))
    assert run.ok, run.render_text()
    (payment,) = shop.ledger.postings(event_kind="payment_received")
    assert payment.gross == 50_000
    assert shop.ledger.balance("1200 Accounts receivable - Customers", "USD") == 0
    assert shop.ledger.balance("1230 Lockbox clearing", "USD") == 0
    assert shop.ledger.balance("1010 Cash - Operating account", "USD") == 50_000


def test_an_unmatched_remittance_is_manual_work_until_the_cash_is_applied(
    new_shop: Callable[..., Shop],
) -> None:
    """A buyer pays with a typo'd invoice number: the deposit names no order, reconciliation
    reports it (`missing_in_ledger`) and the unapplied cash sits in lockbox clearing; applied
    by hand, it posts and the same line reconciles."""
    shop = new_shop(retry=RETRY, provider="invoicing", inbox=True)
    body = order_body("SO-6", 40_000)
    body["buyer"]["email"] = "ap+typo_reference@acme.test"
    assert shop.post("/orders", body).status_code == 201
    assert shop.post("/orders/SO-6/ship", {"amount": 40_000}).status_code == 200
    shop.api.advance(shop.account, "35d")
    shop.poll()
    shop.process()
    run = shop.run(run_reconciliation(shop.adapter, shop.ledger, shop.book))
    assert not run.ok
    (found,) = run.report.discrepancies if run.report else ()
    assert (found.kind, found.actual) == ("missing_in_ledger", Money(40_000, "USD"))
    assert shop.ledger.balance("1230 Lockbox clearing", "USD") == -40_000  # unapplied cash

    h = shop.account.headers
    (rmt,) = shop.api.get("/invoicing/v1/remittances", headers=h).json()["data"]
    (inv,) = shop.api.get("/invoicing/v1/invoices", headers=h, params={"po_number": "SO-6"}).json()[
        "data"
    ]
    alloc = {"line": rmt["lines"][0]["id"], "invoice": inv["id"], "amount": 40_000}
    r = shop.api.post(
        f"/invoicing/v1/remittances/{rmt['id']}/apply", headers=h, json={"allocations": [alloc]}
    )
    assert r.status_code == 200, r.text
    shop.poll()
    shop.process()
    run = shop.run(run_reconciliation(shop.adapter, shop.ledger, shop.book))
    assert run.ok, run.render_text()
    assert shop.ledger.balance("1230 Lockbox clearing", "USD") == 0
    assert shop.ledger.balance("1200 Accounts receivable - Customers", "USD") == 0
