"""What the end-to-end tests add to `rehearsal.processes` (the one subprocess helper, shared
with rehearsals and `make bench`): the startup banner of `sandbank serve`, parsed in one place,
and the body of the `start_server` fixture."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from rehearsal import processes


@dataclass
class Banner:
    """What `sandbank serve` prints for a new user."""

    url: str
    demo_key: str
    admin_token: str


class Server(processes.Server):
    """`sandbank serve` as the tests see it: with its startup banner."""

    demo_key = ""  # the demo account's key, for tests that read it from the banner

    def banner(self) -> Banner:
        text = self.output()
        url = re.search(r"^Sandbank \S+ on (http://\S+)$", text, re.M)
        key = re.search(r"demo account \S+\s+API key: (\S+)$", text, re.M)
        token = re.search(r"admin token: (\S+)$", text, re.M)
        assert url, f"startup output lacks the URL:\n{text}"
        assert key, f"startup output lacks the demo API key:\n{text}"
        assert token, f"startup output lacks the admin token:\n{text}"
        return Banner(url.group(1), key.group(1), token.group(1))


StartServer = Callable[..., Server]


def starting(log_dir: Path) -> Iterator[StartServer]:
    """`start(data_dir, port, *extra)`: a healthy server; every one started is killed (by
    pid) when the generator closes. The body of the `start_server` fixture."""
    started: list[Server] = []

    def start(
        data_dir: Path,
        port: int,
        *extra: str,
        env: Mapping[str, str] | None = None,
        wait: bool = True,
    ) -> Server:
        """`env`: more environment for the server; `wait` False: return before it is
        healthy."""
        log = log_dir / f"server-{len(started)}.log"
        server = Server(data_dir, port, log, list(extra), env=env)
        started.append(server)
        if wait:
            server.wait_healthy()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.kill()
