"""The reference integration is provider-neutral outside `integration/adapters/`: no module
there imports a provider's adapter or names a provider, so the ERP, the ledger, the GL mapping
and reconciliation cannot branch on one. Checked on the source (tokens, no imports run).

"Sandbank" is also the product's name: `sandbank integration` (the command), the
`sandbank_integration` metrics, the `sandbank.integration` loggers and the
`urn:sandbank:integration` problem types are the product, not a provider, and are allowed.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

from integration.adapters import PROVIDERS, TICKET_SYSTEMS

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "integration"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if PACKAGE / "adapters" not in p.parents)
PRODUCT = re.compile(
    r"sandbank(?=[ _.]integration|_correlation|:integration)|urn:sandbank:|"
    r"sandbank's reference integration",
    re.IGNORECASE,
)
# Provider names as prose may write them; `gateway` alone is also a generic word (a payment
# gateway), so only code (string literals, names) may not say it.
PROSE_NAMES = re.compile(
    r"\b(sandbank|credit ?key|credit_key|zendesk|service ?now)\b", re.IGNORECASE
)
# The support desks the ticket sink talks to are named only in their adapters too.
NAMED = (*PROVIDERS, *TICKET_SYSTEMS)
ADAPTER_MODULES = {
    f"integration.adapters.{name}"
    for name in ("sandbank", "creditkey", "gateway", "vcard", "invoicing")
}


def offences(path: Path) -> list[str]:
    source = path.read_text()
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        found += [f"{node.lineno}: imports {n}" for n in names if n in ADAPTER_MODULES]
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        text = PRODUCT.sub("", tok.string)
        line = tok.start[0]
        if tok.type in (tokenize.COMMENT, tokenize.STRING) and PROSE_NAMES.search(text):
            found.append(f"{line}: names a provider: {tok.string.strip()[:60]}")
        elif tok.type == tokenize.STRING and any(
            re.search(rf"\b{p}\b", text, re.IGNORECASE)
            for p in NAMED
            if not tok.string.startswith(('"""', "'''"))
        ):
            found.append(f"{line}: a provider's name in code: {tok.string[:60]}")
        elif tok.type == tokenize.NAME and tok.string.lower() in NAMED:
            found.append(f"{line}: a provider's name in code: {tok.string}")
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_outside_the_adapters_names_a_provider(path: Path) -> None:
    assert offences(path) == []


def test_the_check_finds_a_provider_named_in_code(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from integration.adapters.gateway import to_event\n"
        'if provider == "creditkey":\n'
        "    pass  # Credit Key only\n"
        'kind = "gateway"\n'
    )
    assert len(offences(bad)) == 5
    good = tmp_path / "good.py"
    good.write_text('log = "sandbank.integration"  # the sandbank integration command\n')
    assert offences(good) == []


def test_every_provider_has_an_adapter_module() -> None:
    assert {f"integration.adapters.{p}" for p in PROVIDERS} == ADAPTER_MODULES
