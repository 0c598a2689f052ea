"""Bounded little-endian reading: every read is checked against what is really there.

Parsing a damaged file must fail with a :class:`FormatError` that names the place, never
with an ``IndexError`` or a ``struct.error`` from deep inside, and never by allocating
what a corrupted length field claims.  Every parser in :mod:`hsz.codec` reads through a
:class:`Cursor` so that this is true by construction.
"""

from __future__ import annotations

import struct

from hsz.errors import FormatError, HszError

#: Appended to messages about damage the user cannot repair in place.
DAMAGED = "the file is damaged; re-copy it or encode the cube again"


class Cursor:
    """Sequential reader over one section's bytes, reporting absolute file offsets."""

    def __init__(self, buf: bytes | memoryview, base: int, what: str) -> None:
        self._buf = memoryview(buf)
        self._pos = 0
        self.base = base
        self.what = what

    @property
    def remaining(self) -> int:
        return len(self._buf) - self._pos

    @property
    def offset(self) -> int:
        """Absolute file offset of the next byte, for messages."""
        return self.base + self._pos

    def fail(self, problem: str) -> FormatError:
        """Build (not raise) an error located at the current position."""
        return FormatError(f"{self.what} at offset {self.offset}: {problem}; {DAMAGED}")

    def take(self, n: int) -> memoryview:
        if n < 0 or n > self.remaining:
            raise self.fail(f"needs {n} bytes but only {self.remaining} remain")
        view = self._buf[self._pos : self._pos + n]
        self._pos += n
        return view

    def _unpack(self, fmt: str) -> int | float:
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(size))[0]

    def u8(self) -> int:
        return int(self._unpack("<B"))

    def u16(self) -> int:
        return int(self._unpack("<H"))

    def u32(self) -> int:
        return int(self._unpack("<I"))

    def u64(self) -> int:
        return int(self._unpack("<Q"))

    def f32(self) -> float:
        return float(self._unpack("<f"))

    def text(self, n: int) -> str:
        """Read ``n`` bytes of strict UTF-8."""
        raw = bytes(self.take(n))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"name is not valid UTF-8 ({exc.reason})") from None

    def expect_end(self) -> None:
        if self.remaining:
            raise self.fail(f"{self.remaining} unexpected bytes after the last record")


def u8(v: int) -> bytes:
    return struct.pack("<B", v)


def u16(v: int) -> bytes:
    return struct.pack("<H", v)


def u32(v: int) -> bytes:
    return struct.pack("<I", v)


def u64(v: int) -> bytes:
    return struct.pack("<Q", v)


def f32(v: float) -> bytes:
    return struct.pack("<f", v)


# ---------------------------------------------------------------- common encodings (SPEC §4)

MAX_NAME_BYTES = 1024

#: dtype codes of raw arrays and band curves (little-endian on disk).
DTYPES: dict[int, str] = {
    1: "float32", 2: "float64", 3: "float16",
    4: "int8", 5: "int16", 6: "int32", 7: "int64",
    8: "uint8", 9: "uint16", 10: "uint32", 11: "uint64", 12: "bool",
}
DTYPE_CODES = {v: k for k, v in DTYPES.items()}


def name_bytes(name: str) -> bytes:
    """A name: u16 byte length, then UTF-8."""
    if not isinstance(name, str) or not name:
        raise HszError(f"array names must be non-empty strings, got {name!r}")
    data = name.encode("utf-8")
    if len(data) > MAX_NAME_BYTES:
        raise HszError(f"array name {name[:40]!r}... is longer than {MAX_NAME_BYTES} bytes")
    return u16(len(data)) + data


def read_name(cur: Cursor) -> str:
    n = cur.u16()
    if n == 0 or n > MAX_NAME_BYTES:
        raise cur.fail(f"name length {n} is outside 1..{MAX_NAME_BYTES}")
    return cur.text(n)
