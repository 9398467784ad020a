"""Money after the checkout, on the account clock: repayments, settlements, disputes, drift.

The test clock starts on Sunday 2026-03-01 09:00 UTC, so a capture at the start joins Monday
2026-03-02's batch, which settles at Tuesday 00:00 and is paid out on Wednesday (T+2).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from factories import ADMIN, Account, Api

from simulator.app import SandbankApp

Json = dict[str, Any]


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def captured(api: Api, account: Account, amount: int, terms: str = "net30", **kw: Any) -> Json:
    order = api.approved_order(account, amount, terms=terms, **kw)
    ok(api.post(f"/v1/orders/{order['id']}/captures", headers=account.headers, json={}), 201)
    return api.order(account, order["id"])


def settlements(api: Api, account: Account, **params: Any) -> list[Json]:
    out: list[Json] = []
    for page in api.walk("/v1/settlements", account, **params):
        out.extend(page)
    return out[::-1]  # oldest first


def settlement(api: Api, account: Account, sid: str) -> Json:
    return ok(api.get(f"/v1/settlements/{sid}", headers=account.headers))


def events_of(api: Api, account: Account, prefix: str) -> list[Json]:
    return [e for e in api.events(account) if e["type"].startswith(prefix)]


def dispute(api: Api, order_id: str, **body: Any) -> Json:
    return ok(api.post(f"/_sandbox/orders/{order_id}/disputes", headers=ADMIN, json=body), 201)


# --- repayment schedules and buyer outcomes ---------------------------------------------------
def test_installments_split_the_capture_exactly_with_monthly_due_dates(
    api: Api, account: Account
) -> None:
    order = captured(api, account, 100_001, terms="installments_3")
    repayments = order["repayments"]
    assert [r["amount"] for r in repayments] == [33_334, 33_334, 33_333]
    assert sum(r["amount"] for r in repayments) == 100_001
    assert [r["due_at"] for r in repayments] == [
        "2026-03-31T09:00:00Z",
        "2026-04-30T09:00:00Z",
        "2026-05-30T09:00:00Z",
    ]
    assert {(r["status"], r["installments"]) for r in repayments} == {("scheduled", 3)}
    assert [r["installment"] for r in repayments] == [1, 2, 3]


def test_the_buyer_pane_shows_credit_usage_and_upcoming_repayments(
    api: Api, account: Account
) -> None:
    order = captured(api, account, 60_000, terms="installments_3")
    # Another order of the same buyer, authorized, not captured: a hold.
    pending = api.approved_order(account, 10_000, buyer_id=order["buyer_id"], buyer=None)
    buyer = api.buyer(account, order["buyer_id"])
    usage = buyer["credit_usage"]
    assert usage["used"] == 70_000
    assert (usage["outstanding"], usage["overdue"], usage["defaulted"]) == (60_000, 0, 0)
    upcoming = buyer["upcoming_repayments"]
    assert [r["amount"] for r in upcoming] == [20_000, 20_000, 20_000]
    assert upcoming == sorted(upcoming, key=lambda r: r["due_at"])
    assert pending["buyer_id"] == order["buyer_id"]
    api.advance(account, "31d")  # the first installment is paid; the hold lapsed
    after = api.buyer(account, order["buyer_id"])
    assert after["credit_usage"]["used"] == 40_000
    assert len(after["upcoming_repayments"]) == 2


def test_an_on_time_payment_gives_the_credit_back_with_an_event(api: Api, account: Account) -> None:
    order = captured(api, account, 50_000, terms="net60")
    api.advance(account, "59d")
    assert api.order(account, order["id"])["repayments"][0]["status"] == "scheduled"
    api.advance(account, "1d")
    repayment = api.order(account, order["id"])["repayments"][0]
    assert (repayment["status"], repayment["paid_at"], repayment["late_fee"]) == (
        "paid",
        "2026-04-30T09:00:00Z",
        0,
    )
    paid = events_of(api, account, "buyer.payment")
    assert [(e["type"], e["object_type"], e["data"]["id"]) for e in paid] == [
        ("buyer.payment.succeeded", "repayment", repayment["id"])
    ]
    assert api.buyer(account, order["buyer_id"])["credit_line"]["used"] == 0


def test_a_late_payer_pays_after_the_grace_days_with_a_late_fee(api: Api, account: Account) -> None:
    order = captured(api, account, 40_000, tag="approve+pays_late")
    api.advance(account, "30d")
    late = api.order(account, order["id"])["repayments"][0]
    assert (late["status"], late["late_fee"]) == ("late", 600)  # 1.5 % of 400.00
    assert api.buyer(account, order["buyer_id"])["credit_usage"]["overdue"] == 40_000
    api.advance(account, "10d")
    paid = api.order(account, order["id"])["repayments"][0]
    assert (paid["status"], paid["paid_at"]) == ("paid", "2026-04-10T09:00:00Z")
    assert [e["type"] for e in events_of(api, account, "buyer.payment")] == [
        "buyer.payment.late",
        "buyer.payment.succeeded",
    ]


def test_a_default_suspends_the_buyer_but_not_the_merchants_payout(
    api: Api, account: Account
) -> None:
    defaulter = captured(api, account, 30_000, tag="approve+defaults")
    api.advance(account, "61d")
    repayment = api.order(account, defaulter["id"])["repayments"][0]
    assert (repayment["status"], repayment["defaulted_at"]) == (
        "defaulted",
        "2026-04-30T09:00:00Z",
    )
    buyer = api.buyer(account, defaulter["buyer_id"])
    assert buyer["credit_line"]["status"] == "suspended"
    assert (buyer["credit_usage"]["defaulted"], buyer["credit_line"]["used"]) == (30_000, 30_000)
    assert [e["type"] for e in events_of(api, account, "buyer.payment")] == [
        "buyer.payment.late",
        "buyer.payment.defaulted",
    ]
    # The merchant was paid in full, less the fee, on the normal schedule.
    (paid,) = settlements(api, account)
    assert (paid["amount"], paid["status"]) == (30_000 - 870, "paid")
    # A suspended buyer gets no new credit.
    chk = api.checkout(account, 1_000, buyer_id=defaulter["buyer_id"], buyer=None)
    assert api.approve(chk["id"])["status"] == "declined"


def fresh(make_app: Callable[..., SandbankApp], api: Api) -> Api:
    """Another app on the same wall clock: the same requests give the same ids there."""
    return Api(make_app(), api.clock)


def test_seeded_probabilities_decide_buyer_behaviour_reproducibly(
    make_app: Callable[..., SandbankApp], api: Api
) -> None:
    def outcome(seed: int) -> list[str]:
        api = fresh(make_app, api_)
        account = api.new_account(seed=seed, late_probability=0.5, default_probability=0.25)
        orders = [captured(api, account, 10_000, tag="approve") for _ in range(6)]
        api.advance(account, "70d")
        return [api.order(account, o["id"])["repayments"][0]["status"] for o in orders]

    api_ = api
    first = outcome(11)
    assert first == outcome(11)
    assert set(first) <= {"paid", "defaulted"}
    assert "defaulted" in first + outcome(12) + outcome(13)


def test_a_refund_takes_the_last_installments_first_and_releases_their_credit(
    api: Api, account: Account
) -> None:
    order = captured(api, account, 90_000, terms="installments_3")
    ok(
        api.post(
            f"/v1/orders/{order['id']}/refunds", headers=account.headers, json={"amount": 40_000}
        ),
        201,
    )
    after = api.order(account, order["id"])
    assert [(r["amount"], r["status"]) for r in after["repayments"]] == [
        (30_000, "scheduled"),
        (20_000, "scheduled"),
        (0, "canceled"),
    ]
    assert api.buyer(account, order["buyer_id"])["credit_line"]["used"] == 50_000


# --- settlements ------------------------------------------------------------------------------
def test_a_business_days_captures_are_paid_out_t_plus_two_less_the_discount_fee(
    api: Api, account: Account
) -> None:
    net30 = captured(api, account, 100_000)  # Sunday: joins Monday's batch
    net12 = captured(api, account, 100_000, terms="installments_12")
    api.advance(account, "1d")  # Monday 09:00: nothing settled yet
    assert settlements(api, account) == []
    api.advance(account, "15h")  # Tuesday 00:00: Monday's batch
    (created,) = settlements(api, account)
    assert (created["status"], created["batch_date"], created["payout_date"]) == (
        "pending",
        "2026-03-02",
        "2026-03-04",
    )
    assert (created["gross"], created["fees"], created["amount"]) == (
        200_000,
        2_900 + 4_500,
        200_000 - 7_400,
    )
    full = settlement(api, account, created["id"])
    assert sum(x["net"] for x in full["lines"]) == full["amount"]
    assert {(x["order_id"], x["type"], x["fee"]) for x in full["lines"]} == {
        (net30["id"], "capture", 2_900),
        (net12["id"], "capture", 4_500),
    }
    api.advance(account, "1d")  # Wednesday 00:00: paid
    (paid,) = settlements(api, account, status="paid")
    assert (paid["id"], paid["paid_at"]) == (created["id"], "2026-03-04T00:00:00Z")
    assert [e["type"] for e in events_of(api, account, "settlement.")] == [
        "settlement.created",
        "settlement.paid",
    ]


def test_the_discount_fee_and_payout_delay_are_per_account_settings(api: Api) -> None:
    account = api.new_account(
        seed=3, settlement_delay_days=1, discount_fee_bps={"net30": 100, "net60": 0}
    )
    captured(api, account, 10_050)
    api.advance(account, "3d")
    (paid,) = settlements(api, account)
    assert (paid["fees"], paid["amount"], paid["payout_date"]) == (101, 9_949, "2026-03-03")


def test_weekend_movements_join_mondays_batch(api: Api, account: Account) -> None:
    captured(api, account, 10_000)  # Sunday
    api.advance(account, "6d")  # Saturday
    captured(api, account, 20_000)
    api.advance(account, "4d")
    by_day = {x["batch_date"]: x["gross"] for x in settlements(api, account)}
    assert by_day == {"2026-03-02": 10_000, "2026-03-09": 20_000}


def test_a_negative_day_is_carried_forward_and_no_payout_is_negative(
    api: Api, account: Account
) -> None:
    order = captured(api, account, 50_000)
    api.advance(account, "2d")  # Tuesday: Monday's batch settled
    ok(
        api.post(f"/v1/orders/{order['id']}/refunds", headers=account.headers, json={}),
        201,
    )
    api.advance(account, "1d")  # Wednesday 00:00... Tuesday's batch: -50,000
    captured(api, account, 80_000)
    api.advance(account, "2d")
    first, deficit, recovered = settlements(api, account)
    assert first["amount"] == 50_000 - 1_450
    assert deficit["amount"] == 0
    lines = settlement(api, account, deficit["id"])["lines"]
    assert [(x["type"], x["net"]) for x in lines] == [
        ("refund", -50_000),
        ("carry_forward", 50_000),
    ]
    carried = settlement(api, account, recovered["id"])["lines"]
    assert ("carry_forward", -50_000) in [(x["type"], x["net"]) for x in carried]
    assert recovered["amount"] == 80_000 - 2_320 - 50_000
    assert all(x["amount"] >= 0 for x in (first, deficit, recovered))


def test_the_report_downloads_as_csv_and_json_lines_with_the_documented_columns(
    api: Api, account: Account
) -> None:
    captured(api, account, 25_000)
    api.advance(account, "2d")
    (s,) = settlements(api, account)
    csv_r = api.get(f"/v1/settlements/{s['id']}/report", headers=account.headers)
    assert csv_r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(csv_r.text)))
    columns = [
        "settlement_id",
        "line_id",
        "type",
        "order_id",
        "source_id",
        "currency",
        "gross",
        "fee",
        "net",
        "batch_date",
        "created_at",
    ]
    assert csv_r.text.splitlines()[0] == ",".join(columns)
    jl = api.get(
        f"/v1/settlements/{s['id']}/report", headers=account.headers, params={"format": "jsonl"}
    )
    assert jl.headers["content-type"].startswith("application/x-ndjson")
    records = [json.loads(line) for line in jl.text.splitlines()]
    assert [list(r) for r in records] == [columns]
    assert sum(int(r["net"]) for r in rows) == sum(r["net"] for r in records) == s["amount"]
    bad = api.get(
        f"/v1/settlements/{s['id']}/report", headers=account.headers, params={"format": "xml"}
    )
    assert bad.status_code == 422


def test_unknown_settlements_and_disputes_are_404(api: Api, account: Account) -> None:
    for path in (
        "/v1/settlements/stl_nope",
        "/v1/settlements/stl_nope/report",
        "/v1/disputes/dp_nope",
    ):
        r = api.get(path, headers=account.headers)
        assert r.status_code == 404, path
        assert r.headers["content-type"] == "application/problem+json"


def test_other_accounts_settlements_are_invisible(api: Api, account: Account) -> None:
    captured(api, account, 10_000)
    api.advance(account, "2d")
    (s,) = settlements(api, account)
    other = api.new_account(seed=99)
    assert api.get(f"/v1/settlements/{s['id']}", headers=other.headers).status_code == 404
    assert settlements(api, other) == []


# --- disputes ---------------------------------------------------------------------------------
def test_a_dispute_holds_its_amount_and_a_win_gives_it_back(api: Api, account: Account) -> None:
    order = captured(api, account, 60_000)
    opened = dispute(api, order["id"], reason="product_not_received", amount=20_000)
    assert (opened["status"], opened["respond_by"]) == ("needs_response", "2026-03-08T09:00:00Z")
    r = api.post(
        f"/v1/disputes/{opened['id']}/evidence",
        headers=account.headers,
        json={"evidence": {"tracking": "1Z999 delivered, signed +win"}},
    )
    reviewed = ok(r)
    assert (reviewed["status"], reviewed["decides_at"]) == ("under_review", "2026-03-15T09:00:00Z")
    api.advance(account, "16d")  # decided Sunday the 15th; Monday's batch settles
    assert ok(api.get(f"/v1/disputes/{opened['id']}", headers=account.headers))["status"] == "won"
    lines = [
        x for s in settlements(api, account) for x in settlement(api, account, s["id"])["lines"]
    ]
    assert [(x["type"], x["net"]) for x in lines if x["source_id"] == opened["id"]] == [
        ("dispute", -20_000),
        ("dispute_reversal", 20_000),
    ]
    assert [e["type"] for e in events_of(api, account, "dispute.")] == [
        "dispute.created",
        "dispute.updated",
        "dispute.won",
    ]


def test_an_accepted_or_unanswered_dispute_is_lost_and_relieves_the_buyer(
    api: Api, account: Account
) -> None:
    order = captured(api, account, 60_000)
    accepted = dispute(api, order["id"], amount=10_000)
    lost = ok(api.post(f"/v1/disputes/{accepted['id']}/accept", headers=account.headers))
    assert (lost["status"], lost["accepted"]) == ("lost", True)
    ignored = dispute(api, order["id"], amount=5_000)
    api.advance(account, "8d")
    expired = ok(api.get(f"/v1/disputes/{ignored['id']}", headers=account.headers))
    assert (expired["status"], expired["accepted"]) == ("lost", False)
    # The buyer owes only what was not lost: 45,000.
    assert api.order(account, order["id"])["repayments"][0]["amount"] == 45_000
    assert api.buyer(account, order["buyer_id"])["credit_line"]["used"] == 45_000
    late = api.post(
        f"/v1/disputes/{ignored['id']}/evidence",
        headers=account.headers,
        json={"evidence": {"note": "too late"}},
    )
    assert late.status_code == 409


def test_a_dispute_needs_captured_money(api: Api, account: Account) -> None:
    order = api.approved_order(account, 10_000)
    r = api.post(f"/_sandbox/orders/{order['id']}/disputes", headers=ADMIN, json={})
    assert r.status_code == 409
    done = captured(api, account, 10_000)
    too_much = api.post(
        f"/_sandbox/orders/{done['id']}/disputes", headers=ADMIN, json={"amount": 10_001}
    )
    assert too_much.status_code == 422
    dispute(api, done["id"])  # all of it
    again = api.post(f"/_sandbox/orders/{done['id']}/disputes", headers=ADMIN, json={})
    assert again.status_code == 409
    listed = ok(api.get("/v1/disputes", headers=account.headers, params={"order_id": done["id"]}))
    assert [d["amount"] for d in listed["data"]] == [10_000]


def test_evidence_without_a_magic_value_is_decided_by_the_seeded_dice(
    make_app: Callable[..., SandbankApp], api: Api
) -> None:
    def outcomes(seed: int) -> list[str]:
        api = fresh(make_app, api_)
        account = api.new_account(seed=seed)
        order = captured(api, account, 80_000)
        ids = [dispute(api, order["id"], amount=10_000)["id"] for _ in range(6)]
        for did in ids:
            ok(
                api.post(
                    f"/v1/disputes/{did}/evidence",
                    headers=account.headers,
                    json={"evidence": {"invoice": "INV-1"}},
                )
            )
        api.advance(account, "15d")
        return [
            ok(api.get(f"/v1/disputes/{did}", headers=account.headers))["status"] for did in ids
        ]

    api_ = api
    first = outcomes(5)
    assert first == outcomes(5)
    assert set(first + outcomes(6)) == {"won", "lost"}


# --- settlement-report drift --------------------------------------------------------------------
def drift(api: Api, account: Account, **body: Any) -> Json:
    return ok(
        api.put(f"/_sandbox/accounts/{account.id}/settlement_drift", headers=ADMIN, json=body)
    )


def two_order_batch(api: Api, account: Account) -> tuple[Json, Json]:
    """Two captures in one batch, settled: (settlement as reported, true lines by id)."""
    captured(api, account, 30_000)
    captured(api, account, 70_000)
    api.advance(account, "2d")
    (s,) = settlements(api, account)
    return settlement(api, account, s["id"]), s


@pytest.mark.parametrize(
    "kind", ["missing_line", "duplicate_line", "off_by_one_cent", "late_line", "unknown_order"]
)
def test_each_drift_kind_makes_the_report_disagree_with_the_payout_and_is_recorded(
    api: Api, account: Account, kind: str
) -> None:
    assert drift(api, account, **{kind: 1})["settings"][kind] == 1
    reported, _ = two_order_batch(api, account)
    state = ok(api.get(f"/_sandbox/accounts/{account.id}/settlement_drift", headers=ADMIN))
    (injected,) = state["injected"]
    assert (injected["kind"], injected["settlement_id"]) == (kind, reported["id"])
    assert state["settings"][kind] == 0  # the count was used up
    assert sum(x["net"] for x in reported["lines"]) != reported["amount"]
    ids = [x["id"] for x in reported["lines"]]
    if kind in ("missing_line", "late_line"):
        assert injected["line_id"] not in ids
    elif kind == "duplicate_line":
        assert ids.count(injected["line_id"]) == 2
    elif kind == "off_by_one_cent":
        (line,) = [x for x in reported["lines"] if x["id"] == injected["line_id"]]
        assert line["net"] == line["gross"] - line["fee"]
    else:
        r = api.get(f"/v1/orders/{injected['order_id']}", headers=account.headers)
        assert r.status_code == 404
    if kind == "late_line":
        assert state["held_back_lines"] == 1
        captured(api, account, 5_000)
        api.advance(account, "1d")
        latest = settlements(api, account)[-1]
        later = settlement(api, account, latest["id"])
        (arrived,) = [x for x in later["lines"] if x["id"] == injected["line_id"]]
        assert arrived["settlement_id"] == later["id"]  # as the report file says too


def test_two_drifts_of_one_report_never_deviate_the_same_line(api: Api) -> None:
    """A line reported twice *and* a cent off would hide one deviation from the reconciliation
    that must find each: every drift of a report picks a line no other drift touched."""
    for seed in range(1, 7):
        account = api.new_account(seed=seed)
        drift(api, account, duplicate_line=1, off_by_one_cent=1)
        reported, _ = two_order_batch(api, account)
        state = ok(api.get(f"/_sandbox/accounts/{account.id}/settlement_drift", headers=ADMIN))
        lines = [x["line_id"] for x in state["injected"]]
        assert len(lines) == len(set(lines)) == 2, (seed, state["injected"])
        (dup,) = [x["line_id"] for x in state["injected"] if x["kind"] == "duplicate_line"]
        copies = [x for x in reported["lines"] if x["id"] == dup]
        assert len(copies) == 2
        assert copies[0] == copies[1]  # the duplicate is the true line, twice


def test_a_drift_probability_of_one_hits_every_settlement(api: Api, account: Account) -> None:
    drift(api, account, duplicate_line=1.0)
    for _ in range(3):
        captured(api, account, 10_000)
        api.advance(account, "1d")
    api.advance(account, "2d")
    state = ok(api.get(f"/_sandbox/accounts/{account.id}/settlement_drift", headers=ADMIN))
    # Sunday's and Monday's captures share a batch: two settlements, both hit.
    assert len(state["injected"]) == len(settlements(api, account)) == 2
    assert state["settings"]["duplicate_line"] == 1.0


def test_drift_switches_refuse_what_they_cannot_mean(api: Api, account: Account) -> None:
    for body in (
        {"missing_line": -1},
        {"missing_line": 1.5},
        {"missing_line": True},
        {"missing_line": "1"},
        {"sideways_line": 1},
    ):
        r = api.put(f"/_sandbox/accounts/{account.id}/settlement_drift", headers=ADMIN, json=body)
        assert r.status_code == 422, body
        assert r.headers["content-type"] == "application/problem+json"


def test_the_same_seed_and_requests_give_the_same_settlements_and_drift(
    make_app: Callable[..., SandbankApp], api: Api
) -> None:
    def run(seed: int) -> list[Json]:
        api = fresh(make_app, api_)
        account = api.new_account(seed=seed)
        drift(api, account, missing_line=0.5, off_by_one_cent=0.5, unknown_order=0.5)
        for n in range(4):
            captured(api, account, 10_000 + n)
            api.advance(account, "1d")
        api.advance(account, "3d")
        return [settlement(api, account, s["id"]) for s in settlements(api, account)] + [
            ok(api.get(f"/_sandbox/accounts/{account.id}/settlement_drift", headers=ADMIN))[
                "injected"
            ]
        ]

    api_ = api
    assert run(21) == run(21)


def test_the_account_dump_includes_money_objects(api: Api, account: Account) -> None:
    order = captured(api, account, 10_000)
    dispute(api, order["id"], amount=1_000)
    api.advance(account, "2d")
    dumped = ok(api.get(f"/_sandbox/accounts/{account.id}/dump", headers=ADMIN))
    kinds = {group["kind"]: len(group["objects"]) for group in dumped["money"]}
    # the buyer's credit line token is in the vault (the same table of account objects)
    assert kinds == {"line": 2, "settlement": 1, "dispute": 1, "token": 1}
    (stored,) = [o for o in dumped["orders"] if o["id"] == order["id"]]
    assert stored["repayments"][0]["behaviour"] == "on_time"  # the plan, visible here only


def test_a_refund_cannot_take_back_money_a_dispute_holds(api: Api, account: Account) -> None:
    order = captured(api, account, 10_000)
    dispute(api, order["id"], amount=6_000)
    url = f"/v1/orders/{order['id']}/refunds"
    too_much = api.post(url, headers=account.headers, json={"amount": 4_001})
    assert too_much.status_code == 422
    assert too_much.json()["code"] == "amount_exceeds_refundable"
    assert "6000 of what was captured is disputed" in too_much.json()["detail"]
    rest = ok(api.post(url, headers=account.headers, json={}), 201)
    assert rest["amount"] == 4_000
    assert api.post(url, headers=account.headers, json={}).status_code == 422


def test_a_carried_deficit_waits_for_the_next_movement_without_empty_payouts(
    api: Api, account: Account
) -> None:
    order = captured(api, account, 50_000)
    api.advance(account, "2d")
    ok(api.post(f"/v1/orders/{order['id']}/refunds", headers=account.headers, json={}), 201)
    api.advance(account, "20d")  # three weeks with nothing but the deficit
    assert [s["amount"] for s in settlements(api, account)] == [50_000 - 1_450, 0]
    captured(api, account, 90_000)
    api.advance(account, "1d")
    latest = settlements(api, account)[-1]
    assert latest["amount"] == 90_000 - 2_610 - 50_000


def test_advancing_to_the_same_instant_twice_runs_everything_once(
    api: Api, account: Account
) -> None:
    captured(api, account, 10_000)
    target = {"to": "2026-04-15T00:00:00Z"}
    url = f"/_sandbox/accounts/{account.id}/clock/advance"
    first = ok(api.post(url, headers=ADMIN, json=target))
    events = api.events(account)
    again = ok(api.post(url, headers=ADMIN, json=target))
    assert first["now"] == again["now"] == "2026-04-15T00:00:00Z"
    assert api.events(account) == events
    assert [e["type"] for e in events].count("buyer.payment.succeeded") == 1
    assert len(settlements(api, account)) == 1
