"""MATLAB .mat files: v4/v5/v7 through scipy.io, v7.3 (HDF5) through h5py.

Public scenes ship as .mat files holding several variables (the cube, band lists, sizes,
ground truth), so the reader picks the cube: ``var`` when given, else the largest numeric
3-D array, and reports which.  A 2-D (bands, pixels) matrix is refused rather than guessed
at: its pixel order (row- or column-major) and the image size are not in the file.

MATLAB is column-major; h5py shows a v7.3 variable with its axes reversed, so a MATLAB
(rows, cols, bands) array appears as (bands, cols, rows) and is read accordingly.

A wavelength vector stored beside the cube (``wavelength``, ``wavelengths``,
``wavelength_nm``, ``wavelength_um``, ``wl``, ``lambda``, ``bands``; any case) is used when
its length matches the band count; a ``_nm``/``_um`` suffix names its unit, otherwise the
unit is guessed from the magnitudes.  ``fwhm`` and ``band_names`` are read the same way.

The writer stores ``cube`` (rows, cols, bands) plus ``wavelength`` (nm), ``fwhm`` (nm) and
``band_names`` (cell array, or a char matrix in v7.3) when the cube has them.  Nodata, CRS,
transform and the source's wavelength unit have no standard place in a .mat and are
dropped.  v5 cannot hold a variable of 2 GB or more, so larger cubes are written as v7.3
(HDF5 with MATLAB's 512-byte header, which ``load`` in MATLAB recognises).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.io
from scipy.io.matlab import MatReadError

from hsz.cube import Cube
from hsz.errors import ReadError, WriteError
from hsz.fsutil import atomic_outputs
from hsz.io._common import (
    ArraySamples,
    Blocks,
    ReadOptions,
    Report,
    Samples,
    check_dtype,
    dims,
    ensure_fits,
    native,
    note,
    wavelengths_to_nm,
    write_blocks,
)
from hsz.tiles import Window

_NUMERIC_CLASSES = frozenset({
    "double", "single", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
    "uint64",
})
_CLASS_ITEMSIZE = {"double": 8, "single": 4, "int64": 8, "uint64": 8, "int32": 4,
                   "uint32": 4, "int16": 2, "uint16": 2, "int8": 1, "uint8": 1}
_DTYPE_CLASS = {"float64": "double", "float32": "single"}

#: Names of a wavelength vector, most specific first; "bands" last as it often holds indices.
_WAVELENGTH_NAMES = (
    "wavelength_nm", "wavelengths_nm", "wavelength_um", "wavelengths_um", "wavelength",
    "wavelengths", "wl", "lambda", "bands",
)
_FWHM_NAMES = ("fwhm", "fwhm_nm", "fwhm_um")
_BAND_NAME_NAMES = ("band_names", "bandnames")

#: Largest cube written as v5; v5 stores element sizes in 32 bits and MATLAB refuses
#: variables of 2 GB or more in it.
V5_MAX_BYTES = 2**31 - 2**20

#: Bytes read from HDF5 per step, so a v7.3 cube is never held twice.
_SLAB_BYTES = 64 * 2**20


@dataclass(frozen=True)
class _Var:
    name: str
    shape: tuple[int, ...]  # in MATLAB's axis order (as stored, for plain HDF5 datasets)
    mclass: str
    matlab: bool = True  # written by MATLAB (axes reversed in HDF5) or by plain h5py

    @property
    def numeric(self) -> bool:
        return self.mclass in _NUMERIC_CLASSES

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def describe(self) -> str:
        return f"{self.name} {dims(self.shape)} {self.mclass}"


# -- reading ----------------------------------------------------------------------------------
def read_mat(path: Path, options: ReadOptions) -> tuple[np.ndarray, dict[str, Any]]:
    samples, meta = open_mat(path, options)
    try:
        return samples.read_all(path), meta
    finally:
        samples.close()


def open_mat(path: Path, options: ReadOptions) -> tuple[Samples, dict[str, Any]]:
    """A v7.3 file is opened for reading windows (HDF5 hyperslabs); a v4-v7 file is read whole,
    since its compressed variables cannot be read in parts."""
    layout = options.layout or "hwb"
    if h5py.is_hdf5(path):
        return _open_v73(path, options.var, layout, options.wavelengths_given, options.report)
    data, meta = _read_v5(path, options.var, layout, options.wavelengths_given, options.report)
    return ArraySamples(data), meta


def _choose(path: Path, variables: list[_Var], var: str | None, report: Report | None) -> _Var:
    listing = ", ".join(v.describe() for v in variables) or "nothing"
    cubes = [v for v in variables if v.numeric and len(v.shape) == 3]
    if var is not None:
        match = [v for v in variables if v.name == var] or [
            v for v in variables if v.name.lower() == var.lower()
        ]
        if not match:
            raise ReadError(f"{path} has no variable {var!r}; it holds {listing}")
        chosen = match[0]
        if chosen not in cubes:
            raise ReadError(
                f"{path}: variable {chosen.name!r} is {dims(chosen.shape)} {chosen.mclass}; "
                "hsz needs a 3-D numeric array laid out (rows, cols, bands)"
            )
        return chosen
    if not cubes:
        raise ReadError(
            f"{path} holds no 3-D numeric array ({listing}); hsz needs a (rows, cols, bands) "
            "cube: reshape a 2-D (bands, pixels) matrix into one and save that"
        )
    chosen = max(cubes, key=lambda v: v.size)
    note(report, f"picked variable {chosen.name!r} ({dims(chosen.shape)}) from {path.name}")
    return chosen


def _bands(chosen: _Var, layout: str) -> int:
    return chosen.shape[2] if layout == "hwb" else chosen.shape[0]


def _vector_vars(variables: list[_Var], names: tuple[str, ...]) -> list[_Var]:
    """Numeric vectors whose name is one of ``names``, in the order of ``names``."""
    found = []
    for wanted in names:
        for v in variables:
            is_vector = len(v.shape) <= 2 and v.size == max(v.shape, default=0)
            if v.name.lower() == wanted and v.numeric and is_vector:
                found.append(v)
    return found


def _text_vars(variables: list[_Var]) -> list[_Var]:
    return [v for v in variables
            if v.name.lower() in _BAND_NAME_NAMES and v.mclass in ("cell", "char")]


def _aux_meta(
    path: Path,
    variables: list[_Var],
    load: Any,
    bands: int,
    wavelengths_given: bool,
    report: Report | None,
) -> dict[str, Any]:
    """Wavelengths, FWHM and band names stored beside the cube; ``load(var)`` fetches one."""
    meta: dict[str, Any] = {}
    if not wavelengths_given:
        meta.update(_wavelength_meta(path, variables, load, bands, report))
    for v in _text_vars(variables):
        names = load(v)
        if names is not None and len(names) == bands:
            meta["band_names"] = tuple(names)
            break
    return meta


def _wavelength_meta(
    path: Path, variables: list[_Var], load: Any, bands: int, report: Report | None
) -> dict[str, Any]:
    for v in _vector_vars(variables, _WAVELENGTH_NAMES):
        if v.size != bands:
            note(report, f"{path.name}: ignored variable {v.name!r} "
                         f"({v.size} values for {bands} bands)")
            continue
        lower = v.name.lower()
        unit = "nm" if lower.endswith("_nm") else "um" if lower.endswith("_um") else None
        fwhm = next((load(f) for f in _vector_vars(variables, _FWHM_NAMES)
                     if f.size == bands), None)
        nm, fwhm_nm, unit = wavelengths_to_nm(
            load(v), unit, f"{path.name} variable {v.name!r}", report, fwhm
        )
        if nm is not None:
            note(report, f"using wavelengths from variable {v.name!r} in {path.name} ({unit})")
            return {"wavelengths": nm, "fwhm": fwhm_nm, "wavelength_units": unit}
    return {}


def _to_bhw(matlab_array: np.ndarray, layout: str) -> np.ndarray:
    return matlab_array.transpose(2, 0, 1) if layout == "hwb" else matlab_array


# .. v4-v7 ....................................................................................
_SCIPY_ERRORS = (MatReadError, ValueError, TypeError, OSError, NotImplementedError,
                 EOFError, KeyError, IndexError)


def _read_v5(
    path: Path, var: str | None, layout: str, wavelengths_given: bool, report: Report | None
) -> tuple[np.ndarray, dict[str, Any]]:
    try:
        listing = scipy.io.whosmat(str(path))
    except _SCIPY_ERRORS as exc:
        raise ReadError(f"{path} is not a MATLAB .mat file hsz can read ({_line(exc)})") from None
    variables = [_Var(str(n), tuple(int(s) for s in shape), str(c)) for n, shape, c in listing]
    chosen = _choose(path, variables, var, report)
    nbytes = chosen.size * _CLASS_ITEMSIZE.get(chosen.mclass, 8)
    # scipy returns MATLAB's Fortran-ordered array; making it (bands, rows, cols) copies.
    ensure_fits(path, 2 * nbytes, f"the {dims(chosen.shape)} array {chosen.name!r}")
    wanted = [chosen.name] + [
        v.name for v in variables
        if v.name.lower() in _WAVELENGTH_NAMES + _FWHM_NAMES + _BAND_NAME_NAMES
    ]
    try:
        content = scipy.io.loadmat(str(path), variable_names=wanted)
    except _SCIPY_ERRORS as exc:
        raise ReadError(f"{path}: cannot read variable {chosen.name!r} ({_line(exc)})") from None
    arr = content[chosen.name]
    check_dtype(path, arr.dtype, f" (variable {chosen.name!r})")
    data = native(_to_bhw(arr, layout))

    def load(v: _Var) -> Any:
        value = content.get(v.name)
        if value is None:
            return None
        if v.mclass in ("cell", "char"):
            return _strings_v5(value)
        return np.asarray(value, dtype=np.float64).ravel(order="F")

    meta = _aux_meta(path, variables, load, data.shape[0], wavelengths_given, report)
    return data, meta


def _strings_v5(value: np.ndarray) -> list[str]:
    arr = np.asarray(value)
    if arr.dtype == object:  # cell array: each cell an array holding one string
        out = []
        for cell in arr.ravel(order="F"):
            c = np.asarray(cell).ravel()
            out.append(str(c[0]) if c.size else "")
        return out
    return [str(s).rstrip() for s in arr.ravel()]


def _line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# .. v7.3 .....................................................................................
def _open_v73(
    path: Path, var: str | None, layout: str, wavelengths_given: bool, report: Report | None
) -> tuple[Samples, dict[str, Any]]:
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ReadError(f"{path}: cannot open the v7.3 (HDF5) file ({_line(exc)})") from None
    try:
        datasets = {name: obj for name, obj in f.items()
                    if isinstance(obj, h5py.Dataset) and not name.startswith("#")}
        variables = [_h5_var(name, ds) for name, ds in datasets.items()]
        variables += [_Var(name, (1, 1), "struct") for name, obj in f.items()
                      if isinstance(obj, h5py.Group) and not name.startswith("#")]
        chosen = _choose(path, variables, var, report)
        samples = H5Samples(f, path, datasets[chosen.name], layout, chosen.matlab)

        def load(v: _Var) -> Any:
            ds = datasets[v.name]
            if v.mclass == "char":
                return _h5_chars(ds)
            if v.mclass == "cell":
                return ["".join(_h5_chars(f[ref])) for ref in ds[()].ravel()]
            return np.asarray(ds[()], dtype=np.float64).ravel()

        meta = _aux_meta(path, variables, load, samples.shape[0], wavelengths_given, report)
    except BaseException:
        f.close()
        raise
    return samples, meta


#: MATLAB class names of plain HDF5 numeric dtypes (a dataset written by h5py or another
#: HDF5 library carries no MATLAB_class attribute; its dtype says what it holds).
_KIND_CLASS = {"float64": "double", "float32": "single", "int8": "int8", "uint8": "uint8",
               "int16": "int16", "uint16": "uint16", "int32": "int32", "uint32": "uint32",
               "int64": "int64", "uint64": "uint64"}


def _h5_var(name: str, ds: h5py.Dataset) -> _Var:
    if "MATLAB_class" not in ds.attrs:
        # Not written by MATLAB: axes are as stored (C order), the class is the dtype's.
        kind = ds.dtype.name if ds.dtype.kind in "fiu" else f"HDF5 {ds.dtype.kind}"
        return _Var(name, tuple(ds.shape), _KIND_CLASS.get(kind, kind), matlab=False)
    raw = ds.attrs.get("MATLAB_class", b"")
    mclass = raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)
    if "MATLAB_sparse" in ds.attrs:
        mclass = f"sparse {mclass}"
    elif ds.dtype.kind == "V":
        mclass = f"complex {mclass}"
    if ds.attrs.get("MATLAB_empty", 0):
        return _Var(name, (0,), mclass)
    return _Var(name, tuple(reversed(ds.shape)), mclass)


class H5Samples(Samples):
    """Hyperslabs of an HDF5 dataset, read straight into (bands, rows, cols) order.

    ``perm[i]`` is the HDF5 axis that holds result axis i: MATLAB's arrays are stored
    reversed, i.e. (bands, cols, rows) for hwb and (cols, rows, bands) for bhw; a plain
    HDF5 dataset is stored as written, (rows, cols, bands) or (bands, rows, cols).
    """

    def __init__(self, f: h5py.File, path: Path, ds: h5py.Dataset, layout: str,
                 matlab: bool = True) -> None:
        self._file, self._path, self._ds = f, path, ds
        self.dtype = check_dtype(path, ds.dtype, f" (variable {ds.name.lstrip('/')!r})"
                                 ).newbyteorder("=")
        if matlab:
            self._perm = (0, 2, 1) if layout == "hwb" else (2, 1, 0)
        else:
            self._perm = (2, 0, 1) if layout == "hwb" else (0, 1, 2)
        b, r, c = (int(ds.shape[p]) for p in self._perm)
        self.shape = (b, r, c)

    def read(self, window: Window) -> np.ndarray:
        spans = [slice(0, self.shape[0]), slice(window.row, window.bottom),
                 slice(window.col, window.right)]
        shape = (self.shape[0], window.height, window.width)
        out = np.empty(shape, dtype=self.dtype)
        order = tuple(int(a) for a in np.argsort(self._perm))
        view = out.transpose(order)  # the dataset's axes
        stored = [spans[order[i]] for i in range(3)]
        # Slab by slab along the dataset's first axis, so a cube is never held twice.
        first = stored[0]
        per_index = max(1, int(np.prod(view.shape[1:])) * self.dtype.itemsize)
        slab = max(1, _SLAB_BYTES // per_index)
        try:
            for start in range(first.start, first.stop, slab):
                stop = min(first.stop, start + slab)
                view[start - first.start:stop - first.start] = self._ds[
                    start:stop, stored[1], stored[2]]
        except (OSError, ValueError) as exc:
            raise ReadError(f"{self._path}: reading {self._ds.name.lstrip('/')!r} failed "
                            f"({_line(exc)})") from None
        return out

    def close(self) -> None:
        self._file.close()


def _h5_chars(ds: h5py.Dataset) -> list[str]:
    """Rows of a MATLAB char matrix (stored as UTF-16 code units, axes reversed)."""
    codes = np.asarray(ds[()]).astype(np.uint32)
    codes = codes.reshape(codes.shape[0], -1) if codes.ndim else codes.reshape(1, 1)
    return ["".join(chr(c) for c in row).rstrip() for row in codes.T]


# -- writing ----------------------------------------------------------------------------------
def write_mat(cube: Cube, path: Path, overwrite: bool = False,
              blocks: Blocks | None = None) -> list[Path]:
    """MATLAB files are written whole: blocks are gathered in memory first."""
    if blocks is not None:
        data = np.empty(cube.shape, dtype=cube.dtype)
        write_blocks(data, blocks)
        cube = cube.replace(data=data)
    with atomic_outputs([path], overwrite) as (tmp,):
        try:
            if cube.data.nbytes > V5_MAX_BYTES:
                _write_v73(cube, tmp)
            else:
                _write_v5(cube, tmp)
        except (OSError, ValueError) as exc:
            raise WriteError(f"cannot write {path}: {_line(exc)}") from None
    return [path]


def _write_v5(cube: Cube, tmp: Path) -> None:
    content: dict[str, Any] = {"cube": cube.data.transpose(1, 2, 0)}
    if cube.wavelengths is not None:
        content["wavelength"] = cube.wavelengths.reshape(-1, 1)
    if cube.fwhm is not None:
        content["fwhm"] = cube.fwhm.reshape(-1, 1)
    if cube.band_names is not None:
        cells = np.empty((cube.bands, 1), dtype=object)
        for k, name in enumerate(cube.band_names):
            cells[k, 0] = name
        content["band_names"] = cells
    with open(tmp, "wb") as fh:
        scipy.io.savemat(fh, content, do_compression=False)


def _write_v73(cube: Cube, tmp: Path) -> None:
    with h5py.File(tmp, "w", userblock_size=512, libver="earliest") as f:
        bands, rows, cols = cube.shape
        ds = f.create_dataset("cube", shape=(bands, cols, rows), dtype=cube.dtype)
        ds.attrs["MATLAB_class"] = np.bytes_(_DTYPE_CLASS.get(cube.dtype.name, cube.dtype.name))
        for b in range(bands):  # MATLAB (rows, cols, bands) appears reversed in HDF5
            ds[b] = cube.data[b].T
        for name, values in (("wavelength", cube.wavelengths), ("fwhm", cube.fwhm)):
            if values is not None:
                vec = f.create_dataset(name, data=values.reshape(1, -1))  # MATLAB N×1
                vec.attrs["MATLAB_class"] = np.bytes_("double")
        if cube.band_names is not None:
            _h5_write_chars(f, "band_names", cube.band_names)
    _write_matlab_header(tmp)


def _h5_write_chars(f: h5py.File, name: str, rows: tuple[str, ...]) -> None:
    width = max(1, max(len(r) for r in rows))
    codes = np.full((len(rows), width), ord(" "), dtype=np.uint16)
    for i, text in enumerate(rows):
        codes[i, : len(text)] = [ord(c) if ord(c) < 0x10000 else ord("?") for c in text]
    ds = f.create_dataset(name, data=codes.T)
    ds.attrs["MATLAB_class"] = np.bytes_("char")
    ds.attrs["MATLAB_int_decode"] = np.int32(2)


def _write_matlab_header(tmp: Path) -> None:
    """MATLAB's 128-byte text header in the HDF5 user block: how ``load`` spots v7.3."""
    text = (f"MATLAB 7.3 MAT-file, Platform: hsz, Created on: "
            f"{time.strftime('%a %b %d %H:%M:%S %Y')} HDF5 schema 1.00 .")
    header = text.encode("ascii").ljust(116, b" ") + b" " * 8 + b"\x00\x02" + b"IM"
    with open(tmp, "r+b") as fh:
        fh.write(header.ljust(512, b"\x00"))
