"""compose.yaml's one-shot `wire` service: make the account the reference integration uses,
register the integration's webhook endpoint on it, and leave the API key and the signing
secret in /wire for the integration to start with. A second run finds them and does nothing.

Standard library only: it runs in the Sandbank image, against the simulator's control plane.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

SIMULATOR = os.environ.get("SANDBANK_URL", "http://simulator:8080")
ADMIN = os.environ["SANDBANK_ADMIN_TOKEN"]
ENDPOINT = os.environ.get("INTEGRATION_WEBHOOK_URL", "http://integration:8090/webhooks/provider")
OUT = Path(os.environ.get("WIRE_DIR", "/wire"))


def call(path: str, token: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(  # noqa: S310 - the compose network's simulator
        SIMULATOR + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - same
        return dict(json.load(response))


def main() -> int:
    if (OUT / "api_key").exists() and (OUT / "webhook_secret").exists():
        sys.stdout.write("wire: already done\n")
        return 0
    account = call("/_sandbox/accounts", ADMIN, {"name": "integration", "seed": 1})
    key = str(account["api_key"])
    endpoint = call("/v1/webhook_endpoints", key, {"url": ENDPOINT, "enabled_events": ["*"]})
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "account").write_text(str(account["id"]))
    (OUT / "webhook_secret").write_text(str(endpoint["secret"]))
    (OUT / "api_key").write_text(key)  # last: its presence means the rest is there
    sys.stdout.write(f"wire: account {account['id']}, webhooks to {ENDPOINT}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
