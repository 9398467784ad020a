"""The `entropy` a test or a benchmark gives `create_app` so that its runs repeat: the same
bytes, in the same order, every run (a label per user keeps their sequences apart).

Standard library only: `bench/determinism.py --tree` imports it before it has chosen which
checkout's `simulator` to import, and tests/factories.py takes it from here too (tests/conftest
puts bench/ on the path).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable


def deterministic_entropy(label: str = "entropy") -> Callable[[int], bytes]:
    """An `entropy` function: SHA-256 of `label:0`, `label:1`, ... cut to each request."""
    counter = itertools.count()

    def entropy(n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(f"{label}:{next(counter)}".encode()).digest()
        return out[:n]

    return entropy
