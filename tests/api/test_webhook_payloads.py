"""Every webhook the simulator sends, checked against the published contract: the body against
its event type's `requestBody` schema in `contracts/openapi.yaml`'s `webhooks` section ($refs
resolved in the document itself), the Standard Webhooks headers against their parameter
schemas, and the signature with the `standardwebhooks` package. A lifecycle run in-process emits
every event type; the receiver is an httpx MockTransport handler."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import jsonschema_rs
import pytest
import standardwebhooks
import yaml
from factories import (
    ADMIN,
    Account,
    Api,
    build_app,
    business,
)

import contracts
from simulator.api import docs
from simulator.app import SandbankApp
from simulator.clock import ManualClock
from simulator.domain.webhooks import NATIVE_EVENT_TYPES as EVENT_TYPES

HOOK = "http://127.0.0.1:9/hook"
GONE = "http://127.0.0.1:9/gone"  # answers 410: the endpoint is disabled
DOC = "urn:sandbank:contracts:openapi"  # the document's URI in the schema registry


# --- the contract ----------------------------------------------------------------------------
class Contract:
    """The `webhooks` section of the published provider document, as validators."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.registry = jsonschema_rs.Registry([(DOC, document)], draft=jsonschema_rs.Draft202012)
        self._bodies: dict[str, jsonschema_rs.Validator] = {}

    @property
    def webhooks(self) -> dict[str, Any]:
        return dict(self.document["webhooks"])

    def body(self, event_type: str) -> jsonschema_rs.Validator:
        """The validator of the `requestBody` of the webhook named `event_type`."""
        if event_type not in self._bodies:
            assert event_type in self.webhooks, f"no webhook {event_type!r} in the document"
            pointer = (
                f"/webhooks/{event_type.replace('~', '~0').replace('/', '~1')}"
                "/post/requestBody/content/application~1json/schema"
            )
            self._bodies[event_type] = jsonschema_rs.validator_for(
                {"$ref": f"{DOC}#{pointer}"}, registry=self.registry, validate_formats=True
            )
        return self._bodies[event_type]

    def header_parameters(self, event_type: str) -> list[dict[str, Any]]:
        out = []
        for listed in self.webhooks[event_type]["post"]["parameters"]:
            param = listed
            if "$ref" in listed:
                name = listed["$ref"].removeprefix("#/components/parameters/")
                param = self.document["components"]["parameters"][name]
            assert param["in"] == "header"
            out.append(param)
        return out

    def check(self, sent: Sent) -> None:
        """Fail unless this request is what the document says the simulator sends."""
        event = sent.event
        errors = [e.message for e in self.body(event["type"]).iter_errors(event)]
        assert not errors, f"{event['type']} body {event} does not match the contract: {errors}"
        for param in self.header_parameters(event["type"]):
            value = sent.headers.get(param["name"])
            if value is None:
                assert not param["required"], f"missing header {param['name']}"
                continue
            assert jsonschema_rs.is_valid(param["schema"], value), (param["name"], value)


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract(yaml.safe_load(contracts.PROVIDER.read_text()))


# --- the receiver and the app ----------------------------------------------------------------
@dataclass(frozen=True)
class Sent:
    url: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    """Records every webhook request; `GONE` answers 410, anything else 204."""

    sent: list[Sent] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(Sent(str(request.url), dict(request.headers), request.content))
        return httpx.Response(410 if str(request.url) == GONE else 204)


def build(receiver: Receiver, clock: ManualClock) -> SandbankApp:
    return build_app(clock=clock, webhook_transport=httpx.MockTransport(receiver))


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def hooks(receiver: Receiver) -> Iterator[Api]:
    # Near real time: standardwebhooks refuses a `webhook-timestamp` far from its own clock.
    wall = ManualClock(datetime.now(UTC).replace(microsecond=0))
    api = Api(build(receiver, wall), wall)
    yield api
    api.close()


@pytest.fixture
def acct(hooks: Api) -> Account:
    return hooks.new_account(seed=7)


