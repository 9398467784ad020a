"""Virtual cards: the third B2B payment approach, served at `/vcards/v1` (issue #15).

The buyer's accounts-payable department pays the seller's invoices with single-use virtual
cards (a token, last four digits, an expiry and a spending limit per card); the seller's card
processor authorizes and captures them, the captures clear days later, and the issuer's
interchange and the scheme's fee come off every settlement line. Another *personality*, as the
gateway's: its own objects (`simulator.vcards`) on the same accounts, clock, RNG, faults,
journal, events and webhooks, balance, settlements and exports. `api` holds the operation table
the routes and `contracts/vcards.yaml` (`document`) come from. Authentication is the account's
API key, as on `/v1`.
"""

from __future__ import annotations

from simulator.dialects.vcards.api import OPERATIONS, PREFIX

__all__ = ["OPERATIONS", "PREFIX"]
