"""What the approaches Sandbank mounts under their own prefix share: the gateway + net terms
(`/gateway/v1`), the virtual cards (`/vcards/v1`, the gateway's seller side) and traditional
invoicing (`/invoicing/v1`).

Each speaks its own orders (invoices, purchase orders) and its own events, but Sandbank's own
plumbing for the rest, so that plumbing is here once instead of in each adapter:

- requests go through the native adapter's `_call` under the approach's prefix: the one
  `ResilientClient` (retries, breakers, the caller's intent as the idempotency key, Sandbank's
  rejection codes in canonical terms, an unreadable body as `ProviderDataError`);
- the event feed, settlements and the settlement calendar are the native API's shapes, read by
  the native adapter's parsers; there are no chargebacks (`list_disputes` is empty);
- the seller grants its own terms: there is no buyer decision, so an order on file is a
  completed checkout at once (`completed_checkout`, `invoice_checkout`).

A subclass names its `prefix` and turns its events into canonical ones (`to_event`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from integration.adapters.base import CheckoutRef, CheckoutStatus, PlaceOrder
from integration.adapters.sandbank import (
    CANCELS,
    CHECKOUTS,
    PAGE,
    READS,
    SandbankAdapter,
    _int,
    _list,
    _str,
    _time,
)
from integration.client import ResilientClient
from integration.model import (
    Authorization,
    Cancellation,
    Dispute,
    Money,
    ProviderEvent,
    Settlement,
)


class MountedAdapter:
    """The native plumbing of an approach mounted at `prefix` (see the module docstring)."""

    name: str
    prefix: str

    def __init__(self, client: ResilientClient) -> None:
        self.client = client
        self._native = SandbankAdapter(client, prefix=self.prefix)
        # One request to the provider: the native adapter's, whole (see the module docstring).
        self._call = self._native._call

    def to_event(self, raw: Mapping[str, Any]) -> ProviderEvent:
        raise NotImplementedError

    # --- requests ----------------------------------------------------------------------------
    async def _put_on_file(
        self, path: str, body: Mapping[str, Any], order: PlaceOrder, intent_id: str | None
    ) -> dict[str, Any]:
        """Create the order at the provider, under the caller's intent or else the order's own
        (a retry of the same order sends the same idempotency key)."""
        return await self._call(
            CHECKOUTS,
            "POST",
            path,
            body,
            intent_id=intent_id or f"checkout:{order.merchant_order_id}",
        )

    async def _listed(self, path: str, **params: str | int) -> list[dict[str, Any]]:
        """The `data` of one page of a listing (`limit` PAGE unless given)."""
        query: dict[str, str | int] = {**params}
        query.setdefault("limit", PAGE)
        return _list(await self._call(READS, "GET", path, params=query), "data")

    async def _cancel(self, path: str, *, intent_id: str, reason: str | None) -> dict[str, Any]:
        """Cancel (void) an order, with the caller's reason if any; the provider's answer."""
        body = {"reason": reason} if reason is not None else {}
        return await self._call(CANCELS, "POST", path, body, intent_id=intent_id)

    # --- events ----------------------------------------------------------------------------
    async def list_events(self, since_cursor: str | None) -> tuple[list[ProviderEvent], str | None]:
        """Events after `since_cursor`, oldest first (see `SandbankAdapter.list_events`)."""
        events = [self.to_event(raw) for raw in await self._native.raw_events_after(since_cursor)]
        return events, (events[-1].provider_event_id if events else since_cursor)

    # --- settlements ------------------------------------------------------------------------
    async def list_settlements(
        self, *, since: date | None = None, limit: int | None = None
    ) -> list[Settlement]:
        return await self._native.list_settlements(since=since, limit=limit)

    async def get_settlement(self, provider_settlement_id: str) -> Settlement:
        return await self._native.get_settlement(provider_settlement_id)

    async def list_disputes(self) -> list[Dispute]:
        return []

    def settlement_batch(self, at: datetime) -> date:
        return self._native.settlement_batch(at)


def cancellation(data: Mapping[str, Any], order_id: str) -> Cancellation:
    """A canceled order as its provider answered the cancel: all of its amount released."""
    return Cancellation(
        provider_order_id=order_id,
        released=Money(_int(data, "amount"), _str(data, "currency")),
        at=_time(data, "updated_at"),
    )


def completed_checkout(order_id: str, *, declined: bool, return_url: str) -> CheckoutRef:
    """The checkout of an order on file: completed at once (its id the order's), declined once
    the order is void; the buyer goes straight back to `return_url`."""
    return CheckoutRef(
        provider_checkout_id=order_id,
        status=CheckoutStatus.DECLINED if declined else CheckoutStatus.COMPLETED,
        redirect_url=return_url,
        provider_order_id=order_id,
    )


def invoice_checkout(
    invoice_id: str | None, invoice: Authorization | None
) -> tuple[str | None, str | None]:
    """(checkout id, checkout status) an event's invoice snapshot stands for: a completed
    checkout of the same id; (None, None) when the event carries no snapshot."""
    if invoice is None:
        return None, None
    return invoice_id, CheckoutStatus.COMPLETED.value


__all__ = ["MountedAdapter", "cancellation", "completed_checkout", "invoice_checkout"]
