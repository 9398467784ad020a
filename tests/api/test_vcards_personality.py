"""The virtual cards personality (`/vcards/v1`): the buyer's AP pays invoices with single-use
virtual cards (on time, late, split, consolidated, expiring, over the limit), the merchant's
processor authorizes and captures them, captures clear later with interchange and scheme fees on
each allocation's settlement line, and refunds go back to the cards; on the same settlements,
events, faults and exports as `/v1`."""

from __future__ import annotations

import re
from typing import Any

from factories import ADMIN, START, Account, Api, build_app
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.clock import ManualClock
from simulator.domain.models import VcardFees
from simulator.domain.vcards import ap_tag, card_fees, over_limit, split_fee

V = "/vcards/v1"
FEE_100K = (100_000 * 263 + 5_000) // 10_000 + 12  # interchange 2.50 % + 10, scheme 0.13 % + 2


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


def post(api: Api, account: Account, path: str, body: Any, status: int = 200) -> dict[str, Any]:
    r = api.post(f"{V}/{path}", headers=account.headers, json=body)
    assert r.status_code == status, r.text
    return dict(r.json())


def issued(api: Api, account: Account, **kw: Any) -> dict[str, Any]:
    inv = post(api, account, "invoices", invoice_body(**kw), 201)
    return post(api, account, f"invoices/{inv['id']}/issue", {})


def get(api: Api, account: Account, path: str) -> dict[str, Any]:
    r = api.get(f"{V}/{path}", headers=account.headers, params={"limit": 100})
    assert r.status_code == 200, r.text
    return dict(r.json())


def lines(api: Api, account: Account) -> list[dict[str, Any]]:
    """Every settlement's lines, each settlement checked to pay exactly its lines."""
    out = []
    for summary in get(api, account, "settlements")["data"]:
        one = get(api, account, f"settlements/{summary['id']}")
        assert one["amount"] == sum(x["net"] for x in one["lines"])
        out.extend(one["lines"])
    return out


def types(api: Api, account: Account) -> list[str]:
    mine = ("invoice", "vcard")
    return [e["type"] for e in api.events(account) if e["type"].split(".")[0] in mine]


# --- the AP's behaviours ----------------------------------------------------------------------
def test_an_ap_paying_on_time_sends_a_card_the_processor_captures_and_it_clears_days_later(
    api: Api, account: Account
) -> None:
    inv = issued(api, account)
    api.advance(account, "30d")  # the due date: 2026-03-31, a Tuesday
    open_ = get(api, account, f"invoices/{inv['id']}")
    assert (open_["status"], open_["pending_amount"], open_["past_due"]) == ("open", 100_000, False)
    ((card,),) = [get(api, account, "cards")["data"]]
    assert (card["status"], card["limit"], card["captured_amount"]) == ("used", 100_000, 100_000)
    api.advance(account, "3d")  # cleared two business days later
    paid = get(api, account, f"invoices/{inv['id']}")
    assert (paid["status"], paid["paid_amount"], paid["amount_due"]) == ("paid", 100_000, 0)
    assert types(api, account) == [
        "invoice.created",
        "invoice.issued",
        "vcard.issued",
        "vcard.authorized",
        "vcard.captured",
        "vcard.cleared",
        "invoice.paid",
    ]
    (allocation,) = paid["allocations"]
    api.advance(account, "5d")
    (line,) = lines(api, account)
    assert line == line | {
        "type": "payment",
        "order_id": inv["id"],
        "source_id": allocation["id"],
        "gross": 100_000,
        "fee": FEE_100K,
        "net": 100_000 - FEE_100K,
    }


def test_a_card_shows_a_token_last4_and_expiry_and_never_a_card_number(
    api: Api, account: Account
) -> None:
    issued(api, account)
    api.advance(account, "30d")
    (card,) = get(api, account, "cards")["data"]
    assert card["token"].startswith("vcard_tok_")
    assert re.fullmatch(r"\d{4}", card["last4"])
    assert (card["exp_month"], card["exp_year"]) == (4, 2026)  # 30 days of validity
    assert not re.search(r"\d{12,19}", str(card))
    assert not re.search(r"\d{12,19}", api.get("/v1/events", headers=account.headers).text)


