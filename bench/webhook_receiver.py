"""A fast local webhook receiver for `make bench`: a bare ASGI app under uvicorn (the simulator's
own settings) that answers 204 to POST /hook and records, per request, the `webhook-id` header
and the arrival wall time (time.time(), the clock the simulator's `created_at` is read from).

    python bench/webhook_receiver.py --port 8098

    POST /hook    204; records (webhook-id, arrival)
    GET  /count   {"count"}: how many arrived since the last reset (cheap, for sampling)
    GET  /stats   {"count", "arrivals": [[webhook-id, arrival], ...], "verified", "bad_signature",
                   "unsigned", "sampled"} since the last reset
    POST /reset   forget everything; an optional JSON body {"secret": "whsec_...", "sample": N}
                  keeps the headers and body of every Nth request (default 50) and verifies those
                  signatures with the `standardwebhooks` package when /stats is read

The hot path only appends a tuple to a list (plus, for the sampled requests, a copy of three
headers and the body): verification happens off the hot path, on GET /stats.
"""

from __future__ import annotations

import json
import time
from typing import Any

from harness import serve_bench_app
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

EMPTY: list[tuple[bytes, bytes]] = []
JSON = [(b"content-type", b"application/json")]
SIGNED = (b"webhook-id", b"webhook-timestamp", b"webhook-signature")


class State:
    def __init__(self) -> None:
        self.reset(None, 50)

    def reset(self, secret: str | None, sample: int) -> None:
        self.arrivals: list[tuple[str, float]] = []
        self.samples: list[tuple[dict[str, str], bytes]] = []
        self.secret = secret
        self.sample = max(1, sample)

    def stats(self) -> dict[str, Any]:
        verified = bad = unsigned = 0
        if self.secret is not None and self.samples:
            hook = Webhook(self.secret)
            for headers, body in self.samples:
                if "webhook-signature" not in headers:
                    unsigned += 1
                    continue
                try:
                    hook.verify(body, headers)
                except WebhookVerificationError:
                    bad += 1
                else:
                    verified += 1
        return {
            "count": len(self.arrivals),
            "arrivals": self.arrivals,
            "sampled": len(self.samples),
            "verified": verified,
            "bad_signature": bad,
            "unsigned": unsigned,
        }


STATE = State()


async def read_body(receive: Any) -> bytes:
    chunks = []
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def reply(send: Any, status: int, body: bytes = b"", headers: Any = EMPTY) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def lifespan(receive: Any, send: Any) -> None:
    for _ in range(2):  # startup, then shutdown
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    arrival = time.time()
    method, path = scope["method"], scope["path"]
    if method == "POST" and path == "/hook":
        body = await read_body(receive)
        webhook_id = ""
        for name, value in scope["headers"]:
            if name == b"webhook-id":
                webhook_id = value.decode("latin-1")
                break
        STATE.arrivals.append((webhook_id, arrival))
        if STATE.secret is not None and (len(STATE.arrivals) - 1) % STATE.sample == 0:
            kept = {n.decode(): v.decode("latin-1") for n, v in scope["headers"] if n in SIGNED}
            STATE.samples.append((kept, body))
        await reply(send, 204)
    elif method == "GET" and path == "/count":
        await reply(send, 200, b'{"count":%d}' % len(STATE.arrivals), JSON)
    elif method == "GET" and path == "/stats":
        await reply(send, 200, json.dumps(STATE.stats()).encode(), JSON)
    elif method == "POST" and path == "/reset":
        body = await read_body(receive)
        options = json.loads(body) if body.strip() else {}
        STATE.reset(options.get("secret"), int(options.get("sample", 50)))
        await reply(send, 204)
    elif method == "GET" and path == "/":
        await reply(send, 200, b'{"ok":true}', JSON)
    else:
        await read_body(receive)
        await reply(send, 404)


def main() -> None:
    serve_bench_app(app, "a fast local webhook receiver for the bench", "webhook receiver")


if __name__ == "__main__":
    main()
