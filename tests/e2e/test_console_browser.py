"""The console in a real headless Chromium (Debian's `chromium`, driven by Playwright through
`executable_path`; `make browser` installs it), against `sandbank serve` on a database file
(so its webhook process and multiprocess metrics are in play too).

One journey, as an SRE rehearsing an outage does it: sign in with the token, advance a clock,
start an outage from the form and watch the live journal fill with 503s, clear it and watch it
turn back to 2xx, replay a webhook delivery, look at every page. A screenshot of each page is
saved under .artifacts/console/ (ignored by git).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_servers import Server, StartServer

from rehearsal.processes import free_port

CHROMIUM = Path(os.environ.get("SANDBANK_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts" / "console"
TOKEN = "sbadm_browser_test_token"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 10_000

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [
    pytest.mark.slow,  # ~15 s: a server, its webhook process and a browser start
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no Chromium at {CHROMIUM}: `make browser` installs Debian's chromium (needs "
        "root and apt); or point SANDBANK_CHROMIUM at one",
    ),
]


@pytest.fixture
def server(start_server: StartServer, tmp_path: Path) -> Server:
    return start_server(tmp_path / "data", free_port(), "--admin-token", TOKEN)


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh --user-data-dir
            executable_path=str(CHROMIUM),
            args=ARGS,
            headless=True,
            viewport={"width": 1400, "height": 900},
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(WAIT_MS)
            yield page
        finally:
            browser.close()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


def test_an_sre_rehearses_an_outage_in_the_console(
    server: Server, page: Any, artifacts: Path
) -> None:
    base = f"{server.url}/_sandbox/console"
    api = httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {server.banner().demo_key}"},
        timeout=10,
    )
    admin = {"Authorization": f"Bearer {TOKEN}"}
    demo = httpx.get(f"{server.url}/_sandbox/accounts", headers=admin).json()["data"][0]["id"]

    def shot(name: str) -> None:
        page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)

    def flash() -> str:
        return str(page.locator(".flash").inner_text())

    # Sign in.
    page.goto(f"{base}/")
    assert page.url.endswith("/_sandbox/console/login")
    shot("login")
    page.fill("input[name=token]", "not-the-token")
    page.click("button[type=submit]")
    assert "not the admin token" in page.locator(".flash").inner_text()
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")

    # Advance the demo account's clock by two hours.
    page.click("nav >> text=Accounts")
    row = page.locator(f"tr[data-account={demo}]")
    before = row.locator(".clock").inner_text()
    row.locator("form.advance input[name=by]").fill("2h")
    row.locator("form.advance button").click()
    page.wait_for_load_state()
    assert "advanced by 2h" in flash()
    after = page.locator(f"tr[data-account={demo}] .clock").inner_text()
    assert after > before
    shot("accounts")

    # An outage from the form: the journal fills with 503s, highlighted as faulted.
    page.click("nav >> text=Faults")
    page.select_option("#outage select[name=account]", demo)
    page.fill("#outage input[name=duration]", "10m")
    page.click("#outage button")
    page.wait_for_load_state()
    assert "total-outage on " + demo in flash()
    page.click("nav >> text=Live traffic")
    page.wait_for_selector("#stream-state:text('live')")
    for _ in range(5):
        assert api.get("/v1/buyers").status_code == 503
    rows = page.locator("#journal tbody tr.faulted[data-status='503']")
    rows.nth(4).wait_for()
    shot("traffic-outage")

    # Filtered to 2xx, the outage's rows go; after clearing, new requests come back 200.
    page.select_option("#traffic-filter select[name=status]", "2xx")
    page.wait_for_selector("#stream-state:text('live')")
    page.click("nav >> text=Faults")
    shot("faults")
    assert page.locator("#rules td.fired").first.inner_text() == "5"
    page.click("#clear-faults button")
    page.wait_for_load_state()
    assert "fault rules deleted" in flash()
    page.click("nav >> text=Live traffic")
    page.select_option("#traffic-filter select[name=status]", "2xx")
    for _ in range(3):
        assert api.get("/v1/buyers").status_code == 200
    page.locator("#journal tbody tr[data-status='200']").nth(2).wait_for()
    assert page.locator("#journal tbody tr[data-status='503']").count() == 0
    shot("traffic-recovered")

    # A webhook delivery, replayed from the console.
    hook = api.post("/v1/webhook_endpoints", json={"url": f"http://127.0.0.1:{free_port()}/h"})
    assert hook.status_code == 201, hook.text
    body = {"legal_name": "Acme", "email": "ap+approve@acme.test"}
    assert api.post("/v1/buyers", json=body).status_code == 201
    page.goto(f"{base}/webhooks?account={demo}")
    page.click("#flush button")
    page.wait_for_load_state()
    delivery = page.locator("#deliveries tbody tr[data-event]").first
    event = delivery.get_attribute("data-event")
    delivery.locator("button:text('Replay')").click()
    page.wait_for_load_state()
    assert f"{event} replayed" in flash()
    assert page.locator(f"#deliveries tbody tr[data-event={event}]").count() == 2
    shot("webhooks")

    for name in ("money", "scenarios"):
        page.click(f"nav >> text={name.capitalize()}")
        page.wait_for_selector("h1")
        shot(name)
    page.click("nav >> text=Overview")
    page.wait_for_selector("#chart-outcomes path")
    shot("overview")

    # Prometheus sees the same outage, summed over the server's processes.
    metrics = httpx.get(f"{server.url}/metrics").text
    outage = re.search(
        r'sandbank_requests_total\{fault="status",operation="listBuyers",status="503"\} (\S+)',
        metrics,
    )
    assert outage is not None, metrics
    assert float(outage.group(1)) == 5
    assert sorted(p.name for p in artifacts.glob("*.png")) == sorted(
        f"{n}.png"
        for n in (
            "login",
            "accounts",
            "traffic-outage",
            "faults",
            "traffic-recovered",
            "webhooks",
            "money",
            "scenarios",
            "overview",
        )
    )
