"""Min–max uniform quantization of network weights, per tensor or per output channel.

``q = round((w − offset) / scale)`` with ``offset = min`` and ``scale = (max − min)/(2^b − 1)``.
The offset and scale are stored as float32 and the *quantizer itself uses the float32
values* (not the float64 ones it computed), so what the decoder rebuilds from the file is
exactly what the encoder measured: ``dequantize`` is ``float32(float64(offset) +
q · float64(scale))``, deterministic on every IEEE-754 platform.

Why float32 and not float16 for scale/offset: float16 keeps 11 significant bits, so the
offset alone would be off by up to 2^-12 · |min| — at b ≥ 10 that is more than the step
itself, and float16 cannot represent steps below ~6e-8 (small weights) or ranges above
65504.  The saving (4 bytes per channel) is not worth an error bound that no longer holds.

Per-channel (axis 0) gives every output channel its own range, which lowers the error
when channels differ in scale, at the price of 64 bits of parameters per channel and a
flatter symbol distribution.  :func:`quantize` with ``axis="auto"`` compares the two at
the same error: under the high-rate rule (each halving of the step costs one bit per
value, i.e. ``ΔR = ½·log2(MSE ratio)``) it converts the MSE difference into bits and picks
the cheaper total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from hsz.codec.entropy import estimate_bits
from hsz.errors import HszError

MIN_BITS = 2
MAX_BITS = 16
DEFAULT_BITS = 8

#: Value of the axis byte / ``axis`` field meaning "one scale for the whole tensor".
AxisChoice = int | None | Literal["auto"]

_SMALLEST_F32 = float(np.finfo(np.float32).smallest_subnormal)


@dataclass(frozen=True)
class QuantizedTensor:
    """A quantized tensor exactly as stored: integer levels plus float32 scale/offset.

    ``scales``/``offsets`` have one entry (``axis is None``) or ``shape[0]`` entries
    (``axis == 0``).  ``q`` is ``uint16`` with values in ``0 .. 2**bits - 1``.
    """

    name: str
    shape: tuple[int, ...]
    bits: int
    axis: int | None
    q: np.ndarray
    scales: np.ndarray
    offsets: np.ndarray

    @property
    def num_params(self) -> int:
        return int(self.scales.size)

    def dequantize(self) -> np.ndarray:
        """Reconstruct float32 weights; bit-identical wherever it runs."""
        return _dequantize(self.q, self.scales, self.offsets, self.axis)

    def max_error(self) -> float:
        """The bound ``max(scale)/2`` on the absolute reconstruction error."""
        return float(np.max(self.scales, initial=0.0)) / 2.0


def check_bits(bits: int, name: str = "") -> int:
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer):
        raise HszError(f"bits for tensor {name!r} must be an integer, got {bits!r}")
    if not MIN_BITS <= int(bits) <= MAX_BITS:
        raise HszError(
            f"bits for tensor {name!r} must be in {MIN_BITS}..{MAX_BITS}, got {bits}"
        )
    return int(bits)


def _broadcast(params: np.ndarray, axis: int | None, ndim: int) -> np.ndarray:
    p = params.astype(np.float64)
    if axis is None:
        return p.reshape(())
    return p.reshape((-1,) + (1,) * (ndim - 1))


def _dequantize(
    q: np.ndarray, scales: np.ndarray, offsets: np.ndarray, axis: int | None
) -> np.ndarray:
    s = _broadcast(scales, axis, q.ndim)
    o = _broadcast(offsets, axis, q.ndim)
    return (o + q.astype(np.float64) * s).astype(np.float32)


def _params(lo: np.ndarray, hi: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 (scale, offset) for ranges ``[lo, hi]`` (float64 arrays)."""
    offsets = lo.astype(np.float32)
    scales = ((hi - offsets.astype(np.float64)) / levels).astype(np.float32)
    # A positive range whose step underflows float32 would collapse to one level; the
    # smallest subnormal step still covers it because such ranges are tiny multiples of it.
    scales = np.where((scales == 0) & (hi > lo), np.float32(_SMALLEST_F32), scales)
    return scales.astype(np.float32), offsets