def test_a_splitting_ap_pays_one_invoice_with_two_cards(api: Api, account: Account) -> None:
    inv = issued(api, account, amount=100_001, tag="splits")
    api.advance(account, "35d")
    paid = get(api, account, f"invoices/{inv['id']}")
    assert paid["status"] == "paid"
    by_card = {a["card_id"]: a["amount"] for a in paid["allocations"]}
    assert sorted(by_card.values()) == [50_000, 50_001]
    assert len(get(api, account, "cards")["data"]) == 2
    api.advance(account, "5d")
    assert sorted(x["gross"] for x in lines(api, account)) == [50_000, 50_001]


def test_a_consolidating_ap_pays_several_invoices_with_one_card_allocated_per_invoice(
    api: Api, account: Account
) -> None:
    one = issued(api, account, number="INV-1", amount=30_000, tag="consolidates")
    two = issued(api, account, number="INV-2", amount=70_000, tag="consolidates")
    api.advance(account, "35d")
    (card,) = get(api, account, "cards")["data"]
    assert [(i["invoice_id"], i["amount"]) for i in card["invoices"]] == [
        (one["id"], 30_000),
        (two["id"], 70_000),
    ]
    (payment,) = get(api, account, "payments")["data"]
    assert payment["amount"] == sum(a["amount"] for a in payment["allocations"]) == 100_000
    assert payment["fee"] == sum(a["fee"] for a in payment["allocations"]) == FEE_100K
    for inv in (one, two):
        assert get(api, account, f"invoices/{inv['id']}")["status"] == "paid"
    api.advance(account, "5d")
    got = {x["order_id"]: (x["gross"], x["source_id"]) for x in lines(api, account)}
    allocs = {a["invoice_id"]: (a["amount"], a["id"]) for a in payment["allocations"]}
    assert got == allocs


def test_a_card_that_expires_unused_makes_the_invoice_overdue_and_the_ap_sends_another(
    api: Api, account: Account
) -> None:
    inv = issued(api, account, tag="card_expires")
    api.advance(account, "30d")
    (card,) = get(api, account, "cards")["data"]
    assert (card["status"], card["processing"]) == ("active", "manual")
    api.advance(account, "3d")
    late = get(api, account, f"invoices/{inv['id']}")
    assert (late["past_due"], late["carded_amount"], late["amount_due"]) == (True, 0, 100_000)
    assert get(api, account, f"cards/{card['id']}")["status"] == "expired"
    api.advance(account, "14d")
    assert get(api, account, f"invoices/{inv['id']}")["status"] == "paid"
    assert [c["status"] for c in get(api, account, "cards")["data"]] == ["used", "expired"]
    assert "vcard.expired" in types(api, account)


def test_an_over_limit_card_declines_the_full_amount_then_pays_what_its_limit_allows(
    api: Api, account: Account
) -> None:
    inv = issued(api, account, tag="over_limit")
    api.advance(account, "35d")
    (card,) = get(api, account, "cards")["data"]
    assert (card["limit"], card["declines"], card["captured_amount"]) == (95_000, 1, 95_000)
    short = get(api, account, f"invoices/{inv['id']}")
    assert (short["paid_amount"], short["amount_due"], short["past_due"]) == (95_000, 5_000, True)
    closed = post(api, account, f"invoices/{inv['id']}/write_off", {})
    assert (closed["status"], closed["amount_due"]) == ("short_paid", 0)
    assert "vcard.declined" in types(api, account)


def test_a_defaulting_ap_never_sends_a_card_and_the_invoice_stays_past_due(
    api: Api, account: Account
) -> None:
    inv = issued(api, account, tag="defaults")
    api.advance(account, "90d")
    assert get(api, account, "cards")["data"] == []
    unpaid = get(api, account, f"invoices/{inv['id']}")
    assert (unpaid["status"], unpaid["amount_due"], unpaid["past_due"]) == ("open", 100_000, True)
    assert unpaid["behaviour"] == "default"
    assert types(api, account)[-1] == "invoice.overdue"


def test_every_card_is_in_the_token_vault_revoked_by_its_capture_or_expired_with_it(
    api: Api, account: Account
) -> None:
    issued(api, account, number="A")  # captured on the due date
    issued(api, account, number="B", tag="card_expires", customer={"external_id": "CUST-2"})
    api.advance(account, "34d")
    cards = {c["status"]: c for c in get(api, account, "cards")["data"]}
    assert set(cards) == {"used", "expired"}
    for status, token_status in (("used", "revoked"), ("expired", "expired")):
        card = cards[status]
        token = get(api, account, f"tokens/{card['vault_token']}")
        assert (token["status"], token["last4"], token["type"]) == (
            token_status,
            card["last4"],
            "card",
        )
        assert not re.search(r"\d{12,19}", str(token))


