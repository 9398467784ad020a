"""The order-to-cash API's request bodies as pydantic models (as the simulator parses its
own): `parse(model, raw)` turns JSON bytes into a model or raises `InvalidOrder` (422) that
names the first offending field (`body.buyer.email: Field required`).

Integers are strict (no floats, no booleans, no numeric strings): money is integer minor units.
Unknown fields are ignored, as the hand-written parser before these models did.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from integration.adapters.base import Buyer, LineItem, PlaceOrder
from integration.errors import InvalidOrder
from integration.model import Money

Text = Annotated[str, StringConstraints(min_length=1, pattern=r"\S")]  # not blank
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]  # ISO 4217
Positive = Annotated[int, Field(gt=0)]
M = TypeVar("M", bound=BaseModel)


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class BuyerIn(_Body):
    legal_name: Text
    email: Text
    tax_id: str | None = None
    domain: str | None = None
    annual_revenue: int | None = None  # minor units of the order's currency
    years_in_business: int | None = None
    external_id: str | None = None


class LineItemIn(_Body):
    name: Text
    quantity: Positive
    unit_amount: Annotated[int, Field(ge=0)]
    sku: str | None = None


class PlaceOrderIn(_Body):
    """`POST /orders`."""

    merchant_order_id: Text
    amount: Positive
    currency: Currency
    buyer: BuyerIn
    line_items: list[LineItemIn] = []
    return_url: Text
    cancel_url: Text

    def domain(self) -> PlaceOrder:
        return PlaceOrder(
            merchant_order_id=self.merchant_order_id,
            amount=Money(self.amount, self.currency),
            buyer=Buyer(**self.buyer.model_dump()),
            return_url=self.return_url,
            cancel_url=self.cancel_url,
            line_items=tuple(LineItem(**item.model_dump()) for item in self.line_items),
        )


class AmountIn(_Body):
    """`POST /orders/{id}/ship` and `/refund`: how much, in minor units."""

    amount: Positive


def parse(model: type[M], raw: bytes) -> M:
    """JSON bytes -> `model`, or `InvalidOrder` naming the first offending field."""
    try:
        return model.model_validate_json(raw or b"null")
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise InvalidOrder("the body is not JSON") from None
        first = errors[0]
        where = ".".join(str(part) for part in ("body", *first["loc"]))
        raise InvalidOrder(f"{where}: {first['msg']}") from None


def stored_request(order: PlaceOrder) -> dict[str, Any]:
    """What the order book keeps of a checkout's input (to send it again after a restart)."""
    buyer = {k: v for k, v in asdict(order.buyer).items() if v is not None}
    lines = [{k: v for k, v in asdict(li).items() if v is not None} for li in order.line_items]
    return {
        "buyer": buyer,
        "line_items": lines,
        "return_url": order.return_url,
        "cancel_url": order.cancel_url,
    }


def place_order_of(merchant_order_id: str, money: Money, request: dict[str, Any]) -> PlaceOrder:
    """The checkout's input again, from what `stored_request` kept."""
    return PlaceOrder(
        merchant_order_id=merchant_order_id,
        amount=money,
        buyer=Buyer(**request["buyer"]),
        return_url=request["return_url"],
        cancel_url=request["cancel_url"],
        line_items=tuple(LineItem(**li) for li in request["line_items"]),
    )


__all__ = [
    "AmountIn",
    "BuyerIn",
    "LineItemIn",
    "PlaceOrderIn",
    "parse",
    "place_order_of",
    "stored_request",
]
