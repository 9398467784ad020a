"""`contracts/creditkey.yaml`: the dialect as Credit Key's clients see it, from the same operation
table the routes come from (`api.OPERATIONS`), built by the native `openapi.build` and then told
Credit Key's differences: credentials as query (or body) keys, and its error body."""

from __future__ import annotations

from typing import Any

from simulator import __version__
from simulator.api import openapi
from simulator.dialects.creditkey import schemas as ck
from simulator.dialects.creditkey.api import OPERATIONS, PUBLIC_KEY_ONLY

DESCRIPTION = """\
Credit Key's v1 "ecomm" merchant API, as Sandbank serves it: point an SDK or plugin's base URL at
`http://HOST:PORT/app` (or `http://HOST:PORT`: `/ecomm/*` answers too) and give it the account's
Credit Key public key and shared secret (`POST /_sandbox/accounts` returns them).

Credentials travel as `public_key` and `shared_secret` in the query string, or as top-level
keys of the JSON body (the PHP SDK's way). `is_displayed_in_checkout`, `begin_checkout` and
`customer` take the public key alone (creditkey-js sends nothing else).

Amounts are decimal US dollars, as JSON numbers or numeric strings, at most two decimals; Sandbank
keeps them as integer cents, so the order is the same one `/v1` shows. Success is always HTTP
200; errors are 400 (bad or refused request), 401 (credentials) and 404 (no such order), with
the body below (Credit Key's clients read only the status). `Idempotency-Key` is honoured as
on `/v1`. Fault rules match these operations by their ids (`creditkey.confirm_order`).
"""

_TEXT = {
    400: "Invalid request: a missing or malformed field, an amount refused, or a state that does "
    "not allow it",
    401: "The public_key and/or shared_secret given are invalid",
    404: "No such order",
}


def creditkey_document() -> dict[str, Any]:
    doc = openapi.build(
        OPERATIONS,
        title="Sandbank: Credit Key v1 dialect",
        version=__version__,
        description=DESCRIPTION,
        security=False,
        idempotency=False,
        transient=True,
        tags={"Credit Key v1": "Credit Key's merchant endpoints, over Sandbank's orders."},
    )
    components = doc["components"]
    error = ck.ErrorOut.model_json_schema(ref_template=openapi.REF)
    components["schemas"].pop("Problem", None)
    components["schemas"]["CreditKeyError"] = error
    used = {
        ref.rsplit("Error", 1)[1]
        for path in doc["paths"].values()
        for op in path.values()
        for answer in op["responses"].values()
        if (ref := answer.get("$ref"))
    }
    responses = {}
    for name, answer in components["responses"].items():
        code = name.removeprefix("Error")
        if code not in used:
            continue
        answer["description"] = _TEXT.get(int(code), answer["description"])
        answer["content"] = {
            "application/json": {"schema": {"$ref": "#/components/schemas/CreditKeyError"}}
        }
        responses[name] = answer
    components["responses"] = responses
    components["securitySchemes"] = {
        "publicKey": {"type": "apiKey", "in": "query", "name": "public_key"},
        "sharedSecret": {"type": "apiKey", "in": "query", "name": "shared_secret"},
    }
    doc["security"] = [{"publicKey": [], "sharedSecret": []}]
    for path in doc["paths"].values():
        for op in path.values():
            if op["operationId"] in PUBLIC_KEY_ONLY:
                op["security"] = [{"publicKey": [], "sharedSecret": []}, {"publicKey": []}]
    return doc
