"""Vendor Redoc's standalone bundle (MIT) into simulator/api/static/ for the /docs page.

The page must work offline and load nothing from a CDN, so the one file it needs ships as
package data. This script is how it got there and how to update it: `npm pack` of the pinned
version from the npm registry, checked against the digest below, then the bundle and its
licence copied. Run: python tools/vendor_redoc.py
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "2.5.1"
BUNDLE_SHA256 = "2d8d13e94b5a21011cc6f8260d87ca475d0f6f2faed16dd12e7394dfa3bb05b8"
TARGET = Path(__file__).resolve().parent.parent / "simulator" / "api" / "static"


def main() -> int:
    npm = shutil.which("npm")
    if npm is None:
        print("vendor_redoc: npm is not installed")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(  # noqa: S603 - npm from PATH, fixed arguments
            [npm, "pack", f"redoc@{VERSION}", "--silent"], cwd=tmp, check=True, timeout=300
        )
        with tarfile.open(Path(tmp) / f"redoc-{VERSION}.tgz") as archive:
            archive.extractall(tmp, filter="data")
        bundle = Path(tmp) / "package" / "bundles" / "redoc.standalone.js"
        digest = hashlib.sha256(bundle.read_bytes()).hexdigest()
        if digest != BUNDLE_SHA256:
            print(f"vendor_redoc: redoc@{VERSION} bundle digest {digest} is not the pinned one")
            return 1
        TARGET.mkdir(parents=True, exist_ok=True)
        shutil.copy(bundle, TARGET / "redoc.standalone.js")
        shutil.copy(Path(tmp) / "package" / "LICENSE", TARGET / "redoc.LICENSE")
        shutil.copy(bundle.with_name("redoc.standalone.js.LICENSE.txt"), TARGET)
    print(f"vendor_redoc: redoc@{VERSION} -> {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
