"""End to end, issue #16 item 4: the shared-sandbox deployment of deploy/compose.shared.yaml,
run without Docker. The load balancer is a real nginx running the very `deploy/nginx.shared.conf`
the compose file mounts (only its upstream host names and listen address are rewritten to
loopback ports), in front of two `sandbank serve` replicas on one throwaway PostgreSQL database.

What a client of the compose deployment relies on, checked through the balancer: both replicas
answer, the requests of one client form one server's history, a POST retried with its
Idempotency-Key after a 502 runs once, and kill -9 of one replica leaves the other serving every
request (nginx skips the dead one) with no acknowledged write lost.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e_servers import Server, StartServer, starting
from processes import descendants, wait_for
from prometheus_client.parser import text_string_to_metric_families
from throwaway_pg import ThrowawayPostgres

from rehearsal.processes import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "deploy" / "nginx.shared.conf"
ADMIN = "sbadm_e2e_deploy"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


def nginx_bin() -> str | None:
    """`make nginx`'s unpacked binary, else one on the machine."""
    unpacked = ROOT / ".venv" / "nginx" / "usr" / "sbin" / "nginx"
    if unpacked.is_file():
        return str(unpacked)
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).is_file()), None
    )


def local_site(text: str, lb_port: int, replica_ports: list[int]) -> str:
    """The compose file's site with loopback addresses: `sandbank-N:8080` -> 127.0.0.1:port N,
    `listen 80` -> 127.0.0.1:lb_port. Everything else is the file as shipped."""
    upstreams = re.findall(r"server (sandbank-\d+):8080", text)
    assert len(upstreams) == len(replica_ports), upstreams
    for name, port in zip(upstreams, replica_ports, strict=True):
        text = text.replace(f"{name}:8080", f"127.0.0.1:{port}")
    text, n = re.subn(r"listen 80;", f"listen 127.0.0.1:{lb_port};", text)
    assert n == 1
    return text


class Nginx:
    """nginx in the foreground with every path under `root`; stopped by its pid."""

    def __init__(self, binary: str, root: Path, site: str, port: int) -> None:
        self.root, self.port = root, port
        for sub in ("logs", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "site.conf").write_text(site)
        tmp = root / "tmp"
        (root / "nginx.conf").write_text(
            "daemon off;\nworker_processes 1;\n"
            f"pid {root}/nginx.pid;\nerror_log {root}/logs/error.log warn;\n"
            "events { worker_connections 256; }\n"
            "http {\n  access_log off;\n"
            f"  client_body_temp_path {tmp}/body;\n  proxy_temp_path {tmp}/proxy;\n"
            f"  fastcgi_temp_path {tmp}/fcgi;\n  uwsgi_temp_path {tmp}/uwsgi;\n"
            f"  scgi_temp_path {tmp}/scgi;\n  include {root}/site.conf;\n}}\n"
        )
        self.proc = subprocess.Popen(
            [binary, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "err")],
            stdout=subprocess.DEVNULL,
            stderr=(root / "logs" / "stderr.log").open("wb"),
        )
        self.url = f"http://127.0.0.1:{port}"
        ok = wait_for(self._answers, 15)
        assert ok, (root / "logs" / "stderr.log").read_text() + self.errors()

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"nginx exited: {(self.root / 'logs' / 'stderr.log').read_text()}")
        try:
            return httpx.get(f"{self.url}/_sandbox/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def errors(self) -> str:
        log = self.root / "logs" / "error.log"
        return log.read_text() if log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, pg_server: ThrowawayPostgres
) -> Iterator[tuple[Nginx, Server, Server]]:
    binary = nginx_bin()
    if binary is None:
        pytest.skip("nginx is not installed (`make nginx` unpacks Debian's)")
    url = pg_server.fresh_url("deploy")
    args = ("--db", url, "--admin-token", ADMIN, "--no-demo")
    tmp = tmp_path_factory.mktemp("deploy")
    start: StartServer
    for start in starting(tmp):
        a = start(tmp / "a", free_port(), *args)
        b = start(tmp / "b", free_port(), *args)
        port = free_port()
        lb = Nginx(
            binary, tmp / "nginx", local_site(SITE.read_text(), port, [a.port, b.port]), port
        )
        try:
            yield lb, a, b
        finally:
            lb.stop()


