"""`make bench` with `--profile`: where the simulator's time goes during a POST /v1/checkouts
run, sampled by py-spy (if installed beside this Python or on PATH) or traced by cProfile.

    .venv/bin/python bench/run.py --profile [--profiler auto|py-spy|cprofile] [--top 15]
        [--profile-request post|post-inline|get-checkout]

`post` sends a checkout for a buyer created beforehand; `post-inline` one with an inline buyer
(a new buyer each time, as bench/peers.py measures it); `get-checkout` reads one checkout.
"""

from __future__ import annotations

import argparse
import collections
import pstats
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import peers
from harness import BENCH, WARMUP_SECONDS, ensure_wrk, fail, prepare, simulator, write_scripts, wrk

ROOT = BENCH.parent


def find_py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def _short(frame: str) -> str:
    frame = re.sub(r"\(.*?site-packages/", "(", frame)
    frame = frame.replace(f"({ROOT}/", "(")
    return re.sub(r"\(.*?/lib/python3\.\d+/", "(stdlib/", frame)


def summarize_raw(path: Path, top: int) -> None:
    """py-spy's raw (collapsed) stacks -> self time per line and inclusive time per function."""
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack_text.split(";")]
        total += count
        self_time[frames[-1]] += count
        for fn in {re.sub(r":\d+\)$", ")", f) for f in frames}:
            inclusive[fn] += count
    if not total:
        fail("the profiler took no samples")
    print(f"\n{total} samples (CPU only, idle excluded)\n\nTop {top} by self time (line):")
    for frame, n in self_time.most_common(top):
        print(f"  {n / total:6.1%}  {frame}")
    print(f"\nTop {top} by inclusive time (function):")
    skip = ("<module>", "run (", "_run_once", "run_forever", "run_until_complete", "main (")
    shown = 0
    for frame, n in inclusive.most_common():
        if frame.startswith(skip):
            continue
        print(f"  {n / total:6.1%}  {frame}")
        shown += 1
        if shown == top:
            break


def profile(args: argparse.Namespace) -> int:
    binary = ensure_wrk()
    tool = args.profiler
    spy = find_py_spy()
    if tool == "auto":
        tool = "py-spy" if spy else "cprofile"
    if tool == "py-spy" and not spy:
        fail("py-spy is not installed; '.venv/bin/pip install py-spy' or use --profiler cprofile")
    with tempfile.TemporaryDirectory(prefix="sandbank-profile-") as name:
        tmp = Path(name)
        stats = tmp / "cprofile.out"
        python = [sys.executable]
        if tool == "cprofile":
            python += ["-m", "cProfile", "-o", str(stats)]
        print(f"profiling {args.profile_request} with {tool} for {args.duration}s", flush=True)
        with simulator(tmp / "data", tmp / "sim.log", python=python) as sim:
            fx = prepare(sim.url)
            scripts = write_scripts(tmp, fx)
            url = sim.url + "/v1/checkouts"
            if args.profile_request != "post":
                peer = peers.sandbank_peer(sim.url)
                inline, get = peers.scripts(tmp, peer)
                scripts["post"] = inline if args.profile_request == "post-inline" else get
                url = peer.post_url if args.profile_request == "post-inline" else peer.get_url
            wrk(binary, url, scripts["post"], args, seconds=WARMUP_SECONDS, scenario="warm-up")
            if tool == "py-spy":
                raw = tmp / "py-spy.txt"
                spy_cmd = [str(spy), "record", "--pid", str(sim.proc.pid), "--rate", "250"]
                spy_cmd += ["--duration", str(args.duration), "--format", "raw", "-o", str(raw)]
                sampler = subprocess.Popen(
                    spy_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                )
                try:
                    result = wrk(
                        binary,
                        url,
                        scripts["post"],
                        args,
                        seconds=args.duration,
                        scenario="profiled",
                    )
                    _, err = sampler.communicate(timeout=args.duration + 30)
                finally:
                    if sampler.poll() is None:
                        sampler.kill()
                        sampler.wait(timeout=10)
                if sampler.returncode != 0 or not raw.exists():
                    fail(f"py-spy failed: {err.decode(errors='replace').strip()[-300:]}")
            else:
                result = wrk(
                    binary, url, scripts["post"], args, seconds=args.duration, scenario="profiled"
                )
            sim.stop(signal.SIGINT)  # cProfile writes its file on SIGINT only (Process.stop)
        print(f"under the profiler: {result.rps:,.0f} req/s, p99 {result.p99_ms:.2f} ms")
        if tool == "py-spy":
            summarize_raw(raw, args.top)
        else:
            for order in ("tottime", "cumulative"):
                print(f"\nTop {args.top} by {order}:")
                pstats.Stats(str(stats)).strip_dirs().sort_stats(order).print_stats(args.top)
    return 0
