"""Lossless coding of quantized levels: pick the cheapest of five methods per tensor.

Methods (the id is stored in the tensor directory):

* ``RAW`` (0) — fixed-width bit packing; wins for tiny tensors where any model costs more
  than it saves.
* ``CONST`` (1) — every level equal; one u16, no payload.
* ``CATEGORICAL`` (2) — an integer histogram (optionally rescaled to fewer bits) stored
  bit-packed, then ANS-coded under it.
* ``GEOMETRIC`` (3) / ``GAUSSIAN`` (4) — a two-sided discrete Laplace / Gaussian given by a
  centre and one float32 decay parameter per side; ~14 bytes of model.

All ANS coding uses ``constriction.stream.stack.AnsCoder`` (32-bit words, 64-bit state)
with ``constriction.stream.model.Categorical(probabilities, perfect=False)`` — 24-bit
fixed-point probabilities.  The parametric models are *not* constriction's
``QuantizedGaussian``/``QuantizedLaplace``: those evaluate ``erf``/``exp`` inside the
library, and nothing promises those transcendental results are bit-identical across
platforms or library versions.  Instead the float64 probability vector is built here with
a multiplication-only recurrence (IEEE-754 exact and therefore reproducible everywhere)
and handed to the same ``Categorical`` model, whose ``perfect=False`` quantization uses
only ``+``, ``×``, ``÷`` and truncation (see :func:`quantized_cdf`, which reproduces it).
That also makes the whole decoder re-implementable without constriction (SPEC.md §6).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import constriction
import numpy as np

from hsz.codec import binio
from hsz.codec.binio import Cursor
from hsz.errors import FormatError

RAW, CONST, CATEGORICAL, GEOMETRIC, GAUSSIAN = 0, 1, 2, 3, 4
#: Format 1.2: methods 2-4 applied to the levels' differences along the first axis.
DELTA = 3
DELTA_CATEGORICAL, DELTA_GEOMETRIC, DELTA_GAUSSIAN = 5, 6, 7
METHOD_NAMES = {RAW: "raw", CONST: "const", CATEGORICAL: "categorical",
                GEOMETRIC: "geometric", GAUSSIAN: "gaussian",
                DELTA_CATEGORICAL: "categorical/delta", DELTA_GEOMETRIC: "geometric/delta",
                DELTA_GAUSSIAN: "gaussian/delta"}

#: constriction's default model precision: probabilities are multiples of 2^-24.
PRECISION = 24
#: Parametric probabilities below this are set to zero, and so is every one further out,
#: so that flush-to-zero CPU modes cannot change the model (no subnormals ever arise).
FLUSH = 2.0**-64
#: Largest count width for stored histograms.
MAX_COUNT_WIDTH = 32



# ---------------------------------------------------------------------------- models


def quantized_cdf(probs: np.ndarray) -> np.ndarray:
    """Reproduce constriction's ``Categorical(probs, perfect=False)`` fixed-point CDF.

    ``cdf[i] = trunc(c_i · (2^24 − n) / Σp) + i`` where ``c_i`` is the sequential float64
    sum ``p_0 + … + p_{i−1}``; ``cdf[n] = 2^24``.  Every symbol gets at least 1/2^24.
    ``np.cumsum`` adds strictly left to right, which is what constriction does.
    """
    p = np.asarray(probs, dtype=np.float64)
    n = p.size
    inclusive = np.cumsum(p)
    total = inclusive[-1]
    scale = float((1 << PRECISION) - n) / total
    exclusive = np.concatenate(([0.0], inclusive[:-1]))
    left = (exclusive * scale).astype(np.int64) + np.arange(n, dtype=np.int64)
    return np.concatenate((left, [1 << PRECISION]))


def _side(length: int, kind: int, param: float) -> np.ndarray:
    """Unnormalized probabilities at distances 0..length from the centre (p[0] = 1)."""
    out = np.ones(length + 1, dtype=np.float64)
    if length == 0:
        return out
    a = float(param)
    if kind == GEOMETRIC:
        steps = np.full(length, a)
    else:  # GAUSSIAN: p[d] = p[d-1] · a^(2d-1), the factor itself built by repeated ·a²
        steps = np.cumprod(np.concatenate(([a], np.full(length - 1, a * a))))
    out[1:] = np.cumprod(steps)
    small = np.flatnonzero(out < FLUSH)
    if small.size:
        out[small[0]:] = 0.0
    return out


def parametric_probs(kind: int, n: int, centre: int, left: float, right: float) -> np.ndarray:
    """float64 probabilities over symbols ``0..n-1`` (relative to ``lo``), centre value 1."""
    lside = _side(centre, kind, left)
    rside = _side(n - 1 - centre, kind, right)
    return np.concatenate((lside[::-1], rside[1:]))


def _cross_entropy_bits(hist: np.ndarray, probs: np.ndarray) -> float:
    cdf = quantized_cdf(probs)
    widths = np.diff(cdf).astype(np.float64)
    used = hist > 0
    return float(np.sum(hist[used] * (PRECISION - np.log2(widths[used]))))


def _ans_bytes(info_bits: float) -> int:
    """Expected coded size: the information plus the flushed 64-bit state, in 32-bit words."""
    return 4 * math.ceil((info_bits + 32.0) / 32.0)


# ---------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class Plan:
    """A chosen method with its model parameters and estimated size in bits."""

    method: int
    bits: float
    lo: int = 0
    probs: np.ndarray | None = None
    model: bytes = b""


def _hist_plan(hist: np.ndarray, lo: int, total: int) -> Plan:
    n = hist.size
    best: Plan | None = None
    targets: list[int | None] = [None] + [1 << k for k in range(4, 25, 2) if (1 << k) < total]
    for target in targets:
        if target is None:
            counts = hist.astype(np.int64)
        else:
            counts = np.where(hist > 0, np.maximum(1, np.rint(hist * (target / total))), 0)
            counts = counts.astype(np.int64)
        width = max(1, int(counts.max()).bit_length())
        if width > MAX_COUNT_WIDTH:
            continue
        model = binio.u16(lo) + binio.u16(n - 1) + binio.u8(width) + _pack_bits(counts, width)
        est = 8.0 * len(model) + 8.0 * _ans_bytes(_cross_entropy_bits(hist, counts.astype(float)))
        if best is None or est < best.bits:
            best = Plan(CATEGORICAL, est, lo, counts.astype(np.float64), model)
    assert best is not None
    return best


def _side_mass(kind: int, length: int, a: float) -> float:
    """Σ_{d=0..length} of the unnormalized side probabilities (tail below FLUSH ignored)."""
    if a <= 0.0:
        return 1.0
    if a >= 1.0:
        return float(length + 1)
    la = math.log2(a)
    if kind == GEOMETRIC:
        dmax = min(length, math.ceil(64.0 / -la))
        return float((1.0 - a ** (dmax + 1)) / (1.0 - a))
    dmax = min(length, math.ceil(math.sqrt(64.0 / -la)))
    d = np.arange(dmax + 1, dtype=np.float64)
    return float(np.sum(np.exp2(d * d * la)))


@dataclass(frozen=True)
class _SideStats:
    """Histogram moments per side, so a candidate model costs O(1) to evaluate."""

    kind: int
    total: float
    left_moment: float
    right_moment: float
    left_len: int
    right_len: int

    @classmethod
    def of(cls, hist: np.ndarray, centre: int, kind: int) -> _SideStats:
        d = np.arange(hist.size, dtype=np.float64) - centre
        m = np.abs(d) if kind == GEOMETRIC else d * d
        return cls(kind, float(hist.sum()), float(np.sum(hist[:centre] * m[:centre])),
                   float(np.sum(hist[centre:] * m[centre:])), centre, hist.size - 1 - centre)

    def bits(self, left: float, right: float) -> float:
        """Approximate cost (no fixed-point floor) used to search parameters quickly."""
        z = _side_mass(self.kind, self.left_len, left) + _side_mass(
            self.kind, self.right_len, right) - 1.0
        cost = self.total * math.log2(z)
        for moment, a in ((self.left_moment, left), (self.right_moment, right)):
            if moment > 0:
                cost += moment * (-math.log2(a) if a > 0 else 1e300)
        return cost


def _param_grid(kind: int, n: int) -> np.ndarray:
    widths = np.geomspace(0.05, max(2.0, float(n)), 40)
    if kind == GEOMETRIC:
        return np.exp(-1.0 / widths)
    return np.exp(-1.0 / (2.0 * widths * widths))


def _param_plan(hist: np.ndarray, lo: int, kind: int) -> Plan:
    n = hist.size
    centre = int(np.argmax(hist))
    st = _SideStats.of(hist, centre, kind)
    grid = [float(g) for g in _param_grid(kind, n)]
    sym = min(grid, key=lambda g: st.bits(g, g))
    left = min(grid, key=lambda g: st.bits(g, sym))
    right = min(grid, key=lambda g: st.bits(left, g))
    # refine each side on a finer local grid in log(-log a)
    for _ in range(3):
        for side in (0, 1):
            cur = left if side == 0 else right
            t = math.log(-math.log(max(min(cur, 1 - 1e-12), 1e-300)))
            cand = [math.exp(-math.exp(t + u)) for u in np.linspace(-0.3, 0.3, 13)]
            if side == 0:
                left = min(cand, key=lambda g: st.bits(g, right))
            else:
                right = min(cand, key=lambda g: st.bits(left, g))
    left32, right32 = float(np.float32(left)), float(np.float32(right))
    probs = parametric_probs(kind, n, centre, left32, right32)
    model = (binio.u16(lo) + binio.u16(n - 1) + binio.u16(lo + centre)
             + binio.f32(left32) + binio.f32(right32))
    est = 8.0 * len(model) + 8.0 * _ans_bytes(_cross_entropy_bits(hist, probs))
    return Plan(kind, est, lo, probs, model)


def plan(q: np.ndarray, bits: int) -> Plan:
    """Choose the cheapest method for levels ``q`` (any shape) of a ``bits``-bit quantizer."""
    flat = np.asarray(q).reshape(-1)
    raw_bits = 8.0 * math.ceil(flat.size * bits / 8)
    if flat.size == 0:
        return Plan(CONST, 16.0, model=binio.u16(0))
    lo, hi = int(flat.min()), int(flat.max())
    if lo == hi:
        return Plan(CONST, 16.0, model=binio.u16(lo))
    best = Plan(RAW, raw_bits)
    if flat.size < 8:  # no model can pay for itself
        return best
    hist = np.bincount(flat - lo if lo else flat, minlength=hi - lo + 1).astype(np.float64)
    for candidate in (_hist_plan(hist, lo, flat.size),
                      _param_plan(hist, lo, GEOMETRIC), _param_plan(hist, lo, GAUSSIAN)):
        if candidate.bits < best.bits:
            best = candidate
    return best


def estimate_bits(q: np.ndarray, bits: int) -> float:
    """Estimated coded size of ``q`` in bits: model parameters plus payload.

    Within a few 32-bit words of :func:`encode_values` (it evaluates the exact fixed-point
    model; only the ANS flush is estimated).  Does not include the tensor's name, shape or
    scale/offset (``64·num_params`` bits) — :func:`hsz.codec.pack.estimate_size` does.
    """
    return plan(q, bits).bits


# ---------------------------------------------------------------------------- coding


def _pack_bits(values: np.ndarray, width: int) -> bytes:
    """Pack non-negative integers ``width`` bits each, least significant bit first."""
    v = np.asarray(values, dtype=np.uint64).reshape(-1)
    planes = np.empty((v.size, width), dtype=np.uint8)
    for j in range(width):  # one column at a time keeps memory at one byte per bit
        planes[:, j] = (v >> np.uint64(j)) & np.uint64(1)
    return np.packbits(planes.reshape(-1), bitorder="little").tobytes()


def _unpack_bits(data: bytes | memoryview, count: int, width: int) -> np.ndarray:
    planes = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=count * width,
                           bitorder="little").reshape(count, width)
    out = np.zeros(count, dtype=np.uint64)
    for j in range(width):
        out |= planes[:, j].astype(np.uint64) << np.uint64(j)
    return out


def _ans_encode(symbols: np.ndarray, probs: np.ndarray) -> bytes:
    coder = constriction.stream.stack.AnsCoder()
    model = constriction.stream.model.Categorical(probs, perfect=False)
    coder.encode_reverse(symbols.astype(np.int32), model)
    return coder.get_compressed().astype("<u4").tobytes()


def _ans_decode(cur: Cursor, probs: np.ndarray, count: int) -> np.ndarray:
    if cur.remaining % 4:
        raise cur.fail(f"coded stream length {cur.remaining} is not a multiple of 4")
    words = np.frombuffer(cur.take(cur.remaining), dtype="<u4").astype(np.uint32)
    try:
        model = constriction.stream.model.Categorical(probs, perfect=False)
        coder = constriction.stream.stack.AnsCoder(words)
        out = coder.decode(model, count) if count else np.zeros(0, np.int32)
        ok = coder.is_empty()
    except ValueError as exc:  # constriction rejects malformed streams with ValueError
        raise cur.fail(f"coded stream is invalid ({exc})") from None
    if not ok:
        raise cur.fail("coded stream does not end where the declared element count says")
    return np.asarray(out, dtype=np.int64)


def delta_rows(q: np.ndarray, bits: int, rows: int) -> np.ndarray:
    """Levels as differences along the first axis (``rows`` of them), modulo 2^b and
    centred on 2^(b−1): a smooth spectral curve becomes a narrow alphabet (Jasper Ridge's
    10-bit basis: 1,474 bytes coded plain, 810 as differences)."""
    m, h = 1 << bits, 1 << (bits - 1)
    q2 = np.asarray(q, np.int64).reshape(rows, -1)
    prev = np.vstack([np.zeros((1, q2.shape[1]), np.int64), q2[:-1]])
    return ((q2 - prev + h) % m).reshape(-1)


def undelta_rows(r: np.ndarray, bits: int, rows: int) -> np.ndarray:
    """Inverse of :func:`delta_rows` (any r in 0..2^b−1 gives levels in 0..2^b−1)."""
    m, h = 1 << bits, 1 << (bits - 1)
    r2 = np.asarray(r, np.int64).reshape(rows, -1) - h
    return (np.cumsum(r2, axis=0) % m).reshape(-1)


#: Codings :func:`encode_values` remembers, by their exact input, and the most values an
#: input it remembers may hold (a bound on the memo's memory: 64 x 1 MB of keys).
CODED_MEMO = 64
CODED_MEMO_VALUES = 1 << 17
_coded: OrderedDict[tuple[bytes, int, int | None], tuple[int, bytes]] = OrderedDict()
_coded_lock = threading.Lock()


def encode_values(q: np.ndarray, bits: int, rows: int | None = None) -> tuple[int, bytes]:
    """Code levels ``q`` (flattened, C order); returns ``(method, data)``.

    With ``rows`` (the size of the first axis, at least 2) the levels' differences along
    that axis are tried too (methods 5-7), and kept when they code smaller.  Falls back to
    RAW whenever the coded result would not be smaller, so the output is never larger than
    fixed-width packing plus its (empty) model.

    The last CODED_MEMO results are remembered by their exact levels: landing packs the
    same tensors around each trial of the grids, and planning a tensor's coding was most of
    a pack (1.9 of 2.9 s over the quick start's 16 packings).
    """
    flat = np.asarray(q).reshape(-1).astype(np.int64)
    if flat.size > CODED_MEMO_VALUES:
        return _encode_values(flat, bits, rows)
    key = (flat.tobytes(), bits, rows)
    with _coded_lock:
        hit = _coded.get(key)
        if hit is not None:
            _coded.move_to_end(key)
            return hit
    out = _encode_values(flat, bits, rows)
    with _coded_lock:
        _coded[key] = out
        if len(_coded) > CODED_MEMO:
            _coded.popitem(last=False)
    return out


def _encode_values(flat: np.ndarray, bits: int, rows: int | None) -> tuple[int, bytes]:
    p = plan(flat, bits)
    if rows is not None and rows >= 2 and flat.size >= 8 and flat.size % rows == 0:
        diff = delta_rows(flat, bits, rows)
        d = plan(diff, bits)
        if d.method in (CATEGORICAL, GEOMETRIC, GAUSSIAN) and d.bits < p.bits:
            assert d.probs is not None
            data = d.model + _ans_encode(diff - d.lo, d.probs)
            if len(data) < math.ceil(flat.size * bits / 8):
                return d.method + DELTA, data
    if p.method == RAW:
        return RAW, _pack_bits(flat, bits)
    if p.method == CONST:
        return CONST, p.model
    assert p.probs is not None
    data = p.model + _ans_encode(flat - p.lo, p.probs)
    if len(data) >= math.ceil(flat.size * bits / 8):
        return RAW, _pack_bits(flat, bits)
    return p.method, data


def decode_values(method: int, cur: Cursor, count: int, bits: int,
                  rows: int | None = None) -> np.ndarray:
    """Decode ``count`` levels from the rest of ``cur`` (the whole tensor's coded data).

    Methods 5-7 need ``rows``, the size of the tensor's first axis.  Every field is
    validated before use; damage raises :class:`FormatError`.
    """
    if method in (DELTA_CATEGORICAL, DELTA_GEOMETRIC, DELTA_GAUSSIAN):
        if rows is None or rows < 2 or count % rows:
            raise cur.fail(f"difference coding needs a first axis of at least 2 that divides "
                           f"the {count} values")
        diff = decode_values(method - DELTA, cur, count, bits)
        return undelta_rows(diff, bits, rows)
    top = (1 << bits) - 1
    if method == RAW:
        need = math.ceil(count * bits / 8)
        if cur.remaining != need:
            raise cur.fail(f"raw data is {cur.remaining} bytes, expected {need}")
        return _unpack_bits(cur.take(need), count, bits).astype(np.int64)
    if method == CONST:
        value = cur.u16()
        if value > top:
            raise cur.fail(f"constant level {value} exceeds {top} for {bits}-bit levels")
        cur.expect_end()
        return np.full(count, value, dtype=np.int64)
    if method not in (CATEGORICAL, GEOMETRIC, GAUSSIAN):
        raise cur.fail(f"unknown coding method {method}")
    lo = cur.u16()
    n = cur.u16() + 1
    if n < 2 or lo + n - 1 > top:
        raise cur.fail(f"alphabet {lo}..{lo + n - 1} does not fit {bits}-bit levels")
    if method == CATEGORICAL:
        width = cur.u8()
        if not 1 <= width <= MAX_COUNT_WIDTH:
            raise cur.fail(f"histogram count width {width} is outside 1..{MAX_COUNT_WIDTH}")
        counts = _unpack_bits(cur.take(math.ceil(n * width / 8)), n, width)
        if not counts.any():
            raise cur.fail("histogram is all zero")
        probs = counts.astype(np.float64)
    else:
        centre = cur.u16()
        left, right = cur.f32(), cur.f32()
        if not lo <= centre < lo + n:
            raise cur.fail(f"model centre {centre} lies outside the alphabet {lo}..{lo + n - 1}")
        if not (0.0 <= left <= 1.0 and 0.0 <= right <= 1.0):
            raise cur.fail(f"model parameters {left}, {right} are outside [0, 1]")
        probs = parametric_probs(method, n, centre - lo, left, right)
    return _ans_decode(cur, probs, count) + lo


def check_method(method: int, where: str) -> None:
    if method not in METHOD_NAMES:
        raise FormatError(f"{where}: unknown coding method {method}; {binio.DAMAGED}")
