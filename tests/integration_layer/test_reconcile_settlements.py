"""Settlement reconciliation against the real simulator, in-process.

Orders are placed, approved and shipped through the order-to-cash service; the account's clock
is advanced so the provider batches and pays the lines; `run_reconciliation` (and the
`reconcile` command) then compares the reports with the service's ledger. Drift comes from the
control plane, and its `injected` record is what each finding is checked against.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import shop_harness
from factories import ADMIN, BASE_URL
from prometheus_client.parser import text_string_to_metric_families
from shop_harness import order_body

from integration.cli import parse_args, run_reconcile
from integration.ledger import Ledger, trial_balances
from integration.model import EventKind
from integration.reconcile import DiscrepancyKind
from integration.settlements import ReconciliationRun, run_reconciliation

K = DiscrepancyKind
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)  # a Sunday: its lines join Monday's batch
RECEIVABLE = "1210 Receivable - Credit provider"
DISPUTED = "1215 Disputed funds held by credit provider"
LOSSES = "6200 Dispute losses"
CASH = "1010 Cash - Operating account"
# What each kind of report drift must show up as.
FINDING = {
    "missing_line": K.MISSING_AT_PROVIDER,
    "duplicate_line": K.DUPLICATE,
    "off_by_one_cent": K.AMOUNT_MISMATCH,
    "late_line": K.LATE,
    "unknown_order": K.UNKNOWN_ORDER,
}


class Shop(shop_harness.Shop):
    """The harness's service, with the steps of a trading week and of a reconciliation."""

    def place_and_ship(self, merchant_order_id: str, ship: int, amount: int = 100_000) -> str:
        """Place, approve (net 30) and ship `ship`; the provider's order id."""
        r = self.post("/orders", order_body(merchant_order_id, amount, line_items=False))
        assert r.status_code == 201, r.text
        self.api.approve(r.json()["provider_checkout_id"])
        return self.ship(merchant_order_id, ship)

    def ship(self, merchant_order_id: str, amount: int) -> str:
        r = self.post(f"/orders/{merchant_order_id}/ship", {"amount": amount})
        assert r.status_code == 200, r.text
        return str(r.json()["provider_order_id"])

    def refund(self, merchant_order_id: str, amount: int) -> None:
        r = self.post(f"/orders/{merchant_order_id}/refund", {"amount": amount})
        assert r.status_code == 200, r.text

    def advance(self, by: str) -> None:
        self.api.advance(self.account, by)

    def drift(self, **switches: int) -> None:
        path = f"/_sandbox/accounts/{self.account.id}/settlement_drift"
        r = self.api.put(path, headers=ADMIN, json=switches)
        assert r.status_code == 200, r.text

    def injected(self) -> list[dict[str, Any]]:
        path = f"/_sandbox/accounts/{self.account.id}/settlement_drift"
        r = self.api.get(path, headers=ADMIN)
        assert r.status_code == 200, r.text
        return list(r.json()["injected"])

    def reconcile(self, **kw: Any) -> ReconciliationRun:
        return self.run(
            run_reconciliation(
                self.service.adapter, self.ledger, self.book, metrics=self.service.metrics, **kw
            )
        )

    def scrape(self) -> dict[str, float]:
        r = self.run(self.http.get("/metrics"))
        assert r.status_code == 200, r.text
        return {
            s.name: s.value
            for family in text_string_to_metric_families(r.text)
            for s in family.samples
            if not s.labels
        }

    def cli(self, *args: str) -> int:
        argv = ["reconcile", "--provider-url", BASE_URL, "--api-key", self.account.api_key]
        argv += ["--db", str(self.db), *args]
        transport = httpx.ASGITransport(app=self.sim)  # type: ignore[arg-type]
        return self.run(run_reconcile(parse_args(argv), transport=transport))


@pytest.fixture
def shop(new_shop: Callable[..., Shop]) -> Shop:
    return new_shop(Shop, wall=lambda: NOW, key_seed=5)


def trade(shop: Shop) -> dict[str, str]:
    """Four days of business, three batches (Mon 2, Tue 3, Wed 4 March), all paid by the end:
    captures, a second shipment and a refund. Returns merchant -> provider order ids."""
    ids = {"SO-1": shop.place_and_ship("SO-1", 100_000)}  # Sunday: Monday's batch
    shop.advance("1d")
    ids["SO-2"] = shop.place_and_ship("SO-2", 50_000)
    shop.refund("SO-1", 10_000)
    shop.advance("1d")  # Monday's batch is made at 00:00 Tuesday
    ids["SO-3"] = shop.place_and_ship("SO-3", 30_000)
    shop.ship("SO-2", 25_000)
    shop.advance("1d")
    ids["SO-4"] = shop.place_and_ship("SO-4", 40_000)
    shop.advance("7d")  # every batch made and paid
    return ids


