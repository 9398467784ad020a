"""The GL mapping: which accounts each canonical event debits and credits, as configuration.

An accountant edits `gl_mapping.yaml` (documented, with a worked example) to change postings;
no code changes. This module is its schema (pydantic v2), its loader (`load`, one-line
`GlMappingError`s naming the file, the entry and the field) and the pure arithmetic that turns
an event's figures into signed posting legs (`GlMapping.resolve`). The ledger
(`integration.ledger`) writes what `resolve` returns.

Figures. An event carries up to three related amounts, in integer minor units:
`gross` (the order/refund/dispute amount), `fee` (what the provider keeps) and `net`
(`gross - fee`). `fee` defaults to 0; from it and one of `gross` / `net` the other is derived
(all three may be given if consistent).
A leg names the figure that feeds it (`amount: gross|fee|net`).

Balance by construction. Each figure is a linear combination of `gross` and `fee`
(net = gross - fee), so at load time the sum of the debit legs and the sum of the credit legs
are compared *symbolically*: an event whose legs would not balance for every possible
gross and fee is rejected before anything is posted. The ledger still asserts every posting's
balance at write time (`integration.ledger._assert_balanced`); this check makes a mapping
mistake fail at start-up instead of on the first webhook.

Tax. An event may declare `tax: {rate_bp, account}`; its one `taxable: true` leg is split into
the ex-tax part (on the leg's own account) and the tax part (on the tax account, same side), so
balance is untouched. Amounts are tax-inclusive (the provider finances the invoice total):
`tax = amount * rate_bp / (10000 + rate_bp)` rounded half-to-even ("banker's rounding") in
integer arithmetic, never floats. A caller who knows the invoice's exact tax passes it as the
`tax` figure instead, and that wins over the rate.

Terms. `terms: {<code>: {accounts: {<account as written>: <replacement>}}}` swaps accounts for
orders on particular terms (e.g. a separate fee-expense account for 12-month installments).
Terms not listed use the accounts as written.

Signs. A figure may be negative (a payout can be negative when refunds exceed captures); a
negative leg is posted on the opposite side with the absolute amount, which is the same entry.
Zero legs are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from integration.errors import IntegrationError
from integration.model import EventKind, LineKind

DEFAULT_MAPPING_PATH = Path(__file__).with_name("gl_mapping.yaml")

Side = Literal["debit", "credit"]
FigureName = Literal["gross", "fee", "net"]
FIGURE_NAMES: tuple[str, ...] = ("gross", "fee", "net", "tax")
BASIS_POINTS = 10_000

# Every figure as coefficients over (gross, fee): that is what makes the balance check exact.
_COEFFICIENTS: dict[str, tuple[int, int]] = {"gross": (1, 0), "fee": (0, 1), "net": (1, -1)}

AccountName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class GlMappingError(IntegrationError, ValueError):
    """The mapping file is unreadable or invalid. The message is one line:
    `<file>: <entry>.<field>: <what is wrong>`."""


class FigureError(IntegrationError, ValueError):
    """The figures given for an event cannot feed its legs (missing, inconsistent, not int)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LegRule(_Strict):
    """One line of a journal entry: `account` is debited or credited with one figure."""

    account: AccountName
    side: Side
    amount: FigureName
    taxable: StrictBool = False


class TaxTreatment(_Strict):
    rate_bp: Annotated[StrictInt, Field(ge=0, le=BASIS_POINTS)]
    account: AccountName


class Settles(_Strict):
    """Which settlement line the provider pays a posting of this event in: its kind, and the
    sign of the line's gross seen from the posting's gross (a refund's line is negative)."""

    line: LineKind
    sign: Literal[1, -1] = 1


class EventRule(_Strict):
    """What one canonical event posts. No legs: memo only (nothing is posted). `settles`: the
    settlement line reconciliation expects for each posting (absent: none)."""

    memo: str = ""
    legs: tuple[LegRule, ...] = ()
    tax: TaxTreatment | None = None
    settles: Settles | None = None

    @field_validator("legs")
    @classmethod
    def _legs_balance(cls, legs: tuple[LegRule, ...]) -> tuple[LegRule, ...]:
        debit, credit = _sum_side(legs, "debit"), _sum_side(legs, "credit")
        if debit != credit:
            raise ValueError(
                f"debits and credits differ: debits = {_show(debit)}, credits = {_show(credit)}"
            )
        return legs

    @model_validator(mode="after")
    def _tax_fits(self) -> EventRule:
        taxable = [leg for leg in self.legs if leg.taxable]
        if len(taxable) > 1:
            raise ValueError("at most one leg may be taxable")
        if taxable and self.tax is None:
            raise ValueError("a leg is taxable but the event has no `tax` treatment")
        if self.tax is not None and not taxable:
            raise ValueError("`tax` is set but no leg is marked `taxable: true`")
        return self

    def accounts(self) -> set[str]:
        found = {leg.account for leg in self.legs}
        if self.tax is not None:
            found.add(self.tax.account)
        return found


class TermsRule(_Strict):
    memo: str = ""
    accounts: dict[AccountName, AccountName] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ResolvedLeg:
    """A leg with its amount worked out: non-negative, on the side it is posted to."""

    account: str
    side: Side
    amount: int


