"""The file-level API: network parameters + metadata  <->  ``.hsz`` bytes.

Sections written by format 1.0 (SPEC.md §4), in this order, all critical:

* ``META`` — an encoding byte, then the metadata object as compact UTF-8 JSON with sorted
  keys (so the same metadata always gives the same bytes, which keeps golden files
  stable), deflated when that is shorter.
* ``TDIR`` — the tensor directory: name, shape, bits, layout, coding method and block
  length per tensor.  Small, so ``hsz info`` can list tensors without reading ``TDAT``.
* ``TDAT`` — one block per tensor, back to back: float32 offsets, float32 scales, then the
  coded levels (:mod:`hsz.codec.entropy`).
* ``RAWA`` — arrays stored exactly (normalization constants), zlib-compressed when smaller.
  Omitted when there are none.

Format 1.1 adds one critical section, written only when a family stores integer grids (so a
file without them is byte-for-byte a 1.0 file):

* ``LATS`` — context-coded integer grids (:mod:`hsz.codec.context`), in decoding order.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hsz.codec import bands, binio, context, entropy
from hsz.codec.binio import DAMAGED, Cursor
from hsz.codec.container import (
    FLAG_CRITICAL,
    Container,
    read_container,
    read_container_header,
    write_container,
)
from hsz.codec.payload import Grid
from hsz.codec.quantize import (
    DEFAULT_BITS,
    MAX_BITS,
    MIN_BITS,
    AxisChoice,
    QuantizedTensor,
    from_stored,
    quantize,
)
from hsz.codec.tilegrid import describe_tiles
from hsz.errors import FormatError, HszError

# ---------------------------------------------------------------------------- limits

MAX_META_BYTES = 16 << 20
#: First byte of META: how the JSON text that follows is stored.
META_PLAIN = 0
META_ZLIB = 1
MAX_NDIM = 8
MAX_ARRAYS = 65535
MAX_DIM = (1 << 31) - 1
#: Decoded values allowed per byte of file: an entropy coder can legitimately spend far
#: less than a bit per value, but not this little; caps what a hostile file can allocate.
VALUES_PER_FILE_BYTE = 4096
VALUES_BASE = 1 << 20
#: zlib cannot expand by more than ~1032:1; anything claiming more is damaged.
ZLIB_MAX_RATIO = 1032

AXIS_NONE = 0xFF
#: Files whose grids use context rule 1 (finer scale tables) are format 1.5.
FINE_RULE_MINOR = 5
#: Files whose grids use context rule 2 (free zero ratio, the group feature) are 1.6.
RATIO_RULE_MINOR = 6
#: Files whose grids use context rule 3 (rule 2 with its channel biases coded) are 1.7.
PACKED_RULE_MINOR = 7
#: Files whose grids use context rule 4 (rule 3 with the network's layers coded) are 1.8.
PACKED_NET_MINOR = 8
RAW_STORED, RAW_ZLIB = 0, 1


@dataclass
class Unpacked:
    """Everything a file holds, decoded.  ``tensors`` are dequantized float32."""

    meta: dict[str, Any]
    tensors: dict[str, np.ndarray]
    raw: dict[str, np.ndarray]
    sections: list[tuple[str, int, int, int]]
    version: tuple[int, int]
    quantized: dict[str, QuantizedTensor] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    grids: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class DirEntry:
    name: str
    shape: tuple[int, ...]
    bits: int
    axis: int | None
    method: int
    length: int

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "bits": self.bits,
                "axis": self.axis, "method": entropy.METHOD_NAMES[self.method],
                "bytes": self.length}


# ---------------------------------------------------------------------------- metadata


def meta_json(meta: Mapping[str, Any]) -> bytes:
    """The exact META payload for ``meta`` (compact, sorted keys, UTF-8, no NaN)."""
    if not isinstance(meta, Mapping):
        raise HszError(f"metadata must be a dict, got {type(meta).__name__}")
    try:
        text = json.dumps(dict(meta), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise HszError(f"metadata cannot be stored as JSON: {exc}") from None
    data = text.encode("utf-8")
    if len(data) > MAX_META_BYTES:
        raise HszError(f"metadata is {len(data)} bytes; the limit is {MAX_META_BYTES}")
    # Wavelength, FWHM and CRS text dominate the metadata and deflate well; on a 200-band
    # AVIRIS scene the section shrinks from 3.5 kB to 1.4 kB, 0.004 bpppb of the rate.
    packed = zlib.compress(data, 9)
    if len(packed) < len(data):
        return bytes([META_ZLIB]) + packed
    return bytes([META_PLAIN]) + data


def _reject_constant(token: str) -> None:
    raise ValueError(f"{token} is not allowed")


def parse_meta(payload: bytes, offset: int) -> dict[str, Any]:
    where = f"metadata section (offset {offset})"
    if not payload:
        raise FormatError(f"{where} is empty; {DAMAGED}")
    encoding, payload = payload[0], payload[1:]
    if encoding == META_ZLIB:
        dec = zlib.decompressobj()
        try:
            payload = dec.decompress(payload, MAX_META_BYTES + 1)
        except zlib.error:
            raise FormatError(f"{where}: the deflate stream is damaged; {DAMAGED}") from None
        if not dec.eof or dec.unused_data or dec.unconsumed_tail:
            raise FormatError(f"{where}: the deflate stream does not end where the section "
                              f"does, or expands past {MAX_META_BYTES} bytes; {DAMAGED}")
    elif encoding != META_PLAIN:
        raise FormatError(f"{where} uses unknown encoding {encoding}; {DAMAGED}")
    if len(payload) > MAX_META_BYTES:
        raise FormatError(f"{where} is {len(payload)} bytes, over the {MAX_META_BYTES} limit; "
                          f"{DAMAGED}")
    try:
        value = json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FormatError(f"{where} is not valid UTF-8 JSON ({reason}); {DAMAGED}") from None
    if not isinstance(value, dict):
        raise FormatError(f"{where} holds a JSON {type(value).__name__}, not an object; "
                          f"{DAMAGED}")
    return value


# ---------------------------------------------------------------------------- writing


def _shape_bytes(name: str, shape: tuple[int, ...]) -> bytes:
    if len(shape) > MAX_NDIM or any(d > MAX_DIM for d in shape):
        raise HszError(f"array {name!r} has shape {shape}; at most {MAX_NDIM} dimensions "
                       f"of at most {MAX_DIM} are supported")
    return binio.u8(len(shape)) + b"".join(binio.u32(d) for d in shape)


def quantize_all(tensors: Mapping[str, np.ndarray], bits: int | Mapping[str, int] = DEFAULT_BITS,
                 axis: AxisChoice | Mapping[str, AxisChoice] = "auto"
                 ) -> dict[str, QuantizedTensor]:
    """Quantize every tensor as :func:`pack` would (same order, same choices)."""
    out = {}
    for name, w in tensors.items():
        b = bits[name] if isinstance(bits, Mapping) else bits
        a = axis[name] if isinstance(axis, Mapping) else axis
        out[name] = quantize(name, w, b, a)
    return out


def dequantized(tensors: Mapping[str, np.ndarray], bits: int | Mapping[str, int] = DEFAULT_BITS,
                axis: AxisChoice | Mapping[str, AxisChoice] = "auto") -> dict[str, np.ndarray]:
    """The float32 tensors a decoder will see, without packing (for measuring PSNR loss)."""
    return {k: qt.dequantize() for k, qt in quantize_all(tensors, bits, axis).items()}


def _tensor_sections(qts: Mapping[str, QuantizedTensor]) -> tuple[bytes, bytes, bool]:
    """TDIR and TDAT payloads, and whether any tensor used difference coding (1.2)."""
    directory = [binio.u32(len(qts))]
    blocks = []
    uses_delta = False
    for name, qt in qts.items():
        if name != qt.name:
            raise HszError(f"tensor key {name!r} does not match its name {qt.name!r}")
        rows = qt.shape[0] if len(qt.shape) >= 1 else None
        method, coded = entropy.encode_values(qt.q, qt.bits, rows)
        uses_delta |= method >= entropy.DELTA_CATEGORICAL
        params = (qt.offsets.astype("<f4").tobytes() + qt.scales.astype("<f4").tobytes())
        block = params + coded
        directory += [binio.name_bytes(name), _shape_bytes(name, qt.shape),
                      binio.u8(qt.bits), binio.u8(AXIS_NONE if qt.axis is None else qt.axis),
                      binio.u8(method), binio.u64(len(block))]
        blocks.append(block)
    return b"".join(directory), b"".join(blocks), uses_delta


def _raw_section(raw: Mapping[str, np.ndarray]) -> bytes:
    parts = [binio.u32(len(raw))]
    for name, value in raw.items():
        arr = np.asarray(value)
        code = binio.DTYPE_CODES.get(arr.dtype.name)
        if code is None:
            raise HszError(f"raw array {name!r} has dtype {arr.dtype}; supported: "
                           f"{', '.join(binio.DTYPE_CODES)}")
        data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        packed = zlib.compress(data, 9)
        codec, stored = (RAW_ZLIB, packed) if len(packed) < len(data) else (RAW_STORED, data)
        parts += [binio.name_bytes(name), binio.u8(code), _shape_bytes(name, arr.shape),
                  binio.u8(codec), binio.u64(len(stored)), stored]
    return b"".join(parts)


def _grid_section(grids: Mapping[str, Grid]) -> bytes:
    parts = [binio.u32(len(grids))]
    levels: dict[str, np.ndarray] = {}
    nets: dict[str, context.IntNet] = {}
    for name, g in grids.items():
        lv = np.asarray(g.levels)
        if not context.MIN_BITS <= g.bits <= context.MAX_BITS:
            raise HszError(f"grid {name!r}: {g.bits} bits is outside "
                           f"{context.MIN_BITS}..{context.MAX_BITS}")
        if g.rule not in context.RULES:
            raise HszError(f"grid {name!r}: unknown context rule {g.rule}")
        for role, other in (("guided", g.guide), ("shares the network of", g.shares)):
            if other is not None and other not in levels:
                raise HszError(f"grid {name!r} {role} {other!r}, which is not an earlier grid")
        if g.shares is not None and not g.net.same_layers(nets[g.shares]):
            raise HszError(f"grid {name!r} shares {g.shares!r}'s network but its layers differ")
        try:
            stream = context.encode(lv, g.bits, g.net,
                                    None if g.guide is None else levels[g.guide], g.rule,
                                    g.group)
        except ValueError as exc:
            raise HszError(f"grid {name!r}: {exc}") from None
        guide_name = b"" if g.guide is None else g.guide.encode("utf-8")
        shares_name = b"" if g.shares is None else g.shares.encode("utf-8")
        parts += [binio.name_bytes(name), _shape_bytes(name, lv.shape), binio.u8(g.bits),
                  binio.u8(g.rule),
                  binio.u8(g.group) if g.rule in context.RATIO_RULES else b"",
                  binio.u16(len(guide_name)), guide_name,
                  binio.u16(len(shares_name)), shares_name,
                  b"" if g.shares is not None else g.net.layer_bytes(g.rule),
                  g.net.bias_bytes(g.rule, g.group),
                  binio.u64(len(stream)), stream]
        levels[name] = lv
        nets[name] = g.net
    return b"".join(parts)


@dataclass(frozen=True)
class CodedGrids:
    """A ``LATS`` payload already coded, so that packing the same grids again (landing
    tries many tensor bit depths around fixed grids) does not run the context coder again."""

    payload: bytes
    #: The context rules the grids use (they decide the format version).
    rules: frozenset[int] = frozenset()


def code_grids(grids: Mapping[str, Grid]) -> CodedGrids:
    """Code ``grids`` once; :func:`pack` accepts the result wherever it accepts grids."""
    return CodedGrids(_grid_section(grids) if grids else b"",
                      frozenset(g.rule for g in grids.values()))


def pack_quantized(meta: Mapping[str, Any], qtensors: Mapping[str, QuantizedTensor],
                   raw: Mapping[str, np.ndarray] | None = None,
                   grids: Mapping[str, Grid] | CodedGrids | None = None) -> bytes:
    """Write already-quantized tensors (what :func:`quantize_all` returned).

    The per-band curves (wavelengths, band widths, band ranges) go to ``BNDS`` and the
    file is format 1.2, as is any file whose tensors use difference coding.
    """
    meta_rest, raw_rest, bnds = bands.split(meta, raw or {})
    tdir, tdat, uses_delta = _tensor_sections(qtensors)
    sections = [("META", FLAG_CRITICAL, meta_json(meta_rest))]
    if bnds:
        sections.append(("BNDS", FLAG_CRITICAL, bnds))
    sections += [("TDIR", FLAG_CRITICAL, tdir), ("TDAT", FLAG_CRITICAL, tdat)]
    if raw_rest:
        sections.append(("RAWA", FLAG_CRITICAL, _raw_section(raw_rest)))
    coded = grids if isinstance(grids, CodedGrids) else code_grids(grids or {})
    lats = coded.payload
    if lats:
        sections.append(("LATS", FLAG_CRITICAL, lats))
    minor = 2 if bnds or uses_delta else 1 if lats else 0
    if context.RULE_FINE in coded.rules:
        minor = FINE_RULE_MINOR
    if context.RULE_RATIO in coded.rules:
        minor = RATIO_RULE_MINOR
    if context.RULE_PACKED in coded.rules:
        minor = PACKED_RULE_MINOR
    if context.RULE_PACKED_NET in coded.rules:
        minor = PACKED_NET_MINOR
    return write_container(sections, minor=minor)


def pack(meta: Mapping[str, Any], tensors: Mapping[str, np.ndarray], *,
         bits: int | Mapping[str, int] = DEFAULT_BITS,
         raw: Mapping[str, np.ndarray] | None = None,
         axis: AxisChoice | Mapping[str, AxisChoice] = "auto",
         grids: Mapping[str, Grid] | CodedGrids | None = None) -> bytes:
    """Quantize, entropy-code and write ``tensors`` with ``meta`` and exact ``raw`` arrays.

    Deterministic: the same inputs give the same bytes.  ``unpack(pack(...)).tensors``
    equals :func:`dequantized` of the same inputs, bit for bit.
    """
    return pack_quantized(meta, quantize_all(tensors, bits, axis), raw, grids)


def estimate_size(tensors: Mapping[str, np.ndarray], bits: int | Mapping[str, int] = DEFAULT_BITS,
                  meta_bytes: int = 0, raw: Mapping[str, np.ndarray] | None = None,
                  axis: AxisChoice | Mapping[str, AxisChoice] = "auto") -> int:
    """Exact file size for these tensors plus a META payload of ``meta_bytes`` bytes.

    It packs for real (coding is fast next to fitting); pass ``len(meta_json(meta))``
    as ``meta_bytes`` for an exact figure.
    """
    empty = len(meta_json({}))
    return len(pack({}, tensors, bits=bits, raw=raw, axis=axis)) - empty + meta_bytes


# ---------------------------------------------------------------------------- reading


def _read_shape(cur: Cursor) -> tuple[int, ...]:
    ndim = cur.u8()
    if ndim > MAX_NDIM:
        raise cur.fail(f"{ndim} dimensions declared; at most {MAX_NDIM} are allowed")
    shape = tuple(cur.u32() for _ in range(ndim))
    if any(d > MAX_DIM for d in shape):
        raise cur.fail(f"dimension in {shape} exceeds {MAX_DIM}")
    return shape


def _budget(file_length: int) -> int:
    return VALUES_BASE + VALUES_PER_FILE_BYTE * file_length


def parse_tdir(payload: bytes, offset: int, file_length: int) -> list[DirEntry]:
    cur = Cursor(payload, offset, "tensor directory")
    count = cur.u32()
    if count > MAX_ARRAYS or count * 17 > cur.remaining:  # 17: smallest possible entry
        raise cur.fail(f"{count} tensors declared, more than the directory can hold")
    entries: list[DirEntry] = []
    names: set[str] = set()
    budget = _budget(file_length)
    for _ in range(count):
        name = binio.read_name(cur)
        if name in names:
            raise cur.fail(f"tensor name {name!r} appears twice")
        names.add(name)
        shape = _read_shape(cur)
        bits, axis_byte, method, length = cur.u8(), cur.u8(), cur.u8(), cur.u64()
        if not MIN_BITS <= bits <= MAX_BITS:
            raise cur.fail(f"tensor {name!r} declares {bits} bits (allowed {MIN_BITS}..{MAX_BITS})")
        if axis_byte not in (0, AXIS_NONE) or (axis_byte == 0 and not shape):
            raise cur.fail(f"tensor {name!r} declares an invalid layout axis {axis_byte}")
        entropy.check_method(method, f"tensor directory entry {name!r} (offset {offset})")
        size = math.prod(shape)
        budget -= size
        if budget < 0:
            raise cur.fail(f"tensor {name!r} brings the declared values past what a "
                           f"{file_length}-byte file can hold")
        entries.append(DirEntry(name, shape, bits, None if axis_byte == AXIS_NONE else 0,
                                method, length))
    cur.expect_end()
    return entries


def _entries(c: Container) -> list[DirEntry]:
    """Parse TDIR and check that its block lengths tile TDAT exactly."""
    tdir_s, tdat_s = c.require("TDIR"), c.require("TDAT")
    assert tdir_s.data is not None
    entries = parse_tdir(tdir_s.data, tdir_s.offset, c.file_length)
    total = sum(e.length for e in entries)
    if total != tdat_s.length:
        raise FormatError(f"tensor directory (offset {tdir_s.offset}) accounts for {total} "
                          f"bytes but the tensor data section has {tdat_s.length}; {DAMAGED}")
    return entries


def _decode_block(entry: DirEntry, block: bytes, offset: int) -> QuantizedTensor:
    cur = Cursor(block, offset, f"tensor {entry.name!r}")
    size = math.prod(entry.shape)
    nparams = entry.shape[0] if entry.axis == 0 else 1
    if entry.axis == 0 and nparams == 0:
        raise cur.fail("per-channel layout with zero channels")
    offsets = np.frombuffer(cur.take(4 * nparams), dtype="<f4").astype(np.float32)
    scales = np.frombuffer(cur.take(4 * nparams), dtype="<f4").astype(np.float32)
    levels = (1 << entry.bits) - 1
    with np.errstate(over="ignore", invalid="ignore"):
        top = (offsets.astype(np.float64) + levels * scales.astype(np.float64)).astype(np.float32)
    if not (np.isfinite(offsets).all() and np.isfinite(scales).all() and (scales >= 0).all()
            and np.isfinite(top).all()):
        raise cur.fail("scale/offset values are not finite and non-negative")
    rows = entry.shape[0] if entry.shape else None
    q = entropy.decode_values(entry.method, cur, size, entry.bits, rows)
    return from_stored(entry.name, entry.shape, entry.bits, entry.axis, q, scales, offsets)


def parse_raw(payload: bytes, offset: int, file_length: int) -> dict[str, np.ndarray]:
    cur = Cursor(payload, offset, "raw-array section")
    count = cur.u32()
    if count > MAX_ARRAYS or count * 13 > cur.remaining:  # 13: smallest possible entry
        raise cur.fail(f"{count} arrays declared, more than the section can hold")
    out: dict[str, np.ndarray] = {}
    for _ in range(count):
        name = binio.read_name(cur)
        if name in out:
            raise cur.fail(f"raw array name {name!r} appears twice")
        code = cur.u8()
        if code not in binio.DTYPES:
            raise cur.fail(f"raw array {name!r} has unknown dtype code {code}")
        dtype = np.dtype(binio.DTYPES[code]).newbyteorder("<")
        shape = _read_shape(cur)
        codec, stored = cur.u8(), cur.u64()
        nbytes = math.prod(shape) * dtype.itemsize
        body = cur.take(stored)
        if codec == RAW_STORED:
            if stored != nbytes:
                raise cur.fail(f"raw array {name!r} stores {stored} bytes, shape needs {nbytes}")
            data = bytes(body)
        elif codec == RAW_ZLIB:
            if nbytes > ZLIB_MAX_RATIO * stored + 64:
                raise cur.fail(f"raw array {name!r} claims {nbytes} bytes from {stored} "
                               "compressed bytes")
            try:
                dec = zlib.decompressobj()
                data = dec.decompress(bytes(body), nbytes)
                if len(data) != nbytes or not dec.eof or dec.unconsumed_tail or dec.unused_data:
                    raise zlib.error("length mismatch")
            except zlib.error as exc:
                raise cur.fail(f"raw array {name!r} does not inflate ({exc})") from None
        else:
            raise cur.fail(f"raw array {name!r} has unknown codec {codec}")
        arr = np.frombuffer(data, dtype=dtype).reshape(shape)
        out[name] = arr.astype(dtype.newbyteorder("="))
    cur.expect_end()
    return out


def _read_grid_header(cur: Cursor, known: Mapping[str, tuple[int, ...]],
                      nets: Mapping[str, context.IntNet]
                      ) -> tuple[str, tuple[int, int, int], int, int, int, str | None,
                                 context.IntNet]:
    name = binio.read_name(cur)
    if name in known:
        raise cur.fail(f"grid name {name!r} appears twice")
    shape = _read_shape(cur)
    if len(shape) != 3 or 0 in shape:
        raise cur.fail(f"grid {name!r} has shape {shape}, not three positive sizes")
    bits, rule = cur.u8(), cur.u8()
    if not context.MIN_BITS <= bits <= context.MAX_BITS:
        raise cur.fail(f"grid {name!r} declares {bits} bits "
                       f"(allowed {context.MIN_BITS}..{context.MAX_BITS})")
    if rule not in context.RULES:
        raise cur.fail(f"grid {name!r} uses unknown context rule {rule}")
    group = cur.u8() if rule in context.RATIO_RULES else 1
    try:
        context.check_group(group, rule)
    except ValueError as exc:
        raise cur.fail(f"grid {name!r}: {exc}") from None
    n = cur.u16()
    guide = cur.text(n) if n else None
    if guide is not None and guide not in known:
        raise cur.fail(f"grid {name!r} is guided by {guide!r}, which is not an earlier grid")
    n = cur.u16()
    shares = cur.text(n) if n else None
    if shares is not None and shares not in nets:
        raise cur.fail(f"grid {name!r} shares the network of {shares!r}, which is not an "
                       "earlier grid")
    layers = nets[shares] if shares is not None else context.IntNet.read_layers(cur, rule)
    net = layers.with_bias(cur, shape[0], rule, group)
    return name, (shape[0], shape[1], shape[2]), bits, rule, group, guide, net


def physical_memory() -> int | None:
    """This machine's physical memory in bytes, or None where the platform does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def parse_grids(payload: bytes, offset: int, file_length: int, *, decode: bool = True
                ) -> dict[str, Any]:
    """Decode every grid of a ``LATS`` payload (or, with ``decode=False``, only check the
    structure and return each grid's description)."""
    cur = Cursor(payload, offset, "grid section")
    count = cur.u32()
    if count > MAX_ARRAYS or count * 32 > cur.remaining:  # 32: smallest possible entry
        raise cur.fail(f"{count} grids declared, more than the section can hold")
    budget = _budget(file_length)
    shapes: dict[str, tuple[int, ...]] = {}
    nets: dict[str, context.IntNet] = {}
    out: dict[str, Any] = {}
    # Grids decoded so far stay in memory (int32) while the next is decoded.  A file may
    # declare far more values than its bytes could plausibly code (§8 allows 4,096 a
    # byte), so a grid that could not be decoded here is refused before it is allocated,
    # not left to the operating system to kill the process.
    memory, held = (physical_memory() if decode else None), 0
    for _ in range(count):
        name, shape, bits, rule, group, guide, net = _read_grid_header(cur, shapes, nets)
        nets[name] = net
        budget -= math.prod(shape)
        if budget < 0:
            raise cur.fail(f"grid {name!r} brings the declared values past what a "
                           f"{file_length}-byte file can hold")
        length = cur.u64()
        start = cur.offset
        stream = cur.take(length)
        shapes[name] = shape
        if decode:
            need = held + context.decode_bytes(shape, rule)
            if memory is not None and need > memory:
                raise cur.fail(f"grid {name!r} declares {'x'.join(map(str, shape))} values; "
                               f"decoding it would take about {need / 2**30:.1f} GiB, more "
                               f"than this machine's {memory / 2**30:.1f} GiB")
            held += 4 * math.prod(shape)
            sub = Cursor(stream, start, f"grid {name!r}")
            out[name] = context.decode(sub, shape, bits, net,
                                       None if guide is None else out[guide], rule, group)
        else:
            if length % 4:
                raise cur.fail(f"grid {name!r} has a {length}-byte stream, not whole words")
            out[name] = {"name": name, "shape": list(shape), "bits": bits,
                         **({"rule": rule} if rule else {}),
                         **({"group": group} if rule in context.RATIO_RULES else {}),
                         "guide": guide,
                         "context_layers": [list(w.shape) for w in net.weights],
                         "bytes": length}
    cur.expect_end()
    return out