def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return dict(response.json())


def new_endpoint(api: Api, account: Account, url: str = HOOK) -> dict[str, Any]:
    return ok(api.post("/v1/webhook_endpoints", headers=account.headers, json={"url": url}), 201)


def flush(api: Api) -> None:
    ok(api.post("/_sandbox/webhooks/flush", headers=ADMIN, json={}))


def lifecycle(api: Api, account: Account) -> None:
    """Make the account emit every event type, then an endpoint answering 410 disable itself."""
    h = account.headers
    # An authorized order (buyer.created, checkout.created, checkout.completed,
    # order.authorized, buyer.credit_line.updated), changed, part captured, part refunded.
    order = api.approved_order(account)
    ok(api.patch(f"/v1/orders/{order['id']}", headers=h, json={"metadata": {"po": "PO-7"}}))
    ok(api.post(f"/v1/orders/{order['id']}/captures", headers=h, json={"amount": 50_000}), 201)
    ok(api.post(f"/v1/orders/{order['id']}/refunds", headers=h, json={"amount": 10_000}), 201)
    # Disputes on the captured money: one won with evidence, one accepted (lost).
    won = api.post(
        f"/_sandbox/orders/{order['id']}/disputes", headers=ADMIN, json={"amount": 5_000}
    )
    ok(
        api.post(
            f"/v1/disputes/{ok(won, 201)['id']}/evidence",
            headers=h,
            json={"evidence": {"tracking": "delivered +win"}},
        )
    )
    lost = api.post(
        f"/_sandbox/orders/{order['id']}/disputes", headers=ADMIN, json={"amount": 5_000}
    )
    ok(api.post(f"/v1/disputes/{ok(lost, 201)['id']}/accept", headers=h, json={}))
    # A buyer who pays late and then defaults (buyer.payment.late, .defaulted).
    defaulter = api.approved_order(account, 20_000, tag="approve+defaults")
    ok(api.post(f"/v1/orders/{defaulter['id']}/captures", headers=h, json={}), 201)
    # One canceled.
    other = api.approved_order(account)
    ok(api.post(f"/v1/orders/{other['id']}/cancel", headers=h, json={}))
    # A declined buyer: the checkout is declined.
    declined = api.approve(api.checkout(account, tag="decline")["id"])
    assert declined["status"] == "declined", declined
    # A review that ends in a decline (order.pending_review, then order.declined).
    reviewed = api.approve(api.checkout(account, tag="review_manual")["id"])
    assert reviewed["status"] == "completed", reviewed
    review = api.post(
        f"/_sandbox/orders/{reviewed['order_id']}/review",
        headers=ADMIN,
        json={"decision": "decline"},
    )
    assert ok(review)["status"] == "declined"
    # An open checkout and an untouched authorization, left to expire.
    api.checkout(account)
    api.approved_order(account)
    flush(api)
    api.advance(account, "31d")
    flush(api)
    api.advance(account, "31d")  # the late repayment defaults
    flush(api)
    # An endpoint answering 410 Gone: disabled, and the other endpoint hears of it.
    new_endpoint(api, account, GONE)
    ok(api.post("/v1/buyers", headers=h, json=business("approve", legal_name="Gone Ltd")), 201)
    flush(api)


# --- tests -----------------------------------------------------------------------------------
def test_the_webhooks_section_names_exactly_the_event_types(contract: Contract) -> None:
    assert list(contract.webhooks) == list(EVENT_TYPES)
    assert list(docs.provider_document()["webhooks"]) == list(EVENT_TYPES)
    ids = [hook["post"]["operationId"] for hook in contract.webhooks.values()]
    assert len(set(ids)) == len(ids)


def test_every_ref_in_the_document_resolves(contract: Contract) -> None:
    resolver = contract.registry.resolver(DOC)

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    found = set(refs(contract.document))
    assert "#/components/schemas/WebhookEndpointPublic" in found
    for ref in found:
        assert resolver.lookup(ref).contents is not None, ref


