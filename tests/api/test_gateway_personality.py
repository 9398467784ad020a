"""The gateway + net terms personality (`/gateway/v1`): invoices issued on shipment, customers
paying by card or ACH on time, late, in part or short, credit notes, write-offs, and the
gateway's fee per transaction on the same settlements, events, faults and exports as `/v1`."""

from __future__ import annotations

from typing import Any

import pytest
from factories import ADMIN, START, Account, Api, build_app
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.clock import ManualClock
from simulator.domain.gateway import behaviour_tag, gateway_fee, short_by
from simulator.domain.models import GatewayFees

G = "/gateway/v1"


def invoice_body(
    number: str = "INV-1001", amount: int = 100_000, tag: str = "pays_on_time", **kw: Any
) -> dict[str, Any]:
    return {
        "number": number,
        "customer": {
            "name": "Acme Supply Co",
            "email": f"ap+{tag}@acme.test",
            "external_id": "CUST-1",
            **kw.pop("customer", {}),
        },
        "amount": amount,
        "currency": "USD",
        "net_days": 30,
        **kw,
    }


def create(api: Api, account: Account, **kw: Any) -> dict[str, Any]:
    r = api.post(f"{G}/invoices", headers=account.headers, json=invoice_body(**kw))
    assert r.status_code == 201, r.text
    return dict(r.json())


