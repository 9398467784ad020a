"""Account-level operations of the control plane: create, look up by key, list, reset, reseed.

An account's state is more than its stored objects: its fault dice (in this process), its
attempt counts and its request journal (in the store, kept apart from its objects:
`FaultRegistry`, `Journal`). Each operation here changes all of them together, so the control
plane and the contract suite cannot do half of a reset.
"""

from __future__ import annotations

from simulator.domain.models import Account, AccountSettings
from simulator.domain.records import Page
from simulator.faults.journal import Journal
from simulator.faults.registry import FaultRegistry
from simulator.rng import SeededRng
from simulator.service import ProviderService
from simulator.store.base import Store


class Accounts:
    """Creates accounts with the server's seeded RNG and maps API keys to accounts (cached:
    keys never change once issued)."""

    def __init__(
        self,
        store: Store,
        service: ProviderService,
        server_seed: int,
        *,
        faults: FaultRegistry,
        journal: Journal,
    ) -> None:
        self.store = store
        self.service = service
        self.server_seed = server_seed
        self.faults = faults
        self.journal = journal
        self._by_key: dict[str, str] = {}

    def create(self, *, name: str, seed: int | None, settings: AccountSettings | None) -> Account:
        with self.store.transaction() as tx:
            counter = int(self.store.meta("server_rng_counter") or 0)
            rng = SeededRng("server", self.server_seed, counter)
            account = self.service.create_account(tx, rng, name=name, seed=seed, settings=settings)
            self.store.set_meta("server_rng_counter", str(rng.counter))
        self._by_key[account.api_key] = account.id
        return account

    def for_key(self, api_key: str) -> str | None:
        found = self._by_key.get(api_key)
        if found is None:
            with self.store.transaction(write=False) as tx:
                account = tx.account_by_key(api_key)
            if account is not None:
                found = self._by_key[api_key] = account.id
        return found

    def get(self, account_id: str) -> Account | None:
        with self.store.transaction(write=False) as tx:
            return tx.account(account_id)

    def list(self, *, limit: int, cursor: str | None = None) -> Page[Account]:
        """Oldest first, a page at a time (a snapshot: no lock taken)."""
        with self.store.transaction(write=False) as tx:
            return tx.accounts(limit=limit, cursor=cursor)

    def all(self) -> tuple[Account, ...]:
        """Every account, oldest first, read a page at a time (the console's lists and the
        Credit Key dialect's key lookup; each page a snapshot of its own)."""
        found: list[Account] = []
        cursor: str | None = None
        while True:
            page = self.list(limit=500, cursor=cursor)
            found.extend(page.items)
            if not page.has_more or page.next_cursor is None:
                return tuple(found)
            cursor = page.next_cursor

    def reset(self, account_id: str) -> Account:
        """Forget every object, restart RNG and clock (`ProviderService.reset`), and start its
        fault dice and request journal afresh."""
        with self.service.scope(account_id) as ctx:
            account = self.service.reset(ctx)
        self.faults.reseed(account.id)
        self.journal.clear(account.id)
        return account

    def set_seed(self, account_id: str, seed: int) -> Account:
        """A new seed restarts the account's random sequence, its fault dice included."""
        with self.service.scope(account_id) as ctx:
            account = self.service.set_seed(ctx, seed)
        self.faults.reseed(account.id)
        return account

    def schema_version(self) -> int:
        return self.store.schema_version()