class GlMapping(_Strict):
    version: Literal[1]
    events: dict[EventKind, EventRule]
    terms: dict[AccountName, TermsRule] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _complete_and_terms_known(self) -> GlMapping:
        missing = [kind.value for kind in EventKind if kind not in self.events]
        if missing:
            raise ValueError(f"events: every event must be listed (memo only is fine): {missing}")
        known = set().union(*(rule.accounts() for rule in self.events.values()))
        for code, rule in self.terms.items():
            for account in rule.accounts:
                if account not in known:
                    raise ValueError(
                        f"terms.{code}.accounts: {account!r} is not an account any event posts to"
                    )
        return self

    def rule(self, event_kind: EventKind) -> EventRule:
        return self.events[event_kind]

    def settled_kinds(self) -> dict[EventKind, tuple[LineKind, int]]:
        """The postings the provider settles, as (line kind, sign): what reconciliation
        expects on the settlement reports (the approach's, as this file says it)."""
        return {
            kind: (rule.settles.line, rule.settles.sign)
            for kind, rule in self.events.items()
            if rule.settles is not None
        }

    def resolve(
        self, event_kind: EventKind, figures: Mapping[str, int], terms: str | None = None
    ) -> list[ResolvedLeg]:
        """The legs `event_kind` posts for `figures` (see the module docstring). Empty when the
        event is memo only or every amount is zero. Raises `FigureError`."""
        rule = self.events[event_kind]
        values = _complete_figures(figures)
        if "tax" in values and rule.tax is None:
            raise FigureError(f"a tax figure was given but {event_kind.value} has no tax treatment")
        swap = self.terms[terms].accounts if terms is not None and terms in self.terms else {}
        out: list[ResolvedLeg] = []
        for leg in rule.legs:
            if leg.amount not in values:
                raise FigureError(
                    f"{event_kind.value} needs the {leg.amount!r} figure; "
                    f"give gross or net, and fee if any (got {sorted(figures)})"
                )
            amount = values[leg.amount]
            if leg.taxable and rule.tax is not None:
                tax = _tax_part(amount, rule.tax.rate_bp, values.get("tax"))
                out.append(_signed(swap.get(leg.account, leg.account), leg.side, amount - tax))
                out.append(_signed(swap.get(rule.tax.account, rule.tax.account), leg.side, tax))
            else:
                out.append(_signed(swap.get(leg.account, leg.account), leg.side, amount))
        return [leg for leg in out if leg.amount != 0]


def load(path: str | Path = DEFAULT_MAPPING_PATH) -> GlMapping:
    """Read and validate a mapping file. Raises `GlMappingError` with a one-line message."""
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GlMappingError(f"{name}: cannot read: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "syntax error"
        raise GlMappingError(f"{name}: not valid YAML{where}: {problem}") from exc
    return parse(data, source=name)


def parse(data: Any, source: str = "<mapping>") -> GlMapping:
    """Validate already-parsed YAML data (`source` names it in errors)."""
    if not isinstance(data, dict):
        raise GlMappingError(
            f"{source}: the top level must be a mapping with `version` and `events`"
        )
    try:
        return GlMapping.model_validate(data)
    except ValidationError as exc:
        raise GlMappingError(_one_line(source, exc)) from None


def round_half_even(numerator: int, denominator: int) -> int:
    """`numerator / denominator` rounded to the nearest integer, ties to even (denominator > 0)."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def _tax_part(amount: int, rate_bp: int, explicit: int | None) -> int:
    """The tax inside a tax-inclusive `amount`, with the amount's sign."""
    magnitude = abs(amount)
    if explicit is None:
        tax = round_half_even(magnitude * rate_bp, BASIS_POINTS + rate_bp)
    elif 0 <= explicit <= magnitude:
        tax = explicit
    else:
        raise FigureError(f"tax {explicit} must be between 0 and the taxable amount {magnitude}")
    return tax if amount >= 0 else -tax


def _signed(account: str, side: Side, amount: int) -> ResolvedLeg:
    if amount < 0:
        return ResolvedLeg(account, "credit" if side == "debit" else "debit", -amount)
    return ResolvedLeg(account, side, amount)


def _complete_figures(figures: Mapping[str, int]) -> dict[str, int]:
    for key, value in figures.items():
        if key not in FIGURE_NAMES:
            raise FigureError(f"unknown figure {key!r}; expected some of {list(FIGURE_NAMES)}")
        if isinstance(value, bool) or not isinstance(value, int):
            raise FigureError(f"figure {key!r} must be an integer number of minor units")
    values = dict(figures)
    values.setdefault("fee", 0)
    gross, fee, net = values.get("gross"), values["fee"], values.get("net")
    if gross is not None:
        if net is not None and net != gross - fee:
            raise FigureError(f"net {net} is not gross {gross} - fee {fee}")
        values["net"] = gross - fee
    elif net is not None:
        values["gross"] = net + fee
    return values


def _sum_side(legs: tuple[LegRule, ...], side: Side) -> tuple[int, int]:
    gross = sum(_COEFFICIENTS[leg.amount][0] for leg in legs if leg.side == side)
    fee = sum(_COEFFICIENTS[leg.amount][1] for leg in legs if leg.side == side)
    return gross, fee


def _show(combination: tuple[int, int]) -> str:
    terms = [
        f"{coefficient}*{name}"
        if abs(coefficient) != 1
        else ("-" if coefficient < 0 else "") + name
        for coefficient, name in zip(combination, ("gross", "fee"), strict=True)
        if coefficient
    ]
    return " + ".join(terms).replace("+ -", "- ") or "0"


def _one_line(source: str, exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = _location(first["loc"])
    message = " ".join(str(first["msg"]).split())
    if message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    if first["type"] == "enum" and first["loc"][:1] == ("events",):
        message = f"unknown event kind; expected one of {[kind.value for kind in EventKind]}"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    # Whole-file checks name their entry in the message itself.
    return f"{source}: {where + ': ' if where else ''}{message}{more}"


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            continue
        else:
            out += f".{part}" if out else str(part)
    return out
