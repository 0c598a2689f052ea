"""Baseline codecs for the rate-distortion benchmark: what hsz has to beat.

Each codec turns a (bands, rows, cols) cube into one self-contained byte string and back.  The
byte string holds *everything* its decoder needs (shape, dtype, per-band min/max, PCA basis and
means, code-stream lengths), so ``len(blob)`` is the honest rate, exactly like the size of a
.hsz file.  Rates are then ``8 * len(blob) / (H * W * bands)`` over the true cube.

JPEG 2000 is OpenJPEG through imagecodecs (optional dependency: ``pip install -e '.[bench]'``),
irreversible 9/7 wavelet on uint16 samples.  This imagecodecs exposes OpenJPEG's *fixed
quality* mode only: ``level`` is the target PSNR (``tcp_distoratio``), not a compression
ratio.  Rate control therefore bisects that level until the whole blob fits the byte budget;
the bytes grow monotonically with it.

- ``jp2k_band``: every band on its own, stretched to the full uint16 range between its own
  min and max (stored), one code stream per band, the budget split equally between bands (what
  OpenJPEG's ``-r`` ratio does when every band gets the same ratio); each band's level is
  bisected to its share.  ``jp2k_band_eqpsnr`` instead uses one common level for all bands
  (equal normalized PSNR per band); on Indian Pines it is 0.6-1.8 dB worse, because noisy bands
  then eat the rate.
- ``jp2k_mc``: the same stretched bands as the components of ONE code stream (shared headers;
  OpenJPEG's rate-distortion optimisation allocates across bands; no spectral transform).
- ``pca_jp2k``: bands normalized by their range (so every band weighs the same, as in
  ``psnr_band_mean``), PCA over the spectra, the first k principal-component images coded as
  the components of one JPEG 2000 code stream on a common scale (so that the coder's MSE
  allocation across components is MSE-optimal in the band domain), float16 basis (with the
  band ranges folded in) and float32 means stored.  k is searched per rate for the best
  ``psnr_band_mean``.
"""

from __future__ import annotations

import io
import math
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hsz import metrics

#: dtypes a blob can carry, by code (the cube's own sample type is restored on decode).
DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64")

#: OpenJPEG's fixed-quality level range searched by rate control (dB).
LEVEL_LO, LEVEL_HI = 1.0, 120.0


def _jpeg2k() -> Any:
    try:
        import imagecodecs
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SystemExit(
            "the JPEG 2000 baselines need imagecodecs: pip install -e '.[bench]'"
        ) from exc
    return imagecodecs


# -- byte-level helpers: everything a decoder needs is in the blob ---------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_varint(buf: io.BytesIO) -> int:
    shift = value = 0
    while True:
        b = buf.read(1)[0]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value
        shift += 7


_HEAD = struct.Struct("<HHHB")  # bands, rows, cols, dtype code


def _header(shape: tuple[int, int, int], dtype: np.dtype) -> bytes:
    return _HEAD.pack(*shape, DTYPES.index(np.dtype(dtype).name))


def _read_header(buf: io.BytesIO) -> tuple[tuple[int, int, int], np.dtype]:
    bands, rows, cols, code = _HEAD.unpack(buf.read(_HEAD.size))
    return (bands, rows, cols), np.dtype(DTYPES[code])


def _range_dtype(dtype: np.dtype) -> np.dtype:
    """Per-band min/max are stored in the source dtype when it is an integer of <= 16 bits."""
    d = np.dtype(dtype)
    return d if d.kind in "ui" and d.itemsize <= 2 else np.dtype("<f4")


def _to_dtype(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Decoded floats back to the source sample type (rounded and clipped for integers)."""
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return np.clip(np.rint(x), info.min, info.max).astype(dtype)
    return x.astype(dtype)


def _stretch16(band: np.ndarray, lo: float, hi: float) -> np.ndarray:
    span = hi - lo
    if span <= 0:
        return np.zeros(band.shape, np.uint16)
    q = np.rint((band.astype(np.float64) - lo) / span * 65535.0)
    return np.clip(q, 0, 65535).astype(np.uint16)


def _unstretch16(q: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return lo + q.astype(np.float64) * ((hi - lo) / 65535.0)


def _band_ranges(cube: np.ndarray) -> tuple[np.ndarray, np.ndarray, bytes]:
    """Per-band min/max as the decoder will see them (after storage rounding) and their bytes."""
    rd = _range_dtype(cube.dtype)
    lo = cube.reshape(cube.shape[0], -1).min(axis=1).astype(rd)
    hi = cube.reshape(cube.shape[0], -1).max(axis=1).astype(rd)
    if rd.kind == "f":  # rounding to float32 must not clip the data: widen by one ulp
        lo = np.nextafter(lo, np.float32(-np.inf))
        hi = np.nextafter(hi, np.float32(np.inf))
    raw = np.stack([lo, hi], axis=1).astype(rd.newbyteorder("<")).tobytes()
    return lo.astype(np.float64), hi.astype(np.float64), raw


def _read_ranges(buf: io.BytesIO, bands: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    rd = _range_dtype(dtype).newbyteorder("<")
    arr = np.frombuffer(buf.read(bands * 2 * rd.itemsize), dtype=rd).reshape(bands, 2)
    return arr[:, 0].astype(np.float64), arr[:, 1].astype(np.float64)


def _j2k_encode(img: np.ndarray, level: float, resolutions: int | None = None) -> bytes:
    """One J2K code stream (no JP2 boxes): 2-D image, or (components, rows, cols) planar.

    ``resolutions`` None is OpenJPEG's default (6, fewer on small images).  Fewer levels
    would lower the smallest possible stream by a few bytes but cost quality: per band on
    Jasper Ridge at 0.2 bpppb, 3 levels instead of the default lose 1.8 dB; in one
    multi-component stream at 0.05 bpppb, 3.8 dB.
    """
    ic = _jpeg2k()
    kw: dict[str, Any] = {"level": float(level), "reversible": False, "codecformat": "J2K",
                          "resolutions": resolutions}
    if img.ndim == 3:
        if img.shape[0] == 1:
            img = img[0]
        else:
            kw.update(planar=True, mct=False)
    return bytes(ic.jpeg2k_encode(np.ascontiguousarray(img), **kw))


def _j2k_decode(data: bytes, components: int) -> np.ndarray:
    """Decode to (components, rows, cols) whatever layout imagecodecs returns."""
    out = _jpeg2k().jpeg2k_decode(data)
    if out.ndim == 2:
        return out[None]
    if out.shape[-1] == components:
        return np.moveaxis(out, -1, 0)
    return out


# -- codecs -------------------------------------------------------------------------------------


class Codec:
    """A baseline: ``encode(cube, level, **params) -> blob`` and ``decode(blob) -> cube``."""

    name = "codec"
    label = "codec"

    def encode(self, cube: np.ndarray, level: float, **params: Any) -> bytes:
        raise NotImplementedError

    def decode(self, blob: bytes) -> np.ndarray:
        raise NotImplementedError


class JP2KPerBand(Codec):
    """One code stream per band.  ``level`` is one common level (equal normalized PSNR in every
    band); ``levels=[...]`` gives each band its own (used by equal-bytes rate control)."""

    name = "jp2k_band"
    label = "JPEG 2000 per band"

    def band_stream(self, cube: np.ndarray, k: int, level: float) -> bytes:
        lo, hi, _ = _band_ranges(cube[k:k + 1])
        return _j2k_encode(_stretch16(cube[k], lo[0], hi[0]), level)

    def side_bytes(self, cube: np.ndarray) -> int:
        return _HEAD.size + cube.shape[0] * 2 * _range_dtype(cube.dtype).itemsize

    def encode(self, cube: np.ndarray, level: float, *, levels: list[float] | None = None,
               **params: Any) -> bytes:
        bands, rows, cols = cube.shape
        lo, hi, ranges = _band_ranges(cube)
        parts = [_header(cube.shape, cube.dtype), ranges]
        for k in range(bands):
            lv = level if levels is None else levels[k]
            cs = _j2k_encode(_stretch16(cube[k], lo[k], hi[k]), lv)
            parts += [_varint(len(cs)), cs]
        return b"".join(parts)

    def decode(self, blob: bytes) -> np.ndarray:
        buf = io.BytesIO(blob)
        (bands, rows, cols), dtype = _read_header(buf)
        lo, hi = _read_ranges(buf, bands, dtype)
        out = np.empty((bands, rows, cols), dtype=dtype)
        for k in range(bands):
            cs = buf.read(_read_varint(buf))
            out[k] = _to_dtype(_unstretch16(_j2k_decode(cs, 1)[0], lo[k], hi[k]), dtype)
        return out


class JP2KPerBandEqualPsnr(JP2KPerBand):
    name = "jp2k_band_eqpsnr"
    label = "JPEG 2000 per band, equal PSNR"


class JP2KMultiComponent(Codec):
    name = "jp2k_mc"
    label = "JPEG 2000 multi-component"

    def encode(self, cube: np.ndarray, level: float, **params: Any) -> bytes:
        bands, rows, cols = cube.shape
        lo, hi, ranges = _band_ranges(cube)
        stack = np.stack([_stretch16(cube[k], lo[k], hi[k]) for k in range(bands)])
        cs = _j2k_encode(stack, level)
        return b"".join([_header(cube.shape, cube.dtype), ranges, cs])

    def decode(self, blob: bytes) -> np.ndarray:
        buf = io.BytesIO(blob)
        (bands, rows, cols), dtype = _read_header(buf)
        lo, hi = _read_ranges(buf, bands, dtype)
        q = _j2k_decode(buf.read(), bands)
        out = np.empty((bands, rows, cols), dtype=dtype)
        for k in range(bands):
            out[k] = _to_dtype(_unstretch16(q[k], lo[k], hi[k]), dtype)
        return out


@dataclass
class _PcaModel:
    """The spectral transform, computed once per scene and shared by every k and level.

    The decoder gets ``x = means + gain * W^T c`` with ``W`` float16: the band ranges the PCA
    was computed under are folded into the stored basis (and one float32 gain keeps float16
    in range), so no per-band scale has to be stored on top of the means.
    """

    means: np.ndarray  # (bands,) float32 as stored
    gain: float  # float32 as stored
    w16: np.ndarray  # (bands, bands) float16: row i = component i's scaled basis vector
    projected: np.ndarray  # (bands, pixels) all component images, consistent with w16


class PcaJP2K(Codec):
    name = "pca_jp2k"
    label = "PCA + JPEG 2000"

    def __init__(self) -> None:
        self._models: dict[int, _PcaModel] = {}

    def _model(self, cube: np.ndarray) -> _PcaModel:
        key = id(cube)
        if key not in self._models:
            self._models.clear()
            bands = cube.shape[0]
            x = cube.reshape(bands, -1).astype(np.float64)
            means = x.mean(axis=1).astype(np.float32)
            span = x.max(axis=1) - x.min(axis=1)
            scales = np.where(span > 0, span, 1.0)
            # Normalize each band by its range so that every band weighs the same in the
            # transform, as it does in psnr_band_mean.
            z = (x - means[:, None].astype(np.float64)) / scales[:, None]
            w, v = np.linalg.eigh(z @ z.T / z.shape[1])
            v = v[:, np.argsort(w)[::-1]]
            scaled = (v * scales[:, None]).T  # row i: component i in data units
            gain = float(np.float32(np.abs(scaled).max()))
            w16 = (scaled / gain).astype(np.float16)
            # Project with exactly the vectors the decoder will use (float16-rounded).
            v16 = w16.astype(np.float64) * gain / scales[None, :]
            self._models[key] = _PcaModel(means, gain, w16, v16 @ z)
        return self._models[key]

    def components(self, cube: np.ndarray, k: int) -> tuple[np.ndarray, float, float]:
        """The first k component images and the float32 range they are quantized over."""
        c = self._model(cube).projected[:k]
        lo = float(np.nextafter(np.float32(c.min()), np.float32(-np.inf)))
        hi = float(np.nextafter(np.float32(c.max()), np.float32(np.inf)))
        return c, lo, hi

    def side_bytes(self, bands: int, k: int) -> int:
        """Bytes that do not depend on the level: header, k, means, gain, basis, range."""
        return _HEAD.size + 2 + bands * 4 + 4 + k * bands * 2 + 8

    def encode(self, cube: np.ndarray, level: float, *, k: int = 1, **params: Any) -> bytes:
        bands, rows, cols = cube.shape
        m = self._model(cube)
        c, lo, hi = self.components(cube, k)
        q = _stretch16(c, lo, hi).reshape(k, rows, cols)
        return b"".join([
            _header(cube.shape, cube.dtype),
            struct.pack("<H", k),
            m.means.astype("<f4").tobytes(),
            struct.pack("<f", m.gain),
            m.w16[:k].astype("<f2").tobytes(),
            struct.pack("<ff", lo, hi),
            _j2k_encode(q, level),
        ])

    def decode(self, blob: bytes) -> np.ndarray:
        buf = io.BytesIO(blob)
        (bands, rows, cols), dtype = _read_header(buf)
        (k,) = struct.unpack("<H", buf.read(2))
        means = np.frombuffer(buf.read(4 * bands), "<f4").astype(np.float64)
        (gain,) = struct.unpack("<f", buf.read(4))
        w = np.frombuffer(buf.read(2 * k * bands), "<f2").astype(np.float64).reshape(k, bands)
        lo, hi = struct.unpack("<ff", buf.read(8))
        c = _unstretch16(_j2k_decode(buf.read(), k).reshape(k, -1), lo, hi)
        x = means[:, None] + gain * (w.T @ c)
        return _to_dtype(x, dtype).reshape(bands, rows, cols)


class X265(Codec):
    """The band stack as a 12-bit monochrome HEVC video (x265 3.x, preset slow, tune psnr).

    Each band is stretched to 0..4095 between its own min and max (stored), the bands are
    the frames in band order; ``intra`` codes every frame on its own (keyint 1), otherwise
    x265's default random-access GOP predicts frames from their neighbours, which is where
    video codecs find the spectral redundancy.  ``level`` maps to CRF ``52 − level`` (x265
    takes fractional CRF), so bytes grow with the level as rate control expects.  Frames
    are padded by edge replication to even sizes of at least 16 (the header keeps the true
    size), and the coding tree unit is the largest of 64/32/16 that fits the frame.
    """

    def __init__(self, intra: bool) -> None:
        self.intra = intra
        self.name = "x265_intra" if intra else "x265_ra"
        self.label = "x265 all-intra" if intra else "x265 random access"

    @staticmethod
    def frame_size(rows: int, cols: int) -> tuple[int, int]:
        """Even, and at least one 16-pixel coding tree unit."""
        return max(16, rows + rows % 2), max(16, cols + cols % 2)

    @staticmethod
    def available() -> bool:
        import shutil

        return bool(shutil.which("x265") and shutil.which("ffmpeg"))

    def encode(self, cube: np.ndarray, level: float, **params: Any) -> bytes:
        import subprocess
        import tempfile

        bands, rows, cols = cube.shape
        lo, hi, ranges = _band_ranges(cube)
        h, w = self.frame_size(rows, cols)
        frames = np.empty((bands, h, w), np.uint16)
        for k in range(bands):
            q = _stretch16(cube[k], lo[k], hi[k]) >> 4
            frames[k] = np.pad(q, ((0, h - rows), (0, w - cols)), mode="edge")
        # x265 refuses (and then hangs) on a picture smaller than one coding tree unit, and
        # its random-access mode aborts on some pictures of only one or two (corn kernels,
        # 44x32 at CTU 32): the largest CTU that fits is tried first, then smaller ones.
        ctus = [c for c in (64, 32, 16) if c <= min(h, w)]
        crf = min(max(52.0 - level, 0.0), 51.0)
        with tempfile.TemporaryDirectory() as tmp:
            out = f"{tmp}/s.hevc"
            for ctu in ctus:
                cmd = ["x265", "--input", "-", "--input-res", f"{w}x{h}", "--input-csp", "i400",
                       "--input-depth", "12", "--output-depth", "12", "--fps", "1",
                       "--frames", str(bands), "--preset", "slow", "--tune", "psnr",
                       "--crf", f"{crf:.3f}", "--ctu", str(ctu), "--log-level", "error",
                       "--no-info", "--output", out]
                if self.intra:
                    cmd += ["--keyint", "1"]
                done = subprocess.run(cmd, input=frames.astype("<u2").tobytes(),
                                      capture_output=True, timeout=600)
                if done.returncode == 0:
                    break
            else:
                raise RuntimeError(f"x265 failed at every CTU size: {done.stderr[-300:]!r}")
            with open(out, "rb") as fh:
                stream = fh.read()
        return b"".join([_header(cube.shape, cube.dtype), ranges, stream])

    def decode(self, blob: bytes) -> np.ndarray:
        import subprocess

        buf = io.BytesIO(blob)
        (bands, rows, cols), dtype = _read_header(buf)
        lo, hi = _read_ranges(buf, bands, dtype)
        res = subprocess.run(["ffmpeg", "-v", "error", "-f", "hevc", "-i", "-", "-f", "rawvideo",
                              "-pix_fmt", "gray12le", "-"], input=buf.read(), check=True,
                             capture_output=True, timeout=600)
        h, w = self.frame_size(rows, cols)
        q = np.frombuffer(res.stdout, "<u2").reshape(bands, h, w)[:, :rows, :cols]
        out = np.empty((bands, rows, cols), dtype=dtype)
        for k in range(bands):
            out[k] = _to_dtype(lo[k] + q[k].astype(np.float64) * ((hi[k] - lo[k]) / 4095.0),
                               dtype)
        return out


CODECS: dict[str, Callable[[], Codec]] = {
    "x265_intra": lambda: X265(intra=True),
    "x265_ra": lambda: X265(intra=False),
    "jp2k_band": JP2KPerBand,
    "jp2k_band_eqpsnr": JP2KPerBandEqualPsnr,
    "jp2k_mc": JP2KMultiComponent,
    "pca_jp2k": PcaJP2K,
}


# -- rate control -------------------------------------------------------------------------------


class SizeCurve:
    """Blob size as a function of the level, memoised so several targets share encodes."""

    def __init__(self, encode: Callable[[float], bytes]) -> None:
        self._encode = encode
        self.sizes: dict[float, int] = {}
        self.calls = 0
        self.seconds = 0.0

    def size(self, level: float) -> int:
        level = round(level, 4)
        if level not in self.sizes:
            t = time.perf_counter()
            self.sizes[level] = len(self._encode(level))
            self.seconds += time.perf_counter() - t
            self.calls += 1
        return self.sizes[level]


def fit_level(curve: SizeCurve, budget: int, *, start: float = 40.0, steps: int = 16,
              slack: float = 0.01) -> tuple[float, bool]:
    """The highest level whose blob fits ``budget`` bytes: (level, met).

    Brackets the budget from ``start`` (a previous solution is a good start), then narrows
    the bracket by interpolating log(size), which is close to linear in the level (a JPEG 2000
    stream grows ~exponentially with its PSNR), with a bisection safeguard; stops once the
    size is within ``slack`` below the budget.  Each probe is a full encode, so the count
    matters: typically 4-7 instead of ~12 for plain bisection.  When even the lowest level
    does not fit, returns it with ``met=False`` (headers and side information alone exceed
    the target).
    """
    level = min(max(round(start, 4), LEVEL_LO), LEVEL_HI)
    size = curve.size(level)
    fits: tuple[float, int] | None = (level, size) if size <= budget else None
    over: tuple[float, int] | None = None if size <= budget else (level, size)
    step = 8.0
    while fits is None or over is None:
        if fits is None:
            assert over is not None
            if over[0] <= LEVEL_LO:
                return LEVEL_LO, False
            level = max(LEVEL_LO, round(over[0] - step, 4))
        else:
            if fits[0] >= LEVEL_HI:
                return LEVEL_HI, True
            level = min(LEVEL_HI, round(fits[0] + step, 4))
        size = curve.size(level)
        if size <= budget:
            fits = (level, size)
        else:
            over = (level, size)
        step *= 2.0
    goal = math.log(budget * (1.0 - slack / 2))
    for _ in range(steps):
        if fits[1] >= budget * (1.0 - slack) or over[0] - fits[0] < 1e-3:
            break
        a, b = math.log(max(fits[1], 1)), math.log(over[1])
        t = (goal - a) / (b - a) if b > a else 0.5
        t = min(max(t, 0.15), 0.85)  # keep probes away from the bracket ends
        level = round(fits[0] + t * (over[0] - fits[0]), 4)
        if not fits[0] < level < over[0]:
            level = round(0.5 * (fits[0] + over[0]), 4)
            if not fits[0] < level < over[0]:
                break
        size = curve.size(level)
        if size <= budget:
            fits = (level, size)
        else:
            over = (level, size)
    return fits[0], True


@dataclass
class Point:
    """One measured rate-distortion point."""

    codec: str
    target_bpppb: float
    bytes: int
    bpppb: float
    psnr_band_mean: float
    psnr_global: float
    sam_deg: float
    encode_s: float
    decode_s: float
    target_met: bool
    params: dict[str, Any]
    search_s: float = 0.0


def measure(codec: Codec, cube: np.ndarray, target: float, level: float, met: bool,
            search_s: float, mask: np.ndarray | None = None, **params: Any) -> Point:
    """Encode once at the chosen parameters (timed), decode (timed), and score.

    ``mask`` (rows, cols) leaves nodata pixels out of the scores, as hsz does.
    """
    t0 = time.perf_counter()
    blob = codec.encode(cube, level, **params)
    t1 = time.perf_counter()
    back = codec.decode(blob)
    t2 = time.perf_counter()
    q = metrics.quality(cube, back, mask)
    return Point(
        codec=codec.name, target_bpppb=target, bytes=len(blob),
        bpppb=metrics.bpppb(len(blob), cube.shape), psnr_band_mean=q["psnr_band_mean"],
        psnr_global=q["psnr_global"], sam_deg=q["sam_deg"], encode_s=t1 - t0, decode_s=t2 - t1,
        target_met=met, params={"level": round(level, 3), **params}, search_s=search_s,
    )


def run_fixed(codec: Codec, cube: np.ndarray, targets: list[float],
              mask: np.ndarray | None = None) -> list[Point]:
    """jp2k_band / jp2k_mc: one size curve per scene, one bisection per target."""
    curve = SizeCurve(lambda lvl: codec.encode(cube, lvl))
    points = []
    level = 30.0
    for target in targets:
        budget = int(target * cube.size / 8)
        t = time.perf_counter()
        level, met = fit_level(curve, budget, start=level)
        points.append(measure(codec, cube, target, level, met, time.perf_counter() - t, mask))
    return points


def run_band_equal_bytes(codec: JP2KPerBand, cube: np.ndarray, targets: list[float],
                         mask: np.ndarray | None = None) -> list[Point]:
    """Per-band JPEG 2000 with the budget split equally between bands.

    This is what OpenJPEG's own rate control (``-r``, a compression ratio per code stream)
    does when every band is given the same ratio.  Each band's level is bisected to its share;
    bands whose smallest code stream exceeds the share keep that minimum and the rest share
    what is left.
    """
    bands = cube.shape[0]
    curves = [SizeCurve(lambda lvl, k=k: codec.band_stream(cube, k, lvl)) for k in range(bands)]
    points = []
    for target in targets:
        budget = int(target * cube.size / 8)
        t = time.perf_counter()
        # A code stream's length prefix takes 2 bytes for streams of 128 B - 16 KiB.
        avail = budget - codec.side_bytes(cube) - 2 * bands
        floor = np.array([c.size(LEVEL_LO) for c in curves])
        fixed = np.zeros(bands, dtype=bool)
        while True:
            free = ~fixed
            share = (avail - floor[fixed].sum()) / max(int(free.sum()), 1)
            newly = free & (floor > share)
            if not newly.any():
                break
            fixed |= newly
        levels = [LEVEL_LO] * bands
        caps = np.where(fixed, floor, share)
        for _ in range(4):
            # A fixed-quality stream cannot land on its share exactly; what the bands leave
            # unspent is shared out again (a few rounds), as a rate-driven coder would spend it.
            for k in np.flatnonzero(~fixed):
                start = levels[k] if levels[k] > LEVEL_LO else 30.0
                levels[k] = fit_level(curves[k], int(caps[k]), start=start)[0]
            sizes = np.array([curves[k].size(levels[k]) for k in range(bands)])
            spare = avail - int(sizes.sum())
            if spare < 0.005 * budget or fixed.all():
                break
            caps = np.where(fixed, floor, sizes + spare / int((~fixed).sum()))
        # Steps between a band's passes can be larger than an equal slice of what is left (at
        # 0.2 bpppb on a 100 x 100 frame a band has ~250 bytes); give the remainder to the
        # lowest-level bands one at a time instead of leaving several percent of the rate unused.
        sizes = np.array([curves[k].size(levels[k]) for k in range(bands)])
        spare = avail - int(sizes.sum())
        for k in sorted(np.flatnonzero(~fixed), key=lambda b: levels[b]):
            if spare < 0.002 * budget:
                break
            lv = fit_level(curves[k], int(sizes[k] + spare), start=levels[k])[0]
            spare -= curves[k].size(lv) - int(sizes[k])
            levels[k], sizes[k] = lv, curves[k].size(lv)
        search = time.perf_counter() - t
        point = measure(codec, cube, target, 0.0, True, search, mask, levels=levels)
        point.target_met = point.bytes <= budget
        point.params = {"allocation": "equal bytes",
                        "mean_level": round(float(np.mean(levels)), 3)}
        points.append(point)
    return points


def run_pca(codec: PcaJP2K, cube: np.ndarray, targets: list[float],
            mask: np.ndarray | None = None, log: Callable[[str], None] | None = None
            ) -> list[Point]:
    """PCA + JPEG 2000 with k searched per target for the best psnr_band_mean.

    A log-spaced grid of k over [1, kmax] (kmax: the basis takes at most half the budget, and
    64 at most), then a ternary search between the best grid point's neighbours.  Quality is
    not unimodal in k (Indian Pines at 0.05 bpppb peaks at k=6 and again near k=16-19), so a
    search over the whole range alone lands on the wrong peak; the grid sees every region.
    Every probe of k is a full rate control, hence the search rather than trying every k.
    """
    bands = cube.shape[0]
    curves: dict[int, SizeCurve] = {}
    points = []
    last_level = 40.0
    for target in targets:
        budget = int(target * cube.size / 8)
        t = time.perf_counter()
        tried: dict[int, tuple[float, float, bool]] = {}

        def score(k: int, budget: int = budget, tried: dict = tried,
                  first: float = last_level) -> float:
            if k in tried:
                return tried[k][0]
            if codec.side_bytes(bands, k) >= budget:
                tried[k] = (-math.inf, LEVEL_LO, False)
                return -math.inf
            curve = curves.setdefault(k, SizeCurve(lambda lvl, k=k: codec.encode(cube, lvl, k=k)))
            near = [tried[j][1] for j in sorted(tried, key=lambda j: abs(j - k)) if tried[j][2]]
            level, met = fit_level(curve, budget, start=near[0] if near else first)
            if not met:
                tried[k] = (-math.inf, level, False)
                return -math.inf
            back = codec.decode(codec.encode(cube, level, k=k))
            psnr = metrics.psnr_band_mean(cube, back, mask)
            tried[k] = (psnr, level, met)
            return psnr

        kmax = 1
        while kmax < min(bands, 64) and codec.side_bytes(bands, kmax + 1) < budget // 2:
            kmax += 1
        grid = [k for k in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64) if k < kmax] + [kmax]
        for k in grid:
            score(k)
        best = max(grid, key=lambda kk: tried[kk][0])
        i = grid.index(best)
        a = grid[i - 1] if i > 0 else best
        b = grid[i + 1] if i + 1 < len(grid) else best
        while b - a > 3:  # ternary search between the best grid point's neighbours
            m1, m2 = a + (b - a) // 3, b - (b - a) // 3
            if score(m1) >= score(m2):
                b = m2
            else:
                a = m1
        for k in range(a, b + 1):
            score(k)
        k_best = max(tried, key=lambda kk: tried[kk][0])
        psnr, level, met = tried[k_best]
        if psnr == -math.inf:  # nothing fits: report the smallest blob (k=1, lowest level)
            k_best, level, met = 1, LEVEL_LO, False
        else:
            last_level = level
        search = time.perf_counter() - t
        if log:
            log(f"  pca k tried {sorted(tried)} -> k={k_best}")
        points.append(measure(codec, cube, target, level, met, search, mask, k=k_best))
    return points
