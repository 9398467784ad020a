"""The Store protocol: everything is partitioned by account; one transaction per operation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from simulator.domain.models import Account, Buyer, Checkout, Event, Order
from simulator.domain.records import Page, SavedResponse
from simulator.domain.webhooks import Delivery, WebhookEndpoint
from simulator.store.export_rows import ExportRows

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Job:
    seq: int
    due_us: int
    kind: str
    ref: str


@dataclass(frozen=True, slots=True)
class StoredRule:
    """A fault rule as the store keeps it: its JSON (`data`, without `fired`), the columns the
    store needs to claim firings atomically, and where it came from (`origin`: "api", or
    "file" for the `--faults FILE` rules, which a restart with another file replaces)."""

    id: str
    account_id: str | None
    times: int | None
    fired: int
    origin: str
    data: str
    seq: int = 0  # its place in creation order (set by the store; page cursors)


class Tx(Protocol):
    """One open transaction. Writes become visible to others only when it commits."""

    def savepoint(self) -> AbstractContextManager[None]: ...
    def id_taken(self, object_id: str) -> bool:
        """Whether a buyer, checkout, order or event already has this id (any account)."""
        ...

    # accounts
    def account(self, account_id: str) -> Account | None: ...
    def account_due(self, account_id: str) -> tuple[Account, int | None] | None:
        """The account and the due time of its next job (`next_due`): what every account
        transaction opens with, read together."""
        ...

    def account_by_key(self, api_key: str) -> Account | None: ...
    def accounts(self, *, limit: int, cursor: str | None = None) -> Page[Account]: ...
    def save_account(self, account: Account) -> None: ...
    def save_rng_counter(self, account_id: str, counter: int) -> None:
        """Only the account's RNG counter: what most operations change of it."""
        ...

    def wipe_account(self, account_id: str) -> None: ...

    # objects, always within one account
    def buyer(self, account_id: str, buyer_id: str) -> Buyer | None: ...
    def buyer_by_external_id(self, account_id: str, external_id: str) -> Buyer | None: ...
    def save_buyer(self, account_id: str, buyer: Buyer) -> None: ...
    def list_buyers(
        self, account_id: str, *, external_id: str | None, limit: int, cursor: str | None
    ) -> Page[Buyer]: ...
    def checkout(self, account_id: str | None, checkout_id: str) -> tuple[str, Checkout] | None: ...
    def save_checkout(self, account_id: str, checkout: Checkout) -> None: ...
    def order(self, account_id: str | None, order_id: str) -> tuple[str, Order] | None: ...
    def save_order(self, account_id: str, order: Order) -> None: ...
    def list_orders(
        self,
        account_id: str,
        *,
        status: str | None,
        merchant_order_id: str | None,
        buyer_id: str | None,
        limit: int,
        cursor: str | None,
    ) -> Page[Order]: ...
    def add_event(
        self, account_id: str, event_id: str, type_: str, object_id: str, document: str
    ) -> None:
        """Add an event to the outbox: `document` is the event's JSON (`Event`'s), as sent."""
        ...

    def list_events(
        self,
        account_id: str,
        *,
        type_: str | None = None,
        object_id: str | None = None,
        created_gte: datetime | None = None,
        created_lt: datetime | None = None,
        limit: int,
        cursor: str | None,
    ) -> Page[Event]: ...

    # scheduled work on the account clock
    def schedule(self, account_id: str, due_us: int, kind: str, ref: str) -> None: ...
    def next_due(self, account_id: str) -> int | None: ...
    def pop_due(self, account_id: str, until_us: int) -> Job | None: ...

    # the server's background processes (simulator/store/runtime.py)
    def due_accounts(self, wall_us: int, after_rowid: int, limit: int) -> list[tuple[int, str]]: ...
    def pending_deliveries(self) -> int: ...

    # state the worker processes share (simulator/store/shared.py; issue #16)
    def fault_rules(self) -> list[StoredRule]:
        """Every fault rule, in creation order."""
        ...

    def add_fault_rule(self, rule: StoredRule) -> None: ...
    def delete_fault_rules(self, rule_ids: Sequence[str]) -> int:
        """Delete these rules (unknown ids are skipped); how many were deleted."""
        ...

    def claim_fault_rule(self, rule_id: str) -> int | None:
        """Count one firing of the rule, only if it exists and has fired fewer than its `times`:
        its new `fired`, or None (retired or deleted). Atomic across processes: one conditional
        `UPDATE ... SET fired = fired + 1 WHERE id = ? AND (times IS NULL OR fired < times)
        RETURNING fired` in a write transaction."""
        ...

    def count_attempt(self, account_id: str, key: str, now_us: int) -> int:
        """Count one more request with this Idempotency-Key: its attempt number (1 the first
        time). Atomic across processes (one upsert ... RETURNING)."""
        ...

    def forget_attempts(self, account_id: str | None, *, seen_before_us: int | None = None) -> int:
        """Forget the attempt counts of an account (None: every account), or only those last
        seen before `seen_before_us` (wall clock)."""
        ...

    def add_request(self, account_id: str | None, data: str) -> int:
        """Append an entry (its JSON) to the request journal: its seq, above every earlier
        one's (`INSERT ... RETURNING seq`)."""
        ...

    def add_requests(self, rows: Sequence[tuple[str | None, str]]) -> list[int]:
        """`add_request` for each (account, entry JSON), in order: their seqs."""
        ...

    def requests(
        self, account_id: str | None, *, before_seq: int | None, limit: int
    ) -> list[tuple[int, str]]:
        """Journal rows (seq, entry JSON), newest first: one account's or (None) everyone's,
        with a seq below `before_seq` if given (the next page)."""
        ...

    def forget_requests(self, account_id: str | None, *, keep: int = 0) -> int:
        """Delete an account's journal rows but its newest `keep` (None: every row)."""
        ...

    # idempotency
    def saved_response(self, account_id: str, key: str, now_us: int) -> SavedResponse | None: ...
    def save_response(
        self, account_id: str, key: str, saved: SavedResponse, now_us: int, expires_us: int
    ) -> None: ...
    def expire_responses(self, account_id: str, now_us: int) -> int: ...

    # webhooks (simulator/store/webhooks.py)
    def save_webhook_endpoint(self, account_id: str, endpoint: WebhookEndpoint) -> None: ...
    def webhook_endpoint(
        self, account_id: str | None, endpoint_id: str
    ) -> WebhookEndpoint | None: ...
    def webhook_endpoint_account(self, endpoint_id: str) -> str | None: ...
    def webhook_endpoints(self, account_id: str) -> list[WebhookEndpoint]: ...
    def webhook_endpoint_page(
        self, account_id: str, *, limit: int, cursor: str | None
    ) -> Page[WebhookEndpoint]: ...
    def delete_webhook_endpoint(self, account_id: str, endpoint_id: str) -> None: ...
    def save_delivery(self, account_id: str, d: Delivery, created_us: int) -> None: ...
    def insert_delivery(self, account_id: str, d: Delivery, created_us: int) -> None: ...
    def delivery(self, account_id: str, delivery_id: str) -> tuple[Delivery, int | None] | None: ...
    def lease_delivery(self, account_id: str, delivery_id: str, until_us: int) -> None: ...
    def release_leases(self) -> int: ...
    def leased_deliveries(self, wall_us: int, account_id: str | None) -> int: ...
    def due_deliveries(
        self,
        wall_us: int,
        account_id: str | None,
        *,
        limit: int,
        skip_endpoints: frozenset[str] = frozenset(),
    ) -> list[tuple[str, str, str]]: ...
    def deliveries(
        self,
        account_id: str | None,
        *,
        endpoint_id: str | None = None,
        event_id: str | None = None,
        status: str | None = None,
        since_us: int | None = None,
        limit: int = 100,
        cursor_seq: int | None = None,
    ) -> list[tuple[int, Delivery]]: ...
    def event(self, account_id: str, event_id: str) -> Event | None: ...
    def event_account(self, event_id: str) -> str | None: ...

    # repayments, settlements, disputes, drift, exports (simulator/store/finance.py)
    def save_finance(
        self,
        account_id: str,
        kind: str,
        obj: BaseModel,
        *,
        ref: str | None = None,
        owner: str | None = None,
        status: str | None = None,
    ) -> None: ...
    def finance(self, model: type[M], account_id: str, kind: str, ident: str) -> M | None: ...
    def finance_all(
        self,
        model: type[M],
        account_id: str,
        kind: str,
        *,
        ref: str | None = None,
        owner: str | None = None,
        status: str | tuple[str, ...] | None = None,
    ) -> list[M]: ...
    def finance_page(
        self,
        model: type[M],
        account_id: str,
        kind: str,
        *,
        status: str | None = None,
        ref: str | None = None,
        limit: int,
        cursor: str | None,
    ) -> Page[M]: ...
    def job_scheduled(self, account_id: str, due_us: int, kind: str, ref: str) -> bool: ...


