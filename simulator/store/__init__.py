"""Persistence behind a protocol; SQLite (file or :memory:) is the implementation."""

from simulator.store.base import Page, Store, Tx
from simulator.store.sqlite import SqliteStore

__all__ = ["Page", "SqliteStore", "Store", "Tx"]
