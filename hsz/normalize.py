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


def band_scale(cube: Cube, mask: np.ndarray | None) -> BandScale:
    """Minimum and maximum of each band over valid pixels, kept in the source dtype."""
    lows = np.empty(cube.bands, dtype=cube.dtype)
    highs = np.empty(cube.bands, dtype=cube.dtype)
    for k in range(cube.bands):
        band = cube.data[k]
        vals = band[mask] if mask is not None else band
        if vals.size == 0:
            lows[k] = highs[k] = 0
        else:
            lows[k] = vals.min()
            highs[k] = vals.max()
    return BandScale(lows, highs)


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
