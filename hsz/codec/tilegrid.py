"""Where a tiled file's tiles lie (SPEC §4.7), from its metadata and section table alone.

Kept apart from :mod:`hsz.codec.tiled` so that describing a file (:mod:`hsz.codec.pack`)
can list tiles without importing the module that writes them.
"""

from __future__ import annotations

from typing import Any

from hsz.codec.binio import DAMAGED
from hsz.codec.container import Container
from hsz.errors import FormatError
from hsz.tiles import MAX_MARGIN, TileGrid


def tile_grid(meta: dict[str, Any]) -> TileGrid | None:
    """The tile grid a tiled file's metadata declares (SPEC §4.7); None without ``tiles``."""
    entry = meta.get("tiles")
    if entry is None:
        return None
    shape = meta.get("shape")
    size = entry.get("size") if isinstance(entry, dict) else None
    ok = all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
             for v in (size or []) + (shape or [])) if isinstance(size, list) and isinstance(
                 shape, list) else False
    if not ok or len(size) != 2 or len(shape) != 3:
        raise FormatError(f"metadata tiles must give the tile size as two positive integers; "
                          f"{DAMAGED}")
    rows, cols = shape[1], shape[2]
    margin = entry.get("margin", 0)
    if not (isinstance(margin, int) and not isinstance(margin, bool)
            and 0 <= margin <= MAX_MARGIN):
        raise FormatError(f"metadata tiles give a margin of {margin!r}; it must be an integer "
                          f"in 0 ... {MAX_MARGIN}; {DAMAGED}")
    return TileGrid(rows, cols, min(size[0], rows), min(size[1], cols), margin)


def describe_tiles(container: Container, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Each tile's window (and the window it was coded over, when tiles have a margin)
    and where its bytes are, from the table (no tile is read)."""
    grid = tile_grid(meta)
    sections = container.every("TILE")
    if grid is None:
        raise FormatError(f"the file holds tiles but its metadata gives no tile size; "
                          f"{DAMAGED}")
    if grid.count != len(sections):
        raise FormatError(f"the metadata's tile size makes {grid.count} tiles but the file "
                          f"holds {len(sections)}; {DAMAGED}")
    out = []
    for i, s in enumerate(sections):
        entry: dict[str, Any] = {"window": grid.window(i).as_list()}
        if grid.margin:
            entry["coded"] = grid.coded(i).as_list()
        out.append({**entry, "offset": s.offset, "length": s.length})
    return out
