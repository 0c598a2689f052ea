"""Independent reader for `.hsz` format 1.x, written from SPEC.md alone.

Uses only the Python standard library and numpy; it does not import hsz or constriction.
It checks every CRC, parses the metadata, the tensor directory and the raw arrays, and
decodes the tensors with a plain-Python ANS decoder (SPEC.md §6.2) -- slow, but it proves
the specification is complete.  Format 1.1 grids (``LATS``, SPEC.md §6.3) are decoded too:
their context network is evaluated here with numpy integers from the spec's rule, so every
symbol of every file is checked without hsz.  Format 1.2 band curves (``BNDS``, SPEC.md
§4.6) are put back into the metadata and raw arrays, and methods 5-7 (§6.4) are undone.
Format 1.3 tiled files (§4.7) are checked tile by tile: each ``TILE`` payload is read as a
file of its own, its window checked against the grid the scene's tile size gives.  Format
1.4 tiles with a margin are checked against their window grown by the margin.  Grids under
context rules 1 (1.5), 2 (1.6), 3 (1.7, whose channel biases are Exp-Golomb codes) and 4
(1.8, whose network layers are Exp-Golomb codes too) are decoded by the same plain loops.

    python format/reader.py FILE.hsz            # print the info as JSON
    python format/reader.py --tensors FILE.hsz  # also decode and summarize every tensor/grid
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
KNOWN = {"META", "BNDS", "TDIR", "TDAT", "RAWA", "LATS", "TILE"}
METHODS = ["raw", "const", "categorical", "geometric", "gaussian",
           "categorical/delta", "geometric/delta", "gaussian/delta"]
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
        if kind in KNOWN and kind != "TILE" and any(s["type"] == kind for s in sections):
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
        if not 2 <= bits <= 16 or axis not in (0, 0xFF) or method > 7:
            raise ReaderError(f"TDIR entry {name!r}: bad bits/axis/method")
        if axis == 0 and not shape:
            raise ReaderError(f"TDIR entry {name!r}: per-channel scalar")
        if method >= 5 and (not shape or shape[0] < 2):
            raise ReaderError(f"TDIR entry {name!r}: differences need a first axis of 2 or more")
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


BAND_PLACES = {0: ("wavelengths", "fwhm"), 1: ("band_low", "band_high")}


def golomb_values(stream: bytes, orders: list[int], what: str = "BNDS") -> list[int]:
    """One Exp-Golomb code per entry of ``orders`` (its order), bits least significant
    first (SPEC §4.6)."""
    bits = [(byte >> i) & 1 for byte in stream for i in range(8)]
    pos, out = 0, []

    def bit() -> int:
        nonlocal pos
        if pos >= len(bits):
            raise ReaderError(f"{what}: stream ends early")
        pos += 1
        return bits[pos - 1]

    for r in orders:
        m = 0
        while bit():
            m += 1
            if m + r > 62:
                raise ReaderError(f"{what}: code over 62 bits")
        v = sum(bit() << i for i in range(m + r))
        out.append(2 ** (m + r) + v - 2**r)
    if len(bits) - pos >= 8 or any(bits[pos:]):
        raise ReaderError(f"{what}: bits left over")
    return out


def unzigzag(z: int) -> int:
    return z // 2 if z % 2 == 0 else -(z + 1) // 2


def packed_bias(cur: Bytes, channels: int, group: int, name: str) -> np.ndarray:
    """Rule 3's channel biases (SPEC §4.5): exponents, orders, then 2C codes."""
    q0, q1, r0, r1 = cur.num("B"), cur.num("B"), cur.num("B"), cur.num("B")
    length = cur.num("I")
    if max(q0, q1, r0, r1) > 15 or 2 * channels > 8 * length:
        raise ReaderError(f"grid {name}: channel bias parameters")
    z = golomb_values(cur.take(length), [r0] * channels + [r1] * channels, f"grid {name} bias")
    cb = np.zeros((channels, 2), dtype=np.int64)
    for j, q in enumerate((q0, q1)):
        k: list[int] = []
        for c in range(channels):
            pred = k[c - group] if c >= group else (k[c - 1] if c > 0 else 0)
            k.append(unzigzag(z[j * channels + c]) + pred)
            if not -(2**15) <= k[c] * 2**q < 2**15:
                raise ReaderError(f"grid {name}: channel bias beyond int16")
        cb[:, j] = [v * 2**q for v in k]
    return cb


