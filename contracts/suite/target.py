"""What the suite tests: an in-process simulator (default) or the server at CONTRACT_BASE_URL."""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

ADMIN_TOKEN = "sbadm_contract"  # noqa: S105 - the in-process simulator's throwaway admin token
SEED = 20240601
DEFAULT_MAX_EXAMPLES = 30


@dataclass(frozen=True)
class Target:
    """Where requests go: `app` (in-process ASGI) or `base_url` (any server), with an API key."""

    api_key: str
    app: Any | None = None
    base_url: str | None = None
    # Empties the account, so each stateful scenario starts from the same state (and Hypothesis
    # sees the same responses for the same choices); None when the suite cannot (API key only).
    reset: Callable[[], None] | None = None


def base_url() -> str | None:
    return os.environ.get("CONTRACT_BASE_URL", "").strip().rstrip("/") or None


def max_examples() -> int:
    """Fuzzing budget per operation, and the number of stateful scenarios."""
    return int(os.environ.get("CONTRACT_MAX_EXAMPLES", DEFAULT_MAX_EXAMPLES))


def _remote(url: str) -> Target:
    key = os.environ.get("CONTRACT_API_KEY")
    admin = os.environ.get("CONTRACT_ADMIN_TOKEN")
    if not key and admin:
        response = requests.post(
            f"{url}/_sandbox/accounts",
            json={"name": "contract-suite"},
            headers={"Authorization": f"Bearer {admin}"},
            timeout=30,
        )
        response.raise_for_status()
        key = str(response.json()["api_key"])
        account_id = str(response.json()["id"])

        def reset() -> None:
            requests.post(
                f"{url}/_sandbox/accounts/{account_id}/reset",
                headers={"Authorization": f"Bearer {admin}"},
                timeout=30,
            ).raise_for_status()

        return Target(api_key=key, base_url=url, reset=reset)
    if not key:
        raise RuntimeError(
            "CONTRACT_BASE_URL is set: also set CONTRACT_API_KEY, or CONTRACT_ADMIN_TOKEN so the "
            "suite can create an account through the control plane"
        )
    return Target(api_key=key, base_url=url)


def _in_process() -> Target:
    # Imported here: against a remote target the simulator need not even be installed.
    from simulator.app import create_app, demo_account  # noqa: PLC0415
    from simulator.settings import Settings  # noqa: PLC0415

    app = create_app(Settings(db=":memory:", admin_token=ADMIN_TOKEN, seed=SEED))
    demo = demo_account(app)
    assert demo is not None, "the in-process simulator has no demo account"

    def reset() -> None:
        app.runtime.accounts.reset(demo.id)

    return Target(api_key=demo.api_key, app=app, reset=reset)


@functools.cache
def resolve() -> Target:
    url = base_url()
    return _remote(url) if url else _in_process()


_keys = itertools.count(1)
_run = os.urandom(6).hex()  # keys from earlier runs against a long-lived server never collide


def fresh_key() -> str:
    return f"ct-{_run}-{next(_keys):06d}"
