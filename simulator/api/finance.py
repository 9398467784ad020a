"""`/v1/settlements` and `/v1/disputes`, and the buyer's single pane: thin adapters over
`FinanceService`."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from simulator.api import schemas as s
from simulator.api.operations import Op
from simulator.api.runtime import parse, path_id, query, run, service_of
from simulator.asgi import ACCOUNT_KEY
from simulator.context import Ctx
from simulator.domain.finance import SettlementLine
from simulator.exports import FILES, MEDIA, FileSpec, col, encode

# The settlement report: one row per line as the report tells it, oldest first. Its columns
# after the two ids are the exports' `settlement_lines` columns, so the two never drift apart.
REPORT = FileSpec(
    "A settlement's lines",
    (
        col("settlement_id", "string", "The settlement (payout) the line is paid in"),
        col("line_id", "string", "The line's id (`sln_...`), stable across downloads"),
        *(c for c in FILES["settlement_lines"].columns if c.name not in {"id", "settlement_id"}),
    ),
)


def _report_row(line: SettlementLine) -> dict[str, Any]:
    return {
        "settlement_id": line.settlement_id,
        "line_id": line.id,
        **{name: getattr(line, name) for name in REPORT.names[2:]},
    }


async def get_buyer(request: Request) -> Response:
    def op(ctx: Ctx) -> s.BuyerDetailOut:
        service = service_of(request)
        buyer = service.get_buyer(ctx, path_id(request))
        open_repayments, defaulted = service.finance.buyer_repayments(ctx, buyer.id)
        return s.BuyerDetailOut.detail(buyer, open_repayments, defaulted)

    return await run(request, op, reusable=True)


async def list_settlements(request: Request) -> Response:
    q = query(request, s.SettlementListQuery)

    def op(ctx: Ctx) -> s.ListOut[s.SettlementSummaryOut]:
        page = service_of(request).finance.list_settlements(
            ctx, status=q.status, limit=q.limit, cursor=q.cursor
        )
        return s.listed(page, s.SettlementSummaryOut.of)

    return await run(request, op, reusable=True)


async def get_settlement(request: Request) -> Response:
    return await run(
        request,
        lambda ctx: s.SettlementOut.of(
            service_of(request).finance.get_settlement(ctx, path_id(request))
        ),
        reusable=True,
    )


async def get_settlement_report(request: Request) -> Response:
    q = query(request, s.ReportQuery)
    with service_of(request).scope(request.scope[ACCOUNT_KEY]) as ctx:
        settlement = service_of(request).finance.get_settlement(ctx, path_id(request))
    data = encode(REPORT, settlement.report_lines, _report_row, q.format)
    name = f"{settlement.id}.{q.format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return Response(data, 200, media_type=MEDIA[q.format], headers=headers)


async def list_disputes(request: Request) -> Response:
    q = query(request, s.DisputeListQuery)

    def op(ctx: Ctx) -> s.ListOut[s.DisputeOut]:
        page = service_of(request).finance.list_disputes(
            ctx, status=q.status, order_id=q.order_id, limit=q.limit, cursor=q.cursor
        )
        return s.listed(page, s.DisputeOut.of)

    return await run(request, op, reusable=True)


async def get_dispute(request: Request) -> Response:
    return await run(
        request,
        lambda ctx: s.DisputeOut.of(service_of(request).finance.get_dispute(ctx, path_id(request))),
        reusable=True,
    )


async def submit_evidence(request: Request) -> Response:
    body = await parse(request, s.EvidenceIn)
    return await run(
        request,
        lambda ctx: ctx.shown(
            s.DisputeOut.of,
            service_of(request).finance.submit_evidence(ctx, path_id(request), body.evidence),
        ),
    )


async def accept_dispute(request: Request) -> Response:
    await parse(request, s.AcceptDispute, optional=True)
    return await run(
        request,
        lambda ctx: ctx.shown(
            s.DisputeOut.of, service_of(request).finance.accept_dispute(ctx, path_id(request))
        ),
    )


_READ = (401, 404, 422)
_WRITE = (400, 401, 404, 409, 413, 415, 422)
_REPORT_DESCRIPTION = (
    "The settlement's lines as a file, one row per line, with these columns:\n\n"
    + "\n".join(f"- `{c.name}` ({c.type}): {c.description}" for c in REPORT.columns)
    + "\n\nCSV has a header row and CRLF line ends, and a null is an empty field; JSON lines "
    "have the same keys, with integers as JSON numbers. Reconcile against your ledger: the "
    "lines' `net` sums to the settlement's `amount`."
)

OPERATIONS: list[Op] = [
    Op(
        "listSettlements",
        "GET",
        "/v1/settlements",
        list_settlements,
        "List settlements (payouts), newest first",
        s.ListOut[s.SettlementSummaryOut],
        query=s.SettlementListQuery,
        errors=(401, 422),
        tag="Settlements",
    ),
    Op(
        "getSettlement",
        "GET",
        "/v1/settlements/{id}",
        get_settlement,
        "Get a settlement with its lines",
        s.SettlementOut,
        errors=_READ,
        tag="Settlements",
    ),
    Op(
        "getSettlementReport",
        "GET",
        "/v1/settlements/{id}/report",
        get_settlement_report,
        "Download a settlement report as CSV or JSON lines",
        None,
        query=s.ReportQuery,
        errors=_READ,
        tag="Settlements",
        description=_REPORT_DESCRIPTION,
        file_media=(MEDIA["csv"], MEDIA["jsonl"]),
    ),
    Op(
        "listDisputes",
        "GET",
        "/v1/disputes",
        list_disputes,
        "List disputes, newest first",
        s.ListOut[s.DisputeOut],
        query=s.DisputeListQuery,
        errors=(401, 422),
        tag="Disputes",
    ),
    Op(
        "getDispute",
        "GET",
        "/v1/disputes/{id}",
        get_dispute,
        "Get a dispute",
        s.DisputeOut,
        errors=_READ,
        tag="Disputes",
    ),
    Op(
        "submitDisputeEvidence",
        "POST",
        "/v1/disputes/{id}/evidence",
        submit_evidence,
        "Respond to a dispute with evidence; it is decided by `decides_at`",
        s.DisputeOut,
        body=s.EvidenceIn,
        errors=_WRITE,
        tag="Disputes",
    ),
    Op(
        "acceptDispute",
        "POST",
        "/v1/disputes/{id}/accept",
        accept_dispute,
        "Accept a dispute: it is lost and the debit stands",
        s.DisputeOut,
        body=s.AcceptDispute,
        body_required=False,
        errors=_WRITE,
        tag="Disputes",
    ),
]
