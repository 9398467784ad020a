"""The ERP side of order-to-cash: orders as the shop knows them, and the holds (provider work the
integration still owes) that degraded mode leaves behind.

Stdlib sqlite3, one file (it may be the same file as the intents and the ledger: the tables are
`erp_orders` and `erp_holds`); every change is committed before the method returns.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from integration.db import connect
from integration.errors import IntegrationError


class ErpState(StrEnum):
    PLACED = "placed"  # recorded, the provider not asked yet
    CREDIT_PENDING = "credit_pending"  # the provider could not be reached: a hold is open
    AWAITING_BUYER = "awaiting_buyer"  # checkout created, the buyer has not accepted yet
    # The buyer accepted; the provider has an order but is still deciding on the credit (its
    # underwriter's review): nothing ships until it is authorized, it may still be declined.
    UNDER_REVIEW = "under_review"
    AUTHORIZED = "authorized"
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    CANCELED = "canceled"
    EXPIRED = "expired"  # the authorization lapsed at the provider before anything shipped
    REJECTED = "rejected"  # the provider refused the checkout


class HoldKind(StrEnum):
    CREDIT_PENDING = "credit_pending"
    CAPTURE_PENDING = "capture_pending"
    REFUND_PENDING = "refund_pending"
    CANCEL_PENDING = "cancel_pending"


class UnknownOrder(IntegrationError, KeyError):
    """No ERP order has that merchant_order_id."""


class DuplicateOrder(IntegrationError, ValueError):
    """An ERP order with that merchant_order_id exists already."""


@dataclass(frozen=True, slots=True)
class ErpOrder:
    merchant_order_id: str
    amount: int
    currency: str
    erp_state: ErpState
    request: dict[str, Any]  # buyer, line_items, return_url, cancel_url (the checkout's input)
    shipped: int  # captured at the provider, confirmed
    refunded: int  # refunded at the provider, confirmed
    seq: int  # provider operations started so far (names intents)
    provider_checkout_id: str | None
    provider_order_id: str | None
    checkout_url: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Hold:
    id: int
    merchant_order_id: str
    kind: HoldKind
    intent_id: str
    detail: dict[str, Any]
    created_at: datetime
    resolved_at: datetime | None
    resolution: str | None
    reference: str | None  # the provider id the work ended in (the ledger posting's reference)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS erp_orders (
    merchant_order_id TEXT PRIMARY KEY,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    erp_state TEXT NOT NULL,
    request TEXT NOT NULL,
    shipped INTEGER NOT NULL DEFAULT 0,
    refunded INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL DEFAULT 0,
    provider_checkout_id TEXT,
    provider_order_id TEXT,
    checkout_url TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS erp_holds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    merchant_order_id TEXT NOT NULL REFERENCES erp_orders (merchant_order_id),
    kind TEXT NOT NULL,
    intent_id TEXT NOT NULL,
    detail TEXT NOT NULL,
    created_at TEXT NOT NULL,
    resolved_at TEXT,
    resolution TEXT,
    reference TEXT
);
CREATE INDEX IF NOT EXISTS erp_holds_open ON erp_holds (resolved_at, id);
CREATE INDEX IF NOT EXISTS erp_orders_by_provider_order ON erp_orders (provider_order_id);
CREATE INDEX IF NOT EXISTS erp_orders_by_provider_checkout ON erp_orders (provider_checkout_id);
"""

_ORDER_COLUMNS = (
    "merchant_order_id, amount, currency, erp_state, request, shipped, refunded, seq, "
    "provider_checkout_id, provider_order_id, checkout_url, created_at, updated_at"
)
_HOLD_COLUMNS = (
    "id, merchant_order_id, kind, intent_id, detail, created_at, resolved_at, resolution, reference"
)
_UPDATABLE = frozenset(
    {
        "erp_state",
        "shipped",
        "refunded",
        "seq",
        "provider_checkout_id",
        "provider_order_id",
        "checkout_url",
    }
)


