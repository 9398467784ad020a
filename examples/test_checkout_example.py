"""An integrator's test file, complete: copy it next to your own tests and replace the bare
httpx calls with your integration's client.

`pip install sandbank` registers the pytest plugin; these fixtures need nothing else:
`sandbank` (a fresh sandbox account per test, with helpers) and `sandbank_webhooks` (a local
receiver that verifies signatures). `pytest --sandbank-url URL --sandbank-admin-token TOKEN`
runs the same tests against a shared simulator instead of one started for the session.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbank_pytest import SandbankAccount, WebhookReceiver

CHECKOUT = {
    "amount": 125000,  # $1,250.00: always integer minor units
    "currency": "USD",
    "merchant_order_id": "SO-1001",
    "buyer": {
        "legal_name": "Acme Supply Co",
        "email": "ap+approve@acme.test",  # `+approve`: a magic value, the decision is yes
        "annual_revenue": 250000000,
        "years_in_business": 8,
    },
    "line_items": [{"name": "Pallet of widgets", "quantity": 2, "unit_amount": 62500}],
    "return_url": "https://shop.example/return",
    "cancel_url": "https://shop.example/cancel",
}


def place_order(sandbank: SandbankAccount, **changes: Any) -> dict[str, Any]:
    """Checkout, then the buyer accepts on net 30 terms: the authorized order."""
    checkout = sandbank.client.post("/v1/checkouts", json={**CHECKOUT, **changes})
    checkout.raise_for_status()
    accepted = sandbank.approve(checkout.json()["id"], terms="net30")
    order = sandbank.client.get(f"/v1/orders/{accepted['order_id']}")
    order.raise_for_status()
    return dict(order.json())


def capture(sandbank: SandbankAccount, order_id: str, amount: int, key: str) -> httpx.Response:
    return sandbank.client.post(
        f"/v1/orders/{order_id}/captures", json={"amount": amount}, headers={"Idempotency-Key": key}
    )


def test_an_approved_checkout_becomes_an_authorized_order(sandbank: SandbankAccount) -> None:
    order = place_order(sandbank)
    assert order["status"] == "authorized"
    assert order["amount"] == 125000
    sandbank.assert_requests(operation="createCheckout", count=1)


def test_a_declined_checkout_makes_no_order(sandbank: SandbankAccount) -> None:
    checkout = sandbank.client.post("/v1/checkouts", json=CHECKOUT).json()
    declined = sandbank.decline(checkout["id"])
    assert declined["status"] == "declined"
    assert declined.get("order_id") is None


def test_a_capture_retried_after_a_lost_response_is_not_charged_twice(
    sandbank: SandbankAccount,
) -> None:
    order = place_order(sandbank)
    # The capture commits, then the answer is lost (an HTTP 503 in its place), once.
    with sandbank.fault("status", status=503, operation="createCapture", phase="after", times=1):
        first = capture(sandbank, order["id"], 50000, key="ship-1")
        assert first.status_code == 503
        retry = capture(sandbank, order["id"], 50000, key="ship-1")  # what your client must do
    assert retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["order"]["captured_amount"] == 50000
    sandbank.assert_requests(operation="createCapture", count=2)
    sandbank.assert_requests(operation="createCapture", replayed=True, count=1)


def test_an_uncaptured_authorization_lapses_after_thirty_days(sandbank: SandbankAccount) -> None:
    order = place_order(sandbank)
    sandbank.advance("31d")  # everything due on the way runs, in time order
    assert sandbank.client.get(f"/v1/orders/{order['id']}").json()["status"] == "expired"


def test_a_capture_sends_a_signed_webhook(
    sandbank: SandbankAccount, sandbank_webhooks: WebhookReceiver
) -> None:
    order = place_order(sandbank)
    assert capture(sandbank, order["id"], 125000, key="ship-all").status_code == 201
    (event,) = sandbank_webhooks.wait_for("order.captured")
    assert event["data"]["id"] == order["id"]
    assert sandbank_webhooks.rejected == []  # every delivery carried a valid signature


@pytest.mark.sandbank(seed=7)
def test_the_same_seed_gives_the_same_ids(sandbank: SandbankAccount) -> None:
    first = place_order(sandbank)["id"]
    sandbank.reset()  # same account, same seed: the random sequence starts again
    assert place_order(sandbank)["id"] == first
