"""Traditional invoicing: the fourth B2B payment approach, served at `/invoicing/v1` (issue #15).

The seller sends EDI 810 invoices (JSON shaped on the 810's segments, or the X12 text itself)
on its own net terms and carries the credit risk; the buyers' accounts payable pays into the
seller's lockbox with EDI 820 remittances whose references may be partial, missing or wrong, so
matching cash to invoices is the work; unpaid invoices are dunned on the clock. Another
*personality* on the same accounts, clock, RNG, faults, journal, events and webhooks, balance,
settlements and exports (`simulator.invoicing`). `api` holds the operation table the routes and
`contracts/invoicing.yaml` (`document`) come from. Authentication is the account's API key.
"""

from __future__ import annotations

from simulator.dialects.invoicing.api import OPERATIONS, PREFIX

__all__ = ["OPERATIONS", "PREFIX"]
