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
)
from hsz.tiles import Window


def read_npy(path: Path, options: ReadOptions) -> tuple[np.ndarray, dict[str, Any]]:
    samples, meta = open_npy(path, options)
    return samples.read_all(path), meta


class NpySamples(Samples):
    """Windows of a .npy file, read with plain positioned reads of the rows they cover.

    Reading through the memory map would leave every page a window touched mapped into
    the process, so a tile-by-tile pass over a large scene would end with the whole file
    counted in its memory; positioned reads keep only the window.  Fortran-ordered arrays
    (rare) are sliced through the memory map.
    """

    def __init__(self, path: Path, arr: np.ndarray, layout: str) -> None:
        self._path, self._layout = path, layout
        self._stored = np.dtype(arr.dtype)
        self._fortran = not arr.flags.c_contiguous
        self._offset = int(arr.offset) if isinstance(arr, np.memmap) else 0
        self._file_shape = tuple(int(v) for v in arr.shape)
        self._view = arr.transpose(2, 0, 1) if layout == "hwb" else arr
        b, r, c = self._view.shape
        self.shape = (int(b), int(r), int(c))
        self.dtype = self._stored.newbyteorder("=")

    def read(self, window: Window) -> np.ndarray:
        rows, cols = window.slices()
        if self._fortran:
            return native(np.array(self._view[:, rows, cols], order="C"))
        size = self._stored.itemsize
        out = np.empty((self.shape[0], window.height, window.width), dtype=self._stored)
        with open(self._path, "rb") as fh:
            if self._layout == "hwb":
                _, cols_all, bands = self._file_shape
                seg = np.empty((window.height, window.width, bands), dtype=self._stored)
                for i in range(window.height):
                    fh.seek(self._offset + ((window.row + i) * cols_all + window.col)
                            * bands * size)
                    _fill(fh, seg[i])
                out[:] = seg.transpose(2, 0, 1)
            else:
                _, rows_all, cols_all = self._file_shape
                for k in range(self.shape[0]):
                    for i in range(window.height):
                        fh.seek(self._offset + ((k * rows_all + window.row + i) * cols_all
                                                + window.col) * size)
                        _fill(fh, out[k, i])
        return native(out)


def _fill(fh: Any, target: np.ndarray) -> None:
    """Read exactly ``target.nbytes`` bytes into ``target``."""
    view = memoryview(target.reshape(-1).view(np.uint8))
    got = fh.readinto(view)
    if got != len(view):
        raise ReadError(f"{fh.name} ended early: the file is shorter than its header says")


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
    return NpySamples(path, arr, layout), {}


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


def _write_blocks(tmp: Path, cube: Cube, blocks: Blocks) -> None:
    """Write the header, then each block's rows at their offsets (no memory map: its dirty
    pages would all count as the process's memory until the file is closed)."""
    dtype = np.dtype(cube.dtype)
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
              "shape": (cube.height, cube.width, cube.bands)}
    with open(tmp, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header) if _fits_v1(header) else \
            np.lib.format.write_array_header_2_0(fh, header)
        start = fh.tell()
        fh.truncate(start + cube.height * cube.width * cube.bands * dtype.itemsize)
        for w, block in blocks:
            rows = np.ascontiguousarray(np.asarray(block, dtype=dtype).transpose(1, 2, 0))
            for i in range(w.height):
                fh.seek(start + ((w.row + i) * cube.width + w.col) * cube.bands
                        * dtype.itemsize)
                fh.write(rows[i].tobytes())


def _fits_v1(header: dict[str, Any]) -> bool:
    return len(repr(header)) < 65000


def write_npy(cube: Cube, path: Path, overwrite: bool = False,
              blocks: Blocks | None = None) -> list[Path]:
    """Samples as (rows, cols, bands); np.save streams a transposed view without a copy,
    and blocks go straight into a memory-mapped file."""
    with atomic_outputs([path], overwrite) as (tmp,):
        try:
            if blocks is not None:
                _write_blocks(tmp, cube, blocks)
                return [path]
            with open(tmp, "wb") as fh:
                np.save(fh, cube.data.transpose(1, 2, 0), allow_pickle=False)
        except OSError as exc:
            raise WriteError(f"cannot write {path}: {exc.strerror or exc}") from None
    return [path]
