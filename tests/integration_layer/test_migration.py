"""`sandbank integration migrate`: the plan, each invariant (and that each one fails on a
deliberately duplicated or lost obligation), and whole runs in-process between embedded credit
(`/v1`) and gateway + net terms (`/gateway/v1`): dry run, cut-over, a second run that changes
nothing, faults during the run, exit codes and the reports."""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import migration as bench  # bench/migration.py (tests/conftest.py puts bench/ on sys.path)
import pytest
from factories import ADMIN, ADMIN_TOKEN, BASE_URL, Account, Api

from integration.migrate_cli import run_migrate
from integration.migration import (
    EXIT_INPUT,
    EXIT_INVARIANT,
    EXIT_OK,
    EXIT_UNFINISHED,
    Evidence,
    Holding,
    ObligationKind,
    SideState,
    every_open_obligation_once,
    no_history_duplicated,
    plan,
    predict,
    tokens_carried,
    totals_per_buyer_agree,
)

AUTH, RECV = ObligationKind.AUTHORIZED, ObligationKind.RECEIVABLE


# --- the invariants, on hand-made states ------------------------------------------------------
def holding(
    key: str, amount: int = 1000, buyer: str = "B1", kind: ObligationKind = AUTH
) -> Holding:
    return Holding(key, kind, buyer, "USD", amount, ref=f"obj-{key}")


TOKEN = {"token": "tok_a", "fingerprint": "ab" * 16, "imported_from": None}
SOURCE = SideState(
    (holding("authorized:o1"), holding("receivable:o2", 2500, kind=RECV), holding("dispute:d1")),
    (),
    ("capture:c1", "capture:c2"),
    (TOKEN,),
)
SOURCE = replace(SOURCE, open=(*SOURCE.open[:2], replace(SOURCE.open[2], movable=False)))
TARGET = SideState((), (), ("charge:x1",), ())


def migrated() -> Evidence:
    """A correct cut-over, as the plan predicts it."""
    after_source, after_target = predict(SOURCE, TARGET, plan(SOURCE, TARGET))
    return Evidence(SOURCE, TARGET, after_source, after_target)


def test_a_correct_migration_passes_every_invariant() -> None:
    ev = migrated()
    for invariant in (
        every_open_obligation_once,
        no_history_duplicated,
        totals_per_buyer_agree,
        tokens_carried,
    ):
        assert invariant(ev).ok, invariant(ev)
    assert [s.action for s in plan(SOURCE, TARGET)] == ["move", "move", "stay"]


def test_an_obligation_left_open_at_both_providers_fails_every_open_obligation_once() -> None:
    ev = migrated()
    kept = replace(ev.after_source, open=(*ev.after_source.open, SOURCE.open[0]))
    check = every_open_obligation_once(replace(ev, after_source=kept))
    assert not check.ok
    assert check.offenders == ("duplicated authorized:o1",)


def test_an_obligation_released_and_never_replayed_fails_every_open_obligation_once() -> None:
    ev = migrated()
    gone = replace(ev.after_target, open=ev.after_target.open[1:])
    check = every_open_obligation_once(replace(ev, after_target=gone))
    assert not check.ok
    assert check.offenders == ("lost authorized:o1",)


def test_an_obligation_replayed_twice_at_the_target_fails_no_history_duplicated() -> None:
    ev = migrated()
    twice = replace(ev.after_target, tagged=(*ev.after_target.tagged, ("authorized:o1", "obj-2")))
    check = no_history_duplicated(replace(ev, after_target=twice))
    assert not check.ok
    assert check.offenders == ("authorized:o1 held by 2 objects at the target",)


def test_a_repaid_capture_replayed_as_if_open_fails_no_history_duplicated() -> None:
    ev = migrated()
    replayed = replace(
        ev.after_target, tagged=(*ev.after_target.tagged, ("receivable:repaid", "obj-9"))
    )
    check = no_history_duplicated(replace(ev, after_target=replayed))
    assert not check.ok
    assert "receivable:repaid was not open: history replayed" in check.offenders


