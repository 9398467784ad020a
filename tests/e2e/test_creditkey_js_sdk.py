"""The real creditkey-js SDK (1.3.1, its committed CommonJS build) against `sandbank serve`.

The SDK is not part of this repository: it is read from CREDITKEY_JS_SDK (a checkout of
creditkey/creditkey-js) or, failing that, from the git mirror at CREDITKEY_JS_MIRROR (default
/work/.mirror/creditkey+creditkey-js/repo), whose `lib/` is extracted into the test's temporary
directory. Without node (v18+, for fetch) or the SDK the test is skipped and says why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from e2e_servers import StartServer

from rehearsal.processes import free_port

pytestmark = pytest.mark.slow

ADMIN = "sbadm_e2e_creditkey_js"
MIRROR = Path(os.environ.get("CREDITKEY_JS_MIRROR", "/work/.mirror/creditkey+creditkey-js/repo"))
SCRIPT = """
const ck = require(process.argv[2]);
const [key, base] = [process.argv[3], process.argv[4]];
const client = new ck.Client(key, base);
const cart = [new ck.CartItem('123', 'Widget', 19.99, 'W-1', 2, null, null)];
const address = new ck.Address('Ada', 'Lovelace', 'Acme Supply Co', 'ap+approve@acme.com',
  '100 Main Street', null, 'New York', 'NY', '10017', null);
const charges = new ck.Charges(100, 0, 0, 0, 100);
(async () => {
  const out = {};
  out.displayed = await client.is_displayed_in_checkout(cart);
  out.begun = await client.begin_checkout(cart, address, null, charges, 'JS-1', 'C-9',
    'https://shop.test/ck/return?id=%CKKEY%', 'https://shop.test/ck/cancel');
  out.customer = await client.get_customer('ap@acme.com', 'C-9');
  try { await client.get_customer('ap@acme.com', 'nobody'); out.unknown = 'resolved'; }
  catch (e) { out.unknown = String(e); }
  console.log(JSON.stringify(out));
})().catch((e) => { console.log(JSON.stringify({ failed: String(e) })); process.exit(1); });
"""


def _sdk(tmp: Path) -> Path:
    """The SDK's `lib/index.js`, from a checkout or extracted from the git mirror."""
    given = os.environ.get("CREDITKEY_JS_SDK")
    if given:
        index = Path(given) / "lib" / "index.js"
        if not index.is_file():
            pytest.skip(f"CREDITKEY_JS_SDK={given} has no lib/index.js")
        return index
    git = shutil.which("git")
    if git is None or not MIRROR.is_dir():
        pytest.skip(f"creditkey-js not found: set CREDITKEY_JS_SDK, or fetch it to {MIRROR}")
    archive = subprocess.run(
        [git, f"--git-dir={MIRROR}", "archive", "HEAD", "lib"],
        capture_output=True,
        check=False,
        timeout=60,
    )
    if archive.returncode != 0:
        pytest.skip(f"cannot read creditkey-js from {MIRROR}: {archive.stderr[:200]!r}")
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True, timeout=60)
    return tmp / "lib" / "index.js"


def test_creditkey_js_begins_a_checkout_with_the_public_key_alone(
    start_server: StartServer, tmp_path: Path
) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (the real creditkey-js needs it)")
    index = _sdk(tmp_path)
    server = start_server(tmp_path / "data", free_port(), "--admin-token", ADMIN, "--no-demo")
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        made = http.post(
            "/_sandbox/accounts",
            json={"name": "js shop"},
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        assert made.status_code == 201, made.text
        public_key = made.json()["creditkey"]["public_key"]
        script = tmp_path / "run.js"
        script.write_text(SCRIPT)
        ran = subprocess.run(
            [node, str(script), str(index), public_key, server.url],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        out = json.loads(ran.stdout.strip().splitlines()[-1])
        assert out["displayed"] is True
        ck_id = out["begun"]["id"]
        assert out["begun"]["checkout_url"] == f"{server.url}/hosted/creditkey/modal/{ck_id}"
        assert out["customer"]["status"] == "pending"
        assert out["unknown"] == "Error: Not Found"  # a non-2xx rejects with the reason phrase
        # The page the SDK's modal would load (modal=true), and its phone rewrite.
        modal = http.get(f"/hosted/creditkey/modal/{ck_id}", params={"modal": "true"})
        assert modal.status_code == 200
        assert "postMessage" in modal.text
        assert http.get(f"/hosted/creditkey/redirect/{ck_id}").status_code == 200
