"""Build an OpenAPI 3.1 document from an operation table and its pydantic models."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from simulator.api.operations import Op
from simulator.api.schemas import EventOut, Problem

REF = "#/components/schemas/{model}"
# Where `make run` serves both documents; clients point elsewhere with their own base URL.
SERVER = {"url": "http://127.0.0.1:8080", "description": "a local simulator (`sandbank serve`)"}
_ERROR_TEXT = {
    400: "Malformed JSON or a bad request",
    401: "Missing or unknown credentials",
    402: "A card declined: expired, used, or over its limit (see `code`)",
    404: "No such object in this account",
    409: "The object's state does not allow this (or the Idempotency-Key is in flight)",
    413: "Body larger than 1 MiB",
    415: "Body is not application/json, or not UTF-8 (a `charset` other than utf-8)",
    422: "Validation failed (see `errors` for field paths), or a business rule refused it",
}
# Answers only some APIs give (a card's decline): a document has them only where declared.
_WHERE_DECLARED = frozenset({402})
# What any provider may answer when it is overloaded or failing (and what Sandbank's faults
# inject): documented on every operation so clients are written for them.
TRANSIENT_TEXT = {
    429: "Rate limited: retry after `Retry-After` seconds",
    500: "The provider failed; retry with the same Idempotency-Key",
    502: "An upstream service failed; retry with the same Idempotency-Key",
    503: "The provider is unavailable; retry after `Retry-After` seconds when given",
    504: "An upstream service timed out; the operation may or may not have happened",
}
BUSY_TEXT = "The database stayed busy with other work (`store_busy`); retry after `Retry-After`"


@dataclass(frozen=True)
class Webhook:
    """One event type as a webhook: what the simulator POSTs to an endpoint when it happens."""

    event_type: str  # `order.captured`: the `webhooks` key and the body's `type`
    object_type: str  # `order`: the body's `object_type`, and `data.object`
    snapshot: type[BaseModel]  # the public shape of the object in `data`
    summary: str
    description: str


EVENT_ID_PATTERN = "^evt_[0-9A-Za-z]+$"
# Standard Webhooks (standardwebhooks.com) headers, sent with every delivery.
WEBHOOK_HEADERS: dict[str, dict[str, Any]] = {
    "WebhookId": {
        "name": "webhook-id",
        "in": "header",
        "required": True,
        "description": "The event's id: the same for every attempt and copy of one event (and "
        "for its replays), so receivers deduplicate on it.",
        "schema": {"type": "string", "pattern": EVENT_ID_PATTERN},
    },
    "WebhookTimestamp": {
        "name": "webhook-timestamp",
        "in": "header",
        "required": True,
        "description": "When this attempt was sent: Unix seconds on the real clock (not the "
        "account's). Refuse "
        "messages more than a few minutes old or in the future (replay protection).",
        "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"},
    },
    "WebhookSignature": {
        "name": "webhook-signature",
        "in": "header",
        "required": True,
        "description": "Space-separated `v1,<base64>` HMAC-SHA256 signatures of "
        "`{webhook-id}.{webhook-timestamp}.{body}` with the endpoint's secret (two during a "
        "secret rotation's overlap). Verify with any Standard Webhooks library; accept the "
        "message when one signature matches.",
        "schema": {
            "type": "string",
            "pattern": "^v1,[0-9A-Za-z+/]{43}=( v1,[0-9A-Za-z+/]{43}=)*$",
        },
    },
}
WEBHOOK_RESPONSES: dict[str, dict[str, Any]] = {
    "2XX": {"description": "Acknowledged: the delivery succeeded and is not sent again."},
    "410": {
        "description": "Gone: the endpoint is disabled (a `webhook_endpoint.disabled` event "
        "follows) and nothing more is sent to it."
    },
    "default": {
        "description": "Any other answer, a redirect, a timeout or no connection: the attempt "
        "failed and is retried on the account's schedule (by default 5 s, 5 min, 30 min, 2 h, "
        "5 h, 10 h and 10 h after the previous attempt, jittered; a 429 or 503 `Retry-After` is "
        "honoured). An endpoint failing for 5 days is disabled."
    },
}


def webhook_schema_name(event_type: str) -> str:
    """`order.captured` -> `OrderCapturedEvent` (the payload's name in `components/schemas`)."""
    return "".join(w.capitalize() for w in re.split(r"[._]", event_type)) + "Event"


def webhook_operation_id(event_type: str) -> str:
    """`order.captured` -> `webhookOrderCaptured`, in the style of the operations' ids."""
    return "webhook" + webhook_schema_name(event_type).removesuffix("Event")


def _thin_schema(object_type: str) -> tuple[str, dict[str, Any]]:
    """The thin form of `data` for an object type, and its name in `components/schemas`."""
    name = "Thin" + "".join(w.capitalize() for w in object_type.split("_"))
    return name, {
        "type": "object",
        "title": name,
        "description": f"A {object_type.replace('_', ' ')} by id only (sent to an endpoint with "
        "the `thin_payload` quirk): fetch it for its current state.",
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string", "const": object_type},
        },
        "required": ["id", "object"],
        "additionalProperties": False,
    }


