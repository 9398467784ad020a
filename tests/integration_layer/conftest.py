"""Fixtures of the integration-layer tests: `new_shop` builds the order-to-cash service
(`shop_harness.Shop`) on this test's in-process simulator and account, and closes it after."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from factories import Account, Api
from shop_harness import Shop

from simulator.app import SandbankApp


@pytest.fixture
def new_shop(
    api: Api, app: SandbankApp, account: Account, tmp_path: Path
) -> Iterator[Callable[..., Any]]:
    """`new_shop(kind=Shop, db=None, **options)`: a service (a `Shop`, or the subclass `kind`)
    on the database file `db` (None: a new one of its own; another shop's `db`: a restart);
    `options` are `Shop`'s (wall clock, keys, retry, breakers, inbox, webhook secrets)."""
    shops: list[Shop] = []

    def make(kind: type[Shop] = Shop, db: Path | None = None, **options: Any) -> Any:
        shop = kind(api, app, account, db or tmp_path / f"integration-{len(shops)}.db", **options)
        shops.append(shop)
        return shop

    yield make
    for shop in shops:
        shop.close()
