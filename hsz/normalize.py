"""Per-band min-max normalization: what the network sees, and how decoded values go back.

Each band is mapped to [0, 1] on its own, over valid (non-nodata) pixels, as HINER trains.
The per-band minimum and maximum are stored in the file, in the source's own sample type
when it is an integer type (exact and compact), so the decoder can return data in the
source's range.  Normalization values for wavelengths between stored bands are linearly
interpolated in wavelength.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hsz.cube import Cube


@dataclass(frozen=True)
class BandScale:
    """Per-band offset (minimum) and span (maximum - minimum)."""

    low: np.ndarray
    high: np.ndarray

    @property
    def span(self) -> np.ndarray:
        return self.high.astype(np.float64) - self.low.astype(np.float64)

    def interpolate(self, band_coords: np.ndarray, query_coords: np.ndarray) -> BandScale:
        """Scales at new coordinates, linear in coordinate between the nearest stored bands.

        Coordinates may repeat or step backwards (spectrometer overlaps); a stable sort keeps
        the interpolation well defined and identical on every run.
        """
        order = np.argsort(band_coords, kind="stable")
        x = np.asarray(band_coords, dtype=np.float64)[order]
        q = np.asarray(query_coords, dtype=np.float64)
        lo = np.interp(q, x, self.low.astype(np.float64)[order])
        hi = np.interp(q, x, self.high.astype(np.float64)[order])
        return BandScale(lo, hi)


def _short_decimals(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float ranges widened outward to decimals with a thousandth of the narrowest span.

    They are normalization constants, not data: a bound a thousandth of a span wider costs
    nothing measurable, while exact float64 extremes cost 16 bytes a band (1,248 bytes,
    14 % of a 0.05 bpppb Samson file) and short decimals on a smooth curve about one.
    """
    lo64, hi64 = low.astype(np.float64), high.astype(np.float64)
    if not (np.all(np.isfinite(lo64)) and np.all(np.isfinite(hi64))):
        return low, high
    spans = hi64 - lo64
    ref = float(spans[spans > 0].min()) if np.any(spans > 0) else float(np.abs(hi64).max())
    if ref <= 0:
        return low, high
    places = int(np.clip(3 - np.floor(np.log10(ref)), 0, 15))
    scale = float(10**places)
    out = []
    for values, rounding, step in ((lo64, np.floor, -1), (hi64, np.ceil, 1)):
        k = rounding(values * scale)
        if np.any(np.abs(k) > 2.0**53):
            return low, high
        v = (k / scale).astype(low.dtype)
        for _ in range(4):  # float rounding can land a hair inside the true extreme
            inside = v > values if step < 0 else v < values
            if not inside.any():
                break
            k = np.where(inside, k + step, k)
            v = (k / scale).astype(low.dtype)
        out.append(v)
    if np.any(out[0] > low) or np.any(out[1] < high):
        return low, high
    return out[0], out[1]


def band_extremes(cube: Cube, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Each band's minimum and maximum over valid pixels, in float64; +inf/-inf where a band
    has none.  Extremes of windows combine with ``np.minimum``/``np.maximum``."""
    lows = np.full(cube.bands, np.inf)
    highs = np.full(cube.bands, -np.inf)
    for k in range(cube.bands):
        band = cube.data[k]
        vals = band[mask] if mask is not None else band
        if vals.size:
            lows[k] = vals.min()
            highs[k] = vals.max()
    return lows, highs


def scale_from_extremes(lows: np.ndarray, highs: np.ndarray, dtype: np.dtype) -> BandScale:
    """The stored scale for these extremes, kept in the source dtype.

    Integer types keep their exact extremes; float types get bounds just outside them
    that are short decimals (:func:`_short_decimals`), which the file stores compactly.
    A band without a valid pixel gets the range [0, 0].
    """
    empty = ~np.isfinite(lows)
    lo = np.where(empty, 0.0, lows).astype(dtype)
    hi = np.where(empty, 0.0, highs).astype(dtype)
    if np.dtype(dtype).kind == "f":
        lo, hi = _short_decimals(lo, hi)
    return BandScale(lo, hi)


def band_scale(cube: Cube, mask: np.ndarray | None) -> BandScale:
    """Minimum and maximum of each band over valid pixels (see :func:`scale_from_extremes`)."""
    return scale_from_extremes(*band_extremes(cube, mask), cube.dtype)


def normalize(cube: Cube, scale: BandScale, mask: np.ndarray | None) -> np.ndarray:
    """The cube as float32 in [0, 1] per band; nodata pixels set to 0 (they carry no loss)."""
    out = np.empty(cube.shape, dtype=np.float32)
    span = scale.span
    low = scale.low.astype(np.float64)
    for k in range(cube.bands):
        band = cube.data[k].astype(np.float64)
        if span[k] > 0:
            band = (band - low[k]) / span[k]
        else:
            band = np.zeros_like(band)
        if mask is not None:
            band = np.where(mask, band, 0.0)
        out[k] = np.clip(band, 0.0, 1.0)
    return out


def denormalize_band(values: np.ndarray, low: float, span: float, dtype: np.dtype) -> np.ndarray:
    """A decoded band in [0, 1] back to source units and dtype (rounded, clipped for integers)."""
    x = values.astype(np.float64) * float(span) + float(low)
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(x), info.min, info.max).astype(dtype)
    return x.astype(dtype)
