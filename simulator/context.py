"""`Ctx`, the working set of one account transaction: the one thing every service method takes.

A module of its own so that the services (provider, finance, webhooks) and the HTTP adapters
can all name it without importing one another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from simulator.clock import to_us
from simulator.domain.models import Account, Event
from simulator.rng import SeededRng
from simulator.store.base import Tx


@dataclass
class Ctx:
    """The working set of one account transaction."""

    tx: Tx
    account: Account
    rng: SeededRng
    now: datetime
    events: list[Event] = field(default_factory=list)
    due_left: bool = False  # a bounded step (`scope(step=N)`) left due work for the next one
    ran_until_us: int | None = None  # the due time of the last job the scope ran

    @property
    def aid(self) -> str:
        return self.account.id

    @property
    def now_us(self) -> int:
        return to_us(self.now)

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