def test_a_late_ap_leaves_the_invoice_overdue_then_pays_ten_days_later(
    api: Api, account: Account
) -> None:
    inv = issued(api, account, tag="pays_late")
    api.advance(account, "31d")
    assert get(api, account, f"invoices/{inv['id']}")["past_due"] is True
    assert get(api, account, "cards")["data"] == []
    api.advance(account, "14d")
    assert get(api, account, f"invoices/{inv['id']}")["status"] == "paid"


# --- the merchant processes cards itself ------------------------------------------------------
def test_a_manual_merchant_holds_within_the_limit_and_a_declined_hold_is_a_402_problem(
    api: Api, account: Account
) -> None:
    inv = issued(api, account, processing="manual")
    api.advance(account, "30d")
    (card,) = get(api, account, "cards")["data"]
    assert (card["status"], card["available"]) == ("active", 100_000)
    url = f"{V}/cards/{card['id']}/authorize"
    r = api.post(url, headers=account.headers, json={"amount": 100_001})
    assert r.status_code == 402
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "card_over_limit"
    held = post(api, account, f"cards/{card['id']}/authorize", {"amount": 60_000})
    assert (held["authorized_amount"], held["available"]) == (60_000, 40_000)
    payment = post(api, account, f"cards/{card['id']}/capture", {}, 201)
    assert (payment["amount"], payment["status"]) == (60_000, "pending")
    r = api.post(f"{V}/cards/{card['id']}/authorize", headers=account.headers, json={"amount": 1})
    assert (r.status_code, r.json()["code"]) == (402, "card_used")
    # The network records each decline: the card counts them, each is an event.
    assert get(api, account, f"cards/{card['id']}")["declines"] == 2
    assert types(api, account).count("vcard.declined") == 2
    assert get(api, account, f"invoices/{inv['id']}")["amount_due"] == 100_000  # until it clears


def test_a_hold_on_an_expired_card_is_declined(api: Api, account: Account) -> None:
    inv = issued(api, account, processing="manual", tag="pays_late")
    card = post(api, account, "cards", {"invoices": [{"invoice": inv["id"]}], "valid_days": 1}, 201)
    api.advance(account, "2d")
    r = api.post(f"{V}/cards/{card['id']}/authorize", headers=account.headers, json={"amount": 1})
    assert (r.status_code, r.json()["code"]) == (402, "card_expired")


def test_one_capture_may_be_allocated_across_invoices_of_the_same_customer_only(
    api: Api, account: Account
) -> None:
    one = issued(api, account, number="A", amount=40_000, processing="manual", tag="pays_late")
    two = issued(api, account, number="B", amount=60_000, processing="manual", tag="pays_late")
    other = issued(
        api,
        account,
        number="C",
        processing="manual",
        tag="pays_late",
        customer={"external_id": "CUST-2"},
    )
    body = {"invoices": [{"invoice": one["id"]}], "limit": 100_000}
    card = post(api, account, "cards", body, 201)
    post(api, account, f"cards/{card['id']}/authorize", {"amount": 100_000})
    wrong = {"allocations": [{"invoice": other["id"], "amount": 100_000}]}
    r = api.post(f"{V}/cards/{card['id']}/capture", headers=account.headers, json=wrong)
    assert r.status_code == 409, r.text
    both = {
        "allocations": [
            {"invoice": one["id"], "amount": 40_000},
            {"invoice": two["id"], "amount": 60_000},
        ]
    }
    payment = post(api, account, f"cards/{card['id']}/capture", both, 201)
    assert [(a["invoice_id"], a["amount"]) for a in payment["allocations"]] == [
        (one["id"], 40_000),
        (two["id"], 60_000),
    ]
    api.advance(account, "4d")
    for inv in (one, two):
        assert get(api, account, f"invoices/{inv['id']}")["status"] == "paid"


def test_a_credit_note_after_payment_refunds_the_card_with_a_negative_line(
    api: Api, account: Account
) -> None:
    inv = issued(api, account)
    api.advance(account, "30d")
    r = api.post(
        f"{V}/invoices/{inv['id']}/credit_notes", headers=account.headers, json={"amount": 10_000}
    )
    assert (r.status_code, r.json()["detail"]) == (  # still clearing: nothing to refund yet
        409,
        f"invoice {inv['id']} has card payments still clearing or cards not captured yet: "
        "credit at most 0 until they are done",
    )
    api.advance(account, "3d")
    credited = post(api, account, f"invoices/{inv['id']}/credit_notes", {"amount": 10_000})
    assert (credited["refunded_amount"], credited["amount_due"]) == (10_000, 0)
    (payment,) = get(api, account, "payments")["data"]
    (refund,) = payment["refunds"]
    api.advance(account, "5d")
    refund_lines = [x for x in lines(api, account) if x["type"] == "refund"]
    assert [(x["source_id"], x["gross"], x["fee"]) for x in refund_lines] == [
        (refund["id"], -10_000, 0)
    ]
    assert "vcard.refunded" in types(api, account)


