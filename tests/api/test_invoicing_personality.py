"""The traditional-invoicing personality (`/invoicing/v1`): EDI 810 invoices sent as JSON or X12
text, buyers remitting (EDI 820) on time, late, in part, short, batched, with wrong or missing
references, or never; automatic and manual cash application; dunning; credit memos and
write-offs; deposits on the same settlements, events, faults and exports as `/v1`."""

from __future__ import annotations

from datetime import date
from typing import Any

from factories import ADMIN, START, Account, Api, build_app
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.clock import ManualClock
from simulator.domain.x12 import Invoice810, Line810, parse_820

E = "/invoicing/v1"
X12 = {"Content-Type": "application/edi-x12"}


def invoice_body(
    number: str = "INV-1001",
    amount: int = 100_000,
    tag: str = "pays_on_time",
    po: str | None = "PO-77",
    **kw: Any,
) -> dict[str, Any]:
    return {
        "big": {"invoice_number": number, **({"po_number": po} if po else {})},
        "currency": "USD",
        "buyer": {"name": "Acme Supply Co", "id": "CUST-1", "email": f"ap+{tag}@acme.test"},
        "itd": {"net_days": 30},
        "it1": [{"quantity": 1, "unit_price": amount, "product_id": "SKU-1"}],
        "tds": {"amount": amount},
        **kw,
    }


def send(api: Api, account: Account, **kw: Any) -> dict[str, Any]:
    r = api.post(f"{E}/invoices", headers=account.headers, json=invoice_body(**kw))
    assert r.status_code == 201, r.text
    return dict(r.json())