def settle_everything(shop: Shop) -> None:
    """The receivable from the provider is cleared and the books balance."""
    assert shop.ledger.balance(RECEIVABLE, "USD") == 0
    assert all(sum(tb.values()) == 0 for tb in trial_balances(shop.ledger).values())


# --- the truth -----------------------------------------------------------------------------
def test_reports_that_tell_the_truth_reconcile_clean_and_clear_the_receivable(
    shop: Shop,
) -> None:
    ids = trade(shop)
    run = shop.reconcile()
    assert run.report is not None
    assert run.report.discrepancies == (), run.render_text()
    assert [s.status for s in run.settlements] == ["paid"] * 3
    assert [str(s.batch) for s in run.settlements] == ["2026-03-04", "2026-03-03", "2026-03-02"]
    assert run.report.lines == 6  # five captures and a refund
    fees = sum(s.fees for s in run.settlements)
    assert fees == 2_900 + 1_450 + 870 + 725 + 1_160  # 2.9 % of each capture (net 30)
    (totals,) = run.report.totals
    assert totals.provider_payout == sum(s.payout for s in run.settlements)
    # The ledger does not predict the provider's fees: it expects the gross.
    assert totals.ledger_expected == totals.provider_payout + fees
    # The payouts and fees are in the books: cash is what was paid, nothing is owed any more.
    assert shop.ledger.balance(CASH, "USD") == 245_000 - 10_000 - fees
    settle_everything(shop)
    assert {p.order_id for p in shop.ledger.postings(event_kind=EventKind.CAPTURED)} == set(
        ids.values()
    )
    # Running again writes nothing and finds nothing.
    again = shop.reconcile()
    assert again.posted == 0
    assert again.report is not None
    assert again.report.ok


def test_a_window_of_one_batch_and_no_settlements_yet(shop: Shop) -> None:
    assert shop.reconcile().report is None  # nothing batched yet: nothing to reconcile
    trade(shop)
    run = shop.reconcile(limit=1)
    assert run.report is not None
    assert (str(run.report.since), str(run.report.batch)) == ("2026-03-04", "2026-03-04")
    assert run.report.ok
    assert [str(s.batch) for s in shop.reconcile(since=NOW.date().replace(day=3)).settlements] == [
        "2026-03-04",
        "2026-03-03",
    ]


# --- drift, one kind at a time -----------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(FINDING))
def test_each_kind_of_report_drift_is_found_exactly_and_nothing_else(shop: Shop, kind: str) -> None:
    shop.drift(**{kind: 1})  # the next settlement made (Monday's batch) deviates once
    ids = trade(shop)
    (injected,) = shop.injected()
    assert injected["kind"] == kind
    run = shop.reconcile()
    assert run.report is not None
    (found,) = run.report.discrepancies
    assert found.kind is FINDING[kind], run.render_text()
    assert found.key.order == injected["order_id"]
    if kind == "missing_line":
        # Nothing at the provider to point at: the ledger item it should have settled.
        assert found.line_id is None
        assert found.reference is not None
        (posting,) = [
            p for p in shop.ledger.postings(reference=found.reference) if p.order_id is not None
        ]
        assert posting.order_id == injected["order_id"]
    else:
        assert found.line_id == injected["line_id"]
        first = run.settlements[-1].provider_id  # Monday's, the one the drift went into
        assert injected["settlement_id"] == first
        # A late line is reported where it arrives: the next batch's settlement.
        arrived = run.settlements[-2].provider_id if kind == "late_line" else first
        assert found.settlement_id == arrived
    if kind == "unknown_order":
        assert injected["order_id"] not in ids.values()
    assert run.report.mismatch_rate == 1 / run.report.lines
    # The payouts stay true, so the books still clear whatever the report said.
    settle_everything(shop)