def merge_bands(c: Container, meta: dict[str, Any], raw: dict[str, np.ndarray]) -> None:
    """Put the ``BNDS`` curves (1.2) back into the metadata and raw arrays."""
    s = c.get("BNDS")
    if s is None or s.data is None:
        return
    cur = Cursor(s.data, s.offset, "band-curve section")
    bands.merge(meta, raw, bands.parse(s.data, s.offset), cur.fail)


def _section_list(c: Container) -> list[tuple[str, int, int, int]]:
    return [(s.type, s.flags, s.offset, s.length) for s in c.sections]


def unpack(buf: bytes | bytearray | memoryview) -> Unpacked:
    """Verify and decode a whole file.  Damage raises :class:`FormatError`."""
    c = read_container(buf)
    if c.every("TILE"):
        raise FormatError("this is a tiled file (format 1.3): its tensors are in its tiles; "
                          "open it with hsz.archive.Archive or hsz.codec.tiled.TiledFile")
    meta_s, tdat_s = c.require("META"), c.require("TDAT")
    assert meta_s.data is not None and tdat_s.data is not None
    meta = parse_meta(meta_s.data, meta_s.offset)
    entries = _entries(c)
    quantized: dict[str, QuantizedTensor] = {}
    pos = 0
    for e in entries:
        block = tdat_s.data[pos : pos + e.length]
        quantized[e.name] = _decode_block(e, block, tdat_s.offset + pos)
        pos += e.length
    raw_s = c.get("RAWA")
    raw = parse_raw(raw_s.data, raw_s.offset, c.file_length) if raw_s and raw_s.data else {}
    merge_bands(c, meta, raw)
    lats = c.get("LATS")
    grids = parse_grids(lats.data, lats.offset, c.file_length) if lats and lats.data else {}
    tensors = {k: qt.dequantize() for k, qt in quantized.items()}
    return Unpacked(meta, tensors, raw, _section_list(c), c.version, quantized, c.skipped,
                    grids)