def test_an_idempotency_key_replays_a_card_instead_of_issuing_two(
    api: Api, account: Account
) -> None:
    inv = issued(api, account, processing="manual", tag="pays_late")
    h = {**account.headers, "Idempotency-Key": "card-1"}
    body = {"invoices": [{"invoice": inv["id"]}]}
    first, second = (api.post(f"{V}/cards", headers=h, json=body) for _ in range(2))
    assert first.json() == second.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert len(get(api, account, "cards")["data"]) == 1


def test_the_same_seed_gives_the_same_cards() -> None:
    def run() -> list[tuple[str, str, str]]:
        clock = ManualClock(START)
        api = Api(build_app(clock=clock), clock)
        try:
            account = api.new_account(seed=11)
            issued(api, account, tag="splits")
            api.advance(account, "31d")
            return [(c["id"], c["token"], c["last4"]) for c in get(api, account, "cards")["data"]]
        finally:
            api.close()

    first = run()
    assert len(first) == 2
    assert run() == first


# --- shared machinery ---------------------------------------------------------------------------
def test_a_fault_rule_matches_a_card_operation_by_id_and_by_path(api: Api) -> None:
    for seed, match in ((1, {"operation": "vcards.createInvoice"}), (2, {"path": "/vcards/v1/*"})):
        account = api.new_account(seed=seed)
        rule = {"account": account.id, "match": match, "effect": {"type": "status", "status": 503}}
        r = api.post("/_sandbox/faults", headers=ADMIN, json=rule)
        assert r.status_code == 201, r.text
        r = api.post(f"{V}/invoices", headers=account.headers, json=invoice_body())
        assert r.status_code == 503
        assert api.get("/v1/events", headers=account.headers).status_code == 200


def test_the_export_holds_invoices_cards_and_card_payments(api: Api, account: Account) -> None:
    inv = issued(api, account, tag="consolidates")
    api.advance(account, "35d")
    r = api.post("/v1/exports", headers=account.headers, json={"format": "jsonl"})
    assert r.status_code == 201, r.text
    exp = r.json()["id"]

    def file(name: str) -> str:
        return api.get(f"/v1/exports/{exp}/files/{name}.jsonl", headers=account.headers).text

    assert f'"id":"{inv["id"]}"' in file("vcard_invoices")
    assert '"token":"vcard_tok_' in file("vcards")
    assert f'"invoice_id":"{inv["id"]}"' in file("vcard_allocations")


def test_the_published_document_is_served_and_names_every_card_operation(api: Api) -> None:
    r = api.get("/vcards/openapi.json")
    assert r.status_code == 200
    ids = {op["operationId"] for path in r.json()["paths"].values() for op in path.values()}
    assert {"vcards.issueCard", "vcards.authorizeCard", "vcards.captureCard"} <= ids
    assert {"vcard.cleared", "invoice.overdue"} <= set(r.json()["webhooks"])


# --- pure rules -------------------------------------------------------------------------------
@given(st.integers(0, 10**12))
def test_card_fees_are_whole_numbers_never_above_the_amount(amount: int) -> None:
    interchange, scheme = card_fees(amount, VcardFees())
    assert type(interchange) is int
    assert type(scheme) is int
    assert 0 <= interchange + scheme <= amount


@given(st.lists(st.integers(1, 10**9), min_size=1, max_size=8), st.data())
def test_a_split_fee_sums_exactly_and_no_share_is_above_its_amount(
    amounts: list[int], data: st.DataObject
) -> None:
    fee = data.draw(st.integers(0, sum(amounts)))
    shares = split_fee(fee, amounts)
    assert sum(shares) == fee
    assert all(0 <= s <= a for s, a in zip(shares, amounts, strict=True))


@given(st.integers(1, 10**12))
def test_an_over_limit_card_is_short_of_what_is_due_unless_one_unit_is_due(due: int) -> None:
    assert 1 <= over_limit(due) <= due
    assert (over_limit(due) < due) == (due > 1)


