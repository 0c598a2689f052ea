"""Exp-Golomb codes in a least-significant-bit-first bit stream (SPEC.md §4.6).

Two parts of a file are short runs of small signed integers that no probability model is
worth sending for: band curves (``BNDS``, format 1.2) and the channel biases of context
rule 3 (``LATS``, format 1.7).  Both write each integer zigzagged (0, −1, 1, −2 … → 0, 1,
2, 3 …) as an Exp-Golomb code of an order ``r`` the writer picks: values near 2^r cost
about 2·log2 of their size, so a jump costs its bit length twice, not its magnitude.
"""

from __future__ import annotations

import numpy as np

from hsz.codec.binio import Cursor

#: Longest unary prefix a reader accepts (the value then has at most 62 bits).
MAX_PREFIX = 62


def zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def unzigzag(z: int) -> int:
    return z // 2 if z % 2 == 0 else -(z + 1) // 2


def code_bits(zs: list[int], r: int) -> int:
    """Length in bits of the order-``r`` codes of every (non-negative) ``z``."""
    return sum(2 * (z + (1 << r)).bit_length() - 1 - r for z in zs)


def best_order(zs: list[int], top: int) -> int:
    """The order in 0 … ``top`` that codes ``zs`` in the fewest bits (the lowest on ties)."""
    return min(range(top + 1), key=lambda r: (code_bits(zs, r), r))


class Writer:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def code(self, z: int, r: int) -> None:
        """Exp-Golomb of order r: (n − 1 − r) ones, a zero, then the n − 1 low bits of
        u = z + 2^r (n = bit length of u), least significant first."""
        u = z + (1 << r)
        n = u.bit_length()
        self.bits += [1] * (n - 1 - r) + [0]
        self.bits += [(u >> i) & 1 for i in range(n - 1)]

    def payload(self) -> bytes:
        return np.packbits(np.array(self.bits, np.uint8), bitorder="little").tobytes()


class Reader:
    """Reads codes from ``data``; damage is reported through ``cur`` as ``what``'s."""

    def __init__(self, data: bytes, cur: Cursor, what: str) -> None:
        self.bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little").tolist()
        self.pos = 0
        self.cur = cur
        self.what = what

    def _bit(self) -> int:
        if self.pos >= len(self.bits):
            raise self.cur.fail(f"{self.what} ends early")
        b = self.bits[self.pos]
        self.pos += 1
        return b

    def code(self, r: int) -> int:
        m = 0
        while self._bit():
            m += 1
            if m + r > MAX_PREFIX:
                raise self.cur.fail(f"{self.what} holds a value over 62 bits")
        low = 0
        for i in range(m + r):
            low |= self._bit() << i
        return ((1 << (m + r)) | low) - (1 << r)

    def finish(self) -> None:
        """Refuse a stream with a whole byte, or any set bit, after its last code."""
        rest = self.bits[self.pos:]
        if len(rest) >= 8 or any(rest):
            raise self.cur.fail(f"{self.what} has bytes or bits left over")
