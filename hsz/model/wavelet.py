"""The CDF 9/7 wavelet (JPEG 2000's irreversible filter) as lifting steps, numpy or torch.

The ``latent`` family's ``dwt`` transform stores each spectral component's map as wavelet
subbands instead of a Laplacian pyramid.  Measured on CAVE balloons (31 principal
components, one uniform step, zeroth-order entropy, no training): about 0.05 bpppb bought
41.4 dB through the pyramid (closed-loop, bilinear) and 50.5 dB through this transform.
A pyramid holds 4/3 values per pixel and its bilinear synthesis leaves sharp detail to the
finest level; the wavelet is critically sampled and nearly orthonormal, so one step size
spends bits evenly.

Layout.  A map of ``H x W`` is first extended to ``Hp x Wp`` (multiples of ``2^depth``) by
whole-sample symmetric reflection; the extension is cut off after synthesis.  Each level
splits the current low band into four: ``LL`` (low rows, low cols), ``LH`` (high along
rows, i.e. vertical detail), ``HL``, ``HH``.  For K maps, level ``j`` (finest first) is one
grid of 3K channels ``[LH_0, HL_0, HH_0, LH_1, ...]`` (a component's three details
together, so each sees its sibling as the previous channel) and the last low band is one
grid of K channels.

Every function takes the array module ``xp`` (``numpy`` or ``torch``): decoding needs only
numpy, training differentiates through the same code in torch.  Boundaries use whole-sample
symmetric extension (``x[-1] = x[1]``, ``x[n] = x[n - 2]``), as JPEG 2000 does.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

# Lifting coefficients of the CDF 9/7 filter pair (ISO/IEC 15444-1, Annex F).
ALPHA = -1.586134342059924
BETA = -0.052980118572961
GAMMA = 0.882911075530934
DELTA = 0.443506852043971
_K = 1.230174104914001
#: Band gains that make every synthesis function's norm close to 1 (0.99 low, 1.02 high),
#: so that one quantization step costs the same distortion in every subband.
LOW_GAIN = math.sqrt(2.0) / _K
HIGH_GAIN = _K / math.sqrt(2.0)


def padded(n: int, depth: int) -> int:
    """``n`` rounded up to a multiple of ``2^depth``."""
    m = 1 << depth
    return -(-n // m) * m


def _next(s: Any, xp: Any) -> Any:
    return xp.concatenate([s[..., 1:], s[..., -1:]], -1)


def _prev(d: Any, xp: Any) -> Any:
    return xp.concatenate([d[..., :1], d[..., :-1]], -1)


def _split(x: Any, xp: Any) -> tuple[Any, Any]:
    """One analysis step along the last axis (even length): (low, high)."""
    s, d = x[..., 0::2], x[..., 1::2]
    d = d + ALPHA * (s + _next(s, xp))
    s = s + BETA * (_prev(d, xp) + d)
    d = d + GAMMA * (s + _next(s, xp))
    s = s + DELTA * (_prev(d, xp) + d)
    return s * LOW_GAIN, d * HIGH_GAIN


def _merge(s: Any, d: Any, xp: Any) -> Any:
    """One synthesis step along the last axis: the inverse of :func:`_split` (torch;
    numpy decodes through :func:`_merge_np`, the same arithmetic without copies)."""
    s = s * (1.0 / LOW_GAIN)
    d = d * (1.0 / HIGH_GAIN)
    s = s - DELTA * (_prev(d, xp) + d)
    d = d - GAMMA * (s + _next(s, xp))
    s = s - BETA * (_prev(d, xp) + d)
    d = d - ALPHA * (s + _next(s, xp))
    return xp.stack([s, d], -1).reshape(*s.shape[:-1], 2 * s.shape[-1])


def _lift_np(target: np.ndarray, source: np.ndarray, coef: float, axis: int, back: bool
             ) -> None:
    """``target −= coef·(source[n−1] + source[n])`` (``back``) or ``coef·(source[n] +
    source[n+1])`` along ``axis``, indices clamped, in place: the same sums and products as
    :func:`_merge`'s, without the shifted copies."""
    n = source.shape[axis]

    def part(a: np.ndarray, lo: int | None, hi: int | None) -> np.ndarray:
        idx: list[Any] = [slice(None)] * a.ndim
        idx[axis] = slice(lo, hi)
        return a[tuple(idx)]

    pair = np.empty_like(source)
    if back:  # source[n−1] + source[n], source[−1] = source[0]
        np.add(part(source, 0, 1), part(source, 0, 1), out=part(pair, 0, 1))
        np.add(part(source, 0, n - 1), part(source, 1, None), out=part(pair, 1, None))
    else:  # source[n] + source[n+1], source[n] = source[n−1] past the end
        np.add(part(source, 0, n - 1), part(source, 1, None), out=part(pair, 0, n - 1))
        np.add(part(source, n - 1, None), part(source, n - 1, None), out=part(pair, n - 1, None))
    pair *= coef
    target -= pair


def _merge_np(s: np.ndarray, d: np.ndarray, axis: int) -> np.ndarray:
    """:func:`_merge` in numpy along ``axis`` (−1 or −2) of C-ordered arrays, bit for bit:
    rows merge as rows instead of as a strided view of swapped axes."""
    s = s * (1.0 / LOW_GAIN)
    d = d * (1.0 / HIGH_GAIN)
    _lift_np(s, d, DELTA, axis, back=True)
    _lift_np(d, s, GAMMA, axis, back=False)
    _lift_np(s, d, BETA, axis, back=True)
    _lift_np(d, s, ALPHA, axis, back=False)
    shape = list(s.shape)
    shape[axis] *= 2
    out = np.empty(shape, dtype=np.result_type(s, d))
    idx: list[Any] = [slice(None)] * out.ndim
    idx[axis] = slice(0, None, 2)
    out[tuple(idx)] = s
    idx[axis] = slice(1, None, 2)
    out[tuple(idx)] = d
    return out


#: Output sides up to which torch synthesizes a level as two matrix products instead of
#: lifting steps.  Training differentiates the synthesis at every step, and on small maps
#: the lifting's few dozen small operations per level cost more than their arithmetic: one
#: level forward and backward, 22 maps, 2 threads, lifting against matrices: 4.4 against
#: 0.9 ms to 64x64, 17.6 against 11.2 ms to 160x160, 38.1 against 39.5 ms to 256x256,
#: 156 against 187 ms to 512x512.
MATRIX_SIDE = 256


@functools.lru_cache(maxsize=64)
def _merge_matrix(n: int, dtype: Any, device: str) -> Any:
    """(2n, 2n) torch matrix M with ``merge(s, d) = M @ [s; d]`` along an axis of ``n``
    lows and ``n`` highs: the same linear map as :func:`_merge`, built from it in float64."""
    import torch

    eye, zero = np.eye(n), np.zeros((n, n))
    m = np.concatenate([_merge_np(eye, zero, -1), _merge_np(zero, eye, -1)], 0).T
    return torch.from_numpy(np.ascontiguousarray(m)).to(device=device, dtype=dtype)


def _cols(x: Any) -> Any:
    return x.swapaxes(-1, -2)


def analyze(x: Any, depth: int, xp: Any) -> list[Any]:
    """Subband grids of maps ``x`` (K, Hp, Wp), both sides multiples of ``2^depth``:
    ``depth`` detail grids (3K channels, finest first) then the low band (K channels)."""
    k = x.shape[0]
    grids = []
    low = x
    for _ in range(depth):
        lo_w, hi_w = _split(low, xp)  # along columns of each row
        ll, lh = (_cols(a) for a in _split(_cols(lo_w), xp))
        hl, hh = (_cols(a) for a in _split(_cols(hi_w), xp))
        h, w = ll.shape[-2:]
        grids.append(xp.stack([lh, hl, hh], 1).reshape(3 * k, h, w))
        low = ll
    grids.append(low)
    return grids


#: Maps synthesized at once in numpy.  Each map's synthesis is its own arithmetic, so
#: chunks change no value; small chunks keep every intermediate in cache and inside the
#: heap glibc reuses (a whole CAVE scene's intermediates are 65 MB arrays, each mapped
#: and faulted in afresh: 0.5-0.7 s against 0.2 s for 31 maps of 512 x 512).
SYNTH_CHUNK = 2


def synthesize(grids: list[Any], xp: Any) -> Any:
    """Maps (K, Hp, Wp) from the grids :func:`analyze` gives (any scaling already applied)."""
    k = grids[-1].shape[0]
    if xp is np and k > SYNTH_CHUNK:
        parts = [_synthesize([g[a * 3:b * 3] for g in grids[:-1]] + [grids[-1][a:b]], xp)
                 for a, b in ((a, min(a + SYNTH_CHUNK, k)) for a in range(0, k, SYNTH_CHUNK))]
        return np.concatenate(parts)
    return _synthesize(grids, xp)


def _synthesize(grids: list[Any], xp: Any) -> Any:
    low = grids[-1]
    k = low.shape[0]
    for detail in reversed(grids[:-1]):
        h, w = detail.shape[-2:]
        lh, hl, hh = (detail.reshape(k, 3, h, w)[:, o] for o in range(3))
        if xp is np:
            low = _merge_np(_merge_np(low, lh, -2), _merge_np(hl, hh, -2), -1)
            continue
        if max(h, w) <= MATRIX_SIDE // 2:
            rows = _merge_matrix(h, low.dtype, str(low.device))
            cols = _merge_matrix(w, low.dtype, str(low.device))
            quad = xp.cat([xp.cat([low, lh], -2), xp.cat([hl, hh], -2)], -1)
            low = rows @ quad @ cols.T
            continue
        lo_w = _cols(_merge(_cols(low), _cols(lh), xp))
        hi_w = _cols(_merge(_cols(hl), _cols(hh), xp))
        low = _merge(lo_w, hi_w, xp)
    return low


def extend(x: Any, rows: int, cols: int, xp: Any) -> Any:
    """``x`` (K, H, W) reflected (whole-sample symmetric) to (K, rows, cols)."""
    for axis, size in ((-2, rows), (-1, cols)):
        n = x.shape[axis]
        while n < size:
            take = min(size - n, n - 1) if n > 1 else size - n
            if n == 1:
                tail = xp.concatenate([x] * (take + 1), axis)
                x = tail
            else:
                idx = list(range(n - 2, n - 2 - take, -1))
                part = x[..., idx, :] if axis == -2 else x[..., idx]
                x = xp.concatenate([x, part], axis)
            n = x.shape[axis]
    return x
