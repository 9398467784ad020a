"""`make bench` (contention): how long UNRELATED requests wait while the server is busy.

Issue #17 found 16 reads stalling 3-14 s right after a 2-worker start on a 22 MB database
(and 500s after ~10 s), and one account's dump, export and 90-day advance freezing every
other account's requests for 0.3-1.0 s. This measures both, on 127.0.0.1 only:

1. Build (in-process, through the service, as bench/advance.py does): one "big" account with
   N captured orders (its clock frozen at the build time, so that nothing falls due by itself),
   one "small" account with a few orders, and --accounts more empty accounts. The file is kept
   as a pristine copy; every phase below runs on a fresh copy.
2. Start: `sandbank serve --workers 2` on the copy, --starts times. As soon as health answers,
   16 concurrent reads (the small account's orders, one order, the accounts listing) are sent
   at once; reported: statuses (500s, 503s), p50 / p99 / max latency over all starts.
3. Heavy: one `sandbank serve` (one worker: a heavy operation there stalls everything of that
   process, which is what the issue saw) while a probe loop reads one order of the small
   account (4 in flight); reported: the probe's p50 / p99 / max and its statuses while idle
   (baseline), during a dump of the big account, during an export of it (created, then every
   file downloaded), and during a 90-day advance of its clock; plus the server's RSS before
   and its peak (VmHWM) during each.
4. Fan-out: on another server, a "fan" account with --endpoints (50) webhook endpoints at a
   local receiver (bench/webhook_receiver.py); --events (2,000) events written in a burst (8
   in flight), then every delivery awaited (bounded); the small account probed meanwhile, and
   first during the same burst on an account without endpoints (what the writes alone cost).

    .venv/bin/python bench/contention.py [--orders 8000] [--starts 6] [--skip-start]
        [--skip-heavy] [--skip-fanout] [--endpoints 50] [--events 2000]

Every process it starts it stops by pid (SIGTERM, then SIGKILL); every loop is bounded in
count and time; the temporary directory is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import advance  # bench/advance.py: the same build of captured orders
import harness  # bench/harness.py: the local webhook receiver
import httpx

from rehearsal import processes as servers  # the one subprocess helper

ADMIN = advance.ADMIN
READERS = 16
PROBES_IN_FLIGHT = 4
MAX_PROBES = 20_000  # per phase: bounds the probe loop in count (time is bounded by the op)
OP_TIMEOUT = 300.0  # seconds for one heavy operation


def fail(message: str) -> None:
    print(f"bench: error: {message}", file=sys.stderr)
    raise SystemExit(2)


# --- 1. build ----------------------------------------------------------------------------
def build(tmp: Path, db: Path, due_db: Path, orders: int, accounts: int) -> dict[str, Any]:
    """`db` with every clock frozen; `due_db` the same but the big account's clock running
    from the build time, so that months of its work are due when a server starts on it."""
    started = time.perf_counter()
    built = advance.build(tmp, db, orders, endpoint=False)
    app = advance._app(tmp, db)
    service = app.runtime.service
    with service.scope(built["account"]) as ctx:
        big_key = ctx.account.api_key
    small = app.runtime.accounts.create(name="small", seed=3, settings=None)
    with service.scope(small.id) as ctx:
        buyer = service.create_buyer(
            ctx, legal_name="Small Co", email="ap+approve@small.test", annual_revenue=9_000_000
        )
        checkout = service.create_checkout(
            ctx,
            amount=10_000,
            currency=None,
            buyer_id=buyer.id,
            buyer=None,
            merchant_order_id="S-1",
            line_items=[],
            return_url="https://shop.test/r",
            cancel_url="https://shop.test/c",
        )
        order_id = service.approve_checkout(ctx, checkout.id, "net30").order_id
        service.freeze_clock(ctx, True)
    for n in range(accounts):
        app.runtime.accounts.create(name=f"tenant-{n}", seed=n, settings=None)
    app.runtime.store.close()
    shutil.copyfile(db, due_db)
    app = advance._app(tmp, db)
    with app.runtime.service.scope(built["account"]) as ctx:
        app.runtime.service.freeze_clock(ctx, True)
    app.runtime.store.close()
    return {
        "big": built["account"],
        "big_key": big_key,
        "small": small.id,
        "small_key": small.api_key,
        "order": order_id,
        "orders": built["orders"],
        "bytes": db.stat().st_size,
        "seconds": time.perf_counter() - started,
    }


# --- servers ------------------------------------------------------------------------------
class Server(servers.Server):
    """`sandbank serve` on DB with the bench's seed and token, no demo account, N workers."""

    @classmethod
    def start(cls, data_dir: Path, db: Path, workers: int, log: Path) -> Server:
        extra = ["--db", str(db), "--seed", "1", "--admin-token", ADMIN, "--no-demo"]
        return cls(data_dir, servers.free_port(), log, [*extra, "--workers", str(workers)])

    def reset_peak(self) -> None:
        """Start VmHWM again from the current RSS (Linux: `5` to clear_refs), so that each
        phase reports its own peak; best effort (the peak then counts from the start)."""
        try:
            with open(f"/proc/{self.proc.pid}/clear_refs", "w") as refs:
                refs.write("5")
        except OSError:
            pass

    def memory_kb(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) of the server process."""
        found = {"VmRSS": 0, "VmHWM": 0}
        with open(f"/proc/{self.proc.pid}/status") as status:
            for row in status:
                name = row.split(":", 1)[0]
                if name in found:
                    found[name] = int(row.split()[1])
        return found["VmRSS"], found["VmHWM"]


# --- measuring ----------------------------------------------------------------------------
@dataclass
class Sample:
    """Latencies and statuses of the unrelated requests, and two counts that need no clock:
    `during`, how many answered while the heavy operation ran (between its request and its
    answer); `late`, how many were still unanswered when the heavy request answered (a stalled
    neighbour answers after it). The tests assert on these; the latencies are the figures."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    during: int = 0
    late: int = 0

    def add(self, seconds: float, status: int) -> None:
        self.latencies.append(seconds)
        self.statuses[status] += 1

    def p99(self) -> float:
        """Seconds (nearest rank); 0 without requests."""
        ranked = sorted(self.latencies)
        return ranked[min(len(ranked) - 1, int(len(ranked) * 0.99))] if ranked else 0.0

    def row(self) -> str:
        if not self.latencies:
            return "no requests"
        ms = sorted(x * 1000 for x in self.latencies)
        p99 = self.p99() * 1000
        codes = " ".join(f"{k}:{v}" for k, v in sorted(self.statuses.items()))
        return (
            f"n={len(ms):<6} p50 {statistics.median(ms):8.1f} ms  p99 {p99:8.1f} ms  "
            f"max {ms[-1]:8.1f} ms  [{codes}]"
        )


async def timed(
    client: httpx.AsyncClient,
    sample: Sample,
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
) -> None:
    started = time.perf_counter()
    try:
        r = await client.request(method, url, headers=headers)
        status = r.status_code
    except httpx.HTTPError:
        status = 0  # no answer at all
    sample.add(time.perf_counter() - started, status)


def start_phase(due_db: Path, tmp: Path, built: dict[str, Any], starts: int) -> Sample:
    """The unrelated reads' latencies (the one read of the big account, which runs its due
    work, is not counted: it is the heavy operation here)."""
    sample, heavy = Sample(), Sample()
    auth = {"Authorization": f"Bearer {built['small_key']}"}
    big = {"Authorization": f"Bearer {built['big_key']}"}
    for n in range(starts):
        db = tmp / "start.db"
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(due_db, db)
        server = Server.start(tmp, db, 2, tmp / f"start-{n}.log")
        try:
            server.wait_healthy()
            paths = [
                "/v1/orders?limit=20",
                f"/v1/orders/{built['order']}",
                "/v1/buyers?limit=5",
                "/v1/events?limit=10",
            ]

            async def burst(url: str, paths: list[str]) -> None:
                limits = httpx.Limits(max_connections=READERS)
                async with httpx.AsyncClient(
                    base_url=url, headers=auth, timeout=30, limits=limits
                ) as client:
                    due = asyncio.create_task(
                        timed(client, heavy, "GET", "/v1/orders?limit=1", big)
                    )
                    await asyncio.sleep(0.05)  # the due work has started
                    reads = [
                        asyncio.create_task(timed(client, sample, "GET", paths[i % len(paths)]))
                        for i in range(READERS - 1)
                    ]
                    await due
                    sample.late += sum(not read.done() for read in reads)
                    await asyncio.gather(*reads)

            asyncio.run(burst(server.url, paths))
        finally:
            server.stop()
        print(
            f"  start {n + 1}/{starts}: {sample.row()}; due work {heavy.row()}; "
            f"{sample.late} reads answered after it",
            flush=True,
        )
    return sample


async def probe_during(
    url: str,
    key: str,
    order: str,
    heavy: Callable[[httpx.AsyncClient], Awaitable[None]] | None,
    timeout: float = OP_TIMEOUT,
    *,
    sample: Sample | None = None,
) -> tuple[Sample, float]:
    """Probe one order of the small account while `heavy` runs (or for 2 s when None), into
    `sample` (a new one by default)."""
    sample = Sample() if sample is None else sample
    done = asyncio.Event()
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as probe,
        httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=OP_TIMEOUT
        ) as admin,
    ):

        async def prober() -> None:
            while not done.is_set() and len(sample.latencies) < MAX_PROBES:
                await timed(probe, sample, "GET", f"/v1/orders/{order}")

        probers = [asyncio.create_task(prober()) for _ in range(PROBES_IN_FLIGHT)]
        await asyncio.sleep(0.2)  # the probes are running before the heavy work starts
        started, answered = time.perf_counter(), len(sample.latencies)
        try:
            if heavy is None:
                await asyncio.sleep(2.0)
            else:
                try:
                    await asyncio.wait_for(heavy(admin), timeout)
                except TimeoutError:  # reported with the figures, not fatal
                    print(f"    (not done within {timeout:.0f} s)", flush=True)
        finally:
            seconds = time.perf_counter() - started
            sample.during = len(sample.latencies) - answered
            done.set()
            await asyncio.gather(*probers)
    return sample, seconds


def heavy_phase(
    pristine: Path, tmp: Path, built: dict[str, Any], operations: set[str]
) -> list[tuple[str, str]]:
    big, big_key = built["big"], built["big_key"]

    async def dump(client: httpx.AsyncClient) -> None:
        async with client.stream("GET", f"/_sandbox/accounts/{big}/dump") as r:
            size = sum([len(chunk) async for chunk in r.aiter_bytes()])
        if r.status_code != 200:
            fail(f"dump answered {r.status_code}")
        print(f"    dump: {size / 2**20:.1f} MiB", flush=True)

    async def export(client: httpx.AsyncClient) -> None:
        headers = {"Authorization": f"Bearer {big_key}"}
        r = await client.post("/v1/exports", json={"format": "jsonl"}, headers=headers)
        if r.status_code != 201:
            fail(f"export answered {r.status_code}: {r.text[:300]}")
        size = 0
        for f in r.json()["files"]:
            async with client.stream("GET", f["url"], headers=headers) as file:
                size += sum([len(chunk) async for chunk in file.aiter_bytes()])
        print(f"    export: {size / 2**20:.1f} MiB in {len(r.json()['files'])} files", flush=True)

    async def advance_90d(client: httpx.AsyncClient) -> None:
        r = await client.post(f"/_sandbox/accounts/{big}/clock/advance", json={"by": "90d"})
        if r.status_code != 200:
            fail(f"advance answered {r.status_code}: {r.text[:300]}")

    db = tmp / "heavy.db"
    shutil.copyfile(pristine, db)
    server = Server.start(tmp, db, 1, tmp / "heavy.log")
    rows: list[tuple[str, str]] = []
    try:
        server.wait_healthy()
        phases: list[tuple[str, Callable[[httpx.AsyncClient], Awaitable[None]] | None]] = [
            ("idle (baseline)", None),
            ("during a dump of the big account", dump),
            ("during an export of it (create + download)", export),
            ("during a 90-day advance of its clock", advance_90d),
        ]
        phases = [p for p in phases if p[1] is None or p[1].__name__ in operations]
        for name, heavy in phases:
            server.reset_peak()
            rss_before, _ = server.memory_kb()
            sample, seconds = asyncio.run(
                probe_during(server.url, built["small_key"], built["order"], heavy)
            )
            rss_after, hwm = server.memory_kb()
            print(f"  {name}: {seconds:.2f} s  {sample.row()}", flush=True)
            print(
                f"    server RSS before / after / peak during it: {rss_before / 1024:.0f} / "
                f"{rss_after / 1024:.0f} / {hwm / 1024:.0f} MiB",
                flush=True,
            )
            rows.append((f"{name} ({seconds:.2f} s)", f"{sample.row()}  {sample.during} during"))
            rows.append(
                (
                    "  server RSS before / after / peak during it",
                    f"{rss_before / 1024:.0f} / {rss_after / 1024:.0f} / {hwm / 1024:.0f} MiB",
                )
            )
    finally:
        server.stop()
    return rows


# --- 4. a webhook fan-out -----------------------------------------------------------------
FAN_IN_FLIGHT = 8  # concurrent event writes of the burst
RETRIES = 20  # attempts of one write answered 503
DRAIN_TIMEOUT = 600.0  # seconds the deliveries may take to arrive


async def _burst(url: str, key: str, events: int, busy: Counter[int]) -> None:
    """`events` writes of the fan account (one `buyer.created` event each), 8 in flight; a
    503 (the lock busy past its wait) is counted in `busy` and retried after Retry-After."""
    headers = {"Authorization": f"Bearer {key}"}
    made = iter(range(events))
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:

        async def writer() -> None:
            for n in made:
                body = {"legal_name": f"Fan {n}", "email": "ap+approve@fan.test"}
                for _ in range(RETRIES):
                    r = await client.post("/v1/buyers", json=body)
                    if r.status_code != 503:
                        break
                    busy[503] += 1
                    await asyncio.sleep(float(r.headers.get("retry-after", "1")))
                if r.status_code != 201:
                    fail(f"buyer answered {r.status_code}: {r.text[:200]}")

        await asyncio.gather(*(writer() for _ in range(FAN_IN_FLIGHT)))


async def _arrived(client: httpx.AsyncClient, hooks: str) -> int:
    return int((await client.get(f"{hooks}/count")).json()["count"])


def fanout_phase(
    pristine: Path, tmp: Path, built: dict[str, Any], endpoints: int, events: int
) -> list[tuple[str, str]]:
    """A fan account with `endpoints` endpoints at a local receiver; `events` events written
    in a burst, then every delivery awaited (bounded); the small account probed meanwhile.
    First the same burst with no endpoint: what the writes alone cost the others."""
    db = tmp / "fanout.db"
    shutil.copyfile(pristine, db)
    server = Server.start(tmp, db, 1, tmp / "fanout.log")
    rows: list[tuple[str, str]] = []
    try:
        with harness.bench_app("webhook_receiver.py", tmp / "receiver.log") as receiver:
            server.wait_healthy()
            admin = {"Authorization": f"Bearer {ADMIN}"}
            quiet = httpx.post(f"{server.url}/_sandbox/accounts", json={}, headers=admin).json()
            fan = httpx.post(f"{server.url}/_sandbox/accounts", json={}, headers=admin).json()
            for n in range(endpoints):
                r = httpx.post(
                    f"{server.url}/v1/webhook_endpoints",
                    json={"url": f"{receiver.url}/hook", "description": f"fan {n}"},
                    headers={"Authorization": f"Bearer {fan['api_key']}"},
                )
                if r.status_code != 201:
                    fail(f"endpoint answered {r.status_code}: {r.text[:200]}")
            httpx.post(f"{receiver.url}/reset", json={}).raise_for_status()
            wanted = endpoints * events

            busy: Counter[int] = Counter()

            async def without_endpoints(_: httpx.AsyncClient) -> None:
                await _burst(server.url, quiet["api_key"], events, busy)

            async def fan_out(client: httpx.AsyncClient) -> None:
                await _burst(server.url, fan["api_key"], events, busy)
                deadline = time.monotonic() + DRAIN_TIMEOUT
                while await _arrived(client, receiver.url) < wanted:
                    if time.monotonic() > deadline:
                        fail(f"deliveries still missing after {DRAIN_TIMEOUT:.0f} s")
                    await asyncio.sleep(0.5)

            phases: list[tuple[str, Callable[[httpx.AsyncClient], Awaitable[None]]]] = [
                (f"during {events:,} events, no endpoint", without_endpoints),
                (
                    f"during {events:,} events to {endpoints} endpoints ({wanted:,} deliveries)",
                    fan_out,
                ),
            ]
            for name, heavy in phases:
                server.reset_peak()
                busy.clear()
                sample, seconds = asyncio.run(
                    probe_during(
                        server.url, built["small_key"], built["order"], heavy, DRAIN_TIMEOUT + 60
                    )
                )
                _, hwm = server.memory_kb()
                arrived = httpx.get(f"{receiver.url}/count").json()["count"]
                extra = f"peak RSS {hwm / 1024:.0f} MiB; writes answered 503: {busy[503]}"
                extra += f"; deliveries arrived: {arrived:,}"
                print(f"  {name}: {seconds:.2f} s  {sample.row()}\n    {extra}", flush=True)
                rows.append(
                    (f"{name} ({seconds:.2f} s)", f"{sample.row()}  {sample.during} during")
                )
                rows.append(("  server", extra))
    finally:
        server.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--orders", type=int, default=8_000, help="big account's orders (8000)")
    p.add_argument("--accounts", type=int, default=2_000, help="extra empty accounts (2000)")
    p.add_argument("--starts", type=int, default=6, help="2-worker starts measured (6)")
    p.add_argument("--skip-start", action="store_true", help="skip the multi-worker starts")
    p.add_argument("--skip-heavy", action="store_true", help="skip the heavy operations")
    p.add_argument("--skip-fanout", action="store_true", help="skip the webhook fan-out")
    p.add_argument(
        "--heavy",
        default="dump,export,advance_90d",
        help="heavy operations to measure (dump,export,advance_90d)",
    )
    p.add_argument("--endpoints", type=int, default=50, help="fan-out endpoints (50)")
    p.add_argument("--events", type=int, default=2_000, help="fan-out events (2000)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args(argv)
    if args.orders < 1 or args.starts < 1 or args.accounts < 0:
        fail("--orders and --starts must be at least 1, --accounts at least 0")
    if not (1 <= args.endpoints <= 1000 and 1 <= args.events <= 100_000):
        fail("--endpoints must be 1..1000 and --events 1..100000")
    tmp = Path(tempfile.mkdtemp(prefix="sandbank-bench-contention-"))
    try:
        pristine, due_db = tmp / "pristine.db", tmp / "due.db"
        print(f"bench contention: building {args.orders:,} orders in {tmp}", flush=True)
        built = build(tmp, pristine, due_db, args.orders, args.accounts)
        print(
            f"  built {built['bytes'] / 2**20:.1f} MiB in {built['seconds']:.1f} s "
            f"({built['orders']:,} orders, {args.accounts:,} more accounts)",
            flush=True,
        )
        rows: list[tuple[str, str]] = []
        if not args.skip_start:
            sample = start_phase(due_db, tmp, built, args.starts)
            late = f"{sample.late} after the due work's read"
            rows.append(
                (
                    f"{READERS - 1} reads at a 2-worker start (x{args.starts})",
                    f"{sample.row()}  {late}",
                )
            )
        if not args.skip_heavy:
            rows += heavy_phase(pristine, tmp, built, set(args.heavy.split(",")))
        if not args.skip_fanout:
            rows += fanout_phase(pristine, tmp, built, args.endpoints, args.events)
        width = max(len(r[0]) for r in rows)
        print(f"\n{'unrelated requests':<{width}}  latency")
        print(f"{'-' * width}  {'-' * 60}")
        for name, value in rows:
            print(f"{name:<{width}}  {value}")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
