"""Underwriting: every magic value, and the seeded score for everything else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.domain import decisions
from simulator.domain.decisions import BusinessFacts, decide, magic_tags, offered_terms
from simulator.rng import SeededRng


def facts(email: str = "ap@acme.test", legal_name: str = "Acme Inc", **kw: object) -> BusinessFacts:
    base: dict[str, object] = {"annual_revenue": 500_000_000, "years_in_business": 5}
    base.update(kw)
    return BusinessFacts(legal_name=legal_name, email=email, **base)  # type: ignore[arg-type]


def dice(seed: int = 1) -> SeededRng:
    return SeededRng("acct_test", seed)


class CountingDice:
    """Fails the test if a magic value still rolls the dice."""

    def randint(self, low: int, high: int) -> int:
        raise AssertionError("magic values must not consume randomness")


def test_plus_approve_approves_with_the_magic_limit() -> None:
    d = decide(facts("ap+approve@acme.test"), CountingDice())
    assert (d.outcome, d.limit, d.magic) == ("approved", decisions.MAGIC_APPROVE_LIMIT, "approve")


def test_plus_decline_declines() -> None:
    d = decide(facts("ap+decline@acme.test"), CountingDice())
    assert (d.outcome, d.reason, d.magic, d.limit) == (
        "declined",
        "credit_declined",
        "decline",
        None,
    )


def test_plus_review_goes_to_review_that_approves_on_its_own() -> None:
    d = decide(facts("ap+review@acme.test"), CountingDice())
    assert (d.outcome, d.review_outcome, d.review_auto) == ("review", "approved", True)
    assert d.limit == decisions.MAGIC_APPROVE_LIMIT
    assert d.reason == "manual_review"


def test_plus_review_decline_goes_to_review_that_declines_on_its_own() -> None:
    d = decide(facts("ap+review_decline@acme.test"), CountingDice())
    assert (d.outcome, d.review_outcome, d.review_auto) == ("review", "declined", True)
    assert d.limit is None


def test_plus_review_manual_waits_for_the_underwriter() -> None:
    d = decide(facts("ap+review_manual@acme.test"), CountingDice())
    assert (d.outcome, d.review_auto, d.reason) == ("review", False, "manual_review")


def test_plus_documents_waits_for_documents() -> None:
    d = decide(facts("ap+documents@acme.test"), CountingDice())
    assert (d.outcome, d.review_auto, d.reason) == ("review", False, "documents_required")


@pytest.mark.parametrize(
    ("tag", "limit"), [("limit_500", 500_00), ("limit_1", 100), ("limit_0", 0)]
)
def test_plus_limit_n_approves_with_n_major_units(tag: str, limit: int) -> None:
    d = decide(facts(f"ap+{tag}@acme.test"), CountingDice())
    assert (d.outcome, d.limit, d.magic) == ("approved", limit, tag)


def test_legal_name_bracket_tag_is_a_magic_value() -> None:
    d = decide(facts(legal_name="Acme [decline]"), CountingDice())
    assert (d.outcome, d.magic) == ("declined", "decline")


def test_bracket_tags_ignore_case_and_spaces() -> None:
    assert magic_tags(facts(legal_name="Acme [ Review_Manual ]")) == ["review_manual"]
    assert magic_tags(facts(email="AP+APPROVE@acme.test")) == ["approve"]


def test_email_tags_come_before_legal_name_tags_and_the_first_wins() -> None:
    f = facts("ap+decline@acme.test", legal_name="Acme [approve]")
    assert magic_tags(f) == ["decline", "approve"]
    assert decide(f, CountingDice()).outcome == "declined"


def test_several_email_tags_are_read_in_order_and_unknown_ones_ignored() -> None:
    f = facts("ap+hello+limit_700+approve@acme.test")
    assert magic_tags(f) == ["limit_700", "approve"]
    assert decide(f, CountingDice()).limit == 700_00


@pytest.mark.parametrize(
    "email",
    ["ap@acme.test", "ap+approved@acme.test", "ap+limit_@acme.test", "ap+limit_x@acme.test"],
)
def test_near_miss_tags_are_not_magic(email: str) -> None:
    assert magic_tags(facts(email)) == []


def test_tags_after_the_at_sign_are_not_read() -> None:
    assert magic_tags(facts("ap@acme+decline.test")) == []


@given(seed=st.integers(min_value=0, max_value=2**63 - 1), counter=st.integers(0, 1000))
def test_scored_decision_is_deterministic_for_the_same_seed(seed: int, counter: int) -> None:
    f = facts()
    assert decide(f, SeededRng("acct_x", seed, counter)) == decide(
        f, SeededRng("acct_x", seed, counter)
    )


def test_scored_decisions_differ_across_seeds() -> None:
    f = facts()  # 450 + 100 (revenue) + 75 (years) = 625, then noise in +-60
    scores = {decide(f, dice(seed)).score for seed in range(40)}
    outcomes = {decide(f, dice(seed)).outcome for seed in range(40)}
    assert len(scores) > 10
    assert outcomes == {"approved", "review", "declined"}


@given(
    revenue=st.integers(0, 10**13),
    years=st.integers(0, 500),
    tax_id=st.none() | st.just("12-3456789"),
    seed=st.integers(0, 10_000),
)
def test_scores_and_limits_stay_within_bounds(
    revenue: int, years: int, tax_id: str | None, seed: int
) -> None:
    d = decide(facts(annual_revenue=revenue, years_in_business=years, tax_id=tax_id), dice(seed))
    assert d.score is not None
    assert 300 <= d.score <= 850
    if d.outcome == "approved":
        assert d.score >= decisions.APPROVE_AT
    elif d.outcome == "review":
        assert decisions.REVIEW_AT <= d.score < decisions.APPROVE_AT
        assert d.review_outcome in ("approved", "declined")
        assert (d.limit is None) == (d.review_outcome == "declined")
    else:
        assert d.score < decisions.REVIEW_AT
        assert d.limit is None
    if d.limit is not None:
        assert decisions.MIN_LIMIT <= d.limit <= decisions.MAX_LIMIT
        assert d.limit % 100_00 == 0


def test_a_strong_business_is_approved_and_a_new_tiny_one_declined() -> None:
    strong = facts(
        annual_revenue=50_000_000_00, years_in_business=20, tax_id="12-3", domain="acme.test"
    )
    weak = facts(annual_revenue=0, years_in_business=0)
    for seed in range(20):
        assert decide(strong, dice(seed)).outcome == "approved"
        assert decide(weak, dice(seed)).outcome == "declined"


def test_offered_terms_are_all_terms_unless_declined() -> None:
    assert offered_terms(decide(facts("ap+approve@a.test"), dice())) == list(decisions.TERMS)
    assert offered_terms(decide(facts("ap+review@a.test"), dice())) == list(decisions.TERMS)
    assert offered_terms(decide(facts("ap+decline@a.test"), dice())) == []


@pytest.mark.parametrize(("currency", "limit"), [("USD", 500_00), ("JPY", 500), ("KWD", 500_000)])
def test_plus_limit_n_counts_major_units_of_the_buyers_currency(currency: str, limit: int) -> None:
    d = decide(facts("ap+limit_500@acme.test", currency=currency), CountingDice())
    assert d.limit == limit


@pytest.mark.parametrize(("currency", "unit"), [("USD", 100), ("JPY", 1), ("BHD", 1000)])
def test_magic_approve_limit_is_50_000_in_major_units(currency: str, unit: int) -> None:
    assert (
        decide(facts("ap+approve@a.test", currency=currency), CountingDice()).limit == 50_000 * unit
    )


@given(seed=st.integers(0, 10_000), revenue_major=st.integers(0, 10**9))
def test_scoring_in_a_zero_decimal_currency_matches_the_same_revenue_in_usd(
    seed: int, revenue_major: int
) -> None:
    """Revenue bands and limits are in major units: 1 JPY counts like 1.00 USD."""
    usd = decide(facts(annual_revenue=revenue_major * 100, currency="USD"), dice(seed))
    jpy = decide(facts(annual_revenue=revenue_major, currency="JPY"), dice(seed))
    assert (usd.outcome, usd.score) == (jpy.outcome, jpy.score)
    if usd.limit is not None:
        assert jpy.limit == usd.limit // 100
