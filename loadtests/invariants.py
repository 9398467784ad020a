"""The load tests' money checks: the scenario runner's own invariants, called by name.

`rehearsal.invariants` (the scenario engine's registry of small pure checks over an
`Observation`) is imported lazily, when the end checks run, so that a load test never carries
a second copy of what "no double capture" or "the ledger matches the provider" means. If the
module is not there, the check fails and says so (set SANDBANK_LOAD_INVARIANTS=optional to
pass with a "skipped" note instead, e.g. on a tree without the scenario runner).

The adapter only gathers the inputs over HTTP: the provider's account dump (its orders and
disputes) from the control plane, and what the caller knows of the merchant's side (the ERP's
views of its orders, or the load test's own books).
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from typing import Any

from loadtests.common import Check, Target, admin

ERP = dict[str, dict[str, Any] | None]


def _module() -> Any:
    return importlib.import_module("rehearsal.invariants")


def money_checks(
    target: Target,
    erp: ERP | Callable[[], ERP],
    names: list[str],
    *,
    shop_orders: list[str] | None = None,
    holds_open: Callable[[], float | None] | None = None,
    settle_s: float = 0.0,
) -> list[Check]:
    """The verdicts of the invariants `names` over the provider's dump and `erp` (or a
    function collecting it again), re-collected every second for up to `settle_s` seconds
    until all pass (events still on their way settle in that time)."""
    try:
        inv = _module()
    except ImportError as exc:
        optional = os.environ.get("SANDBANK_LOAD_INVARIANTS") == "optional"
        return [
            Check(
                "money_invariants",
                optional,
                "rehearsal.invariants importable (the scenario runner's checks)",
                ("skipped: " if optional else "") + f"not available ({exc})",
            )
        ]
    deadline = time.monotonic() + settle_s
    while True:
        views = erp() if callable(erp) else erp
        with admin(target) as c:
            r = c.get(f"/_sandbox/accounts/{target.account}/dump", timeout=120.0)
            r.raise_for_status()
            dump = r.json()
        money = {m["kind"]: m["objects"] for m in dump.get("money", [])}
        obs = inv.Observation(
            shop_orders=list(shop_orders if shop_orders is not None else views),
            erp=views,
            provider_orders=list(dump.get("orders", [])),
            provider_checkouts=list(dump.get("checkouts", [])),
            disputes=list(money.get("dispute", [])),
            events=list(dump.get("events", [])),
            holds_open_metric=holds_open() if holds_open else None,
        )
        verdicts = inv.run_all(obs, names)
        if all(v.ok for v in verdicts.values()) or time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    return [
        Check(
            f"invariant {name}",
            v.ok,
            v.expected,
            v.observed + (f" ({v.detail})" if v.detail else ""),
        )
        for name, v in verdicts.items()
    ]
