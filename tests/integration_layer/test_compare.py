"""The comparison of the approaches (`sandbank integration compare`): a small seeded book
through every adapter against the in-process simulator gives sane figures, each approach's
own: embedded credit pays the seller within days and keeps the credit risk; gateway + net
terms waits for the buyers, leaves the risk with the seller and raises collections tickets;
virtual cards wait for the AP's cards (late, expired, short or never: tickets and unpaid);
traditional invoicing leaves the mistyped and missing references unmatched (reconciliation
discrepancies) and dunning raises tickets. The same seed gives the same table."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from factories import ADMIN_TOKEN, BASE_URL

from integration import cli
from integration.adapters import PROVIDERS
from integration.adapters.approaches import approaches
from integration.compare import Comparison, Mix, Simulator, compare, plan
from simulator.app import SandbankApp

MIX = Mix(late=0.25, partial=0.1, defaults=0.15, split=0.3, refunds=0.15, disputes=0.25)


# A book of 10 whose buyers show every approach's own manual work (checked below).
SEED = 24
UNMATCHED = ("typo_reference", "po_reference", "no_reference")


def run(app: SandbankApp, tmp: Path, seed: int = SEED) -> Comparison:
    sim = Simulator(BASE_URL, ADMIN_TOKEN, httpx.ASGITransport(app=app))
    tmp.mkdir(parents=True, exist_ok=True)
    return asyncio.run(compare(sim, seed=seed, orders=10, days=60, mix=MIX, workdir=tmp))


def test_the_same_book_through_every_approach_gives_sane_and_repeatable_figures(
    app: SandbankApp, tmp_path: Path
) -> None:
    first = run(app, tmp_path / "one")
    assert sorted(f.approach for f in first.figures) == sorted(PROVIDERS)
    book = plan(SEED, 10, MIX)
    unpaid_buyers = sum(o.behaviour != "pays_on_time" for o in book)
    assert unpaid_buyers > 0
    assert any(o.dispute for o in book)
    assert any(o.behaviour == "defaults" for o in book)
    by = {f.approach: f for f in first.figures}
    # The approaches' own habits, on the same buyers (`Approach.tag`).
    tags = {
        a.provider: [a.tag(o.behaviour, o.ap_roll) for o in book] for a in approaches(PROVIDERS)
    }
    unmatched = sum(t in UNMATCHED for t in tags["invoicing"])
    assert unmatched > 0
    assert {"card_expires", "over_limit"} & set(tags["vcard"])
    for f in first.figures:
        assert f.placed == f.orders == 10
        assert f.calls_per_order >= 2  # at least placing and shipping
        assert f.shipped > 0
        assert sum(f.buyers.values()) == 10
        if f.settlements_reported:
            if f.approach != "invoicing":
                assert f.discrepancies == 0, f.discrepancy_kinds
            # A lockbox charges per deposit (0 by default), a processor per payment.
            assert 100 <= f.fee_bps <= 400 or (f.approach, f.fee_bps) == ("invoicing", 0)
            assert 0 <= f.seller_risk <= f.shipped - f.refunded
    embedded, gateway, vcard, edi = by["sandbank"], by["gateway"], by["vcard"], by["invoicing"]
    assert embedded.days_to_cash is not None
    assert embedded.days_to_cash < 5  # paid out on shipment
    assert embedded.seller_risk_share < 50  # only the disputes it lost
    assert embedded.seller_risk_share < gateway.seller_risk_share
    assert (
        embedded.tickets == embedded.tickets_by_kind.get("dispute", 0) == (embedded.disputes_opened)
    )
    for seller_carries in (gateway, vcard, edi):
        assert seller_carries.days_to_cash is not None
        assert seller_carries.days_to_cash > 25  # net 30 terms
        assert seller_carries.seller_risk_share == 100.0
        assert seller_carries.unpaid > 0  # the defaulting buyers
        assert seller_carries.tickets_by_kind.get("collection", 0) >= 1
    # Every unmatched remittance line is a person's work (one per invoice paid that way).
    assert edi.discrepancies >= unmatched
    assert set(edi.discrepancy_kinds) == {"missing_in_ledger"}  # unidentified cash, not duplicates
    assert edi.fee_bps == 0
    # Late, expired, short and missing cards are chased like late invoices.
    late_cards = sum(t in ("pays_late", "card_expires", "defaults") for t in tags["vcard"])
    assert vcard.tickets_by_kind["collection"] >= late_cards
    text = first.render_text()
    assert all(f.label in text for f in first.figures)

    again = run(app, tmp_path / "two")
    assert again.json() == first.json()
    assert again.render_text() == text


def test_the_book_is_planned_from_its_seed() -> None:
    assert plan(5, 50) == plan(5, 50)
    assert plan(5, 50) != plan(6, 50)
    book = plan(5, 200, Mix(defaults=0.5, late=0.0, partial=0.0))
    assert 60 <= sum(o.behaviour == "defaults" for o in book) <= 140
    for o in book:
        assert sum(o.shipments) == o.amount
        assert o.refund < o.shipments[0]


def test_an_adapter_without_a_registry_entry_still_runs_under_its_name() -> None:
    listed = approaches(("gateway", "newcomer", "sandbank"))
    assert [a.provider for a in listed] == ["sandbank", "gateway", "newcomer"]
    newcomer = listed[-1]
    assert newcomer.label == "newcomer"
    assert newcomer.config("http://sim", {"api_key": "k"}) == {
        "provider": "newcomer",
        "base_url": "http://sim",
        "api_key": "k",
    }
    assert newcomer.tag("pays_late") == "pays_late"
    assert listed[0].tag("pays_partial") == "pays_late"  # embedded credit has no partial payer


def test_an_on_time_buyer_has_the_habit_its_roll_falls_in_and_other_buyers_keep_theirs() -> None:
    gateway, vcard, edi = approaches(("gateway", "vcard", "invoicing"))
    assert edi.tag("pays_on_time", 0.05) == "typo_reference"
    assert edi.tag("pays_on_time", 0.12) == "po_reference"
    assert edi.tag("pays_on_time", 0.99) == "pays_on_time"
    assert edi.tag("defaults", 0.05) == "defaults"  # habits are the on-time payers' only
    assert gateway.tag("pays_on_time", 0.1) == "pays_short"
    assert vcard.tag("pays_on_time", 0.35) == "over_limit"
    assert vcard.tag("pays_partial", 0.5) == "pays_late"  # an AP sends a card or not
    rolls = [o.ap_roll for o in plan(5, 50)]
    assert rolls == [o.ap_roll for o in plan(5, 50)] != [o.ap_roll for o in plan(6, 50)]
    assert all(0 <= r < 1 for r in rolls)


@pytest.mark.parametrize(
    "argv",
    [
        ["compare", "--orders", "0"],
        ["compare", "--days", "x"],
        ["compare", "--approach", "nope"],
    ],
)
def test_bad_compare_arguments_are_one_line_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_url_without_its_admin_token_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SANDBANK_ADMIN_TOKEN", raising=False)
    assert cli.main(["compare", "--provider-url", "http://127.0.0.1:9"]) == 2
    assert "--admin-token" in capsys.readouterr().err


def test_an_unreachable_simulator_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["compare", "--provider-url", "http://127.0.0.1:9", "--admin-token", "t"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "127.0.0.1:9" in err[0]


def test_unmatched_edi_deposits_of_one_amount_are_each_unidentified_cash_not_duplicates(
    app: SandbankApp, tmp_path: Path
) -> None:
    """Seed 7's first 12 orders: a refunded first invoice leaves the same amount due as its
    order's second one, and both are paid with unusable references: two deposits of one amount
    from two remittances, each `missing_in_ledger` (the same deposit twice would be a
    `duplicate`)."""
    sim = Simulator(BASE_URL, ADMIN_TOKEN, httpx.ASGITransport(app=app))
    comparison = asyncio.run(
        compare(sim, seed=7, orders=12, days=60, providers=("invoicing",), workdir=tmp_path)
    )
    [edi] = comparison.figures
    assert edi.discrepancy_kinds == {"missing_in_ledger": 3}
    assert edi.discrepancies == 3
