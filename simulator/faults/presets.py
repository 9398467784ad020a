"""Named, composable fault plans. Each preset is a list of rules; applying one creates them
(tagged with the preset's name) for one account or for all. Several presets can be applied at
once and stack in the order applied. `PRESETS` is also what README documents.

The presets act on both APIs of the provider, `/v1` and Credit Key's dialect: the storms and
outages match no path (faults only ever see those two APIs' requests), and a preset that names
an operation names its Credit Key counterpart too. `slow-decisions` stays native: Credit Key's
borrower decides on the hosted page, which is no API operation (and never fails).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulator.faults.models import RuleIn

# Decisions: pre-qualification, and the buyer's approval through the test helpers.
DECISION_OPERATIONS = ("createPrequalification", "approveCheckout")
# A capture in each API: the native one, Credit Key's, the gateway and virtual-card
# personalities' issue of an invoice (its shipment), and traditional invoicing's 810.
CAPTURE_OPERATIONS = (
    "createCapture",
    "creditkey.confirm_order",
    "gateway.issueInvoice",
    "vcards.issueInvoice",
    "invoicing.createInvoice",  # traditional invoicing: the 810 sent on shipment
)


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str
    rules: tuple[dict[str, Any], ...]
    default_duration: str | None = None  # a window applied unless the caller gives one

    def build(self, account: str | None, duration: str | None) -> list[RuleIn]:
        window = duration or self.default_duration
        built = []
        for raw in self.rules:
            data = {**raw, "account": account}
            if window is not None and "window" not in raw:
                data["window"] = {"duration": window}
            built.append(RuleIn.model_validate(data))
        return built


# No path: every request faults act on, i.e. every authenticated request of /v1 and of Credit
# Key's dialect (the control plane, hosted pages and documents never fail).
_API: dict[str, Any] = {}

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "flaky-5xx",
            "About 10 % of API requests (/v1 and Credit Key's) fail before processing: "
            "500 (5 %), 502 (3 %), 503 with Retry-After: 1 (2 %).",
            (
                {"match": _API, "probability": 0.05, "effect": {"type": "status", "status": 500}},
                {"match": _API, "probability": 0.03, "effect": {"type": "status", "status": 502}},
                {
                    "match": _API,
                    "probability": 0.02,
                    "effect": {"type": "status", "status": 503, "retry_after_s": 1},
                },
            ),
        ),
        Preset(
            "rate-limited",
            "30 % of API requests (/v1 and Credit Key's) get 429 with Retry-After: 2, before "
            "processing.",
            (
                {
                    "match": _API,
                    "probability": 0.3,
                    "effect": {"type": "status", "status": 429, "retry_after_s": 2},
                },
            ),
        ),
        Preset(
            "total-outage",
            "Every API request (/v1, Credit Key's, /gateway/v1, /vcards/v1, /invoicing/v1) gets "
            "503 with Retry-After: 30 for 15 minutes of the account's clock (or the `duration` "
            "given).",
            (
                {
                    "match": _API,
                    "effect": {"type": "status", "status": 503, "retry_after_s": 30},
                },
            ),
            default_duration="15m",
        ),
        Preset(
            "slow-decisions",
            "Credit decisions (createPrequalification, approveCheckout) take 1-15 s: lognormal "
            "latency, median 3 s, capped at 15 s.",
            tuple(
                {
                    "match": {"operation": op},
                    "effect": {
                        "type": "latency",
                        "distribution": "lognormal",
                        "median_ms": 3000,
                        "sigma": 0.6,
                        "cap_ms": 15_000,
                    },
                }
                for op in DECISION_OPERATIONS
            ),
        ),
        Preset(
            "lost-response-after-capture",
            "The first attempt of every capture (createCapture, Credit Key's confirm_order, the "
            "gateway's and the virtual cards' issueInvoice, invoicing's createInvoice) "
            "commits (capture stored, event written), then the connection is reset: only an "
            "idempotent retry learns what happened.",
            tuple(
                {
                    "match": {"operation": op, "attempt": {"eq": 1}},
                    "phase": "after",
                    "effect": {"type": "reset"},
                }
                for op in CAPTURE_OPERATIONS
            ),
        ),
        Preset(
            "timeout-storm",
            "15 % of API requests (/v1 and Credit Key's) hang until the client gives up (60 s "
            "at most); another 25 % answer after 2-8 s.",
            (
                {"match": _API, "probability": 0.15, "effect": {"type": "hang", "max_ms": 60_000}},
                {
                    "match": _API,
                    "probability": 0.25,
                    "effect": {
                        "type": "latency",
                        "distribution": "uniform",
                        "min_ms": 2000,
                        "max_ms": 8000,
                    },
                },
            ),
        ),
    )
}
