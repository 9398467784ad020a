"""Sandbank for your pytest suite: `pip install sandbank` registers this plugin.

It talks HTTP only (it never imports the simulator), so the same tests run against a simulator
it starts itself (a `sandbank serve` child process on a free 127.0.0.1 port, once per session,
started with `rehearsal.processes`) or against a shared one (`--sandbank-url`,
`--sandbank-admin-token`).

Fixtures: `sandbank_server` (session), `sandbank_account` (a fresh account per test, alias
`sandbank`), `sandbank_webhooks` (a local receiver that verifies Standard Webhooks signatures,
registered as the account's endpoint). See docs/pytest-plugin.md and
examples/test_checkout_example.py.
"""

from __future__ import annotations

from sandbank_pytest.account import CreditKeyKeys, SandbankAccount, SandbankError
from sandbank_pytest.server import SandbankServer
from sandbank_pytest.webhooks import WebhookReceiver

__all__ = [
    "CreditKeyKeys",
    "SandbankAccount",
    "SandbankError",
    "SandbankServer",
    "WebhookReceiver",
]