def _answered(server: Server, operation: str) -> int:
    """How many `operation` requests this replica answered (its own /metrics)."""
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    return sum(
        int(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "sandbank_requests_total" and sample.labels.get("operation") == operation
    )


def _buyer(n: int) -> dict[str, str]:
    return {"legal_name": f"Buyer {n} LLC", "email": f"ap+approve{n}@buyer.test"}


@pytest.fixture(scope="module")
def api(deployment: tuple[Nginx, Server, Server]) -> Iterator[httpx.Client]:
    """A client of a new account, through the balancer only."""
    lb = deployment[0]
    r = httpx.post(f"{lb.url}/_sandbox/accounts", json={"name": "deploy"}, headers=AUTH)
    assert r.status_code == 201, r.text
    headers = {"Authorization": f"Bearer {r.json()['api_key']}"}
    with httpx.Client(base_url=lb.url, headers=headers, timeout=10.0) as client:
        yield client


def test_the_balancer_spreads_requests_over_both_replicas_which_answer_as_one_server(
    deployment: tuple[Nginx, Server, Server], api: httpx.Client
) -> None:
    _lb, a, b = deployment
    made = []
    for n in range(20):
        r = api.post("/v1/buyers", json=_buyer(n))
        assert r.status_code == 201, r.text
        made.append(r.json()["id"])
    for buyer in made:  # each read lands on either replica; every write is there
        assert api.get(f"/v1/buyers/{buyer}").status_code == 200
    assert _answered(a, "createBuyer") > 0
    assert _answered(b, "createBuyer") > 0
    assert _answered(a, "getBuyer") + _answered(b, "getBuyer") == len(made)


def test_a_post_retried_with_its_idempotency_key_through_the_balancer_runs_once(
    api: httpx.Client,
) -> None:
    key = {"Idempotency-Key": "deploy-retry-1"}
    answers = [api.post("/v1/buyers", json=_buyer(99), headers=key) for _ in range(4)]
    assert {r.status_code for r in answers} == {201}
    assert len({r.json()["id"] for r in answers}) == 1
    assert [r.headers.get("idempotent-replayed") for r in answers[1:]] == ["true"] * 3


def test_kill_9_of_one_replica_leaves_the_balancer_serving_with_no_acknowledged_write_lost(
    deployment: tuple[Nginx, Server, Server], api: httpx.Client
) -> None:
    """Three writers through the balancer (bounded: 300 writes or 20 s), each retrying a failed
    write with its Idempotency-Key as a client should; the first replica's process tree is
    killed with SIGKILL midway. Every write is acknowledged in the end, exactly once, and nginx
    sends the rest to the survivor."""
    lb, victim, survivor = deployment
    acknowledged: dict[str, str] = {}
    retried = Counter[str]()
    lock = threading.Lock()
    deadline = time.monotonic() + 20
    counter = iter(range(300))

    def writer() -> None:
        for n in counter:
            key = f"deploy-kill-{n}"
            for _attempt in range(20):
                if time.monotonic() > deadline + 20:
                    return
                try:
                    r = api.post("/v1/buyers", json=_buyer(n), headers={"Idempotency-Key": key})
                except httpx.TransportError as exc:
                    with lock:
                        retried[type(exc).__name__] += 1
                    continue
                if r.status_code == 201:
                    with lock:
                        acknowledged[key] = r.json()["id"]
                    break
                with lock:
                    retried[str(r.status_code)] += 1
                time.sleep(0.05)
            if time.monotonic() > deadline:
                return

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for t in threads:
        t.start()
    assert wait_for(lambda: len(acknowledged) >= 40, 15), retried
    for pid in [victim.proc.pid, *descendants(victim.proc.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    victim.proc.wait(10)
    killed_at = len(acknowledged)
    for t in threads:
        t.join(60)
    assert len(acknowledged) > killed_at, "no write was acknowledged after the kill"
    ids = list(acknowledged.values())
    assert len(set(ids)) == len(ids)  # no key made two buyers
    stored = set()
    cursor = None
    for _ in range(100):
        params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/buyers", params=params).json()
        stored |= {b["id"] for b in page["data"]}
        cursor = page.get("next_cursor")
        if not page.get("has_more"):
            break
    assert set(ids) <= stored, sorted(set(ids) - stored)[:5]
    for _ in range(10):  # after the kill, every request is served by the survivor
        assert api.get("/v1/buyers", params={"limit": "1"}).status_code == 200
    assert survivor.alive
    assert lb.proc.poll() is None
