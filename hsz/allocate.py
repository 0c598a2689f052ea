"""Spending a file's budget across its tiles where it buys the most (equal slope).

Fitting every tile at several rates to measure its rate-distortion curve would multiply
the encode time, so each tile is measured once, cheaply, before any fit: its normalized
samples are rotated into the tile's own principal components and cut into 8x8 blocks
whose DCT coefficients are binned by (component, frequency).  The variance of each bin is
what a transform coder would face there; reverse water-filling over all bins of all tiles
(rate ``max(0, log2(var / theta) / 2)`` bits per coefficient at a common distortion level
``theta``) is the allocation where every tile's rate-distortion slope is the same.

That model only decides the *shares*: each tile first gets the bytes its smallest model
needs (its own side information), and the rest of the budget is split in proportion to
the model's rate for that tile at the slope that spends it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Block side of the DCT the profile is measured with.
BLOCK = 8
#: Principal components profiled per tile (the rest carry too little energy to matter).
COMPONENTS = 12


@dataclass(frozen=True)
class TileProfile:
    """Coefficient variances of one tile, and how many coefficients each bin holds."""

    variances: np.ndarray  # (bins,) float64
    counts: np.ndarray  # (bins,) coefficients per bin

    def bits(self, theta: float) -> float:
        """Bits a transform coder spends on the tile at distortion level ``theta``."""
        v = self.variances
        live = v > theta
        return float(np.sum(self.counts[live] * 0.5 * np.log2(v[live] / theta)))


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m


def profile(target: np.ndarray, mask: np.ndarray | None = None) -> TileProfile:
    """The profile of a normalized tile (bands, H, W), nodata pixels already zeroed."""
    bands, rows, cols = target.shape
    x = target.reshape(bands, -1).astype(np.float64)
    valid = None if mask is None else mask.reshape(-1)
    sample = x if valid is None else x[:, valid]
    if sample.shape[1] < 2:
        return TileProfile(np.zeros(1), np.ones(1))
    mean = sample.mean(axis=1, keepdims=True)
    cov = np.cov(sample)
    cov = np.atleast_2d(cov)
    _, vecs = np.linalg.eigh(cov)
    basis = vecs[:, ::-1][:, :min(COMPONENTS, bands)]
    comps = (basis.T @ (x - mean)).reshape(-1, rows, cols)
    if valid is not None:
        comps = comps * mask
    # Whole blocks only; a tile narrower than a block is profiled as one short block.
    br, bc = max(1, rows // BLOCK), max(1, cols // BLOCK)
    hr, hc = min(BLOCK, rows), min(BLOCK, cols)
    c = comps[:, :br * hr, :bc * hc].reshape(-1, br, hr, bc, hc)
    coef = np.einsum("ui,kaibj,vj->kabuv", _dct_matrix(hr), c, _dct_matrix(hc), optimize=True)
    var = np.mean(coef ** 2, axis=(1, 2)).reshape(-1)  # (components * hr * hc,)
    scale = (rows * cols) / float(br * bc * hr * hc)  # blocks left out at the edges
    counts = np.full(var.shape, br * bc * scale)
    return TileProfile(var, counts)


def equal_slope(profiles: list[TileProfile], fixed: list[int], total: int) -> list[int]:
    """Bytes for each tile: its ``fixed`` bytes plus an equal-slope share of the rest.

    Raises ValueError when ``total`` does not even cover the fixed parts.
    """
    spare = total - sum(fixed)
    if spare < 0:
        raise ValueError("the budget does not cover every tile's smallest model")
    target_bits = 8.0 * spare

    def spent(log_theta: float) -> float:
        return sum(p.bits(math.exp(log_theta)) for p in profiles)

    top = max((float(p.variances.max()) for p in profiles), default=0.0)
    if top <= 0 or target_bits <= 0:
        return _spread(fixed, [1.0] * len(profiles), spare)
    lo, hi = math.log(top) - 80.0, math.log(top)
    if spent(lo) <= target_bits:  # the model runs out of things to spend on
        hi = lo
    else:
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            if spent(mid) > target_bits:
                lo = mid
            else:
                hi = mid
    shares = [p.bits(math.exp(hi)) for p in profiles]
    return _spread(fixed, shares, spare)


def equal_split(pixels: list[int], fixed: list[int], total: int) -> list[int]:
    """The naive allocation, for comparison: the rest shared in proportion to area."""
    spare = total - sum(fixed)
    if spare < 0:
        raise ValueError("the budget does not cover every tile's smallest model")
    return _spread(fixed, [float(p) for p in pixels], spare)


def _spread(fixed: list[int], weights: list[float], spare: int) -> list[int]:
    """``fixed`` plus ``spare`` bytes split by ``weights``, rounded down (never over)."""
    w = np.asarray(weights, dtype=np.float64)
    if not np.isfinite(w).all() or w.sum() <= 0:
        w = np.ones_like(w)
    extra = np.floor(spare * w / w.sum()).astype(np.int64)
    return [int(f + e) for f, e in zip(fixed, extra, strict=True)]