def act(api: Api, account: Account, invoice_id: str, verb: str, **body: Any) -> dict[str, Any]:
    r = api.post(f"{G}/invoices/{invoice_id}/{verb}", headers=account.headers, json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


def get(api: Api, account: Account, invoice_id: str) -> dict[str, Any]:
    r = api.get(f"{G}/invoices/{invoice_id}", headers=account.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


def issued(api: Api, account: Account, **kw: Any) -> dict[str, Any]:
    return act(api, account, create(api, account, **kw)["id"], "issue")


def lines(api: Api, account: Account) -> list[dict[str, Any]]:
    """Every settlement's lines, after the clock has batched them."""
    out = []
    listed = api.get(f"{G}/settlements", headers=account.headers, params={"limit": 100})
    for summary in listed.json()["data"]:
        one = api.get(f"{G}/settlements/{summary['id']}", headers=account.headers).json()
        assert one["amount"] == sum(x["net"] for x in one["lines"])
        out.extend(one["lines"])
    return out


def types(api: Api, account: Account) -> list[str]:
    return [
        e["type"] for e in api.events(account) if e["type"].split(".")[0] in ("invoice", "charge")
    ]


# --- the invoice's life -----------------------------------------------------------------------
def test_a_customer_paying_on_time_by_card_pays_the_invoice_on_its_due_date(
    api: Api, account: Account
) -> None:
    inv = issued(api, account)
    assert (inv["status"], inv["amount_due"], inv["due_date"]) == ("open", 100_000, "2026-03-31")
    api.advance(account, "29d")
    assert get(api, account, inv["id"])["status"] == "open"
    api.advance(account, "2d")
    paid = get(api, account, inv["id"])
    assert (paid["status"], paid["paid_amount"], paid["amount_due"]) == ("paid", 100_000, 0)
    assert not paid["past_due"]
    assert types(api, account) == [
        "invoice.created",
        "invoice.issued",
        "charge.succeeded",
        "invoice.paid",
    ]


def test_the_gateway_fee_of_each_charge_is_on_its_settlement_line(
    api: Api, account: Account
) -> None:
    inv = issued(api, account)
    api.advance(account, "35d")
    (line,) = lines(api, account)
    (charge,) = api.get(f"{G}/charges", headers=account.headers).json()["data"]
    assert charge["fee"] == 100_000 * 290 // 10_000 + 30 == 2_930
    assert line == line | {
        "type": "payment",
        "order_id": inv["id"],
        "source_id": charge["id"],
        "gross": 100_000,
        "fee": 2_930,
        "net": 97_070,
    }
    report = api.get(
        f"{G}/settlements/{line['settlement_id']}/report",
        headers=account.headers,
        params={"format": "csv"},
    )
    assert report.status_code == 200
    assert f"payment,{inv['id']},{charge['id']},USD,100000,2930,97070" in report.text


def test_partial_shipments_issue_part_of_the_order_and_keep_the_first_due_date(
    api: Api, account: Account
) -> None:
    inv = create(api, account, tag="defaults")
    first = act(api, account, inv["id"], "issue", amount=40_000)
    api.advance(account, "5d")
    second = act(api, account, inv["id"], "issue")
    assert (first["issued_amount"], second["issued_amount"]) == (40_000, 100_000)
    assert second["due_date"] == first["due_date"] == "2026-03-31"
    r = api.post(f"{G}/invoices/{inv['id']}/issue", headers=account.headers, json={"amount": 1})
    assert r.status_code == 422, r.text


def test_a_shipment_after_the_due_date_starts_a_new_term_the_buyer_pays_on(
    api: Api, account: Account
) -> None:
    inv = create(api, account)
    act(api, account, inv["id"], "issue", amount=60_000)
    api.advance(account, "31d")
    assert get(api, account, inv["id"])["status"] == "paid"
    again = act(api, account, inv["id"], "issue")
    assert (again["status"], again["amount_due"], again["due_date"]) == (
        "open",
        40_000,
        "2026-05-01",
    )
    api.advance(account, "30d")
    assert get(api, account, inv["id"])["status"] == "paid"


def test_a_late_payer_goes_past_due_then_pays_ten_days_later(api: Api, account: Account) -> None:
    inv = issued(api, account, tag="pays_late")
    api.advance(account, "31d")
    late = get(api, account, inv["id"])
    assert (late["status"], late["past_due"], late["amount_due"]) == ("open", True, 100_000)
    assert lines(api, account) == []  # the seller carries the risk: nothing is paid out
    api.advance(account, "10d")
    paid = get(api, account, inv["id"])
    assert (paid["status"], paid["past_due"]) == ("paid", False)
    assert "invoice.overdue" in types(api, account)


def test_a_partial_payer_pays_half_on_the_due_date_and_the_rest_late(
    api: Api, account: Account
) -> None:
    inv = issued(api, account, amount=100_001, tag="pays_partial")
    api.advance(account, "31d")
    half = get(api, account, inv["id"])
    assert (half["paid_amount"], half["amount_due"], half["past_due"]) == (50_000, 50_001, True)
    api.advance(account, "10d")
    assert get(api, account, inv["id"])["status"] == "paid"
    assert sorted(x["gross"] for x in lines(api, account)) == [50_000, 50_001]


def test_a_short_payment_leaves_a_deduction_the_seller_writes_off(
    api: Api, account: Account
) -> None:
    inv = issued(api, account, tag="pays_short")
    api.advance(account, "31d")
    short = get(api, account, inv["id"])
    assert (short["paid_amount"], short["amount_due"], short["status"]) == (95_000, 5_000, "open")
    wrong = api.post(
        f"{G}/invoices/{inv['id']}/write_off", headers=account.headers, json={"amount": 4_999}
    )
    assert wrong.status_code == 422, wrong.text
    closed = act(api, account, inv["id"], "write_off", reason="damaged pallet")
    assert (closed["status"], closed["written_off_amount"], closed["amount_due"]) == (
        "short_paid",
        5_000,
        0,
    )
    assert not closed["past_due"]


def test_a_defaulting_customer_never_pays_and_the_seller_can_charge_the_card_itself(
    api: Api, account: Account
) -> None:
    inv = issued(api, account, tag="defaults")
    api.advance(account, "90d")
    assert get(api, account, inv["id"])["amount_due"] == 100_000
    r = api.post(
        f"{G}/charges", headers=account.headers, json={"invoice": inv["id"], "amount": 30_000}
    )
    assert r.status_code == 201, r.text
    assert (r.json()["status"], r.json()["initiated_by"]) == ("succeeded", "merchant")
    assert get(api, account, inv["id"])["amount_due"] == 70_000
    too_much = api.post(
        f"{G}/charges", headers=account.headers, json={"invoice": inv["id"], "amount": 70_001}
    )
    assert too_much.status_code == 422, too_much.text


def test_an_ach_payment_clears_business_days_later_with_a_capped_fee(
    api: Api, account: Account
) -> None:
    inv = issued(api, account, customer={"payment_method": "ach"})
    api.advance(account, "30d")  # due on Tuesday 2026-03-31 09:00
    pending = get(api, account, inv["id"])
    (charge,) = api.get(f"{G}/charges", headers=account.headers).json()["data"]
    assert (charge["status"], charge["fee"], charge["clears_at"]) == (
        "pending",
        500,
        "2026-04-03T00:00:00Z",
    )
    assert (pending["pending_amount"], pending["status"], pending["past_due"]) == (
        100_000,
        "open",
        False,
    )
    early = api.post(
        f"{G}/invoices/{inv['id']}/credit_notes", headers=account.headers, json={"amount": 10_000}
    )
    assert (early.status_code, early.json()["detail"]) == (
        409,
        f"invoice {inv['id']} has charges still clearing: credit at most 0 until they do",
    )
    api.advance(account, "3d")
    assert get(api, account, inv["id"])["status"] == "paid"
    api.advance(account, "1d")  # the day's batch
    assert [(x["gross"], x["fee"]) for x in lines(api, account)] == [(100_000, 500)]


def test_a_credit_note_beyond_what_is_due_refunds_the_customer_and_the_fee_stays(
    api: Api, account: Account
) -> None:
    inv = issued(api, account)
    api.advance(account, "31d")
    credited = act(api, account, inv["id"], "credit_notes", amount=25_000)
    assert (credited["status"], credited["refunded_amount"], credited["amount_due"]) == (
        "paid",
        25_000,
        0,
    )
    api.advance(account, "3d")
    moved = [x for x in lines(api, account) if x["type"] != "carry_forward"]  # a negative day
    assert sorted((x["type"], x["gross"], x["fee"]) for x in moved) == [
        ("payment", 100_000, 2_930),
        ("refund", -25_000, 0),
    ]
    assert "charge.refunded" in types(api, account)


def test_a_credit_note_on_an_open_invoice_only_lowers_what_is_due(
    api: Api, account: Account
) -> None:
    inv = issued(api, account)
    credited = act(api, account, inv["id"], "credit_notes", amount=10_000)
    assert (credited["amount_due"], credited["refunded_amount"]) == (90_000, 0)
    over = api.post(
        f"{G}/invoices/{inv['id']}/credit_notes", headers=account.headers, json={"amount": 90_001}
    )
    assert over.status_code == 422, over.text


def test_only_a_draft_can_be_voided(api: Api, account: Account) -> None:
    draft = create(api, account)
    assert act(api, account, draft["id"], "void")["status"] == "void"
    again = api.post(f"{G}/invoices/{draft['id']}/issue", headers=account.headers, json={})
    assert again.status_code == 409, again.text
    inv = issued(api, account, number="INV-2")
    r = api.post(f"{G}/invoices/{inv['id']}/void", headers=account.headers)
    assert r.status_code == 409
    assert r.json()["code"] == "invalid_transition"


# --- the same account, pipeline and outputs as /v1 -----------------------------------------
def test_an_invoice_is_found_by_number_and_is_the_accounts_own(api: Api, account: Account) -> None:
    inv = create(api, account, number="SO-77")
    found = api.get(f"{G}/invoices", headers=account.headers, params={"number": "SO-77"}).json()
    assert [x["id"] for x in found["data"]] == [inv["id"]]
    other = api.new_account(seed=8)
    assert api.get(f"{G}/invoices/{inv['id']}", headers=other.headers).status_code == 404
    assert api.get(f"{G}/invoices/{inv['id']}").status_code == 401


def test_bad_input_is_a_problem_never_a_500(api: Api, account: Account) -> None:
    for body in ({}, {**invoice_body(), "amount": 0}, {**invoice_body(), "amount": 1.5}):
        r = api.post(f"{G}/invoices", headers=account.headers, json=body)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
    r = api.post(f"{G}/charges", headers=account.headers, json={"invoice": "inv_nope"})
    assert (r.status_code, r.json()["code"]) == (404, "not_found")


def test_an_idempotency_key_replays_a_charge_instead_of_charging_twice(
    api: Api, account: Account
) -> None:
    inv = issued(api, account, tag="defaults")
    h = {**account.headers, "Idempotency-Key": "collect-1"}
    body = {"invoice": inv["id"], "amount": 1_000}
    first, second = (api.post(f"{G}/charges", headers=h, json=body) for _ in range(2))
    assert first.json() == second.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert get(api, account, inv["id"])["paid_amount"] == 1_000


def test_a_fault_rule_matches_a_gateway_operation_and_the_journal_names_it(
    api: Api, account: Account
) -> None:
    rule = {
        "account": account.id,
        "match": {"operation": "gateway.createInvoice"},
        "effect": {"type": "status", "status": 503},
    }
    r = api.post("/_sandbox/faults", headers=ADMIN, json=rule)
    assert r.status_code == 201, r.text
    r = api.post(f"{G}/invoices", headers=account.headers, json=invoice_body())
    assert r.status_code == 503
    journal = api.get(
        "/_sandbox/requests",
        headers=ADMIN,
        params={"account": account.id, "operation": "gateway.createInvoice"},
    ).json()["data"]
    assert [e["status"] for e in journal] == [503]


def test_the_export_holds_the_invoices_and_charges(api: Api, account: Account) -> None:
    inv = issued(api, account)
    api.advance(account, "31d")
    r = api.post("/v1/exports", headers=account.headers, json={"format": "jsonl"})
    assert r.status_code == 201, r.text
    exp = r.json()["id"]
    invoices = api.get(f"/v1/exports/{exp}/files/invoices.jsonl", headers=account.headers).text
    charges = api.get(f"/v1/exports/{exp}/files/charges.jsonl", headers=account.headers).text
    assert f'"id":"{inv["id"]}"' in invoices
    assert '"amount_due":0' in invoices
    assert f'"invoice_id":"{inv["id"]}"' in charges


def test_a_webhook_endpoint_may_subscribe_to_gateway_events(api: Api, account: Account) -> None:
    r = api.post(
        "/v1/webhook_endpoints",
        headers=account.headers,
        json={"url": "http://127.0.0.1:9/hook", "enabled_events": ["invoice.paid"]},
    )
    assert r.status_code == 201, r.text


def test_the_published_document_is_served_and_names_every_gateway_operation(api: Api) -> None:
    r = api.get("/gateway/openapi.json")
    assert r.status_code == 200
    ids = {op["operationId"] for path in r.json()["paths"].values() for op in path.values()}
    assert {"gateway.createInvoice", "gateway.createCharge", "gateway.listSettlements"} <= ids
    assert "invoice.overdue" in r.json()["webhooks"]


# --- pure rules -------------------------------------------------------------------------------
@given(st.integers(0, 10**12), st.sampled_from(["card", "ach"]))
def test_a_gateway_fee_is_a_whole_number_never_above_the_charge(amount: int, method: str) -> None:
    fee = gateway_fee(amount, method, GatewayFees())  # type: ignore[arg-type]
    assert isinstance(fee, int)
    assert 0 <= fee <= amount
    if method == "ach":
        assert fee <= 500


@given(st.integers(0, 10**12))
def test_a_short_payment_leaves_something_unless_nothing_is_due(due: int) -> None:
    left = short_by(due)
    assert 0 <= left < max(due, 1)
    assert (left > 0) == (due > 1)


@pytest.mark.parametrize(
    ("email", "name", "expected"),
    [
        ("ap+pays_short@x.test", "X", "short"),
        ("ap@x.test", "X [pays_partial]", "partial"),
        ("ap+defaults@x.test", "X", "default"),
        ("ap@x.test", "X", None),
    ],
)
def test_customer_behaviour_comes_from_magic_values(email: str, name: str, expected: str) -> None:
    assert behaviour_tag(email, name) == expected


# --- property: money is whole and every payout equals its lines -------------------------------
_STEP = st.one_of(
    st.tuples(
        st.just("new"),
        st.sampled_from(["pays_on_time", "pays_late", "pays_partial", "pays_short", "defaults"]),
        st.sampled_from(["card", "ach"]),
        st.integers(1, 500_000),
    ),
    st.tuples(st.just("issue"), st.integers(0, 9), st.integers(1, 500_000)),
    st.tuples(st.just("credit"), st.integers(0, 9), st.integers(1, 500_000)),
    st.tuples(st.just("charge"), st.integers(0, 9), st.integers(1, 500_000)),
    st.tuples(st.just("write_off"), st.integers(0, 9)),
    st.tuples(st.just("advance"), st.sampled_from(["1d", "3d", "12d", "31d"])),
)


@settings(max_examples=25)
@given(st.lists(_STEP, min_size=1, max_size=14))
def test_whatever_happens_money_is_whole_and_every_payout_equals_its_lines(
    steps: list[tuple[Any, ...]],
) -> None:
    clock = ManualClock(START)
    api = Api(build_app(clock=clock), clock)
    try:
        account = api.new_account(seed=3)
        ids: list[str] = []
        for step in steps:
            kind = step[0]
            if kind == "new":
                _, tag, method, amount = step
                inv = create(
                    api,
                    account,
                    number=f"N{len(ids)}",
                    amount=amount,
                    tag=tag,
                    customer={"payment_method": method},
                )
                ids.append(inv["id"])
            elif kind == "advance":
                api.advance(account, step[1])
            elif ids:
                target = ids[step[1] % len(ids)]
                url, body = {
                    "issue": (f"{G}/invoices/{target}/issue", {"amount": step[-1]}),
                    "credit": (f"{G}/invoices/{target}/credit_notes", {"amount": step[-1]}),
                    "charge": (f"{G}/charges", {"invoice": target, "amount": step[-1]}),
                    "write_off": (f"{G}/invoices/{target}/write_off", {}),
                }[kind]
                r = api.post(url, headers=account.headers, json=body)
                assert r.status_code in (200, 201, 409, 422), r.text
        # Past every due date (30 d), late payment (10 d), ACH clearing and batch.
        api.advance(account, "60d")
        for inv_id in ids:
            inv = get(api, account, inv_id)
            figures = [v for k, v in inv.items() if k.endswith("amount") or k == "amount_due"]
            assert all(type(v) is int and v >= 0 for v in figures), inv
            assert inv["amount_due"] == (
                inv["issued_amount"]
                - inv["credited_amount"]
                - inv["written_off_amount"]
                - (inv["paid_amount"] - inv["refunded_amount"])
            )
            assert inv["issued_amount"] <= inv["amount"]
        charges = api.get(f"{G}/charges", headers=account.headers, params={"limit": 100}).json()
        paid = {c["id"]: c for c in charges["data"] if c["status"] == "succeeded"}
        payments = [x for x in lines(api, account) if x["type"] == "payment"]
        assert sorted(x["source_id"] for x in payments) == sorted(paid)
        for line in payments:
            assert (line["gross"], line["fee"]) == (
                paid[line["source_id"]]["amount"],
                paid[line["source_id"]]["fee"],
            )
    finally:
        api.close()
