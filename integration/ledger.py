"""The merchant's double-entry ledger: append-only, integer minor units, one currency per posting.

- `Ledger.post` turns a canonical event and its figures into a posting through the GL mapping
  (`integration.gl_mapping`). It is idempotent by `(event_kind, reference)`: the webhook
  receiver delivers at least once, so a repeat returns the posting already written.
- Nothing is ever updated or deleted. `Ledger.reverse` writes a new posting with debits and
  credits swapped; `Ledger.correct` reverses and writes the corrected posting in one append.
- `_assert_balanced` is the one place balance is checked (per posting: debits == credits, no
  negative or non-integer amounts, exactly one side per leg, no empty postings). Every write
  path goes through it: `Ledger._append` before handing postings to the store, and each store's
  `append` again, so a store used directly cannot be fed an unbalanced posting either.
- Storage is pluggable (`LedgerStore`): `MemoryLedgerStore` for tests, `SqliteLedgerStore`
  (stdlib sqlite3, WAL, one table of postings and one of legs, triggers that refuse UPDATE and
  DELETE) for real use.

Posting ids are derived from the idempotency key (`pst_` + a SHA-256 prefix), so the same
events give the same ids in every store and every run; nothing here reads the wall clock or a
random source — callers pass `at`.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol

from integration.db import connect
from integration.errors import IntegrationError
from integration.gl_mapping import FigureError, GlMapping, load
from integration.model import EventKind

REVERSAL: Literal["reversal"] = "reversal"
PostingKind = EventKind | Literal["reversal"]


class LedgerError(IntegrationError):
    """Root of the ledger's errors."""


class UnbalancedPosting(LedgerError):
    """A posting failed `_assert_balanced`; nothing was written."""


class InvalidEntry(LedgerError):
    """The request cannot become a posting (bad figures, currency, reference or time)."""


class UnknownPosting(LedgerError, KeyError):
    """No posting has that id."""


class NotReversible(LedgerError):
    """Reversals are not reversed; post a new entry instead."""


class DuplicatePosting(LedgerError):
    """A store already holds a posting with this id (a concurrent writer won the race)."""


@dataclass(frozen=True, slots=True)
class Leg:
    """One line of a posting. Exactly one of `debit` / `credit` is non-zero."""

    account: str
    debit: int = 0
    credit: int = 0


@dataclass(frozen=True, slots=True)
class Posting:
    id: str
    at: datetime
    event_kind: PostingKind
    reference: str  # the provider's id(s) the event is about, e.g. "cap_123" or "stl_9:line_4"
    currency: str
    legs: tuple[Leg, ...]
    memo: str = ""
    terms: str | None = None
    reverses: str | None = None  # set on a reversal: the posting it cancels
    replaces: str | None = None  # set on a correction: the (reversed) posting it stands in for
    # The provider's order the money belongs to, when there is one (reconciliation matches
    # settlement lines to postings by it); not part of the idempotency key.
    order_id: str | None = None
    # The figures the posting was made from (`gross`, `fee`, `net`, `tax`, as given), sorted.
    figures: tuple[tuple[str, int], ...] = ()

    @property
    def gross(self) -> int:
        """The event's gross figure (from `figures`; else the posting's total, i.e. its
        debits, which is the gross for every event the default mapping posts)."""
        given = dict(self.figures)
        if "gross" in given:
            return given["gross"]
        if "net" in given:
            return given["net"] + given.get("fee", 0)
        return sum(leg.debit for leg in self.legs)

    @property
    def idempotency_key(self) -> str:
        if self.reverses is not None:
            parts: list[str | None] = [REVERSAL, self.reverses]
        else:
            parts = [self.event_kind, self.reference, self.replaces]
        return json.dumps(parts, separators=(",", ":"))


def posting_id(key: str) -> str:
    return "pst_" + hashlib.sha256(key.encode()).hexdigest()[:24]


