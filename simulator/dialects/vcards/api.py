"""`/vcards/v1`: the virtual cards personality's endpoints, thin adapters over `VcardService`
(invoices, the buyer's cards, authorizations, captures and their allocations) plus the native
settlement and event endpoints under this prefix (one balance, one outbox per account)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from simulator.api import schemas as s
from simulator.api.guard import Endpoint
from simulator.api.operations import Op
from simulator.api.runtime import Refused, parse, path_id, query, run, service_of
from simulator.api.schemas import vcards as vc
from simulator.api.tokens import token_operations
from simulator.context import Ctx
from simulator.dialects.native import native_operations
from simulator.domain.errors import CardDeclined
from simulator.domain.gateway import Customer
from simulator.domain.vcards import Vcard
from simulator.vcards import PERSONALITY, VcardService

PREFIX = "/vcards/v1"
TAG_INVOICES, TAG_CARDS, TAG_PAYMENTS = "Invoices", "Cards", "Payments"
_READ = (401, 404, 422)
_WRITE = (400, 401, 404, 409, 413, 415, 422)


def _run(
    request: Request,
    work: Callable[[VcardService, Ctx], BaseModel],
    status: int = 200,
    *,
    reusable: bool = False,
) -> Awaitable[Response]:
    service = service_of(request).vcards
    return run(request, lambda ctx: work(service, ctx), status, reusable=reusable)


async def create_invoice(request: Request) -> Response:
    body = await parse(request, vc.InvoiceCreate)
    customer = Customer(**body.customer.model_dump())
    items = [i.domain() for i in body.line_items]
    return await _run(
        request,
        lambda cards, ctx: ctx.shown(
            vc.InvoiceOut.of,
            cards.create_invoice(
                ctx,
                number=body.number,
                customer=customer,
                amount=body.amount,
                currency=body.currency or ctx.account.settings.default_currency,
                net_days=body.net_days,
                processing=body.processing,
                line_items=items,
                metadata=body.metadata,
            ),
        ),
        201,
    )


async def list_invoices(request: Request) -> Response:
    q = query(request, vc.InvoiceListQuery)
    return await _run(
        request,
        lambda cards, ctx: s.listed(
            cards.list_invoices(
                ctx, status=q.status, number=q.number, limit=q.limit, cursor=q.cursor
            ),
            vc.InvoiceOut.of,
        ),
        reusable=True,
    )


async def get_invoice(request: Request) -> Response:
    return await _run(
        request,
        lambda cards, ctx: vc.InvoiceOut.of(cards.get_invoice(ctx, path_id(request))),
        reusable=True,
    )


async def issue_invoice(request: Request) -> Response:
    body = await parse(request, vc.IssueIn, optional=True)
    return await _run(
        request,
        lambda cards, ctx: ctx.shown(
            vc.InvoiceOut.of, cards.issue(ctx, path_id(request), body.amount)
        ),
    )


async def credit_invoice(request: Request) -> Response:
    body = await parse(request, vc.CreditNoteIn)
    return await _run(
        request,
        lambda cards, ctx: ctx.shown(
            vc.InvoiceOut.of, cards.credit(ctx, path_id(request), body.amount)
        ),
    )


async def write_off_invoice(request: Request) -> Response:
    body = await parse(request, vc.WriteOffIn, optional=True)
    return await _run(
        request,
        lambda cards, ctx: ctx.shown(
            vc.InvoiceOut.of, cards.write_off(ctx, path_id(request), body.amount)
        ),
    )


async def void_invoice(request: Request) -> Response:
    await parse(request, vc.VoidIn, optional=True)
    return await _run(
        request, lambda cards, ctx: ctx.shown(vc.InvoiceOut.of, cards.void(ctx, path_id(request)))
    )


async def create_card(request: Request) -> Response:
    body = await parse(request, vc.CardCreate)
    intended = [(i.invoice, i.amount) for i in body.invoices]
    return await _run(
        request,
        lambda cards, ctx: ctx.shown(
            vc.CardOut.of,
            cards.issue_card(ctx, intended, limit=body.limit, valid_days=body.valid_days),
        ),
        201,
    )


async def list_cards(request: Request) -> Response:
    q = query(request, vc.CardListQuery)
    return await _run(
        request,
        lambda cards, ctx: s.listed(
            cards.list_cards(ctx, status=q.status, limit=q.limit, cursor=q.cursor), vc.CardOut.of
        ),
        reusable=True,
    )


async def get_card(request: Request) -> Response:
    return await _run(
        request,
        lambda cards, ctx: vc.CardOut.of(cards.get_card(ctx, path_id(request))),
        reusable=True,
    )


def _held(result: Vcard | CardDeclined) -> BaseModel:
    """The card, or its decline as a 402 problem (the decline itself is kept)."""
    return Refused(error=result) if isinstance(result, CardDeclined) else vc.CardOut.of(result)


async def authorize_card(request: Request) -> Response:
    body = await parse(request, vc.AuthorizeIn)
    return await _run(
        request, lambda cards, ctx: _held(cards.authorize(ctx, path_id(request), body.amount))
    )


async def capture_card(request: Request) -> Response:
    body = await parse(request, vc.CaptureIn, optional=True)
    allocations = (
        None if body.allocations is None else [(a.invoice, a.amount) for a in body.allocations]
    )
    return await _run(
        request,
        lambda cards, ctx: ctx.shown(
            vc.PaymentOut.of, cards.capture(ctx, path_id(request), body.amount, allocations)
        ),
        201,
    )


async def list_payments(request: Request) -> Response:
    q = query(request, vc.PaymentListQuery)
    return await _run(
        request,
        lambda cards, ctx: s.listed(
            cards.list_payments(ctx, card_id=q.card, limit=q.limit, cursor=q.cursor),
            vc.PaymentOut.of,
        ),
        reusable=True,
    )


async def get_payment(request: Request) -> Response:
    return await _run(
        request,
        lambda cards, ctx: vc.PaymentOut.of(cards.get_payment(ctx, path_id(request))),
        reusable=True,
    )


def _action(name: str, path: str, endpoint: Endpoint, summary: str, **kw: Any) -> Op:
    """A POST: `out`, `body`, `tag`, and `required` (body), `status`, `errors` when not the
    usual."""
    return Op(
        f"vcards.{name}",
        "POST",
        f"{PREFIX}/{path}",
        endpoint,
        summary,
        kw.pop("out"),
        kw.pop("status", 200),
        body_required=kw.pop("required", False),
        errors=kw.pop("errors", _WRITE),
        **kw,
    )


def _read(name: str, path: str, endpoint: Endpoint, summary: str, out: Any, **kw: Any) -> Op:
    errors = (401, 422) if "query" in kw else _READ
    return Op(
        f"vcards.{name}", "GET", f"{PREFIX}/{path}", endpoint, summary, out, errors=errors, **kw
    )


_INVOICE = "invoices/{id}"

OPERATIONS: list[Op] = [
    _action(
        "createInvoice",
        "invoices",
        create_invoice,
        "Create an invoice (a draft: the order, nothing shipped yet)",
        out=vc.InvoiceOut,
        body=vc.InvoiceCreate,
        tag=TAG_INVOICES,
        required=True,
        status=201,
        errors=(400, 401, 409, 413, 415, 422),
    ),
    _read(
        "listInvoices",
        "invoices",
        list_invoices,
        "List invoices, newest first; filter by status or number",
        s.ListOut[vc.InvoiceOut],
        query=vc.InvoiceListQuery,
        tag=TAG_INVOICES,
    ),
    _read("getInvoice", _INVOICE, get_invoice, "Get an invoice", vc.InvoiceOut, tag=TAG_INVOICES),
    _action(
        "issueInvoice",
        f"{_INVOICE}/issue",
        issue_invoice,
        "Issue (on shipment) part or all of what is not issued yet; the first issue sets the "
        "due date, when the buyer's AP sends a card",
        out=vc.InvoiceOut,
        body=vc.IssueIn,
        tag=TAG_INVOICES,
    ),
    _action(
        "creditInvoice",
        f"{_INVOICE}/credit_notes",
        credit_invoice,
        "A credit note: off what is due, then refunded to the cards that paid",
        out=vc.InvoiceOut,
        body=vc.CreditNoteIn,
        tag=TAG_INVOICES,
        required=True,
    ),
    _action(
        "writeOffInvoice",
        f"{_INVOICE}/write_off",
        write_off_invoice,
        "Close an underpaid invoice: what is still due is no longer owed (short paid)",
        out=vc.InvoiceOut,
        body=vc.WriteOffIn,
        tag=TAG_INVOICES,
    ),
    _action(
        "voidInvoice",
        f"{_INVOICE}/void",
        void_invoice,
        "Void a draft (nothing issued)",
        out=vc.InvoiceOut,
        body=vc.VoidIn,
        tag=TAG_INVOICES,
    ),
    _action(
        "issueCard",
        "cards",
        create_card,
        "The buyer's AP issues a single-use card for one or more invoices (simulated buyer)",
        out=vc.CardOut,
        body=vc.CardCreate,
        tag=TAG_CARDS,
        required=True,
        status=201,
    ),
    _read(
        "listCards",
        "cards",
        list_cards,
        "List cards, newest first; filter by status",
        s.ListOut[vc.CardOut],
        query=vc.CardListQuery,
        tag=TAG_CARDS,
    ),
    _read(
        "getCard",
        "cards/{id}",
        get_card,
        "Get a card (its token and last4: there is no card number)",
        vc.CardOut,
        tag=TAG_CARDS,
    ),
    _action(
        "authorizeCard",
        "cards/{id}/authorize",
        authorize_card,
        "Hold an amount on the card; 402 when it is expired, used, or over its limit",
        out=vc.CardOut,
        body=vc.AuthorizeIn,
        tag=TAG_CARDS,
        required=True,
        errors=(400, 401, 402, 404, 409, 413, 415, 422),
    ),
    _action(
        "captureCard",
        "cards/{id}/capture",
        capture_card,
        "Capture the hold (single use), allocated to invoices; it clears days later",
        out=vc.PaymentOut,
        body=vc.CaptureIn,
        tag=TAG_CARDS,
        status=201,
    ),
    _read(
        "listPayments",
        "payments",
        list_payments,
        "List card captures with their allocations and fees, newest first; filter by card",
        s.ListOut[vc.PaymentOut],
        query=vc.PaymentListQuery,
        tag=TAG_PAYMENTS,
    ),
    _read(
        "getPayment",
        "payments/{id}",
        get_payment,
        "Get a card capture",
        vc.PaymentOut,
        tag=TAG_PAYMENTS,
    ),
    *native_operations(PREFIX, "vcards."),  # the account's settlements and events
    *token_operations(PREFIX, PERSONALITY, "vcards."),  # the buyers' cards, in the vault
]
