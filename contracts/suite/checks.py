"""Project checks, one short function each, registered with schemathesis next to its own.

Registration is process-wide: importing this module (the suite's conftest does) makes every
`call_and_validate()` and every stateful step run them.
"""

from __future__ import annotations

import json
import re
from typing import Any

import requests
import schemathesis
from schemathesis.python import asgi

PROBLEM_JSON = "application/problem+json"
# Problem codes that mean "the request does not match the document" (as opposed to a business
# rule such as `currency_mismatch` or `amount_exceeds_capturable` refusing a well-formed one).
SCHEMA_REFUSALS = frozenset(
    {"validation_failed", "malformed_json", "unsupported_media_type", "bad_request"}
)
AMOUNT_KEY = re.compile(r"^(amount|.+_amount|limit|used|available|annual_revenue)$")


def _header(response: Any, name: str) -> str | None:
    values = response.headers.get(name.lower())
    return values[0] if values else None


def _json(response: Any) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        return None


@schemathesis.check
def problem_json_on_errors(ctx: Any, response: Any, case: Any) -> None:
    """Every 4xx/5xx is `application/problem+json` with the RFC 9457 members and its status."""
    if response.status_code < 400:
        return
    media = (_header(response, "content-type") or "").split(";", 1)[0].strip()
    assert media == PROBLEM_JSON, f"{response.status_code} sent as {media!r}, not {PROBLEM_JSON}"
    doc = _json(response)
    assert isinstance(doc, dict), "the problem body is not a JSON object"
    missing = {"type", "title", "status", "detail", "code", "request_id"} - doc.keys()
    assert not missing, f"the problem lacks {sorted(missing)}"
    assert doc["status"] == response.status_code, "the problem's status differs from the HTTP one"


@schemathesis.check
def request_id_present(ctx: Any, response: Any, case: Any) -> None:
    """Every response carries a non-empty `Request-Id`, and problems quote the same id."""
    rid = _header(response, "request-id")
    assert rid, "the response has no Request-Id header"
    if response.status_code >= 400:
        doc = _json(response)
        if isinstance(doc, dict) and "request_id" in doc:
            assert doc["request_id"] == rid, "the problem's request_id differs from Request-Id"


@schemathesis.check
def valid_requests_pass_validation(ctx: Any, response: Any, case: Any) -> None:
    """A schema-valid request may be refused by a business rule (a documented 422 with its own
    code), never by validation: the document must describe exactly what the server accepts.

    This is the strict half of `positive_data_acceptance`, which the suite configures to allow
    422 because business refusals of well-formed requests share that status.
    """
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return
    doc = _json(response)
    code = doc.get("code") if isinstance(doc, dict) else None
    assert code not in SCHEMA_REFUSALS, f"a schema-valid request was refused as {code!r}"


def _float_amounts(value: Any, path: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}/{key}"
            is_amount = AMOUNT_KEY.match(str(key)) and item is not None
            if is_amount and (not isinstance(item, int) or isinstance(item, bool)):
                found.append(f"{where}={item!r}")
            found.extend(_float_amounts(item, where))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_float_amounts(item, f"{path}/{index}"))
    return found


@schemathesis.check
def integer_amounts(ctx: Any, response: Any, case: Any) -> None:
    """Money is integer minor units: no float (or string) amount anywhere in a JSON body."""
    bad = _float_amounts(_json(response))
    assert not bad, f"amounts must be integers: {', '.join(bad[:5])}"


def _resend(case: Any, request: requests.PreparedRequest) -> requests.Response:
    app = case.operation.app
    if app is not None:
        with asgi.get_client(app) as client:
            return client.send(request.copy())
    with requests.Session() as session:
        return session.send(request.copy(), timeout=30)


def _without_request_id(body: bytes) -> Any:
    doc = json.loads(body) if body else None
    if isinstance(doc, dict):
        doc.pop("request_id", None)
    return doc


@schemathesis.check
def idempotent_replay_identical(ctx: Any, response: Any, case: Any) -> None:
    """Re-sending a POST/PATCH with its Idempotency-Key replays the first result exactly.

    A result the operation produced (success or business error) is saved and replayed with
    `Idempotent-Replayed: true` and the same bytes. A request refused before the operation ran
    (validation, malformed JSON) is not saved: the retry is refused again the same way.
    """
    request = response.request
    key = request.headers.get("Idempotency-Key")
    if case.method.upper() not in ("POST", "PATCH") or not key or response.status_code >= 500:
        return
    replay = _resend(case, request)
    assert replay.status_code == response.status_code, (
        f"replay with Idempotency-Key {key!r} got {replay.status_code}, "
        f"the first request {response.status_code}"
    )
    replayed = replay.headers.get("Idempotent-Replayed")
    if response.status_code < 300 or replayed is not None:
        assert replayed == "true", "a replayed result lacks 'Idempotent-Replayed: true'"
        assert replay.content == response.content, "the replayed body differs from the first"
    else:
        assert _without_request_id(replay.content) == _without_request_id(response.content), (
            "a retry of a refused request was refused differently"
        )
