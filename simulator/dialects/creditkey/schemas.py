"""Credit Key's v1 shapes: requests as the SDKs and plugins send them, answers as they read them.

Requests are lenient where the clients differ (ids as strings or numbers, amounts as numbers or
strings, extra keys such as Odoo's item `tax` ignored) and strict where money is concerned
(`money.to_cents`). Answers hold `Decimal` dollars; `Wire.model_dump(mode="json")` keeps them
exact (see `money.wire`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from simulator.dialects.creditkey.money import MAX_DOLLARS, to_cents, wire


def _text(value: object) -> object:
    """Ids arrive as strings or numbers (PHP ints, WooCommerce's 0 for guests)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _cents(value: object) -> object:
    return None if value is None else to_cents(value)


_DOLLARS_IN = {
    "anyOf": [
        {"type": "number", "minimum": 0, "maximum": int(MAX_DOLLARS)},
        {"type": "string", "pattern": r"^[0-9]{1,11}(\.[0-9]{1,2})?$"},
    ],
    "description": "Dollars: a JSON number or a numeric string, at most two decimals.",
}
_TEXT_IN = {"anyOf": [{"type": "string", "maxLength": 500}, {"type": "integer"}]}
_NULL = {"type": "null"}

Text = Annotated[
    str, BeforeValidator(_text), Field(max_length=500), WithJsonSchema(_TEXT_IN, mode="validation")
]
Url = Annotated[str, Field(min_length=1, max_length=2048)]
# Cents inside, dollars on the wire.
Dollars = Annotated[int, BeforeValidator(_cents), WithJsonSchema(_DOLLARS_IN, mode="validation")]
DollarsOut = Annotated[
    Decimal, WithJsonSchema({"type": "number", "description": "Dollars"}, mode="serialization")
]


class Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CartItemIn(Lenient):
    merchant_id: Text | None = None
    name: Text | None = None
    price: Dollars | None = None
    sku: Text | None = None
    quantity: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    size: Text | None = None
    color: Text | None = None


class AddressIn(Lenient):
    first_name: Text | None = None
    last_name: Text | None = None
    company_name: Text | None = None
    email: Text | None = None
    address1: Text | None = None
    address2: Text | None = None
    city: Text | None = None
    state: Text | None = None
    zip: Text | None = None
    phone_number: Text | None = None


class ChargesIn(Lenient):
    total: Dollars | None = None
    shipping: Dollars | None = None
    tax: Dollars | None = None
    discount_amount: Dollars | None = None
    discount: Dollars | None = Field(None, description="Odoo's name for `discount_amount`.")
    grand_total: Dollars | None = None


class IsDisplayedIn(Lenient):
    cart_items: Annotated[list[CartItemIn], Field(max_length=500)]
    remote_customer_id: Text | None = None


class BeginCheckoutIn(Lenient):
    cart_items: Annotated[list[CartItemIn], Field(min_length=1, max_length=500)]
    billing_address: AddressIn
    shipping_address: AddressIn | None = None
    charges: ChargesIn
    remote_id: Text | None = None
    remote_customer_id: Text | None = None
    return_url: Url
    cancel_url: Url
    order_complete_url: Annotated[str, Field(max_length=2048)] | None = None
    mode: Literal["modal", "redirect", "link"] | None = None
    merchant_data: dict[str, Any] | None = None


class IdIn(Lenient):
    id: Annotated[Text, Field(min_length=1, max_length=64)]


class FindByMerchantIn(Lenient):
    merchant_order_id: Annotated[Text, Field(min_length=1)]


class UpdateOrderIn(IdIn):
    merchant_status: Text | None = None
    merchant_order_id: Text | None = None
    cart_items: Annotated[list[CartItemIn], Field(max_length=500)] | None = None
    charges: ChargesIn | None = None
    shipping_address: AddressIn | None = None


class ConfirmOrderIn(IdIn):
    merchant_status: Text | None = None
    merchant_order_id: Text | None = None
    cart_contents: Annotated[list[CartItemIn], Field(max_length=500)] | None = Field(
        None, description="The PHP SDK's (and WooCommerce's) key for the items."
    )
    cart_items: Annotated[list[CartItemIn], Field(max_length=500)] | None = Field(
        None, description="Odoo's key for the items."
    )
    charges: ChargesIn | None = Field(
        None,
        description="`grand_total` is the amount captured now (a lower total is a partial "
        "capture); without it, everything still authorized is captured.",
    )


class RefundIn(IdIn):
    amount: Dollars


class CustomerIn(Lenient):
    email: Annotated[Text, Field(min_length=1)]
    customer_id: Annotated[Text, Field(min_length=1)]


# --- answers -------------------------------------------------------------------------------------
class Wire(BaseModel):
    """An answer: dollars are `Decimal`, written as JSON numbers exactly (no float)."""

    omit_none: ClassVar[bool] = False

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        if kwargs.get("mode") != "json":
            return super().model_dump(**kwargs)
        data = super().model_dump(mode="python", exclude_none=self.omit_none)
        result: dict[str, Any] = wire(data)
        return result


class SuccessOut(Wire):
    success: bool


class DisplayedOut(Wire):
    is_displayed_in_checkout: bool


class BeginCheckoutOut(Wire):
    id: str = Field(description="The Credit Key order id (what `%CKKEY%` becomes).")
    checkout_url: str = Field(
        description="Absolute URL of the hosted checkout: `.../modal/<id>` or "
        "`.../redirect/<id>` (creditkey-js rewrites the first `modal` to `redirect` on phones)."
    )


class ItemOut(Wire):
    merchant_product_id: str | None
    name: str | None
    price: DollarsOut
    sku: str | None
    quantity: int
    size: str | None
    color: str | None


class AddressOut(Wire):
    first_name: str | None = None
    last_name: str | None = None
    company_name: str | None = None
    email: str | None = None
    address1: str | None = None
    address2: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    phone_number: str | None = None


class ChargesOut(Wire):
    total: DollarsOut
    shipping: DollarsOut
    tax: DollarsOut
    discount_amount: DollarsOut
    grand_total: DollarsOut


OrderStatus = Literal["new", "placed", "authorized", "shipped", "canceled", "returned"]


class OrderOut(Wire):
    id: str
    status: OrderStatus
    capture_status: Literal["uncaptured", "captured"]
    amount: DollarsOut
    refunded_amount: DollarsOut
    items: list[ItemOut]
    merchant_order_id: str | None
    merchant_status: str | None
    shipping_address: AddressOut | None
    charges: ChargesOut


class CustomerOut(Wire):
    omit_none: ClassVar[bool] = True

    status: Literal["approved", "pending", "declined"]
    amount: DollarsOut | None = Field(None, description="The credit limit (not when declined).")
    amount_available: DollarsOut | None = Field(None, description="Not when declined.")


class ErrorOut(BaseModel):
    """Credit Key's clients read only the status; the body says what went wrong anyway."""

    error: str = Field(description="Short lower-case reason: `unauthorized`, `not found`, ...")
    result: str = Field(description="The same reason (Odoo reads `result`, then `error`).")
    message: str = Field(description="What exactly was wrong.")
    code: str = Field(description="Sandbank's problem code (as on the native API).")
    request_id: str
    errors: list[dict[str, Any]] | None = Field(
        None, description="Field paths and messages, for a body that failed validation."
    )
