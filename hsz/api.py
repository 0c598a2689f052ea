"""The library's front door: encode a cube to ``.hsz`` bytes, decode them back, describe a file.

Data flows one way: read -> Cube -> normalize -> plan -> fit -> land -> container, and back:
container -> stored arrays -> render(wavelengths) -> denormalize -> Cube.  Each arrow is a
module of its own (the model family behind :mod:`hsz.model` owns fit, land and render); this
one only strings them together.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hsz import __version__, codec, metrics, spectral
from hsz import meta as meta_mod
from hsz.archive import Archive
from hsz.codec.binio import DAMAGED
from hsz.codec.container import check_integrity, damage_summary
from hsz.codec.mask import mask_arrays
from hsz.codec.payload import Payload, Stored
from hsz.cube import Cube
from hsz.errors import FormatError, RateError, UsageError
from hsz.io.scene import Scene, shifted_transform
from hsz.meta import check_meta, cube_from_meta, header_warnings
from hsz.normalize import BandScale, band_scale, denormalize_band, normalize
from hsz.parallel import Runner
from hsz.tiles import Window

#: Default rate when the caller names none: where hsz is clearly ahead of per-band codecs.
DEFAULT_BPPPB = 0.2

Progress = Callable[[dict[str, Any]], None]



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
        raise UsageError("give only one of the rate targets bpppb, size and ratio")
    samples = shape[0] * shape[1] * shape[2]
    if size is not None:
        if size <= 0:
            raise UsageError("the target size must be a positive number of bytes", option="size")
        return int(size)
    if ratio is not None:
        if ratio <= 0:
            raise UsageError("the compression ratio must be positive", option="ratio")
        bpppb = bits_per_sample / ratio
    if bpppb is None:
        bpppb = DEFAULT_BPPPB
    if not np.isfinite(bpppb) or bpppb <= 0:
        raise UsageError("the rate in bits per value must be a positive number",
                         option="bpppb")
    return int(bpppb * samples / 8.0)


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
    model: str | None = None,
    preset: str | None = None,
    seed: int = 0,
) -> EncodePlan:
    """Normalize ``cube``, lay out its side information and size the network for the rate."""
    from hsz import rate

    family, preset = _family_and_preset(model, preset)
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
    raw = {"band_low": scale.low, "band_high": scale.high, **mask_arrays(mask)}
    base = meta_mod.encode_meta(cube, hsz_version=__version__, preset=preset, seed=seed)
    plan = rate.plan(cube.shape, budget, base, raw, model=family.id)
    return EncodePlan(target, coords, mask, raw, base, budget, plan)


def _family_and_preset(model: str | None, preset: str | None) -> tuple[Any, str]:
    """The family an encode uses (the default when none is named) and its checked preset."""
    from hsz.model import DEFAULT_MODEL

    family = _family(model or DEFAULT_MODEL, UsageError)
    try:
        return family, family.check_preset(preset)
    except ValueError as exc:
        raise UsageError(str(exc), option="preset") from None


def _family(model_id: str, error: type[Exception]) -> Any:
    from hsz.model import get_family

    try:
        return get_family(model_id)
    except ValueError as exc:
        if error is FormatError:
            raise FormatError(f"{exc}; this file needs a newer hsz") from None
        raise UsageError(str(exc), option="model") from None


def _pack(meta_: dict[str, Any], payload: Payload, raw: dict[str, np.ndarray]) -> bytes:
    clash = sorted(set(payload.raw) & set(raw))
    if clash:
        raise FormatError(f"the model's raw arrays reuse reserved names: {', '.join(clash)}")
    return codec.pack(meta_, payload.tensors, bits=payload.bits, raw={**raw, **payload.raw},
                      grids=payload.grids)


def encode(
    cube: Cube,
    *,
    bpppb: float | None = None,
    size: int | None = None,
    ratio: float | None = None,
    model: str | None = None,
    preset: str | None = None,
    epochs: int | None = None,
    device: str = "auto",
    seed: int = 0,
    progress: Progress | None = None,
    report: Callable[[str], None] | None = None,
) -> EncodeResult:
    """Fit, land and code ``cube`` so that the whole file fits the named rate."""
    from hsz import rate
    from hsz.model import FitJob

    start = time.perf_counter()
    prep = plan_encode(cube, bpppb=bpppb, size=size, ratio=ratio, model=model, preset=preset,
                       seed=seed)
    family = _family(prep.plan.model, UsageError)
    if report is not None:
        report(prep.plan.describe())
    _check_device(device)
    fitted = family.fit(FitJob(
        target=prep.target, coords=prep.coords, config=prep.plan.config,
        budget=prep.plan.payload_bytes, mask=prep.mask, preset=prep.meta["encoder"]["preset"],
        epochs=epochs, device=device, seed=seed, progress=progress,
    ))
    meta_, raw, budget = prep.meta, prep.raw, prep.budget
    meta_mod.set_model(meta_, family.id, family.config_to_json(fitted.config),
                   iterations=fitted.iterations, device=fitted.device)
    # The metadata is deflated, so recording the measured figures can change its size by a
    # few bytes; land with a small margin, and should the final file still be over budget,
    # land again tighter and measure again.
    limit = budget - rate.FIGURES_MARGIN
    for _ in range(4):
        payload = family.land(fitted, lambda p: _pack(meta_, p, raw), limit)
        # Measure what a decoder will really produce, through the decoder's own code path.
        decoded = decode(_pack(meta_, payload, raw))
        quality = metrics.quality(cube.data, decoded.data, prep.mask)
        meta_mod.set_quality(meta_, quality)
        data = _pack(meta_, payload, raw)
        if len(data) <= budget:
            break
        limit -= len(data) - budget + rate.FIGURES_MARGIN
    else:
        raise RateError(f"could not land the file within {budget} bytes")
    return EncodeResult(
        data=data,
        meta=meta_,
        shape=cube.shape,
        bits_per_sample=cube.bits_per_sample,
        seconds=time.perf_counter() - start,
        quality=quality,
        fit_psnr=float(fitted.fit_psnr),
    )


def encode_scene(
    scene: Scene,
    *,
    bpppb: float | None = None,
    size: int | None = None,
    ratio: float | None = None,
    model: str | None = None,
    preset: str | None = None,
    epochs: int | None = None,
    device: str = "auto",
    seed: int = 0,
    tile: int | None = None,
    margin: int | None = None,
    threads: int | None = None,
    runner: Runner | None = None,
    allocation: str = "rd",
    progress: Progress | None = None,
    report: Callable[[str], None] | None = None,
) -> EncodeResult:
    """Encode an opened scene, in tiles when it is larger than one fit should hold.

    The tile side is ``tile`` or the family's choice (:func:`hsz.tiles.grid_for`); a scene
    that fits one tile is read whole and encoded exactly as :func:`encode` does.  Each tile
    is fitted with ``margin`` pixels around it (default: the family's ``tile_margin``) that
    the decoder drops, so tile borders do not show.  Tiles run on ``threads`` torch
    threads each (default 1, so that the bytes do not depend on how many jobs share the
    machine) through ``runner`` (serial by default).
    """
    from hsz import tiling
    from hsz.parallel import fixed_threads
    from hsz.tiles import MarginError, grid_for

    family, preset = _family_and_preset(model, preset)
    bands, rows, cols = scene.shape
    try:
        grid = grid_for(bands, rows, cols, tile=tile, tile_values=family.tile_values,
                        margin=family.tile_margin if margin is None else int(margin))
    except MarginError as exc:
        raise UsageError(str(exc), option="tile-margin") from None
    except ValueError as exc:
        raise UsageError(str(exc), option="tile") from None
    if not grid.tiled:
        with fixed_threads(threads):
            return encode(scene.read_all(), bpppb=bpppb, size=size, ratio=ratio,
                          model=family.id, preset=preset, epochs=epochs, device=device,
                          seed=seed, progress=progress, report=report)
    _check_device(device)
    start = time.perf_counter()
    header = scene.header
    budget = target_bytes(header.shape, bpppb=bpppb, size=size, ratio=ratio,
                          bits_per_sample=header.bits_per_sample)
    data, meta_, quality, fit_psnr = tiling.encode_tiled(
        scene, grid, budget=budget, model=family.id, preset=preset, epochs=epochs,
        device=device, seed=seed, threads=1 if threads is None else threads, runner=runner,
        allocation=allocation, progress=progress, report=report)
    return EncodeResult(data=data, meta=meta_, shape=header.shape,
                        bits_per_sample=header.bits_per_sample,
                        seconds=time.perf_counter() - start, quality=quality,
                        fit_psnr=fit_psnr)


def _check_device(device: str) -> None:
    """Refuse a device this machine does not have before any work is done."""
    if device not in ("auto", "cpu") and not str(device).startswith("cuda"):
        raise UsageError(f"unknown device {device!r}; use auto, cpu or cuda", option="device")
    if str(device).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UsageError("a CUDA device was requested but this machine has none; use "
                             "cpu or auto", option="device")


@dataclass
class Decoded:
    """What unpacking a file yields before any band is rendered."""

    meta: dict[str, Any]
    stored: Stored
    scale: BandScale
    mask: np.ndarray | None
    band_coords: np.ndarray

    @property
    def tensors(self) -> dict[str, np.ndarray]:
        return self.stored.tensors


def open_file(source: bytes | str | Path) -> Decoded:
    """Parse and validate an untiled file's sections into arrays ready for rendering."""
    arc = Archive(source)
    if arc.tiled:
        raise UsageError("this is a tiled file; open it with hsz.archive.Archive and read "
                         "its tiles")
    return arc.tile(0)


def query_coordinates(
    meta: dict[str, Any], wavelengths_nm: np.ndarray, *, extrapolate: bool = False
) -> np.ndarray:
    """Network coordinates for requested wavelengths, refusing those outside the encoded range."""
    rule, lo, hi = meta_mod.coords_range(meta)
    if rule != "wavelength":
        raise UsageError(
            "this file was encoded without wavelengths, so it can only be decoded at its own bands"
        )
    w = np.asarray(wavelengths_nm, dtype=np.float64)
    outside = (w < lo - 1e-9) | (w > hi + 1e-9)
    if outside.any() and not extrapolate:
        bad = w[outside]
        raise UsageError(
            f"{bad.size} requested wavelength(s) ({bad.min():g}-{bad.max():g} nm) lie outside "
            f"the encoded range {lo:g}-{hi:g} nm; allow extrapolation to decode them anyway",
            option="extrapolate",
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
    window: Window | None = None,
) -> Cube:
    """Rebuild the cube, at its own bands or at ``wavelengths`` (nm), in the source dtype.

    ``window`` decodes only that rectangle of pixels (reading only the tiles under it in a
    tiled file); the result is georeferenced at the window's corner.
    """
    arc, region, query, header = _decode_setup(source, wavelengths, dtype, extrapolate,
                                               window)
    out = np.empty(header.shape, dtype=header.dtype)
    for where, block in decode_blocks(arc, region, query, header.dtype, device=device,
                                      progress=progress):
        out[(slice(None), *where.slices())] = block
    return header.replace(data=out)


def _decode_setup(
    source: bytes | str | Path | Archive, wavelengths: np.ndarray | None,
    dtype: str | np.dtype | None, extrapolate: bool, window: Window | None,
) -> tuple[Archive, Window, np.ndarray | None, Cube]:
    """What a decode settles before rendering: the opened file, the region, the query
    coordinates (None for the file's own bands) and the output's metadata and shape (a
    Cube whose samples are a zero-cost placeholder)."""
    from hsz.io._common import virtual_cube

    arc = source if isinstance(source, Archive) else Archive(source)
    region = arc.region(window)
    out_dtype = np.dtype(dtype) if dtype is not None else np.dtype(arc.meta["dtype"])
    query = None if wavelengths is None else query_coordinates(
        arc.meta, wavelengths, extrapolate=extrapolate)
    count = arc.bands if query is None else query.size
    shaped = virtual_cube((count, region.height, region.width), out_dtype)
    header = cube_from_meta(arc.meta, shaped.data, wavelengths=wavelengths,
                            resampled=wavelengths is not None)
    if window is not None:
        header = header.replace(transform=shifted_transform(header.transform, region))
    return arc, region, query, header


def decode_to_file(
    source: bytes | str | Path | Archive,
    output: str | Path,
    *,
    format: str | None = None,
    overwrite: bool = False,
    wavelengths: np.ndarray | None = None,
    dtype: str | np.dtype | None = None,
    device: str = "cpu",
    extrapolate: bool = False,
    progress: Progress | None = None,
    window: Window | None = None,
) -> tuple[list[Path], Cube]:
    """Decode straight into a file, tile by tile, so memory holds one tile, not the scene.

    Returns the files written and a Cube describing them (metadata and shape; its samples
    are a zero-cost placeholder).  Options are those of :func:`decode`.
    """
    from hsz import io

    arc, region, query, header = _decode_setup(source, wavelengths, dtype, extrapolate,
                                               window)
    blocks = decode_blocks(arc, region, query, header.dtype, device=device,
                           progress=progress)
    written = io.write(header, output, format=format, overwrite=overwrite, blocks=blocks)
    return written, header


def decode_blocks(
    arc: Archive, region: Window, query: np.ndarray | None, out_dtype: np.dtype, *,
    device: str = "cpu", progress: Progress | None = None,
) -> Iterator[tuple[Window, np.ndarray]]:
    """The decoded pixels of ``region``, tile by tile: (where in the region, samples).

    Memory holds one tile at a time, which is what lets a decoder write a scene larger
    than memory.  An untiled file reports progress per band, a tiled one per tile.
    """
    tiles = list(arc.touching(region))
    for n, (index, tile_window, coded) in enumerate(tiles):
        opened = arc.tile(index)
        block = render_tile(opened, query, out_dtype, device=device,
                             progress=None if arc.tiled else progress)
        inside = tile_window.intersect(region)
        assert inside is not None
        yield inside.relative_to(region), block[(slice(None),
                                                 *inside.relative_to(coded).slices())]
        if arc.tiled and progress is not None:
            progress({"tile": n + 1, "tiles": len(tiles)})


def render_tile(
    opened: Decoded, query: np.ndarray | None, out_dtype: np.dtype, *, device: str,
    progress: Progress | None,
) -> np.ndarray:
    """One tile's samples in ``out_dtype``, nodata pixels filled with the nodata value."""
    bands, rows, cols = check_meta(opened.meta)
    low = opened.scale.low.astype(np.float64)
    span = opened.scale.span
    if query is None:
        out = np.empty((bands, rows, cols), dtype=out_dtype)
        for k, band in enumerate(render_bands(opened, opened.band_coords, device=device)):
            out[k] = denormalize_band(band, low[k], span[k], out_dtype)
            if progress is not None:
                progress({"band": k + 1, "bands": bands})
    else:
        out = _resample(opened, query, out_dtype, device=device, progress=progress)
    nodata = opened.meta.get("nodata")
    if opened.mask is not None and nodata is not None:
        fill = float(nodata)  # "nan"/"inf" strings parse too
        if out_dtype.kind == "f" or np.isfinite(fill):
            out[:, ~opened.mask] = out_dtype.type(fill)
    return out


def _resample(
    opened: Decoded, query: np.ndarray, out_dtype: np.dtype, *, device: str,
    progress: Progress | None,
) -> np.ndarray:
    """Bands at new coordinates, mixed from the decoded bands around them
    (:func:`hsz.spectral.mixing`: a local cubic where the sampling is even, else linear).

    Measured with every other band held out (examples/bench_interp.py), this beat the
    linear mix (itself as good as HINER's interpolated embeddings), a global spline and a
    basis continuous in wavelength, so it is the rule (SPEC.md).  Each band it needs is
    decoded once, in source units, before mixing and rounding.
    """
    mixes = spectral.mixing(opened.band_coords, query)
    needed = sorted({k for mix in mixes for k, _ in mix})
    low = opened.scale.low.astype(np.float64)
    span = opened.scale.span
    rows, cols = check_meta(opened.meta)[1:]
    decoded = np.empty((len(needed), rows, cols), dtype=np.float64)
    where = {k: j for j, k in enumerate(needed)}
    for j, band in enumerate(render_bands(opened, opened.band_coords[needed], device=device)):
        decoded[j] = band.astype(np.float64) * span[needed[j]] + low[needed[j]]
    out = np.empty((query.size, rows, cols), dtype=out_dtype)
    for k, mix in enumerate(mixes):
        first, weight = mix[0]
        value = weight * decoded[where[first]]  # a single band's weight is 1.0: exact
        for band, weight in mix[1:]:
            value = value + weight * decoded[where[band]]
        out[k] = denormalize_band(value, 0.0, 1.0, out_dtype)
        if progress is not None:
            progress({"band": k + 1, "bands": query.size})
    return out


def render_bands(
    opened: Decoded, query: np.ndarray, *, device: str = "cpu"
) -> Iterator[np.ndarray]:
    """Decoded bands in [0, 1], one at a time, from the model family the file names.

    A family reports stored arrays that do not fit its configuration with ValueError,
    KeyError or TypeError; that is damage.  Anything else (out of memory, a device error)
    is not the file's fault and is not reported as if it were.
    """
    model_id, config_json = meta_mod.model_entry(opened.meta)
    family = _family(model_id, FormatError)
    try:
        config = family.config_from_json(config_json)
    except (TypeError, ValueError, KeyError) as exc:
        raise FormatError(f"the model configuration in the file is invalid: {exc}") from None
    try:
        yield from family.render(config, opened.stored, opened.band_coords, query, device=device)
    except (ValueError, KeyError, TypeError) as exc:
        raise FormatError(f"the stored model does not match its configuration: {exc}") from None


def _model_description(meta_: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """The model as its family describes it (torch-free); a warning when it cannot."""
    from hsz.model import get_family

    out: dict[str, Any] = {"id": None, "summary": None, "architecture": None}
    try:
        model_id, config_json = meta_mod.model_entry(meta_)
    except FormatError as exc:
        warnings.append(str(exc))
        return out
    out["id"] = model_id
    try:
        family = get_family(model_id)
    except ValueError:
        warnings.append(f"model {model_id!r} is not known to this hsz; the file needs a newer "
                        "one to decode")
        return out
    out["summary"] = family.summary
    if config_json is None and isinstance(meta_.get("tiles"), dict):
        out["architecture"] = "one model per tile (each tile's file holds its configuration)"
        return out
    try:
        out["architecture"] = family.describe(family.config_from_json(config_json))
    except (TypeError, ValueError, KeyError) as exc:
        warnings.append(f"the {model_id} configuration is invalid: {exc}")
    return out


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
    meta_ = info.get("meta") or {}
    bands, rows, cols = check_meta(meta_)
    info["warnings"] = header_warnings(meta_, info.get("raw"))
    info["model"] = _model_description(meta_, info["warnings"])
    size = path.stat().st_size
    bits = np.dtype(meta_["dtype"]).itemsize * 8
    info["file"] = str(path)
    info["bytes"] = size
    info["bpppb"] = metrics.bpppb(size, (bands, rows, cols))
    info["compression_ratio"] = metrics.compression_ratio(size, (bands, rows, cols), bits)
    return info
