"""Quality and rate figures, defined once for summaries, ``hsz eval``, tests and benchmarks.

Definitions (see README, "Metrics"):

- ``psnr_band_mean``: mean over bands of ``10 log10(range_b^2 / MSE_b)`` where ``range_b`` is
  max - min of the *original* band (the HINER paper's Eq. 18).
- ``psnr_global``: ``10 log10(range^2 / MSE)`` over the whole cube, range of the original cube.
- ``sam_deg``: mean spectral angle, in degrees, between original and decoded pixel spectra.
- ``bpppb``: 8 x file bytes / (H x W x bands); ``cr``: source bits per sample / bpppb.

Everything is computed in float64 so that uint16 inputs do not overflow and results do not
depend on the caller's dtype.  A ``mask`` of valid pixels (rows, cols) leaves nodata out.
"""

from __future__ import annotations

import math

import numpy as np

#: PSNR reported for a band (or cube) reconstructed exactly; finite so JSON stays valid.
PSNR_EXACT = 999.0


def _pair(original: np.ndarray, decoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(original)
    b = np.asarray(decoded)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: original {a.shape}, decoded {b.shape}")
    if a.ndim != 3:
        raise ValueError(f"expected (bands, rows, cols) arrays, got shape {a.shape}")
    return a, b


def _psnr(range_: float, mse: float) -> float:
    if mse <= 0.0:
        return PSNR_EXACT
    if range_ <= 0.0:
        # A constant band: no dynamic range to speak of. Use peak 1 so the figure stays finite.
        range_ = 1.0
    return float(10.0 * math.log10(range_ * range_ / mse))


def per_band_psnr(
    original: np.ndarray, decoded: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """PSNR of each band with that band's own original range as the peak."""
    a, b = _pair(original, decoded)
    out = np.empty(a.shape[0], dtype=np.float64)
    for k in range(a.shape[0]):
        x = a[k].astype(np.float64)
        y = b[k].astype(np.float64)
        if mask is not None:
            x, y = x[mask], y[mask]
        rng = float(x.max() - x.min()) if x.size else 0.0
        mse = float(np.mean((x - y) ** 2)) if x.size else 0.0
        out[k] = _psnr(rng, mse)
    return out


def psnr_band_mean(
    original: np.ndarray, decoded: np.ndarray, mask: np.ndarray | None = None
) -> float:
    return float(np.mean(per_band_psnr(original, decoded, mask)))


def psnr_global(
    original: np.ndarray, decoded: np.ndarray, mask: np.ndarray | None = None
) -> float:
    a, b = _pair(original, decoded)
    se = 0.0
    n = 0
    lo, hi = math.inf, -math.inf
    for k in range(a.shape[0]):
        x = a[k].astype(np.float64)
        y = b[k].astype(np.float64)
        if mask is not None:
            x, y = x[mask], y[mask]
        if x.size:
            lo = min(lo, float(x.min()))
            hi = max(hi, float(x.max()))
        se += float(np.sum((x - y) ** 2))
        n += x.size
    if n == 0:
        return PSNR_EXACT
    return _psnr(hi - lo, se / n)


def sam_map(original: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """Spectral angle (degrees) at each pixel, shape (rows, cols).

    A pixel whose spectrum is all zeros in either cube has no direction: its angle is 0 when
    both are zero and 90 degrees when only one is.
    """
    a, b = _pair(original, decoded)
    dot = np.zeros(a.shape[1:], dtype=np.float64)
    na = np.zeros_like(dot)
    nb = np.zeros_like(dot)
    for k in range(a.shape[0]):
        x = a[k].astype(np.float64)
        y = b[k].astype(np.float64)
        dot += x * y
        na += x * x
        nb += y * y
    denom = np.sqrt(na * nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(denom > 0, dot / np.where(denom > 0, denom, 1.0), 1.0)
    ang = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    ang = np.where((denom == 0) & ((na > 0) | (nb > 0)), 90.0, ang)
    return ang


def sam_deg(
    original: np.ndarray, decoded: np.ndarray, mask: np.ndarray | None = None
) -> float:
    ang = sam_map(original, decoded)
    if mask is not None:
        ang = ang[mask]
    return float(np.mean(ang)) if ang.size else 0.0


def max_abs_error(
    original: np.ndarray, decoded: np.ndarray, mask: np.ndarray | None = None
) -> float:
    a, b = _pair(original, decoded)
    worst = 0.0
    for k in range(a.shape[0]):
        d = np.abs(a[k].astype(np.float64) - b[k].astype(np.float64))
        if mask is not None:
            d = d[mask]
        if d.size:
            worst = max(worst, float(d.max()))
    return worst


def bpppb(file_bytes: int, shape: tuple[int, int, int]) -> float:
    """Bits per pixel per band from the real size of the file on disk."""
    bands, rows, cols = shape
    return 8.0 * file_bytes / float(bands * rows * cols)


def compression_ratio(file_bytes: int, shape: tuple[int, int, int], bits_per_sample: int) -> float:
    rate = bpppb(file_bytes, shape)
    return bits_per_sample / rate if rate > 0 else math.inf


def quality(
    original: np.ndarray, decoded: np.ndarray, mask: np.ndarray | None = None
) -> dict[str, float]:
    """The three figures every summary shows, in one call."""
    return {
        "psnr_band_mean": psnr_band_mean(original, decoded, mask),
        "psnr_global": psnr_global(original, decoded, mask),
        "sam_deg": sam_deg(original, decoded, mask),
    }


class QualityAccumulator:
    """The figures of :func:`quality` gathered window by window.

    A tiled encode never holds the whole cube, so each tile adds its per-band extremes,
    squared errors and spectral angles here; :meth:`result` then equals :func:`quality` on
    the whole cube (the same sums, in a different order, so equal to rounding).
    """

    def __init__(self, bands: int) -> None:
        self.low = np.full(bands, np.inf)
        self.high = np.full(bands, -np.inf)
        self.se = np.zeros(bands)
        self.count = 0
        self.angle_sum = 0.0

    def add(self, original: np.ndarray, decoded: np.ndarray,
            mask: np.ndarray | None = None) -> None:
        a, b = _pair(original, decoded)
        for k in range(a.shape[0]):
            x = a[k].astype(np.float64)
            y = b[k].astype(np.float64)
            if mask is not None:
                x, y = x[mask], y[mask]
            if x.size:
                self.low[k] = min(self.low[k], float(x.min()))
                self.high[k] = max(self.high[k], float(x.max()))
                self.se[k] += float(np.sum((x - y) ** 2))
        ang = sam_map(a, b)
        if mask is not None:
            ang = ang[mask]
        self.count += int(ang.size)
        self.angle_sum += float(np.sum(ang))

    def merge(self, other: QualityAccumulator) -> None:
        self.low = np.minimum(self.low, other.low)
        self.high = np.maximum(self.high, other.high)
        self.se += other.se
        self.count += other.count
        self.angle_sum += other.angle_sum

    def result(self) -> dict[str, float]:
        if self.count == 0:
            return {"psnr_band_mean": PSNR_EXACT, "psnr_global": PSNR_EXACT, "sam_deg": 0.0}
        mse = self.se / self.count
        bands = [_psnr(float(h - lo), float(m))
                 for lo, h, m in zip(self.low, self.high, mse, strict=True)]
        return {
            "psnr_band_mean": float(np.mean(bands)),
            "psnr_global": _psnr(float(self.high.max() - self.low.min()),
                                 float(self.se.sum() / (self.count * len(self.se)))),
            "sam_deg": self.angle_sum / self.count,
        }
