"""Independent reader for `.hsz` format 1.x, written from SPEC.md alone.

Uses only the Python standard library and numpy; it does not import hsz or constriction.
It checks every CRC, parses the metadata, the tensor directory and the raw arrays, and
decodes the tensors with a plain-Python ANS decoder (SPEC.md §6.2) -- slow, but it proves
the specification is complete.

    python format/reader.py FILE.hsz            # print the info as JSON
    python format/reader.py --tensors FILE.hsz  # also decode and summarize every tensor
"""

from __future__ import annotations

import bisect
import json
import math
import struct
import sys
import zlib
from typing import Any

import numpy as np

SIGNATURE = b"\x89HSZ\r\n\x1a\n"
KNOWN = {"META", "TDIR", "TDAT", "RAWA"}
METHODS = ["raw", "const", "categorical", "geometric", "gaussian"]
RAW_DTYPES = {1: "<f4", 2: "<f8", 3: "<f2", 4: "<i1", 5: "<i2", 6: "<i4", 7: "<i8",
              8: "<u1", 9: "<u2", 10: "<u4", 11: "<u8", 12: "|b1"}


class ReaderError(Exception):
    """The file violates SPEC.md."""


class Bytes:
    """A bounds-checked little-endian cursor."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ReaderError(f"{self.what}: read of {n} bytes at {self.pos} runs past the end")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def num(self, fmt: str) -> Any:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def name(self) -> str:
        n = self.num("H")
        if not 1 <= n <= 1024:
            raise ReaderError(f"{self.what}: bad name length {n}")
        return self.take(n).decode("utf-8")

    def shape(self) -> list[int]:
        ndim = self.num("B")
        if ndim > 8:
            raise ReaderError(f"{self.what}: ndim {ndim} > 8")
        return [self.num("I") for _ in range(ndim)]

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.pos)

    def end(self) -> None:
        if self.pos != len(self.data):
            raise ReaderError(f"{self.what}: {len(self.data) - self.pos} trailing bytes")


def crc(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def parse_container(buf: bytes) -> dict[str, Any]:
    """SPEC §3: header, table, table CRC, section placement and payload CRCs."""
    if len(buf) < 32:
        raise ReaderError("shorter than the 32-byte minimum")
    if buf[:8] != SIGNATURE:
        raise ReaderError("bad signature")
    major, minor, _flags, length, count = struct.unpack("<HHIQI", buf[8:28])
    if major != 1:
        raise ReaderError(f"unsupported major version {major}")
    if length != len(buf):
        raise ReaderError(f"declared length {length} != actual {len(buf)}")
    table_end = 32 + 28 * count
    if count > 1024 or table_end > length:
        raise ReaderError(f"section count {count} does not fit")
    if crc(buf[: table_end - 4]) != struct.unpack("<I", buf[table_end - 4 : table_end])[0]:
        raise ReaderError("table CRC mismatch")
    sections = []
    expected = table_end
    for i in range(count):
        tag, flags, off, ln, c = struct.unpack("<4sIQQI", buf[28 + 28 * i : 56 + 28 * i])
        if any(b < 0x20 or b > 0x7E for b in tag):
            raise ReaderError(f"section {i}: non-printable type")
        if off != expected or off + ln > length:
            raise ReaderError(f"section {i}: misplaced ({off}, {ln})")
        expected = off + ln
        kind = tag.decode("ascii")
        payload = buf[off : off + ln]
        if crc(payload) != c:
            raise ReaderError(f"section {kind}: CRC mismatch")
        if kind in KNOWN and any(s["type"] == kind for s in sections):
            raise ReaderError(f"section {kind} repeated")
        if kind not in KNOWN and flags & 1:
            raise ReaderError(f"unknown critical section {kind}")
        sections.append({"type": kind, "flags": flags, "critical": bool(flags & 1),
                         "offset": off, "length": ln, "crc32": c, "payload": payload})
    if expected != length:
        raise ReaderError("sections do not end at the file end")
    return {"major": major, "minor": minor, "length": length, "sections": sections}


def parse_tdir(payload: bytes, file_length: int) -> list[dict[str, Any]]:
    cur = Bytes(payload, "TDIR")
    out = []
    budget = 2**20 + 4096 * file_length
    for _ in range(cur.num("I")):
        name, shape = cur.name(), cur.shape()
        bits, axis, method, blen = cur.num("B"), cur.num("B"), cur.num("B"), cur.num("Q")
        if not 2 <= bits <= 16 or axis not in (0, 0xFF) or method > 4:
            raise ReaderError(f"TDIR entry {name!r}: bad bits/axis/method")
        if axis == 0 and not shape:
            raise ReaderError(f"TDIR entry {name!r}: per-channel scalar")
        budget -= math.prod(shape)
        if budget < 0:
            raise ReaderError("too many elements for the file size")
        if any(e["name"] == name for e in out):
            raise ReaderError(f"duplicate tensor {name!r}")
        out.append({"name": name, "shape": shape, "bits": bits,
                    "axis": None if axis == 0xFF else 0, "method": METHODS[method],
                    "bytes": blen})
    cur.end()
    return out


def parse_raw(payload: bytes) -> dict[str, np.ndarray]:
    cur = Bytes(payload, "RAWA")
    out: dict[str, np.ndarray] = {}
    for _ in range(cur.num("I")):
        name, code = cur.name(), cur.num("B")
        if code not in RAW_DTYPES:
            raise ReaderError(f"RAWA {name!r}: dtype code {code}")
        dtype = np.dtype(RAW_DTYPES[code])
        shape = cur.shape()
        codec, stored = cur.num("B"), cur.num("Q")
        body = cur.take(stored)
        need = math.prod(shape) * dtype.itemsize
        if codec == 1:
            if need > 1032 * stored + 64:
                raise ReaderError(f"RAWA {name!r}: implausible expansion")
            d = zlib.decompressobj()
            body = d.decompress(body, need)
            if not d.eof or d.unused_data:
                raise ReaderError(f"RAWA {name!r}: zlib stream does not end at its length")
        elif codec != 0:
            raise ReaderError(f"RAWA {name!r}: codec {codec}")
        if len(body) != need:
            raise ReaderError(f"RAWA {name!r}: {len(body)} bytes, expected {need}")
        out[name] = np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
    cur.end()
    return out


def info(buf: bytes) -> dict[str, Any]:
    """The same information `hsz info` reports (hsz.codec.describe), from SPEC alone."""
    c = parse_container(buf)
    by_type = {s["type"]: s for s in c["sections"]}
    for kind in ("META", "TDIR", "TDAT"):
        if kind not in by_type:
            raise ReaderError(f"missing {kind}")
    meta_payload = by_type["META"]["payload"]
    if not meta_payload or meta_payload[0] not in (0, 1):
        raise ReaderError("META encoding byte is not 0 (plain) or 1 (zlib)")
    text = meta_payload[1:] if meta_payload[0] == 0 else zlib.decompress(meta_payload[1:])
    meta = json.loads(text.decode("utf-8"))
    if not isinstance(meta, dict):
        raise ReaderError("META is not an object")
    raw = parse_raw(by_type["RAWA"]["payload"]) if "RAWA" in by_type else {}
    tensors = parse_tdir(by_type["TDIR"]["payload"], c["length"])
    if sum(e["bytes"] for e in tensors) != by_type["TDAT"]["length"]:
        raise ReaderError("TDIR block lengths do not sum to TDAT")
    return {
        "format": f"{c['major']}.{c['minor']}",
        "total_bytes": c["length"],
        "header_bytes": 32 + 28 * len(c["sections"]),
        "sections": [{k: v for k, v in s.items() if k != "payload"} for s in c["sections"]],
        "skipped": [s["type"] for s in c["sections"] if s["type"] not in KNOWN],
        "meta": meta,
        "tensors": tensors,
        "raw": [{"name": k, "dtype": v.dtype.name, "shape": list(v.shape)}
                for k, v in raw.items()],
    }


# ---------------------------------------------------------------------------- tensors


def unpack_bits(data: bytes, count: int, width: int) -> list[int]:
    big = int.from_bytes(data, "little")
    mask = (1 << width) - 1
    return [(big >> (i * width)) & mask for i in range(count)]


def side(length: int, geometric: bool, a: float) -> list[float]:
    g = [1.0]
    f = a
    a2 = a * a
    for d in range(1, length + 1):
        if d > 1 and not geometric:
            f = f * a2
        nxt = g[-1] * (a if geometric else f)
        if nxt < 2.0**-64 or g[-1] == 0.0:
            nxt = 0.0
        g.append(nxt)
    return g


def cdf(p: list[float]) -> list[int]:
    n = len(p)
    total = 0.0
    for x in p:
        total += x
    scale = float(2**24 - n) / total
    out, cum = [], 0.0
    for i, x in enumerate(p):
        out.append(int(cum * scale) + i)
        cum += x
    out.append(2**24)
    return out


def ans_decode(words: list[int], c: list[int], count: int) -> list[int]:
    k = len(words)
    state = 0
    if k:
        if words[-1] == 0:
            raise ReaderError("ANS stream ends in a zero word")
        state = words[k - 1]
        k -= 1
        while k and state < 2**32:
            state = (state << 32) | words[k - 1]
            k -= 1
    out = []
    mask = 2**24 - 1
    for _ in range(count):
        z = state & mask
        s = bisect.bisect_right(c, z) - 1
        state = (state >> 24) * (c[s + 1] - c[s]) + z - c[s]
        if state < 2**32 and k:
            state = (state << 32) | words[k - 1]
            k -= 1
        out.append(s)
    if k or state:
        raise ReaderError("ANS stream not exhausted")
    return out


def decode_levels(method: int, cur: Bytes, n_values: int, bits: int) -> list[int]:
    if method == 0:
        data = cur.rest()
        if len(data) != math.ceil(n_values * bits / 8):
            raise ReaderError("RAW length")
        return unpack_bits(data, n_values, bits)
    if method == 1:
        v = cur.num("H")
        cur.end()
        return [v] * n_values
    lo, n = cur.num("H"), cur.num("H") + 1
    if lo + n - 1 >= 2**bits:
        raise ReaderError("alphabet exceeds the bit depth")
    if method == 2:
        width = cur.num("B")
        if not 1 <= width <= 32:
            raise ReaderError("count width")
        p = [float(x) for x in unpack_bits(cur.take(math.ceil(n * width / 8)), n, width)]
    else:
        centre, a_left, a_right = cur.num("H"), cur.num("f"), cur.num("f")
        c = centre - lo
        if not 0 <= c < n or not (0 <= a_left <= 1 and 0 <= a_right <= 1):
            raise ReaderError("parametric model parameters")
        left = side(c, method == 3, a_left)
        right = side(n - 1 - c, method == 3, a_right)
        p = left[::-1] + right[1:]
    if sum(p) == 0:
        raise ReaderError("empty model")
    raw = cur.rest()
    if len(raw) % 4:
        raise ReaderError("ANS stream is not whole words")
    words = list(struct.unpack(f"<{len(raw) // 4}I", raw))
    return [s + lo for s in ans_decode(words, cdf(p), n_values)]


def decode_tensors(buf: bytes) -> dict[str, np.ndarray]:
    """Dequantized float32 tensors, by name, in directory order (SPEC §4.3, §5, §6)."""
    c = parse_container(buf)
    by_type = {s["type"]: s for s in c["sections"]}
    entries = parse_tdir(by_type["TDIR"]["payload"], c["length"])
    tdat = by_type["TDAT"]["payload"]
    if sum(e["bytes"] for e in entries) != len(tdat):
        raise ReaderError("TDIR block lengths do not sum to TDAT")
    out, pos = {}, 0
    for e in entries:
        cur = Bytes(tdat[pos : pos + e["bytes"]], f"tensor {e['name']}")
        pos += e["bytes"]
        n_params = e["shape"][0] if e["axis"] == 0 else 1
        offsets = np.frombuffer(cur.take(4 * n_params), "<f4").astype(np.float64)
        scales = np.frombuffer(cur.take(4 * n_params), "<f4").astype(np.float64)
        n_values = math.prod(e["shape"])
        q = np.array(decode_levels(METHODS.index(e["method"]), cur, n_values, e["bits"]),
                     dtype=np.float64).reshape(e["shape"])
        bshape = (-1,) + (1,) * (len(e["shape"]) - 1) if e["axis"] == 0 else ()
        w = offsets.reshape(bshape) + q * scales.reshape(bshape)
        out[e["name"]] = w.astype(np.float32)
    return out


def main(argv: list[str]) -> int:
    want_tensors = "--tensors" in argv
    paths = [a for a in argv if a != "--tensors"]
    for path in paths:
        with open(path, "rb") as fh:
            buf = fh.read()
        result = info(buf)
        if want_tensors:
            result["decoded"] = {k: {"shape": list(v.shape), "min": float(v.min(initial=0)),
                                     "max": float(v.max(initial=0))}
                                 for k, v in decode_tensors(buf).items()}
        print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