def test_a_historical_capture_twice_or_missing_fails_no_history_duplicated() -> None:
    ev = migrated()
    doubled = replace(ev.after_source, history=("capture:c1", "capture:c1"))
    check = no_history_duplicated(replace(ev, after_source=doubled))
    assert set(check.offenders) == {
        "capture:c1 twice at the source",
        "capture:c2 missing at the source",
    }


def test_an_amount_changed_on_the_way_fails_totals_per_buyer_agree() -> None:
    ev = migrated()
    first = ev.after_target.open[0]
    changed = replace(ev.after_target, open=(replace(first, amount=999), *ev.after_target.open[1:]))
    check = totals_per_buyer_agree(replace(ev, after_target=changed))
    assert not check.ok
    assert check.offenders == ("B1 USD: 4500 before, 4499 after",)


def test_an_obligation_duplicated_under_another_key_fails_totals_per_buyer_agree() -> None:
    """A copy the key check cannot see (another key) still shows in the buyer's total."""
    ev = migrated()
    copy = replace(ev.after_target.open[0], key="authorized:copy")
    doubled = replace(ev.after_target, open=(*ev.after_target.open, copy))
    assert every_open_obligation_once(replace(ev, after_target=doubled)).ok
    assert not totals_per_buyer_agree(replace(ev, after_target=doubled)).ok


def test_a_token_left_behind_fails_tokens_carried() -> None:
    ev = migrated()
    check = tokens_carried(replace(ev, after_target=replace(ev.after_target, tokens=())))
    assert not check.ok
    assert check.offenders == ("token tok_a not imported",)


def test_an_obligation_already_at_the_target_is_only_released_at_the_source() -> None:
    target = replace(TARGET, tagged=(("authorized:o1", "inv_1"),))
    actions = {s.holding.key: s.action for s in plan(SOURCE, target)}
    assert actions == {"authorized:o1": "release", "receivable:o2": "move", "dispute:d1": "stay"}


# --- whole runs, in-process -------------------------------------------------------------------
def args(frm: Account, to: Account, tmp: Path, **kw: Any) -> argparse.Namespace:
    base: dict[str, Any] = {
        "source": "sandbank",
        "from_url": BASE_URL,
        "from_key": frm.api_key,
        "target": "gateway",
        "to_url": None,
        "to_key": to.api_key,
        "to_account": to.id,
        "admin_token": ADMIN_TOKEN,
        "dry_run": False,
        "report_dir": tmp / "report",
        "concurrency": 4,
    }
    return argparse.Namespace(**{**base, **kw})


def migrate(api: Api, ns: argparse.Namespace) -> int:
    return api.loop.run_until_complete(run_migrate(ns, transport=httpx.ASGITransport(app=api.app)))