class Store(Protocol):
    lock_wait_s: float | None  # how long `writable` waits; None: SQLite blocks instead

    def transaction(self, *, write: bool = True) -> AbstractContextManager[Tx]:
        """All or nothing; `write=False`: a snapshot that waits for no writer."""
        ...

    async def writable(self) -> None:
        """Await the write lock without blocking the event loop (or raise `StoreBusy`)."""
        ...

    def read(self) -> AbstractContextManager[Tx]:
        """Committed data only, for readers that change nothing."""
        ...

    def grouped(self) -> AbstractContextManager[tuple[Tx, Awaitable[None]]]:
        """A transaction whose COMMIT may be shared with other operations of the same
        event-loop turn. Await the awaitable (it completes once committed, or raises why not)
        before acknowledging anything the operation did or read."""
        ...

    def dump_stream(
        self, account_id: str, head: dict[str, Any]
    ) -> Iterator[bytes] | AsyncIterator[bytes]:
        """An account's dump as JSON bytes, a page at a time."""
        ...

    async def build_export(
        self,
        account_id: str,
        spool: str,
        build: Callable[[ExportRows, Callable[[str, bytes], None]], T],
    ) -> T:
        """`build(rows, write_chunk)` over one snapshot of the account, off the event loop;
        the chunks it writes are kept under `spool`."""
        ...

    async def drop_export(self, spool: str) -> None:
        """Delete the chunks kept under `spool`."""
        ...

    def export_stream(self, spool: str, file: str) -> Iterator[bytes] | AsyncIterator[bytes]:
        """A file's chunks kept under `spool`, a page at a time."""
        ...

    def schema_version(self) -> int:
        """The highest migration applied to the database."""
        ...

    def data_version(self) -> tuple[int, int] | None:
        """A value that differs whenever committed data may have changed since it was read
        (by this process or another), except for the request journal's rows (`quietly`); None
        when the store cannot tell cheaply (answers of reads are then never reused:
        `simulator.api.reads`)."""
        ...

    def quietly(self) -> AbstractContextManager[None]:
        """Writes in this block (the request journal's) leave `data_version` as it was."""
        ...

    def meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def close(self) -> None: ...