def _quantize_with(
    w: np.ndarray, scales: np.ndarray, offsets: np.ndarray, axis: int | None, levels: int
) -> np.ndarray:
    s = _broadcast(scales, axis, w.ndim)
    o = _broadcast(offsets, axis, w.ndim)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (w.astype(np.float64) - o) / s
    x = np.where(s == 0, 0.0, x)
    return np.clip(np.rint(x), 0, levels).astype(np.uint16)


def _finite_f32(name: str, w: np.ndarray) -> np.ndarray:
    arr = np.asarray(w)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise HszError(f"tensor {name!r} has dtype {arr.dtype}; only real numbers can be stored")
    arr = arr.astype(np.float32)
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise HszError(
            f"tensor {name!r} has {bad} non-finite values (NaN/Inf); the fit diverged, "
            "refit with a lower learning rate"
        )
    return arr


def quantize_fixed(
    name: str, w: np.ndarray, bits: int = DEFAULT_BITS, axis: int | None = None
) -> QuantizedTensor:
    """Quantize with the given layout (``axis`` None or 0) and no cost comparison."""
    bits = check_bits(bits, name)
    arr = _finite_f32(name, w)
    levels = (1 << bits) - 1
    if axis not in (None, 0):
        raise HszError(f"axis for tensor {name!r} must be None or 0, got {axis!r}")
    if axis == 0 and (arr.ndim < 1 or arr.shape[0] == 0):
        axis = None
    if arr.size == 0:
        zero = np.zeros(1, np.float32)
        return QuantizedTensor(name, arr.shape, bits, None, np.zeros(arr.shape, np.uint16),
                               zero, zero.copy())
    a64 = arr.astype(np.float64)
    if axis is None:
        lo, hi = np.array([a64.min()]), np.array([a64.max()])
    else:
        flat = a64.reshape(arr.shape[0], -1)
        lo, hi = flat.min(axis=1), flat.max(axis=1)
    scales, offsets = _params(lo, hi, levels)
    q = _quantize_with(arr, scales, offsets, axis, levels)
    return QuantizedTensor(name, tuple(arr.shape), bits, axis, q, scales, offsets)


def _mse(qt: QuantizedTensor, w: np.ndarray) -> float:
    d = qt.dequantize().astype(np.float64) - w.astype(np.float64)
    return float(np.mean(d * d)) if d.size else 0.0


def layout_cost(qt: QuantizedTensor) -> float:
    """Bits to store ``qt``: coded levels plus 64 bits per (scale, offset) pair."""
    return estimate_bits(qt.q, qt.bits) + 64.0 * qt.num_params


def quantize(
    name: str, w: np.ndarray, bits: int = DEFAULT_BITS, axis: AxisChoice = "auto"
) -> QuantizedTensor:
    """Quantize ``w``; with ``axis="auto"`` pick per-tensor or per-channel by cost.

    The per-channel layout is chosen only when its bits, after crediting it
    ``½·log2(MSE_tensor/MSE_channel)`` bits per value for its lower error, are fewer
    than the per-tensor layout's.  Ties go to per-tensor (simpler, fewer parameters).
    """
    if axis != "auto":
        return quantize_fixed(name, w, bits, axis)  # type: ignore[arg-type]
    per_tensor = quantize_fixed(name, w, bits, None)
    arr = np.asarray(w, dtype=np.float32)
    if arr.ndim < 2 or arr.shape[0] < 2 or arr.size == 0:
        return per_tensor
    per_channel = quantize_fixed(name, arr, bits, 0)
    mse_t, mse_c = _mse(per_tensor, arr), _mse(per_channel, arr)
    if mse_t == 0.0:
        return per_tensor
    tiny = 1e-300
    credit = 0.5 * arr.size * math.log2(max(mse_c, tiny) / max(mse_t, tiny))
    if layout_cost(per_channel) + credit < layout_cost(per_tensor):
        return per_channel
    return per_tensor


def from_stored(
    name: str, shape: tuple[int, ...], bits: int, axis: int | None, q: np.ndarray,
    scales: np.ndarray, offsets: np.ndarray,
) -> QuantizedTensor:
    """Wrap decoded fields (already validated by the reader) as a :class:`QuantizedTensor`."""
    return QuantizedTensor(
        name, tuple(shape), bits, axis, q.reshape(shape).astype(np.uint16, copy=False),
        scales.astype(np.float32, copy=False), offsets.astype(np.float32, copy=False),
    )
