"""The console in-process: off without a configured token, sign-in, CSRF and origin checks on
every form, secrets masked, each page rendering what the services hold, and actions going
through the same services as the control plane. (In a real browser:
tests/e2e/test_console_browser.py.)"""

from __future__ import annotations

import asyncio
import html
import re
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from factories import (
    ADMIN,
    ADMIN_TOKEN,
    BASE_URL,
    START,
    Account,
    Api,
    build_app,
    deterministic_entropy,
    file_app,
)

from rehearsal.result import RunResult, ScenarioInfo
from simulator.app import create_app
from simulator.clock import ManualClock
from simulator.console import live
from simulator.faults.journal import Entry, Journal
from simulator.settings import Settings
from simulator.store.sqlite import SqliteStore

C = "/_sandbox/console"
CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


class Browser:
    """Cookies and forms the way a browser does them, over the in-process app."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.cookies: dict[str, str] = {}

    def _keep(self, r: httpx.Response) -> httpx.Response:
        for header in r.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            value = rest.split(";", 1)[0].strip('"')
            if "Max-Age=0" in header or "expires=Thu, 01 Jan 1970" in header:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return r

    def _headers(self) -> dict[str, str]:
        return {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}

    def get(self, path: str) -> httpx.Response:
        return self._keep(self.api.get(path, headers=self._headers()))

    def post(self, path: str, form: dict[str, str], **headers: str) -> httpx.Response:
        return self._keep(
            self.api.post(
                path,
                data=form,
                headers={**self._headers(), "origin": "http://sandbank.test", **headers},
            )
        )

    def csrf(self, path: str = f"{C}/accounts") -> str:
        found = CSRF.search(self.get(path).text)
        assert found is not None
        return found.group(1)

    def submit(self, action: str, **fields: str) -> httpx.Response:
        form = {"csrf": self.csrf(), "back": f"{C}/accounts", **fields}
        r = self.post(action, form)
        assert r.status_code == 303, r.text
        return r

    def flash(self, path: str = f"{C}/accounts") -> str:
        found = re.search(r'<p class="flash (\w+)" role="status">([^<]*)</p>', self.get(path).text)
        assert found is not None, "no message shown"
        return f"{found.group(1)}: {html.unescape(found.group(2))}"

    def login(self, token: str = ADMIN_TOKEN) -> httpx.Response:
        page = self.get(f"{C}/login")
        found = CSRF.search(page.text)
        assert found is not None
        return self.post(f"{C}/login", {"csrf": found.group(1), "token": token})


@pytest.fixture
def browser(api: Api) -> Browser:
    b = Browser(api)
    assert b.login().headers["location"] == f"{C}/"
    return b


def test_the_console_is_off_when_no_admin_token_was_configured(clock: ManualClock) -> None:
    settings = Settings(db=":memory:", seed=1, public_url=BASE_URL)  # the token is generated
    api = Api(create_app(settings, wall_clock=clock, entropy=deterministic_entropy()), clock)
    try:
        r = api.get(f"{C}/")
        assert r.status_code == 404
        assert "--admin-token" in r.text
        assert api.get(f"{C}/login").status_code == 404
        token = api.app.runtime.admin_token
        assert api.get(f"{C}/", headers={"authorization": f"Bearer {token}"}).status_code == 404
    finally:
        api.close()


def test_pages_need_a_session_and_send_the_visitor_to_the_login_form(api: Api) -> None:
    for page in ("", "accounts", "faults", "traffic", "traffic/stream", "webhooks", "charts.json"):
        r = api.get(f"{C}/{page}")
        assert r.status_code == 303
        assert r.headers["location"] == f"{C}/login"


def test_a_wrong_token_does_not_sign_in(api: Api) -> None:
    b = Browser(api)
    r = b.login("sbadm_wrong")
    assert r.headers["location"] == f"{C}/login"
    assert "sandbank_console" not in b.cookies
    assert "not the admin token" in b.get(f"{C}/login").text


def test_the_session_cookie_is_httponly_strict_and_never_the_token(api: Api) -> None:
    b = Browser(api)
    r = b.login()
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("sandbank_console="))
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Path=/_sandbox/console" in cookie
    assert ADMIN_TOKEN not in cookie


def test_signing_out_forgets_the_session(browser: Browser) -> None:
    r = browser.post(f"{C}/logout", {"csrf": browser.csrf(), "back": f"{C}/accounts"})
    assert r.headers["location"] == f"{C}/login"
    assert "sandbank_console" not in browser.cookies
    assert browser.get(f"{C}/accounts").status_code == 303


def test_a_forged_session_cookie_is_refused(api: Api) -> None:
    b = Browser(api)
    b.cookies["sandbank_console"] = "1772355600.00ff.deadbeef"
    assert b.get(f"{C}/accounts").status_code == 303


def test_a_session_expires_after_twelve_hours_of_wall_clock(
    browser: Browser, clock: ManualClock
) -> None:
    assert browser.get(f"{C}/accounts").status_code == 200
    clock.advance(timedelta(hours=12, seconds=1))
    assert browser.get(f"{C}/accounts").status_code == 303


def test_a_form_without_the_csrf_token_is_refused_and_changes_nothing(browser: Browser) -> None:
    before = len(browser.api.get("/_sandbox/accounts", headers=ADMIN).json()["data"])
    r = browser.post(f"{C}/accounts", {"name": "forged"})
    assert r.status_code == 403
    r = browser.post(f"{C}/accounts", {"name": "forged", "csrf": "0" * 64})
    assert r.status_code == 403
    assert len(browser.api.get("/_sandbox/accounts", headers=ADMIN).json()["data"]) == before


def test_a_form_posted_from_another_site_is_refused(browser: Browser) -> None:
    token = browser.csrf()
    r = browser.post(f"{C}/accounts", {"csrf": token}, origin="https://evil.test")
    assert r.status_code == 403
    r = browser.post(f"{C}/accounts", {"csrf": token}, **{"sec-fetch-site": "cross-site"})
    assert r.status_code == 403


def test_the_login_form_has_its_own_csrf_token(api: Api) -> None:
    b = Browser(api)
    b.get(f"{C}/login")
    r = b.post(f"{C}/login", {"csrf": "0" * 64, "token": ADMIN_TOKEN})
    assert r.status_code == 403


def test_pages_forbid_every_script_and_style_but_their_own(browser: Browser) -> None:
    r = browser.get(f"{C}/")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "default-src 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in r.text  # no inline script: the policy would block it anyway
    assert browser.get(f"{C}/static/console.js").status_code == 200
    assert browser.get(f"{C}/static/console.css").status_code == 200


def test_api_keys_and_webhook_secrets_are_shown_masked(browser: Browser, account: Account) -> None:
    r = browser.api.post(
        "/v1/webhook_endpoints",
        headers=account.headers,
        json={"url": "http://127.0.0.1:9/hook"},
    )
    secret = r.json()["secret"]
    accounts = browser.get(f"{C}/accounts").text
    assert account.api_key not in accounts
    assert "…" + account.api_key[-4:] in accounts
    hooks = browser.get(f"{C}/webhooks?account={account.id}").text
    assert secret not in hooks
    assert "whsec_…" + secret[-4:] in hooks
    assert ADMIN_TOKEN not in accounts + hooks


def test_creating_an_account_from_the_form_goes_through_the_accounts_service(
    browser: Browser,
) -> None:
    browser.submit(f"{C}/accounts", name="from-console", seed="11")
    found = [
        a
        for a in browser.api.get("/_sandbox/accounts", headers=ADMIN).json()["data"]
        if a["name"] == "from-console"
    ]
    assert [a["seed"] for a in found] == [11]
    assert browser.flash().startswith(f"ok: created {found[0]['id']}")


def test_advancing_a_clock_from_the_form_moves_the_account_clock(
    browser: Browser, account: Account
) -> None:
    browser.submit(f"{C}/accounts/{account.id}/clock/advance", by="1h30m")
    clock = browser.api.get(f"/_sandbox/accounts/{account.id}/clock", headers=ADMIN).json()
    assert clock["now"] == "2026-03-01T10:30:00Z"
    assert "advanced by 1h30m" in browser.flash()


def test_a_bad_duration_is_a_message_on_the_page_not_an_error_page(
    browser: Browser, account: Account
) -> None:
    browser.submit(f"{C}/accounts/{account.id}/clock/advance", by="soon")
    assert browser.flash().startswith("error: ")


def test_freeze_seed_and_reset_from_the_forms(browser: Browser, account: Account) -> None:
    browser.submit(f"{C}/accounts/{account.id}/clock/freeze")
    assert browser.api.get(f"/_sandbox/accounts/{account.id}/clock", headers=ADMIN).json()["frozen"]
    browser.submit(f"{C}/accounts/{account.id}/seed", seed="99")
    assert browser.api.get(f"/_sandbox/accounts/{account.id}", headers=ADMIN).json()["seed"] == 99
    browser.api.checkout(account)
    browser.submit(f"{C}/accounts/{account.id}/reset")
    assert browser.api.get("/v1/buyers", headers=account.headers).json()["data"] == []
    browser.submit(f"{C}/accounts/{account.id}/seed", seed="-1")
    assert browser.flash().startswith("error: seed")


def test_an_outage_from_the_form_answers_503_until_it_is_cleared(
    browser: Browser, account: Account
) -> None:
    browser.submit(f"{C}/faults/outage", account=account.id, duration="10m")
    r = browser.api.get("/v1/buyers", headers=account.headers)
    assert r.status_code == 503
    rules = browser.get(f"{C}/faults").text
    assert "total-outage" in rules
    assert re.search(r'<td class="fired">1</td>', rules)
    browser.submit(f"{C}/faults/clear")
    assert browser.api.get("/v1/buyers", headers=account.headers).status_code == 200


def test_a_rule_from_the_form_and_one_as_json(browser: Browser, account: Account) -> None:
    browser.submit(
        f"{C}/faults/rules",
        account=account.id,
        operation="listBuyers",
        effect="status",
        status="502",
        probability="1",
        phase="before",
    )
    assert browser.api.get("/v1/buyers", headers=account.headers).status_code == 502
    browser.submit(f"{C}/faults/clear")
    browser.submit(
        f"{C}/faults/rules",
        json='{"match": {"operation": "listBuyers"}, "effect": {"type": "status", "status": 429}}',
    )
    assert browser.api.get("/v1/buyers", headers=account.headers).status_code == 429
    browser.submit(f"{C}/faults/rules", operation="noSuchOperation", effect="status")
    assert "noSuchOperation" in browser.flash()
    browser.submit(f"{C}/faults/rules", json="{not json")
    assert browser.flash() == "error: the rule is not valid JSON"


def test_a_preset_from_the_form_and_deleting_its_rule(browser: Browser, account: Account) -> None:
    browser.submit(f"{C}/faults/presets", preset="rate-limited", account=account.id)
    rules = browser.api.get("/_sandbox/faults", headers=ADMIN).json()["data"]
    assert [r["preset"] for r in rules] == ["rate-limited"]
    browser.submit(f"{C}/faults/{rules[0]['id']}/delete")
    assert browser.api.get("/_sandbox/faults", headers=ADMIN).json()["data"] == []
    browser.submit(f"{C}/faults/presets", preset="no-such-preset")
    assert browser.flash().startswith("error: ")


def test_the_webhooks_page_shows_deliveries_and_replays_an_event(
    browser: Browser, account: Account
) -> None:
    browser.api.post(
        "/v1/webhook_endpoints", headers=account.headers, json={"url": "http://127.0.0.1:9/h"}
    )
    browser.api.checkout(account)
    browser.submit(f"{C}/webhooks/flush", account=account.id)
    page = browser.get(f"{C}/webhooks?account={account.id}").text
    events = re.findall(r'data-event="(evt_[^"]+)"', page)
    assert len(events) == len(set(events)) > 0  # one delivery each, attempted
    assert 'class="attempts">1<' in page
    browser.submit(f"{C}/webhooks/events/{events[0]}/replay")
    page = browser.get(f"{C}/webhooks?account={account.id}").text
    assert len(re.findall(f'data-event="{events[0]}"', page)) == 2


def test_the_money_and_scenarios_pages_render_empty(browser: Browser, account: Account) -> None:
    assert "No settlements yet" in browser.get(f"{C}/money?account={account.id}").text
    assert "No runs yet" in browser.get(f"{C}/scenarios").text


def test_the_scenarios_page_lists_reports_and_serves_them_sandboxed(
    clock: ManualClock, tmp_path: Path
) -> None:
    run = tmp_path / "provider-outage-20260301"
    run.mkdir()
    (run / "report.json").write_text(_report_json())
    (run / "report.html").write_text("<h1>report</h1>")
    (tmp_path / "still-running").mkdir()
    api = Api(build_app(clock=clock, reports_dir=tmp_path), clock)
    try:
        b = Browser(api)
        b.login()
        page = b.get(f"{C}/scenarios").text
        assert "Provider outage" in page
        assert "in progress" in page
        r = b.get(f"{C}/scenarios/provider-outage-20260301/report.html")
        assert r.text == "<h1>report</h1>"
        assert r.headers["content-security-policy"].startswith("sandbox")
        assert b.get(f"{C}/scenarios/..%2F..%2Fetc/report.html").status_code == 404
        assert b.get(f"{C}/scenarios/still-running/report.html").status_code == 404
    finally:
        api.close()


def test_the_journal_streams_as_server_sent_events_filtered(
    browser: Browser, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "STREAM_S", 0.0)  # the backfill only, then the stream ends
    browser.api.get("/v1/buyers", headers=account.headers)
    browser.api.post("/v1/checkouts", headers=account.headers, json={})
    events = _read_stream(browser, "status=4xx")
    assert [e["operation"] for e in events] == ["createCheckout"]
    assert events[0]["status"] == 422
    assert [e["operation"] for e in _read_stream(browser, "operation=listBuyers")] == ["listBuyers"]
    after = events[0]["seq"]
    assert _read_stream(browser, f"after={after}") == []


def test_a_stream_sends_entries_as_they_are_recorded_and_forgets_its_queue_when_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live, "BATCH_S", 0.0)
    journal = Journal(10)
    hub = live.Live(journal)
    journal.listeners.append(hub.publish)

    async def scenario() -> list[bytes]:
        stream = hub.stream(live.LiveFilter(status="5xx"), 0)
        got = [await anext(stream)]  # the retry line; the queue is open from here on
        for status in (200, 503, 500):
            journal.record(_entry(journal, status))
        got.append(await anext(stream))
        await stream.aclose()
        return got

    retry, event = asyncio.run(scenario())
    assert retry.startswith(b"retry: ")
    assert event.startswith(b"id: 3\ndata: ")
    assert [e["status"] for e in orjson.loads(event.split(b"data: ")[1])] == [503, 500]
    assert hub._queues == []


def test_a_stream_that_falls_behind_drops_entries_and_says_how_many(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live, "BATCH_S", 0.0)
    monkeypatch.setattr(live, "QUEUE_SIZE", 2)
    journal = Journal(10, SqliteStore(":memory:"))  # the backfill reads the stored journal
    hub = live.Live(journal)
    journal.listeners.append(hub.publish)

    async def scenario() -> list[bytes]:
        stream = hub.stream(live.LiveFilter(), 0)
        await anext(stream)
        for _ in range(5):  # in the journal (the backfill), and in the queue: 2 kept, 3 dropped
            journal.record(_entry(journal, 200))
        got = [await anext(stream), await anext(stream)]
        journal.record(_entry(journal, 201))
        got.append(await anext(stream))
        await stream.aclose()
        return got

    backfill, dropped, new = asyncio.run(scenario())
    assert [e["seq"] for e in orjson.loads(backfill.split(b"data: ")[1])] == [1, 2, 3, 4, 5]
    assert dropped == b"event: dropped\ndata: 3\n\n"
    assert [e["seq"] for e in orjson.loads(new.split(b"data: ")[1])] == [6]  # none twice


def _entry(journal: Journal, status: int) -> Entry:
    """A request's entry, stored as the fault middleware stores it when there is a store."""
    entry = Entry(
        seq=journal.next_seq(),
        at=START,
        request_id="req_1",
        account="acct_1",
        method="GET",
        path="/v1/checkouts",
        operation="listBuyers",
        status=status,
        latency_ms=1.0,
        idempotency_key=None,
        attempt=None,
        replayed=False,
        fault=None,
    )
    if journal.store is not None:
        with journal.store.transaction() as tx:
            journal.write(tx, entry)
    return entry


