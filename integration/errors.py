"""The integration's one error tree: every error it raises on purpose derives from
`IntegrationError`, so a caller (the CLI, the scenario runner, a test) can tell "the integration
refused or could not do this" from a bug with one `except`.

Each module keeps its own errors next to the code that raises them (the ledger's, the client's,
the receiver's...), all under this root; several also keep a builtin base (`ValueError`,
`KeyError`) that existing callers catch. The errors an HTTP caller sees are `Problem`s: each has
the `status`, `code` and `title` that `integration.problems` renders as
`application/problem+json`; nothing else turns an error into a response.
"""

from __future__ import annotations


class IntegrationError(Exception):
    """Root of every error the reference integration raises on purpose."""


class Problem(IntegrationError):
    """An answer for an HTTP caller (the shop, or a webhook sender), as problem+json."""

    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(self, detail: str, *, code: str | None = None, title: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if title is not None:
            self.title = title


# --- the order-to-cash API's answers ------------------------------------------------------------
class OrderNotFound(Problem):
    status, code, title = 404, "not_found", "Not found"


class InvalidTransition(Problem):
    status, code, title = 409, "invalid_transition", "Conflict"


class InvalidOrder(Problem):
    status, code, title = 422, "validation_failed", "Unprocessable"


class ProviderRefused(Problem):
    """The provider refused for good; `code` is the adapter's canonical rejection code."""

    status, code, title = 502, "rejected", "Provider refused"


class ProviderDown(Problem):
    status, code, title = 503, "provider_unavailable", "Provider unavailable"


__all__ = [
    "IntegrationError",
    "InvalidOrder",
    "InvalidTransition",
    "OrderNotFound",
    "Problem",
    "ProviderDown",
    "ProviderRefused",
]