def describe(source: str | os.PathLike[str] | bytes | bytearray | memoryview) -> dict[str, Any]:
    """What ``hsz info`` shows: version, sections, sizes, metadata and the tensor list.

    Reads (and CRC-checks) only the header, table, ``META``, ``TDIR``, ``RAWA`` and ``LATS``;
    no tensor or grid is decoded.
    """
    want = ("META", "BNDS", "TDIR", "RAWA", "LATS")
    if isinstance(source, bytes | bytearray | memoryview):
        c = read_container(source)
    else:
        c = read_container_header(source, want)
    meta_s = c.require("META")
    assert meta_s.data is not None
    tiled = any(s.type == "TILE" for s in c.sections)
    entries = [] if tiled else _entries(c)
    raw_s = c.get("RAWA")
    lats_s = c.get("LATS")
    meta = parse_meta(meta_s.data, meta_s.offset)
    raw = parse_raw(raw_s.data, raw_s.offset, c.file_length) if raw_s and raw_s.data else {}
    merge_bands(c, meta, raw)
    info: dict[str, Any] = {
        "format": f"{c.version[0]}.{c.version[1]}",
        "total_bytes": c.file_length,
        "header_bytes": c.header_bytes,
        "sections": [{"type": s.type, "flags": s.flags, "critical": s.critical,
                      "offset": s.offset, "length": s.length, "crc32": s.crc}
                     for s in c.sections],
        "skipped": list(c.skipped),
        "meta": meta,
        "tensors": [e.info() for e in entries],
        "raw": [{"name": k, "dtype": v.dtype.name, "shape": list(v.shape)}
                for k, v in raw.items()],
    }
    if tiled:  # format 1.3: each tile's window and bytes; the tiles themselves stay unread
        info["tiles"] = describe_tiles(c, meta)
    if lats_s and lats_s.data:  # format 1.1: listed only where present, so 1.0 pages stay
        info["grids"] = list(parse_grids(lats_s.data, lats_s.offset, c.file_length,
                                         decode=False).values())
    return info
