"""Events: the list query, the event as shown, and `present`, the snapshot of any object an
event carries (the same shape a GET of the object returns)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    StringConstraints,
)

from simulator.api.schemas.buyers import BuyerOut
from simulator.api.schemas.checkouts import CheckoutOut
from simulator.api.schemas.common import ListQuery, Rfc3339
from simulator.api.schemas.finance import DisputeOut, SettlementSummaryOut
from simulator.api.schemas.gateway import ChargeOut, InvoiceOut
from simulator.api.schemas.invoicing import EdiInvoiceOut, RemittanceOut
from simulator.api.schemas.orders import OrderOut, RepaymentOut
from simulator.api.schemas.webhooks import WebhookEndpointPublic
from simulator.domain import webhooks as wh
from simulator.domain.finance import Dispute, Settlement
from simulator.domain.gateway import Charge, Invoice
from simulator.domain.invoicing import EdiInvoice, Remittance
from simulator.domain.models import (
    Buyer,
    Checkout,
    Event,
    Order,
    Repayment,
)


class EventOut(BaseModel):
    id: str
    object: Literal["event"] = "event"
    type: str
    object_type: str
    object_id: str
    created_at: datetime
    api_version: str
    data: dict[str, Any]

    @classmethod
    def of(cls, e: Event) -> EventOut:
        return cls.model_validate(e.model_dump(), strict=False)


class EventListQuery(ListQuery):
    type: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    object_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    created_gte: Rfc3339 | None = None
    created_lt: Rfc3339 | None = None


def present(obj: Any) -> dict[str, Any]:
    """Event snapshots: the same public shape a GET of the object returns."""
    out: BaseModel
    if isinstance(obj, Order):
        out = OrderOut.of(obj)
    elif isinstance(obj, Checkout):
        out = CheckoutOut.of(obj)
    elif isinstance(obj, Buyer):
        out = BuyerOut.of(obj)
    elif isinstance(obj, wh.WebhookEndpoint):
        out = WebhookEndpointPublic.of(obj)
    elif isinstance(obj, Repayment):
        out = RepaymentOut.of(obj)
    elif isinstance(obj, Settlement):
        out = SettlementSummaryOut.of(obj)
    elif isinstance(obj, Dispute):
        out = DisputeOut.of(obj)
    elif isinstance(obj, Invoice):
        out = InvoiceOut.of(obj)
    elif isinstance(obj, Charge):
        out = ChargeOut.of(obj)
    elif isinstance(obj, EdiInvoice):
        out = EdiInvoiceOut.of(obj)
    elif isinstance(obj, Remittance):
        out = RemittanceOut.of(obj)
    else:  # pragma: no cover - the service only snapshots these
        raise TypeError(type(obj))
    return out.model_dump(mode="json")
