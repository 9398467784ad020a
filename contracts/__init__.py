"""The published contracts (OpenAPI 3.1) and the suites that test any URL against them."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

HERE = Path(str(resources.files(__name__)))
PROVIDER = HERE / "openapi.yaml"
SANDBOX = HERE / "sandbox.yaml"
CREDITKEY = HERE / "creditkey.yaml"  # Credit Key's v1 dialect
GATEWAY = HERE / "gateway.yaml"  # the gateway + net terms personality
VCARDS = HERE / "vcards.yaml"  # the virtual cards personality
INVOICING = HERE / "invoicing.yaml"  # traditional invoicing (EDI 810/820)
