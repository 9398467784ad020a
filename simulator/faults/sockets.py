"""Faults at the socket: a connection reset, a close without a byte, a cut-off body.

ASGI hides the connection, so the HTTP protocol classes handed to uvicorn (`PROTOCOLS`) record
each connection's transport under its peer address; the fault layer finds it through the
request's `scope["client"]`. Where there is no socket (in-process tests through an ASGI
transport) the same faults raise `ConnectionFault`, which reaches the caller as an exception,
the nearest thing an in-process client has to a dead connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from simulator.asgi import Receive, Scope


class ConnectionFault(ConnectionError):
    """The connection was reset or closed on purpose (raised only where there is no socket)."""


# Peer address -> transport, for the connections this process is serving.
_TRANSPORTS: dict[tuple[str, int], asyncio.Transport] = {}


class _Registered(asyncio.Protocol):
    """Mixed in before a uvicorn HTTP protocol: keeps each connection's transport under its
    peer address while the connection lives."""

    _sandbank_peer: tuple[str, int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._sandbank_peer = (str(peer[0]), int(peer[1]))
            _TRANSPORTS[self._sandbank_peer] = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._sandbank_peer is not None:
            _TRANSPORTS.pop(self._sandbank_peer, None)
        super().connection_lost(exc)


class FaultableHttpTools(_Registered, HttpToolsProtocol):
    pass


class FaultableH11(_Registered, H11Protocol):
    pass


def protocol_class() -> type[asyncio.Protocol]:
    """httptools where it is installed (uvicorn[standard]), else h11."""
    try:
        import httptools  # noqa: F401, PLC0415 - only probing for it
    except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
        return FaultableH11
    return FaultableHttpTools


def transport_for(scope: Scope) -> asyncio.Transport | None:
    client = scope.get("client")
    if not client:
        return None
    return _TRANSPORTS.get((str(client[0]), int(client[1])))


async def _until_disconnected(receive: Receive, timeout: float) -> None:
    """Wait (bounded) for the server to notice the connection is gone, so it neither writes a
    500 of its own nor logs an unfinished response."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while (await receive())["type"] != "http.disconnect":
                pass


async def reset(scope: Scope, receive: Receive) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0, then abort)."""
    transport = transport_for(scope)
    if transport is None:
        raise ConnectionFault("connection reset by the simulator (fault: reset)")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    await _until_disconnected(receive, 1.0)


async def close(scope: Scope, receive: Receive) -> None:
    """Close the connection (FIN) after whatever was already written."""
    transport = transport_for(scope)
    if transport is None:
        raise ConnectionFault("connection closed by the simulator before the response ended")
    transport.close()
    await _until_disconnected(receive, 1.0)