def test_ap_behaviour_comes_from_magic_values() -> None:
    assert ap_tag("ap+splits@x.test", "X") == "split"
    assert ap_tag("ap@x.test", "X [card_expires]") == "expires"
    assert ap_tag("ap@x.test", "X") is None


# --- property: money is whole, payouts equal lines, allocations equal captures, limits hold -----
_STEP = st.one_of(
    st.tuples(
        st.just("new"),
        st.sampled_from(
            ["pays_on_time", "pays_late", "splits", "consolidates", "card_expires", "over_limit"]
        ),
        st.sampled_from(["automatic", "manual"]),
        st.integers(1, 500_000),
    ),
    st.tuples(st.just("issue"), st.integers(0, 9), st.integers(1, 500_000)),
    st.tuples(st.just("credit"), st.integers(0, 9), st.integers(1, 500_000)),
    st.tuples(st.just("card"), st.integers(0, 9), st.integers(1, 500_000)),
    st.tuples(st.just("authorize"), st.integers(0, 9), st.integers(1, 500_000)),
    st.tuples(st.just("capture"), st.integers(0, 9), st.integers(1, 500_000)),
    st.tuples(st.just("advance"), st.sampled_from(["1d", "3d", "12d", "31d"])),
)


@settings(max_examples=20, deadline=None)
@given(st.lists(_STEP, min_size=1, max_size=14))
def test_whatever_happens_money_is_whole_payouts_equal_lines_and_cards_hold_their_limits(
    steps: list[tuple[Any, ...]],
) -> None:
    clock = ManualClock(START)
    api = Api(build_app(clock=clock), clock)
    try:
        account = api.new_account(seed=3)
        ids: list[str] = []
        for step in steps:
            kind = step[0]
            cards = [c["id"] for c in get(api, account, "cards")["data"]]
            if kind == "new":
                _, tag, processing, amount = step
                inv = post(
                    api,
                    account,
                    "invoices",
                    invoice_body(f"N{len(ids)}", amount, tag, processing=processing),
                    201,
                )
                ids.append(inv["id"])
            elif kind == "advance":
                api.advance(account, step[1])
            elif ids:
                target = ids[step[1] % len(ids)]
                card = cards[step[1] % len(cards)] if cards else "vcard_none"
                url, body = {
                    "issue": (f"invoices/{target}/issue", {"amount": step[-1]}),
                    "credit": (f"invoices/{target}/credit_notes", {"amount": step[-1]}),
                    "card": ("cards", {"invoices": [{"invoice": target, "amount": step[-1]}]}),
                    "authorize": (f"cards/{card}/authorize", {"amount": step[-1]}),
                    "capture": (f"cards/{card}/capture", {}),
                }[kind]
                r = api.post(f"{V}/{url}", headers=account.headers, json=body)
                assert r.status_code in (200, 201, 402, 404, 409, 422), r.text
        api.advance(account, "80d")  # past every due date, late card, expiry, clearing, batch
        for inv_id in ids:
            inv = get(api, account, f"invoices/{inv_id}")
            figures = [v for k, v in inv.items() if k.endswith("amount") or k == "amount_due"]
            assert all(type(v) is int and v >= 0 for v in figures), inv
            assert inv["amount_due"] == (
                inv["issued_amount"]
                - inv["credited_amount"]
                - inv["written_off_amount"]
                - (inv["paid_amount"] - inv["refunded_amount"])
            )
            cleared = sum(a["amount"] for a in inv["allocations"] if a["cleared"])
            assert inv["paid_amount"] == cleared
        for card in get(api, account, "cards")["data"]:
            assert card["authorized_amount"] + card["captured_amount"] <= card["limit"]
        payments = get(api, account, "payments")["data"]
        for payment in payments:
            assert payment["amount"] == sum(a["amount"] for a in payment["allocations"])
            assert payment["fee"] == sum(a["fee"] for a in payment["allocations"])
            card = get(api, account, f"cards/{payment['card_id']}")
            assert payment["amount"] == card["captured_amount"] <= card["limit"]
        allocations = {
            a["id"]: a for p in payments if p["status"] == "cleared" for a in p["allocations"]
        }
        got = [x for x in lines(api, account) if x["type"] == "payment"]
        assert sorted(x["source_id"] for x in got) == sorted(allocations)
        for line in got:
            allocation = allocations[line["source_id"]]
            assert (line["gross"], line["fee"]) == (allocation["amount"], allocation["fee"])
            assert line["net"] == line["gross"] - line["fee"]
    finally:
        api.close()
