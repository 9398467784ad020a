"""The shop's book of business and its plan, drawn from the scenario's seed.

`plan(scenario)` is a pure function: the same scenario and seed give the same buyers (Faker,
seeded: legal names, addresses, tax ids, AP e-mails, revenue, years in business), the same
orders and the same steps (place, the buyer's answer, shipments, refunds, cancels) at the same
times on the account clock. The runner only decides *when in wall time* each step goes out, so
the action journal (and its sha256) depends on nothing but the scenario and the seed.

Buyers carry the `+approve` magic value in their AP e-mail, so the simulator's underwriting
never second-guesses the plan: who declines is the plan's `decline` share, done as the buyer
through the control plane.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from faker import Faker

from rehearsal.model import Scenario

STEP_KINDS = ("place", "approve", "decline", "ship", "refund", "cancel")


@dataclass(frozen=True, slots=True)
class Buyer:
    legal_name: str
    email: str
    domain: str
    tax_id: str
    address: str
    annual_revenue: int  # minor units
    years_in_business: int

    def as_api(self) -> dict[str, Any]:
        """The buyer as the integration's POST /orders takes it."""
        return {
            "legal_name": self.legal_name,
            "email": self.email,
            "domain": self.domain,
            "tax_id": self.tax_id,
            "annual_revenue": self.annual_revenue,
            "years_in_business": self.years_in_business,
        }


@dataclass(slots=True)
class Step:
    at_ms: int  # on the account clock, since T0
    kind: str  # place | approve | decline | ship | refund | cancel
    order: str  # merchant order id
    args: dict[str, Any] = field(default_factory=dict)

    def journal(self) -> dict[str, Any]:
        return {"at_ms": self.at_ms, "kind": self.kind, "order": self.order, "args": self.args}


@dataclass(slots=True)
class PlannedOrder:
    merchant_order_id: str
    story: str  # the mix key: ship, ship_parts, refund, cancel, decline, abandon, hold
    amount: int
    currency: str
    buyer: Buyer
    steps: list[Step]

    def place_body(self) -> dict[str, Any]:
        half = self.amount // 2
        return {
            "merchant_order_id": self.merchant_order_id,
            "amount": self.amount,
            "currency": self.currency,
            "buyer": self.buyer.as_api(),
            "line_items": [
                {"name": "Industrial fasteners, case", "quantity": 1, "unit_amount": half},
                {"name": "Freight and handling", "quantity": 1, "unit_amount": self.amount - half},
            ],
            "return_url": "https://shop.example/checkout/return",
            "cancel_url": "https://shop.example/checkout/cancel",
        }


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "buyer"


def buyers(seed: int, count: int) -> list[Buyer]:
    """`count` business buyers from the seed (Faker's en_US business provider)."""
    fake = Faker("en_US")
    fake.seed_instance(seed)
    out = []
    for _ in range(count):
        company = fake.company()
        suffix = fake.random_element(("Inc.", "LLC", "Corp.", "Co."))
        legal = company if company.endswith(("Inc", "LLC", "Ltd", "PLC")) else f"{company} {suffix}"
        domain = f"{_slug(company)}.example"
        out.append(
            Buyer(
                legal_name=legal,
                email=f"ap+approve@{domain}",
                domain=domain,
                tax_id=fake.ein(),
                address=fake.address().replace("\n", ", "),
                annual_revenue=fake.random_int(500_000, 250_000_000) * 100,
                years_in_business=fake.random_int(1, 60),
            )
        )
    return out


def plan(scenario: Scenario) -> list[PlannedOrder]:
    """Every order of the run with its steps, from the scenario's seed alone."""
    w = scenario.workload
    rng = random.Random(scenario.seed)  # noqa: S311 - a seeded plan, not a secret
    stop = min(w.stop_at if w.stop_at is not None else scenario.duration, scenario.duration)
    gap_ms = 60_000 / w.orders_per_minute
    count = int(stop // gap_ms)
    pool = buyers(scenario.seed, w.buyers or max(5, count // 3))
    weights = w.mix.weights()
    stories = [k for k, v in weights.items() if v > 0]
    orders: list[PlannedOrder] = []
    for i in range(count):
        # Arrivals spread over the run: evenly paced, each jittered within its slot.
        placed = int(i * gap_ms + rng.random() * gap_ms * 0.5)
        story = rng.choices(stories, [weights[s] for s in stories])[0]
        amount = rng.randint(w.amount_min // 100, w.amount_max // 100) * 100
        moid = f"SO-{scenario.seed % 100_000:05d}-{i + 1:04d}"
        buyer = pool[rng.randrange(len(pool))]
        steps = [Step(placed, "place", moid)]
        answered = placed + w.approve_after
        if story == "decline":
            steps.append(Step(answered, "decline", moid))
        elif story != "abandon":
            steps.append(Step(answered, "approve", moid, {"terms": rng.choice(w.terms)}))
        first_ship = answered + w.ship_after
        if story == "ship":
            steps.append(Step(first_ship, "ship", moid, {"amount": amount}))
        elif story == "ship_parts":
            steps.extend(_parts(moid, amount, w.parts, first_ship, w.ship_every, rng))
        elif story == "refund":
            shipped = amount // 2
            refund = max(100, (shipped * rng.randint(10, 50) // 100) // 100 * 100)
            refunded_at = first_ship + w.refund_after
            steps.append(Step(first_ship, "ship", moid, {"amount": shipped}))
            steps.append(Step(refunded_at, "refund", moid, {"amount": refund}))
            steps.append(
                Step(refunded_at + w.ship_every, "ship", moid, {"amount": amount - shipped})
            )
        elif story == "cancel":
            steps.append(Step(answered + w.cancel_after, "cancel", moid))
        orders.append(PlannedOrder(moid, story, amount, w.currency, buyer, steps))
    return orders


def _parts(  # noqa: PLR0917 - a private helper of plan(), called once
    moid: str, amount: int, parts: int, first: int, every: int, rng: random.Random
) -> list[Step]:
    cuts = sorted(rng.sample(range(1, amount // 100), parts - 1)) if amount // 100 > parts else []
    bounds = [0, *(c * 100 for c in cuts), amount]
    return [
        Step(first + k * every, "ship", moid, {"amount": bounds[k + 1] - bounds[k]})
        for k in range(len(bounds) - 1)
    ]


__all__ = ["STEP_KINDS", "Buyer", "PlannedOrder", "Step", "buyers", "plan"]
