"""A lean HTTP/1.1 client for webhook attempts: one POST at a time per connection, kept alive
in a pool per origin, no redirects followed (a 3xx is the attempt's answer), one deadline for
the whole attempt (connect, send, answer).

It exists because a general client's per-request machinery (httpx, httpcore, anyio) cost more
CPU than everything else in a delivery. It speaks only what a webhook sender needs: a request
with a known body, a response with `Content-Length`, chunked or read-to-close framing, `1xx`
interim answers skipped. Tests that inject an httpx transport keep using httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from urllib.parse import urlsplit

from simulator.webhooks.safety import is_metadata_address

MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024  # read at most this much of an answer; a bigger one closes the connection
IDLE_PER_ORIGIN = 128  # kept-alive connections per origin: the dispatcher's PER_ENDPOINT


class HttpError(Exception):
    """The attempt got no complete answer (refused, reset, malformed)."""


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def text(self, limit: int) -> str:
        """The first `limit` characters of the body, decoded as its charset says (UTF-8 if it
        says nothing)."""
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip("\"'")
        chunk = self.body[: limit * 4]
        try:
            return chunk.decode(charset, "replace")[:limit]
        except LookupError:
            return chunk.decode("utf-8", "replace")[:limit]


class _Origin:
    __slots__ = ("host", "idle", "port", "ssl")

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        self.host, self.port, self.ssl = host, port, tls
        self.idle: deque[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = deque()


class Client:
    def __init__(self) -> None:
        self._origins: dict[tuple[str, str, int], _Origin] = {}
        self._targets: dict[str, tuple[_Origin, bytes]] = {}  # url -> origin, request-line + Host
        self._tls: ssl.SSLContext | None = None

    def _target(self, url: str) -> tuple[_Origin, bytes]:
        found = self._targets.get(url)
        if found is not None:
            return found
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, host, port)
        origin = self._origins.get(key)
        if origin is None:
            tls = None
            if scheme == "https":
                if self._tls is None:
                    self._tls = ssl.create_default_context()
                tls = self._tls
            origin = self._origins[key] = _Origin(host, port, tls)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        netloc = parts.netloc.rpartition("@")[2]
        head = f"POST {path} HTTP/1.1\r\nhost: {netloc}\r\n".encode("latin-1")
        if len(self._targets) > 10_000:
            self._targets.clear()
        self._targets[url] = (origin, head)
        return origin, head

    async def post(
        self, url: str, headers: dict[str, str], body: bytes, timeout_s: float
    ) -> Response:
        """POST `body`; raises TimeoutError past `timeout_s`, HttpError without an answer."""
        origin, head = self._target(url)
        lines = [head]
        for name, value in headers.items():
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        lines.append(b"content-length: %d\r\n\r\n" % len(body))
        request = b"".join(lines) + body
        async with asyncio.timeout(timeout_s):
            while origin.idle:  # a kept-alive connection the server may have closed meanwhile
                reader, writer = origin.idle.pop()
                if reader.at_eof() or writer.is_closing():
                    writer.close()
                    continue
                try:
                    return await self._exchange(origin, reader, writer, request)
                except _Stale:
                    continue
            try:
                reader, writer = await asyncio.open_connection(
                    origin.host, origin.port, ssl=origin.ssl, limit=MAX_HEAD
                )
            except OSError as exc:
                raise HttpError(str(exc) or type(exc).__name__) from exc
            peer = writer.get_extra_info("peername")
            if peer and is_metadata_address(str(peer[0])):  # a name that resolved there
                writer.close()
                raise HttpError(f"{origin.host} resolved to {peer[0]}, a metadata address")
            try:
                return await self._exchange(origin, reader, writer, request)
            except _Stale as exc:
                raise HttpError("the connection closed without an answer") from exc

    async def _exchange(
        self,
        origin: _Origin,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: bytes,
    ) -> Response:
        keep = False
        started = False
        try:
            writer.write(request)
            status, headers, keep = await self._head(reader)
            started = True
            body, reusable = await self._body(reader, status, headers)
            keep = keep and reusable
            return Response(status, headers, body)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            keep = False
            if not started and isinstance(exc, asyncio.IncompleteReadError) and not exc.partial:
                raise _Stale from exc
            if not started and isinstance(exc, ConnectionResetError | BrokenPipeError):
                raise _Stale from exc
            raise HttpError(str(exc) or type(exc).__name__) from exc
        except (asyncio.LimitOverrunError, ValueError, UnicodeDecodeError) as exc:
            keep = False
            raise HttpError(f"malformed answer: {exc}") from exc
        except BaseException:  # a timeout or a cancellation mid-exchange: the connection is spent
            keep = False
            raise
        finally:
            if keep and len(origin.idle) < IDLE_PER_ORIGIN:
                origin.idle.append((reader, writer))
            else:
                writer.close()

    @staticmethod
    async def _head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bool]:
        while True:
            raw = await reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            version, _, rest = lines[0].partition(" ")
            if not version.startswith("HTTP/1."):
                raise ValueError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
            status = int(rest[:3])
            if 100 <= status < 200 and status != 101:
                continue
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if not line:
                    continue
                name, _, value = line.partition(":")
                name = name.strip().lower()
                value = value.strip()
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            connection = headers.get("connection", "").lower()
            keep = version == "HTTP/1.1" and "close" not in connection
            return status, headers, keep

    @staticmethod
    async def _body(
        reader: asyncio.StreamReader, status: int, headers: dict[str, str]
    ) -> tuple[bytes, bool]:
        """The body (at most MAX_BODY of it) and whether the connection may be used again."""
        if status in (204, 304):  # no body by definition
            return b"", True
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parts: list[bytes] = []
            size = 0
            while True:
                line = await reader.readuntil(b"\r\n")
                n = int(line.split(b";", 1)[0].strip(), 16)
                if n == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                        pass
                    return b"".join(parts), True
                size += n
                if size > MAX_BODY:
                    return b"".join(parts), False
                parts.append(await reader.readexactly(n))
                await reader.readexactly(2)
        length = headers.get("content-length")
        if length is not None:
            n = int(length)
            if n > MAX_BODY:
                return await reader.readexactly(MAX_BODY), False
            return await reader.readexactly(n), True
        # framed by the end of the connection: read what comes (bounded), never keep it
        parts = []
        size = 0
        while size < MAX_BODY and (chunk := await reader.read(MAX_BODY - size)):
            parts.append(chunk)
            size += len(chunk)
        return b"".join(parts), False

    async def aclose(self) -> None:
        for origin in self._origins.values():
            while origin.idle:
                _, writer = origin.idle.pop()
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
        self._origins.clear()
        self._targets.clear()


class _Stale(Exception):
    """A kept-alive connection was closed by the server before it answered: try another."""
