"""Factories, the in-process HTTP harness and Hypothesis strategies, in one place.

`Api` drives a `create_app(...)` instance through `httpx.ASGITransport` on its own event loop,
so tests (and Hypothesis) stay synchronous while every request runs the real ASGI pipeline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from fixed_entropy import deterministic_entropy
from hypothesis import strategies as st

from simulator.app import SandbankApp, create_app
from simulator.clock import ManualClock
from simulator.domain.decisions import TERMS
from simulator.domain.money import CURRENCIES
from simulator.faults.journal import Entry
from simulator.settings import Settings

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
ADMIN_TOKEN = "sbadm_test_token"
BASE_URL = "http://sandbank.test"


@dataclass
class Backend:
    """Where `build_app` keeps its data: `:memory:` SQLite, unless a test runs on another
    store (`fresh_db` makes an empty database each call; tests/api/conftest.py sets it)."""

    fresh_db: Callable[[], str] | None = None
    built: list[SandbankApp] = field(default_factory=list)  # to close after the test

    def close_all(self) -> None:
        while self.built:
            self.built.pop().runtime.store.close()


BACKEND = Backend()


def build_app(
    *,
    seed: int = 1,
    clock: ManualClock | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
    **settings: Any,
) -> SandbankApp:
    """A simulator on a manual clock, in memory (or on the test's backend, `BACKEND`);
    `webhook_transport` receives its webhooks."""
    db = BACKEND.fresh_db() if BACKEND.fresh_db is not None else ":memory:"
    app = create_app(
        Settings(db=db, admin_token=ADMIN_TOKEN, seed=seed, public_url=BASE_URL, **settings),
        wall_clock=clock or ManualClock(START),
        entropy=deterministic_entropy(),
        webhook_transport=webhook_transport,
    )
    if BACKEND.fresh_db is not None:
        BACKEND.built.append(app)
    return app


def file_app(tmp_path: Path, clock: ManualClock, lock_wait_s: float) -> SandbankApp:
    """A simulator on a database file of its own, `tmp_path / "sandbank.db"` (so that another
    connection can take its write lock), waiting at most `lock_wait_s` for that lock."""
    settings = Settings(
        db=str(tmp_path / "sandbank.db"),
        data_dir=tmp_path,
        admin_token=ADMIN_TOKEN,
        seed=1,
        public_url=BASE_URL,
        store_lock_wait_s=lock_wait_s,
    )
    return create_app(settings, wall_clock=clock, entropy=deterministic_entropy())


# --- payloads ---------------------------------------------------------------------------------
def business(tag: str | None = "approve", **overrides: Any) -> dict[str, Any]:
    """A buyer body; `tag` becomes the email sub-address magic value (None: scored)."""
    local = f"ap+{tag}" if tag else "ap"
    body: dict[str, Any] = {
        "legal_name": "Acme Supply Co",
        "email": f"{local}@acme.test",
        "annual_revenue": 250_000_000,
        "years_in_business": 8,
    }
    body.update(overrides)
    return body


def checkout_body(
    amount: int = 125_000, *, tag: str | None = "approve", **overrides: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "amount": amount,
        "merchant_order_id": "SO-1001",
        "buyer": business(tag),
        "line_items": [{"name": "Pallet of widgets", "quantity": 2, "unit_amount": 62_500}],
        "return_url": "https://shop.test/return",
        "cancel_url": "https://shop.test/cancel",
    }
    body.update(overrides)
    return body


# --- the harness --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Account:
    id: str
    api_key: str
    seed: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Api:
    """A synchronous facade over an in-process app. Each call is one real ASGI request."""

    def __init__(self, app: SandbankApp, clock: ManualClock) -> None:
        self.app = app
        self.clock = clock
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE_URL, follow_redirects=False
        )

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)

    # --- control plane ------------------------------------------------------------------
    def new_account(self, seed: int = 7, **settings: Any) -> Account:
        body: dict[str, Any] = {"name": f"test-{seed}", "seed": seed}
        if settings:
            body["settings"] = settings
        r = self.post("/_sandbox/accounts", headers=ADMIN, json=body)
        assert r.status_code == 201, r.text
        data = r.json()
        return Account(data["id"], data["api_key"], data["seed"])

    def advance(self, account: Account, by: str) -> httpx.Response:
        r = self.post(
            f"/_sandbox/accounts/{account.id}/clock/advance", headers=ADMIN, json={"by": by}
        )
        assert r.status_code == 200, r.text
        return r

    def approve(self, checkout_id: str, terms: str = "net30") -> dict[str, Any]:
        r = self.post(
            f"/_sandbox/checkouts/{checkout_id}/approve", headers=ADMIN, json={"terms": terms}
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    # --- provider API shortcuts -------------------------------------------------------------
    def checkout(self, account: Account, amount: int = 125_000, **kw: Any) -> dict[str, Any]:
        r = self.post("/v1/checkouts", headers=account.headers, json=checkout_body(amount, **kw))
        assert r.status_code == 201, r.text
        return dict(r.json())

    def approved_order(
        self, account: Account, amount: int = 125_000, terms: str = "net30", **kw: Any
    ) -> dict[str, Any]:
        """Checkout -> buyer approves with `terms` -> the authorized order."""
        chk = self.checkout(account, amount, **kw)
        done = self.approve(chk["id"], terms)
        assert done["status"] == "completed", done
        return self.order(account, done["order_id"])

    def order(self, account: Account, order_id: str) -> dict[str, Any]:
        r = self.get(f"/v1/orders/{order_id}", headers=account.headers)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def buyer(self, account: Account, buyer_id: str) -> dict[str, Any]:
        r = self.get(f"/v1/buyers/{buyer_id}", headers=account.headers)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def events(self, account: Account) -> list[dict[str, Any]]:
        """Every event of the account, oldest first (walks the pages)."""
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            page = self.get("/v1/events", headers=account.headers, params=params).json()
            out.extend(page["data"])
            if not page["has_more"]:
                return out[::-1]
            cursor = page["next_cursor"]

    def walk(self, url: str, account: Account, **params: Any) -> Iterator[list[dict[str, Any]]]:
        """Yield each page of a list endpoint until has_more is false."""
        return self.pages(url, account.headers, **params)

    def pages(
        self, url: str, headers: dict[str, str], **params: Any
    ) -> Iterator[list[dict[str, Any]]]:
        """`walk` with any credentials (the control plane's too); at most 1,000 pages, none
        longer than `limit` when given."""
        cursor: str | None = None
        for _ in range(1_000):
            query = {**params, **({"cursor": cursor} if cursor else {})}
            r = self.get(url, headers=headers, params=query)
            assert r.status_code == 200, r.text
            page = r.json()
            assert page["object"] == "list"
            assert len(page["data"]) <= int(params.get("limit", len(page["data"])))
            yield page["data"]
            if not page["has_more"]:
                assert page["next_cursor"] is None
                return
            cursor = page["next_cursor"]
        raise AssertionError(f"{url} never ended")

    def every(self, url: str, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
        """Every item of a list endpoint, page by page."""
        return [item for page in self.pages(url, headers, **params) for item in page]


# --- Hypothesis strategies ----------------------------------------------------------------
currencies = st.sampled_from(sorted(CURRENCIES))
not_currencies = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3).filter(
    lambda c: c not in CURRENCIES
)
amounts = st.integers(min_value=-(10**15), max_value=10**15)
terms = st.sampled_from(TERMS)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=15,
)


def near_valid(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects that look like `base` with some fields dropped, replaced by junk, or added."""
    keys = sorted(base)
    return st.builds(
        lambda drop, junk, extra: {
            **{k: v for k, v in base.items() if k not in drop},
            **junk,
            **extra,
        },
        st.sets(st.sampled_from(keys)),
        st.dictionaries(st.sampled_from(keys), json_values, max_size=3),
        st.dictionaries(st.text(max_size=8), json_values, max_size=2),
    )


# Order operations for the state-machine style property test: (kind, amount-or-None).
order_ops = st.lists(
    st.one_of(
        st.tuples(st.just("capture"), st.integers(min_value=-5, max_value=1_200) | st.none()),
        st.tuples(st.just("capture_final"), st.integers(min_value=1, max_value=1_200)),
        st.tuples(st.just("refund"), st.integers(min_value=-5, max_value=1_200) | st.none()),
        st.tuples(st.just("cancel"), st.none()),
        st.tuples(st.just("expire"), st.none()),
        st.tuples(st.just("update"), st.integers(min_value=1, max_value=1_500)),
        st.tuples(st.just("review"), st.sampled_from([0, 1])),
    ),
    max_size=12,
)


def journal_entry(n: int = 1, **fields: Any) -> Entry:
    """A request journal entry: a GET of checkout `n` that answered 200 (`fields` override)."""
    values: dict[str, Any] = {
        "seq": 0,
        "at": START,
        "request_id": f"req_{n}",
        "account": "acct_a",
        "method": "GET",
        "path": f"/v1/checkouts/chk_{n}",
        "operation": "getCheckout",
        "status": 200,
        "latency_ms": 1.0,
        "idempotency_key": None,
        "attempt": None,
        "replayed": False,
        "fault": None,
    }
    return Entry(**{**values, **fields})
