"""The pytest plugin, as an integrator meets it: tests in a bare directory (no conftest), run
by pytester against this session's simulator (`--sandbank-url`) so no inner run starts one."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from sandbank_pytest import SandbankAccount, SandbankServer

pytest_plugins = ["pytester"]
Run = Callable[..., pytest.RunResult]

CHECKOUT = """
CHECKOUT = {
    "amount": 10000, "currency": "USD",
    "buyer": {"legal_name": "Acme", "email": "ap+approve@acme.test",
              "annual_revenue": 250000000, "years_in_business": 8},
    "line_items": [{"name": "Widget", "quantity": 1, "unit_amount": 10000}],
    "return_url": "https://shop.example/r", "cancel_url": "https://shop.example/c",
}
"""


@pytest.fixture
def run(pytester: pytest.Pytester, sandbank_server: SandbankServer) -> Run:
    def go(source: str, *args: str) -> pytest.RunResult:
        pytester.makepyfile(test_it=CHECKOUT + source)
        return pytester.runpytest(
            "-p",
            "no:cacheprovider",
            "--sandbank-url",
            sandbank_server.url,
            "--sandbank-admin-token",
            sandbank_server.admin_token,
            *args,
        )

    return go


def test_the_fixtures_come_from_the_entry_point_without_a_conftest(run: Run) -> None:
    result = run(
        """
def test_account(sandbank_account, sandbank):
    assert sandbank is sandbank_account
    assert sandbank.api_key.startswith("sk_test_")
    assert sandbank.creditkey is not None  # this server speaks the Credit Key dialect
    assert sandbank.creditkey.public_key and sandbank.creditkey.shared_secret
    r = sandbank.client.get("/v1/orders")
    assert r.status_code == 200
"""
    )
    result.assert_outcomes(passed=1)


def test_each_test_gets_its_own_account_seeded_from_its_id(run: Run) -> None:
    result = run(
        """
import zlib, pytest
ids = []
def test_a(sandbank, request):
    ids.append(sandbank.id)
    assert sandbank.seed == zlib.crc32(request.node.nodeid.encode())
@pytest.mark.sandbank(seed=7, settings={"allow_fault_header": True})
def test_b(sandbank):
    ids.append(sandbank.id)
    assert sandbank.seed == 7
def test_c():
    assert len(set(ids)) == 2
"""
    )
    result.assert_outcomes(passed=3)


def test_buyer_actions_the_clock_and_journal_assertions_work(run: Run) -> None:
    result = run(
        """
def test_flow(sandbank):
    chk = sandbank.client.post("/v1/checkouts", json=CHECKOUT).json()
    order_id = sandbank.approve(chk["id"], terms="net60")["order_id"]
    sandbank.advance("31d")
    assert sandbank.client.get(f"/v1/orders/{order_id}").json()["status"] == "expired"
    sandbank.assert_requests(operation="createCheckout", count=1)
    sandbank.assert_requests(operation="getOrder")
    other = sandbank.client.post("/v1/checkouts", json=CHECKOUT).json()
    assert sandbank.decline(other["id"])["status"] == "declined"
"""
    )
    result.assert_outcomes(passed=1)


def test_a_failed_journal_assertion_shows_what_the_client_sent(run: Run) -> None:
    result = run(
        """
def test_flow(sandbank):
    sandbank.client.get("/v1/orders")
    sandbank.assert_requests(operation="createCapture", count=1)
"""
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*expected 1 request(s) matching {'operation': 'createCapture'}, the journal has 0*",
            "*GET /v1/orders (listOrders) -> 200*",
        ]
    )


def test_a_fault_holds_inside_its_block_only(run: Run) -> None:
    result = run(
        """
def test_fault(sandbank):
    with sandbank.fault("status", status=503, retry_after_s=1, operation="listOrders") as rule:
        r = sandbank.client.get("/v1/orders")
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        assert rule["id"].startswith("flt_")
    assert sandbank.client.get("/v1/orders").status_code == 200
    with sandbank.preset("total-outage"):
        assert sandbank.client.get("/v1/orders").status_code == 503
    assert sandbank.client.get("/v1/orders").status_code == 200
    sandbank.assert_requests(faulted=True, count=2)
"""
    )
    result.assert_outcomes(passed=1)


def test_the_receiver_keeps_signed_events_and_rejects_forged_ones(run: Run) -> None:
    result = run(
        """
def test_hooks(sandbank, sandbank_webhooks):
    sandbank.client.post("/v1/checkouts", json=CHECKOUT)
    (event,) = sandbank_webhooks.wait_for("checkout.created")
    assert event["object_type"] == "checkout"
    sandbank.admin.put(
        f"/_sandbox/webhook_endpoints/{sandbank_webhooks.endpoint['id']}/quirks",
        json={"bad_signature": {"probability": 1}},
    ).raise_for_status()
    sandbank.client.post("/v1/checkouts", json=CHECKOUT)
    sandbank.flush_webhooks()
    assert len(sandbank_webhooks.received("checkout.created")) == 1
    assert sandbank_webhooks.rejected
"""
    )
    result.assert_outcomes(passed=1)


def test_a_refused_helper_call_names_the_call_and_the_detail(run: Run) -> None:
    result = run(
        """
def test_bad(sandbank):
    sandbank.advance("soon")
"""
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*SandbankError: POST /_sandbox/accounts/acct_*/clock/advance -> 4*"]
    )


def test_a_shared_server_without_an_admin_token_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SANDBANK_ADMIN_TOKEN", raising=False)
    pytester.makepyfile(test_it="def test_a(sandbank):\n    pass\n")
    result = pytester.runpytest("--sandbank-url", "http://127.0.0.1:9")
    assert "--sandbank-url needs the server's admin token" in result.stdout.str()
    result.assert_outcomes(errors=1)


def test_an_account_reads_credit_key_keys_when_the_server_has_the_dialect() -> None:
    created = {"id": "acct_1", "api_key": "sk_test_1", "seed": 1}
    with httpx.Client() as admin:
        plain = SandbankAccount("http://127.0.0.1:9", admin, created)
        ck = SandbankAccount(
            "http://127.0.0.1:9",
            admin,
            {**created, "creditkey": {"public_key": "pk_1", "shared_secret": "ss_1"}},
        )
    assert plain.creditkey is None
    assert ck.creditkey is not None
    assert (ck.creditkey.public_key, ck.creditkey.shared_secret) == ("pk_1", "ss_1")


def test_a_session_without_the_fixtures_starts_no_simulator(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_it="def test_a():\n    pass\n")
    basetemp = pytester.path / "basetemp"
    result = pytester.runpytest(f"--basetemp={basetemp}")
    result.assert_outcomes(passed=1)
    assert not list(basetemp.glob("sandbank*"))  # where a started simulator keeps its log


@pytest.mark.slow
def test_without_a_url_the_session_starts_its_own_simulator(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_it="def test_a(sandbank):\n    assert sandbank.base_url.startswith('http://127.0.0.1:')\n"
    )
    basetemp = pytester.path / "basetemp"
    result = pytester.runpytest(f"--basetemp={basetemp}")
    result.assert_outcomes(passed=1)
    assert list(basetemp.glob("sandbank*/sandbank-serve.log"))