def get(api: Api, account: Account, invoice_id: str) -> dict[str, Any]:
    r = api.get(f"{E}/invoices/{invoice_id}", headers=account.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


def remittances(api: Api, account: Account, **params: Any) -> list[dict[str, Any]]:
    r = api.get(f"{E}/remittances", headers=account.headers, params={"limit": 100, **params})
    assert r.status_code == 200, r.text
    return list(reversed(r.json()["data"]))  # oldest first


def lines(api: Api, account: Account) -> list[dict[str, Any]]:
    out = []
    listed = api.get(f"{E}/settlements", headers=account.headers, params={"limit": 100})
    for summary in listed.json()["data"]:
        one = api.get(f"{E}/settlements/{summary['id']}", headers=account.headers).json()
        assert one["amount"] == sum(x["net"] for x in one["lines"])
        out.extend(one["lines"])
    return out


def types(api: Api, account: Account) -> list[str]:
    mine = ("edi_invoice", "remittance", "collections")
    return [e["type"] for e in api.events(account) if e["type"].split(".")[0] in mine]


def x12_810(number: str = "INV-2001", email: str = "ap@acme.test") -> str:
    return Invoice810(
        invoice_number=number,
        invoice_date=date(2026, 3, 1),
        po_number="PO-9",
        currency="USD",
        buyer_name="Acme Supply Co",
        buyer_id="CUST-1",
        buyer_email=email,
        net_days=30,
        lines=(Line810(2, 12_550, "EA", "SKU-1"), Line810(1, 4_900)),
        total=30_000,
    ).render()


# --- sending invoices -------------------------------------------------------------------------
def test_an_invoice_paid_on_time_is_matched_automatically_and_deposited(
    api: Api, account: Account
) -> None:
    inv = send(api, account)
    assert (inv["status"], inv["amount_due"], inv["due_date"]) == ("open", 100_000, "2026-03-31")
    api.advance(account, "31d")
    paid = get(api, account, inv["id"])
    assert (paid["status"], paid["applied_amount"], paid["amount_due"]) == ("paid", 100_000, 0)
    (rmt,) = remittances(api, account)
    assert (rmt["status"], rmt["amount"], rmt["unapplied_amount"]) == ("matched", 100_000, 0)
    assert rmt["lines"][0]["allocations"][0]["by"] == "auto"
    (line,) = lines(api, account)
    assert line == line | {
        "type": "payment",
        "order_id": "PO-77",
        "source_id": rmt["lines"][0]["id"],
        "gross": 100_000,
        "fee": 0,
        "net": 100_000,
    }
    assert types(api, account) == [
        "edi_invoice.created",
        "edi_invoice.paid",
        "remittance.received",
        "remittance.matched",
    ]
    # The bank account the buyer paid from is in the vault.
    (token,) = api.get(f"{E}/tokens", headers=account.headers).json()["data"]
    assert (token["id"], token["type"], token["status"]) == (
        rmt["payment_token"],
        "bank_account",
        "active",
    )


def test_an_x12_810_upload_is_an_invoice_like_its_json(api: Api, account: Account) -> None:
    r = api.post(f"{E}/invoices", headers={**account.headers, **X12}, content=x12_810())
    assert r.status_code == 201, r.text
    inv = r.json()
    assert (inv["number"], inv["po_number"], inv["amount"]) == ("INV-2001", "PO-9", 30_000)
    assert [li["unit_price"] for li in inv["lines"]] == [12_550, 4_900]


def test_a_malformed_810_is_a_problem_naming_the_segment(api: Api, account: Account) -> None:
    h = {**account.headers, **X12}
    good = x12_810()
    cases = {
        "garbage": (422, "segment 'garbage'"),
        good.replace("TDS*30000", "TDS*30001"): (422, "TDS01"),
        good.replace("SE*11*0001", "SE*9*0001"): (422, "SE"),
        good.replace("IT1*1*2*EA*125.50", "IT1*1*2*EA*125.505"): (422, "IT104"),
        good.replace("N1*BY*", "N1*ST*"): (422, "N1"),
    }
    assert len(cases) == 5
    assert all(text != good for text in cases)
    for text, (status, segment) in cases.items():
        r = api.post(f"{E}/invoices", headers=h, content=text)
        assert r.status_code == status, (text, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["detail"].startswith(segment), r.json()
    r = api.post(f"{E}/invoices", headers=h, content=b"\xff\xfe")
    assert r.status_code == 400


def test_an_invoice_number_is_sent_once(api: Api, account: Account) -> None:
    send(api, account)
    r = api.post(f"{E}/invoices", headers=account.headers, json=invoice_body())
    assert (r.status_code, r.json()["code"]) == (409, "conflict")
    r = api.post(
        f"{E}/invoices",
        headers=account.headers,
        json=invoice_body(number="N2", amount=5) | {"tds": {"amount": 6}},
    )
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("TDS01")


# --- what the buyer does ----------------------------------------------------------------------
def test_a_late_payer_is_reminded_then_pays_ten_days_late(api: Api, account: Account) -> None:
    inv = send(api, account, tag="pays_late")
    api.advance(account, "31d")
    late = get(api, account, inv["id"])
    assert (late["status"], late["past_due"], late["dunning_level"]) == ("open", True, 1)
    api.advance(account, "10d")
    assert get(api, account, inv["id"])["status"] == "paid"
    assert types(api, account)[:2] == ["edi_invoice.created", "collections.reminder"]
    # The events name the object as the contract does (integrations dispatch on it).
    kinds = {e["object_type"] for e in api.events(account) if e["type"] != "settlement.created"}
    assert {"edi_invoice", "remittance"} <= kinds <= {"edi_invoice", "remittance", "settlement"}


def test_a_short_payment_carries_a_deduction_reason_and_leaves_the_rest_due(
    api: Api, account: Account
) -> None:
    inv = send(api, account, tag="pays_short")
    api.advance(account, "31d")
    (rmt,) = remittances(api, account)
    (line,) = rmt["lines"]
    assert (line["amount"], line["adjustment"], line["invoice_amount"]) == (95_000, -5_000, 100_000)
    assert line["adjustment_reason"] in ("PRICING", "DAMAGED", "SHORTAGE")
    assert get(api, account, inv["id"])["amount_due"] == 5_000
    r = api.post(f"{E}/invoices/{inv['id']}/write_off", headers=account.headers)
    assert (r.status_code, r.json()["status"], r.json()["amount_due"]) == (200, "written_off", 0)
    x12 = api.get(f"{E}/remittances/{rmt['id']}", headers=account.headers, params={"format": "x12"})
    assert x12.headers["content-type"].startswith("application/edi-x12")
    parsed = parse_820(x12.text)
    assert (parsed.total, parsed.lines[0].adjustment) == (95_000, -5_000)


def test_a_batching_buyer_pays_several_invoices_in_one_remittance(
    api: Api, account: Account
) -> None:
    a = send(api, account, number="INV-A", tag="pays_batched")
    api.advance(account, "3d")
    b = send(api, account, number="INV-B", amount=20_000, tag="pays_batched")
    api.advance(account, "28d")
    (rmt,) = remittances(api, account)
    assert [x["reference"] for x in rmt["lines"]] == ["INV-A", "INV-B"]
    assert rmt["amount"] == 120_000
    assert rmt["status"] == "matched"
    assert {get(api, account, i["id"])["status"] for i in (a, b)} == {"paid"}


def test_a_typod_reference_stays_unmatched_until_applied_by_hand(
    api: Api, account: Account
) -> None:
    inv = send(api, account, number="INV-1012", tag="typo_reference")
    api.advance(account, "31d")
    (rmt,) = remittances(api, account, status="unmatched")
    assert rmt["lines"][0]["reference"] == "INV-1021"
    assert rmt["unapplied_amount"] == 100_000
    (line,) = lines(api, account)
    assert line["order_id"] is None  # unidentified cash
    assert "remittance.unmatched" in types(api, account)
    url = f"{E}/remittances/{rmt['id']}/apply"
    alloc = {"line": rmt["lines"][0]["id"], "invoice": inv["id"]}
    # Over-application of the line or the invoice is refused, and nothing is applied.
    for amount in (100_001, 0):
        r = api.post(
            url, headers=account.headers, json={"allocations": [alloc | {"amount": amount}]}
        )
        assert r.status_code == 422, r.text
    r = api.post(url, headers=account.headers, json={"allocations": [alloc | {"amount": 1.5}]})
    assert r.status_code == 422
    r = api.post(url, headers=account.headers, json={"allocations": [alloc | {"amount": 100_000}]})
    assert (r.status_code, r.json()["status"], r.json()["unapplied_amount"]) == (200, "matched", 0)
    assert get(api, account, inv["id"])["status"] == "paid"
    r = api.post(url, headers=account.headers, json={"allocations": [alloc | {"amount": 1}]})
    assert r.status_code == 422


def test_a_po_reference_or_none_needs_manual_matching(api: Api, account: Account) -> None:
    send(api, account, number="INV-P", tag="po_reference")
    send(api, account, number="INV-N", po="PO-2", tag="no_reference")
    api.advance(account, "31d")
    got = remittances(api, account)
    assert [(r["lines"][0]["qualifier"], r["lines"][0]["reference"]) for r in got] == [
        ("PO", "PO-77"),
        ("IV", ""),
    ]
    assert {r["status"] for r in got} == {"unmatched"}


def test_a_buyer_who_never_pays_is_dunned_into_collections_then_default(
    api: Api, account: Account
) -> None:
    inv = send(api, account, tag="defaults")
    steps = [
        ("31d", "open", 1),
        ("7d", "open", 2),
        ("23d", "collections", 3),
        ("60d", "defaulted", 4),
    ]
    for by, status, level in steps:
        api.advance(account, by)
        got = get(api, account, inv["id"])
        assert (got["status"], got["dunning_level"]) == (status, level), by
    assert [t for t in types(api, account) if t.startswith("collections.")] == [
        "collections.reminder",
        "collections.reminder",
        "collections.escalated",
        "collections.defaulted",
    ]
    assert remittances(api, account) == []


def test_a_credit_memo_lowers_what_is_due_and_never_more(api: Api, account: Account) -> None:
    inv = send(api, account, tag="defaults")
    url = f"{E}/invoices/{inv['id']}/credit_memos"
    r = api.post(url, headers=account.headers, json={"amount": 100_001})
    assert r.status_code == 422
    r = api.post(url, headers=account.headers, json={"amount": 30_000, "reason": "returned"})
    assert (r.status_code, r.json()["amount_due"]) == (200, 70_000), r.text
    r = api.post(url, headers=account.headers, json={"amount": 70_000})
    assert r.json()["status"] == "paid"


def test_the_lockbox_fee_is_on_the_first_line_so_payouts_equal_their_lines(api: Api) -> None:
    account = api.new_account(seed=5, lockbox_fee=150)
    send(api, account)
    api.advance(account, "32d")
    (line,) = lines(api, account)
    assert (line["gross"], line["fee"], line["net"]) == (100_000, 150, 99_850)


# --- shared machinery -------------------------------------------------------------------------
def test_a_fault_rule_matches_an_invoicing_operation(api: Api, account: Account) -> None:
    rule = {
        "account": account.id,
        "match": {"operation": "invoicing.createInvoice"},
        "effect": {"type": "status", "status": 503},
    }
    assert api.post("/_sandbox/faults", headers=ADMIN, json=rule).status_code == 201
    r = api.post(f"{E}/invoices", headers=account.headers, json=invoice_body())
    assert r.status_code == 503
    r = api.post(
        "/_sandbox/faults/presets/total-outage", headers=ADMIN, json={"account": account.id}
    )
    assert r.status_code in (200, 201), r.text


def test_the_export_holds_invoices_and_remittances(api: Api, account: Account) -> None:
    inv = send(api, account, tag="typo_reference")
    api.advance(account, "31d")
    r = api.post("/v1/exports", headers=account.headers, json={"format": "jsonl"})
    assert r.status_code == 201, r.text
    exp = r.json()["id"]
    invoices = api.get(f"/v1/exports/{exp}/files/edi_invoices.jsonl", headers=account.headers)
    rmts = api.get(f"/v1/exports/{exp}/files/remittances.jsonl", headers=account.headers)
    assert f'"id":"{inv["id"]}"' in invoices.text
    assert '"unapplied_amount":100000' in rmts.text


def test_an_idempotency_key_replays_an_810_upload(api: Api, account: Account) -> None:
    h = {**account.headers, **X12, "Idempotency-Key": "810-1"}
    first, second = (api.post(f"{E}/invoices", headers=h, content=x12_810()) for _ in range(2))
    assert first.status_code == 201
    assert first.json() == second.json()
    assert second.headers["Idempotent-Replayed"] == "true"


def test_the_published_document_is_served_and_names_every_operation(api: Api) -> None:
    r = api.get("/invoicing/openapi.json")
    assert r.status_code == 200
    ids = {op["operationId"] for path in r.json()["paths"].values() for op in path.values()}
    assert {"invoicing.createInvoice", "invoicing.applyRemittance"} <= ids
    assert "remittance.unmatched" in r.json()["webhooks"]
    create = r.json()["paths"]["/invoicing/v1/invoices"]["post"]
    assert "application/edi-x12" in create["requestBody"]["content"]


# --- property: money is whole, payouts equal their lines, applied + unapplied = received ------
_TAGS = [
    "pays_on_time",
    "pays_late",
    "pays_partial",
    "pays_short",
    "pays_batched",
    "typo_reference",
    "po_reference",
    "no_reference",
    "defaults",
]
_STEP = st.one_of(
    st.tuples(st.just("new"), st.sampled_from(_TAGS), st.integers(1, 500_000)),
    st.tuples(st.just("credit"), st.integers(0, 9), st.integers(1, 500_000)),
    st.tuples(st.just("write_off"), st.integers(0, 9)),
    st.tuples(st.just("apply"), st.integers(0, 9), st.integers(0, 9), st.integers(1, 500_000)),
    st.tuples(st.just("advance"), st.sampled_from(["1d", "5d", "12d", "31d"])),
)


@settings(max_examples=20, deadline=None)
@given(st.lists(_STEP, min_size=1, max_size=14))
def test_whatever_happens_money_is_whole_and_cash_is_accounted_for(
    steps: list[tuple[Any, ...]],
) -> None:
    clock = ManualClock(START)
    api = Api(build_app(clock=clock), clock)
    try:
        account = api.new_account(seed=3, lockbox_fee=25)
        ids: list[str] = []
        for step in steps:
            kind = step[0]
            if kind == "new":
                ids.append(
                    send(api, account, number=f"N{len(ids)}", amount=step[2], tag=step[1])["id"]
                )
            elif kind == "advance":
                api.advance(account, step[1])
            elif kind == "apply":
                got = remittances(api, account)
                if got and ids:
                    rmt = got[step[1] % len(got)]
                    body = {
                        "allocations": [
                            {
                                "line": rmt["lines"][0]["id"],
                                "invoice": ids[step[2] % len(ids)],
                                "amount": step[3],
                            }
                        ]
                    }
                    r = api.post(
                        f"{E}/remittances/{rmt['id']}/apply", headers=account.headers, json=body
                    )
                    assert r.status_code in (200, 404, 409, 422), r.text
            elif ids:
                target = ids[step[1] % len(ids)]
                url, body = {
                    "credit": (f"{E}/invoices/{target}/credit_memos", {"amount": step[-1]}),
                    "write_off": (f"{E}/invoices/{target}/write_off", {}),
                }[kind]
                r = api.post(url, headers=account.headers, json=body)
                assert r.status_code in (200, 409, 422), r.text
        api.advance(account, "100d")  # past due dates, late payments, dunning and batches
        applied: dict[str, int] = {}
        for rmt in remittances(api, account):
            assert rmt["applied_amount"] + rmt["unapplied_amount"] == rmt["amount"]
            assert rmt["unapplied_amount"] >= 0
            assert rmt["amount"] == sum(x["amount"] for x in rmt["lines"])
            for x in rmt["lines"]:
                assert x["applied_amount"] + x["unapplied_amount"] == x["amount"]
                for a in x["allocations"]:
                    applied[a["invoice_id"]] = applied.get(a["invoice_id"], 0) + a["amount"]
        for inv_id in ids:
            inv = get(api, account, inv_id)
            figures = [v for k, v in inv.items() if k.endswith("amount") or k == "amount_due"]
            assert all(type(v) is int and v >= 0 for v in figures), inv
            assert inv["applied_amount"] == applied.get(inv_id, 0)
            assert inv["amount_due"] == (
                inv["amount"]
                - inv["credited_amount"]
                - inv["written_off_amount"]
                - inv["applied_amount"]
            )
        deposits = [x for x in lines(api, account) if x["type"] == "payment"]
        every = {x["id"]: x for r in remittances(api, account) for x in r["lines"]}
        assert sorted(x["source_id"] for x in deposits) == sorted(every)
        for line in deposits:
            assert line["gross"] == every[line["source_id"]]["amount"]
            assert type(line["fee"]) is int
            assert line["net"] == line["gross"] - line["fee"]
    finally:
        api.close()


# --- purchase orders on file ------------------------------------------------------------------
def test_an_invoice_naming_a_po_on_file_inherits_its_buyer_and_stays_within_it(
    api: Api, account: Account
) -> None:
    po = {
        "number": "PO-500",
        "buyer": {"name": "Acme Supply Co", "email": "ap+pays_late@acme.test"},
        "amount": 100_000,
    }
    r = api.post(f"{E}/purchase_orders", headers=account.headers, json=po)
    assert (r.status_code, r.json()["status"]) == (201, "open"), r.text
    po_id = r.json()["id"]
    body = invoice_body(number="INV-P1", amount=60_000, po="PO-500")
    del body["buyer"]
    r = api.post(f"{E}/invoices", headers=account.headers, json=body)
    assert r.status_code == 201, r.text
    assert (r.json()["buyer"]["email"], r.json()["behaviour"]) == ("ap+pays_late@acme.test", "late")
    over = invoice_body(number="INV-P2", amount=40_001, po="PO-500")
    r = api.post(f"{E}/invoices", headers=account.headers, json=over)
    assert (r.status_code, r.json()["code"]) == (422, "invalid_amount"), r.text
    r = api.get(f"{E}/purchase_orders/{po_id}", headers=account.headers)
    assert r.json()["invoiced_amount"] == 60_000
    r = api.post(f"{E}/purchase_orders/{po_id}/cancel", headers=account.headers)
    assert r.status_code == 409  # invoiced: credit its invoices instead
    nobody = invoice_body(number="INV-X", po="PO-NONE")
    del nobody["buyer"]
    r = api.post(f"{E}/invoices", headers=account.headers, json=nobody)
    assert r.status_code == 422
    assert r.json()["detail"].startswith("N1")


def test_a_po_nothing_was_invoiced_against_can_be_canceled(api: Api, account: Account) -> None:
    po = {"number": "PO-9", "buyer": {"name": "Acme", "email": "ap@acme.test"}, "amount": 5_000}
    po_id = api.post(f"{E}/purchase_orders", headers=account.headers, json=po).json()["id"]
    r = api.post(f"{E}/purchase_orders/{po_id}/cancel", headers=account.headers)
    assert (r.status_code, r.json()["status"]) == (200, "canceled")
    r = api.post(
        f"{E}/invoices", headers=account.headers, json=invoice_body(po="PO-9", amount=5_000)
    )
    assert r.status_code == 409
    r = api.post(f"{E}/purchase_orders", headers=account.headers, json=po)
    assert r.status_code == 409  # the number is on file already
