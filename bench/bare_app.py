"""The ceiling of this server stack: a pure ASGI app that reads the request body and answers
fixed JSON, served by uvicorn with exactly the simulator's settings (`uvicorn_options`).

    python bench/bare_app.py --port 8099
"""

from __future__ import annotations

from typing import Any

import orjson
from harness import serve_bench_app

# About the size of the simulator's checkout response, so both send similar bytes.
BODY = orjson.dumps(
    {
        "id": "chk_0000000000000000000",
        "object": "checkout",
        "status": "open",
        "amount": 125000,
        "currency": "USD",
        "merchant_order_id": "SO-1",
        "buyer_id": "buy_00000000000000000000",
        "line_items": [{"name": "Widget", "sku": None, "quantity": 1, "unit_amount": 125000}],
        "return_url": "https://shop.test/ok",
        "cancel_url": "https://shop.test/no",
        "url": "http://127.0.0.1:8080/hosted/checkouts/chk_0000000000000000000",
        "order_id": None,
        "metadata": {},
        "expires_at": "2026-01-02T00:00:00Z",
        "created_at": "2026-01-01T00:00:00Z",
    }
)
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        for _ in range(2):  # the protocol has two messages: startup, then shutdown
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    more = True
    while more:  # read the whole body, as the simulator does
        message = await receive()
        more = message.get("more_body", False) and message["type"] == "http.request"
    status = 201 if scope["method"] == "POST" else 200
    await send({"type": "http.response.start", "status": status, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def main() -> None:
    serve_bench_app(app, __doc__, "bare ASGI app")


if __name__ == "__main__":
    main()