def _webhooks(
    hooks: Sequence[Webhook],
    ref: Callable[[type[BaseModel], str], dict[str, Any]],
    schemas: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The `webhooks` map, and the per-type payload schemas it adds to `components/schemas`."""
    added: dict[str, Any] = {}
    out: dict[str, Any] = {}
    for hook in hooks:
        name = webhook_schema_name(hook.event_type)
        thin, thin_schema = _thin_schema(hook.object_type)
        if name in schemas or name in added or (thin in schemas and thin not in added):
            raise ValueError(f"schema name {name} or {thin} is taken")
        added[thin] = thin_schema
        # Each payload is a whole object, not `allOf` of EventOut and narrowed fields: code
        # generators cannot merge `type: string` with a `const` and drop such schemas.
        base = schemas[ref(EventOut, "serialization")["$ref"].rsplit("/", 1)[1]]
        properties = copy.deepcopy(base["properties"])
        narrowed: dict[str, dict[str, Any]] = {
            "id": {"type": "string", "pattern": EVENT_ID_PATTERN},
            "object": {"type": "string", "const": "event"},
            "type": {"type": "string", "const": hook.event_type},
            "object_type": {"type": "string", "const": hook.object_type},
            "data": {
                "description": "The object as a GET of it returns it, as it was when the event "
                "happened (or ids only: the thin form).",
                "oneOf": [ref(hook.snapshot, "serialization"), {"$ref": REF.format(model=thin)}],
            },
        }
        for key, schema in narrowed.items():
            title = properties.get(key, {}).get("title")
            properties[key] = {**({"title": title} if title else {}), **schema}
        added[name] = {
            "type": "object",
            "title": name,
            "description": f"The body of the `{hook.event_type}` webhook: the event as "
            "`GET /v1/events/{id}` returns it.",
            "properties": properties,
            "required": sorted({"object", *base.get("required", ())}, key=list(properties).index),
        }
        out[hook.event_type] = {
            "post": {
                "operationId": webhook_operation_id(hook.event_type),
                "summary": hook.summary,
                "description": hook.description,
                "tags": ["Webhooks"],
                "security": [],
                "parameters": [
                    {"$ref": f"#/components/parameters/{key}"} for key in WEBHOOK_HEADERS
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": REF.format(model=name)}}},
                },
                "responses": copy.deepcopy(WEBHOOK_RESPONSES),
            }
        }
    return out, added


def _describe(op: Op, idempotency: bool) -> str:
    """An operation's description when the table gives none: its summary, and what a client
    needs to know of every such call (retry safety, paging)."""
    text = op.summary.rstrip(".") + "."
    if idempotency and op.method in ("POST", "PATCH") and op.idempotent_post:
        text += " Safe to retry with the same `Idempotency-Key`: the first result is replayed."
    if op.query is not None and "cursor" in op.query.model_fields:
        text += " Newest first; page with `limit` and the previous page's `next_cursor`."
    return text


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


def build(  # noqa: PLR0912, PLR0915 - one document, assembled top to bottom in one place
    ops: list[Op],
    *,
    title: str,
    version: str,
    description: str,
    security: bool = True,
    idempotency: bool = True,
    extra_paths: dict[str, Any] | None = None,
    transient: bool = False,
    webhooks: Sequence[Webhook] = (),
    tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(Problem, "serialization")]
    if webhooks:
        models.append((EventOut, "serialization"))
        models.extend((hook.snapshot, "serialization") for hook in webhooks)
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
    declared = {code for op in ops for code in op.errors}
    for status, text in _ERROR_TEXT.items():
        if status in _WHERE_DECLARED and status not in declared:
            continue
        responses[str(status)] = {
            "description": text,
            "headers": headers,
            "content": {"application/problem+json": {"schema": ref(Problem, "serialization")}},
        }
    retry_after = {
        "description": "Seconds to wait before retrying (429 and 503, when the provider knows).",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
    # Every operation may meet the database busy past its wait (`store_busy`, Retry-After).
    unavailable = TRANSIENT_TEXT if transient else {503: BUSY_TEXT}
    transient_codes = tuple(unavailable)
    for status, text in unavailable.items():
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
        entry["description"] = op.description or _describe(op, idempotency)
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
                "content": {
                    "application/json": {"schema": ref(op.body, "validation")},
                    **{media: {"schema": {"type": "string"}} for media in op.body_media},
                },
            }
        ok: dict[str, Any] = {"description": "OK", "headers": dict(headers)}
        if idempotency and op.method in ("POST", "PATCH"):
            ok["headers"]["Idempotent-Replayed"] = {
                "$ref": "#/components/headers/IdempotentReplayed"
            }
        if op.response is not None:
            ok["content"] = {op.response_media: {"schema": ref(op.response, "serialization")}}
            # A JSON object that can also be downloaded as a file (`?format=`).
            ok["content"].update({m: {"schema": {"type": "string"}} for m in op.file_media})
        elif op.file_media:
            ok["content"] = {media: {"schema": {"type": "string"}} for media in op.file_media}
        if op.links:
            ok["links"] = op.links
        entry["responses"] = {
            str(op.status): ok,
            **{str(code): {**ok, "description": text} for code, text in op.also.items()},
            **{
                str(code): {"$ref": f"#/components/responses/Error{code}"}
                for code in (*op.errors, *transient_codes)
            },
        }
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    if extra_paths:
        paths.update(extra_paths)
    hooks, hook_schemas = _webhooks(webhooks, ref, schemas)

    used_tags = {t for ops_ in paths.values() for op_ in ops_.values() for t in op_.get("tags", ())}
    if webhooks:
        used_tags.add("Webhooks")
    tag_text = tags or {}
    if used_tags - set(tag_text):
        raise ValueError(f"describe every tag: {sorted(used_tags - set(tag_text))}")
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": description,
            "license": {"name": "Apache 2.0", "identifier": "Apache-2.0"},
        },
        "servers": [SERVER],
        "tags": [{"name": t, "description": d} for t, d in tag_text.items() if t in used_tags],
        "paths": paths,
        **({"webhooks": hooks} if hooks else {}),
        "components": {
            "schemas": dict(sorted({**schemas, **hook_schemas}.items())),
            "responses": {f"Error{code}": r for code, r in responses.items()},
            "headers": {
                "RequestId": {
                    "description": "Unique id of this request; quote it in bug reports.",
                    "required": True,
                    "schema": {"type": "string"},
                },
            },
        },
    }
    if idempotency:
        doc["components"]["headers"]["IdempotentReplayed"] = {
            "description": "`true` when this is a saved result replayed for a retry.",
            "schema": {"type": "string", "enum": ["true"]},
        }
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
    if webhooks:
        doc["components"].setdefault("parameters", {}).update(copy.deepcopy(WEBHOOK_HEADERS))
    if security:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc
