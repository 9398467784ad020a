"""What one POST /v1/checkouts with an inline buyer (or, `--get`, one GET /v1/checkouts/{id})
costs, in process: no sockets, no wrk, so
a change to the write path is measurable on a shared machine.

Two measures of the same loop (the app called as ASGI, 16 requests per event-loop turn, so
the group commit groups as under load; a SQLite file in WAL mode; the start-up heap frozen
as `sandbank serve` freezes it):

- CPU time per request (the process's, all threads): quick, but another process's load moves
  it by ±10 % between runs of the same tree.
- `--instructions`: the loop under valgrind (cachegrind, no cache simulation), instructions per
  request from two runs of different lengths (start-up cancels out). Deterministic within
  ±1 % whatever the machine does, so a 2 % change shows; about two minutes per tree. The
  checkpoint thread is left out (its work depends on time); SQLite then checkpoints in
  COMMIT, by page count, the same in every run.

    .venv/bin/python bench/post_cost.py                      # CPU µs per POST, this tree
    .venv/bin/python bench/post_cost.py --instructions       # + instructions per POST
    .venv/bin/python bench/post_cost.py --instructions --tree /path/to/other/checkout
    .venv/bin/python bench/post_cost.py --get --no-reuse     # a GET whose answer must be read

`--get` polls one checkout, so from the second GET on its answer is reused
(`simulator.api.reads`); `--no-reuse` reads it every time, as a GET does after a change.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PER_TURN = 16


def import_tree(tree: str | None) -> None:
    """Import `simulator` from `tree` (another checkout) instead of the installed one."""
    if tree:
        sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
        sys.path.insert(0, tree)


async def _loop(
    requests: int, warmup: int, *, checkpoints: bool, read: bool = False, reuse: bool = True
) -> tuple[float, int]:
    # Imported here, once `--tree` has chosen which checkout `simulator` comes from.
    import httpx  # noqa: PLC0415 - see above
    from peers import INLINE_BODY  # noqa: PLC0415 - see above

    from simulator.app import create_app  # noqa: PLC0415 - see above
    from simulator.settings import Settings  # noqa: PLC0415 - see above

    body = json.dumps(INLINE_BODY, separators=(",", ":")).encode()
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            Settings(
                db=os.path.join(tmp, "bench.db"),
                admin_token="bench_admin",  # noqa: S106 - a throwaway local server's
                seed=7,
                public_url="http://bench.test",
                webhook_process=True,
            )
        )
        if checkpoints:
            app.runtime.store.serving()
        reads = getattr(app.runtime, "reads", None)  # a tree before answers were reused has none
        if reads is not None:
            reads.reuse = reuse
        admin = {"Authorization": "Bearer bench_admin"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench.test") as c:
            r = await c.post("/_sandbox/accounts", json={"name": "bench"}, headers=admin)
            key = r.json()["api_key"]
            auth = {"Authorization": f"Bearer {key}"}
            r = await c.post("/v1/checkouts", json=INLINE_BODY, headers=auth)
            checkout = r.json()["id"]
        method, path, expected = (
            ("GET", f"/v1/checkouts/{checkout}", 200) if read else ("POST", "/v1/checkouts", 201)
        )
        if read:
            body = b""
        # As `sandbank serve` does once the app is built (`simulator.heap`): full collections
        # walk what requests make, not the app's start-up heap.
        gc.collect()
        gc.freeze()
        headers = [
            (b"host", b"bench.test"),
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        statuses: list[int] = []

        async def one() -> None:
            scope: dict[str, Any] = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": method,
                "scheme": "http",
                "path": path,
                "raw_path": path.encode(),
                "query_string": b"",
                "root_path": "",
                "headers": headers,
                "client": ("127.0.0.1", 1),
                "server": ("127.0.0.1", 8080),
            }
            sent = False

            async def receive() -> dict[str, Any]:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                await asyncio.sleep(60)  # bounded: the response is complete long before
                return {"type": "http.disconnect"}

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    statuses.append(message["status"])

            await app(scope, receive, send)

        for _ in range(warmup // PER_TURN):
            await asyncio.gather(*(one() for _ in range(PER_TURN)))
        started, done = time.process_time(), 0
        while done < requests:
            await asyncio.gather(*(one() for _ in range(PER_TURN)))
            done += PER_TURN
        cpu = time.process_time() - started
        app.runtime.store.close()
    bad = sum(1 for s in statuses if s != expected)
    if bad:
        raise SystemExit(f"post_cost: {bad} of {len(statuses)} requests did not answer {expected}")
    return cpu / done, done


def _instructions(requests: int, tree: str | None, *, read: bool, reuse: bool) -> int:
    """Instructions executed by a `--child` run of `requests` measured requests."""
    args = [sys.executable, __file__, "--child", "--requests", str(requests)]
    if tree:
        args += ["--tree", tree]
    if read:
        args.append("--get")
    if not reuse:
        args.append("--no-reuse")
    out = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        check=True,
    ).stderr
    found = re.search(r"I\s+refs:\s+([\d,]+)", out)
    if found is None:
        raise SystemExit(f"post_cost: no instruction count in valgrind's output:\n{out[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=3000, help="measured requests (3000)")
    p.add_argument("--get", action="store_true", help="GET /v1/checkouts/{id} instead of the POST")
    p.add_argument(
        "--no-reuse",
        action="store_true",
        help="every GET reads (as after a change), no answer reused (simulator.api.reads)",
    )
    p.add_argument("--tree", help="import the simulator from this checkout instead")
    p.add_argument("--instructions", action="store_true", help="also count instructions")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    import_tree(args.tree)
    sys.path.insert(0, str(HERE))
    label = args.tree or "this tree"
    if args.child:  # under valgrind: a short warm-up, no checkpoint thread
        asyncio.run(
            _loop(
                args.requests,
                PER_TURN * 2,
                checkpoints=False,
                read=args.get,
                reuse=not args.no_reuse,
            )
        )
        return 0
    cpu, done = asyncio.run(
        _loop(args.requests, 300, checkpoints=True, read=args.get, reuse=not args.no_reuse)
    )
    what = "GET" if args.get else "POST"
    detail = "inline buyer"
    if args.get:
        detail = "one checkout, read every time" if args.no_reuse else "one checkout"
    print(f"{label}: {cpu * 1e6:.0f} µs CPU per {what} ({done} {what}s, {detail})")
    if args.instructions:
        if shutil.which("valgrind") is None:
            print("post_cost: --instructions skipped, valgrind is not installed")
            return 0
        short, long = PER_TURN * 2, PER_TURN * 18
        per = (
            _instructions(long, args.tree, read=args.get, reuse=not args.no_reuse)
            - _instructions(short, args.tree, read=args.get, reuse=not args.no_reuse)
        ) / (long - short)
        print(f"{label}: {per / 1000:,.0f} k instructions per {what} (valgrind)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
