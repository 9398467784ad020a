"""One seeded random source per account, counter-based so it survives restarts.

Draw n of an account is BLAKE2b(account id, seed, n): the same seed and the same requests give
the same ids and dice, across restarts and workers, because the counter is persisted with the
account in the same transaction as the objects it named.

An id is its prefix, the counter of its draw in `SORT_DIGITS` letters, then the draw: an
account's ids sort in the order it made them. Why: each table's `id` index took every new id
at a random place, so under load every group commit rewrote a page of each index per row it
added (two thirds of the ~27 KB of WAL a POST wrote, and the checkpoints that copy it back:
issue #18). Ids made in order go where the last ones went. Letters only, so that no id holds
a run of digits a card-number scanner would flag.
"""

from __future__ import annotations

import hashlib
import struct

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Two base-62 digits at a time, least significant first: _PAIRS[n] spells n % 3844 (= 62**2).
_PAIRS = tuple(_ALPHABET[n % 62] + _ALPHABET[n // 62] for n in range(62 * 62))
_COUNTER = struct.Struct("<Q").pack
ID_LENGTH = 20
_LETTERS = _ALPHABET[10:]  # A-Z then a-z: in ASCII order
SORT_DIGITS = 6  # the counter in base 52: 52**6 (~2e10) draws before the order wraps
# Two of those letters at a time, most significant first: _LETTER_PAIRS[n] spells n (< 52**2).
_LETTER_PAIRS = tuple(high + low for high in _LETTERS for low in _LETTERS)


class SeededRng:
    __slots__ = ("_keyed", "_namespace", "_seed", "counter")

    def __init__(self, namespace: str, seed: int, counter: int = 0) -> None:
        self._namespace = namespace
        self._seed = seed
        # The keyed state, copied for each draw (cheaper than keying a new hash every time);
        # made at the first draw: every account transaction has an RNG, most reads never draw.
        self._keyed: hashlib.blake2b | None = None
        self.counter = counter

    def _key(self) -> hashlib.blake2b:
        key = hashlib.blake2b(f"{self._namespace}\x00{self._seed}".encode(), digest_size=32)
        self._keyed = hashlib.blake2b(key=key.digest(), digest_size=16)
        return self._keyed

    def _next(self) -> bytes:
        digest = (self._keyed or self._key()).copy()
        digest.update(_COUNTER(self.counter))
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
        if length <= 21:
            value = int.from_bytes(self._next(), "little")
        else:
            blocks = -(-length // 21)
            value = int.from_bytes(b"".join([self._next() for _ in range(blocks)]), "little")
        # The base-62 digits of `value`, least significant first, two per division.
        parts = []
        for _ in range(length >> 1):
            value, pair = divmod(value, 3844)
            parts.append(_PAIRS[pair])
        if length & 1:
            parts.append(_ALPHABET[value % 62])
        return "".join(parts)

    def id(self, prefix: str) -> str:
        """`prefix_`, this draw's counter in letters (most significant first), the draw."""
        n, pairs = self.counter, _LETTER_PAIRS
        # three pairs of letters, the most significant first (52**4 = 7,311,616; 52**2 = 2,704)
        head = pairs[n // 7_311_616 % 2704] + pairs[n // 2704 % 2704] + pairs[n % 2704]
        return f"{prefix}_{head}{self.token(ID_LENGTH - SORT_DIGITS)}"