class OrderBook:
    """ERP orders and holds on one SQLite file. Safe to share between threads (one lock)."""

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.Lock()
        self._db = connect(path)
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- orders ----------------------------------------------------------------------------
    def create(
        self, merchant_order_id: str, amount: int, currency: str, request: dict[str, Any], at: str
    ) -> ErpOrder:
        with self._lock:
            try:
                self._db.execute(
                    f"INSERT INTO erp_orders ({_ORDER_COLUMNS}) "  # noqa: S608 - constant columns
                    "VALUES (?, ?, ?, ?, ?, 0, 0, 0, NULL, NULL, NULL, ?, ?)",
                    (
                        merchant_order_id,
                        amount,
                        currency,
                        ErpState.PLACED.value,
                        json.dumps(request, sort_keys=True),
                        at,
                        at,
                    ),
                )
            except sqlite3.IntegrityError:
                raise DuplicateOrder(merchant_order_id) from None
            return self._order(merchant_order_id)

    def get(self, merchant_order_id: str) -> ErpOrder:
        with self._lock:
            return self._order(merchant_order_id)

    def orders(self) -> list[ErpOrder]:
        """Every ERP order, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT merchant_order_id FROM erp_orders ORDER BY created_at, merchant_order_id"
            ).fetchall()
            return [self._order(str(row[0])) for row in rows]

    def find(
        self, *, provider_order_id: str | None = None, provider_checkout_id: str | None = None
    ) -> ErpOrder | None:
        """The order that provider order (else that checkout) belongs to, if the ERP has it."""
        with self._lock:
            for column, value in (
                ("provider_order_id", provider_order_id),
                ("provider_checkout_id", provider_checkout_id),
            ):
                if value is None:
                    continue
                row = self._db.execute(
                    f"SELECT merchant_order_id FROM erp_orders WHERE {column} = ? "  # noqa: S608
                    "ORDER BY created_at LIMIT 1",
                    (value,),
                ).fetchone()
                if row is not None:
                    return self._order(str(row[0]))
        return None

    def update(self, merchant_order_id: str, at: str, **changes: Any) -> ErpOrder:
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        sets = ", ".join(f"{name} = ?" for name in changes)
        values = [v.value if isinstance(v, StrEnum) else v for v in changes.values()]
        with self._lock:
            self._order(merchant_order_id)
            self._db.execute(
                f"UPDATE erp_orders SET {sets}, updated_at = ? "  # noqa: S608 - names checked
                "WHERE merchant_order_id = ?",
                (*values, at, merchant_order_id),
            )
            return self._order(merchant_order_id)

    def next_seq(self, merchant_order_id: str, at: str) -> int:
        """Reserve the next operation number of the order (durable before the intent exists)."""
        with self._lock:
            self._order(merchant_order_id)
            self._db.execute(
                "UPDATE erp_orders SET seq = seq + 1, updated_at = ? WHERE merchant_order_id = ?",
                (at, merchant_order_id),
            )
            return self._order(merchant_order_id).seq

    # --- holds -----------------------------------------------------------------------------
    def open_hold(
        self,
        merchant_order_id: str,
        kind: HoldKind,
        intent_id: str,
        detail: dict[str, Any],
        at: str,
    ) -> Hold:
        """Open a hold for `intent_id` (or return the one already open for it)."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_HOLD_COLUMNS} FROM erp_holds "  # noqa: S608 - constant columns
                "WHERE intent_id = ? AND resolved_at IS NULL",
                (intent_id,),
            ).fetchone()
            if row is not None:
                return _hold(row)
            cur = self._db.execute(
                "INSERT INTO erp_holds (merchant_order_id, kind, intent_id, detail, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (merchant_order_id, kind.value, intent_id, json.dumps(detail, sort_keys=True), at),
            )
            return self._hold_by_id(int(cur.lastrowid or 0))

    def resolve_hold(
        self,
        hold_id: int,
        resolution: str,
        at: str,
        *,
        reference: str | None = None,
        **changes: Any,
    ) -> bool:
        """Resolve the hold and apply `changes` to its order, in one transaction. False (and
        nothing written) when the hold was resolved already, so work is never counted twice."""
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        with self._lock:
            hold = self._hold_by_id(hold_id)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute(
                    "UPDATE erp_holds SET resolved_at = ?, resolution = ?, reference = ? "
                    "WHERE id = ? AND resolved_at IS NULL",
                    (at, resolution, reference, hold_id),
                )
                if cur.rowcount == 0:
                    self._db.execute("ROLLBACK")
                    return False
                if changes:
                    sets = ", ".join(f"{name} = ?" for name in changes)
                    values = [v.value if isinstance(v, StrEnum) else v for v in changes.values()]
                    self._db.execute(
                        f"UPDATE erp_orders SET {sets}, updated_at = ? "  # noqa: S608
                        "WHERE merchant_order_id = ?",
                        (*values, at, hold.merchant_order_id),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return True

    def holds(self, merchant_order_id: str | None = None, *, open_only: bool = False) -> list[Hold]:
        clauses, params = [], []
        if merchant_order_id is not None:
            clauses.append("merchant_order_id = ?")
            params.append(merchant_order_id)
        if open_only:
            clauses.append("resolved_at IS NULL")
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_HOLD_COLUMNS} FROM erp_holds{where} ORDER BY id",  # noqa: S608
                params,
            ).fetchall()
        return [_hold(r) for r in rows]

    # --- internals -------------------------------------------------------------------------
    def _order(self, merchant_order_id: str) -> ErpOrder:
        row = self._db.execute(
            f"SELECT {_ORDER_COLUMNS} FROM erp_orders WHERE merchant_order_id = ?",  # noqa: S608
            (merchant_order_id,),
        ).fetchone()
        if row is None:
            raise UnknownOrder(merchant_order_id)
        (moid, amount, currency, state, request, shipped, refunded, seq, chk, oid, url, c, u) = row
        return ErpOrder(
            merchant_order_id=moid,
            amount=int(amount),
            currency=currency,
            erp_state=ErpState(state),
            request=json.loads(request),
            shipped=int(shipped),
            refunded=int(refunded),
            seq=int(seq),
            provider_checkout_id=chk,
            provider_order_id=oid,
            checkout_url=url,
            created_at=datetime.fromisoformat(c),
            updated_at=datetime.fromisoformat(u),
        )

    def _hold_by_id(self, hold_id: int) -> Hold:
        row = self._db.execute(
            f"SELECT {_HOLD_COLUMNS} FROM erp_holds WHERE id = ?",  # noqa: S608
            (hold_id,),
        ).fetchone()
        assert row is not None
        return _hold(row)


def _hold(row: tuple[Any, ...]) -> Hold:
    hid, moid, kind, intent_id, detail, created, resolved, resolution, reference = row
    return Hold(
        id=int(hid),
        merchant_order_id=moid,
        kind=HoldKind(kind),
        intent_id=intent_id,
        detail=json.loads(detail),
        created_at=datetime.fromisoformat(created),
        resolved_at=None if resolved is None else datetime.fromisoformat(resolved),
        resolution=resolution,
        reference=reference,
    )


def stamp(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("the clock must return aware datetimes")
    return at.astimezone(UTC).isoformat()


__all__ = [
    "DuplicateOrder",
    "ErpOrder",
    "ErpState",
    "Hold",
    "HoldKind",
    "OrderBook",
    "UnknownOrder",
    "stamp",
]
