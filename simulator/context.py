"""`Ctx`, the working set of one account transaction: the one thing every service method takes.

A module of its own so that the services (provider, finance, webhooks) and the HTTP adapters
can all name it without importing one another.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, TypeAdapter

from simulator import API_VERSION
from simulator.clock import to_us
from simulator.domain.models import Account
from simulator.rng import SeededRng
from simulator.store.base import Tx

M = TypeVar("M", bound=BaseModel)
# How an object is shown (the `of` of its public shape), and which one for a given object.
Shows = Callable[[Any], BaseModel]
Presenter = Callable[[Any], Shows]
_DATETIME_JSON = TypeAdapter(datetime).serializer.to_json


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An object's public shape at one moment of the transaction: `shown` (built by `of`, the
    model a GET of the object returns) and its JSON, with the object's own fields at that
    moment, to tell later whether it has changed since."""

    obj: BaseModel
    fields: dict[str, Any]
    of: Shows
    shown: BaseModel
    json: bytes


@dataclass(slots=True)
class Emitted:
    """An event on its way to the outbox. `document` is what the store writes: byte for byte
    what `Event(...).model_dump_json()` gives, but built around the snapshot's JSON (serialised
    once, by its model's typed serializer) instead of serialising an `Event` whose `data` is
    the snapshot as a dict."""

    id: str
    type: str
    object_id: str
    document: str
    snapshot: Snapshot

    @property
    def data(self) -> dict[str, Any]:
        """The snapshot as the event's `data` (a JSON object)."""
        data: dict[str, Any] = json.loads(self.snapshot.json)
        return data

    @classmethod
    def of(
        cls, event_id: str, type_: str, object_type: str, created_at: datetime, snap: Snapshot
    ) -> Emitted:
        object_id: str = snap.obj.id  # type: ignore[attr-defined]  # every emitted object has one
        # `Event`'s fields in its order; orjson writes strings exactly as pydantic does, the
        # time and the snapshot come from pydantic's own serializers.
        document = orjson.dumps(
            {
                "id": event_id,
                "type": type_,
                "object_type": object_type,
                "object_id": object_id,
                "created_at": orjson.Fragment(_DATETIME_JSON(created_at)),
                "data": orjson.Fragment(snap.json),
                "api_version": API_VERSION,
            }
        )
        return cls(event_id, type_, object_id, document.decode(), snap)


@dataclass
class Ctx:
    """The working set of one account transaction."""

    tx: Tx
    account: Account
    rng: SeededRng
    now: datetime
    events: list[Emitted] = field(default_factory=list)
    due_left: bool = False  # a bounded step (`scope(step=N)`) left due work for the next one
    ran_until_us: int | None = None  # the due time of the last job the scope ran
    next_due_us: int | None = None  # the account's earliest job as the scope opened
    # The latest snapshot of each object an event of this transaction carried, by `id()` of
    # the object (the snapshot holds it, so the id stays its own), and by `id()` of the shown
    # model for its JSON. Cleared whenever the events go to the outbox.
    snapshots: dict[int, Snapshot] = field(default_factory=dict)
    _json_of: dict[int, Snapshot] = field(default_factory=dict)

    @property
    def aid(self) -> str:
        return self.account.id

    @property
    def now_us(self) -> int:
        return to_us(self.now)

    def snapshot(self, obj: BaseModel, of: Shows) -> Snapshot:
        """`obj` shown by `of` now: the snapshot taken earlier in this transaction when nothing
        of the object has changed since (an object emitted twice in one state is shown once)."""
        fields = obj.model_dump()
        known = self.snapshots.get(id(obj))
        if known is not None and known.of == of and known.fields == fields:
            return known
        shown = of(obj)
        snap = Snapshot(obj, fields, of, shown, shown.__pydantic_serializer__.to_json(shown))
        self.snapshots[id(obj)] = self._json_of[id(shown)] = snap
        return snap

    def shown(self, of: Callable[[Any], M], obj: Any) -> M:
        """`of(obj)`: the model of this transaction's latest snapshot of `obj` when an event took
        it with the same `of` and nothing of the object has changed since (so the answer and
        the event's `data` are one serialisation of one model), else built now."""
        known = self.snapshots.get(id(obj))
        if known is not None and known.of == of and known.fields == obj.model_dump():
            shown: M = known.shown  # type: ignore[assignment]  # built by this very `of`
            return shown
        return of(obj)

    def json_of(self, shown: BaseModel) -> bytes | None:
        """The JSON of a model that a snapshot of this transaction holds (None otherwise)."""
        known = self._json_of.get(id(shown))
        return known.json if known is not None and known.shown is shown else None

    def forget_snapshots(self) -> None:
        self.snapshots.clear()
        self._json_of.clear()

    def new_id(self, prefix: str) -> str:
        """The next id from the account RNG that no stored object already has.

        A seed set again without a reset restarts the sequence; skipping taken ids keeps that
        from overwriting objects (or clashing on event ids) and is itself deterministic. Until
        then (`Account.fresh_ids`) a drawn id cannot be taken, so the lookup is skipped.
        """
        if self.account.fresh_ids:
            return self.rng.id(prefix)
        while True:
            ident = self.rng.id(prefix)
            if not self.tx.id_taken(ident):
                return ident
