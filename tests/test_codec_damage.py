"""Damage sweep: every corruption gives a FormatError quickly, never another exception."""

from __future__ import annotations

import struct
import time
import zlib

import numpy as np
import pytest

from hsz.codec import describe, pack, unpack
from hsz.codec.container import FLAG_CRITICAL, read_container, write_container
from hsz.errors import FormatError


def _good() -> bytes:
    rng = np.random.default_rng(7)
    tensors = {"w": rng.normal(0, 0.1, (24, 40)).astype(np.float32),
               "b": rng.normal(0, 0.1, 24).astype(np.float32),
               "lap": rng.laplace(0, 0.1, 2000).astype(np.float32),
               "c": np.ones(5, np.float32)}
    return pack({"k": "v", "n": [1, 2]}, tensors, bits={"w": 4, "b": 8, "lap": 8, "c": 8},
                raw={"mins": np.arange(12, dtype=np.float64)})


GOOD = _good()


def _refused(buf: bytes, budget_s: float = 2.0) -> FormatError:
    start = time.perf_counter()
    with pytest.raises(FormatError) as info:
        unpack(buf)
    with pytest.raises(FormatError):
        describe(buf)
    assert time.perf_counter() - start < budget_s
    message = str(info.value)
    assert "\n" not in message and message
    return info.value


def test_good_file_reads() -> None:
    assert unpack(GOOD).meta == {"k": "v", "n": [1, 2]}


