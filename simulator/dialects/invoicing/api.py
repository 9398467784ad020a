"""`/invoicing/v1`: the traditional-invoicing personality's endpoints, thin adapters over
`InvoicingService` (810 invoices, credit memos, write-offs, 820 remittances, cash application)
plus the native settlement and event endpoints under this prefix (one balance, one outbox)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from simulator.api import schemas as s
from simulator.api.operations import Op
from simulator.api.runtime import parse, path_id, query, run, service_of
from simulator.api.schemas import invoicing as e
from simulator.api.tokens import token_operations
from simulator.asgi import ACCOUNT_KEY, read_body
from simulator.dialects.native import native_operations
from simulator.domain.errors import BadRequest
from simulator.domain.invoicing import Buyer
from simulator.domain.x12 import Invoice810, parse_810

PREFIX = "/invoicing/v1"
X12 = "application/edi-x12"
TAG_POS, TAG_INVOICES, TAG_REMITTANCES = "Purchase orders", "Invoices", "Remittances"
_READ = (401, 404, 422)
_WRITE = (400, 401, 404, 409, 413, 415, 422)


async def create_purchase_order(request: Request) -> Response:
    body = await parse(request, e.PurchaseOrderIn)
    buyer = Buyer(name=body.buyer.name, email=body.buyer.email, external_id=body.buyer.id)
    return await run(
        request,
        lambda ctx: ctx.shown(
            e.PurchaseOrderOut.of,
            service_of(request).invoicing.create_purchase_order(
                ctx,
                number=body.number,
                buyer=buyer,
                amount=body.amount,
                currency=body.currency or ctx.account.settings.default_currency,
                net_days=body.net_days,
            ),
        ),
        201,
    )


async def list_purchase_orders(request: Request) -> Response:
    q = query(request, e.PurchaseOrderListQuery)
    return await run(
        request,
        lambda ctx: s.listed(
            service_of(request).invoicing.list_purchase_orders(
                ctx, number=q.number, limit=q.limit, cursor=q.cursor
            ),
            e.PurchaseOrderOut.of,
        ),
        reusable=True,
    )


async def get_purchase_order(request: Request) -> Response:
    return await run(
        request,
        lambda ctx: e.PurchaseOrderOut.of(
            service_of(request).invoicing.get_purchase_order(ctx, path_id(request))
        ),
        reusable=True,
    )


async def cancel_purchase_order(request: Request) -> Response:
    await parse(request, e.CancelIn, optional=True)
    return await run(
        request,
        lambda ctx: ctx.shown(
            e.PurchaseOrderOut.of,
            service_of(request).invoicing.cancel_purchase_order(ctx, path_id(request)),
        ),
    )


async def create_invoice(request: Request) -> Response:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    service = service_of(request)
    if media == X12:
        raw = await read_body(request.scope, request.receive)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("the X12 document is not UTF-8 text") from None
        document: Invoice810 = parse_810(text)
        return await run(
            request,
            lambda ctx: ctx.shown(
                e.EdiInvoiceOut.of, service.invoicing.create_invoice(ctx, document)
            ),
            201,
        )
    body = await parse(request, e.Invoice810In)
    return await run(
        request,
        lambda ctx: ctx.shown(
            e.EdiInvoiceOut.of,
            service.invoicing.create_invoice(
                ctx, body.document(ctx.account.settings.default_currency, ctx.now.date())
            ),
        ),
        201,
    )


async def list_invoices(request: Request) -> Response:
    q = query(request, e.InvoiceListQuery)
    return await run(
        request,
        lambda ctx: s.listed(
            service_of(request).invoicing.list_invoices(
                ctx,
                status=q.status,
                number=q.number,
                po_number=q.po_number,
                limit=q.limit,
                cursor=q.cursor,
            ),
            e.EdiInvoiceOut.of,
        ),
        reusable=True,
    )


async def get_invoice(request: Request) -> Response:
    return await run(
        request,
        lambda ctx: e.EdiInvoiceOut.of(
            service_of(request).invoicing.get_invoice(ctx, path_id(request))
        ),
        reusable=True,
    )


async def credit_invoice(request: Request) -> Response:
    body = await parse(request, e.CreditMemoIn)
    return await run(
        request,
        lambda ctx: ctx.shown(
            e.EdiInvoiceOut.of,
            service_of(request).invoicing.credit(ctx, path_id(request), body.amount, body.reason),
        ),
    )


async def write_off_invoice(request: Request) -> Response:
    body = await parse(request, e.WriteOffIn, optional=True)
    return await run(
        request,
        lambda ctx: ctx.shown(
            e.EdiInvoiceOut.of,
            service_of(request).invoicing.write_off(ctx, path_id(request), body.reason),
        ),
    )


async def list_remittances(request: Request) -> Response:
    q = query(request, e.RemittanceListQuery)
    return await run(
        request,
        lambda ctx: s.listed(
            service_of(request).invoicing.list_remittances(
                ctx, status=q.status, limit=q.limit, cursor=q.cursor
            ),
            e.RemittanceOut.of,
        ),
        reusable=True,
    )


async def get_remittance(request: Request) -> Response:
    q = query(request, e.RemittanceGetQuery)
    service = service_of(request)
    if q.format == "x12":
        with service.scope(request.scope[ACCOUNT_KEY], write=False) as ctx:
            remittance = service.invoicing.get_remittance(ctx, path_id(request))
            text = service.invoicing.x12(ctx, remittance)
        headers = {"Content-Disposition": f'attachment; filename="{remittance.id}.x12"'}
        return Response(text.encode(), 200, media_type=X12, headers=headers)
    return await run(
        request,
        lambda ctx: e.RemittanceOut.of(service.invoicing.get_remittance(ctx, path_id(request))),
        reusable=True,
    )


async def apply_remittance(request: Request) -> Response:
    body = await parse(request, e.ApplyIn)
    wanted = [(a.line, a.invoice, a.amount) for a in body.allocations]
    return await run(
        request,
        lambda ctx: ctx.shown(
            e.RemittanceOut.of, service_of(request).invoicing.apply(ctx, path_id(request), wanted)
        ),
    )


OPERATIONS: list[Op] = [
    Op(
        "invoicing.createPurchaseOrder",
        "POST",
        f"{PREFIX}/purchase_orders",
        create_purchase_order,
        "Put a buyer's purchase order on file (an EDI 850 received): its buyer and amount",
        e.PurchaseOrderOut,
        201,
        body=e.PurchaseOrderIn,
        errors=(400, 401, 409, 413, 415, 422),
        tag=TAG_POS,
    ),
    Op(
        "invoicing.listPurchaseOrders",
        "GET",
        f"{PREFIX}/purchase_orders",
        list_purchase_orders,
        "List purchase orders, newest first; filter by number",
        s.ListOut[e.PurchaseOrderOut],
        query=e.PurchaseOrderListQuery,
        errors=(401, 422),
        tag=TAG_POS,
    ),
    Op(
        "invoicing.getPurchaseOrder",
        "GET",
        f"{PREFIX}/purchase_orders/{{id}}",
        get_purchase_order,
        "Get a purchase order",
        e.PurchaseOrderOut,
        errors=_READ,
        tag=TAG_POS,
    ),
    Op(
        "invoicing.cancelPurchaseOrder",
        "POST",
        f"{PREFIX}/purchase_orders/{{id}}/cancel",
        cancel_purchase_order,
        "Cancel a purchase order nothing was invoiced against",
        e.PurchaseOrderOut,
        body=e.CancelIn,
        body_required=False,
        errors=_WRITE,
        tag=TAG_POS,
    ),
    Op(
        "invoicing.createInvoice",
        "POST",
        f"{PREFIX}/invoices",
        create_invoice,
        "Send an invoice: an EDI 810 as JSON, or the X12 text as application/edi-x12",
        e.EdiInvoiceOut,
        201,
        body=e.Invoice810In,
        body_media=(X12,),
        errors=(400, 401, 409, 413, 415, 422),
        tag=TAG_INVOICES,
    ),
    Op(
        "invoicing.listInvoices",
        "GET",
        f"{PREFIX}/invoices",
        list_invoices,
        "List invoices, newest first; filter by status, number or PO number",
        s.ListOut[e.EdiInvoiceOut],
        query=e.InvoiceListQuery,
        errors=(401, 422),
        tag=TAG_INVOICES,
    ),
    Op(
        "invoicing.getInvoice",
        "GET",
        f"{PREFIX}/invoices/{{id}}",
        get_invoice,
        "Get an invoice",
        e.EdiInvoiceOut,
        errors=_READ,
        tag=TAG_INVOICES,
    ),
    Op(
        "invoicing.creditInvoice",
        "POST",
        f"{PREFIX}/invoices/{{id}}/credit_memos",
        credit_invoice,
        "A credit memo: off what is still due (never more)",
        e.EdiInvoiceOut,
        body=e.CreditMemoIn,
        errors=_WRITE,
        tag=TAG_INVOICES,
    ),
    Op(
        "invoicing.writeOffInvoice",
        "POST",
        f"{PREFIX}/invoices/{{id}}/write_off",
        write_off_invoice,
        "Write off what is still due on an unpaid invoice",
        e.EdiInvoiceOut,
        body=e.WriteOffIn,
        body_required=False,
        errors=_WRITE,
        tag=TAG_INVOICES,
    ),
    Op(
        "invoicing.listRemittances",
        "GET",
        f"{PREFIX}/remittances",
        list_remittances,
        "List remittances (EDI 820), newest first; filter by status (unmatched ...)",
        s.ListOut[e.RemittanceOut],
        query=e.RemittanceListQuery,
        errors=(401, 422),
        tag=TAG_REMITTANCES,
    ),
    Op(
        "invoicing.getRemittance",
        "GET",
        f"{PREFIX}/remittances/{{id}}",
        get_remittance,
        "Get a remittance as JSON, or as the X12 820 text with `?format=x12`",
        e.RemittanceOut,
        query=e.RemittanceGetQuery,
        file_media=(X12,),
        errors=_READ,
        tag=TAG_REMITTANCES,
    ),
    Op(
        "invoicing.applyRemittance",
        "POST",
        f"{PREFIX}/remittances/{{id}}/apply",
        apply_remittance,
        "Apply remittance lines to invoices by hand (cash application); all or nothing",
        e.RemittanceOut,
        body=e.ApplyIn,
        errors=_WRITE,
        tag=TAG_REMITTANCES,
    ),
    *native_operations(PREFIX, "invoicing."),  # the account's settlements and events
    *token_operations(PREFIX, "invoicing", "invoicing."),  # the buyers' bank accounts
]
