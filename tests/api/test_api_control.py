"""The control plane: the account clock and what falls due on it, reviews, reset, seed, dump,
and determinism of whole runs."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import orjson
import pytest
from factories import ADMIN, START, Account, Api, build_app, business, checkout_body

from simulator.clock import ManualClock

Order = Callable[..., dict[str, Any]]


def clock(api: Api, account: Account) -> dict[str, Any]:
    return dict(api.get(f"/_sandbox/accounts/{account.id}/clock", headers=ADMIN).json())


def review_order(api: Api, account: Account, tag: str) -> dict[str, Any]:
    chk = api.checkout(account, tag=tag)
    done = api.approve(chk["id"])
    assert (done["status"], done["decision"]["outcome"]) == ("completed", "review")
    order = api.order(account, done["order_id"])
    assert order["status"] == "pending_review"
    return order


def test_checkout_expires_after_24_hours(api: Api, account: Account) -> None:
    chk = api.checkout(account)
    assert chk["expires_at"] == "2026-03-02T09:00:00Z"
    api.advance(account, "23h59m")
    assert api.get(f"/v1/checkouts/{chk['id']}", headers=account.headers).json()["status"] == "open"
    api.advance(account, "1m")
    got = api.get(f"/v1/checkouts/{chk['id']}", headers=account.headers).json()
    assert got["status"] == "expired"
    expired = [e for e in api.events(account) if e["type"] == "checkout.expired"]
    assert len(expired) == 1
    assert expired[0]["object_id"] == chk["id"]
    assert expired[0]["created_at"] == "2026-03-02T09:00:00Z"  # at its due time, not the target
    assert expired[0]["data"]["status"] == "expired"
    r = api.post(f"/_sandbox/checkouts/{chk['id']}/approve", headers=ADMIN, json={})
    assert (r.status_code, r.json()["code"]) == (409, "invalid_transition")


def test_the_wall_clock_moving_also_expires_checkouts(api: Api, account: Account) -> None:
    chk = api.checkout(account)
    api.clock.advance(timedelta(hours=25))
    got = api.get(f"/v1/checkouts/{chk['id']}", headers=account.headers).json()
    assert got["status"] == "expired"


def test_plus_review_approves_after_the_review_delay(api: Api, account: Account) -> None:
    order = review_order(api, account, "review")
    assert order["review"]["resolves_at"] == "2026-03-01T11:00:00Z"
    assert api.buyer(account, order["buyer_id"])["credit_line"]["used"] == 0
    api.advance(account, "1h59m")
    assert api.order(account, order["id"])["status"] == "pending_review"
    api.advance(account, "1m")
    after = api.order(account, order["id"])
    assert (after["status"], after["decision"]["outcome"]) == ("authorized", "approved")
    assert after["authorized_at"] == "2026-03-01T11:00:00Z"
    assert api.buyer(account, order["buyer_id"])["credit_line"]["used"] == order["amount"]
    assert "order.authorized" in [e["type"] for e in api.events(account)]


def test_plus_review_decline_declines_after_the_review_delay(api: Api, account: Account) -> None:
    order = review_order(api, account, "review_decline")
    api.advance(account, "2h")
    after = api.order(account, order["id"])
    assert (after["status"], after["decision"]["outcome"]) == ("declined", "declined")
    assert api.buyer(account, order["buyer_id"])["credit_line"]["status"] == "declined"
    assert "order.declined" in [e["type"] for e in api.events(account)]


@pytest.mark.parametrize(
    ("tag", "reason"), [("review_manual", "manual_review"), ("documents", "documents_required")]
)
def test_manual_reviews_wait_for_the_underwriter(
    api: Api, account: Account, tag: str, reason: str
) -> None:
    order = review_order(api, account, tag)
    assert order["review"] == {"reason": reason, "resolves_at": None}
    api.advance(account, "10d")
    assert api.order(account, order["id"])["status"] == "pending_review"
    r = api.post(
        f"/_sandbox/orders/{order['id']}/review", headers=ADMIN, json={"decision": "approve"}
    )
    assert (r.status_code, r.json()["status"]) == (200, "authorized")
    r = api.post(
        f"/_sandbox/orders/{order['id']}/review", headers=ADMIN, json={"decision": "approve"}
    )
    assert (r.status_code, r.json()["code"]) == (409, "invalid_transition")


def test_underwriter_can_decline_a_manual_review(api: Api, account: Account) -> None:
    order = review_order(api, account, "documents")
    r = api.post(
        f"/_sandbox/orders/{order['id']}/review", headers=ADMIN, json={"decision": "decline"}
    )
    assert (r.status_code, r.json()["status"]) == (200, "declined")
    assert api.buyer(account, order["buyer_id"])["credit_line"]["used"] == 0


def test_review_decision_must_be_approve_or_decline(api: Api, account: Account) -> None:
    order = review_order(api, account, "review_manual")
    r = api.post(
        f"/_sandbox/orders/{order['id']}/review", headers=ADMIN, json={"decision": "maybe"}
    )
    assert r.status_code == 422


def test_authorization_expires_after_30_days_releasing_credit(
    api: Api, account: Account, approved_order: Order
) -> None:
    order = approved_order(40_000)
    assert order["authorization_expires_at"] == "2026-03-31T09:00:00Z"
    api.advance(account, "29d23h")
    assert api.order(account, order["id"])["status"] == "authorized"
    api.advance(account, "1h")
    after = api.order(account, order["id"])
    assert (after["status"], after["capturable_amount"]) == ("expired", 0)
    assert api.buyer(account, order["buyer_id"])["credit_line"]["used"] == 0
    assert "order.expired" in [e["type"] for e in api.events(account)]
    r = api.post(f"/v1/orders/{order['id']}/captures", headers=account.headers, json={"amount": 1})
    assert r.status_code == 409


def test_expiry_of_a_partly_captured_order_keeps_the_captured_part(
    api: Api, account: Account, approved_order: Order
) -> None:
    # Net 60: the captured part is still owed (its credit used) when the rest lapses.
    order = approved_order(40_000, terms="net60")
    api.post(f"/v1/orders/{order['id']}/captures", headers=account.headers, json={"amount": 15_000})
    api.advance(account, "31d")
    after = api.order(account, order["id"])
    assert (after["status"], after["captured_amount"], after["capturable_amount"]) == (
        "captured",
        15_000,
        0,
    )
    assert api.buyer(account, order["buyer_id"])["credit_line"]["used"] == 15_000


def test_jobs_run_in_time_order_within_one_advance(api: Api, account: Account) -> None:
    order = review_order(api, account, "review")  # resolves at +2h, then expires 30 d later
    chk = api.checkout(account)  # expires at +24h
    api.advance(account, "40d")
    assert api.order(account, order["id"])["status"] == "expired"
    assert (
        api.get(f"/v1/checkouts/{chk['id']}", headers=account.headers).json()["status"] == "expired"
    )
    timeline = [(e["created_at"], e["type"]) for e in api.events(account)]
    assert timeline == sorted(timeline, key=lambda t: t[0])
    types = [t for _, t in timeline]
    assert (
        types.index("order.authorized")
        < types.index("checkout.expired")
        < types.index("order.expired")
    )


def test_advance_to_an_absolute_time(api: Api, account: Account) -> None:
    r = api.post(
        f"/_sandbox/accounts/{account.id}/clock/advance",
        headers=ADMIN,
        json={"to": "2026-04-01T00:00:00+02:00"},
    )
    assert (r.status_code, r.json()["now"]) == (200, "2026-03-31T22:00:00Z")


def test_advancing_to_an_earlier_time_is_422(api: Api, account: Account) -> None:
    r = api.post(
        f"/_sandbox/accounts/{account.id}/clock/advance",
        headers=ADMIN,
        json={"to": "2026-02-01T00:00:00Z"},
    )
    assert (r.status_code, r.json()["code"]) == (422, "clock_backwards")
    assert clock(api, account)["now"] == "2026-03-01T09:00:00Z"


@pytest.mark.parametrize(
    "body",
    [
        {"by": "soon"},
        {"by": "-1h"},
        {"by": ""},
        {},
        {"by": "1h", "to": "2027-01-01T00:00:00Z"},
        {"to": "2027-01-01T00:00:00"},
        {"by": 5},
    ],
)
def test_bad_advance_bodies_are_422(api: Api, account: Account, body: dict[str, Any]) -> None:
    r = api.post(f"/_sandbox/accounts/{account.id}/clock/advance", headers=ADMIN, json=body)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"


def test_bad_duration_is_invalid_duration(api: Api, account: Account) -> None:
    r = api.post(
        f"/_sandbox/accounts/{account.id}/clock/advance", headers=ADMIN, json={"by": "3 days"}
    )
    assert (r.status_code, r.json()["code"]) == (422, "invalid_duration")


def test_freeze_stops_the_account_clock_and_unfreeze_resumes_from_there(
    api: Api, account: Account
) -> None:
    base = f"/_sandbox/accounts/{account.id}/clock"
    r = api.post(f"{base}/freeze", headers=ADMIN)
    assert (r.status_code, r.json()["frozen"]) == (200, True)
    api.clock.advance(timedelta(hours=5))
    assert clock(api, account) == {
        "account_id": account.id,
        "now": "2026-03-01T09:00:00Z",
        "frozen": True,
    }
    api.advance(account, "1h")  # advancing a frozen clock moves the frozen instant
    assert clock(api, account)["now"] == "2026-03-01T10:00:00Z"
    r = api.post(f"{base}/unfreeze", headers=ADMIN)
    assert r.json() == {"account_id": account.id, "now": "2026-03-01T10:00:00Z", "frozen": False}
    api.clock.advance(timedelta(minutes=30))
    assert clock(api, account) == {
        "account_id": account.id,
        "now": "2026-03-01T10:30:00Z",
        "frozen": False,
    }


def test_clocks_are_per_account(api: Api, account: Account) -> None:
    other = api.new_account(seed=8)
    api.advance(account, "3d")
    assert clock(api, other)["now"] == "2026-03-01T09:00:00Z"
    assert clock(api, account)["now"] == "2026-03-04T09:00:00Z"


def test_objects_are_stamped_with_the_account_clock(api: Api, account: Account) -> None:
    api.advance(account, "10d")
    chk = api.checkout(account)
    assert chk["created_at"] == "2026-03-11T09:00:00Z"


def run_sequence(api: Api, account: Account, *, with_headers: bool = False) -> list[bytes]:
    """A fixed request sequence; returns every response body (and Request-Id, if asked)."""
    h = account.headers
    calls: list[tuple[str, str, dict[str, str], Any]] = [
        ("POST", "/v1/checkouts", h, checkout_body(tag=None)),
        ("POST", "/_sandbox/checkouts/{chk}/approve", ADMIN, {"terms": "net60"}),
        ("POST", "/v1/checkouts", {**h, "Idempotency-Key": "k"}, checkout_body(9_000)),
        ("POST", "/v1/prequalifications", h, {"business": business(None)}),
        ("POST", "/v1/buyers", h, business("review", external_id="b2")),
        ("POST", "/v1/checkouts", {**h, "Idempotency-Key": "k"}, checkout_body(9_000)),
        ("POST", "/v1/orders/ord_missing/captures", h, {"amount": 1}),
        ("GET", "/v1/events?limit=100", h, None),
    ]
    out: list[bytes] = []
    chk = ""
    for method, path, headers, body in calls:
        r = api.request(method, path.format(chk=chk), headers=headers, json=body)
        assert r.status_code < 500
        chk = chk or r.json()["id"]
        out.append(r.content)
        if with_headers:
            out.append(f"{r.status_code} {r.headers['request-id']}".encode())
    return out


def without_request_ids(bodies: list[bytes]) -> list[bytes]:
    return [re.sub(rb'"request_id":"[^"]*"', b"", b) for b in bodies]


def test_reset_empties_the_account_and_restarts_ids(api: Api, account: Account) -> None:
    first = run_sequence(api, account)
    api.advance(account, "2d")
    r = api.post(f"/_sandbox/accounts/{account.id}/reset", headers=ADMIN)
    assert (r.status_code, r.json()["id"], r.json()["api_key"]) == (
        200,
        account.id,
        account.api_key,
    )
    dump = api.get(f"/_sandbox/accounts/{account.id}/dump", headers=ADMIN).json()
    assert {k: dump[k] for k in ("buyers", "checkouts", "orders", "events", "scheduled")} == {
        "buyers": [],
        "checkouts": [],
        "orders": [],
        "events": [],
        "scheduled": [],
    }
    assert dump["account"]["clock"]["now"] == "2026-03-01T09:00:00Z"
    # Request ids are per process, not per account; everything else repeats exactly.
    assert without_request_ids(run_sequence(api, account)) == without_request_ids(first)


def test_reset_forgets_idempotency_keys(api: Api, account: Account) -> None:
    h = {**account.headers, "Idempotency-Key": "k"}
    api.post("/v1/checkouts", headers=h, json=checkout_body(1_000))
    api.post(f"/_sandbox/accounts/{account.id}/reset", headers=ADMIN)
    r = api.post("/v1/checkouts", headers=h, json=checkout_body(2_000))
    assert r.status_code == 201
    assert "idempotent-replayed" not in r.headers


def test_put_seed_changes_ids_deterministically(api: Api, account: Account) -> None:
    def ids_after_seed(seed: int) -> list[str]:
        api.post(f"/_sandbox/accounts/{account.id}/reset", headers=ADMIN)
        r = api.put(f"/_sandbox/accounts/{account.id}/seed", headers=ADMIN, json={"seed": seed})
        assert (r.status_code, r.json()["seed"]) == (200, seed)
        return [api.checkout(account)["id"] for _ in range(3)]

    a1, b, a2 = ids_after_seed(11), ids_after_seed(12), ids_after_seed(11)
    assert a1 == a2
    assert not set(a1) & set(b)


def test_put_seed_rejects_bad_seeds(api: Api, account: Account) -> None:
    for body in ({"seed": -1}, {"seed": "1"}, {}, {"seed": 2**63}):
        r = api.put(f"/_sandbox/accounts/{account.id}/seed", headers=ADMIN, json=body)
        assert r.status_code == 422, body


def test_dump_returns_everything(api: Api, account: Account, approved_order: Order) -> None:
    order = approved_order()
    open_chk = api.checkout(account)
    dump = api.get(f"/_sandbox/accounts/{account.id}/dump", headers=ADMIN).json()
    assert dump["account"]["id"] == account.id
    assert dump["account"]["seed"] == 7
    assert {o["id"] for o in dump["orders"]} == {order["id"]}
    assert {c["id"] for c in dump["checkouts"]} == {order["checkout_id"], open_chk["id"]}
    assert {b["id"] for b in dump["buyers"]} == {order["buyer_id"], open_chk["buyer_id"]}
    assert len(dump["events"]) == len(api.events(account))
    kinds = sorted(j["kind"] for j in dump["scheduled"])
    # the buyer's credit line token lapses on the clock too (the vault)
    assert kinds == ["checkout.expire", "checkout.expire", "order.expire", "token.expire"]


def test_account_listing_and_lookup(api: Api, account: Account) -> None:
    listed = api.get("/_sandbox/accounts", headers=ADMIN).json()["data"]
    assert account.id in {a["id"] for a in listed}
    got = api.get(f"/_sandbox/accounts/{account.id}", headers=ADMIN).json()
    assert (got["seed"], got["api_key"]) == (7, account.api_key)


def test_account_settings_shorten_the_clock_rules(api: Api) -> None:
    acct = api.new_account(seed=3, checkout_ttl=60, review_delay=0)
    chk = api.checkout(acct)
    api.advance(acct, "61s")
    assert api.get(f"/v1/checkouts/{chk['id']}", headers=acct.headers).json()["status"] == "expired"
    chk = api.checkout(acct, tag="review")
    done = api.approve(chk["id"])
    assert done["decision"]["outcome"] == "review"
    # With no review delay the review is due at once: the next request finds it resolved.
    assert api.order(acct, done["order_id"])["status"] == "authorized"


def two_runs(server_seed: int, account_seed: int) -> list[bytes]:
    """A fresh app (own wall clock, same entropy) running `run_sequence` then dumping."""
    api = Api(build_app(seed=server_seed, clock=ManualClock(START)), ManualClock(START))
    try:
        account = api.new_account(seed=account_seed)
        bodies = run_sequence(api, account, with_headers=True)
        api.advance(account, "3h")
        bodies.append(api.get(f"/_sandbox/accounts/{account.id}/dump", headers=ADMIN).content)
        return bodies
    finally:
        api.close()


def test_same_seeds_and_requests_give_byte_identical_responses() -> None:
    a, b = two_runs(1, 7), two_runs(1, 7)
    assert a == b
    assert b"chk_" in a[0]


def test_a_different_account_seed_gives_different_ids() -> None:
    a, b = two_runs(1, 7), two_runs(1, 8)
    for i in (0, 4):  # the two checkouts and their buyers (bodies and headers alternate)
        chk_a, chk_b = orjson.loads(a[i]), orjson.loads(b[i])
        assert chk_a["id"] != chk_b["id"]
        assert chk_a["buyer_id"] != chk_b["buyer_id"]


def test_scored_decisions_follow_the_account_seed() -> None:
    outcomes = set()
    for seed in range(10):
        first, again = (orjson.loads(two_runs(1, seed)[6]) for _ in range(2))
        assert first == again
        outcomes.add(first["decision"])
    assert len(outcomes) >= 2


def test_setting_the_same_seed_again_never_reuses_an_existing_id(
    api: Api, account: Account
) -> None:
    """Restarting the sequence without a reset must not overwrite objects or clash on ids."""
    first = api.approved_order(account, 10_000)
    r = api.put(f"/_sandbox/accounts/{account.id}/seed", headers=ADMIN, json={"seed": account.seed})
    assert r.status_code == 200
    second = api.approved_order(account, 20_000)
    assert second["id"] != first["id"]
    assert second["buyer_id"] != first["buyer_id"]
    assert second["checkout_id"] != first["checkout_id"]
    assert api.order(account, first["id"])["amount"] == 10_000
    assert api.buyer(account, first["buyer_id"])["credit_line"]["used"] == 10_000
    events = api.events(account)
    assert len({e["id"] for e in events}) == len(events)


@pytest.mark.parametrize(
    "to", ["9999-12-31T23:59:59Z", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"]
)
def test_advancing_to_the_ends_of_time_is_422_not_500(api: Api, account: Account, to: str) -> None:
    r = api.post(f"/_sandbox/accounts/{account.id}/clock/advance", headers=ADMIN, json={"to": to})
    assert r.status_code == 422
    assert api.checkout(account)["status"] == "open"  # the account still works


def test_an_account_with_an_unknown_default_currency_is_refused(api: Api) -> None:
    r = api.post(
        "/_sandbox/accounts", headers=ADMIN, json={"settings": {"default_currency": "XXY"}}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == "body.settings.default_currency"


def test_an_account_default_currency_applies_to_checkouts(api: Api) -> None:
    acct = api.new_account(seed=5, default_currency="EUR")
    chk = api.checkout(acct)
    assert chk["currency"] == "EUR"
    assert api.buyer(acct, chk["buyer_id"])["currency"] == "EUR"
