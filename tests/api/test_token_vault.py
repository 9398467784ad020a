"""The token vault: each personality's payment tokens with their lifecycle (active, expired on
the account clock, revoked), exported as a token-migration file and imported by another
provider's account through `POST /_sandbox/accounts/{id}/token_import`."""

from __future__ import annotations

import json
from typing import Any

from factories import ADMIN, Account, Api

G = "/gateway/v1"


def gateway_invoice(
    api: Api, account: Account, customer: str = "CUST-1", method: str = "card"
) -> None:
    r = api.post(
        f"{G}/invoices",
        headers=account.headers,
        json={
            "number": f"INV-{customer}",
            "amount": 10_000,
            "currency": "USD",
            "customer": {
                "name": "Acme",
                "email": "ap@acme.test",
                "external_id": customer,
                "payment_method": method,
            },
        },
    )
    assert r.status_code == 201, r.text


def tokens(api: Api, account: Account, prefix: str = "/v1", **params: Any) -> list[dict[str, Any]]:
    r = api.get(f"{prefix}/tokens", headers=account.headers, params={"limit": 100, **params})
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def migration_rows(api: Api, account: Account) -> list[dict[str, Any]]:
    r = api.post("/v1/exports", headers=account.headers, json={"format": "jsonl"})
    assert r.status_code == 201, r.text
    export = r.json()
    body = api.get(
        f"/v1/exports/{export['id']}/files/token_migration.jsonl", headers=account.headers
    )
    assert body.status_code == 200, body.text
    return [json.loads(line) for line in body.text.splitlines() if line]


def token_import(
    api: Api, account: Account, rows: list[dict[str, Any]], to: str = "gateway"
) -> Any:
    return api.post(
        f"/_sandbox/accounts/{account.id}/token_import",
        headers=ADMIN,
        json={"personality": to, "tokens": rows},
    )


def test_an_authorized_order_puts_the_buyers_credit_line_reference_in_the_vault(
    api: Api, account: Account
) -> None:
    order = api.approved_order(account, 50_000)
    # The same buyer's second order: the same token.
    api.approved_order(account, 20_000, buyer=None, buyer_id=order["buyer_id"])
    (token,) = tokens(api, account)
    assert token["type"] == "credit_line"
    assert token["owner"] == order["buyer_id"]
    assert token["network_reference"] == f"cl_{order['buyer_id']}"
    assert token["status"] == "active"
    assert tokens(api, account, G) == []  # the gateway's vault is its own


def test_a_gateway_customer_card_is_tokenized_without_its_number(
    api: Api, account: Account
) -> None:
    gateway_invoice(api, account, "CUST-1", "card")
    gateway_invoice(api, account, "CUST-2", "ach")
    by_type = {t["type"]: t for t in tokens(api, account, G)}
    card, bank = by_type["card"], by_type["bank_account"]
    assert card["brand"] in ("visa", "mastercard", "amex", "discover")
    assert len(card["last4"]) == 4
    assert 1 <= card["exp_month"] <= 12
    assert bank["last4"]
    assert bank["network_reference"].startswith("mandate_")
    assert all(
        len(v) < 12 or not v.isdigit()
        for t in by_type.values()
        for v in t.values()
        if isinstance(v, str)
    )


def test_a_token_expires_on_the_account_clock_and_a_new_one_replaces_it(
    api: Api, account: Account
) -> None:
    order = api.approved_order(account, 50_000)
    (first,) = tokens(api, account)
    assert api.advance(account, "366d").status_code == 200
    (expired,) = tokens(api, account)
    assert expired["status"] == "expired"
    assert expired["expired_at"] is not None
    api.approved_order(account, 10_000, buyer=None, buyer_id=order["buyer_id"])
    latest, older = tokens(api, account)
    assert older["id"] == first["id"]
    assert latest["id"] != first["id"]
    assert latest["status"] == "active"
    assert latest["owner"] == order["buyer_id"]


def test_a_revoked_token_cannot_be_revoked_again(api: Api, account: Account) -> None:
    gateway_invoice(api, account)
    (token,) = tokens(api, account, G)
    r = api.post(f"{G}/tokens/{token['id']}/revoke", headers=account.headers)
    assert r.status_code == 200
    assert r.json()["status"] == "revoked"
    again = api.post(f"{G}/tokens/{token['id']}/revoke", headers=account.headers)
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    # A token of another personality is not found under this one.
    assert api.get(f"/v1/tokens/{token['id']}", headers=account.headers).status_code == 404


def test_the_export_token_migration_file_imports_into_another_account_once(
    api: Api, account: Account
) -> None:
    api.approved_order(account, 50_000)
    gateway_invoice(api, account)
    rows = migration_rows(api, account)
    assert {r["type"] for r in rows} == {"credit_line", "card"}
    target = api.new_account(seed=9)
    first = token_import(api, target, rows)
    assert first.status_code == 200, first.text
    assert first.json()["created"] == 2
    again = token_import(api, target, rows)
    assert again.status_code == 200
    assert again.json()["created"] == 0
    assert [m["token"] for m in again.json()["map"]] == [m["token"] for m in first.json()["map"]]
    imported = tokens(api, target, G)
    assert len(imported) == 2
    assert {t["imported_from"] for t in imported} == {r["token"] for r in rows}
    assert {t["fingerprint"] for t in imported} == {r["fingerprint"] for r in rows}
    # The receiving provider's own export is the old -> new map.
    back = {r["imported_from"]: r["token"] for r in migration_rows(api, target)}
    assert back == {m["source_token"]: m["token"] for m in first.json()["map"]}


def test_a_conflicting_reimport_is_rejected_and_stores_nothing(api: Api, account: Account) -> None:
    gateway_invoice(api, account, "CUST-1")
    gateway_invoice(api, account, "CUST-2")
    rows = migration_rows(api, account)
    target = api.new_account(seed=9)
    assert token_import(api, target, rows[:1]).status_code == 200
    changed = [{**rows[0], "last4": "0000" if rows[0]["last4"] != "0000" else "1111"}, rows[1]]
    r = token_import(api, target, changed)
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert len(tokens(api, target, G)) == 1  # the second row was not stored either


def test_a_token_import_refuses_a_card_number_and_an_unknown_personality(
    api: Api, account: Account
) -> None:
    gateway_invoice(api, account)
    (row,) = migration_rows(api, account)
    pan = token_import(api, account, [{**row, "owner": "4242 4242 4242 4242"}])
    assert pan.status_code == 422
    unknown = token_import(api, account, [row], to="nope")
    assert unknown.status_code == 422
    assert "unknown personality" in unknown.json()["detail"]
    no_account = api.post(
        "/_sandbox/accounts/acct_missing/token_import",
        headers=ADMIN,
        json={"personality": "gateway", "tokens": [row]},
    )
    assert no_account.status_code == 404