def _assert_balanced(posting: Posting) -> None:
    """THE balance check. Raises `UnbalancedPosting` unless the posting has at least one leg,
    every amount is a non-negative int with exactly one side non-zero, and debits == credits
    (a posting has one currency, so this is the per-currency balance)."""
    if not posting.legs:
        raise UnbalancedPosting(f"{posting.id}: a posting needs at least one leg")
    if not _is_currency(posting.currency):
        raise UnbalancedPosting(f"{posting.id}: {posting.currency!r} is not an ISO 4217 code")
    debits = credits = 0
    for n, leg in enumerate(posting.legs):
        where = f"{posting.id} leg {n} ({leg.account!r})"
        if not isinstance(leg.account, str) or not leg.account.strip():
            raise UnbalancedPosting(f"{where}: the account is empty")
        for amount in (leg.debit, leg.credit):
            if isinstance(amount, bool) or not isinstance(amount, int):
                raise UnbalancedPosting(f"{where}: amounts are integer minor units")
            if amount < 0:
                raise UnbalancedPosting(f"{where}: amounts are never negative")
        if (leg.debit == 0) == (leg.credit == 0):
            raise UnbalancedPosting(f"{where}: exactly one of debit and credit must be non-zero")
        debits += leg.debit
        credits += leg.credit
    if debits != credits:
        raise UnbalancedPosting(
            f"{posting.id}: debits {debits} != credits {credits} {posting.currency}"
        )


class LedgerStore(Protocol):
    """Append-only storage of postings. `append` is atomic and raises `DuplicatePosting` if any
    id is already stored (then nothing of that call is stored)."""

    def append(self, postings: Sequence[Posting]) -> None: ...
    def get(self, posting_id: str) -> Posting | None: ...
    def latest(self, event_kind: EventKind, reference: str) -> Posting | None: ...
    def reversal_of(self, posting_id: str) -> Posting | None: ...
    def postings(
        self, *, reference: str | None = None, event_kind: PostingKind | None = None
    ) -> list[Posting]: ...
    def order_postings(self, order_id: str, references: Sequence[str] = ()) -> list[Posting]: ...
    def balance(self, account: str, currency: str) -> int: ...
    def trial_balance(self, currency: str) -> dict[str, int]: ...
    def currencies(self) -> list[str]: ...
    def close(self) -> None: ...


