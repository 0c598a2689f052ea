"""The library's front door: encode a cube to ``.hsz`` bytes, decode them back, describe a file.

Data flows one way: Cube -> normalize -> plan -> fit -> quantize & code -> container, and
back: container -> tensors -> render(wavelengths) -> denormalize -> Cube.  Each arrow is a
module of its own; this one only strings them together and records what was done.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hsz import __version__, codec, metrics, spectral
from hsz.codec.binio import DAMAGED
from hsz.codec.container import check_integrity, damage_summary
from hsz.cube import Cube
from hsz.errors import FormatError, RateError, UsageError
from hsz.meta import check_meta, cube_from_meta, cube_meta, header_warnings, source_wavelengths
from hsz.normalize import BandScale, band_scale, denormalize_band, normalize

#: Default rate when the caller names none: where hsz is clearly ahead of per-band codecs.
DEFAULT_BPPPB = 0.2

Progress = Callable[[dict[str, Any]], None]

#: A number whose JSON text is at least as long as any quality figure recorded.
_WIDEST = -99999999.9999


@dataclass
class EncodeResult:
    """An encoded file and what was measured while making it."""

    data: bytes
    meta: dict[str, Any]
    shape: tuple[int, int, int]
    bits_per_sample: int
    seconds: float
    quality: dict[str, float] = field(default_factory=dict)
    fit_psnr: float = float("nan")

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def bpppb(self) -> float:
        return metrics.bpppb(self.size, self.shape)

    @property
    def ratio(self) -> float:
        return metrics.compression_ratio(self.size, self.shape, self.bits_per_sample)


def target_bytes(
    shape: tuple[int, int, int],
    *,
    bpppb: float | None = None,
    size: int | None = None,
    ratio: float | None = None,
    bits_per_sample: int = 16,
) -> int:
    """Turn whichever rate the user named into a byte budget for the whole file."""
    given = [v is not None for v in (bpppb, size, ratio)]
    if sum(given) > 1:
        raise UsageError("give only one of --bpppb, --size and --ratio")
    samples = shape[0] * shape[1] * shape[2]
    if size is not None:
        if size <= 0:
            raise UsageError("--size must be a positive number of bytes")
        return int(size)
    if ratio is not None:
        if ratio <= 0:
            raise UsageError("--ratio must be positive")
        bpppb = bits_per_sample / ratio
    if bpppb is None:
        bpppb = DEFAULT_BPPPB
    if not np.isfinite(bpppb) or bpppb <= 0:
        raise UsageError("--bpppb must be a positive number")
    return int(bpppb * samples / 8.0)


def _nodata_section(mask: np.ndarray | None) -> dict[str, np.ndarray]:
    """The valid-pixel mask, bit-packed and deflated; absent when every pixel is valid."""
    if mask is None or bool(mask.all()):
        return {}
    packed = np.packbits(mask.astype(np.uint8).reshape(-1), bitorder="big").tobytes()
    return {"valid_mask": np.frombuffer(zlib.compress(packed, 9), dtype=np.uint8)}


def _mask_from_raw(raw: dict[str, np.ndarray], rows: int, cols: int) -> np.ndarray | None:
    blob = raw.get("valid_mask")
    if blob is None:
        return None
    need = (rows * cols + 7) // 8
    try:
        d = zlib.decompressobj()
        packed = d.decompress(np.asarray(blob, dtype=np.uint8).tobytes(), need + 1)
    except zlib.error:
        raise FormatError("the valid-pixel mask is damaged") from None
    if len(packed) != need:
        raise FormatError("the valid-pixel mask has the wrong size")
    bits = np.unpackbits(np.frombuffer(packed, dtype=np.uint8), bitorder="big")[: rows * cols]
    return bits.reshape(rows, cols).astype(bool)


@dataclass
class EncodePlan:
    """Everything an encode settles before fitting: what to fit, to which network, in what file.

    Split out of :func:`encode` so that benchmarks studying the fit plan exactly as the codec
    does instead of keeping a copy of these steps.
    """

    target: np.ndarray  # (bands, H, W) float32 in [0, 1], nodata zeroed
    coords: np.ndarray  # network coordinate of each band
    mask: np.ndarray | None  # valid pixels, None when all are
    raw: dict[str, np.ndarray]  # RAWA arrays: band ranges and the nodata mask
    meta: dict[str, Any]  # metadata with placeholders for what the fit decides
    budget: int  # bytes the whole file may use
    plan: Any  # hsz.rate.Plan: the network sized for the budget


def plan_encode(
    cube: Cube,
    *,
    bpppb: float | None = None,
    size: int | None = None,
    ratio: float | None = None,
    preset: str = "balanced",
    seed: int = 0,
) -> EncodePlan:
    """Normalize ``cube``, lay out its side information and size the network for the rate."""
    from hsz import rate

    cube.check_finite()
    mask = cube.valid_mask()
    if mask is not None and not mask.any():
        raise UsageError("every pixel of the cube is nodata; there is nothing to encode")
    scale = band_scale(cube, mask)
    target = normalize(cube, scale, mask)
    coords = spectral.band_coordinates(cube.wavelengths, cube.bands)

    budget = target_bytes(
        cube.shape, bpppb=bpppb, size=size, ratio=ratio, bits_per_sample=cube.bits_per_sample
    )
    raw = {"band_low": scale.low, "band_high": scale.high, **_nodata_section(mask)}
    # Quality is only known at the end; placeholders at least as wide as any real figure keep
    # the sizes computed before then close to the final file's.  No timing is recorded, so
    # the same cube, options and seed give the same file on the same machine.
    meta: dict[str, Any] = {
        **cube_meta(cube),
        "coords": coords_meta(cube.wavelengths, cube.bands),
        "encoder": {
            "hsz_version": __version__, "preset": preset, "seed": int(seed),
            "epochs": 10**7, "device": "cuda:00",
        },
        "quality": dict.fromkeys(("psnr_band_mean", "psnr_global", "sam_deg"), _WIDEST),
    }
    plan = rate.plan(cube.shape, budget, meta, raw)
    return EncodePlan(target, coords, mask, raw, meta, budget, plan)


def encode(
    cube: Cube,
    *,
    bpppb: float | None = None,
    size: int | None = None,
    ratio: float | None = None,
    preset: str = "balanced",
    epochs: int | None = None,
    device: str = "auto",
    seed: int = 0,
    progress: Progress | None = None,
    report: Callable[[str], None] | None = None,
) -> EncodeResult:
    """Fit, quantize and code ``cube`` so that the whole file fits the named rate."""
    from hsz import rate
    from hsz.model.fit import fit

    start = time.perf_counter()
    prep = plan_encode(cube, bpppb=bpppb, size=size, ratio=ratio, preset=preset, seed=seed)
    target, coords, mask, raw, meta = prep.target, prep.coords, prep.mask, prep.raw, prep.meta
    budget, plan = prep.budget, prep.plan
    if report is not None:
        report(plan.describe())

    result = fit(
        target, coords, plan.config, mask=mask, epochs=epochs, preset=preset,
        device=device, seed=seed, progress=progress,
    )

    tensors = model_tensors(result.decoder, result.embeddings)
    meta["model"] = {"id": "hiner", "config": result.config.to_json()}
    meta["encoder"].update(epochs=int(result.epochs), device=str(result.device))
    # The metadata is deflated, so recording the measured figures can change its size by a
    # few bytes; land with a small margin, and should the final file still be over budget,
    # land again tighter and measure again.
    limit = budget - rate.FIGURES_MARGIN
    sensitivity = quantization_sensitivity(result.config, tensors, coords, device="cpu")
    for _ in range(4):
        landed = rate.land(meta, tensors, raw, limit, sensitivity)
        # Measure what a decoder will really produce, through the decoder's own code path.
        decoded = decode(landed.data)
        quality = metrics.quality(cube.data, decoded.data, mask)
        meta["quality"] = {k: round(float(v), 4) for k, v in quality.items()}
        data = codec.pack(meta, tensors, bits=landed.bits, raw=raw)
        if len(data) <= budget:
            break
        limit -= len(data) - budget + rate.FIGURES_MARGIN
    else:
        raise RateError(f"could not land the file within {budget} bytes")
    return EncodeResult(
        data=data,
        meta=meta,
        shape=cube.shape,
        bits_per_sample=cube.bits_per_sample,
        seconds=time.perf_counter() - start,
        quality=quality,
        fit_psnr=float(result.best_psnr),
    )


def quantization_sensitivity(
    config: Any,
    tensors: dict[str, np.ndarray],
    coords: np.ndarray,
    *,
    device: str = "cpu",
    probe_bands: int = 8,
    probe_bits: int = 6,
) -> dict[str, float]:
    """How much each tensor's quantization noise shows in the decoded bands.

    Coarsening one tensor to ``probe_bits`` while the rest stay exact and measuring the
    mean squared change of a few decoded bands gives that tensor's weight in the rate
    allocation; rescaled to what the same tensor would cost at 8 bits.
    """
    from hsz.codec import quantize
    from hsz.model import get_model

    entry = get_model("hiner")
    picks = np.unique(np.linspace(0, coords.size - 1, min(probe_bands, coords.size)).round())
    query = coords[picks.astype(int)]

    def render(ts: dict[str, np.ndarray]) -> np.ndarray:
        decoder = {n[len("decoder."):]: t for n, t in ts.items() if n.startswith("decoder.")}
        bands = entry.render(config, decoder, ts["embeddings"], coords, query, device=device)
        return np.stack(list(bands))

    reference = render(tensors)
    scale = 4.0 ** (8 - probe_bits)
    out: dict[str, float] = {}
    for name, t in tensors.items():
        coarse = dict(tensors)
        coarse[name] = quantize(name, t, bits=probe_bits).dequantize().reshape(t.shape)
        out[name] = float(np.mean((render(coarse) - reference) ** 2)) / scale
    return out


def model_tensors(decoder: dict[str, np.ndarray], embeddings: np.ndarray) -> dict[str, np.ndarray]:
    """The arrays a decoder needs, under the names the file uses for them."""
    tensors = {f"decoder.{name}": np.asarray(t, dtype=np.float32) for name, t in decoder.items()}
    tensors["embeddings"] = np.asarray(embeddings, dtype=np.float32)
    return tensors


def coords_meta(wavelengths: np.ndarray | None, bands: int) -> dict[str, Any]:
    """How band coordinates were made, so a decoder can place any wavelength on the same axis."""
    if wavelengths is None:
        return {"rule": "index", "range": [0.0, float(max(bands - 1, 1))]}
    return {"rule": "wavelength", "range": [float(wavelengths.min()), float(wavelengths.max())]}


@dataclass
class Decoded:
    """What unpacking a file yields before any band is rendered."""

    meta: dict[str, Any]
    tensors: dict[str, np.ndarray]
    scale: BandScale
    mask: np.ndarray | None
    band_coords: np.ndarray


def open_file(source: bytes | str | Path) -> Decoded:
    """Parse and validate a file's sections into arrays ready for rendering."""
    buf = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
    unpacked = codec.unpack(buf)
    meta = unpacked.meta
    bands, rows, cols = check_meta(meta)
    raw = unpacked.raw
    for key in ("band_low", "band_high"):
        arr = raw.get(key)
        if arr is None or arr.shape != (bands,):
            raise FormatError(f"the file lacks a valid {key} array of {bands} values")
    scale = BandScale(raw["band_low"], raw["band_high"])
    wl = source_wavelengths(meta)
    return Decoded(
        meta=meta,
        tensors=unpacked.tensors,
        scale=scale,
        mask=_mask_from_raw(raw, rows, cols),
        band_coords=spectral.band_coordinates(wl, bands),
    )


def query_coordinates(
    meta: dict[str, Any], wavelengths_nm: np.ndarray, *, extrapolate: bool = False
) -> np.ndarray:
    """Network coordinates for requested wavelengths, refusing those outside the encoded range."""
    coords = meta.get("coords") or {}
    if coords.get("rule") != "wavelength":
        raise UsageError(
            "this file was encoded without wavelengths, so it can only be decoded at its own bands"
        )
    lo, hi = (float(v) for v in coords["range"])
    w = np.asarray(wavelengths_nm, dtype=np.float64)
    outside = (w < lo - 1e-9) | (w > hi + 1e-9)
    if outside.any() and not extrapolate:
        bad = w[outside]
        raise UsageError(
            f"{bad.size} requested wavelength(s) ({bad.min():g}-{bad.max():g} nm) lie outside "
            f"the encoded range {lo:g}-{hi:g} nm; pass --extrapolate to allow it"
        )
    return spectral.normalize(w, lo, hi)


def decode(
    source: bytes | str | Path,
    *,
    wavelengths: np.ndarray | None = None,
    dtype: str | np.dtype | None = None,
    device: str = "cpu",
    extrapolate: bool = False,
    progress: Progress | None = None,
) -> Cube:
    """Rebuild the cube, at its own bands or at ``wavelengths`` (nm), in the source dtype."""
    opened = open_file(source)
    out_dtype = np.dtype(dtype) if dtype is not None else np.dtype(opened.meta["dtype"])
    bands, rows, cols = check_meta(opened.meta)
    low = opened.scale.low.astype(np.float64)
    span = opened.scale.span
    if wavelengths is None:
        out = np.empty((bands, rows, cols), dtype=out_dtype)
        for k, band in enumerate(render_bands(opened, opened.band_coords, device=device)):
            out[k] = denormalize_band(band, low[k], span[k], out_dtype)
            if progress is not None:
                progress({"band": k + 1, "bands": bands})
    else:
        query = query_coordinates(opened.meta, wavelengths, extrapolate=extrapolate)
        out = _resample(opened, query, out_dtype, device=device, progress=progress)
    meta = opened.meta
    nodata = meta.get("nodata")
    if opened.mask is not None and nodata is not None:
        fill = float(nodata)  # "nan"/"inf" strings parse too
        if out_dtype.kind == "f" or np.isfinite(fill):
            out[:, ~opened.mask] = out_dtype.type(fill)
    return cube_from_meta(
        meta, out, wavelengths=wavelengths, resampled=wavelengths is not None
    )


def _resample(
    opened: Decoded, query: np.ndarray, out_dtype: np.dtype, *, device: str,
    progress: Progress | None,
) -> np.ndarray:
    """Bands at new coordinates: linear in coordinate between the two decoded neighbours.

    Measured on Indian Pines with every other band held out (examples/bench_interp.py), this
    is at least as good as decoding interpolated embeddings, so it is the rule (SPEC.md).
    Each neighbour is decoded once, in source units, before mixing and rounding.
    """
    pairs = spectral.neighbours(opened.band_coords, query)
    needed = sorted({k for lo, hi, _ in pairs for k in (lo, hi)})
    low = opened.scale.low.astype(np.float64)
    span = opened.scale.span
    rows, cols = check_meta(opened.meta)[1:]
    decoded = np.empty((len(needed), rows, cols), dtype=np.float64)
    where = {k: j for j, k in enumerate(needed)}
    for j, band in enumerate(render_bands(opened, opened.band_coords[needed], device=device)):
        decoded[j] = band.astype(np.float64) * span[needed[j]] + low[needed[j]]
    out = np.empty((query.size, rows, cols), dtype=out_dtype)
    for k, (lo, hi, t) in enumerate(pairs):
        mix = decoded[where[lo]] if t == 0.0 else (
            (1.0 - t) * decoded[where[lo]] + t * decoded[where[hi]]
        )
        out[k] = denormalize_band(mix, 0.0, 1.0, out_dtype)
        if progress is not None:
            progress({"band": k + 1, "bands": query.size})
    return out


def render_bands(
    opened: Decoded, query: np.ndarray, *, device: str = "cpu"
) -> Iterator[np.ndarray]:
    """Decoded bands in [0, 1], one at a time, from the model the file names."""
    from hsz.model import get_model

    model = opened.meta["model"]
    if not isinstance(model, dict) or not isinstance(model.get("id"), str):
        raise FormatError("the metadata does not name the model that made this file")
    try:
        entry = get_model(model["id"])
    except ValueError as exc:
        raise FormatError(f"{exc}; this file needs a newer hsz") from None
    try:
        config = entry.config_from_json(model.get("config"))
    except (TypeError, ValueError, KeyError) as exc:
        raise FormatError(f"the model configuration in the file is invalid: {exc}") from None
    decoder = {
        name[len("decoder."):]: t
        for name, t in opened.tensors.items()
        if name.startswith("decoder.")
    }
    embeddings = opened.tensors.get("embeddings")
    if embeddings is None:
        raise FormatError("the file has no embeddings tensor")
    try:
        yield from entry.render(
            config, decoder, embeddings, opened.band_coords, query, device=device
        )
    except (RuntimeError, ValueError, KeyError) as exc:
        raise FormatError(f"the model tensors do not match their configuration: {exc}") from None


def describe(source: str | Path) -> dict[str, Any]:
    """Everything ``hsz info`` shows, read without decoding tensors or importing torch.

    ``integrity`` checks every section's CRC-32 (see :func:`check_integrity`): the sections
    :func:`codec.describe` reads are only a small part of a file.  When one of those is
    damaged too, nothing can be described and the error names every damaged section.
    """
    path = Path(source)
    integrity = check_integrity(path)
    try:
        info = codec.describe(path)
    except FormatError:
        if integrity["intact"]:
            raise
        raise FormatError(f"{path}: {damage_summary(integrity)}; {DAMAGED}") from None
    info["integrity"] = integrity
    meta = info.get("meta") or {}
    bands, rows, cols = check_meta(meta)
    info["warnings"] = header_warnings(meta, info.get("raw"))
    size = path.stat().st_size
    bits = np.dtype(meta["dtype"]).itemsize * 8
    info["file"] = str(path)
    info["bytes"] = size
    info["bpppb"] = metrics.bpppb(size, (bands, rows, cols))
    info["compression_ratio"] = metrics.compression_ratio(size, (bands, rows, cols), bits)
    return info
