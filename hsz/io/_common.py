"""Checks and conversions every reader shares, so that each format module only says what is
particular to its format and every bad input gets the same kind of one-line message."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hsz.cube import SUPPORTED_DTYPES, Cube
from hsz.errors import ReadError, UsageError
from hsz.spectral import guess_unit, unit_scale
from hsz.tiles import Window

Report = Callable[[str], None]

#: Units that name a band axis but not a length: the values cannot become nanometres.
_NOT_LENGTH_UNITS = {"index", "cm-1", "wavenumber", "wavenumbers", "ghz", "mhz", "hz"}

#: Fraction of the memory the OS says is available that one cube may take.  The rest is
#: headroom for the caller, which will at least make a float copy for the model.
MEMORY_FRACTION = 0.8

LAYOUTS = ("hwb", "bhw")


@dataclass(frozen=True)
class ReadOptions:
    """What the caller asked of a reader; each format uses the parts that apply to it."""

    fmt: str
    var: str | None = None
    layout: str | None = None
    wavelengths_given: bool = False
    report: Report | None = None


def note(report: Report | None, message: str) -> None:
    if report is not None:
        report(message)


def check_layout(layout: str | None) -> str | None:
    if layout is None:
        return None
    key = str(layout).strip().lower()
    if key not in LAYOUTS:
        raise UsageError(
            f"unknown layout {layout!r}: use 'hwb' for (rows, cols, bands) "
            "or 'bhw' for (bands, rows, cols)"
        )
    return key


def check_input_file(path: Path) -> None:
    """Refuse a missing, empty or non-regular input before any library sees it.

    Libraries answer these cases with messages about formats ("not recognized as a
    supported file format"), which sends the user looking in the wrong place.
    """
    if not path.exists():
        raise ReadError(f"{path} does not exist")
    if path.is_dir():
        raise ReadError(f"{path} is a folder, not a file")
    if path.stat().st_size == 0:
        raise ReadError(f"{path} is empty (0 bytes)")


def available_memory() -> int | None:
    """Bytes the OS can give without swapping (Linux MemAvailable), or None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def ensure_fits(path: Path, nbytes: int, what: str = "the cube") -> None:
    """Refuse before allocating: a MemoryError half-way through is slower and less clear."""
    avail = available_memory()
    if avail is None or nbytes <= avail * MEMORY_FRACTION:
        return
    raise ReadError(
        f"{path}: reading {what} needs about {_gib(nbytes)} but only {_gib(avail)} of memory "
        "is available; free memory or crop the cube first"
    )


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def check_dtype(path: Path, dtype: np.dtype | str, hint: str = "") -> np.dtype:
    dt = np.dtype(dtype)
    if dt.name not in SUPPORTED_DTYPES:
        raise ReadError(
            f"{path}: samples of type {dt.name} are not supported; hsz reads "
            f"{', '.join(SUPPORTED_DTYPES)}{hint}"
        )
    return dt


def native(data: np.ndarray) -> np.ndarray:
    """Native byte order and C order: what the encoder and torch expect to be handed."""
    if data.dtype.byteorder not in ("=", "|"):
        data = data.astype(data.dtype.newbyteorder("="))
    return np.ascontiguousarray(data)


def dims(shape: tuple[int, ...]) -> str:
    return "×".join(str(int(s)) for s in shape)


def looks_like_band_indices(values: np.ndarray) -> bool:
    """True for 0..n-1 or 1..n: a band numbering that was stored where wavelengths belong."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size < 2 or not np.all(np.isfinite(v)) or not np.all(v == np.round(v)):
        return False
    return bool(v[0] in (0.0, 1.0) and np.all(np.diff(v) == 1.0))


def wavelengths_to_nm(
    values: np.ndarray,
    unit: str | None,
    where: str,
    report: Report | None,
    fwhm: np.ndarray | None = None,
) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    """Turn a file's wavelength (and FWHM) list into nm, remembering the unit it used.

    Returns (wavelengths_nm, fwhm_nm, unit) or (None, None, None) when the list cannot be
    wavelengths (band numbers, wavenumbers): a wrong spectral axis is worse than none,
    because the model would embed it as physics.
    """
    vals = np.asarray(values, dtype=np.float64).ravel()
    unit = unit.strip() if unit and unit.strip() else None
    if unit is not None and unit.lower().replace(" ", "") in _NOT_LENGTH_UNITS:
        note(report, f"ignored the wavelength list in {where}: unit {unit!r} is not a length")
        return None, None, None
    scale = unit_scale(unit) if unit is not None else None
    if scale is None:
        if looks_like_band_indices(vals):
            note(report, f"ignored the wavelength list in {where}: it holds band numbers")
            return None, None, None
        guessed = guess_unit(vals)
        if unit is not None or guessed != "nm":
            what = "no unit" if unit is None else f"unit {unit!r}, which is not a known length"
            note(report, f"{where}: wavelength list has {what}; the values look like {guessed}")
        unit, scale = guessed, unit_scale(guessed)
    assert scale is not None
    fwhm_nm = None if fwhm is None else np.asarray(fwhm, dtype=np.float64).ravel() * scale
    return vals * scale, fwhm_nm, unit


def cube_fields(
    path: Path,
    bands: int,
    meta: Mapping[str, Any],
    *,
    source_format: str,
    wavelengths: np.ndarray | None = None,
    nodata: float | None = None,
    report: Report | None = None,
) -> dict[str, Any]:
    """The Cube fields (all but the samples) a reader found, with the caller's overrides."""
    fields = dict(meta)
    if wavelengths is not None:
        wl = np.asarray(wavelengths, dtype=np.float64).ravel()
        if wl.size != bands:
            raise ReadError(
                f"{path}: {wl.size} wavelengths were given but the cube has {bands} bands"
            )
        if fields.get("wavelengths") is not None:
            note(report, f"using the given wavelengths instead of those stored in {path.name}")
        else:
            fields["wavelength_units"] = "nm"
        fields["wavelengths"] = wl
    if nodata is not None:
        fields["nodata"] = float(nodata)
    fields["source_format"] = source_format
    return fields


def make_cube(path: Path, data: np.ndarray, fields: Mapping[str, Any]) -> Cube:
    """A validated Cube of ``data``.

    Validation errors from :class:`Cube` do not know the file; they are re-raised here
    with the path in front so the one-line message still says which input is wrong.
    """
    try:
        cube = Cube(data=data, **fields)
    except ReadError as exc:
        raise ReadError(f"{path}: {exc}") from None
    cube.check_finite(str(path))
    return cube


def build_cube(
    path: Path,
    data: np.ndarray,
    meta: Mapping[str, Any],
    *,
    source_format: str,
    wavelengths: np.ndarray | None = None,
    nodata: float | None = None,
    report: Report | None = None,
) -> Cube:
    """The Cube a reader hands back, applying the caller's overrides."""
    fields = cube_fields(path, data.shape[0], meta, source_format=source_format,
                         wavelengths=wavelengths, nodata=nodata, report=report)
    return make_cube(path, data, fields)


def parse_float_list(text: str, path: Path, what: str) -> np.ndarray:
    """Numbers from a GDAL/ENVI list value ``{1, 2, 3}`` or a plain ``1,2,3``."""
    items = split_list(text)
    try:
        return np.array([float(x) for x in items], dtype=np.float64)
    except ValueError:
        raise ReadError(f"{path}: the {what} list is not a list of numbers") from None


def split_list(text: str, keep_empty: bool = False) -> list[str]:
    """Items of an ENVI list; empty items are kept for names (their count must match)."""
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    items = [item.strip() for item in body.split(",")]
    if items and not items[-1]:
        items.pop()  # a trailing comma is a common hand-edit, not an extra band
    return items if keep_empty else [item for item in items if item]


#: Decoded pieces of a cube handed to a writer in turn: (where, samples (bands, h, w)).
Blocks = Iterable[tuple[Window, np.ndarray]]


def virtual_cube(shape: tuple[int, int, int], dtype: np.dtype, **fields: Any) -> Cube:
    """A Cube with metadata and shape but no samples (a broadcast zero, no memory), for a
    writer that is fed blocks."""
    return Cube(data=np.broadcast_to(np.zeros((), dtype), shape), **fields)


def write_blocks(target: np.ndarray, blocks: Blocks) -> None:
    """Copy blocks into an array laid out (bands, rows, cols) (e.g. a memory map's view)."""
    for window, block in blocks:
        target[(slice(None), *window.slices())] = block


class Samples:
    """A cube's samples that can be read one window at a time.

    Readers hand one out instead of an array so that a scene larger than memory is read tile
    by tile: GDAL windows, HDF5 hyperslabs, .npy memory maps.  Formats that cannot be read
    in parts (MATLAB v5) hold the whole array and slice it.  ``read`` returns native-order,
    C-contiguous (bands, height, width) arrays, as every reader's whole-cube result is.
    """

    shape: tuple[int, int, int]
    dtype: np.dtype

    def read(self, window: Window) -> np.ndarray:
        raise NotImplementedError

    def read_all(self, path: Path) -> np.ndarray:
        """The whole cube, refused up front when it cannot fit in memory."""
        bands, rows, cols = self.shape
        ensure_fits(path, bands * rows * cols * self.dtype.itemsize,
                    f"the {dims(self.shape)} {self.dtype.name} cube")
        return self.read(Window(0, 0, rows, cols))

    def close(self) -> None:
        """Release the file handle (if any); reading again reopens nothing."""


class ArraySamples(Samples):
    """Samples already in memory (formats that cannot be read in parts)."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.shape = (int(data.shape[0]), int(data.shape[1]), int(data.shape[2]))
        self.dtype = data.dtype

    def read(self, window: Window) -> np.ndarray:
        if (window.height, window.width) == self.shape[1:]:
            return self.data
        rows, cols = window.slices()
        return np.ascontiguousarray(self.data[:, rows, cols])

    def read_all(self, path: Path) -> np.ndarray:
        return self.data
