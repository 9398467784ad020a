"""`/v1/exports`: the account's whole dataset as CSV or JSON-lines files (thin adapters over
`simulator/exports.py`, whose `FILES` table documents every file and column)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from simulator import exports
from simulator.api import schemas as s
from simulator.api.operations import Op
from simulator.api.runtime import parse, path_id, query, run, service_of
from simulator.asgi import ACCOUNT_KEY
from simulator.context import Ctx

BASE = "/v1/exports"


class ExportCreate(s.RequestModel):
    format: Literal["csv", "jsonl"] = Field(
        "csv", description="`csv` (RFC 4180, header row, CRLF) or `jsonl` (JSON lines)."
    )


class ExportFileOut(BaseModel):
    name: str = Field(description="`orders.csv`, `events.jsonl`, ...")
    content_type: str = Field(description="`text/csv` or `application/x-ndjson`.")
    rows: int = Field(description="Data rows (the CSV header is not counted).")
    bytes: int = Field(description="Size of the file.")
    sha256: str = Field(description="Hex SHA-256 of the file's bytes.")
    url: str = Field(description="Where to download it (same credentials).")


class ExportOut(BaseModel):
    id: str
    object: Literal["export"] = "export"
    format: Literal["csv", "jsonl"]
    status: Literal["succeeded"] = Field(
        description="Always `succeeded`: the sandbox builds an export within the request."
    )
    created_at: datetime = Field(description="When it was taken (account clock).")
    files: list[ExportFileOut]

    @classmethod
    def of(cls, x: exports.Export) -> ExportOut:
        return cls(
            id=x.id,
            format=x.format,
            status=x.status,
            created_at=x.created_at,
            files=[
                ExportFileOut(
                    name=f.name,
                    content_type=f.content_type,
                    rows=f.rows,
                    bytes=f.bytes,
                    sha256=f.sha256,
                    url=f"{BASE}/{x.id}/files/{f.name}",
                )
                for f in x.files
            ],
        )


async def create_export(request: Request) -> Response:
    """The files are built first, from a snapshot and off the event loop (the store's
    `build_export`); then the export is recorded in an ordinary write. Its chunks are dropped
    if it is not (an error, or an idempotent replay answered from the saved response)."""
    body = await parse(request, ExportCreate, optional=True)
    service = service_of(request)
    with service.scope(request.scope[ACCOUNT_KEY], write=False) as ctx:
        aid = ctx.aid  # and the work due on its clock is done (the guard ran it first)
    spool = exports.spool_name(aid)
    kept: list[exports.Export] = []

    def op(ctx: Ctx) -> ExportOut:
        kept.append(exports.create_export(ctx, body.format, spool, files))
        return ExportOut.of(kept[-1])

    try:
        files = await service.store.build_export(
            aid, spool, lambda rows, write: exports.build(rows, body.format, write)
        )
        response = await run(request, op, 201)
    except BaseException:
        await service.store.drop_export(spool)
        raise
    if not kept or response.status_code != 201:
        await service.store.drop_export(spool)
    return response


async def list_exports(request: Request) -> Response:
    q = query(request, s.ListQuery)

    def op(ctx: Ctx) -> s.ListOut[ExportOut]:
        page = exports.list_exports(ctx, limit=q.limit, cursor=q.cursor)
        return s.listed(page, ExportOut.of)

    return await run(request, op)


async def get_export(request: Request) -> Response:
    return await run(request, lambda ctx: ExportOut.of(exports.get_export(ctx, path_id(request))))


async def get_export_file(request: Request) -> Response:
    """Streamed from the stored chunks, a page at a time (flat memory, the loop stays free)."""
    name = str(request.path_params["name"])
    service = service_of(request)
    with service.scope(request.scope[ACCOUNT_KEY], write=False) as ctx:
        export = exports.get_export(ctx, path_id(request))
        found = exports.export_file(export, name)
    headers = {"Content-Disposition": f'attachment; filename="{found.name}"'}
    if export.spool is None:  # an export made before files were chunks
        return Response((found.content or "").encode(), 200, headers, found.content_type)
    headers["Content-Length"] = str(found.bytes)
    stream = service.store.export_stream(export.spool, found.name)
    return StreamingResponse(stream, 200, headers, media_type=found.content_type)


def _files_text() -> str:
    parts = []
    for name, spec in exports.FILES.items():
        columns = "\n".join(f"  - `{c.name}` ({c.type}): {c.description}" for c in spec.columns)
        parts.append(f"- `{name}`: {spec.description}\n{columns}")
    return "\n".join(parts)


_CREATE_DESCRIPTION = (
    "Takes a snapshot of everything in the account, as one file per kind of object. The "
    "sandbox builds it within the request, from one consistent snapshot of the account, "
    "streaming each file to storage as it is encoded (other requests go on meanwhile), so "
    "the export comes back `succeeded` with its files ready (a real provider would run a "
    "job). Downloads are streamed too.\n\n"
    "Money is integer minor units with the row's `currency`; times are RFC 3339 in UTC on the "
    "account clock; rows are oldest first. CSV: a header row, CRLF line ends, UTF-8, empty "
    "fields for nulls, `true`/`false`, nested values (json) as compact JSON text. JSON lines: "
    "one object per row with the same keys. The same account state gives byte-identical files "
    "(compare `sha256`). Settlement lines are the true lines, never a drifted report.\n\n"
    "Files and columns:\n\n" + _files_text()
)
_READ = (401, 404, 422)
OPERATIONS: list[Op] = [
    Op(
        "createExport",
        "POST",
        BASE,
        create_export,
        "Export the account's data (orders, captures, refunds, repayments, settlements and "
        "their lines, disputes, events) as CSV or JSON lines",
        ExportOut,
        201,
        body=ExportCreate,
        body_required=False,
        errors=(400, 401, 409, 413, 415, 422),
        tag="Exports",
        description=_CREATE_DESCRIPTION,
        links={
            "GetExport": {"operationId": "getExport", "parameters": {"id": "$response.body#/id"}},
            "GetExportFile": {
                "operationId": "getExportFile",
                "parameters": {
                    "id": "$response.body#/id",
                    "name": "$response.body#/files/0/name",
                },
            },
        },
    ),
    Op(
        "listExports",
        "GET",
        BASE,
        list_exports,
        "List exports, newest first",
        s.ListOut[ExportOut],
        query=s.ListQuery,
        errors=(401, 422),
        tag="Exports",
    ),
    Op(
        "getExport",
        "GET",
        f"{BASE}/{{id}}",
        get_export,
        "Get an export and its files",
        ExportOut,
        errors=_READ,
        tag="Exports",
    ),
    Op(
        "getExportFile",
        "GET",
        f"{BASE}/{{id}}/files/{{name}}",
        get_export_file,
        "Download one file of an export (`text/csv` or `application/x-ndjson`)",
        None,
        errors=_READ,
        tag="Exports",
        description="The file's bytes, as listed in the export (`sha256`, `bytes`). An unknown "
        "export or file name is a 404.",
        file_media=(exports.MEDIA["csv"], exports.MEDIA["jsonl"]),
    ),
]
