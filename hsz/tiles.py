"""Pixel windows and the regular tile grid a large scene is coded in.

A tiled file (format 1.3) splits the scene into a grid of equal tiles laid row-major from
the top-left corner; the last row and column of tiles are cut short by the scene's edge.
Only the tile size is stored, so every tile's window follows from it and a decoder that
wants a few pixels can tell which tiles hold them without reading any tile.

The tile size is chosen from the number of values one fit may hold (a family's
``tile_values``): peak memory during a fit grows with the tile, never with the scene.

Tiles may be coded with a *margin* (format 1.4): each tile's model is fitted to its window
grown by ``margin`` pixels on every side (clipped to the scene) but scored only on the
window itself, and a decoder keeps only the window.  A model is at its worst at the edge
of what it was fitted to; the margin moves that edge away from the pixels that are kept,
so tile borders do not show, while every pixel is still decoded from exactly one tile.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

#: Tile sides the automatic choice picks from (multiples of 64, so that a latent model's
#: coarsest grid divides evenly).
_SIDES = (1024, 768, 512, 384, 256, 192, 128)

#: The smallest tile side a user may ask for: smaller tiles spend more on each tile's own
#: side information (spectral basis, offsets) than they can gain.
MIN_TILE = 32

#: Most tiles one file may hold (each is a section, and SPEC §3.4 caps those at 1024).
MAX_TILES = 1000

#: The widest margin a file may declare (SPEC §4.7): wider ones only spend rate.
MAX_MARGIN = 64


class MarginError(ValueError):
    """A tile margin that does not suit the tiles (a ValueError like the others here)."""


@dataclass(frozen=True, order=True)
class Window:
    """A rectangle of pixels: its top-left corner (row, col) and its size."""

    row: int
    col: int
    height: int
    width: int

    def __post_init__(self) -> None:
        if min(self.row, self.col) < 0 or min(self.height, self.width) < 1:
            raise ValueError(f"a window needs a corner >= 0 and a size >= 1: {self}")

    @property
    def bottom(self) -> int:
        return self.row + self.height

    @property
    def right(self) -> int:
        return self.col + self.width

    @property
    def pixels(self) -> int:
        return self.height * self.width

    def intersect(self, other: Window) -> Window | None:
        """The overlap of two windows, or None when they do not touch."""
        top, left = max(self.row, other.row), max(self.col, other.col)
        bottom, right = min(self.bottom, other.bottom), min(self.right, other.right)
        if bottom <= top or right <= left:
            return None
        return Window(top, left, bottom - top, right - left)

    def relative_to(self, outer: Window) -> Window:
        """This window in the coordinates of ``outer`` (which must contain it)."""
        return Window(self.row - outer.row, self.col - outer.col, self.height, self.width)

    def slices(self) -> tuple[slice, slice]:
        return slice(self.row, self.bottom), slice(self.col, self.right)

    def as_list(self) -> list[int]:
        return [self.row, self.col, self.height, self.width]


@dataclass(frozen=True)
class TileGrid:
    """A scene of ``rows`` x ``cols`` pixels cut into tiles of ``tile_rows`` x ``tile_cols``,
    each coded with ``margin`` extra pixels around it."""

    rows: int
    cols: int
    tile_rows: int
    tile_cols: int
    margin: int = 0

    def __post_init__(self) -> None:
        if min(self.rows, self.cols, self.tile_rows, self.tile_cols) < 1:
            raise ValueError(f"a tile grid needs positive sizes: {self}")
        if not 0 <= self.margin <= MAX_MARGIN:
            raise ValueError(f"a tile margin must lie in 0 ... {MAX_MARGIN}, not "
                             f"{self.margin}")

    @property
    def grid_rows(self) -> int:
        return math.ceil(self.rows / self.tile_rows)

    @property
    def grid_cols(self) -> int:
        return math.ceil(self.cols / self.tile_cols)

    @property
    def count(self) -> int:
        return self.grid_rows * self.grid_cols

    @property
    def tiled(self) -> bool:
        """False when one tile covers the scene: such a file is written untiled."""
        return self.count > 1

    def window(self, index: int) -> Window:
        if not 0 <= index < self.count:
            raise IndexError(f"tile {index} is outside a grid of {self.count} tiles")
        gr, gc = divmod(index, self.grid_cols)
        row, col = gr * self.tile_rows, gc * self.tile_cols
        return Window(row, col, min(self.tile_rows, self.rows - row),
                      min(self.tile_cols, self.cols - col))

    def windows(self) -> Iterator[Window]:
        for i in range(self.count):
            yield self.window(i)

    def coded(self, index: int) -> Window:
        """The pixels tile ``index`` is fitted to: its window grown by the margin on every
        side, clipped to the scene (the window itself when the margin is 0)."""
        w = self.window(index)
        m = self.margin
        row, col = max(0, w.row - m), max(0, w.col - m)
        bottom, right = min(self.rows, w.bottom + m), min(self.cols, w.right + m)
        return Window(row, col, bottom - row, right - col)

    def touching(self, region: Window) -> list[int]:
        """Indices of the tiles that hold at least one pixel of ``region``, in file order."""
        r0, c0 = region.row // self.tile_rows, region.col // self.tile_cols
        r1 = min(self.grid_rows - 1, (region.bottom - 1) // self.tile_rows)
        c1 = min(self.grid_cols - 1, (region.right - 1) // self.tile_cols)
        return [r * self.grid_cols + c for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]


def auto_tile(bands: int, rows: int, cols: int, tile_values: int) -> int:
    """The largest standard tile side whose tile holds at most ``tile_values`` values.

    A scene that fits in one such tile is not tiled at all (the side returned covers it).
    """
    if bands * rows * cols <= tile_values:
        return max(rows, cols)
    for side in _SIDES:
        if bands * side * side <= tile_values:
            break
    else:
        side = _SIDES[-1]
    # Keep the tile count within what a file may hold, even for a very long flight line.
    while math.ceil(rows / side) * math.ceil(cols / side) > MAX_TILES:
        side *= 2
    return side


def grid_for(bands: int, rows: int, cols: int, *, tile: int | None, tile_values: int,
             margin: int = 0) -> TileGrid:
    """The grid an encode uses: the user's tile side, else :func:`auto_tile`'s."""
    side = auto_tile(bands, rows, cols, tile_values) if tile is None else int(tile)
    if tile is not None and side < MIN_TILE:
        raise ValueError(f"a tile side of {side} is too small; use at least {MIN_TILE}")
    if not 0 <= margin <= min(MAX_MARGIN, side // 2):
        raise MarginError(f"a tile margin of {margin} does not suit {side}-pixel tiles; use "
                         f"0 ... {min(MAX_MARGIN, side // 2)}")
    grid = TileGrid(rows, cols, min(side, rows), min(side, cols), margin)
    if grid.count > MAX_TILES:
        raise ValueError(f"tiles of {side} pixels cut this {rows}x{cols} scene into "
                         f"{grid.count} tiles, more than a file may hold ({MAX_TILES}); "
                         "use larger tiles")
    return grid
