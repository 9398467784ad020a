"""Underwriting: magic values first (documented in README), otherwise a seeded score.

Magic values are tags, read from the buyer's email sub-address (`ap+decline@acme.test`,
several tags joined by `+`) or from square brackets in the legal name (`Acme Inc [decline]`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Protocol

from simulator.domain.money import CURRENCIES

TERMS = ("net30", "net60", "installments_3", "installments_6", "installments_12")
Outcome = Literal["approved", "declined", "review"]

# Score bands (300-850 like a consumer bureau score, because that is what people expect).
APPROVE_AT = 680
REVIEW_AT = 620
# Limits and revenue bands are set in major units and scaled by the currency's exponent, so
# `+limit_500` is 500.00 USD, 500 JPY or 500.000 KWD. The *_LIMIT constants are the USD values.
MIN_LIMIT_MAJOR = 1_000
MAX_LIMIT_MAJOR = 1_000_000
MAGIC_APPROVE_MAJOR = 50_000
MIN_LIMIT = MIN_LIMIT_MAJOR * 100
MAX_LIMIT = MAX_LIMIT_MAJOR * 100
MAGIC_APPROVE_LIMIT = MAGIC_APPROVE_MAJOR * 100

_TAG = re.compile(
    r"^(approve|decline|review|review_decline|review_manual|documents|limit_[0-9]{1,9})$"
)


class Dice(Protocol):
    """The slice of the account RNG the engine needs."""

    def randint(self, low: int, high: int) -> int: ...


@dataclass(frozen=True, slots=True)
class BusinessFacts:
    legal_name: str
    email: str
    annual_revenue: int  # minor units of the buyer's currency
    years_in_business: int
    tax_id: str | None = None
    domain: str | None = None
    currency: str = "USD"  # what `annual_revenue` and the resulting limit are counted in

    @property
    def unit(self) -> int:
        """Minor units per major unit of the currency (100 for USD, 1 for JPY)."""
        return minor_per_major(self.currency)


def minor_per_major(currency: str) -> int:
    return int(10 ** CURRENCIES.get(currency, 2))  # int ** int is typed Any (negative powers)


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    reason: str | None = None
    limit: int | None = None  # minor units; set when approved (or when review approves later)
    score: int | None = None
    magic: str | None = None  # the tag that forced this outcome, if any
    # For `review`: what the review resolves to, and whether it resolves by itself on the clock.
    review_outcome: Literal["approved", "declined"] | None = None
    review_auto: bool = True


def magic_tags(facts: BusinessFacts) -> list[str]:
    """Tags in the order they appear: email sub-address first, then bracketed legal-name tags."""
    local = facts.email.split("@", 1)[0].lower()
    tags = local.split("+")[1:]
    tags += [t.strip().lower() for t in re.findall(r"\[([^\]]*)\]", facts.legal_name)]
    return [t for t in tags if _TAG.match(t)]


def _score(facts: BusinessFacts, dice: Dice) -> int:
    revenue_major = facts.annual_revenue // facts.unit
    revenue_points = (
        0
        if revenue_major < 100_000
        else 50
        if revenue_major < 1_000_000
        else 100
        if revenue_major < 10_000_000
        else 150
    )
    years_points = min(150, max(0, facts.years_in_business) * 15)
    tax_points = 25 if facts.tax_id else 0
    email_domain = facts.email.rsplit("@", 1)[-1].lower()
    domain_points = 25 if facts.domain and facts.domain.lower() == email_domain else 0
    noise = dice.randint(-60, 60)
    return max(
        300, min(850, 450 + revenue_points + years_points + tax_points + domain_points + noise)
    )


def _limit(facts: BusinessFacts, score: int) -> int:
    # 10 % of annual revenue, scaled by how far above the approval line the score sits,
    # clamped and rounded down to a whole 100 in major units.
    # One floor division at the end, so the same revenue gives the same limit in any currency
    # (dividing first would round 1 JPY and 1.00 USD differently).
    unit = facts.unit
    scaled = facts.annual_revenue * (50 + min(50, max(0, score - REVIEW_AT))) // 1000
    clamped = max(MIN_LIMIT_MAJOR * unit, min(MAX_LIMIT_MAJOR * unit, scaled))
    return clamped - clamped % (100 * unit)


def decide(facts: BusinessFacts, dice: Dice) -> Decision:
    """A deterministic decision for these facts and this dice (the account's seeded RNG)."""
    magic_limit = MAGIC_APPROVE_MAJOR * facts.unit
    for tag in magic_tags(facts):
        if tag == "approve":
            return Decision("approved", limit=magic_limit, magic=tag)
        if tag == "decline":
            return Decision("declined", reason="credit_declined", magic=tag)
        if tag == "review":
            return Decision(
                "review",
                reason="manual_review",
                magic=tag,
                review_outcome="approved",
                limit=magic_limit,
            )
        if tag == "review_decline":
            return Decision("review", reason="manual_review", magic=tag, review_outcome="declined")
        if tag == "review_manual":
            return Decision(
                "review",
                reason="manual_review",
                magic=tag,
                review_auto=False,
                limit=magic_limit,
            )
        if tag == "documents":
            return Decision(
                "review",
                reason="documents_required",
                magic=tag,
                review_auto=False,
                limit=magic_limit,
            )
        if tag.startswith("limit_"):
            return Decision("approved", limit=int(tag[6:]) * facts.unit, magic=tag)
    score = _score(facts, dice)
    limit = _limit(facts, score)
    if score >= APPROVE_AT:
        return Decision("approved", limit=limit, score=score)
    if score >= REVIEW_AT:
        # The review's result is drawn now so the whole run is fixed by the seed.
        later: Literal["approved", "declined"] = (
            "approved" if dice.randint(0, 99) < 60 else "declined"
        )
        return Decision(
            "review",
            reason="manual_review",
            score=score,
            review_outcome=later,
            limit=limit if later == "approved" else None,
        )
    return Decision("declined", reason="credit_declined", score=score)


def offered_terms(decision: Decision) -> list[str]:
    """Terms a buyer may pick: all of them once approved (or likely to be); none when declined."""
    return [] if decision.outcome == "declined" else list(TERMS)
