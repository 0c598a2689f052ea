"""Reading and writing hyperspectral cubes: ENVI, GeoTIFF (any GDAL raster for reading),
MATLAB .mat and NumPy .npy.

Every reader returns a :class:`hsz.cube.Cube` and every writer takes one, so metadata
travels with the samples.  Format modules are imported only when a file of their kind is
touched: asking for the format of a path must not cost the start-up time of GDAL or HDF5,
and nothing here imports torch.

Which format a path has is decided by its extension; ``format`` overrides.  An input with
an unknown or no extension is recognised by an ENVI header beside it or by its first bytes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hsz.cube import Cube
from hsz.errors import ReadError, UsageError
from hsz.io._common import (
    Blocks,
    ReadOptions,
    Report,
    Samples,
    check_input_file,
    check_layout,
    cube_fields,
    note,
)
from hsz.io.scene import Scene, SceneSpec

__all__ = ["FORMATS", "FormatInfo", "Scene", "SceneSpec", "format_for_path", "open_scene",
           "read", "write"]


@dataclass(frozen=True)
class FormatInfo:
    """One entry of :data:`FORMATS`: what a format id means and where its code lives."""

    id: str
    description: str
    read_extensions: tuple[str, ...]
    write_extensions: tuple[str, ...]
    module: str
    opener: str
    writer: str

    def _function(self, name: str) -> Callable[..., Any]:
        return getattr(importlib.import_module(self.module), name)

    def open_raw(self, path: Path, options: ReadOptions) -> tuple[Samples, dict[str, Any]]:
        return self._function(self.opener)(path, options)

    def write(self, cube: Cube, path: Path, overwrite: bool = False,
              blocks: Blocks | None = None) -> list[Path]:
        return self._function(self.writer)(cube, path, overwrite=overwrite, blocks=blocks)


_ENVI_EXTS = (".hdr", ".img", ".dat", ".raw", ".bsq", ".bil", ".bip")

FORMATS: dict[str, FormatInfo] = {
    "envi": FormatInfo(
        "envi", "ENVI data file + .hdr header (bsq, bil or bip)", _ENVI_EXTS, _ENVI_EXTS,
        "hsz.io.gdal", "open_raster", "write_envi",
    ),
    "gtiff": FormatInfo(
        "gtiff", "GeoTIFF; for reading also any single raster GDAL opens",
        (".tif", ".tiff", ".gtif", ".vrt", ".jp2", ".nc", ".kea"), (".tif", ".tiff", ".gtif"),
        "hsz.io.gdal", "open_raster", "write_gtiff",
    ),
    "mat": FormatInfo(
        "mat", "MATLAB .mat (v4-v7 and v7.3/HDF5)", (".mat",), (".mat",),
        "hsz.io.matlab", "open_mat", "write_mat",
    ),
    "npy": FormatInfo(
        "npy", "NumPy .npy array", (".npy",), (".npy",), "hsz.io.npy", "open_npy", "write_npy",
    ),
}

_ALIASES = {"tif": "gtiff", "tiff": "gtiff", "geotiff": "gtiff", "gdal": "gtiff",
            "matlab": "mat", "numpy": "npy", "hdr": "envi"}

_MAGIC = (
    (b"\x93NUMPY", "npy"),
    (b"MATLAB", "mat"),
    (b"II*\x00", "gtiff"), (b"MM\x00*", "gtiff"), (b"II+\x00", "gtiff"), (b"MM\x00+", "gtiff"),
    (b"ENVI", "envi"),
)


def _format_id(name: str) -> str:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in FORMATS:
        raise UsageError(f"unknown format {name!r}; choose one of {', '.join(FORMATS)}")
    return key


def format_for_path(path: str | Path, format: str | None = None, *,
                    for_write: bool = False) -> str:
    """The format id for ``path``: ``format`` if given, else the extension decides."""
    if format is not None:
        return _format_id(format)
    p = Path(path)
    suffix = p.suffix.lower()
    for info in FORMATS.values():
        if suffix in (info.write_extensions if for_write else info.read_extensions):
            return info.id
    if not for_write:
        found = _sniff(p)
        if found is not None:
            return found
    choices = ", ".join(FORMATS)
    if for_write:
        writable = " ".join(sorted({e for i in FORMATS.values() for e in i.write_extensions}))
        raise UsageError(
            f"cannot tell which format to write {p} in from its extension; use one of "
            f"{writable} or give the format ({choices})"
        )
    raise UsageError(
        f"cannot tell the format of {p} from its name or content; give the format ({choices})"
    )


def _sniff(path: Path) -> str | None:
    """Recognise an input by an ENVI header beside it or by its magic bytes."""
    if Path(f"{path}.hdr").is_file() or (not path.suffix and path.with_suffix(".hdr").is_file()):
        return "envi"
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return None
    return next((fmt for magic, fmt in _MAGIC if head.startswith(magic)), None)


def read(
    path: str | Path,
    *,
    format: str | None = None,
    var: str | None = None,
    layout: str | None = None,
    wavelengths: np.ndarray | None = None,
    nodata: float | None = None,
    report: Report | None = None,
) -> Cube:
    """Read a cube; ``wavelengths`` (nm) and ``nodata`` override what the file says.

    ``var`` picks a .mat variable and ``layout`` ("hwb" or "bhw") says how a .mat or .npy
    array is ordered; formats that describe their own layout ignore both with a note.
    """
    with open_scene(path, format=format, var=var, layout=layout, wavelengths=wavelengths,
                    nodata=nodata, report=report) as scene:
        return scene.read_all()


def open_scene(
    path: str | Path,
    *,
    format: str | None = None,
    var: str | None = None,
    layout: str | None = None,
    wavelengths: np.ndarray | None = None,
    nodata: float | None = None,
    report: Report | None = None,
) -> Scene:
    """Open a cube for reading window by window (same options as :func:`read`).

    Nothing but metadata is read here; close the scene (or use it as a context manager)
    to release the file.
    """
    p = Path(path)
    layout = check_layout(layout)
    fmt = _format_id(format) if format is not None else None
    check_input_file(p)
    options = ReadOptions(
        fmt=fmt or format_for_path(p), var=var, layout=layout,
        wavelengths_given=wavelengths is not None, report=report,
    )
    if options.layout is not None and options.fmt not in ("mat", "npy"):
        note(report, f"layout {options.layout!r} ignored: {p.name} describes its own layout")
    if var is not None and options.fmt != "mat":
        note(report, f"variable {var!r} ignored: only .mat files hold named variables")
    samples, meta = FORMATS[options.fmt].open_raw(p, options)
    try:
        fields = cube_fields(p, samples.shape[0], meta, source_format=options.fmt,
                             wavelengths=wavelengths, nodata=nodata, report=report)
        spec = SceneSpec(
            str(p), options.fmt, var, layout,
            None if wavelengths is None else tuple(float(v) for v in np.ravel(wavelengths)),
            None if nodata is None else float(nodata))
        try:
            return Scene(p, samples, fields, spec)
        except ReadError as exc:
            raise ReadError(f"{p}: {exc}") from None
    except BaseException:
        samples.close()
        raise


def write(cube: Cube, path: str | Path, *, format: str | None = None,
          overwrite: bool = False, blocks: Blocks | None = None) -> list[Path]:
    """Write ``cube`` and return every file written (an ENVI data file and its header).

    With ``blocks`` the samples come from them, in any order, and ``cube`` only gives the
    shape and metadata (:func:`hsz.io._common.virtual_cube`): GeoTIFF, ENVI and .npy are
    then written block by block and never held whole.
    """
    p = Path(path)
    fmt = format_for_path(p, format, for_write=True)
    return FORMATS[fmt].write(cube, p, overwrite=overwrite, blocks=blocks)
