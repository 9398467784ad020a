"""One seeded random source per account, counter-based so it survives restarts.

Draw n of an account is BLAKE2b(account id, seed, n): the same seed and the same requests give
the same ids and dice, across restarts and workers, because the counter is persisted with the
account in the same transaction as the objects it named.
"""

from __future__ import annotations

import hashlib
import struct

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 20


class SeededRng:
    __slots__ = ("_key", "counter")

    def __init__(self, namespace: str, seed: int, counter: int = 0) -> None:
        self._key = hashlib.blake2b(f"{namespace}\x00{seed}".encode(), digest_size=32).digest()
        self.counter = counter

    def _next(self) -> bytes:
        digest = hashlib.blake2b(struct.pack("<Q", self.counter), key=self._key, digest_size=16)
        self.counter += 1
        return digest.digest()

    def u64(self) -> int:
        return int.from_bytes(self._next()[:8], "little")

    def randint(self, low: int, high: int) -> int:
        """Uniform integer in [low, high] (inclusive), without modulo bias worth measuring."""
        span = high - low + 1
        return low + int.from_bytes(self._next(), "little") % span

    def random(self) -> float:
        """Uniform float in [0, 1): for probabilities and jitter, never for money."""
        return (self.u64() >> 11) * (1.0 / (1 << 53))

    def token(self, length: int = ID_LENGTH) -> str:
        # 128 bits give 21 base-62 characters; draw more blocks for longer tokens.
        blocks = -(-length // 21)
        value = int.from_bytes(b"".join(self._next() for _ in range(blocks)), "little")
        chars = []
        for _ in range(length):
            value, rem = divmod(value, 62)
            chars.append(_ALPHABET[rem])
        return "".join(chars)

    def id(self, prefix: str) -> str:
        return f"{prefix}_{self.token()}"

    def faker_seed(self) -> int:
        """A seed for a Faker instance, so generated names and addresses follow the account seed."""
        return self.u64()