def book(api: Api, source: Account, orders: int = 30, kind: str = "native") -> None:
    async def build() -> None:
        transport = httpx.ASGITransport(app=api.app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            b = bench.Book(client, concurrency=1)
            b.admin = ADMIN
            await getattr(b, kind)(source.id, source.headers, orders)

    api.loop.run_until_complete(build())


def counts(api: Api, account: Account) -> dict[str, int]:
    r = api.post("/v1/exports", headers=account.headers, json={"format": "jsonl"})
    return {f["name"]: f["rows"] for f in r.json()["files"] if not f["name"].startswith("events")}


def test_a_dry_run_writes_nothing_and_reports_the_plan(
    api: Api, account: Account, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = api.new_account(seed=11)
    book(api, account)
    before = (counts(api, account), counts(api, target))
    assert migrate(api, args(account, target, tmp_path, dry_run=True)) == EXIT_OK
    assert (counts(api, account), counts(api, target)) == before
    out = capsys.readouterr().out
    assert "(dry run): OK" in out
    assert "move" in out
    report = json.loads((tmp_path / "report" / "migration.json").read_text())
    assert report["dry_run"] is True
    assert report["ok"] is True
    assert report["counts"]["move"] == {"authorized": 10, "receivable": 9}
    assert report["counts"]["stay"] == {"dispute": 1, "receivable": 1}
    assert {c["name"] for c in report["checks"]} == {
        "every_open_obligation_once",
        "no_history_duplicated",
        "totals_per_buyer_agree",
        "tokens_carried",
    }
    html = (tmp_path / "report" / "migration.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "every_open_obligation_once" in html


def test_a_cut_over_moves_the_book_and_a_second_run_changes_nothing(
    api: Api, account: Account, tmp_path: Path
) -> None:
    target = api.new_account(seed=11)
    book(api, account)
    assert migrate(api, args(account, target, tmp_path)) == EXIT_OK
    first = json.loads((tmp_path / "report" / "migration.json").read_text())
    assert first["counts"]["move"] == {"authorized": 10, "receivable": 9}
    invoices = api.get("/gateway/v1/invoices", headers=target.headers, params={"limit": 100})
    assert len(invoices.json()["data"]) == 19
    assert all(i["number"].startswith("migrated:") for i in invoices.json()["data"])
    imported = api.get("/gateway/v1/tokens", headers=target.headers).json()["data"]
    assert {i["metadata"]["payment_token"] for i in invoices.json()["data"]} <= {
        tok["id"] for tok in imported if tok["imported_from"]
    }
    assert_a_second_run_changes_nothing(api, args(account, target, tmp_path), account, target)


def assert_a_second_run_changes_nothing(
    api: Api, ns: argparse.Namespace, source: Account, target: Account
) -> None:
    """The same command again: exit 0, nothing moved or released, no row added at either side
    but the run's own two exports."""
    settled = (counts(api, source), counts(api, target))
    assert migrate(api, ns) == EXIT_OK
    second = json.loads((ns.report_dir / "migration.json").read_text())
    assert "move" not in second["counts"]
    assert "release" not in second["counts"]
    exports = {"exports": 2}  # the second run's own two exports (one per side)
    after = (counts(api, source), counts(api, target))
    assert [{k: v for k, v in side.items() if k not in exports} for side in after] == [
        {k: v for k, v in side.items() if k not in exports} for side in settled
    ]


def test_gateway_invoices_move_to_embedded_credit_as_orders(
    api: Api, account: Account, tmp_path: Path
) -> None:
    target = api.new_account(seed=11)
    book(api, account, orders=15, kind="gateway")
    ns = args(account, target, tmp_path, source="gateway", target="sandbank")
    assert migrate(api, ns) == EXIT_OK
    orders = api.get("/v1/orders", headers=target.headers, params={"limit": 100}).json()["data"]
    assert len(orders) == 10
    assert {o["status"] for o in orders} == {"authorized", "captured"}
    assert migrate(api, ns) == EXIT_OK
    assert (
        len(api.get("/v1/orders", headers=target.headers, params={"limit": 100}).json()["data"])
        == 10
    )


def test_a_copy_already_at_the_target_fails_the_check_with_exit_1(
    api: Api, account: Account, tmp_path: Path
) -> None:
    target = api.new_account(seed=11)
    book(api, account, orders=3)
    orders = api.get("/v1/orders", headers=account.headers, params={"status": "authorized"})
    order = orders.json()["data"][0]
    invoice_by_hand_twice(api, "/gateway/v1", target, f"authorized:{order['id']}", order["amount"])
    assert migrate(api, args(account, target, tmp_path)) == EXIT_INVARIANT
    report = json.loads((tmp_path / "report" / "migration.json").read_text())
    failed = {c["name"] for c in report["checks"] if not c["ok"]}
    assert "every_open_obligation_once" in failed


def invoice_by_hand_twice(api: Api, prefix: str, target: Account, key: str, amount: int) -> None:
    """Someone replayed the obligation `key` by hand as two invoices at the target."""
    for n in (1, 2):
        r = api.post(
            f"{prefix}/invoices",
            headers={**target.headers, "Idempotency-Key": f"by-hand-{n}"},
            json={
                "number": f"migrated:{key}",
                "amount": amount,
                "customer": {"name": "x", "email": "x@x.test", "external_id": "BUY-0"},
            },
        )
        assert r.status_code == 201, r.text


def test_a_buyer_the_target_declines_stays_at_the_source_and_exits_3(
    api: Api, account: Account, tmp_path: Path
) -> None:
    target = api.new_account(seed=11)
    r = api.post(
        "/gateway/v1/invoices",
        headers=account.headers,
        json={
            "number": "INV-1",
            "amount": 5_000,
            "customer": {"name": "Risky", "email": "ap+decline@risky.test", "external_id": "R-1"},
        },
    )
    assert r.status_code == 201, r.text
    ns = args(account, target, tmp_path, source="gateway", target="sandbank")
    assert migrate(api, ns) == EXIT_UNFINISHED
    report = json.loads((tmp_path / "report" / "migration.json").read_text())
    assert all(c["ok"] for c in report["checks"])  # nothing lost: it is still open at the source
    assert "not approved" in report["failures"][0]
    invoice = api.get(f"/gateway/v1/invoices/{r.json()['id']}", headers=account.headers)
    assert invoice.json()["status"] == "draft"


@pytest.mark.parametrize(
    "case",
    [
        ({"from_url": "ftp://x"}, "--from-url must be an http(s) URL"),
        ({"concurrency": 0}, "--concurrency must be 1-32"),
        ({"to_account": None}, "a cut-over needs --to-account"),
        ({"from_key": "sk_test_wrong"}, "refused the credentials"),
        ({"to_account": "acct_missing"}, "no such account"),
        ({"admin_token": "sbadm_wrong"}, "refused the credentials"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    api: Api,
    account: Account,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: tuple[dict[str, Any], str],
) -> None:
    change, message = case
    target = api.new_account(seed=11)
    book(api, account, orders=3)
    assert migrate(api, args(account, target, tmp_path, **change)) == EXIT_INPUT
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_the_bench_at_300_orders_with_faults_finds_no_duplicate_and_no_lost_obligation() -> None:
    """The benchmark's own run, small: 1 % of requests fail (half after commit)."""
    out = asyncio.run(bench.run(300, "native-gateway", timeout=120))
    assert out["faults_fired"] > 0
    assert out["retries"] >= out["faults_fired"] - 2
    assert (out["duplicates"], out["lost"], out["step_failures"]) == (0, 0, 0)
    assert all(out["invariants"].values())
    assert out["second_run_moves"] == 0
    assert out["counts"]["move"]["authorized"] > 0
    assert out["counts"]["move"]["receivable"] > 0


# --- traditional invoicing (`invoicing`), with each of the others -----------------------------
BOOKS = {"sandbank": "native", "gateway": "gateway", "invoicing": "invoicing", "vcard": "vcard"}
# The invoicing book of 30: 10 paid (history), then 7 fresh POs, 7 open invoices, 6 POs of
# twice an invoice's amount invoiced once (the invoice moves, the PO's rest stays).
INVOICING_MOVES = {"authorized": 7, "receivable": 13}


def open_at(api: Api, target: Account, provider: str) -> list[dict[str, Any]]:
    """The objects the migration made at the target (each named `migrated:<key>`)."""
    paths = {
        "gateway": ["/gateway/v1/invoices"],
        "sandbank": ["/v1/orders"],
        "invoicing": ["/invoicing/v1/purchase_orders", "/invoicing/v1/invoices"],
        "vcard": ["/vcards/v1/invoices"],
    }[provider]
    return [
        obj
        for path in paths
        for obj in api.get(path, headers=target.headers, params={"limit": 100}).json()["data"]
    ]


@pytest.mark.parametrize(
    "case",
    [
        ("invoicing", "gateway", INVOICING_MOVES),
        ("gateway", "invoicing", {"authorized": 5, "receivable": 5}),
        ("invoicing", "sandbank", INVOICING_MOVES),
        ("sandbank", "invoicing", {"authorized": 10, "receivable": 9}),
        ("vcard", "invoicing", {"authorized": 5, "receivable": 5}),
        ("invoicing", "vcard", INVOICING_MOVES),
        ("vcard", "sandbank", {"authorized": 5, "receivable": 5}),
    ],
    ids=lambda c: f"{c[0]}-to-{c[1]}",
)
def test_invoicing_pairs_dry_run_then_cut_over_then_a_second_run_changes_nothing(
    api: Api, account: Account, tmp_path: Path, case: tuple[str, str, dict[str, int]]
) -> None:
    source, target, moves = case
    to = api.new_account(seed=11)
    book(api, account, orders=15 if source in ("gateway", "vcard") else 30, kind=BOOKS[source])
    ns = args(account, to, tmp_path, source=source, target=target)
    before = (counts(api, account), counts(api, to))
    assert migrate(api, argparse.Namespace(**{**vars(ns), "dry_run": True})) == EXIT_OK
    assert (counts(api, account), counts(api, to)) == before
    planned = json.loads((tmp_path / "report" / "migration.json").read_text())["counts"]
    assert planned["move"] == moves
    assert migrate(api, ns) == EXIT_OK
    report = json.loads((tmp_path / "report" / "migration.json").read_text())
    assert report["counts"]["move"] == moves
    assert all(c["ok"] for c in report["checks"])
    made = open_at(api, to, target)
    assert len(made) == sum(moves.values())
    assert_a_second_run_changes_nothing(api, ns, account, to)
    assert len(open_at(api, to, target)) == len(made)


def test_invoicing_keeps_the_rest_of_a_partly_invoiced_po_and_says_why(
    api: Api, account: Account, tmp_path: Path
) -> None:
    to = api.new_account(seed=11)
    book(api, account, orders=30, kind="invoicing")
    assert migrate(api, args(account, to, tmp_path, source="invoicing", dry_run=True)) == EXIT_OK
    report = json.loads((tmp_path / "report" / "migration.json").read_text())
    assert report["counts"]["stay"] == {"authorized": 6}
    stays = {s["why"] for s in report["steps"] if s["action"] == "stay"}
    assert stays == {"the uninvoiced rest of a partly invoiced purchase order"}


def test_an_obligation_held_twice_at_an_invoicing_target_fails_with_exit_1(
    api: Api, account: Account, tmp_path: Path
) -> None:
    to = api.new_account(seed=11)
    book(api, account, orders=3)
    orders = api.get("/v1/orders", headers=account.headers, params={"status": "authorized"})
    order = orders.json()["data"][0]
    number = f"migrated:authorized:{order['id']}"  # replayed by hand as a PO and an invoice
    buyer = {"name": "x", "id": "BUY-0", "email": "x@x.test"}
    r = api.post(
        "/invoicing/v1/purchase_orders",
        headers=to.headers,
        json={"number": number, "buyer": buyer, "amount": order["amount"]},
    )
    assert r.status_code == 201, r.text
    r = api.post(
        "/invoicing/v1/invoices",
        headers=to.headers,
        json={
            "big": {"invoice_number": number},
            "buyer": buyer,
            "it1": [{"quantity": 1, "unit_price": order["amount"]}],
            "tds": {"amount": order["amount"]},
        },
    )
    assert r.status_code == 201, r.text
    assert migrate(api, args(account, to, tmp_path, target="invoicing")) == EXIT_INVARIANT
    report = json.loads((tmp_path / "report" / "migration.json").read_text())
    failed = {c["name"] for c in report["checks"] if not c["ok"]}
    assert {"every_open_obligation_once", "no_history_duplicated"} <= failed


def test_invoices_in_collections_and_of_a_buyer_with_unapplied_cash_stay_at_invoicing(
    api: Api, account: Account, tmp_path: Path
) -> None:
    def invoice(number: str, tag: str, net_days: int) -> None:
        r = api.post(
            "/invoicing/v1/invoices",
            headers=account.headers,
            json={
                "big": {"invoice_number": number},
                "buyer": {"name": f"Buyer {tag}", "id": tag, "email": f"ap+{tag}@b.test"},
                "itd": {"net_days": net_days},
                "it1": [{"quantity": 1, "unit_price": 5_000}],
                "tds": {"amount": 5_000},
            },
        )
        assert r.status_code == 201, r.text

    invoice("INV-1", "defaults", 0)
    invoice("INV-2", "no_reference", 0)
    api.post(f"/_sandbox/accounts/{account.id}/clock/advance", headers=ADMIN, json={"by": "31d"})
    invoice("INV-3", "no_reference", 30)
    invoice("INV-4", "pays_on_time", 30)
    to = api.new_account(seed=11)
    ns = args(account, to, tmp_path, source="invoicing", dry_run=True)
    assert migrate(api, ns) == EXIT_OK
    report = json.loads((tmp_path / "report" / "migration.json").read_text())
    assert sorted(s["buyer"] for s in report["steps"] if s["action"] == "stay") == [
        "defaults",
        "no_reference",
        "no_reference",
    ]
    why = {s["buyer"]: (s["action"], s["why"]) for s in report["steps"]}
    assert why == {
        "defaults": ("stay", "collections at the source: its dunning stays there"),
        "no_reference": (
            "stay",
            "the buyer has unapplied cash at the source: apply it first",
        ),
        "pays_on_time": ("move", ""),
    }


def test_what_is_on_a_virtual_card_stays_and_the_rest_moves(
    api: Api, account: Account, tmp_path: Path
) -> None:
    r = api.post(
        "/vcards/v1/invoices",
        headers=account.headers,
        json={
            "number": "INV-1",
            "amount": 8_000,
            "processing": "manual",  # the card the AP sends is not captured
            "customer": {"name": "Card AP", "email": "ap@cards.test", "external_id": "VC-1"},
        },
    )
    assert r.status_code == 201, r.text
    invoice = r.json()["id"]
    path = f"/vcards/v1/invoices/{invoice}/issue"
    assert api.post(path, headers=account.headers, json={}).status_code == 200
    api.post(f"/_sandbox/accounts/{account.id}/clock/advance", headers=ADMIN, json={"by": "31d"})
    carded = api.get(f"/vcards/v1/invoices/{invoice}", headers=account.headers).json()
    assert carded["carded_amount"] > 0, carded
    to = api.new_account(seed=11)
    ns = args(account, to, tmp_path, source="vcard", target="gateway")
    assert migrate(api, ns) == EXIT_OK
    report = json.loads((tmp_path / "report" / "migration.json").read_text())
    stays = [s for s in report["steps"] if s["action"] == "stay"]
    assert [(s["key"], s["amount"]) for s in stays] == [
        (f"authorized:card:{invoice}", carded["carded_amount"])
    ]
    assert "virtual card" in stays[0]["why"]
    moved = sum(s["amount"] for s in report["steps"] if s["action"] == "move")
    assert moved == carded["amount_due"] - carded["carded_amount"] - carded["pending_amount"]


def test_an_obligation_held_twice_at_a_virtual_cards_target_fails_with_exit_1(
    api: Api, account: Account, tmp_path: Path
) -> None:
    to = api.new_account(seed=11)
    book(api, account, orders=3, kind="invoicing")
    po = api.get("/invoicing/v1/purchase_orders", headers=account.headers).json()["data"][0]
    invoice_by_hand_twice(api, "/vcards/v1", to, f"authorized:{po['id']}", po["amount"])
    ns = args(account, to, tmp_path, source="invoicing", target="vcard")
    assert migrate(api, ns) == EXIT_INVARIANT
    report = json.loads((tmp_path / "report" / "migration.json").read_text())
    failed = {c["name"] for c in report["checks"] if not c["ok"]}
    assert {"every_open_obligation_once", "no_history_duplicated"} <= failed