def test_drift_in_three_batches_is_found_in_each_and_nowhere_else(shop: Shop) -> None:
    """Each batch gets a different deviation (set just before it is made); one run over the
    whole window finds all three, with their own lines."""
    shop.drift(duplicate_line=1)
    shop.place_and_ship("SO-1", 100_000)  # Sunday
    shop.advance("1d")
    shop.place_and_ship("SO-2", 50_000)  # Monday
    shop.advance("1d")  # Monday's batch made (00:00 Tuesday): a line twice
    shop.drift(off_by_one_cent=1)
    shop.place_and_ship("SO-3", 30_000)
    shop.advance("1d")  # Tuesday's: a cent off
    shop.drift(unknown_order=1)
    shop.place_and_ship("SO-4", 40_000)
    shop.advance("1d")  # Wednesday's: an invented line
    shop.drift()
    shop.place_and_ship("SO-5", 20_000)
    shop.advance("7d")
    injected = sorted(shop.injected(), key=lambda i: str(i["created_at"]))
    assert [i["kind"] for i in injected] == ["duplicate_line", "off_by_one_cent", "unknown_order"]
    assert len({i["settlement_id"] for i in injected}) == 3
    run = shop.reconcile()
    assert run.report is not None
    found = {(d.kind, d.settlement_id, d.line_id) for d in run.report.discrepancies}
    assert found == {(FINDING[i["kind"]], i["settlement_id"], i["line_id"]) for i in injected}, (
        run.render_text()
    )


