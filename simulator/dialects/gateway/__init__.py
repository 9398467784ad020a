"""Gateway + net terms: the second B2B payment approach, served at `/gateway/v1` (issue #15).

The seller extends its own net terms and carries the credit risk; a payment gateway captures
the customers' card and ACH payments against the seller's invoices and keeps a fee per
transaction. Unlike the Credit Key dialect (another provider's API over the same orders), this
is another *personality*: its own objects (invoices, charges; `simulator.gateway`) on the same
accounts, clock, RNG, faults, journal, events and webhooks, balance, settlements and exports.
`api` holds the operation table the routes and `contracts/gateway.yaml` (`document`) come from.
Authentication is the account's API key, as on `/v1`.
"""

from __future__ import annotations

from simulator.dialects.gateway.api import OPERATIONS, PREFIX

__all__ = ["OPERATIONS", "PREFIX"]
