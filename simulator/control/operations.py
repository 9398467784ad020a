"""The control plane's operations, listed once: the app routes them and api/docs.py publishes
them (contracts/sandbox.yaml), in this order."""

from __future__ import annotations

from simulator.api.operations import Op
from simulator.control import faults, finance, routes, tokens, webhooks

OPERATIONS: list[Op] = [
    *routes.OPERATIONS,
    *faults.OPERATIONS,
    *webhooks.OPERATIONS,
    *finance.OPERATIONS,
    *tokens.OPERATIONS,
]
