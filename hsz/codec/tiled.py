"""Tiled files (format 1.3): a scene coded as independent tiles, each one a file of its own.

A tiled file holds the scene's ``META`` (with a ``tiles`` entry giving the tile size), its
band curves (``BNDS``) and raw arrays (``RAWA``), then one ``TILE`` section per tile in
row-major order.  A ``TILE`` payload is a complete ``.hsz`` file (signature, header,
sections, CRCs: SPEC §4.7) whose ``META`` holds only the tile's window and model, so a
tile is read, checked and decoded by exactly the code that reads an untiled file.

:class:`TiledFile` reads the header and the small sections, and a tile's bytes only when
asked: decoding a window touches only the tiles under it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from hsz.codec import bands
from hsz.codec.binio import DAMAGED
from hsz.codec.container import (
    FLAG_CRITICAL,
    HEADER,
    Container,
    Section,
    crc32,
    header_version,
    read_container,
    read_container_header,
    write_container,
)
from hsz.codec.pack import _raw_section, merge_bands, meta_json, parse_meta, parse_raw
from hsz.codec.tilegrid import describe_tiles, tile_grid
from hsz.errors import FormatError

#: Minor version of a tiled file, and of one whose tiles have a margin (SPEC §4.7).
TILED_MINOR = 3
MARGIN_MINOR = 4
#: Sections of the outer file read when it is opened (never the tiles).
OUTER = ("META", "BNDS", "RAWA")


def pack_tiled(meta: Mapping[str, Any], raw: Mapping[str, np.ndarray],
               tiles: list[bytes]) -> bytes:
    """The whole file: scene metadata, curves and raw arrays, then the tiles in order."""
    meta_rest, raw_rest, bnds = bands.split(meta, raw)
    sections = [("META", FLAG_CRITICAL, meta_json(meta_rest))]
    if bnds:
        sections.append(("BNDS", FLAG_CRITICAL, bnds))
    if raw_rest:
        sections.append(("RAWA", FLAG_CRITICAL, _raw_section(raw_rest)))
    sections += [("TILE", FLAG_CRITICAL, t) for t in tiles]
    entry = meta.get("tiles")
    margin = entry.get("margin", 0) if isinstance(entry, Mapping) else 0
    # A tile's own version (its grids' context rule) counts too: the whole file is the
    # newest version any part of it needs.
    inner = max((header_version(t)[1] for t in tiles if len(t) >= HEADER.size), default=0)
    return write_container(sections, minor=max(MARGIN_MINOR if margin else TILED_MINOR, inner))


def outer_bytes(meta: Mapping[str, Any], raw: Mapping[str, np.ndarray], tiles: int) -> int:
    """Bytes a tiled file spends besides its tiles' payloads (header, table, META, ...)."""
    return len(pack_tiled(meta, raw, [b""] * tiles))


__all__ = ["MARGIN_MINOR", "OUTER", "TILED_MINOR", "TiledFile", "describe_tiles", "is_tiled",
           "outer_bytes", "pack_tiled", "tile_grid"]


def is_tiled(container: Container) -> bool:
    return any(s.type == "TILE" for s in container.sections)


class TiledFile:
    """An open tiled file: its metadata and raw arrays now, each tile's bytes on demand."""

    def __init__(self, source: str | os.PathLike[str] | bytes | bytearray | memoryview,
                 container: Container | None = None) -> None:
        """``container``: the file's already parsed header (with the sections of
        :data:`OUTER` read for a path), so that it is not read twice."""
        self._buf: bytes | None = None
        self._path: Path | None = None
        if isinstance(source, bytes | bytearray | memoryview):
            self._buf = bytes(source)
            c = container or read_container(self._buf)
        else:
            self._path = Path(source)
            c = container or read_container_header(self._path, OUTER)
        self.container = c
        meta_s = c.require("META")
        assert meta_s.data is not None
        self.meta = parse_meta(meta_s.data, meta_s.offset)
        raw_s = c.get("RAWA")
        self.raw = parse_raw(raw_s.data, raw_s.offset, c.file_length) if raw_s and \
            raw_s.data else {}
        merge_bands(c, self.meta, self.raw)
        self.tiles: list[Section] = c.every("TILE")
        for kind in ("TDIR", "TDAT", "LATS"):
            if c.get(kind) is not None:
                raise FormatError(f"a tiled file holds a {kind!r} section outside its tiles; "
                                  f"{DAMAGED}")

    @property
    def version(self) -> tuple[int, int]:
        return self.container.version

    def tile_bytes(self, index: int) -> bytes:
        """The embedded file of tile ``index``, its CRC checked."""
        s = self.tiles[index]
        if self._buf is not None:
            data = self._buf[s.offset:s.offset + s.length]
        else:
            assert self._path is not None
            data = _read_at(self._path, s.offset, s.length)
        if crc32(data) != s.crc:
            raise FormatError(f"tile {index} (section 'TILE' at offset {s.offset}, {s.length} "
                              f"bytes) fails its CRC-32 check; {DAMAGED}")
        return data


def _read_at(path: Path, offset: int, length: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            return _read_exact(fh, offset, length)
    except OSError as exc:
        raise FormatError(f"cannot read {path}: {exc.strerror or exc}") from None


def _read_exact(fh: BinaryIO, offset: int, length: int) -> bytes:
    fh.seek(offset)
    data = fh.read(length)
    if len(data) != length:
        raise FormatError("the file shrank while it was being read")
    return data