# --- disputes --------------------------------------------------------------------------------
def open_dispute(shop: Shop, provider_order_id: str, amount: int) -> str:
    r = shop.api.post(
        f"/_sandbox/orders/{provider_order_id}/disputes",
        headers=ADMIN,
        json={"reason": "product_not_received", "amount": amount},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_disputes_open_won_and_lost_reconcile_clean_and_post_their_holds(shop: Shop) -> None:
    won = shop.place_and_ship("SO-W", 100_000)
    lost = shop.place_and_ship("SO-L", 60_000)
    shop.place_and_ship("SO-OK", 20_000)
    shop.advance("2d")
    won_dp = open_dispute(shop, won, 30_000)
    lost_dp = open_dispute(shop, lost, 60_000)
    shop.advance("5d")  # the dispute lines are batched and paid; both disputes still open
    run = shop.reconcile()
    assert run.report is not None
    assert run.report.ok, run.render_text()
    assert {d.provider_id: d.status for d in run.disputes} == {won_dp: "open", lost_dp: "open"}
    assert shop.ledger.balance(DISPUTED, "USD") == 90_000  # held by the provider
    assert (run.disputed_orders, run.captured_orders) == (2, 3)

    # Evidence that wins one; the other is accepted (lost at once).
    r = shop.api.post(
        f"/v1/disputes/{won_dp}/evidence",
        headers=shop.account.headers,
        json={"evidence": {"shipping_tracking": "1Z999 delivered +win"}},
    )
    assert r.status_code == 200, r.text
    r = shop.api.post(f"/v1/disputes/{lost_dp}/accept", headers=shop.account.headers, json={})
    assert r.status_code == 200, r.text
    shop.advance("20d")  # decided, and the won amount paid back
    run = shop.reconcile()
    assert run.report is not None
    assert run.report.ok, run.render_text()
    assert {d.provider_id: d.status for d in run.disputes} == {won_dp: "won", lost_dp: "accepted"}
    assert shop.ledger.balance(DISPUTED, "USD") == 0
    assert shop.ledger.balance(LOSSES, "USD") == 60_000
    # The disputes' debits outweighed the days' sales: the provider carries the deficit
    # forward (pays nothing) and, until a sale covers it, we owe it 90,000 - 30,000 won back.
    assert shop.ledger.balance(RECEIVABLE, "USD") == -60_000
    shop.place_and_ship("SO-later", 100_000)
    shop.advance("5d")
    run = shop.reconcile()
    assert run.report is not None
    assert run.report.ok, run.render_text()
    assert any(line.kind == "carry_forward" for s in run.settlements for line in s.lines)
    settle_everything(shop)


def test_a_dispute_line_reported_twice_is_a_duplicate_not_a_second_dispute(shop: Shop) -> None:
    order = shop.place_and_ship("SO-D", 100_000)
    shop.advance("2d")
    open_dispute(shop, order, 10_000)
    shop.drift(duplicate_line=1)  # the only line of the next batch: the dispute's
    shop.advance("5d")
    (injected,) = shop.injected()
    run = shop.reconcile()
    assert run.report is not None
    (found,) = run.report.discrepancies
    assert (found.kind, found.line_id, found.key.order) == (
        K.DUPLICATE,
        injected["line_id"],
        order,
    )


# --- metrics ---------------------------------------------------------------------------------
def test_a_run_records_mismatch_rate_settlement_lag_and_disputed_ratio(shop: Shop) -> None:
    before = shop.scrape()
    assert "sandbank_integration_reconciliation_mismatch_rate" not in before
    assert before["sandbank_integration_settlement_lag_seconds_count"] == 0
    shop.drift(off_by_one_cent=1)
    ids = trade(shop)
    open_dispute(shop, ids["SO-4"], 1_000)
    run = shop.reconcile()
    assert run.report is not None
    found = shop.scrape()
    assert found["sandbank_integration_reconciliation_mismatch_rate"] == 1 / 6
    assert found["sandbank_integration_disputed_ratio"] == 1 / 4
    # One observation per capture line of a paid settlement: paid at 00:00 two business days
    # after the capture's batch (Sunday's capture waits for Monday's batch).
    assert found["sandbank_integration_settlement_lag_seconds_count"] == 5
    assert sorted(round(lag / 3600) for lag in run.lags) == [39, 39, 39, 39, 63]
    shop.reconcile()  # the same settlements again: no second observation
    assert shop.scrape()["sandbank_integration_settlement_lag_seconds_count"] == 5


# --- the command line ----------------------------------------------------------------------------
def test_the_command_prints_each_discrepancy_and_exits_1(
    shop: Shop, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    trade(shop)
    assert shop.cli() == 0
    out = capsys.readouterr().out
    assert "Settlements: 3 read (3 paid)" in out
    assert "no discrepancies" in out

    shop.drift(duplicate_line=1)
    shop.place_and_ship("SO-9", 10_000)
    shop.advance("5d")
    (injected,) = shop.injected()
    metrics = tmp_path / "reconcile.prom"
    assert shop.cli("--limit", "1", "--metrics-file", str(metrics)) == 1
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if x.strip().startswith("duplicate ")]
    assert f"line {injected['settlement_id']}/{injected['line_id']}" in line
    assert "discrepancies: 1" in out
    assert "sandbank_integration_reconciliation_mismatch_rate 0.5" in metrics.read_text()


def test_the_command_fails_in_one_line_on_bad_input_or_a_provider_down(
    shop: Shop, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        shop.cli("--since", "2026-13-01")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--since" in err

    r = shop.api.post(
        "/_sandbox/faults/presets/total-outage", headers=ADMIN, json={"account": shop.account.id}
    )
    assert r.status_code in (200, 201), r.text
    assert shop.cli() == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("sandbank integration: error: the provider cannot be reached")


# --- settlement.paid events ----------------------------------------------------------------------
def test_settlement_paid_events_post_the_payout_once_whoever_comes_first(shop: Shop) -> None:
    trade(shop)
    events, _ = shop.run(shop.service.adapter.list_events(None))
    outcomes = [shop.run(shop.service.apply_event(e)) for e in events]
    paid = [e for e in events if e.kind is EventKind.PAYOUT]
    assert len(paid) == 3
    assert outcomes.count("posted") == 3
    assert len(shop.ledger.postings(event_kind=EventKind.PAYOUT)) == 3
    assert [shop.run(shop.service.apply_event(e)) for e in paid] == ["posted"] * 3  # replays
    assert len(shop.ledger.postings(event_kind=EventKind.PAYOUT)) == 3
    run = shop.reconcile()
    assert run.posted == 0  # the events posted every payout and fee already
    assert run.report is not None
    assert run.report.ok
    settle_everything(shop)


def test_a_ledger_file_written_before_postings_named_their_order_is_upgraded(
    tmp_path: Path,
) -> None:
    db = tmp_path / "old.db"
    old = sqlite3.connect(db)
    old.executescript(
        """
        CREATE TABLE postings (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, at TEXT NOT NULL,
            event_kind TEXT NOT NULL, reference TEXT NOT NULL, currency TEXT NOT NULL,
            memo TEXT NOT NULL, terms TEXT, reverses TEXT UNIQUE, replaces TEXT);
        CREATE TABLE legs (posting_id TEXT NOT NULL, n INTEGER NOT NULL, account TEXT NOT NULL,
            debit INTEGER NOT NULL, credit INTEGER NOT NULL, PRIMARY KEY (posting_id, n));
        INSERT INTO postings (id, at, event_kind, reference, currency, memo)
            VALUES ('pst_old', '2026-03-01T09:00:00+00:00', 'captured', 'cap_old', 'USD', '');
        INSERT INTO legs VALUES ('pst_old', 0, '1210 Receivable - Credit provider', 500, 0);
        INSERT INTO legs VALUES ('pst_old', 1, '4000 Revenue - Sales', 0, 500);
        """
    )
    old.commit()
    old.close()
    with Ledger.sqlite(db) as ledger:
        (before,) = ledger.postings()
        assert (before.order_id, before.figures, before.gross) == (None, (), 500)
        new = ledger.post(
            EventKind.CAPTURED, {"gross": 700}, "USD", "cap_new", at=NOW, order_id="o"
        )
        assert new is not None
    with Ledger.sqlite(db) as ledger:
        after = ledger.postings(reference="cap_new")[0]
        assert (after.order_id, after.figures, after.gross) == ("o", (("gross", 700),), 700)
