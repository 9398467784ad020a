"""Events: the list query, the event as shown, and `presenter`, how an event shows the object
it carries (the same shape a GET of the object returns)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    StringConstraints,
)

from simulator.api.schemas import vcards as vc
from simulator.api.schemas.buyers import BuyerOut
from simulator.api.schemas.checkouts import CheckoutOut
from simulator.api.schemas.common import ListQuery, Rfc3339
from simulator.api.schemas.finance import DisputeOut, SettlementSummaryOut
from simulator.api.schemas.gateway import ChargeOut, InvoiceOut
from simulator.api.schemas.invoicing import EdiInvoiceOut, PurchaseOrderOut, RemittanceOut
from simulator.api.schemas.orders import OrderOut, RepaymentOut
from simulator.api.schemas.webhooks import WebhookEndpointPublic
from simulator.domain import webhooks as wh
from simulator.domain.finance import Dispute, Settlement
from simulator.domain.gateway import Charge, Invoice
from simulator.domain.invoicing import EdiInvoice, PurchaseOrder, Remittance
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


# The public shape of each object an event snapshots (exact types: none subclasses another).
_PRESENTERS: dict[type, Callable[[Any], BaseModel]] = {
    Order: OrderOut.of,
    Checkout: CheckoutOut.of,
    Buyer: BuyerOut.of,
    wh.WebhookEndpoint: WebhookEndpointPublic.of,
    Repayment: RepaymentOut.of,
    Settlement: SettlementSummaryOut.of,
    Dispute: DisputeOut.of,
    Invoice: InvoiceOut.of,
    Charge: ChargeOut.of,
    EdiInvoice: EdiInvoiceOut.of,
    Remittance: RemittanceOut.of,
    PurchaseOrder: PurchaseOrderOut.of,
}


def presenter(obj: Any) -> Callable[[Any], BaseModel]:
    """How event snapshots show `obj`: the `of` of the public shape a GET of it returns."""
    found = _PRESENTERS.get(type(obj)) or vc.presenter(obj)  # a VcardInvoice is an Invoice too
    if found is None:  # pragma: no cover - the service only snapshots these
        raise TypeError(type(obj))
    return found
