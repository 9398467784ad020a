"""One error tree. Each error carries a stable `code`, an HTTP `status` and a `title`.

Only `simulator/api/problems.py` turns these into responses; domain code never speaks HTTP.
"""

from __future__ import annotations

from typing import Any, ClassVar


class SandbankError(Exception):
    """Root of every error the simulator raises on purpose."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title


# --- 400-class: the request itself -------------------------------------------------------
class BadRequest(SandbankError):
    code, status, title = "bad_request", 400, "Bad request"


class MalformedJson(BadRequest):
    code, title = "malformed_json", "Malformed JSON"


class DuplicateKey(BadRequest):
    """A JSON object that names a key twice: refused, never "the last one wins"."""

    code, title = "duplicate_key", "Duplicate key in JSON"


class PayloadTooLarge(SandbankError):
    code, status, title = "payload_too_large", 413, "Payload too large"


class UnsupportedMediaType(SandbankError):
    code, status, title = "unsupported_media_type", 415, "Unsupported media type"


class ValidationFailed(SandbankError):
    """Schema violations. `errors` lists `{path, message, type}` per offending field."""

    code, status, title = "validation_failed", 422, "Validation failed"

    def __init__(self, errors: list[dict[str, Any]], detail: str | None = None) -> None:
        first = errors[0] if errors else {"path": "", "message": "invalid"}
        where = first["path"] or "body"
        super().__init__(detail or f"{where}: {first['message']}")
        self.errors = errors


class InvalidAmount(SandbankError):
    code, status, title = "invalid_amount", 422, "Invalid amount"


class UnknownCurrency(SandbankError):
    code, status, title = "unknown_currency", 422, "Unknown currency"

    def __init__(self, currency: str) -> None:
        super().__init__(f"{currency!r} is not an ISO 4217 currency code")


class CurrencyMismatch(SandbankError):
    code, status, title = "currency_mismatch", 422, "Currency mismatch"

    def __init__(self, expected: str, got: str) -> None:
        super().__init__(f"this object is in {expected}; the request used {got}")


class AmountExceedsCapturable(SandbankError):
    code, status, title = "amount_exceeds_capturable", 422, "Amount exceeds capturable amount"


class AmountExceedsRefundable(SandbankError):
    code, status, title = "amount_exceeds_refundable", 422, "Amount exceeds refundable amount"


class InsufficientCredit(SandbankError):
    code, status, title = "insufficient_credit", 422, "Insufficient available credit"


class InvalidDuration(SandbankError):
    code, status, title = "invalid_duration", 422, "Invalid duration"


class ClockWouldGoBackwards(SandbankError):
    code, status, title = "clock_backwards", 422, "The clock only moves forward"


# --- auth and lookup ------------------------------------------------------------------------
class Unauthorized(SandbankError):
    code, status, title = "unauthorized", 401, "Unauthorized"


class WebhookUrlRefused(SandbankError):
    """A webhook URL the server may not deliver to (scheme, or a host not allowed)."""

    code, status, title = "webhook_url_not_allowed", 422, "Webhook URL not allowed"


class Forbidden(SandbankError):
    code, status, title = "forbidden", 403, "Forbidden"


class NotFound(SandbankError):
    code, status, title = "not_found", 404, "Not found"

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"no {kind} with id {ident!r}")


# --- state ------------------------------------------------------------------------------------
class InvalidTransition(SandbankError):
    """An event that the resource's transition table does not allow from its current state."""

    code, status, title = "invalid_transition", 409, "Invalid state transition"

    def __init__(self, resource: str, state: str, event: str) -> None:
        article = "an" if resource[0] in "aeiou" else "a"
        super().__init__(f"cannot {event} {article} {resource.replace('_', ' ')} that is {state}")
        self.resource, self.state, self.event = resource, state, event


class CardDeclined(SandbankError):
    """A virtual card refused a hold (402, as card networks answer): `code` says why."""

    code, status, title = "card_declined", 402, "Card declined"


class CardExpired(CardDeclined):
    code, title = "card_expired", "Card expired"


class CardOverLimit(CardDeclined):
    code, title = "card_over_limit", "Over the card's limit"


class CardUsed(CardDeclined):
    code, title = "card_used", "Single-use card already used"


class IdempotencyKeyInUse(SandbankError):
    code, status, title = "idempotency_key_in_use", 409, "Idempotency key in use"


class IdempotencyKeyReused(SandbankError):
    code, status, title = "idempotency_key_reused", 422, "Idempotency key reused"


class Conflict(SandbankError):
    code, status, title = "conflict", 409, "Conflict"


# --- 5xx: the simulator cannot serve it now -----------------------------------------------------
class StoreBusy(SandbankError):
    """The database stayed locked by other work (another worker, the dispatcher, a long
    operation) for longer than a request may wait. Nothing was changed; retry after
    `retry_after` seconds (sent as `Retry-After`)."""

    code, status, title = "store_busy", 503, "Busy, retry shortly"
    retry_after: ClassVar[int] = 1
