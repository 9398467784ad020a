"""The dispatcher's lean HTTP/1.1 client against a raw asyncio server on 127.0.0.1: framing
(length, chunked, read to close), 1xx skipped, redirects not followed, keep-alive reuse and a
stale kept-alive connection replaced, the deadline, and a refused connection."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from simulator.webhooks import http

Answer = Callable[[bytes], bytes | None]  # the request head and body -> raw answer (None: close)


async def serve(
    answer: Answer, *, close_after: int | None = None
) -> tuple[asyncio.Server, list[int]]:
    """A server answering each request with `answer`; `close_after` answers per connection."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(0)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                body = await reader.readexactly(length)
                raw = answer(head + body)
                if raw is None:
                    break
                writer.write(raw)
                await writer.drain()
                connections[-1] += 1
                if close_after is not None and connections[-1] >= close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, connections


def url(server: asyncio.Server) -> str:
    return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook?x=1"


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_a_length_framed_answer_is_read_and_the_connection_kept() -> None:
    seen: list[bytes] = []

    def answer(request: bytes) -> bytes:
        seen.append(request)
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"

    async def scenario() -> None:
        server, connections = await serve(answer)
        client = http.Client()
        for _ in range(3):
            r = await client.post(url(server), {"webhook-id": "evt_1"}, b'{"a":1}', 5)
            assert (r.status, r.text(500)) == (200, "ok")
        assert connections == [3]  # one connection, kept alive
        await client.aclose()
        server.close()

    run(scenario)
    head = seen[0].decode()
    assert head.startswith("POST /hook?x=1 HTTP/1.1\r\n")
    assert "webhook-id: evt_1\r\n" in head
    assert "content-length: 7\r\n" in head
    assert seen[0].endswith(b'{"a":1}')


def test_chunked_and_close_framed_answers_and_interim_answers() -> None:
    answers = iter(
        [
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n"
            b"\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
            b"HTTP/1.0 500 Oops\r\n\r\nbroken body",
        ]
    )

    async def scenario() -> None:
        server, _ = await serve(lambda _: next(answers), close_after=None)
        client = http.Client()
        r = await client.post(url(server), {}, b"{}", 5)
        assert (r.status, r.body) == (201, b"abcde")
        server.close()
        server2, _ = await serve(lambda _: next(answers), close_after=1)
        r = await client.post(url(server2), {}, b"{}", 5)
        assert (r.status, r.text(4)) == (500, "brok")
        await client.aclose()
        server2.close()

    run(scenario)


def test_a_redirect_is_the_answer_not_followed() -> None:
    async def scenario() -> None:
        server, connections = await serve(
            lambda _: (
                b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/x\r\nContent-Length: 0\r\n\r\n"
            )
        )
        client = http.Client()
        r = await client.post(url(server), {}, b"{}", 5)
        assert (r.status, r.headers["location"]) == (302, "http://127.0.0.1:9/x")
        assert connections == [1]
        await client.aclose()
        server.close()

    run(scenario)


def test_a_kept_alive_connection_closed_by_the_server_is_replaced() -> None:
    ok = b"HTTP/1.1 204 No Content\r\n\r\n"

    async def scenario() -> None:
        server, connections = await serve(lambda _: ok, close_after=1)
        client = http.Client()
        for _ in range(3):
            assert (await client.post(url(server), {}, b"{}", 5)).status == 204
        assert connections == [1, 1, 1]
        await client.aclose()
        server.close()

    run(scenario)


def test_the_deadline_covers_the_whole_attempt() -> None:
    async def scenario() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(5)
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        client = http.Client()
        with pytest.raises(TimeoutError):
            await client.post(url(server), {}, b"{}", 0.2)
        await client.aclose()
        server.close()

    run(scenario)


def test_a_refused_connection_is_an_http_error() -> None:
    async def scenario() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        with pytest.raises(http.HttpError):
            await http.Client().post(f"http://127.0.0.1:{port}/", {}, b"{}", 5)

    run(scenario)
