"""`/gateway/v1`: the gateway + net terms personality's endpoints, thin adapters over
`GatewayService` (invoices, charges, credit notes, write-offs) plus the native settlement and
event endpoints under this prefix (one balance, one outbox per account)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from simulator.api import schemas as s
from simulator.api.guard import Endpoint
from simulator.api.operations import Op
from simulator.api.runtime import parse, path_id, query, run, service_of
from simulator.api.schemas import gateway as g
from simulator.api.tokens import token_operations
from simulator.dialects.native import native_operations
from simulator.domain.gateway import Customer

PREFIX = "/gateway/v1"
TAG_INVOICES, TAG_CHARGES = "Invoices", "Charges"
_READ = (401, 404, 422)
_WRITE = (400, 401, 404, 409, 413, 415, 422)


async def create_invoice(request: Request) -> Response:
    body = await parse(request, g.InvoiceCreate)
    customer = Customer(**body.customer.model_dump())
    items = [i.domain() for i in body.line_items]
    service = service_of(request)
    return await run(
        request,
        lambda ctx: ctx.shown(
            g.InvoiceOut.of,
            service.gateway.create_invoice(
                ctx,
                number=body.number,
                customer=customer,
                amount=body.amount,
                currency=body.currency or ctx.account.settings.default_currency,
                net_days=body.net_days,
                line_items=items,
                metadata=body.metadata,
            ),
        ),
        201,
    )


async def list_invoices(request: Request) -> Response:
    q = query(request, g.InvoiceListQuery)
    return await run(
        request,
        lambda ctx: s.listed(
            service_of(request).gateway.list_invoices(
                ctx, status=q.status, number=q.number, limit=q.limit, cursor=q.cursor
            ),
            g.InvoiceOut.of,
        ),
        reusable=True,
    )


async def get_invoice(request: Request) -> Response:
    return await run(
        request,
        lambda ctx: g.InvoiceOut.of(service_of(request).gateway.get_invoice(ctx, path_id(request))),
        reusable=True,
    )


async def issue_invoice(request: Request) -> Response:
    body = await parse(request, g.IssueIn, optional=True)
    return await run(
        request,
        lambda ctx: ctx.shown(
            g.InvoiceOut.of, service_of(request).gateway.issue(ctx, path_id(request), body.amount)
        ),
    )


async def credit_invoice(request: Request) -> Response:
    body = await parse(request, g.CreditNoteIn)
    return await run(
        request,
        lambda ctx: ctx.shown(
            g.InvoiceOut.of, service_of(request).gateway.credit(ctx, path_id(request), body.amount)
        ),
    )


async def write_off_invoice(request: Request) -> Response:
    body = await parse(request, g.WriteOffIn, optional=True)
    return await run(
        request,
        lambda ctx: ctx.shown(
            g.InvoiceOut.of,
            service_of(request).gateway.write_off(ctx, path_id(request), body.amount),
        ),
    )


async def void_invoice(request: Request) -> Response:
    await parse(request, g.VoidIn, optional=True)
    return await run(
        request,
        lambda ctx: ctx.shown(
            g.InvoiceOut.of, service_of(request).gateway.void(ctx, path_id(request))
        ),
    )


async def create_charge(request: Request) -> Response:
    body = await parse(request, g.ChargeCreate)
    return await run(
        request,
        lambda ctx: ctx.shown(
            g.ChargeOut.of,
            service_of(request).gateway.charge(
                ctx, body.invoice, amount=body.amount, method=body.method
            ),
        ),
        201,
    )


async def list_charges(request: Request) -> Response:
    q = query(request, g.ChargeListQuery)
    return await run(
        request,
        lambda ctx: s.listed(
            service_of(request).gateway.list_charges(
                ctx, invoice_id=q.invoice, limit=q.limit, cursor=q.cursor
            ),
            g.ChargeOut.of,
        ),
        reusable=True,
    )


async def get_charge(request: Request) -> Response:
    return await run(
        request,
        lambda ctx: g.ChargeOut.of(service_of(request).gateway.get_charge(ctx, path_id(request))),
        reusable=True,
    )


def _invoice_action(
    name: str, path: str, endpoint: Endpoint, summary: str, body: type, *, required: bool = False
) -> Op:
    return Op(
        f"gateway.{name}",
        "POST",
        f"{PREFIX}/invoices/{{id}}/{path}",
        endpoint,
        summary,
        g.InvoiceOut,
        body=body,
        body_required=required,
        errors=_WRITE,
        tag=TAG_INVOICES,
    )


OPERATIONS: list[Op] = [
    Op(
        "gateway.createInvoice",
        "POST",
        f"{PREFIX}/invoices",
        create_invoice,
        "Create an invoice (a draft: the order, nothing shipped yet)",
        g.InvoiceOut,
        201,
        body=g.InvoiceCreate,
        errors=(400, 401, 409, 413, 415, 422),
        tag=TAG_INVOICES,
    ),
    Op(
        "gateway.listInvoices",
        "GET",
        f"{PREFIX}/invoices",
        list_invoices,
        "List invoices, newest first; filter by status or number",
        s.ListOut[g.InvoiceOut],
        query=g.InvoiceListQuery,
        errors=(401, 422),
        tag=TAG_INVOICES,
    ),
    Op(
        "gateway.getInvoice",
        "GET",
        f"{PREFIX}/invoices/{{id}}",
        get_invoice,
        "Get an invoice",
        g.InvoiceOut,
        errors=_READ,
        tag=TAG_INVOICES,
    ),
    _invoice_action(
        "issueInvoice",
        "issue",
        issue_invoice,
        "Issue (on shipment) part or all of what is not issued yet; the first issue sets the "
        "due date",
        g.IssueIn,
    ),
    _invoice_action(
        "creditInvoice",
        "credit_notes",
        credit_invoice,
        "A credit note: off what is due, then refunded to the customer through the gateway",
        g.CreditNoteIn,
        required=True,
    ),
    _invoice_action(
        "writeOffInvoice",
        "write_off",
        write_off_invoice,
        "Close an underpaid invoice: what is still due is no longer owed (short paid)",
        g.WriteOffIn,
    ),
    _invoice_action("voidInvoice", "void", void_invoice, "Void a draft (nothing issued)", g.VoidIn),
    Op(
        "gateway.createCharge",
        "POST",
        f"{PREFIX}/charges",
        create_charge,
        "Charge the customer's card or bank account (ACH) against an invoice",
        g.ChargeOut,
        201,
        body=g.ChargeCreate,
        errors=_WRITE,
        tag=TAG_CHARGES,
    ),
    Op(
        "gateway.listCharges",
        "GET",
        f"{PREFIX}/charges",
        list_charges,
        "List charges, newest first; filter by invoice",
        s.ListOut[g.ChargeOut],
        query=g.ChargeListQuery,
        errors=(401, 422),
        tag=TAG_CHARGES,
    ),
    Op(
        "gateway.getCharge",
        "GET",
        f"{PREFIX}/charges/{{id}}",
        get_charge,
        "Get a charge",
        g.ChargeOut,
        errors=_READ,
        tag=TAG_CHARGES,
    ),
    *native_operations(PREFIX, "gateway."),  # the account's settlements and events
    *token_operations(PREFIX, "gateway", "gateway."),  # the customers' cards and bank accounts
]
