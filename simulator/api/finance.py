"""`/v1/settlements` and `/v1/disputes`, and the buyer's single pane: thin adapters over
`FinanceService`."""

from __future__ import annotations

import csv
import io

import orjson
from starlette.requests import Request
from starlette.responses import Response

from simulator.api import schemas as s
from simulator.api.operations import Op
from simulator.api.runtime import ACCOUNT_KEY, parse, path_id, query, run, service_of
from simulator.domain.finance import Dispute, Settlement
from simulator.service import Ctx

# The settlement report's columns, in order (CSV header and JSON-lines keys alike).
REPORT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("settlement_id", "The settlement (payout) the line is paid in"),
    ("line_id", "The line's id (`sln_...`), stable across downloads"),
    ("type", "capture, refund, fee, dispute, dispute_reversal or carry_forward"),
    ("order_id", "The order the money belongs to (empty for carry_forward)"),
    ("source_id", "The capture, refund, dispute or settlement that made the line"),
    ("currency", "ISO 4217 code"),
    ("gross", "Minor units; negative for debits"),
    ("fee", "The merchant discount fee, minor units"),
    ("net", "gross - fee, minor units; the lines' net sums to the payout"),
    ("batch_date", "The business day whose batch the line belongs to (YYYY-MM-DD)"),
    ("created_at", "When the movement happened on the account clock (RFC 3339, UTC)"),
)
CSV_MEDIA = "text/csv"
JSONL_MEDIA = "application/x-ndjson"


async def get_buyer(request: Request) -> Response:
    def op(ctx: Ctx) -> s.BuyerDetailOut:
        service = service_of(request)
        buyer = service.get_buyer(ctx, path_id(request))
        open_repayments, defaulted = service.finance.buyer_repayments(ctx, buyer.id)
        return s.BuyerDetailOut.detail(buyer, open_repayments, defaulted)

    return await run(request, op)


async def list_settlements(request: Request) -> Response:
    q = query(request, s.SettlementListQuery)

    def op(ctx: Ctx) -> s.ListOut[s.SettlementSummaryOut]:
        page = ctx.tx.finance_page(
            Settlement, ctx.aid, "settlement", status=q.status, limit=q.limit, cursor=q.cursor
        )
        return s.ListOut[s.SettlementSummaryOut](
            data=[s.SettlementSummaryOut.of(x) for x in page.items],
            has_more=page.has_more,
            next_cursor=page.next_cursor,
        )

    return await run(request, op)


async def get_settlement(request: Request) -> Response:
    return await run(
        request,
        lambda ctx: s.SettlementOut.of(
            service_of(request).finance.get_settlement(ctx, path_id(request))
        ),
    )


async def get_settlement_report(request: Request) -> Response:
    q = query(request, s.ReportQuery)
    with service_of(request).scope(request.scope[ACCOUNT_KEY]) as ctx:
        settlement = service_of(request).finance.get_settlement(ctx, path_id(request))
    rows = [
        {
            "settlement_id": settlement.id,
            "line_id": line.id,
            "type": line.type,
            "order_id": line.order_id or "",
            "source_id": line.source_id,
            "currency": line.currency,
            "gross": line.gross,
            "fee": line.fee,
            "net": line.net,
            "batch_date": line.batch_date.isoformat(),
            "created_at": line.created_at.isoformat().replace("+00:00", "Z"),
        }
        for line in settlement.report_lines
    ]
    name = f"{settlement.id}.{q.format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if q.format == "jsonl":
        body = b"".join(orjson.dumps(row) + b"\n" for row in rows)
        return Response(body, 200, media_type=JSONL_MEDIA, headers=headers)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[c for c, _ in REPORT_COLUMNS], lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return Response(out.getvalue(), 200, media_type=CSV_MEDIA, headers=headers)


async def list_disputes(request: Request) -> Response:
    q = query(request, s.DisputeListQuery)

    def op(ctx: Ctx) -> s.ListOut[s.DisputeOut]:
        page = ctx.tx.finance_page(
            Dispute,
            ctx.aid,
            "dispute",
            status=q.status,
            ref=q.order_id,
            limit=q.limit,
            cursor=q.cursor,
        )
        return s.ListOut[s.DisputeOut](
            data=[s.DisputeOut.of(x) for x in page.items],
            has_more=page.has_more,
            next_cursor=page.next_cursor,
        )

    return await run(request, op)


async def get_dispute(request: Request) -> Response:
    return await run(
        request,
        lambda ctx: s.DisputeOut.of(service_of(request).finance.get_dispute(ctx, path_id(request))),
    )


async def submit_evidence(request: Request) -> Response:
    body = await parse(request, s.EvidenceIn)
    return await run(
        request,
        lambda ctx: s.DisputeOut.of(
            service_of(request).finance.submit_evidence(ctx, path_id(request), body.evidence)
        ),
    )


async def accept_dispute(request: Request) -> Response:
    await parse(request, s.AcceptDispute, optional=True)
    return await run(
        request,
        lambda ctx: s.DisputeOut.of(
            service_of(request).finance.accept_dispute(ctx, path_id(request))
        ),
    )


_READ = (401, 404, 422)
_WRITE = (400, 401, 404, 409, 413, 415, 422)
_REPORT_DESCRIPTION = (
    "The settlement's lines as a file, one row per line, with these columns:\n\n"
    + "\n".join(f"- `{c}`: {d}" for c, d in REPORT_COLUMNS)
    + "\n\nCSV has a header row and CRLF line ends; JSON lines have the same keys, with "
    "integers as JSON numbers. Reconcile against your ledger: the lines' `net` sums to the "
    "settlement's `amount`."
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
        file_media=(CSV_MEDIA, JSONL_MEDIA),
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
