""".npy arrays: the lowest common denominator between Python tools.

A .npy file holds samples only, so everything else a Cube carries is dropped on write:
wavelengths, FWHM, band names, nodata, CRS and transform.  Supply wavelengths when reading
(``wavelengths=``, ``--wavelengths``).  Layout is ``hwb`` (rows, cols, bands), the common
convention of the public scene files, unless ``layout="bhw"`` says otherwise; the writer
always writes (rows, cols, bands).

Files are opened with ``allow_pickle=False`` (a .npy holding Python objects can run code
when unpickled) and memory-mapped, so the only copy in memory is the cube itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hsz.cube import Cube
from hsz.errors import ReadError, WriteError
from hsz.fsutil import atomic_outputs
from hsz.io._common import (
    Blocks,
    ReadOptions,
    Samples,
    check_dtype,
    dims,
    native,
    note,
    write_blocks,
)
from hsz.tiles import Window


def read_npy(path: Path, options: ReadOptions) -> tuple[np.ndarray, dict[str, Any]]:
    samples, meta = open_npy(path, options)
    return samples.read_all(path), meta


class NpySamples(Samples):
    """Windows of a memory-mapped array: only the pages a window touches are read."""

    def __init__(self, arr: np.ndarray, layout: str) -> None:
        self._view = arr.transpose(2, 0, 1) if layout == "hwb" else arr
        b, r, c = self._view.shape
        self.shape = (int(b), int(r), int(c))
        self.dtype = np.dtype(arr.dtype).newbyteorder("=")

    def read(self, window: Window) -> np.ndarray:
        rows, cols = window.slices()
        return native(np.array(self._view[:, rows, cols], order="C"))


def open_npy(path: Path, options: ReadOptions) -> tuple[Samples, dict[str, Any]]:
    layout, report = options.layout or "hwb", options.report
    arr = _open(path)
    if arr.dtype.hasobject:
        raise ReadError(
            f"{path} holds Python objects (dtype {arr.dtype}); hsz reads only numeric arrays"
        )
    if arr.ndim != 3:
        raise ReadError(
            f"{path} holds a {arr.ndim}-D array of shape {dims(arr.shape)}; hsz needs a 3-D "
            "cube laid out (rows, cols, bands), or (bands, rows, cols) with --layout bhw"
        )
    check_dtype(path, arr.dtype)
    axes = "(rows, cols, bands)" if layout == "hwb" else "(bands, rows, cols)"
    note(report, f"read the {dims(arr.shape)} array in {path.name} as {axes}")
    return NpySamples(arr, layout), {}


def _open(path: Path) -> np.ndarray:
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic != b"\x93NUMPY":
        # np.load would take any other file for a pickle and talk about pickles.
        what = "a .npz archive" if magic.startswith(b"PK") else "a file without the .npy header"
        raise ReadError(f"{path} is not a valid .npy file ({what}); save one array with np.save")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        # Object arrays cannot be memory-mapped and may not be unpickled: both land here.
        if "object" in str(exc).lower() or "pickle" in str(exc).lower():
            raise ReadError(
                f"{path} holds Python objects; hsz reads only numeric arrays"
            ) from None
        raise ReadError(f"{path} is not a valid .npy file ({_first_line(exc)})") from None
    except (OSError, EOFError) as exc:
        raise ReadError(f"{path} is not a valid .npy file ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def write_npy(cube: Cube, path: Path, overwrite: bool = False,
              blocks: Blocks | None = None) -> list[Path]:
    """Samples as (rows, cols, bands); np.save streams a transposed view without a copy,
    and blocks go straight into a memory-mapped file."""
    with atomic_outputs([path], overwrite) as (tmp,):
        try:
            if blocks is not None:
                mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=cube.dtype,
                                               shape=(cube.height, cube.width, cube.bands))
                write_blocks(mm.transpose(2, 0, 1), blocks)
                mm.flush()
                del mm
                return [path]
            with open(tmp, "wb") as fh:
                np.save(fh, cube.data.transpose(1, 2, 0), allow_pickle=False)
        except OSError as exc:
            raise WriteError(f"cannot write {path}: {exc.strerror or exc}") from None
    return [path]
