"""`make lint`'s contract linters: openapi-spec-validator (a dev dependency) on both published
documents, then Redocly's recommended rules (`redocly lint`).

Redocly is a Node tool: it is installed once with npm into a cache outside the repository
(`$XDG_CACHE_HOME/sandbank/npm`, pinned below) and run from there. Where npm is missing or the
registry cannot be reached, that step is skipped with the reason printed; errors from a linter
that did run fail the build (Redocly's warnings are printed and do not).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [
    ROOT / "contracts" / name
    for name in (
        "openapi.yaml",
        "sandbox.yaml",
        "creditkey.yaml",
        "gateway.yaml",
        "vcards.yaml",
        "invoicing.yaml",
    )
]
REDOCLY = "@redocly/cli@2.77.0"
NPM_TIMEOUT = 300  # seconds for the one-time install


def spec_validator() -> int:
    failed = 0
    for path in DOCUMENTS:
        document, _ = read_from_filename(str(path))
        try:
            validate(document)
        except Exception as exc:  # every validator error is reported, then fails
            print(f"openapi-spec-validator: {path.name}: {exc}")
            failed = 1
        else:
            print(f"openapi-spec-validator: {path.name}: OK")
    return failed


def _cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sandbank" / "npm"


def redocly() -> int:
    cache = _cache()
    binary = cache / "node_modules" / ".bin" / "redocly"
    if not binary.exists():
        npm = shutil.which("npm")
        if npm is None:
            print("redocly lint: skipped (npm is not installed)")
            return 0
        cache.mkdir(parents=True, exist_ok=True)
        try:
            installed = subprocess.run(  # noqa: S603 - npm found on PATH, fixed arguments
                [npm, "install", "--prefix", str(cache), "--no-audit", "--no-fund", REDOCLY],
                capture_output=True,
                text=True,
                timeout=NPM_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            print(f"redocly lint: skipped (npm install {REDOCLY} took over {NPM_TIMEOUT}s)")
            return 0
        if installed.returncode != 0 or not binary.exists():
            last = (installed.stderr or installed.stdout).strip().splitlines()[-1:] or ["?"]
            print(f"redocly lint: skipped (npm install {REDOCLY} failed: {last[0]})")
            return 0
    env = {**os.environ, "REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true"}
    result = subprocess.run(  # noqa: S603 - our cached binary, fixed arguments
        [str(binary), "lint", "--format=stylish", *map(str, DOCUMENTS)],
        capture_output=True,
        text=True,
        env=env,
        timeout=NPM_TIMEOUT,
        check=False,
    )
    lines = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip() and not line.lstrip().startswith(("║", "╔", "╚"))  # Node EOL banner
    ]
    print("\n".join(f"redocly lint: {line}" for line in lines))
    return 1 if result.returncode else 0


def main() -> int:
    return spec_validator() | redocly()


if __name__ == "__main__":
    sys.exit(main())
