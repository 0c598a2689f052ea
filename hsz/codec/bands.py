"""The ``BNDS`` section (format 1.2): per-band curves in a compact, exact binary form.

Wavelengths, band widths and each band's normalization range are one number per band.  As
JSON text or raw float64 they were up to a tenth of a small file (about 1.8 kB of a 12 kB
Jasper Ridge file at 0.05 bpppb), yet they are nearly always short decimals on smooth or
near-linear curves.  Each curve is therefore stored as integers ``k`` with ``value =
k / 10^p``, differenced ``d`` times along the bands and written with an Exp-Golomb code of
order ``r`` (small steps cost a few bits; a jump across removed bands costs about twice its
bit length, not its size).  Decoding is exact: the value is one IEEE-754 division of two
exactly representable float64 numbers, then a cast to the curve's type.  A curve that is
not a short decimal is stored as its raw little-endian bytes.

The section is transparent above the container: :func:`split` moves the curves out of the
metadata and raw arrays when writing, :func:`merge` puts them back when reading, so nothing
else in hsz sees where they were stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from hsz.codec import binio, golomb
from hsz.codec.binio import Cursor

VERSION = 0
#: Curves moved out of ``META`` (lists of numbers, one per band, float64).
META_CURVES = ("wavelengths", "fwhm")
#: Raw arrays moved out of ``RAWA``.
RAW_CURVES = ("band_low", "band_high")
PLACE_META, PLACE_RAW = 0, 1
STORED, DECIMAL = 0, 1
MAX_PLACES = 15
MAX_ORDER = 2
MAX_GOLOMB = 24
#: |k| above this is not exact in float64; such curves are stored raw.
MAX_INT = 1 << 53
MAX_VALUES = 1 << 20


@dataclass(frozen=True)
class Curve:
    name: str
    place: int
    values: np.ndarray  # one per band, in the curve's own dtype


def _difference(k: list[int], order: int) -> list[int]:
    for _ in range(order):
        k = k[:1] + [b - a for a, b in zip(k, k[1:], strict=False)]
    return k


def _accumulate(v: list[int], order: int) -> list[int]:
    for _ in range(order):
        out, total = [], 0
        for x in v:
            total += x
            out.append(total)
        v = out
    return v


# ---------------------------------------------------------------------------- writing


def _decimal_digits(values: np.ndarray) -> tuple[int, list[int]] | None:
    """(p, k) with ``values == cast(float64(k) / float64(10^p))`` exactly, or None."""
    dtype = values.dtype
    if dtype.kind in "iub":
        ks = [int(x) for x in values.tolist()]
        return (0, ks) if all(abs(x) <= MAX_INT for x in ks) else None
    if dtype not in (np.float16, np.float32, np.float64) or not np.all(np.isfinite(values)):
        return None
    texts = [np.format_float_positional(x, unique=True, trim="-") for x in values]
    decs = [Decimal(t) for t in texts]
    p = max(0, *(-int(d.as_tuple().exponent) for d in decs))
    if p > MAX_PLACES:
        return None
    ks = [int(d.scaleb(p)) for d in decs]
    if any(abs(x) > MAX_INT for x in ks):
        return None
    back = (np.array(ks, np.float64) / np.float64(float(10**p))).astype(dtype)
    if not np.array_equal(back.view(np.uint8), values.view(np.uint8)):  # -0.0 stays raw
        return None
    return p, ks


def _coded(ks: list[int]) -> tuple[int, int, bytes]:
    """The order and Exp-Golomb parameter that code ``ks`` in the fewest bytes."""
    best: tuple[int, int, int] | None = None
    for order in range(MAX_ORDER + 1):
        zs = [golomb.zigzag(v) for v in _difference(ks, order)]
        for r in range(MAX_GOLOMB + 1):
            nbits = golomb.code_bits(zs, r)
            if best is None or nbits < best[0]:
                best = (nbits, order, r)
    assert best is not None
    _, order, r = best
    w = golomb.Writer()
    for z in (golomb.zigzag(v) for v in _difference(ks, order)):
        w.code(z, r)
    return order, r, w.payload()


def _curve_bytes(curve: Curve) -> bytes:
    v = np.ascontiguousarray(curve.values)
    head = [binio.name_bytes(curve.name), binio.u8(curve.place),
            binio.u8(binio.DTYPE_CODES[v.dtype.name]),
            binio.u32(v.size)]
    stored = v.astype(v.dtype.newbyteorder("<"), copy=False).tobytes()
    digits = _decimal_digits(v) if v.dtype.name != "bool" else None
    if digits is not None:
        p, ks = digits
        order, r, data = _coded(ks)
        body = (binio.u8(DECIMAL) + binio.u8(p) + binio.u8(order) + binio.u8(r)
                + binio.u32(len(data)) + data)
        if len(body) < 1 + len(stored):
            return b"".join(head) + body
    return b"".join(head) + binio.u8(STORED) + stored


def _meta_curve(value: Any) -> np.ndarray | None:
    """A META list this section can hold exactly: finite numbers (not bools)."""
    if not isinstance(value, list) or not value or len(value) > MAX_VALUES:
        return None
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in value):
        return None
    arr = np.array([float(x) for x in value], np.float64)
    return arr if np.all(np.isfinite(arr)) else None


def split(meta: Mapping[str, Any], raw: Mapping[str, np.ndarray]
          ) -> tuple[dict[str, Any], dict[str, np.ndarray], bytes]:
    """Move the per-band curves out of ``meta`` and ``raw``; returns the rest and the
    ``BNDS`` payload (empty when there is nothing to move)."""
    meta_rest, raw_rest = dict(meta), dict(raw)
    curves: list[Curve] = []
    for name in META_CURVES:
        arr = _meta_curve(meta_rest.get(name))
        # A float64 list round-trips exactly; a list of ints would come back as floats.
        if arr is not None and all(isinstance(x, float) for x in meta_rest[name]):
            curves.append(Curve(name, PLACE_META, arr))
            del meta_rest[name]
    for name in RAW_CURVES:
        if name not in raw_rest:
            continue
        arr = np.asarray(raw_rest[name])
        kind = arr.dtype.name
        if arr.ndim == 1 and 0 < arr.size <= MAX_VALUES and kind in binio.DTYPE_CODES \
                and kind != "bool":
            curves.append(Curve(name, PLACE_RAW, arr))
            del raw_rest[name]
    if not curves:
        return meta_rest, raw_rest, b""
    payload = binio.u8(VERSION) + binio.u16(len(curves)) + b"".join(map(_curve_bytes, curves))
    return meta_rest, raw_rest, payload


# ---------------------------------------------------------------------------- reading


def parse(payload: bytes, offset: int) -> list[Curve]:
    """Decode a ``BNDS`` payload; every count and length is checked before use."""
    cur = Cursor(payload, offset, "band-curve section")
    version = cur.u8()
    if version != VERSION:
        raise cur.fail(f"band-curve layout {version} is unknown (this hsz reads {VERSION})")
    count = cur.u16()
    if count > len(META_CURVES) + len(RAW_CURVES):
        raise cur.fail(f"{count} band curves declared; at most "
                       f"{len(META_CURVES) + len(RAW_CURVES)} are defined")
    out: list[Curve] = []
    for _ in range(count):
        name = binio.read_name(cur)
        place, code, n = cur.u8(), cur.u8(), cur.u32()
        known = META_CURVES if place == PLACE_META else RAW_CURVES if place == PLACE_RAW else ()
        if name not in known:
            raise cur.fail(f"band curve {name!r} in place {place} is not defined")
        if any(c.name == name for c in out):
            raise cur.fail(f"band curve {name!r} appears twice")
        if code not in binio.DTYPES or binio.DTYPES[code] == "bool" or (
                place == PLACE_META and binio.DTYPES[code] != "float64"):
            raise cur.fail(f"band curve {name!r} has dtype code {code}, not allowed there")
        if not 1 <= n <= MAX_VALUES:
            raise cur.fail(f"band curve {name!r} declares {n} values (1..{MAX_VALUES})")
        dtype = np.dtype(binio.DTYPES[code])
        method = cur.u8()
        if method == STORED:
            data = cur.take(n * dtype.itemsize)
            values = np.frombuffer(data, dtype.newbyteorder("<")).astype(dtype)
        elif method == DECIMAL:
            values = _read_decimal(cur, name, n, dtype)
        else:
            raise cur.fail(f"band curve {name!r} has unknown method {method}")
        if place == PLACE_META and not np.all(np.isfinite(values)):
            raise cur.fail(f"band curve {name!r} holds values that are not finite")
        out.append(Curve(name, place, values))
    cur.expect_end()
    return out


def _read_decimal(cur: Cursor, name: str, n: int, dtype: np.dtype) -> np.ndarray:
    p, order, r, length = cur.u8(), cur.u8(), cur.u8(), cur.u32()
    if p > MAX_PLACES or order > MAX_ORDER or r > MAX_GOLOMB:
        raise cur.fail(f"band curve {name!r}: places {p}, order {order}, parameter {r} out "
                       f"of range ({MAX_PLACES}, {MAX_ORDER}, {MAX_GOLOMB})")
    if dtype.kind in "iu" and p != 0:
        raise cur.fail(f"band curve {name!r}: an integer curve must have 0 places")
    if n > 8 * length:  # every value takes at least one bit
        raise cur.fail(f"band curve {name!r}: {n} values cannot fit in {length} bytes")
    reader = golomb.Reader(bytes(cur.take(length)), cur, "band curve stream")
    zs = [reader.code(r) for _ in range(n)]
    reader.finish()
    ks = _accumulate([golomb.unzigzag(z) for z in zs], order)
    if any(abs(k) > MAX_INT for k in ks):
        raise cur.fail(f"band curve {name!r} decodes to integers beyond 2^53")
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if any(not info.min <= k <= info.max for k in ks):
            raise cur.fail(f"band curve {name!r} holds values outside {dtype.name}")
        return np.array(ks, dtype=dtype)
    with np.errstate(over="ignore"):
        return (np.array(ks, np.float64) / np.float64(float(10**p))).astype(dtype)


def merge(meta: dict[str, Any], raw: dict[str, np.ndarray], curves: list[Curve],
          cur_fail: Any) -> None:
    """Put decoded curves back where the writer took them from (in place)."""
    for c in curves:
        if c.place == PLACE_META:
            if c.name in meta:
                raise cur_fail(f"{c.name!r} is both in the metadata and in the band curves")
            meta[c.name] = [float(x) for x in c.values.tolist()]
        else:
            if c.name in raw:
                raise cur_fail(f"{c.name!r} is both a raw array and a band curve")
            raw[c.name] = c.values
