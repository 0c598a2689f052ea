"""An opened ``.hsz`` file seen as tiles, whether it was written tiled (format 1.3) or not.

Decoding reads through :class:`Archive`: an untiled file is one tile covering the scene, a
tiled one a grid of them.  Each tile opens into the same :class:`hsz.api.Decoded` an untiled
file gives, with the scene's band scales and coordinates and the tile's own model and mask,
so rendering, resampling and denormalizing are one code path for both.  Only the tiles a
requested window touches are read (:attr:`Archive.reads` counts them).  A tile coded with
a margin (format 1.4) opens over its coded window; the decoder keeps its window.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hsz import codec, spectral
from hsz.codec.binio import DAMAGED
from hsz.codec.container import read_container_header
from hsz.codec.mask import read_mask
from hsz.codec.payload import Stored
from hsz.codec.tiled import OUTER, TiledFile, describe_tiles, is_tiled, tile_grid
from hsz.errors import FormatError, UsageError
from hsz.meta import check_meta, source_wavelengths
from hsz.normalize import BandScale
from hsz.tiles import TileGrid, Window

#: Raw arrays the API itself stores (per-band scales, the nodata mask); a family's own raw
#: arrays must use other names.
OWN_RAW = ("band_low", "band_high", "valid_mask")


def _scale(raw: dict[str, np.ndarray], bands: int) -> BandScale:
    for key in ("band_low", "band_high"):
        arr = raw.get(key)
        if arr is None or arr.shape != (bands,):
            raise FormatError(f"the file lacks a valid {key} array of {bands} values")
    return BandScale(raw["band_low"], raw["band_high"])


def open_tile(u: codec.Unpacked, scene_meta: dict[str, Any], window: Window,
              scale: BandScale, band_coords: np.ndarray) -> Any:
    """A tile's unpacked file as a :class:`hsz.api.Decoded`: the scene's metadata with the
    tile's shape and model, the scene's scales, the tile's mask."""
    from hsz.api import Decoded

    bands = check_meta(scene_meta)[0]
    meta = {**scene_meta, "shape": [bands, window.height, window.width],
            "model": u.meta.get("model")}
    meta.pop("transform", None)
    own = {k: v for k, v in u.raw.items() if k not in OWN_RAW}
    return Decoded(meta=meta, stored=Stored(u.tensors, u.grids, own), scale=scale,
                   mask=read_mask(u.raw, window.height, window.width), band_coords=band_coords)


class Archive:
    """A file opened for decoding: scene metadata, scales, and tiles on demand."""

    def __init__(self, source: bytes | str | Path) -> None:
        if isinstance(source, str | Path):
            # The table and the small sections only: a tiled file's tiles are read one by
            # one later, an untiled file is read whole below.
            head = read_container_header(Path(source), OUTER)
            tiled = is_tiled(head)
            self._buf = None if tiled else Path(source).read_bytes()
        else:
            self._buf = bytes(source)
            head = codec.read_container(self._buf)
            tiled = is_tiled(head)
        self._tiled = TiledFile(source if self._buf is None else self._buf, head) \
            if tiled else None
        self.reads = 0
        if self._tiled is None:
            assert self._buf is not None
            self._single = codec.unpack(self._buf)
            self.meta = self._single.meta
            raw = self._single.raw
        else:
            self.meta = self._tiled.meta
            raw = self._tiled.raw
        self.bands, self.rows, self.cols = check_meta(self.meta)
        self.scale = _scale(raw, self.bands)
        self.mask_raw = raw
        self.band_coords = spectral.band_coordinates(source_wavelengths(self.meta), self.bands)
        if self._tiled is None:
            self.grid = TileGrid(self.rows, self.cols, self.rows, self.cols)
        else:
            describe_tiles(self._tiled.container, self.meta)  # checks size and count
            grid = tile_grid(self.meta)
            assert grid is not None
            self.grid = grid

    @property
    def tiled(self) -> bool:
        return self._tiled is not None

    @property
    def version(self) -> tuple[int, int]:
        if self._tiled is not None:
            return self._tiled.version
        return self._single.version

    def tile(self, index: int) -> Any:
        """Tile ``index`` opened for rendering (a :class:`hsz.api.Decoded`) over the pixels
        it was coded for, :meth:`TileGrid.coded`: its window and any margin."""
        from hsz.api import Decoded

        window = self.grid.coded(index)
        self.reads += 1
        if self._tiled is None:
            u = self._single
            own = {k: v for k, v in u.raw.items() if k not in OWN_RAW}
            return Decoded(meta=self.meta, stored=Stored(u.tensors, u.grids, own),
                           scale=self.scale, mask=read_mask(u.raw, self.rows, self.cols),
                           band_coords=self.band_coords)
        u = codec.unpack(self._tiled.tile_bytes(index))
        if u.meta.get("window") != window.as_list():
            raise FormatError(f"tile {index} says it covers {u.meta.get('window')!r}, not "
                              f"{window.as_list()} as the tile grid places it; {DAMAGED}")
        return open_tile(u, self.meta, window, self.scale, self.band_coords)

    def region(self, window: Window | None) -> Window:
        """``window`` checked against the scene (the whole scene when None)."""
        if window is None:
            return Window(0, 0, self.rows, self.cols)
        if window.bottom > self.rows or window.right > self.cols:
            raise UsageError(
                f"the window (col {window.col}, row {window.row}, {window.width}x"
                f"{window.height}) reaches outside the {self.cols}x{self.rows} (cols x rows) "
                "scene", option="window")
        return window

    def bbox_window(self, minx: float, miny: float, maxx: float, maxy: float) -> Window:
        """The pixels whose area meets a box in the file's map coordinates."""
        t = self.meta.get("transform")
        if not (isinstance(t, list) and len(t) == 6 and all(isinstance(v, int | float)
                                                              for v in t)):
            raise UsageError("this file is not georeferenced, so a box in map coordinates "
                             "means nothing; give a pixel window instead", option="bbox")
        a, b, c, d, e, f = (float(v) for v in t)
        det = a * e - b * d
        if det == 0 or minx >= maxx or miny >= maxy:
            raise UsageError("the box must have min < max on both axes", option="bbox")
        corners = [(minx, miny), (minx, maxy), (maxx, miny), (maxx, maxy)]
        cols_, rows_ = [], []
        for x, y in corners:
            cols_.append((e * (x - c) - b * (y - f)) / det)
            rows_.append((-d * (x - c) + a * (y - f)) / det)
        c0, c1 = max(0, int(np.floor(min(cols_)))), min(self.cols, int(np.ceil(max(cols_))))
        r0, r1 = max(0, int(np.floor(min(rows_)))), min(self.rows, int(np.ceil(max(rows_))))
        if c1 <= c0 or r1 <= r0:
            raise UsageError("the box does not overlap the scene", option="bbox")
        return Window(r0, c0, r1 - r0, c1 - c0)

    def touching(self, region: Window) -> Iterator[tuple[int, Window, Window]]:
        """(tile index, tile window, coded window) of every tile that holds pixels of
        ``region``; a decoder renders the coded window and keeps the tile window."""
        for i in self.grid.touching(region):
            yield i, self.grid.window(i), self.grid.coded(i)
