"""The shop: the merchant's storefront and warehouse, driving the integration's order-to-cash
API (`POST /orders`, `/orders/{id}/ship|refund|cancel`, `GET /orders/{id}`) and acting as the
buyer at the provider (`/_sandbox/checkouts/{id}/approve|decline`).

It behaves as a careful shop does in an incident: a step the ERP cannot take yet (a hold still
pending, the buyer's answer not known, the service unreachable) is tried again later; a step
whose answer was lost (the connection died after sending) is not blindly repeated, but the
order is read back first and the step repeated only if the ERP never registered it.

Every request carries `X-Correlation-Id: reh-<n>`, which the integration writes into its access
log with its own latency: the SLOs are measured on the ERP's figures, not the runner's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from rehearsal.workload import PlannedOrder, Step

# What the answer to one step means for the shop.
DONE, HELD, DEFER, REFUSED, ERROR, UNSURE = "done", "held", "defer", "refused", "error", "unsure"
HOLD_KINDS = {"ship": "capture_pending", "refund": "refund_pending", "cancel": "cancel_pending"}
WAITING_STATES = frozenset({"placed", "credit_pending", "awaiting_buyer", "under_review"})
ENDED_STATES = frozenset({"rejected", "canceled", "expired"})


@dataclass
class Call:
    """One shop request as the shop saw it (the ERP's own latency is joined in later)."""

    correlation_id: str
    route: str  # place | ship | refund | cancel
    order: str
    at_ms: int  # account clock when sent
    wall_s: float  # time.time() when sent
    latency_ms: float
    status: int | None  # None: no answer (transport error)
    outcome: str


@dataclass
class OrderState:
    planned: PlannedOrder
    next_step: int = 0
    placed: bool = False
    checkout_id: str | None = None
    erp_state: str | None = None
    registered: dict[str, int] = field(default_factory=dict)  # kind -> steps the ERP took
    unsure: Step | None = None  # a step whose answer was lost
    busy: bool = False
    outcomes: list[tuple[str, str]] = field(default_factory=list)  # (step kind, outcome)


class Shop:
    def __init__(self, erp: httpx.AsyncClient, admin: httpx.AsyncClient) -> None:
        self.erp = erp
        self.admin = admin
        self.calls: list[Call] = []
        self._n = 0

    async def _send(  # noqa: PLR0917 - the request's own parts, in the order they are read
        self, route: str, order: str, at_ms: int, method: str, path: str, body: Any = None
    ) -> tuple[httpx.Response | None, Exception | None, Call]:
        self._n += 1
        cid = f"reh-{self._n}"
        wall = time.time()
        started = time.perf_counter()
        response: httpx.Response | None = None
        error: Exception | None = None
        try:
            response = await self.erp.request(
                method, path, json=body, headers={"X-Correlation-Id": cid}
            )
        except httpx.HTTPError as exc:
            error = exc
        latency = (time.perf_counter() - started) * 1000
        status = None if response is None else response.status_code
        call = Call(cid, route, order, at_ms, wall, latency, status, "")
        if route != "read":
            self.calls.append(call)
        return response, error, call

    async def read(self, order: OrderState, at_ms: int) -> dict[str, Any] | None:
        """The ERP's view of the order; {} when the ERP has no such order; None: no answer."""
        moid = order.planned.merchant_order_id
        response, _, _ = await self._send("read", moid, at_ms, "GET", f"/orders/{moid}")
        if response is not None and response.status_code == 404:
            return {}
        if response is None or response.status_code != 200:
            return None
        view: dict[str, Any] = response.json()
        order.erp_state = view.get("erp_state")
        order.checkout_id = view.get("provider_checkout_id") or order.checkout_id
        return view

    async def perform(self, order: OrderState, step: Step, at_ms: int) -> str:
        """Take `step` for `order`; the outcome says whether to move on, or try again later."""
        if step.kind in ("approve", "decline"):
            return await self._buyer(order, step, at_ms)
        if order.unsure is step and step.kind == "place":
            order.unsure = None  # placing again is safe: the ERP knows the merchant order id
        if order.unsure is step:
            view = await self.read(order, at_ms)
            if view is None:
                return DEFER
            if self._registered(view, step) > order.registered.get(step.kind, 0):
                order.unsure = None
                order.placed = True
                return self._took(order, step, DONE)
            order.unsure = None  # the ERP never saw it: send it again
        moid = order.planned.merchant_order_id
        if step.kind == "place":
            response, error, call = await self._send(
                "place", moid, at_ms, "POST", "/orders", order.planned.place_body()
            )
        else:
            body = {"amount": step.args["amount"]} if "amount" in step.args else {}
            path = f"/orders/{moid}/{step.kind}"
            response, error, call = await self._send(step.kind, moid, at_ms, "POST", path, body)
        call.outcome = outcome = self._judge(order, step, response, error)
        return self._took(order, step, outcome) if outcome != DEFER else DEFER

    def _took(self, order: OrderState, step: Step, outcome: str) -> str:
        if outcome in (DONE, HELD) and step.kind in HOLD_KINDS:
            order.registered[step.kind] = order.registered.get(step.kind, 0) + 1
        if outcome in (DONE, HELD) and step.kind == "place":
            order.placed = True
        return outcome

    @staticmethod
    def _registered(view: dict[str, Any], step: Step) -> int:
        kind = HOLD_KINDS.get(step.kind)
        return sum(1 for h in view.get("holds", []) if h["kind"] == kind)

    def _judge(
        self,
        order: OrderState,
        step: Step,
        response: httpx.Response | None,
        error: Exception | None,
    ) -> str:
        if response is None:
            if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
                return DEFER  # nothing was sent: the service is down, try again later
            order.unsure = step  # sent; the answer is lost: read the order back before a retry
            return DEFER
        status = response.status_code
        body: Any = None
        try:
            body = response.json()
        except ValueError:
            body = None
        view = body if isinstance(body, dict) else {}
        if status in (200, 201, 202):
            order.erp_state = view.get("erp_state", order.erp_state)
            order.checkout_id = view.get("provider_checkout_id") or order.checkout_id
            return HELD if status == 202 else DONE
        detail = str(view.get("detail", ""))
        if status == 409 and step.kind == "place" and "exists" in detail:
            return DONE  # an earlier attempt got through
        if status == 409 and ("pending" in detail or _waiting(detail)):
            return DEFER  # held work first, or the buyer's answer is not known yet
        if status == 503:
            return DEFER  # the ERP's "try again later" (the reference ERP holds instead)
        if 400 <= status < 500:
            return REFUSED
        return ERROR

    async def _buyer(self, order: OrderState, step: Step, at_ms: int) -> str:
        if order.checkout_id is None:
            await self.read(order, at_ms)
            if order.checkout_id is None:
                return DEFER  # the checkout is still held at the ERP
        verb = "approve" if step.kind == "approve" else "decline"
        body = {"terms": step.args["terms"]} if verb == "approve" else None
        try:
            r = await self.admin.post(f"/_sandbox/checkouts/{order.checkout_id}/{verb}", json=body)
        except httpx.HTTPError:
            return DEFER
        if r.status_code == 200:
            return DONE
        if r.status_code == 409:
            return REFUSED  # not open any more (expired)
        return ERROR


def _waiting(detail: str) -> bool:
    return any(f"that is {s}" in detail for s in WAITING_STATES)


__all__ = ["DEFER", "DONE", "ERROR", "HELD", "REFUSED", "Call", "OrderState", "Shop"]