class MemoryLedgerStore:
    """In-process store (tests, examples). Thread-safe; gone when the process ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._postings: list[Posting] = []
        self._by_id: dict[str, Posting] = {}
        self._reversals: dict[str, Posting] = {}
        self._balances: dict[tuple[str, str], int] = {}

    def append(self, postings: Sequence[Posting]) -> None:
        for posting in postings:
            _assert_balanced(posting)
        with self._lock:
            ids = [p.id for p in postings]
            if len(set(ids)) != len(ids) or any(i in self._by_id for i in ids):
                raise DuplicatePosting(", ".join(i for i in ids if i in self._by_id) or ids[0])
            for posting in postings:
                self._postings.append(posting)
                self._by_id[posting.id] = posting
                if posting.reverses is not None:
                    self._reversals[posting.reverses] = posting
                for leg in posting.legs:
                    key = (posting.currency, leg.account)
                    self._balances[key] = self._balances.get(key, 0) + leg.debit - leg.credit

    def get(self, posting_id: str) -> Posting | None:
        return self._by_id.get(posting_id)

    def latest(self, event_kind: EventKind, reference: str) -> Posting | None:
        with self._lock:
            matches = [
                p
                for p in self._postings
                if p.event_kind == event_kind and p.reference == reference and p.reverses is None
            ]
        return matches[-1] if matches else None

    def reversal_of(self, posting_id: str) -> Posting | None:
        return self._reversals.get(posting_id)

    def postings(
        self, *, reference: str | None = None, event_kind: PostingKind | None = None
    ) -> list[Posting]:
        with self._lock:
            return [
                p
                for p in self._postings
                if (reference is None or p.reference == reference)
                and (event_kind is None or p.event_kind == event_kind)
            ]

    def order_postings(self, order_id: str, references: Sequence[str] = ()) -> list[Posting]:
        refs = set(references)
        with self._lock:
            return [p for p in self._postings if p.order_id == order_id or p.reference in refs]

    def balance(self, account: str, currency: str) -> int:
        return self._balances.get((currency, account), 0)

    def trial_balance(self, currency: str) -> dict[str, int]:
        with self._lock:
            return {
                account: amount
                for (cur, account), amount in sorted(self._balances.items())
                if cur == currency and amount != 0
            }

    def currencies(self) -> list[str]:
        with self._lock:
            return sorted({p.currency for p in self._postings})

    def close(self) -> None:
        return None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS postings (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    at         TEXT NOT NULL,
    event_kind TEXT NOT NULL,
    reference  TEXT NOT NULL,
    currency   TEXT NOT NULL,
    memo       TEXT NOT NULL,
    terms      TEXT,
    reverses   TEXT UNIQUE REFERENCES postings (id),
    replaces   TEXT REFERENCES postings (id),
    order_id   TEXT,
    figures    TEXT
);
CREATE INDEX IF NOT EXISTS postings_by_reference ON postings (reference, event_kind);
CREATE TABLE IF NOT EXISTS legs (
    posting_id TEXT NOT NULL REFERENCES postings (id),
    n          INTEGER NOT NULL,
    account    TEXT NOT NULL,
    debit      INTEGER NOT NULL CHECK (debit >= 0),
    credit     INTEGER NOT NULL CHECK (credit >= 0),
    PRIMARY KEY (posting_id, n)
);
CREATE INDEX IF NOT EXISTS legs_by_account ON legs (account);
CREATE TRIGGER IF NOT EXISTS postings_append_only_update BEFORE UPDATE ON postings
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS postings_append_only_delete BEFORE DELETE ON postings
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS legs_append_only_update BEFORE UPDATE ON legs
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS legs_append_only_delete BEFORE DELETE ON legs
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
"""

_COLUMNS = (
    "id, at, event_kind, reference, currency, memo, terms, reverses, replaces, order_id, figures"
)
_Row = tuple[
    str, str, str, str, str, str, str | None, str | None, str | None, str | None, str | None
]
_PLACEHOLDERS = ", ".join("?" * len(_COLUMNS.split(",")))
# Columns added after the first release: (name, declaration), added to older files on open.
_ADDED_COLUMNS = (("order_id", "TEXT"), ("figures", "TEXT"))


