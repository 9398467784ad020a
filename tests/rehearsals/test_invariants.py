"""Each invariant holds on a consistent observation and FAILS on the broken integration it
exists to catch (fabricated observations: what the runner would have collected)."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import pytest

from rehearsal.invariants import (
    REGISTRY,
    Finding,
    Observation,
    Secret,
    parse_findings,
    run_all,
    signature_valid,
)

RECEIVABLE = "1210 Receivable - Credit provider"
DISPUTED = "1215 Disputed funds held by credit provider"
SECRET = "whsec_" + base64.b64encode(b"k" * 24).decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"o" * 24).decode()
WALL = "2026-12-07T09:00:00Z"
WALL_TS = int(datetime(2026, 12, 7, 9, tzinfo=UTC).timestamp())


def posting(kind: str, ref: str, legs: list[tuple[str, int, int]]) -> dict[str, Any]:
    return {
        "id": f"pst_{kind}_{ref}",
        "event_kind": kind,
        "reference": ref,
        "legs": [{"account": a, "debit": d, "credit": c} for a, d, c in legs],
    }


def capture(ref: str, amount: int) -> dict[str, Any]:
    return posting("captured", ref, [(RECEIVABLE, amount, 0), ("4000 Revenue - Sales", 0, amount)])


def refund(ref: str, amount: int) -> dict[str, Any]:
    return posting("refunded", ref, [("4100 Sales returns", amount, 0), (RECEIVABLE, 0, amount)])


def signed(
    body: str, secret: str = SECRET, stamp: int = WALL_TS, msg: str = "evt_1"
) -> dict[str, str]:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg}.{stamp}.{body}".encode(), hashlib.sha256).digest()
    return {
        "webhook-id": msg,
        "webhook-timestamp": str(stamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def attempt(headers: dict[str, str], body: str, status: int, n: int = 1) -> dict[str, Any]:
    return {
        "n": n,
        "at": WALL,
        "wall_at": WALL,
        "request_headers": headers,
        "request_body": body,
        "status": status,
    }


def healthy() -> Observation:
    """One order shipped 100.00 and refunded 20.00, one disputed and won, everything agreeing."""
    body = '{"id":"evt_1"}'
    return Observation(
        shop_orders=["SO-1", "SO-2"],
        erp={
            "SO-1": {
                "merchant_order_id": "SO-1",
                "amount": 10000,
                "erp_state": "partially_refunded",
                "shipped_amount": 10000,
                "refunded_amount": 2000,
                "provider_order_id": "ord_1",
                "holds": [{"kind": "capture_pending", "resolved_at": WALL}],
                "ledger": [capture("cap_1", 10000), refund("ref_1", 2000)],
            },
            "SO-2": {
                "merchant_order_id": "SO-2",
                "amount": 5000,
                "erp_state": "shipped",
                "shipped_amount": 5000,
                "refunded_amount": 0,
                "provider_order_id": "ord_2",
                "holds": [],
                "ledger": [
                    capture("cap_2", 5000),
                    posting(
                        "dispute_opened", "dsp_1", [(DISPUTED, 5000, 0), (RECEIVABLE, 0, 5000)]
                    ),
                    posting("dispute_won", "dsp_1", [(RECEIVABLE, 5000, 0), (DISPUTED, 0, 5000)]),
                ],
            },
        },
        provider_orders=[
            {
                "id": "ord_1",
                "merchant_order_id": "SO-1",
                "status": "partially_refunded",
                "captured_amount": 10000,
                "refunded_amount": 2000,
            },
            {
                "id": "ord_2",
                "merchant_order_id": "SO-2",
                "status": "captured",
                "captured_amount": 5000,
                "refunded_amount": 0,
            },
        ],
        disputes=[{"id": "dsp_1", "order_id": "ord_2", "amount": 5000, "status": "won"}],
        events=[{"id": "evt_1"}, {"id": "evt_2"}],
        event_log=[
            {"event_id": "evt_1", "outcome": "updated"},
            {"event_id": "evt_2", "outcome": "posted"},
        ],
        deliveries=[
            {"event_id": "evt_1", "attempts": [attempt(signed(body), body, 204)]},
        ],
        secrets=[Secret(SECRET)],
        holds_open_metric=0.0,
        reconcile_exit=1,
        findings=[Finding("duplicate", "ord_1", "duplicate ...")],
        drift=[{"kind": "duplicate_line", "order_id": "ord_1"}],
        steps=[
            {"order": "SO-1", "kind": "ship", "outcome": "done", "erp_state": "partially_refunded"},
            {"order": "SO-2", "kind": "ship", "outcome": "held", "erp_state": "shipped"},
        ],
    )


def verdicts(obs: Observation) -> dict[str, bool]:
    return {name: v.ok for name, v in run_all(obs, REGISTRY).items()}


def only_failing(obs: Observation) -> list[str]:
    return [name for name, ok in verdicts(obs).items() if not ok]


def test_every_invariant_holds_on_a_consistent_observation() -> None:
    assert only_failing(healthy()) == []
    assert len(REGISTRY) >= 8


def test_an_order_missing_from_the_erp_is_lost() -> None:
    obs = healthy()
    obs.erp["SO-2"] = None
    assert "no_order_lost" in only_failing(obs)


def test_states_that_disagree_are_caught() -> None:
    obs = healthy()
    obs.provider_orders[1]["status"] = "canceled"
    assert only_failing(obs) == ["no_order_lost"]


def test_a_provider_order_the_erp_does_not_know_is_caught() -> None:
    obs = healthy()
    obs.provider_orders.append(
        {"id": "ord_9", "merchant_order_id": "SO-1", "status": "authorized",
         "captured_amount": 0, "refunded_amount": 0}
    )  # fmt: skip
    assert "no_order_lost" in only_failing(obs)


def test_a_client_that_retries_captures_with_fresh_keys_is_caught() -> None:
    """The provider captured twice (two keys) what the ERP shipped once."""
    obs = healthy()
    obs.provider_orders[1]["captured_amount"] = 10000
    failing = only_failing(obs)
    assert "no_double_capture_or_refund" in failing
    assert "ledger_matches_provider" in failing


def test_a_refund_sent_twice_is_caught() -> None:
    obs = healthy()
    obs.provider_orders[0]["refunded_amount"] = 4000
    assert "no_double_capture_or_refund" in only_failing(obs)


def test_a_resumer_turned_off_leaves_holds_open() -> None:
    obs = healthy()
    erp = obs.erp["SO-1"]
    assert erp is not None
    erp["holds"].append({"kind": "refund_pending", "resolved_at": None})
    obs.holds_open_metric = 1.0
    assert only_failing(obs) == ["holds_resolved"]


def test_the_holds_gauge_alone_is_enough_to_fail() -> None:
    obs = healthy()
    obs.holds_open_metric = 2.0
    assert only_failing(obs) == ["holds_resolved"]


def test_an_unbalanced_posting_is_caught() -> None:
    obs = healthy()
    erp = obs.erp["SO-1"]
    assert erp is not None
    erp["ledger"][0]["legs"][1]["credit"] = 9999
    assert only_failing(obs) == ["ledger_matches_provider"]


def test_a_posting_made_twice_is_caught() -> None:
    obs = healthy()
    erp = obs.erp["SO-1"]
    assert erp is not None
    erp["ledger"].append(copy.deepcopy(erp["ledger"][0]))
    assert "ledger_matches_provider" in only_failing(obs)


def test_a_dispute_the_ledger_never_heard_of_is_caught() -> None:
    obs = healthy()
    obs.disputes.append({"id": "dsp_2", "order_id": "ord_1", "amount": 1000, "status": "lost"})
    assert only_failing(obs) == ["ledger_matches_provider"]


def test_a_reconciliation_that_misses_the_drift_is_caught() -> None:
    obs = healthy()
    obs.findings = []
    obs.reconcile_exit = 0
    assert only_failing(obs) == ["reconciliation_clean"]


def test_a_reconciliation_that_invents_a_finding_is_caught() -> None:
    obs = healthy()
    obs.findings.append(Finding("missing_in_ledger", "ord_2", "..."))
    assert only_failing(obs) == ["reconciliation_clean"]


def test_a_reconciliation_that_did_not_run_fails() -> None:
    obs = healthy()
    obs.reconcile_exit = None
    assert only_failing(obs) == ["reconciliation_clean"]
    obs.reconcile_exit = 2
    assert only_failing(obs) == ["reconciliation_clean"]


def test_a_receiver_that_does_not_dedupe_is_caught() -> None:
    obs = healthy()
    obs.event_log.append({"event_id": "evt_1", "outcome": "updated"})
    assert only_failing(obs) == ["events_processed_once"]


def test_a_duplicate_that_changed_nothing_is_absorbed() -> None:
    obs = healthy()
    obs.event_log.append({"event_id": "evt_1", "outcome": "unchanged"})
    assert only_failing(obs) == []


def test_an_event_never_processed_is_caught() -> None:
    obs = healthy()
    obs.events.append({"id": "evt_3"})
    assert only_failing(obs) == ["events_processed_once"]


def test_a_receiver_that_skips_verification_is_caught() -> None:
    obs = healthy()
    body = '{"id":"evt_2"}'
    forged = signed(body, secret="whsec_" + base64.b64encode(b"x" * 24).decode(), msg="evt_2")
    obs.deliveries.append({"event_id": "evt_2", "attempts": [attempt(forged, body, 204)]})
    assert only_failing(obs) == ["no_bad_signature_accepted"]
    obs.deliveries[-1]["attempts"][0]["status"] = 400  # a correct receiver refuses it
    assert only_failing(obs) == []


def test_a_stale_timestamp_accepted_is_caught() -> None:
    obs = healthy()
    body = '{"id":"evt_2"}'
    stale = signed(body, stamp=WALL_TS - 600, msg="evt_2")
    obs.deliveries.append({"event_id": "evt_2", "attempts": [attempt(stale, body, 200)]})
    assert only_failing(obs) == ["no_bad_signature_accepted"]


def test_a_retired_secret_is_valid_only_during_its_overlap() -> None:
    body = "{}"
    headers = signed(body, secret=OLD_SECRET)
    during = datetime(2026, 12, 7, 8, tzinfo=UTC)
    after = datetime(2026, 12, 7, 10, tzinfo=UTC)
    secrets = [Secret(OLD_SECRET, expires_at=datetime(2026, 12, 7, 9, tzinfo=UTC)), Secret(SECRET)]
    assert signature_valid(headers, body, secrets, during)
    assert not signature_valid(headers, body, secrets, after)


def test_a_step_the_erp_refused_is_caught_unless_the_order_ended() -> None:
    obs = healthy()
    obs.steps.append({"order": "SO-1", "kind": "ship", "outcome": "refused",
                      "erp_state": "partially_refunded"})  # fmt: skip
    assert only_failing(obs) == ["workload_completed"]
    obs.steps[-1]["erp_state"] = "expired"
    assert only_failing(obs) == []


def test_reconcile_output_is_parsed_into_findings() -> None:
    text = """Reconciliation of 2026-12-07
  lines: 9  discrepancies: 2  mismatch rate: 22.22%
  discrepancies:
    missing_at_provider ord_AbC/capture  expected 10.00 USD  ledger cap_1  (no line)
    unknown_order       ord_Zz9/capture  actual 5.00 USD  line stl_1/sln_2  (unknown)
  provider fees (minor units; in the payout, not the ledger): 1160 USD
"""
    found = parse_findings(text)
    assert [(f.kind, f.order_id) for f in found] == [
        ("missing_at_provider", "ord_AbC"),
        ("unknown_order", "ord_Zz9"),
    ]


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_invariant_is_documented(name: str) -> None:
    assert REGISTRY[name].doc
