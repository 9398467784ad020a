"""The native operations every seller-invoice personality (gateway + net terms, virtual cards,
traditional invoicing) also serves under its own prefix: the account's settlements and events
are one, whichever API a client speaks, so each personality mounts the same handlers and shapes
instead of writing its own."""

from __future__ import annotations

import dataclasses

from simulator.api import v1
from simulator.api.operations import Op

SHARED = ("listSettlements", "getSettlement", "getSettlementReport", "listEvents", "getEvent")


def native_operations(prefix: str, op_prefix: str) -> list[Op]:
    """The `SHARED` /v1 operations at `prefix` (`/gateway/v1`), ids prefixed (`gateway.`)."""
    native = {op.operation_id: op for op in v1.OPERATIONS}
    return [
        dataclasses.replace(
            native[name],
            operation_id=f"{op_prefix}{name}",
            path=native[name].path.replace("/v1", prefix, 1),
            links={},
        )
        for name in SHARED
    ]
