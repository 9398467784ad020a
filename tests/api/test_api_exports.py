"""`/v1/exports`: the account's whole dataset as documented CSV or JSON-lines files."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from factories import ADMIN, Account, Api

from simulator.api.docs import provider_document
from simulator.app import SandbankApp
from simulator.exports import FILES, Column

Order = Callable[..., dict[str, Any]]
Rows = list[dict[str, Any]]
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")


# --- helpers ------------------------------------------------------------------------------------
def export(api: Api, account: Account, fmt: str = "csv", **kw: Any) -> dict[str, Any]:
    r = api.post("/v1/exports", headers=account.headers, json={"format": fmt}, **kw)
    assert r.status_code == 201, r.text
    return dict(r.json())


def download(api: Api, account: Account, exp: dict[str, Any], file: str) -> bytes:
    meta = next(f for f in exp["files"] if f["name"].split(".")[0] == file)
    r = api.get(meta["url"], headers=account.headers)
    assert r.status_code == 200, r.text
    return r.content


def _typed(value: str, column: Column) -> Any:
    """A CSV field read back into its JSON value, by the documented column type."""
    if value == "":
        return None
    if column.type == "integer":
        return int(value)
    if column.type == "boolean":
        assert value in ("true", "false")
        return value == "true"
    if column.type == "json":
        return json.loads(value)
    return value


def read_csv(data: bytes, file: str) -> Rows:
    reader = csv.reader(io.StringIO(data.decode(), newline=""))
    header = next(reader)
    assert header == FILES[file].names
    columns = FILES[file].columns
    return [{c.name: _typed(v, c) for c, v in zip(columns, row, strict=True)} for row in reader]


def read_jsonl(data: bytes) -> Rows:
    return [json.loads(line) for line in data.decode().splitlines()]


def rows(api: Api, account: Account, exp: dict[str, Any], file: str) -> Rows:
    data = download(api, account, exp, file)
    return read_csv(data, file) if exp["format"] == "csv" else read_jsonl(data)


def every(api: Api, account: Account, url: str) -> Rows:
    return [item for page in api.walk(url, account, limit=100) for item in page]


def busy_account(api: Api, account: Account) -> None:
    """Two orders with captures, a refund, a dispute, a cancel, a gateway invoice paid in part,
    a virtual-card invoice paid by card, an EDI invoice and its remittance, and settlements
    (3 days on)."""
    h = account.headers
    first = api.approved_order(account, 125_000)
    second = api.approved_order(account, 40_000, merchant_order_id="SO-1002")
    third = api.approved_order(account, 10_000, merchant_order_id="SO-1003")
    assert api.post(f"/v1/orders/{first['id']}/captures", headers=h, json={"amount": 50_000})
    assert api.post(f"/v1/orders/{first['id']}/captures", headers=h, json={"amount": 25_000})
    assert api.post(f"/v1/orders/{second['id']}/captures", headers=h).status_code == 201
    r = api.post(f"/v1/orders/{first['id']}/refunds", headers=h, json={"amount": 1_000})
    assert r.status_code == 201, r.text
    r = api.post(f"/_sandbox/orders/{second['id']}/disputes", headers=ADMIN, json={"amount": 500})
    assert r.status_code == 201, r.text
    assert api.post(f"/v1/orders/{third['id']}/cancel", headers=h).status_code == 200
    # The gateway + net terms personality: an invoice issued and paid in part by card.
    body = {
        "number": "INV-1",
        "customer": {"name": "Acme", "email": "ap+defaults@acme.test"},
        "amount": 20_000,
    }
    r = api.post("/gateway/v1/invoices", headers=h, json=body)
    assert r.status_code == 201, r.text
    invoice = r.json()["id"]
    assert api.post(f"/gateway/v1/invoices/{invoice}/issue", headers=h).status_code == 200
    r = api.post("/gateway/v1/charges", headers=h, json={"invoice": invoice, "amount": 5_000})
    assert r.status_code == 201, r.text
    # The virtual cards personality: the AP's card for an invoice, captured at once.
    r = api.post("/vcards/v1/invoices", headers=h, json={**body, "amount": 8_000})
    assert r.status_code == 201, r.text
    invoice = r.json()["id"]
    assert api.post(f"/vcards/v1/invoices/{invoice}/issue", headers=h).status_code == 200
    r = api.post("/vcards/v1/cards", headers=h, json={"invoices": [{"invoice": invoice}]})
    assert r.status_code == 201, r.text
    # Traditional invoicing: an 810 due tomorrow, remitted (a typo'd reference: unapplied cash).
    edi = {
        "big": {"invoice_number": "EDI-1", "po_number": "PO-1"},
        "buyer": {"name": "Acme", "email": "ap+typo_reference@acme.test"},
        "itd": {"net_days": 1},
        "it1": [{"quantity": 1, "unit_price": 7_000}],
        "tds": {"amount": 7_000},
    }
    r = api.post("/invoicing/v1/invoices", headers=h, json=edi)
    assert r.status_code == 201, r.text
    api.advance(account, "3d")


@pytest.fixture
def busy(api: Api, account: Account) -> Account:
    busy_account(api, account)
    return account


# --- the export object ----------------------------------------------------------------------------
def test_an_export_lists_every_file_with_size_hash_and_url(api: Api, busy: Account) -> None:
    exp = export(api, busy, "csv")
    assert exp["id"].startswith("exp_")
    assert (exp["object"], exp["format"], exp["status"]) == ("export", "csv", "succeeded")
    assert RFC3339_UTC.match(exp["created_at"])
    assert [f["name"] for f in exp["files"]] == [f"{name}.csv" for name in FILES]
    for meta in exp["files"]:
        assert meta["url"] == f"/v1/exports/{exp['id']}/files/{meta['name']}"
        r = api.get(meta["url"], headers=busy.headers)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/csv")
        assert r.headers["content-disposition"] == f'attachment; filename="{meta["name"]}"'
        assert len(r.content) == meta["bytes"]
        assert hashlib.sha256(r.content).hexdigest() == meta["sha256"]
        assert r.content.count(b"\r\n") == meta["rows"] + 1  # header + rows, CRLF each


def test_jsonl_files_are_ndjson(api: Api, busy: Account) -> None:
    exp = export(api, busy, "jsonl")
    assert [f["name"] for f in exp["files"]] == [f"{name}.jsonl" for name in FILES]
    for meta in exp["files"]:
        r = api.get(meta["url"], headers=busy.headers)
        assert r.headers["content-type"] == "application/x-ndjson"
        assert hashlib.sha256(r.content).hexdigest() == meta["sha256"]
        assert len(read_jsonl(r.content)) == meta["rows"]
        assert r.content.count(b"\n") == meta["rows"]
        assert b"\r" not in r.content


def test_get_and_list_give_the_export_back(api: Api, busy: Account) -> None:
    first = export(api, busy, "csv")
    second = export(api, busy, "jsonl")
    assert api.get(f"/v1/exports/{first['id']}", headers=busy.headers).json() == first
    listed = api.get("/v1/exports", headers=busy.headers).json()
    assert [x["id"] for x in listed["data"]] == [second["id"], first["id"]]
    assert listed["data"][0] == second
    page = api.get("/v1/exports", headers=busy.headers, params={"limit": 1}).json()
    assert page["has_more"] is True
    rest = api.get(
        "/v1/exports", headers=busy.headers, params={"limit": 1, "cursor": page["next_cursor"]}
    ).json()
    assert [x["id"] for x in rest["data"]] == [first["id"]]


def test_no_body_exports_csv(api: Api, account: Account) -> None:
    r = api.post("/v1/exports", headers=account.headers)
    assert r.status_code == 201, r.text
    assert r.json()["format"] == "csv"


def test_an_empty_account_exports_header_only_csv_and_empty_jsonl(
    api: Api, account: Account
) -> None:
    for meta in export(api, account, "csv")["files"]:
        name = meta["name"].removesuffix(".csv")
        body = api.get(meta["url"], headers=account.headers).content
        assert body == (",".join(FILES[name].names) + "\r\n").encode()
        assert meta["rows"] == 0
    for meta in export(api, account, "jsonl")["files"]:
        assert (meta["rows"], meta["bytes"]) == (0, 0)


def test_an_idempotent_retry_replays_the_same_export(api: Api, busy: Account) -> None:
    key = {**busy.headers, "Idempotency-Key": "export-1"}
    first = api.post("/v1/exports", headers=key, json={"format": "jsonl"})
    again = api.post("/v1/exports", headers=key, json={"format": "jsonl"})
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert len(api.get("/v1/exports", headers=busy.headers).json()["data"]) == 1


# --- columns and values ---------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_every_file_has_exactly_the_documented_columns(api: Api, busy: Account, fmt: str) -> None:
    exp = export(api, busy, fmt)
    for name, spec in FILES.items():
        data = download(api, busy, exp, name)
        if fmt == "csv":
            header = data.split(b"\r\n", 1)[0].decode()
            assert header == ",".join(spec.names), name
        else:
            parsed = read_jsonl(data)
            assert parsed, f"{name} has no rows to check"
            for row in parsed:
                assert list(row) == spec.names, name


def test_values_have_their_documented_types(api: Api, busy: Account) -> None:
    """Money and counts are JSON integers, times RFC 3339 UTC, dates YYYY-MM-DD."""
    exp = export(api, busy, "jsonl")
    for name, spec in FILES.items():
        for row in rows(api, busy, exp, name):
            for column in spec.columns:
                value = row[column.name]
                if value is None:
                    continue
                if column.type == "integer":
                    assert type(value) is int, (name, column.name, value)
                elif column.type == "boolean":
                    assert type(value) is bool, (name, column.name, value)
                elif column.type == "datetime":
                    assert RFC3339_UTC.match(value), (name, column.name, value)
                elif column.type == "date":
                    assert re.match(r"^\d{4}-\d\d-\d\d$", value), (name, column.name, value)
                elif column.type == "string":
                    assert isinstance(value, str), (name, column.name, value)
            if "amount" in row:
                assert row["currency"] == "USD"


def test_csv_and_jsonl_give_the_same_data(api: Api, busy: Account) -> None:
    as_csv, as_jsonl = export(api, busy, "csv"), export(api, busy, "jsonl")
    for name in FILES:
        assert rows(api, busy, as_csv, name) == rows(api, busy, as_jsonl, name), name


def test_csv_quotes_commas_quotes_and_newlines(
    api: Api, account: Account, approved_order: Order
) -> None:
    order = approved_order()
    tricky = {"note": 'a, "quoted"\r\nsecond line', "emoji": "ü ✓"}
    r = api.patch(f"/v1/orders/{order['id']}", headers=account.headers, json={"metadata": tricky})
    assert r.status_code == 200, r.text
    (row,) = rows(api, account, export(api, account, "csv"), "orders")
    assert row["metadata"] == tricky
    assert row["line_items"] == [
        {"name": "Pallet of widgets", "sku": None, "quantity": 2, "unit_amount": 62_500}
    ]


# --- the data matches the API -------------------------------------------------------------------
def test_row_counts_and_ids_match_the_api_objects(api: Api, busy: Account) -> None:
    exp = export(api, busy, "jsonl")
    counts = {f["name"].removesuffix(".jsonl"): f["rows"] for f in exp["files"]}
    orders = every(api, busy, "/v1/orders")[::-1]  # the API lists newest first
    settlements = every(api, busy, "/v1/settlements")[::-1]
    disputes = every(api, busy, "/v1/disputes")[::-1]
    events = api.events(busy)
    assert settlements, "the clock moved three days: settlements exist"
    expected = {
        "orders": [o["id"] for o in orders],
        # all made at one instant: in order, then position, order
        "captures": [c["id"] for o in orders for c in o["captures"]],
        "refunds": [r["id"] for o in orders for r in o["refunds"]],
        "repayments": [r["id"] for o in orders for r in o["repayments"]],
        "settlements": [s["id"] for s in settlements],
        "disputes": [d["id"] for d in disputes],
        "events": [e["id"] for e in events],
    }
    for name, ids in expected.items():
        assert [row["id"] for row in rows(api, busy, exp, name)] == ids, name
        assert counts[name] == len(ids), name
    assert counts["captures"] == 3
    assert counts["refunds"] == counts["disputes"] == 1


def test_rows_match_what_the_api_returns(api: Api, busy: Account) -> None:
    exp = export(api, busy, "jsonl")
    for row in rows(api, busy, exp, "orders"):
        order = api.order(busy, row["id"])
        for key in (
            "status",
            "amount",
            "currency",
            "captured_amount",
            "refunded_amount",
            "capturable_amount",
            "refundable_amount",
            "created_at",
            "merchant_order_id",
            "metadata",
        ):
            assert row[key] == order[key], key
        assert row["line_items"] == order["line_items"]
    events = {e["id"]: e for e in api.events(busy)}
    for row in rows(api, busy, exp, "events"):
        event = events[row["id"]]
        assert {k: event[k] for k in row} == row
    for row in rows(api, busy, exp, "disputes"):
        dispute = api.get(f"/v1/disputes/{row['id']}", headers=busy.headers).json()
        assert {k: dispute[k] for k in row} == row


def test_rows_are_oldest_first(api: Api, busy: Account) -> None:
    exp = export(api, busy, "jsonl")
    for name in FILES:
        if name == "settlement_lines":
            continue  # grouped by settlement (checked below)
        times = [row["created_at"] for row in rows(api, busy, exp, name)]
        assert times == sorted(times), name


def test_settlement_lines_sum_to_each_settlement(api: Api, busy: Account) -> None:
    exp = export(api, busy, "csv")
    lines = rows(api, busy, exp, "settlement_lines")
    settlements = rows(api, busy, exp, "settlements")
    assert settlements
    for stl in settlements:
        mine = [x for x in lines if x["settlement_id"] == stl["id"]]
        assert len(mine) == stl["line_count"]
        assert sum(x["net"] for x in mine) == stl["amount"]
        assert sum(x["gross"] for x in mine) == stl["gross"]
        assert sum(x["fee"] for x in mine) == stl["fees"]
        assert all(x["net"] == x["gross"] - x["fee"] for x in mine)
        assert all(x["currency"] == stl["currency"] for x in mine)


def test_unsettled_lines_are_exported_without_a_settlement(
    api: Api, account: Account, approved_order: Order
) -> None:
    order = approved_order()
    r = api.post(f"/v1/orders/{order['id']}/captures", headers=account.headers)
    assert r.status_code == 201
    exp = export(api, account, "jsonl")
    assert rows(api, account, exp, "settlements") == []
    (line,) = rows(api, account, exp, "settlement_lines")
    assert (line["type"], line["settlement_id"], line["gross"]) == ("capture", None, 125_000)
    assert line["source_id"] == r.json()["id"]


def test_settlement_lines_are_the_true_lines_not_a_drifted_report(
    api: Api, account: Account, approved_order: Order
) -> None:
    r = api.put(
        f"/_sandbox/accounts/{account.id}/settlement_drift",
        headers=ADMIN,
        json={"missing_line": 1, "off_by_one_cent": 1},
    )
    assert r.status_code == 200, r.text
    for amount in (10_000, 20_000):
        order = approved_order(amount)
        assert api.post(f"/v1/orders/{order['id']}/captures", headers=account.headers)
    api.advance(account, "3d")
    exp = export(api, account, "jsonl")
    (stl,) = rows(api, account, exp, "settlements")
    true_lines = rows(api, account, exp, "settlement_lines")
    report = api.get(f"/v1/settlements/{stl['id']}", headers=account.headers).json()["lines"]
    assert [(x["id"], x["net"]) for x in report] != [(x["id"], x["net"]) for x in true_lines]
    assert sum(x["net"] for x in report) != stl["amount"]  # the drifted report does not add up
    assert sum(x["net"] for x in true_lines) == stl["amount"]
    assert len(true_lines) == stl["line_count"] == 2


# --- determinism, isolation, errors -------------------------------------------------------------
def test_same_seed_and_requests_give_byte_identical_files(
    make_app: Callable[..., SandbankApp], api: Api
) -> None:
    def run() -> tuple[list[str], list[bytes]]:
        other = Api(make_app(), api.clock)
        try:
            account = other.new_account(seed=11)
            busy_account(other, account)
            exp = export(other, account, "csv")
            bodies = [other.get(f["url"], headers=account.headers).content for f in exp["files"]]
            return [f["sha256"] for f in exp["files"]], bodies
        finally:
            other.close()

    first, second = run(), run()
    assert first == second
    assert all(first[1])


def test_exporting_twice_without_changes_gives_the_same_files(api: Api, busy: Account) -> None:
    first, second = export(api, busy, "jsonl"), export(api, busy, "jsonl")
    assert first["id"] != second["id"]
    assert [f["sha256"] for f in first["files"]] == [f["sha256"] for f in second["files"]]


def test_other_accounts_data_never_appears(api: Api, account: Account, busy: Account) -> None:
    other = api.new_account(seed=8)
    mine = export(api, other, "csv")
    assert all(f["rows"] == 0 for f in mine["files"])
    theirs = export(api, busy, "csv")
    assert api.get(f"/v1/exports/{theirs['id']}", headers=other.headers).status_code == 404
    r = api.get(theirs["files"][0]["url"], headers=other.headers)
    assert r.status_code == 404
    listed = api.get("/v1/exports", headers=other.headers).json()["data"]
    assert [x["id"] for x in listed] == [mine["id"]]
    # and the busy account's export holds nothing of the other's
    own = api.approved_order(other, 5_000)
    again = export(api, busy, "jsonl")
    for name in FILES:
        text = download(api, busy, again, name).decode()
        assert own["id"] not in text
        assert own["buyer_id"] not in text


def test_unknown_export_or_file_is_a_404_problem(api: Api, busy: Account) -> None:
    exp = export(api, busy, "csv")
    for url in (
        "/v1/exports/exp_doesnotexist",
        "/v1/exports/exp_doesnotexist/files/orders.csv",
        f"/v1/exports/{exp['id']}/files/nope.csv",
        f"/v1/exports/{exp['id']}/files/orders.jsonl",  # a csv export has no jsonl files
        f"/v1/exports/{exp['id']}/files/orders",
    ):
        r = api.get(url, headers=busy.headers)
        assert r.status_code == 404, url
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "not_found"


@pytest.mark.parametrize(
    "body", [{"format": "xml"}, {"format": None}, {"format": 1}, {"format": "csv", "x": 1}]
)
def test_a_bad_format_is_422(api: Api, account: Account, body: dict[str, Any]) -> None:
    r = api.post("/v1/exports", headers=account.headers, json=body)
    assert r.status_code == 422
    assert r.json()["code"] == "validation_failed"
    assert api.get("/v1/exports", headers=account.headers).json()["data"] == []


def test_exports_need_credentials(api: Api) -> None:
    assert api.post("/v1/exports", json={"format": "csv"}).status_code == 401
    assert api.get("/v1/exports").status_code == 401


def test_the_contract_documents_files_columns_and_media_types() -> None:
    doc = provider_document()
    create = doc["paths"]["/v1/exports"]["post"]
    for name, spec in FILES.items():
        assert f"`{name}`" in create["description"]
        for column in spec.columns:
            assert f"`{column.name}` ({column.type})" in create["description"]
    content = doc["paths"]["/v1/exports/{id}/files/{name}"]["get"]["responses"]["200"]["content"]
    assert set(content) == {"text/csv", "application/x-ndjson"}
