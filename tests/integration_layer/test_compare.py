"""The comparison of the approaches (`sandbank integration compare`): a small seeded book
through every adapter against the in-process simulator gives sane figures (embedded credit
pays the seller within days and keeps the credit risk; gateway + net terms waits for the
buyers, leaves the risk with the seller and raises collections tickets) and the same seed
gives the same table."""

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


def run(app: SandbankApp, tmp: Path, seed: int = 3) -> Comparison:
    sim = Simulator(BASE_URL, ADMIN_TOKEN, httpx.ASGITransport(app=app))
    tmp.mkdir(parents=True, exist_ok=True)
    return asyncio.run(compare(sim, seed=seed, orders=10, days=60, mix=MIX, workdir=tmp))


def test_the_same_book_through_every_approach_gives_sane_and_repeatable_figures(
    app: SandbankApp, tmp_path: Path
) -> None:
    first = run(app, tmp_path / "one")
    assert sorted(f.approach for f in first.figures) == sorted(PROVIDERS)
    book = plan(3, 10, MIX)
    unpaid_buyers = sum(o.behaviour != "pays_on_time" for o in book)
    assert unpaid_buyers > 0
    assert any(o.dispute for o in book)
    by = {f.approach: f for f in first.figures}
    for f in first.figures:
        assert f.placed == f.orders == 10
        assert f.calls_per_order >= 2  # at least placing and shipping
        assert f.shipped > 0
        if f.settlements_reported:
            assert f.discrepancies == 0, f.discrepancy_kinds
            # A lockbox charges per deposit (0 by default), a processor per payment.
            assert 100 <= f.fee_bps <= 400 or (f.approach, f.fee_bps) == ("invoicing", 0)
            assert 0 <= f.seller_risk <= f.shipped - f.refunded
    embedded, gateway = by["sandbank"], by["gateway"]
    assert embedded.days_to_cash is not None
    assert embedded.days_to_cash < 5  # paid out on shipment
    assert embedded.seller_risk_share < 50  # only the disputes it lost
    assert (
        embedded.tickets == embedded.tickets_by_kind.get("dispute", 0) == (embedded.disputes_opened)
    )
    assert gateway.days_to_cash is not None
    assert gateway.days_to_cash > 25  # net 30 terms
    assert gateway.seller_risk_share == 100.0
    assert gateway.tickets_by_kind.get("collection", 0) >= 1
    assert gateway.unpaid > 0  # the defaulting buyers
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