class SqliteLedgerStore:
    """SQLite store: WAL journal, every append one `BEGIN IMMEDIATE` transaction. The only SQL
    that writes is INSERT; triggers reject UPDATE and DELETE even from other clients."""

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.Lock()
        self._db = connect(path)
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        present = {str(row[1]) for row in self._db.execute("PRAGMA table_info(postings)")}
        for name, declaration in _ADDED_COLUMNS:
            if name not in present:  # a file written before the column existed
                self._db.execute(f"ALTER TABLE postings ADD COLUMN {name} {declaration}")
        self._db.execute("CREATE INDEX IF NOT EXISTS postings_by_order ON postings (order_id)")

    def append(self, postings: Sequence[Posting]) -> None:
        for posting in postings:
            _assert_balanced(posting)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for p in postings:
                    self._db.execute(
                        f"INSERT INTO postings ({_COLUMNS}) VALUES ({_PLACEHOLDERS})",  # noqa: S608 -- constant column list, values bound
                        (
                            p.id,
                            p.at.isoformat(),
                            str(p.event_kind),
                            p.reference,
                            p.currency,
                            p.memo,
                            p.terms,
                            p.reverses,
                            p.replaces,
                            p.order_id,
                            json.dumps(dict(p.figures), sort_keys=True) if p.figures else None,
                        ),
                    )
                    self._db.executemany(
                        "INSERT INTO legs (posting_id, n, account, debit, credit)"
                        " VALUES (?, ?, ?, ?, ?)",
                        [(p.id, n, g.account, g.debit, g.credit) for n, g in enumerate(p.legs)],
                    )
            except sqlite3.IntegrityError as exc:
                self._db.execute("ROLLBACK")
                if "UNIQUE" in str(exc):
                    raise DuplicatePosting(str(exc)) from exc
                raise LedgerError(f"the store refused the posting: {exc}") from exc
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def get(self, posting_id: str) -> Posting | None:
        found = self._select("WHERE id = ?", (posting_id,))
        return found[0] if found else None

    def latest(self, event_kind: EventKind, reference: str) -> Posting | None:
        found = self._select(
            "WHERE event_kind = ? AND reference = ? AND reverses IS NULL ORDER BY seq DESC LIMIT 1",
            (event_kind.value, reference),
        )
        return found[0] if found else None

    def reversal_of(self, posting_id: str) -> Posting | None:
        found = self._select("WHERE reverses = ?", (posting_id,))
        return found[0] if found else None

    def postings(
        self, *, reference: str | None = None, event_kind: PostingKind | None = None
    ) -> list[Posting]:
        clauses, params = [], []
        if reference is not None:
            clauses.append("reference = ?")
            params.append(reference)
        if event_kind is not None:
            clauses.append("event_kind = ?")
            params.append(str(event_kind))
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return self._select(f"{where} ORDER BY seq", tuple(params))

    def order_postings(self, order_id: str, references: Sequence[str] = ()) -> list[Posting]:
        return self._select(
            "WHERE order_id = ? OR reference IN (SELECT value FROM json_each(?)) ORDER BY seq",
            (order_id, json.dumps(list(references))),
        )

    def balance(self, account: str, currency: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT COALESCE(SUM(l.debit), 0) - COALESCE(SUM(l.credit), 0)"
                " FROM legs l JOIN postings p ON p.id = l.posting_id"
                " WHERE l.account = ? AND p.currency = ?",
                (account, currency),
            ).fetchone()
        return int(row[0])

    def trial_balance(self, currency: str) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT l.account, SUM(l.debit) - SUM(l.credit) AS amount"
                " FROM legs l JOIN postings p ON p.id = l.posting_id"
                " WHERE p.currency = ? GROUP BY l.account HAVING amount != 0 ORDER BY l.account",
                (currency,),
            ).fetchall()
        return {str(account): int(amount) for account, amount in rows}

    def currencies(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT currency FROM postings ORDER BY currency"
            ).fetchall()
        return [str(row[0]) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _select(self, tail: str, params: tuple[str, ...]) -> list[Posting]:
        with self._lock:
            rows: list[_Row] = self._db.execute(
                f"SELECT {_COLUMNS} FROM postings {tail}",  # noqa: S608 -- fixed clauses, values bound
                params,
            ).fetchall()
            legs: dict[str, list[Leg]] = {row[0]: [] for row in rows}
            for posting_id, account, debit, credit in self._db.execute(
                "SELECT posting_id, account, debit, credit FROM legs"
                " WHERE posting_id IN (SELECT value FROM json_each(?)) ORDER BY posting_id, n",
                (json.dumps(list(legs)),),
            ):
                legs[posting_id].append(Leg(account, debit, credit))
        return [
            Posting(
                id=row[0],
                at=datetime.fromisoformat(row[1]),
                event_kind=REVERSAL if row[2] == REVERSAL else EventKind(row[2]),
                reference=row[3],
                currency=row[4],
                legs=tuple(legs[row[0]]),
                memo=row[5],
                terms=row[6],
                reverses=row[7],
                replaces=row[8],
                order_id=row[9],
                figures=tuple(sorted(json.loads(row[10]).items())) if row[10] else (),
            )
            for row in rows
        ]


class Ledger:
    """The ledger API. Writes go through the GL mapping and `_assert_balanced`; reads are the
    store's. Balances are debit-positive (assets and expenses positive, income negative)."""

    def __init__(self, store: LedgerStore, mapping: GlMapping | None = None) -> None:
        self.store = store
        self.mapping = mapping if mapping is not None else load()

    @classmethod
    def in_memory(cls, mapping: GlMapping | None = None) -> Ledger:
        return cls(MemoryLedgerStore(), mapping)

    @classmethod
    def sqlite(cls, path: str | Path, mapping: GlMapping | None = None) -> Ledger:
        return cls(SqliteLedgerStore(path), mapping)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.store.close()

    # -- writes ------------------------------------------------------------------------------

    def post(
        self,
        event_kind: EventKind,
        figures: Mapping[str, int],
        currency: str,
        reference: str,
        *,
        at: datetime,
        terms: str | None = None,
        order_id: str | None = None,
    ) -> Posting | None:
        """Post `event_kind` for `reference` (the provider's id(s) the event is about), for
        the provider's order `order_id` when the money belongs to one.

        Idempotent: if `(event_kind, reference)` was posted before, the posting recorded for it
        (its correction, if it was corrected) is returned and nothing is written. Returns None
        when the mapping posts nothing for the event (memo only, or every amount is zero).
        """
        try:
            event_kind = EventKind(event_kind)
        except ValueError as exc:
            raise InvalidEntry(f"{event_kind!r} is not an event kind the mapping knows") from exc
        existing = self.store.latest(event_kind, reference)
        if existing is not None:
            return existing
        posting = self._build(
            event_kind,
            figures=figures,
            currency=currency,
            reference=reference,
            at=at,
            terms=terms,
            replaces=None,
            order_id=order_id,
        )
        if posting is None:
            return None
        return self._append_once([posting])[0]

    def reverse(self, posting_id: str, reason: str, at: datetime) -> Posting:
        """Cancel a posting with a new one that swaps its debits and credits. Reversing the
        same posting again returns the existing reversal."""
        original = self.get(posting_id)
        if original.reverses is not None:
            raise NotReversible(f"{posting_id} is itself a reversal; post a new entry instead")
        existing = self.store.reversal_of(posting_id)
        if existing is not None:
            return existing
        return self._append_once([self._reversal(original, reason, at)])[0]

    def correct(
        self,
        posting_id: str,
        reason: str,
        figures: Mapping[str, int],
        at: datetime,
        terms: str | None = None,
    ) -> tuple[Posting, Posting | None]:
        """Reverse `posting_id` and post the same event with corrected `figures`, in one append.
        The correction then answers `post` for the original `(event_kind, reference)`.
        Returns (reversal, correction); the correction is None when it would post nothing."""
        original = self.get(posting_id)
        if original.reverses is not None:
            raise NotReversible(f"{posting_id} is a reversal; correct the posting it reverses")
        assert original.event_kind != REVERSAL  # narrowing: only reversals carry that kind
        replacement = self._build(
            original.event_kind,
            figures=figures,
            currency=original.currency,
            reference=original.reference,
            at=at,
            terms=terms if terms is not None else original.terms,
            replaces=original.id,
            order_id=original.order_id,
        )
        existing = self.store.reversal_of(posting_id)
        batch = [] if existing is not None else [self._reversal(original, reason, at)]
        if replacement is not None:
            batch.append(replacement)
        written = self._append_once(batch) if batch else []
        reversal = existing if existing is not None else written[0]
        return reversal, (written[-1] if replacement is not None else None)

    # -- reads -------------------------------------------------------------------------------

    def get(self, posting_id: str) -> Posting:
        posting = self.store.get(posting_id)
        if posting is None:
            raise UnknownPosting(posting_id)
        return posting

    def postings(
        self, *, reference: str | None = None, event_kind: PostingKind | None = None
    ) -> list[Posting]:
        """Postings in the order they were written, optionally filtered."""
        return self.store.postings(reference=reference, event_kind=event_kind)

    def order_postings(self, order_id: str, references: Sequence[str] = ()) -> list[Posting]:
        """Every posting of the provider's order `order_id` (its `order_id`), and those whose
        reference is one of `references` (e.g. written before postings carried an order), in
        the order they were written."""
        return self.store.order_postings(order_id, references)

    def balance(self, account: str, currency: str) -> int:
        """Debits minus credits on `account` in `currency`, in minor units."""
        return self.store.balance(account, currency)

    def trial_balance(self, currency: str) -> dict[str, int]:
        """Every account with a non-zero balance in `currency`; the values sum to zero."""
        return self.store.trial_balance(currency)

    def currencies(self) -> list[str]:
        return self.store.currencies()

    # -- internals ---------------------------------------------------------------------------

    def _build(
        self,
        event_kind: EventKind,
        *,
        figures: Mapping[str, int],
        currency: str,
        reference: str,
        at: datetime,
        terms: str | None,
        replaces: str | None,
        order_id: str | None = None,
    ) -> Posting | None:
        if not _is_currency(currency):
            raise InvalidEntry(f"{currency!r} is not an ISO 4217 code")
        if not reference:
            raise InvalidEntry("a posting needs a reference (the provider's id)")
        if at.tzinfo is None:
            raise InvalidEntry("`at` must be timezone-aware")
        try:
            resolved = self.mapping.resolve(event_kind, figures, terms)
        except FigureError as exc:
            raise InvalidEntry(str(exc)) from exc
        if not resolved:
            return None
        legs = tuple(
            Leg(leg.account, leg.amount, 0)
            if leg.side == "debit"
            else Leg(leg.account, 0, leg.amount)
            for leg in resolved
        )
        draft = Posting(
            id="",
            at=at,
            event_kind=event_kind,
            reference=reference,
            currency=currency,
            legs=legs,
            memo=self.mapping.rule(event_kind).memo,
            terms=terms,
            replaces=replaces,
            order_id=order_id,
            figures=tuple(sorted(figures.items())),
        )
        return _with_id(draft)

    @staticmethod
    def _reversal(original: Posting, reason: str, at: datetime) -> Posting:
        if at.tzinfo is None:
            raise InvalidEntry("`at` must be timezone-aware")
        draft = Posting(
            id="",
            at=at,
            event_kind=REVERSAL,
            reference=original.reference,
            currency=original.currency,
            legs=tuple(Leg(leg.account, leg.credit, leg.debit) for leg in original.legs),
            memo=reason,
            terms=original.terms,
            reverses=original.id,
            order_id=original.order_id,
            figures=original.figures,
        )
        return _with_id(draft)

    def _append_once(self, postings: list[Posting]) -> list[Posting]:
        """The single write funnel: assert balance, append; if a concurrent writer stored the
        same ids first, return what it stored."""
        for posting in postings:
            _assert_balanced(posting)
        try:
            self.store.append(postings)
        except DuplicatePosting:
            stored = [self.store.get(p.id) for p in postings]
            if any(p is None for p in stored):
                raise
            return [p for p in stored if p is not None]
        return postings


def _with_id(draft: Posting) -> Posting:
    return replace(draft, id=posting_id(draft.idempotency_key))


def _is_currency(code: object) -> bool:
    return isinstance(code, str) and len(code) == 3 and code.isascii() and code.isupper()


def trial_balances(ledger: Ledger) -> dict[str, dict[str, int]]:
    """Every currency's trial balance (handy for reports and tests)."""
    return {currency: ledger.trial_balance(currency) for currency in ledger.currencies()}


__all__ = [
    "REVERSAL",
    "DuplicatePosting",
    "InvalidEntry",
    "Ledger",
    "LedgerError",
    "LedgerStore",
    "Leg",
    "MemoryLedgerStore",
    "NotReversible",
    "Posting",
    "PostingKind",
    "SqliteLedgerStore",
    "UnbalancedPosting",
    "UnknownPosting",
    "trial_balances",
]
