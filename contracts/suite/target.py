"""What the suite tests: an in-process simulator (default) or the server at CONTRACT_BASE_URL.

Against a server the suite writes (buyers, checkouts, orders, captures, refunds) and resets the
account it uses between stateful scenarios, so by default it makes a throwaway account through
the control plane (CONTRACT_ADMIN_TOKEN) and touches nothing else. An API key alone means
running in someone's account: only with CONTRACT_I_KNOW_THIS_WRITES=1, and never reset.
"""

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


WRITES = (
    "the contract suite writes to the account it runs in (buyers, checkouts, orders, captures, "
    "refunds)"
)


def refusal(*, api_key: str | None, admin_token: str | None, writes_ok: bool) -> str | None:
    """Why the suite must not run against a server with these credentials, or None."""
    if admin_token:
        return None
    if not api_key:
        return (
            "testing a server needs its admin token (--admin-token, or CONTRACT_ADMIN_TOKEN / "
            "SANDBANK_ADMIN_TOKEN): the suite then runs in a throwaway account"
        )
    if not writes_ok:
        return (
            f"{WRITES}: give the admin token to run in a throwaway account instead, or "
            "--i-know-this-writes (CONTRACT_I_KNOW_THIS_WRITES=1) to use this API key's account"
        )
    return None


def _remote(url: str) -> Target:
    key = os.environ.get("CONTRACT_API_KEY")
    admin = os.environ.get("CONTRACT_ADMIN_TOKEN")
    why = refusal(
        api_key=key,
        admin_token=admin,
        writes_ok=os.environ.get("CONTRACT_I_KNOW_THIS_WRITES") == "1",
    )
    if why:
        raise RuntimeError(why)
    if admin:
        response = requests.post(
            f"{url}/_sandbox/accounts",
            json={"name": f"contract-suite-{_run}"},
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
    assert key is not None  # refusal() said so
    return Target(api_key=key, base_url=url)


def _in_process() -> Target:
    # Imported here: against a remote target the simulator need not even be installed.
    from simulator.app import create_app, demo_account  # noqa: PLC0415
    from simulator.settings import Settings  # noqa: PLC0415

    app = create_app(Settings(db=":memory:", admin_token=ADMIN_TOKEN, seed=SEED))
    demo = demo_account(app)
    assert demo is not None, "the in-process simulator has no demo account"

    def reset() -> None:
        # Through the app, on the event loop schemathesis serves it from: that loop also runs
        # the app's lifespan (the inline dispatcher and scheduler on `:memory:`), so a direct
        # call from this thread could meet their open transaction on the one connection.
        from schemathesis.python import asgi  # noqa: PLC0415 - only the in-process target

        with asgi.get_client(app) as client:  # type: ignore[arg-type]  # MutableMapping vs dict scope types
            r = client.post(
                f"http://{asgi.HOST}/_sandbox/accounts/{demo.id}/reset",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
        assert r.status_code == 200, f"contract account reset failed: {r.status_code} {r.text}"

    return Target(api_key=demo.api_key, app=app, reset=reset)


@functools.cache
def resolve() -> Target:
    url = base_url()
    return _remote(url) if url else _in_process()


_keys = itertools.count(1)
_run = os.urandom(6).hex()  # keys from earlier runs against a long-lived server never collide


def fresh_key() -> str:
    return f"ct-{_run}-{next(_keys):06d}"