def test_every_webhook_sent_in_a_lifecycle_matches_the_contract(
    hooks: Api, acct: Account, receiver: Receiver, contract: Contract
) -> None:
    secrets = {HOOK: new_endpoint(hooks, acct)["secret"]}
    lifecycle(hooks, acct)
    gone = ok(hooks.get("/v1/webhook_endpoints", headers=acct.headers))["data"][-1]
    assert (gone["url"], gone["status"]) == (GONE, "disabled")
    secrets[GONE] = gone["secret"]

    assert receiver.sent
    for sent in receiver.sent:
        contract.check(sent)
        event = standardwebhooks.Webhook(secrets[sent.url]).verify(sent.body, sent.headers)
        assert event == sent.event
        assert sent.headers["webhook-id"] == event["id"]
        assert sent.headers["content-type"] == "application/json"
        assert event["data"]["id"] == event["object_id"]
        assert event["data"]["object"] == event["object_type"]
        # The body is the event exactly as `GET /v1/events/{id}` returns it.
        assert ok(hooks.get(f"/v1/events/{event['id']}", headers=acct.headers)) == event
    seen = {s.event["type"] for s in receiver.sent}
    assert sorted(seen) == sorted(EVENT_TYPES), set(EVENT_TYPES) - seen
    assert [s.event["type"] for s in receiver.sent if s.url == GONE] == ["buyer.created"]
    assert receiver.sent[-1].event["data"]["id"] == gone["id"]


def test_a_thin_payload_matches_the_contract(
    hooks: Api, acct: Account, receiver: Receiver, contract: Contract
) -> None:
    endpoint = new_endpoint(hooks, acct)
    ok(
        hooks.put(
            f"/_sandbox/webhook_endpoints/{endpoint['id']}/quirks",
            headers=ADMIN,
            json={"thin_payload": True},
        )
    )
    order = hooks.approved_order(acct)
    flush(hooks)
    assert {s.event["type"] for s in receiver.sent} >= {"order.authorized", "buyer.created"}
    for sent in receiver.sent:
        contract.check(sent)
        event = standardwebhooks.Webhook(endpoint["secret"]).verify(sent.body, sent.headers)
        assert event["data"] == {"id": event["object_id"], "object": event["object_type"]}
    thin = next(s.event for s in receiver.sent if s.event["type"] == "order.authorized")
    assert thin["data"] == {"id": order["id"], "object": "order"}


def test_the_schemas_refuse_what_the_simulator_must_not_send(
    hooks: Api, acct: Account, receiver: Receiver, contract: Contract
) -> None:
    new_endpoint(hooks, acct)
    hooks.approved_order(acct)
    flush(hooks)
    event = next(s.event for s in receiver.sent if s.event["type"] == "order.authorized")
    buyer = next(s.event for s in receiver.sent if s.event["type"] == "buyer.created")["data"]
    body = contract.body("order.authorized")
    assert body.is_valid(event)
    thin = {"id": event["object_id"], "object": "order"}
    assert body.is_valid({**event, "data": thin})
    refused = [
        {**event, "type": "order.captured"},  # another type's body
        {**event, "object_type": "buyer"},
        {**event, "object": "order"},
        {**event, "id": "ord_123"},
        {**event, "data": buyer},  # another object's snapshot
        {**event, "data": {**thin, "amount": 1}},  # thin is ids only
        {**event, "data": {**thin, "object": "buyer"}},
        {**event, "data": {k: v for k, v in event["data"].items() if k != "status"}},
        {**event, "data": {**event["data"], "amount": "1250.00"}},
        {k: v for k, v in event.items() if k != "api_version"},
    ]
    for wrong in refused:
        assert not body.is_valid(wrong), wrong
    signature = contract.header_parameters("order.authorized")[2]
    assert signature["name"] == "webhook-signature"
    assert not jsonschema_rs.is_valid(signature["schema"], "v2,abc")