def _read_stream(browser: Browser, query: str) -> list[dict[str, Any]]:
    r = browser.get(f"{C}/traffic/stream?{query}")
    assert r.headers["content-type"].startswith("text/event-stream")
    return [
        entry
        for line in r.text.splitlines()
        if line.startswith("data: ")
        for entry in orjson.loads(line[len("data: ") :])
    ]


def _report_json() -> str:
    return RunResult(
        scenario=ScenarioInfo(
            name="provider-outage",
            title="Provider outage",
            failure_mode="provider down",
            runbook="docs/runbooks/provider-outage.md",
            file="scenarios/provider-outage.yaml",
            definition={},
        ),
        seed=1,
        speed=60.0,
        status="passed",
        exit_code=0,
        started_at=START.isoformat(),
        duration_s=12.5,
        simulated_s=900.0,
    ).model_dump_json()


def test_a_form_waits_for_a_write_lock_another_process_holds_briefly(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Another process (the webhook dispatcher, a second worker) holding the write lock for a
    moment delays a form's action; it is not the 503 "busy" message."""
    api = Api(file_app(tmp_path, clock, lock_wait_s=5.0), clock)
    account = api.new_account()
    browser = Browser(api)
    browser.login()
    other = sqlite3.connect(tmp_path / "sandbank.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, lambda: other.execute("ROLLBACK"))
    release.start()
    try:
        browser.submit(f"{C}/faults/presets", preset="total-outage", account=account.id)
    finally:
        release.join()
        other.close()
    assert f"total-outage on {account.id}" in browser.flash()
    rules = api.get("/_sandbox/faults", headers=ADMIN).json()["data"]
    assert [r["preset"] for r in rules] == ["total-outage"]


def test_pages_that_only_read_answer_while_another_process_holds_the_write_lock(
    tmp_path: Path, clock: ManualClock
) -> None:
    """The webhook dispatcher retakes the write lock as soon as it is free while it delivers;
    every page reads a snapshot, so they all answer meanwhile (CI's browser test
    once found the webhooks page without its form: a 503 after losing every race for it)."""
    api = Api(file_app(tmp_path, clock, lock_wait_s=0.2), clock)
    account = api.new_account()
    browser = Browser(api)
    browser.login()
    other = sqlite3.connect(tmp_path / "sandbank.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    try:
        pages = {
            page: browser.get(f"{C}/{page}?account={account.id}")
            for page in ("", "accounts", "faults", "traffic", "webhooks", "money", "scenarios")
        }
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert {page: r.status_code for page, r in pages.items()} == dict.fromkeys(pages, 200)
    hooks, money = pages["webhooks"], pages["money"]
    assert 'id="flush"' in hooks.text
    assert "No settlements yet" in money.text
