"""Persistence behind a protocol; SQLite (file or :memory:) is the implementation."""

from simulator.domain.records import Page
from simulator.store.base import Store, Tx
from simulator.store.sqlite import SqliteStore

__all__ = ["Page", "SqliteStore", "Store", "Tx"]