def packed_layers(cur: Bytes, n_layers: int, width: int, name: str
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Rule 4's layers (SPEC §4.5): shapes, then (qw, rw, qb, rb) per layer, then one
    Exp-Golomb stream of each layer's weights (row-major) and biases."""
    shapes = []
    for _ in range(n_layers):
        o, i = cur.num("H"), cur.num("H")
        if i != width or not 1 <= o <= 256:
            raise ReaderError(f"grid {name}: layer {o}x{i} after width {width}")
        shapes.append((o, i))
        width = o
    params = [tuple(cur.num("B") for _ in range(4)) for _ in range(n_layers)]
    if any(qw > 15 or rw > 15 or qb > 31 or rb > 31 for qw, rw, qb, rb in params):
        raise ReaderError(f"grid {name}: network exponents or orders out of range")
    length = cur.num("I")
    orders: list[int] = []
    for (o, i), (_, rw, _, rb) in zip(shapes, params, strict=True):
        orders += [rw] * (o * i) + [rb] * o
    if len(orders) > 8 * length:
        raise ReaderError(f"grid {name}: network stream too short")
    z = golomb_values(cur.take(length), orders, f"grid {name} network")
    layers, at = [], 0
    for (o, i), (qw, _, qb, _) in zip(shapes, params, strict=True):
        w = np.array([unzigzag(v) * 2**qw for v in z[at:at + o * i]], np.int64).reshape(o, i)
        at += o * i
        b = np.array([unzigzag(v) * 2**qb for v in z[at:at + o]], np.int64)
        at += o
        if w.min() < -(2**15) or w.max() >= 2**15 or b.min() < -(2**31) or b.max() >= 2**31:
            raise ReaderError(f"grid {name}: network value beyond its integer width")
        layers.append((w, b))
    return layers


def parse_bands(payload: bytes) -> list[tuple[str, int, np.ndarray]]:
    """(name, place, values) of every band curve (SPEC §4.6)."""
    cur = Bytes(payload, "BNDS")
    if cur.num("B") != 0:
        raise ReaderError("BNDS: unknown layout")
    count = cur.num("H")
    if count > 4:
        raise ReaderError("BNDS: too many curves")
    out: list[tuple[str, int, np.ndarray]] = []
    for _ in range(count):
        name, place, code, n = cur.name(), cur.num("B"), cur.num("B"), cur.num("I")
        if name not in BAND_PLACES.get(place, ()) or any(o[0] == name for o in out):
            raise ReaderError(f"BNDS: curve {name!r} in place {place}")
        if code not in RAW_DTYPES or code == 12 or (place == 0 and code != 2):
            raise ReaderError(f"BNDS {name!r}: dtype code {code}")
        if not 1 <= n <= 2**20:
            raise ReaderError(f"BNDS {name!r}: {n} values")
        dtype = np.dtype(RAW_DTYPES[code])
        method = cur.num("B")
        if method == 0:
            values = np.frombuffer(cur.take(n * dtype.itemsize), dtype).astype(
                dtype.newbyteorder("="))
        elif method == 1:
            p, d, r, length = cur.num("B"), cur.num("B"), cur.num("B"), cur.num("I")
            if p > 15 or d > 2 or r > 24 or (dtype.kind in "iu" and p):
                raise ReaderError(f"BNDS {name!r}: parameters")
            if n > 8 * length:
                raise ReaderError(f"BNDS {name!r}: too many values for the stream")
            x = [unzigzag(z) for z in golomb_values(cur.take(length), [r] * n)]
            for _ in range(d):
                x = [sum(x[: i + 1]) for i in range(len(x))]
            if any(abs(k) > 2**53 for k in x):
                raise ReaderError(f"BNDS {name!r}: integer beyond 2^53")
            if dtype.kind in "iu":
                lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
                if any(not lo <= k <= hi for k in x):
                    raise ReaderError(f"BNDS {name!r}: value outside its type")
                values = np.array(x, dtype.newbyteorder("="))
            else:
                values = (np.array(x, np.float64) / np.float64(10**p)).astype(
                    dtype.newbyteorder("="))
        else:
            raise ReaderError(f"BNDS {name!r}: method {method}")
        if place == 0 and not np.all(np.isfinite(values)):
            raise ReaderError(f"BNDS {name!r}: not finite")
        out.append((name, place, values))
    cur.end()
    return out


def tile_windows(meta: dict[str, Any], count: int) -> list[list[int]]:
    """SPEC §4.7: the window of each of the ``count`` tiles the scene's tile size makes."""
    size, shape = meta.get("tiles", {}).get("size"), meta.get("shape")
    if not (isinstance(size, list) and len(size) == 2 and isinstance(shape, list)
            and len(shape) == 3 and all(isinstance(v, int) and v >= 1 for v in size + shape)):
        raise ReaderError("tiled file without a valid tile size and shape")
    rows, cols = shape[1], shape[2]
    tr, tc = min(size[0], rows), min(size[1], cols)
    gr, gc = -(-rows // tr), -(-cols // tc)
    if gr * gc != count:
        raise ReaderError(f"tile size gives {gr * gc} tiles, file holds {count}")
    out = []
    for i in range(count):
        r, c = divmod(i, gc)
        out.append([r * tr, c * tc, min(tr, rows - r * tr), min(tc, cols - c * tc)])
    return out


def tile_margin(meta: dict[str, Any]) -> int:
    """SPEC §4.7 (1.4): pixels each tile was coded beyond its window; 0 when absent."""
    m = meta.get("tiles", {}).get("margin", 0)
    if not (type(m) is int and 0 <= m <= 64):
        raise ReaderError(f"tile margin {m!r} is not an integer in 0 ... 64")
    return m


def coded_windows(meta: dict[str, Any], count: int) -> list[list[int]]:
    """SPEC §4.7: each tile's window grown by the margin on every side, inside the scene."""
    m = tile_margin(meta)
    rows, cols = meta["shape"][1], meta["shape"][2]
    out = []
    for r, c, h, w in tile_windows(meta, count):
        top, left = max(0, r - m), max(0, c - m)
        out.append([top, left, min(rows, r + h + m) - top, min(cols, c + w + m) - left])
    return out


def tiles(buf: bytes) -> list[tuple[list[int], bytes]]:
    """(coded window, embedded file) of every tile of a tiled file, each window checked."""
    c = parse_container(buf)
    found = [s for s in c["sections"] if s["type"] == "TILE"]
    if not found:
        return []
    windows = coded_windows(read_meta(c), len(found))
    out = []
    for w, s in zip(windows, found, strict=True):
        inner = parse_container(s["payload"])
        if read_meta(inner).get("window") != w:
            raise ReaderError(f"tile at offset {s['offset']} is not at window {w}")
        out.append((w, s["payload"]))
    return out


def read_meta(c: dict[str, Any]) -> dict[str, Any]:
    """SPEC §4.1: the META object of a parsed container."""
    by_type = {s["type"]: s for s in c["sections"]}
    if "META" not in by_type:
        raise ReaderError("missing META")
    meta_payload = by_type["META"]["payload"]
    if not meta_payload or meta_payload[0] not in (0, 1):
        raise ReaderError("META encoding byte is not 0 (plain) or 1 (zlib)")
    text = meta_payload[1:] if meta_payload[0] == 0 else zlib.decompress(meta_payload[1:])
    meta = json.loads(text.decode("utf-8"))
    if not isinstance(meta, dict):
        raise ReaderError("META is not an object")
    return meta


def info(buf: bytes) -> dict[str, Any]:
    """The same information `hsz info` reports (hsz.codec.describe), from SPEC alone."""
    c = parse_container(buf)
    by_type = {s["type"]: s for s in c["sections"]}
    tiled = "TILE" in by_type
    for kind in ("META",) if tiled else ("META", "TDIR", "TDAT"):
        if kind not in by_type:
            raise ReaderError(f"missing {kind}")
    if tiled and any(k in by_type for k in ("TDIR", "TDAT", "LATS")):
        raise ReaderError("a tiled file holds tensors outside its tiles")
    meta = read_meta(c)
    raw = parse_raw(by_type["RAWA"]["payload"]) if "RAWA" in by_type else {}
    for name, place, values in (parse_bands(by_type["BNDS"]["payload"])
                                if "BNDS" in by_type else []):
        home: dict[str, Any] = meta if place == 0 else raw
        if name in home:
            raise ReaderError(f"{name!r} is stored twice")
        home[name] = [float(v) for v in values] if place == 0 else values
    tensors = [] if tiled else parse_tdir(by_type["TDIR"]["payload"], c["length"])
    if not tiled and sum(e["bytes"] for e in tensors) != by_type["TDAT"]["length"]:
        raise ReaderError("TDIR block lengths do not sum to TDAT")
    out = {
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
    if tiled:
        found = [s for s in c["sections"] if s["type"] == "TILE"]
        margin = tile_margin(meta)
        out["tiles"] = [{"window": w, **({"coded": cw} if margin else {}),
                         "offset": s["offset"], "length": s["length"]}
                        for w, cw, s in zip(tile_windows(meta, len(found)),
                                            coded_windows(meta, len(found)), found,
                                            strict=True)]
    if "LATS" in by_type:
        out["grids"] = [g["info"] for g in parse_lats(by_type["LATS"]["payload"])]
    return out


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


def decode_levels(method: int, cur: Bytes, n_values: int, bits: int,
                  rows: int = 1) -> list[int]:
    if method >= 5:  # SPEC §6.4: differences along the first axis, modulo 2^b
        r = np.array(decode_levels(method - 3, cur, n_values, bits), np.int64)
        r = r.reshape(rows, -1) - 2 ** (bits - 1)
        q = np.zeros_like(r)
        prev = np.zeros(r.shape[1], np.int64)
        for i in range(rows):
            prev = (prev + r[i]) % 2**bits
            q[i] = prev
        return [int(v) for v in q.reshape(-1)]
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
        rows = e["shape"][0] if e["shape"] else 1
        q = np.array(decode_levels(METHODS.index(e["method"]), cur, n_values, e["bits"], rows),
                     dtype=np.float64).reshape(e["shape"])
        bshape = (-1,) + (1,) * (len(e["shape"]) - 1) if e["axis"] == 0 else ()
        w = offsets.reshape(bshape) + q * scales.reshape(bshape)
        out[e["name"]] = w.astype(np.float32)
    return out


# ---------------------------------------------------------------------------- grids (1.1)

#: SPEC §6.3: float32 bit patterns of the 76 scale-table decays a_g, g the global table id
#: (scale 2^((g - 30)/6)); rule 0 uses g = 12 .. 75, rule 1 all of them.
DECAYS = [
    0x28642328, 0x2AEA07E5, 0x2D240817, 0x2F23C56C, 0x30F1B3EB, 0x32883F0D, 0x33F1AADE, 0x352D13EF,
    0x364CEB73, 0x374CC1CA, 0x382FE453, 0x39040F0D,
    0x39AFE108, 0x3A527E97, 0x3AE50A4F, 0x3B64F306, 0x3BD432E4, 0x3C37DDF0, 0x3C960AAE, 0x3CE82286,
    0x3D2B38F8, 0x3D7218DE, 0x3DA4CEAB, 0x3DD8F4C1, 0x3E0A9555, 0x3E2C6017, 0x3E515CFE, 0x3E78F398,
    0x3E913E09, 0x3EA6A4FC, 0x3EBC5AB2, 0x3ED2111E, 0x3EE7829F, 0x3EFC7380, 0x3F085950, 0x3F120CB4,
    0x3F1B4598, 0x3F23FA31, 0x3F2C24AE, 0x3F33C2A0, 0x3F3AD463, 0x3F415C91, 0x3F475F7D, 0x3F4CE2C4,
    0x3F51ECE8, 0x3F5684FF, 0x3F5AB270, 0x3F5E7CBB, 0x3F61EB51, 0x3F650575, 0x3F67D223, 0x3F6A5801,
    0x3F6C9D52, 0x3F6EA7F6, 0x3F707D60, 0x3F72229D, 0x3F739C52, 0x3F74EEC2, 0x3F761DD2, 0x3F772D0C,
    0x3F781FAB, 0x3F78F89B, 0x3F79BA7F, 0x3F7A67BA, 0x3F7B0275, 0x3F7B8C9F, 0x3F7C07F5, 0x3F7C760A,
    0x3F7CD845, 0x3F7D2FE8, 0x3F7D7E16, 0x3F7DC3D0, 0x3F7E01FF, 0x3F7E3972, 0x3F7E6AE2, 0x3F7E96F6,
]


class AnsStream:
    """The §6.2 decoding loop, kept open across several models (one stream per grid)."""

    def __init__(self, words: list[int]) -> None:
        self.words, self.k, self.state = words, len(words), 0
        if self.k:
            if words[-1] == 0:
                raise ReaderError("ANS stream ends in a zero word")
            self.state = words[self.k - 1]
            self.k -= 1
            while self.k and self.state < 2**32:
                self.state = (self.state << 32) | words[self.k - 1]
                self.k -= 1

    def decode(self, c: list[int], count: int) -> list[int]:
        out = []
        for _ in range(count):
            z = self.state & (2**24 - 1)
            s = bisect.bisect_right(c, z) - 1
            self.state = (self.state >> 24) * (c[s + 1] - c[s]) + z - c[s]
            if self.state < 2**32 and self.k:
                self.state = (self.state << 32) | self.words[self.k - 1]
                self.k -= 1
            out.append(s)
        return out

    def finish(self) -> None:
        if self.k or self.state:
            raise ReaderError("grid ANS stream not exhausted")


#: SPEC §6.3: float32 bit patterns of the 76 edge ratios c_g = p(1)/p(0).
EDGES = [
    0x3371AAE0, 0x34AD13F6, 0x35CCEB9C, 0x36CCC26E, 0x37AFE637, 0x3884134F, 0x392FF023, 0x39D2A9DC,
    0x3A6570C5, 0x3AE5BFC8, 0x3B5592AC, 0x3BB9EE2C,
    0x3C18CA32, 0x3C6EB67B, 0x3CB2614A, 0x3D003407, 0x3D3211D9, 0x3D6FF07F, 0x3D9D56AB, 0x3DC96468,
    0x3DFC2B3C, 0x3E1ABCE8, 0x3E3A71B4, 0x3E5CE22C, 0x3E80D2AE, 0x3E942095, 0x3EA8188F, 0x3EBC76A6,
    0x3ED0F855, 0x3EE55F32, 0x3EF972F1, 0x3F068160, 0x3F0FF2FF, 0x3F18FE30, 0x3F2196DA, 0x3F29B4A2,
    0x3F31528A, 0x3F386E7B, 0x3F3F08CB, 0x3F4523D0, 0x3F4AC36A, 0x3F4FECA6, 0x3F54A567, 0x3F58F41D,
    0x3F5CDF86, 0x3F606E80, 0x3F63A7E1, 0x3F669258, 0x3F693459, 0x3F6B9409, 0x3F6DB73B, 0x3F6FA361,
    0x3F715D92, 0x3F72EA81, 0x3F744E86, 0x3F758D9C, 0x3F76AB68, 0x3F77AB3E, 0x3F789023, 0x3F795CD5,
    0x3F7A13D0, 0x3F7AB752, 0x3F7B4962, 0x3F7BCBD1, 0x3F7C4045, 0x3F7CA837, 0x3F7D04FA, 0x3F7D57BE,
    0x3F7DA193, 0x3F7DE36F, 0x3F7E1E2B, 0x3F7E528C, 0x3F7E813F, 0x3F7EAAE3, 0x3F7ED001, 0x3F7EF118,
]

_TABLES: dict[tuple[int, int], list[int]] = {}


def _f32(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def rung(j: int) -> float:
    """Rule 2's zero ratio 2^(-j/2) (SPEC §6.3): 2^(-1/2) as float32, times a power of 2."""
    r = 1.0 if j % 2 == 0 else _f32(0x3F3504F3)
    for _ in range(j // 2):
        r = r / 2.0
    return r


def table(t: int | tuple[int, int], bits: int) -> list[int]:
    """CDF of scale table t, or of rule 2's (scale table, rung) pair, over residuals
    -(2^b - 1) .. 2^b - 1 (SPEC §6.3)."""
    if (t, bits) not in _TABLES:
        if isinstance(t, tuple):
            a, c = _f32(DECAYS[t[0]]), rung(t[1])
        else:
            a, c = _f32(DECAYS[t]), _f32(EDGES[t])
        g = [1.0]
        for d in range(1, 2**bits):
            nxt = g[-1] * (c if d == 1 else a)
            g.append(0.0 if nxt < 2.0**-64 or g[-1] == 0.0 else nxt)
        _TABLES[(t, bits)] = cdf(g[::-1] + g[1:])
    return _TABLES[(t, bits)]


def grid_features(grid: np.ndarray, guide: np.ndarray | None, c: int, parity: int,
                  rule: int = 1, group: int = 1
                  ) -> tuple[list[tuple[int, int]], np.ndarray]:
    """SPEC §6.3 feature rows for pass ``parity`` of channel c, written out position by
    position (no shared code with hsz)."""
    _, h, w = grid.shape

    def at(ch: int, y: int, x: int) -> int:
        if ch < 0 or not (0 <= y < h and 0 <= x < w):
            return 0
        return int(grid[ch, y, x])

    rows, where = [], []
    for y in range(h):
        for x in range(w):
            if (y + x) % 2 != parity:
                continue
            f = [0, 0, 0, 0]
            if parity == 1:
                f = [at(c, y - 1, x), at(c, y + 1, x), at(c, y, x - 1), at(c, y, x + 1)]
            f += [at(c - 1, y, x), at(c - 1, y - 1, x), at(c - 1, y + 1, x),
                  at(c - 1, y, x - 1), at(c - 1, y, x + 1)]
            if guide is not None:
                gc, gh, gw = guide.shape
                k, gy, gx = min(c, gc - 1), (y * gh) // h, (x * gw) // w

                def gv(yy: int, xx: int, k: int = k, gh: int = gh, gw: int = gw) -> int:
                    return int(guide[k, yy, xx]) if 0 <= yy < gh and 0 <= xx < gw else 0

                f += [gv(gy, gx), gv(gy - 1, gx), gv(gy + 1, gx), gv(gy, gx - 1), gv(gy, gx + 1)]
            else:
                f += [0, 0, 0, 0, 0]
            if rule in (2, 3, 4):
                b = c - group
                f += [at(b, y, x), at(b, y - 1, x), at(b, y + 1, x), at(b, y, x - 1),
                      at(b, y, x + 1)]
            rows.append(f + [abs(v) for v in f])
            where.append((y, x))
    return where, np.array(rows, dtype=np.int64).reshape(len(rows), -1)


#: SPEC §6.3: context rule -> (table zero, table count).
RULE_TABLES = {0: (18, 64), 1: (30, 76), 2: (30, 76), 3: (30, 76), 4: (30, 76)}


def run_net(net: dict[str, Any], feats: np.ndarray, c: int, bits: int, rule: int
            ) -> tuple[np.ndarray, list[Any]]:
    frac, lim = net["frac"], 2**30
    h = np.clip(feats * 2**frac, -lim, lim)
    for i, (w, b) in enumerate(net["layers"]):
        acc = h @ w.T + b * 2**frac
        h = np.clip(np.floor_divide(acc, 2**frac), -lim, lim)
        if i < len(net["layers"]) - 1:
            h = np.maximum(h, 0)
    mu = h[:, 0] + net["channel_bias"][c, 0]
    ls = h[:, 1] + net["channel_bias"][c, 1]
    half = 2**frac // 2
    centre = np.clip(np.floor_divide(mu + half, 2**frac), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    zero, count = RULE_TABLES[rule]
    t = np.clip(np.floor_divide(ls * 6 + half, 2**frac) + zero, 0, count - 1) + 30 - zero
    if rule in (2, 3, 4):
        j = np.clip(np.floor_divide(-2 * mu + half, 2**frac), 0, 48)
        return centre * 0, [(int(a), int(b)) for a, b in zip(t, j, strict=True)]
    return centre, [int(a) for a in t]


def parse_lats(payload: bytes, decode: bool = False) -> list[dict[str, Any]]:
    cur = Bytes(payload, "LATS")
    out: list[dict[str, Any]] = []
    grids: dict[str, np.ndarray | list[int]] = {}
    networks: dict[str, tuple[int, list[tuple[np.ndarray, np.ndarray]]]] = {}
    for _ in range(cur.num("I")):
        name = cur.name()
        if name in grids:
            raise ReaderError(f"grid {name} repeated")
        shape = cur.shape()
        if len(shape) != 3 or 0 in shape:
            raise ReaderError(f"grid {name}: shape {shape}")
        bits, rule = cur.num("B"), cur.num("B")
        if not 2 <= bits <= 16 or rule not in RULE_TABLES:
            raise ReaderError(f"grid {name}: bits {bits}, rule {rule}")
        group = cur.num("B") if rule in (2, 3, 4) else 1
        if group < 1:
            raise ReaderError(f"grid {name}: group {group}")
        n = cur.num("H")
        guide = cur.take(n).decode("utf-8") if n else None
        if guide is not None and guide not in grids:
            raise ReaderError(f"grid {name}: guide {guide} is not an earlier grid")
        n = cur.num("H")
        shares = cur.take(n).decode("utf-8") if n else None
        if shares is not None:
            if shares not in networks:
                raise ReaderError(f"grid {name}: shares {shares}, not an earlier grid")
            frac, layers = networks[shares]
            if layers[0][0].shape[1] != (38 if rule in (2, 3, 4) else 28):
                raise ReaderError(f"grid {name}: shares a network of another rule's width")
        else:
            width = 38 if rule in (2, 3, 4) else 28
            frac, n_layers = cur.num("B"), cur.num("B")
            if frac > 12 or not 1 <= n_layers <= 4:
                raise ReaderError(f"grid {name}: frac {frac}, {n_layers} layers")
            if rule == 4:
                layers = packed_layers(cur, n_layers, width, name)
                width = layers[-1][0].shape[0]
            else:
                layers = []
                for _ in range(n_layers):
                    o, i = cur.num("H"), cur.num("H")
                    if i != width or not 1 <= o <= 256:
                        raise ReaderError(f"grid {name}: layer {o}x{i} after width {width}")
                    w = np.frombuffer(cur.take(2 * o * i), "<i2").astype(np.int64).reshape(o, i)
                    b = np.frombuffer(cur.take(4 * o), "<i4").astype(np.int64)
                    layers.append((w, b))
                    width = o
            if width != 2:
                raise ReaderError(f"grid {name}: the network ends with {width} outputs")
        networks[name] = (frac, layers)
        if rule in (3, 4):
            cb = packed_bias(cur, shape[0], group, name)
        else:
            cb = np.frombuffer(cur.take(4 * shape[0]), "<i2").astype(np.int64).reshape(
                shape[0], 2)
        length = cur.num("Q")
        stream = cur.take(length)
        if length % 4:
            raise ReaderError(f"grid {name}: stream is not whole words")
        net = {"frac": frac, "layers": layers, "channel_bias": cb}
        entry = {"info": {"name": name, "shape": shape, "bits": bits,
                          **({"rule": rule} if rule else {}),
                          **({"group": group} if rule in (2, 3, 4) else {}), "guide": guide,
                          "context_layers": [list(w.shape) for w, _ in layers],
                          "bytes": length}, "channel_bias": cb, "layers": layers}
        if decode:
            ans = AnsStream(list(struct.unpack(f"<{length // 4}I", stream)))
            grid = np.zeros(shape, dtype=np.int64)
            g = grids[guide] if guide is not None else None
            for c in range(shape[0]):
                for parity in (0, 1):
                    where, feats = grid_features(grid, g, c, parity,  # type: ignore[arg-type]
                                                 rule, group)
                    centre, t = run_net(net, feats, c, bits, rule)
                    values = [0] * len(where)
                    for tab in sorted(set(t)):
                        idx = [j for j in range(len(where)) if t[j] == tab]
                        syms = ans.decode(table(tab, bits), len(idx))
                        for j, sym in zip(idx, syms, strict=True):
                            values[j] = sym - (2**bits - 1) + int(centre[j])
                    for (y, x), v in zip(where, values, strict=True):
                        grid[c, y, x] = v
            ans.finish()
            if grid.min() < -(2 ** (bits - 1)) or grid.max() > 2 ** (bits - 1) - 1:
                raise ReaderError(f"grid {name}: levels leave the {bits}-bit range")
            entry["levels"] = grid.astype(np.int32)
            grids[name] = grid
        else:
            grids[name] = [0] * shape[0]  # only the channel count matters for the layout
        out.append(entry)
    cur.end()
    return out


def decode_grids(buf: bytes) -> dict[str, np.ndarray]:
    """Every LATS grid as int32 levels, by name, in section order (SPEC §6.3)."""
    c = parse_container(buf)
    by_type = {s["type"]: s for s in c["sections"]}
    if "LATS" not in by_type:
        return {}
    return {g["info"]["name"]: g["levels"]
            for g in parse_lats(by_type["LATS"]["payload"], decode=True)}


def main(argv: list[str]) -> int:
    want_tensors = "--tensors" in argv
    paths = [a for a in argv if a != "--tensors"]
    for path in paths:
        with open(path, "rb") as fh:
            buf = fh.read()
        result = info(buf)
        if want_tensors:
            parts = [(f"tile{i}/", t) for i, (_, t) in enumerate(tiles(buf))] or [("", buf)]
            arrays = {p + k: v for p, b in parts
                      for k, v in {**decode_tensors(b), **decode_grids(b)}.items()}
            result["decoded"] = {k: {"shape": list(v.shape), "min": float(v.min(initial=0)),
                                     "max": float(v.max(initial=0))}
                                 for k, v in arrays.items()}
        print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
