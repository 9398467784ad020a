"""The published contract as code generators read it: openapi-python-client turns
contracts/openapi.yaml into a typed client (every event payload a model of its own, checkouts
with typed amount, currency and line items), and that client drives a checkout's lifecycle
against a simulator the pytest plugin started."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import contracts
from sandbank_pytest import SandbankAccount, WebhookReceiver
from simulator.domain.webhooks import NATIVE_EVENT_TYPES as EVENT_TYPES  # openapi.yaml's

pytestmark = pytest.mark.slow
GENERATOR = Path(sys.executable).with_name("openapi-python-client")


@pytest.fixture(scope="module")
def client_package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    root = tmp_path_factory.mktemp("codegen")
    config = root / "config.yaml"
    config.write_text("post_hooks: []\n")  # no formatter run on the generated code
    result = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(contracts.PROVIDER),
            "--meta",
            "none",
            "--output-path",
            str(root / "sandbank_client"),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Anything it could not turn into code is reported; nothing may be.
    assert "Unable to" not in result.stdout, result.stdout
    assert "Warning" not in result.stdout, result.stdout
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("sandbank_client")
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m.split(".")[0] == "sandbank_client"]:
            del sys.modules[name]


def test_every_event_type_is_a_typed_model(client_package: ModuleType) -> None:
    models = importlib.import_module("sandbank_client.models")
    for event_type in EVENT_TYPES:
        name = "".join(w.capitalize() for w in event_type.replace(".", "_").split("_")) + "Event"
        assert hasattr(models, name), f"{name} ({event_type}) was not generated"


def test_checkout_create_is_one_model_with_typed_fields(client_package: ModuleType) -> None:
    models = importlib.import_module("sandbank_client.models")
    fields = models.CheckoutCreate.__annotations__
    assert fields["amount"] == "int"
    assert "LineItemIn" in fields["line_items"]
    assert "BuyerCreate" in fields["buyer"]
    assert "Currency" in fields["currency"]


def test_the_generated_client_drives_a_checkout_lifecycle(
    client_package: ModuleType, sandbank: SandbankAccount, sandbank_webhooks: WebhookReceiver
) -> None:
    m = importlib.import_module("sandbank_client.models")
    create_checkout = importlib.import_module("sandbank_client.api.checkouts.create_checkout")
    approve = importlib.import_module("sandbank_client.api.test_helpers.approve_checkout")
    create_capture = importlib.import_module("sandbank_client.api.orders.create_capture")
    create_refund = importlib.import_module("sandbank_client.api.orders.create_refund")
    get_order = importlib.import_module("sandbank_client.api.orders.get_order")

    client = client_package.AuthenticatedClient(base_url=sandbank.base_url, token=sandbank.api_key)
    body = m.CheckoutCreate(
        amount=125000,
        currency=m.CheckoutCreateCurrencyType0.USD,
        buyer=m.BuyerCreate(
            legal_name="Acme Supply Co",
            email="ap+approve@acme.test",
            annual_revenue=250000000,
            years_in_business=8,
        ),
        line_items=[m.LineItemIn(name="Pallet of widgets", quantity=2, unit_amount=62500)],
        return_url="https://shop.example/return",
        cancel_url="https://shop.example/cancel",
    )
    checkout = create_checkout.sync(client=client, body=body, idempotency_key="chk-1")
    assert isinstance(checkout, m.CheckoutOut), checkout
    approved = approve.sync(
        checkout.id, client=client, body=m.BuyerApproval(terms=m.BuyerApprovalTerms.NET60)
    )
    assert isinstance(approved, m.CheckoutOut), approved
    order_id = approved.order_id
    captured = create_capture.sync(
        order_id, client=client, body=m.CaptureCreate(amount=50000), idempotency_key="ship-1"
    )
    assert isinstance(captured, m.CaptureResult), captured
    refunded = create_refund.sync(
        order_id, client=client, body=m.RefundCreate(amount=20000), idempotency_key="rma-1"
    )
    assert isinstance(refunded, m.RefundResult), refunded
    order = get_order.sync(order_id, client=client)
    assert isinstance(order, m.OrderOut)
    assert (order.status, order.captured_amount, order.refunded_amount) == (
        m.OrderOutStatus.PARTIALLY_REFUNDED,
        50000,
        20000,
    )
    # A problem comes back typed too: capturing more than is left.
    too_much = create_capture.sync(order_id, client=client, body=m.CaptureCreate(amount=10**9))
    assert isinstance(too_much, m.Problem)
    assert too_much.status == 422

    (raw,) = sandbank_webhooks.wait_for("order.captured")
    event = m.OrderCapturedEvent.from_dict(raw)
    assert event.type_ == "order.captured"
    assert isinstance(event.data, m.OrderOut)
    assert event.data.id == order_id