def test_truncated_everywhere() -> None:
    cuts = sorted(set(range(0, 200)) | set(range(200, len(GOOD), max(1, len(GOOD) // 150))))
    for cut in cuts:
        _refused(GOOD[:cut])


def test_empty_and_random() -> None:
    _refused(b"")
    rng = np.random.default_rng(0)
    for n in (1, 7, 31, 32, 40, 1000):
        _refused(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
        _refused(b"\x89HSZ\r\n\x1a\n" + rng.integers(0, 256, n, dtype=np.uint8).tobytes())


def test_flipped_byte_in_every_region() -> None:
    c = read_container(GOOD)
    offsets = list(range(0, c.header_bytes))
    for s in c.sections:
        offsets += [s.offset, s.offset + s.length // 2, s.offset + s.length - 1]
    for off in offsets:
        buf = bytearray(GOOD)
        buf[off] ^= 0x5A
        _refused(bytes(buf))


def test_trailing_garbage() -> None:
    _refused(GOOD + b"\0")


def _reheader(buf: bytes, **fields: int) -> bytes:
    """Rewrite header fields and fix the table CRC, as a hostile writer could."""
    count = struct.unpack("<I", buf[24:28])[0]
    head = bytearray(buf[:28 + 28 * count])
    major, minor, flags, length, count = struct.unpack("<HHIQI", head[8:28])
    vals = {"major": major, "minor": minor, "flags": flags, "length": length, "count": count}
    vals.update(fields)
    head[8:28] = struct.pack("<HHIQI", *vals.values())
    end = 28 + 28 * count
    return bytes(head) + struct.pack("<I", zlib.crc32(head) & 0xFFFFFFFF) + buf[end + 4:]


def test_future_major_and_huge_counts() -> None:
    assert "newer hsz" in str(_refused(_reheader(GOOD, major=3)))
    _refused(_reheader(GOOD, major=0))
    _refused(_reheader(GOOD, length=2**63))
    _refused(_reheader(GOOD, count=2**32 - 1))
    _refused(_reheader(GOOD, count=1000))


def _entry_patched(buf: bytes, index: int, offset: int | None = None,
                   length: int | None = None) -> bytes:
    count = struct.unpack("<I", buf[24:28])[0]
    head = bytearray(buf[:28 + 28 * count])
    at = 28 + 28 * index
    kind, flags, off, ln, crc = struct.unpack("<4sIQQI", head[at:at + 28])
    head[at:at + 28] = struct.pack("<4sIQQI", kind, flags, off if offset is None else offset,
                                   ln if length is None else length, crc)
    return bytes(head) + struct.pack("<I", zlib.crc32(head) & 0xFFFFFFFF) + buf[len(head) + 4:]


def test_sections_outside_overlapping_or_huge() -> None:
    c = read_container(GOOD)
    _refused(_entry_patched(GOOD, 1, offset=c.sections[0].offset))  # overlap
    _refused(_entry_patched(GOOD, 1, offset=c.sections[1].offset + 1))  # gap
    _refused(_entry_patched(GOOD, 0, length=2**64 - 1))  # huge
    _refused(_entry_patched(GOOD, 3, offset=len(GOOD) + 10))  # outside
    _refused(_entry_patched(GOOD, 0, offset=0))  # into the header


def _sections(**replace: bytes) -> bytes:
    c = read_container(GOOD)
    return write_container([(s.type, s.flags, replace.get(s.type, s.data)) for s in c.sections])


def test_hostile_payloads_with_valid_crcs() -> None:
    """Consistent CRCs but lying contents: still FormatError, no big allocation, no hang."""
    tdir = read_container(GOOD).require("TDIR").data
    assert tdir is not None
    _refused(_sections(TDIR=struct.pack("<I", 2**32 - 1)))  # absurd tensor count
    # one tensor claiming 2^31 x 2^31 x ... elements
    entry = (struct.pack("<H", 1) + b"x" + struct.pack("<B", 4)
             + struct.pack("<IIII", *[2**31 - 1] * 4) + bytes([8, 0xFF, 2]) + struct.pack("<Q", 10))
    _refused(_sections(TDIR=struct.pack("<I", 1) + entry))
    # valid directory, junk coded data of the right total length
    tdat = read_container(GOOD).require("TDAT")
    rng = np.random.default_rng(1)
    for _ in range(20):
        junk = rng.integers(0, 256, tdat.length, dtype=np.uint8).tobytes()
        try:
            unpack(_sections(TDAT=junk))
        except FormatError:
            pass
    # raw arrays: absurd zlib expansion, bad codec
    raw = (struct.pack("<I", 1) + struct.pack("<H", 1) + b"r" + bytes([2, 1])
           + struct.pack("<I", 2**31 - 1) + bytes([1]) + struct.pack("<Q", 4) + b"\x78\x9c\x03\x00")
    _refused(_sections(RAWA=raw))
    _refused(_sections(RAWA=struct.pack("<I", 2**31)))
    _refused(write_container([("META", FLAG_CRITICAL, b"{}"),
                              ("TDIR", FLAG_CRITICAL, struct.pack("<I", 0)),
                              ("TDAT", FLAG_CRITICAL, b"extra")]))


def test_random_byte_flips_never_escape() -> None:
    rng = np.random.default_rng(11)
    for _ in range(150):
        buf = bytearray(GOOD)
        for off in rng.integers(0, len(buf), rng.integers(1, 4)):
            buf[off] = rng.integers(0, 256)
        if bytes(buf) == GOOD:
            continue
        _refused(bytes(buf))


def test_hostile_rule_2_grid_headers_with_valid_crcs() -> None:
    """A rule-2 grid's group byte and network width are checked before use: group 0, a
    rule the header does not define, or a network of rule 1's width are refused."""
    from hsz.codec import context
    from hsz.codec.payload import Grid

    rng = np.random.default_rng(3)
    levels = np.where(rng.random((3, 9, 8)) < 0.2, rng.integers(-5, 6, (3, 9, 8)), 0)
    net = context.IntNet.from_float([rng.normal(0, 0.2, (4, context.inputs(2))),
                                     rng.normal(0, 0.2, (2, 4))], [np.zeros(4), np.zeros(2)],
                                    rng.normal(0, 0.5, (3, 2)))
    good = pack({}, {}, grids={"g": Grid(levels.astype(np.int32), 8, net, rule=2, group=3)})
    assert np.array_equal(unpack(good).grids["g"], levels)
    c = read_container(good)
    lats = bytearray(c.require("LATS").data)
    # count (4), name (2 + 1), shape (1 + 3·4), bits, rule, then the group byte
    at = 4 + 3 + 13 + 2
    assert lats[at - 1] == 2 and lats[at] == 3

    def rebuilt(payload: bytes) -> bytes:
        return write_container([(s.type, s.flags, payload if s.type == "LATS" else s.data)
                                for s in c.sections], minor=6)

    for patch in ({at: 0}, {at - 1: 3}, {at - 1: 1}):
        bad = bytearray(lats)
        for i, v in patch.items():
            bad[i] = v
        _refused(rebuilt(bytes(bad)))
