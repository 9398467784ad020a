"""Build an OpenAPI 3.1 document from an operation table and its pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from simulator.api.operations import Op
from simulator.api.schemas import Problem

REF = "#/components/schemas/{model}"
_ERROR_TEXT = {
    400: "Malformed JSON or a bad request",
    401: "Missing or unknown credentials",
    404: "No such object in this account",
    409: "The object's state does not allow this (or the Idempotency-Key is in flight)",
    413: "Body larger than 1 MiB",
    415: "Body is not application/json",
    422: "Validation failed (see `errors` for field paths), or a business rule refused it",
}
# What any provider may answer when it is overloaded or failing (and what Sandbank's faults
# inject): documented on every operation so clients are written for them.
TRANSIENT_TEXT = {
    429: "Rate limited: retry after `Retry-After` seconds",
    500: "The provider failed; retry with the same Idempotency-Key",
    502: "An upstream service failed; retry with the same Idempotency-Key",
    503: "The provider is unavailable; retry after `Retry-After` seconds when given",
    504: "An upstream service timed out; the operation may or may not have happened",
}


def _clean_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _query_params(query: type[BaseModel]) -> list[dict[str, Any]]:
    """Query parameters from a pydantic model: optional values are never null on the wire."""
    qschema = query.model_json_schema(ref_template=REF)
    required = set(qschema.get("required", []))
    params: list[dict[str, Any]] = []
    for name, raw in qschema["properties"].items():
        prop = dict(raw)
        prop.pop("title", None)
        if "anyOf" in prop:
            prop = {**next(p for p in prop.pop("anyOf") if p.get("type") != "null"), **prop}
        if prop.get("default", 0) is None:
            prop.pop("default")
        params.append({"name": name, "in": "query", "required": name in required, "schema": prop})
    return params


def build(  # noqa: PLR0912 - one document, assembled top to bottom in one place
    ops: list[Op],
    *,
    title: str,
    version: str,
    description: str,
    security: bool = True,
    idempotency: bool = True,
    extra_paths: dict[str, Any] | None = None,
    transient: bool = False,
) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(Problem, "serialization")]
    for op in ops:
        if op.body is not None:
            models.append((op.body, "validation"))
        if op.response is not None:
            models.append((op.response, "serialization"))
    keys, defs = models_json_schema(models, ref_template=REF)
    schemas = defs.get("$defs", {})
    renames = {name: _clean_name(name) for name in schemas}
    schemas = {renames[k]: v for k, v in sorted(schemas.items())}

    def ref(model: type[BaseModel], mode: str) -> dict[str, Any]:
        raw = keys[(model, mode)]["$ref"]  # type: ignore[index]
        name = raw.rsplit("/", 1)[1]
        return {"$ref": REF.format(model=renames.get(name, name))}

    headers = {"Request-Id": {"$ref": "#/components/headers/RequestId"}}
    responses: dict[str, Any] = {}
    for status, text in _ERROR_TEXT.items():
        responses[str(status)] = {
            "description": text,
            "headers": headers,
            "content": {"application/problem+json": {"schema": ref(Problem, "serialization")}},
        }
    retry_after = {
        "description": "Seconds to wait before retrying (429 and 503, when the provider knows).",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
    transient_codes = tuple(TRANSIENT_TEXT) if transient else ()
    for status, text in TRANSIENT_TEXT.items() if transient else ():
        responses[str(status)] = {
            "description": text,
            "headers": {**headers, "Retry-After": retry_after},
            "content": {"application/problem+json": {"schema": ref(Problem, "serialization")}},
        }
    paths: dict[str, Any] = {}
    for op in ops:
        entry: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary}
        if op.tag:
            entry["tags"] = [op.tag]
        if op.description:
            entry["description"] = op.description
        params: list[dict[str, Any]] = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "minLength": 1, "maxLength": 64},
            }
            for name in re.findall(r"{(\w+)}", op.path)
        ]
        if op.query is not None:
            params.extend(_query_params(op.query))
        if idempotency and op.method in ("POST", "PATCH") and op.idempotent_post:
            params.append({"$ref": "#/components/parameters/IdempotencyKey"})
        if params:
            entry["parameters"] = params
        if op.body is not None:
            entry["requestBody"] = {
                "required": op.body_required,
                "content": {"application/json": {"schema": ref(op.body, "validation")}},
            }
        ok: dict[str, Any] = {"description": "OK", "headers": dict(headers)}
        if idempotency and op.method in ("POST", "PATCH"):
            ok["headers"]["Idempotent-Replayed"] = {
                "$ref": "#/components/headers/IdempotentReplayed"
            }
        if op.response is not None:
            ok["content"] = {op.response_media: {"schema": ref(op.response, "serialization")}}
        if op.links:
            ok["links"] = op.links
        entry["responses"] = {
            str(op.status): ok,
            **{
                str(code): {"$ref": f"#/components/responses/Error{code}"}
                for code in (*op.errors, *transient_codes)
            },
        }
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    if extra_paths:
        paths.update(extra_paths)

    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {f"Error{code}": r for code, r in responses.items()},
            "headers": {
                "RequestId": {
                    "description": "Unique id of this request; quote it in bug reports.",
                    "required": True,
                    "schema": {"type": "string"},
                },
                "IdempotentReplayed": {
                    "description": "`true` when this is a saved result replayed for a retry.",
                    "schema": {"type": "string", "enum": ["true"]},
                },
            },
        },
    }
    if idempotency:
        doc["components"]["parameters"] = {
            "IdempotencyKey": {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Retry-safe key: the first result is saved for 24 h (account clock) "
                "and replayed for retries; another request with it is a 422.",
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 255,
                    "pattern": "^[\\x21-\\x7e]+$",
                },
            }
        }
    if security:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc
