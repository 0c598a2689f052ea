"""Encoding a scene larger than one fit: tiles read, fitted and coded one at a time.

The scene is read three times, a tile at a time, so memory follows the tile:

1. extremes of each band (the scene's normalization, shared by every tile, so no tile
   border shows a change of scale) and whether any pixel is valid;
2. each tile's rate profile (:mod:`hsz.allocate`), from which the budget is split across
   tiles at equal rate-distortion slope;
3. the tile jobs: read the window, normalize, fit, land on the tile's bytes, decode it to
   measure it.  Jobs are independent and picklable, so they run serially, on a process
   pool or on Dask (:mod:`hsz.parallel`) and give the same bytes everywhere.

A tile is an ``.hsz`` file of its own (format 1.3, SPEC §4.7) whose metadata holds only
its window and model; the scene's metadata, band curves and band scales are stored once.
With a margin (format 1.4) a tile's file covers its coded window (:meth:`TileGrid.coded`):
the fit sees the margin's pixels but is scored on the tile's own, so the margin's latents
are spent only where they help the pixels a decoder keeps.
"""

from __future__ import annotations

import ctypes
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hsz import __version__, allocate, codec, metrics, rate
from hsz import meta as meta_mod
from hsz.archive import open_tile
from hsz.codec.mask import mask_arrays
from hsz.codec.tiled import outer_bytes, pack_tiled
from hsz.errors import RateError, UsageError
from hsz.io.scene import Scene, SceneSpec
from hsz.normalize import BandScale, band_extremes, normalize, scale_from_extremes
from hsz.parallel import Runner, fixed_threads
from hsz.tiles import TileGrid, Window

Progress = Callable[[dict[str, Any]], None]

#: How the budget is split across tiles: by measured rate profile, or by area (for
#: comparison in the benchmark).
ALLOCATIONS = ("rd", "area")


@dataclass(frozen=True)
class TileSettings:
    """What every tile job of one encode shares."""

    model: str
    preset: str
    epochs: int | None
    device: str
    seed: int
    threads: int | None
    coords: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    dtype: str


@dataclass(frozen=True)
class TileJob:
    """One tile to fit: where to read it, and the bytes its embedded file may take.

    ``coded`` is the window grown by the grid's margin: what is read and fitted."""

    spec: SceneSpec
    index: int
    window: Window
    coded: Window
    budget: int
    settings: TileSettings


@dataclass
class TileResult:
    index: int
    data: bytes
    quality: metrics.QualityAccumulator
    iterations: int
    fit_psnr: float
    device: str
    seconds: float


def _scale(settings: TileSettings) -> BandScale:
    dt = np.dtype(settings.dtype)
    return BandScale(np.asarray(settings.low, dtype=np.float64).astype(dt),
                     np.asarray(settings.high, dtype=np.float64).astype(dt))


def tile_meta(window: Window, model: dict[str, Any] | None = None) -> dict[str, Any]:
    """The metadata of a tile's embedded file: its window, and its model once fitted."""
    out: dict[str, Any] = {"window": window.as_list()}
    if model is not None:
        out["model"] = model
    return out


def smallest_tile_bytes(model: str, bands: int, window: Window, raw: dict[str, np.ndarray]
                        ) -> int:
    """Bytes of a tile's embedded file holding the family's smallest model."""
    from hsz.model import get_family

    family = get_family(model)
    shape = (bands, window.height, window.width)
    # A family's smallest size is an estimate; a fifth more keeps a tile whose share is
    # its floor from failing to land after minutes of fitting.
    return rate.side_bytes(tile_meta(window), raw) + int(
        1.2 * family.smallest_payload_bytes(shape))


def encode_tile(job: TileJob) -> TileResult:
    """Fit, land and measure one tile (runs wherever the runner puts it)."""
    try:
        with fixed_threads(job.settings.threads):
            return _encode_tile(job)
    finally:
        release_memory()


def release_memory() -> None:
    """Hand a finished fit's freed memory back to the system.

    A fit allocates and frees a gigabyte in pieces of every size; glibc keeps the freed
    pieces, so over many tiles the peak crept up (1.87 GB for 4 tiles, 2.10 GB for 16).
    ``malloc_trim`` exists only in glibc; elsewhere this only collects garbage.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _encode_tile(job: TileJob) -> TileResult:
    from hsz.api import _family, _pack, render_tile
    from hsz.model import FitJob

    start = time.perf_counter()
    st = job.settings
    with job.spec.open() as scene:
        cube = scene.window(job.coded)
    mask = cube.valid_mask()
    if mask is not None and mask.all():
        mask = None
    scale = _scale(st)
    target = normalize(cube, scale, mask)
    family = _family(st.model, UsageError)
    raw = mask_arrays(mask)
    # The fit is scored on the tile's own pixels: the margin only lends them support.
    keep = job.window.relative_to(job.coded).slices()
    scored = None
    if job.coded != job.window:
        scored = np.zeros(cube.shape[1:], dtype=bool)
        scored[keep] = True
    plan = rate.plan(cube.shape, job.budget, tile_meta(job.coded), raw, model=family.id)
    fitted = family.fit(FitJob(
        target=target, coords=np.asarray(st.coords), config=plan.config,
        budget=plan.payload_bytes, mask=mask, scored=scored, preset=st.preset, epochs=st.epochs,
        device=st.device, seed=st.seed, progress=None,
    ))
    model = {"id": family.id, "config": family.config_to_json(fitted.config)}
    meta = tile_meta(job.coded, model)
    payload = family.land(fitted, lambda p: _pack(meta, p, raw), job.budget)
    data = _pack(meta, payload, raw)
    # Measure what a decoder will keep, through the decoder's own code path.
    acc = metrics.QualityAccumulator(cube.bands)
    scene_meta = {"shape": list(cube.shape), "dtype": st.dtype, "model": model,
                  "coords": meta_mod.coords_meta(cube.wavelengths, cube.bands)}
    opened = open_tile(codec.unpack(data), scene_meta, job.coded, scale,
                       np.asarray(st.coords))
    decoded = render_tile(opened, None, cube.dtype, device="cpu", progress=None)
    acc.add(cube.data[(slice(None), *keep)], decoded[(slice(None), *keep)],
            None if mask is None else mask[keep])
    return TileResult(job.index, data, acc, fitted.iterations, float(fitted.fit_psnr),
                      fitted.device, time.perf_counter() - start)


@dataclass
class Survey:
    """What the first two passes learn about the scene."""

    scale: BandScale
    value_range: tuple[float, float]
    profiles: list[allocate.TileProfile]
    masks: list[dict[str, np.ndarray]]


def survey(scene: Scene, grid: TileGrid, *, profiles: bool = True) -> Survey:
    """Band extremes over the scene, then each tile's rate profile (two reading passes)."""
    bands = scene.shape[0]
    lows, highs = np.full(bands, np.inf), np.full(bands, -np.inf)
    vmin, vmax = np.inf, -np.inf
    masks = []
    for i in range(grid.count):
        cube = scene.window(grid.coded(i))
        mask = cube.valid_mask()
        lo, hi = band_extremes(cube, mask)
        lows, highs = np.minimum(lows, lo), np.maximum(highs, hi)
        data = cube.data
        if data.size:
            vmin = min(vmin, float(np.nanmin(data)))
            vmax = max(vmax, float(np.nanmax(data)))
        masks.append(mask_arrays(mask))
    if not np.isfinite(lows).any():
        raise UsageError("every pixel of the cube is nodata; there is nothing to encode")
    scale = scale_from_extremes(lows, highs, scene.dtype)
    found = []
    if profiles:
        for w in grid.windows():
            cube = scene.window(w)
            mask = cube.valid_mask()
            found.append(allocate.profile(normalize(cube, scale, mask), mask))
    return Survey(scale, (vmin, vmax), found, masks)


def encode_tiled(
    scene: Scene,
    grid: TileGrid,
    *,
    budget: int,
    model: str,
    preset: str,
    epochs: int | None,
    device: str,
    seed: int,
    threads: int | None = 1,
    runner: Runner | None = None,
    allocation: str = "rd",
    progress: Progress | None = None,
    report: Callable[[str], None] | None = None,
) -> tuple[bytes, dict[str, Any], dict[str, float], float]:
    """The tiled file for ``scene``: (bytes, metadata, quality, mean fit PSNR)."""
    from hsz import spectral

    if allocation not in ALLOCATIONS:
        raise UsageError(f"unknown allocation {allocation!r}; use one of "
                         f"{', '.join(ALLOCATIONS)}")
    runner = runner or Runner()
    header = scene.header
    bands = header.bands
    found = survey(scene, grid, profiles=allocation == "rd")
    meta = meta_mod.encode_meta(header, hsz_version=__version__, preset=preset, seed=seed)
    meta["value_range"] = [found.value_range[0], found.value_range[1]]
    meta["tiles"] = {"size": [grid.tile_rows, grid.tile_cols]}
    if grid.margin:
        meta["tiles"]["margin"] = grid.margin
    meta["model"] = {"id": model, "config": None}
    raw = {"band_low": found.scale.low, "band_high": found.scale.high}
    outer = outer_bytes(meta, raw, grid.count)
    windows = list(grid.windows())
    coded = [grid.coded(i) for i in range(grid.count)]
    fixed = [smallest_tile_bytes(model, bands, w, m) for w, m in zip(coded, found.masks,
                                                                    strict=True)]
    spare_total = budget - outer - rate.FIGURES_MARGIN
    try:
        if allocation == "rd":
            budgets = allocate.equal_slope(found.profiles, fixed, spare_total)
        else:
            budgets = allocate.equal_split([w.pixels for w in windows], fixed, spare_total)
    except ValueError:
        smallest = outer + sum(fixed)
        bpppb = 8.0 * smallest / float(np.prod(header.shape))
        raise RateError(
            f"a {budget}-byte file cannot hold even the smallest {model} model for each of "
            f"its {grid.count} tiles; the smallest achievable rate is about {bpppb:.4f} bpppb "
            "(larger tiles need less side information)", smallest_bpppb=bpppb) from None
    if report is not None:
        report(f"{grid.count} tiles of {grid.tile_rows}x{grid.tile_cols}; {outer} B of scene "
               f"side information; tile budgets {min(budgets)}-{max(budgets)} B")
    coords = spectral.band_coordinates(header.wavelengths, bands)
    settings = TileSettings(
        model=model, preset=preset, epochs=epochs, device=device, seed=seed, threads=threads,
        coords=tuple(float(c) for c in coords),
        low=tuple(float(v) for v in found.scale.low.astype(np.float64)),
        high=tuple(float(v) for v in found.scale.high.astype(np.float64)),
        dtype=header.dtype.name,
    )
    jobs = [TileJob(scene.spec, i, w, c, b, settings)
            for i, (w, c, b) in enumerate(zip(windows, coded, budgets, strict=True))]
    done_count = [0]

    def done(_i: int, _r: TileResult) -> None:
        done_count[0] += 1
        if progress is not None:
            progress({"tile": done_count[0], "tiles": len(jobs)})

    results = runner.map(encode_tile, jobs, done)
    acc = metrics.QualityAccumulator(bands)
    for r in results:
        acc.merge(r.quality)
    quality = acc.result()
    meta["encoder"].update(epochs=int(max(r.iterations for r in results)),
                           device=results[0].device)
    meta_mod.set_quality(meta, quality)
    data = pack_tiled(meta, raw, [r.data for r in results])
    if len(data) > budget:
        raise RateError(f"could not land the tiled file within {budget} bytes")
    fit_psnr = float(np.mean([r.fit_psnr for r in results]))
    return data, meta, quality, fit_psnr
