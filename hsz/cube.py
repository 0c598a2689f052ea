"""The one type that crosses every boundary in hsz: a hyperspectral cube and what travels with it.

Readers produce a :class:`Cube`, the encoder consumes one, the decoder produces
one and writers consume one.  Keeping samples and metadata together is what lets
wavelengths, georeferencing, nodata and band names survive a round trip without
every function having to remember to pass them along.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hsz.errors import ReadError

#: Sample types hsz accepts; everything a sensor or a processing chain writes in practice.
SUPPORTED_DTYPES = (
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64",
)


def _as_optional_vector(name: str, value: Any, bands: int) -> np.ndarray | None:
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size != bands:
        raise ReadError(f"{name} has {arr.size} values but the cube has {bands} bands")
    if not np.all(np.isfinite(arr)):
        raise ReadError(f"{name} contains non-finite values")
    arr = arr.copy()
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Cube:
    """Samples laid out as (bands, rows, cols) in the source's own dtype, plus metadata.

    Wavelengths and FWHM are always held in nanometres; ``wavelength_units`` remembers
    the unit the source used so that writers can give it back unchanged.
    ``crs`` is WKT and ``transform`` the six GDAL/rasterio affine coefficients
    ``(a, b, c, d, e, f)`` mapping (col, row) to (x, y).
    """

    data: np.ndarray
    wavelengths: np.ndarray | None = None
    fwhm: np.ndarray | None = None
    wavelength_units: str | None = None
    band_names: tuple[str, ...] | None = None
    nodata: float | None = None
    crs: str | None = None
    transform: tuple[float, float, float, float, float, float] | None = None
    source_format: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        data = self.data
        if not isinstance(data, np.ndarray):
            data = np.asarray(data)
        if data.ndim != 3:
            raise ReadError(
                f"a cube needs 3 dimensions (bands, rows, cols); got an array of shape {data.shape}"
            )
        if data.dtype.name not in SUPPORTED_DTYPES:
            raise ReadError(
                f"unsupported sample type {data.dtype.name}; "
                f"hsz reads {', '.join(SUPPORTED_DTYPES)}"
            )
        if min(data.shape) < 1:
            raise ReadError(f"the cube is empty (shape {data.shape})")
        bands = data.shape[0]
        object.__setattr__(self, "data", data)
        object.__setattr__(
            self, "wavelengths", _as_optional_vector("wavelength list", self.wavelengths, bands)
        )
        object.__setattr__(self, "fwhm", _as_optional_vector("fwhm list", self.fwhm, bands))
        if self.wavelengths is not None and np.any(self.wavelengths <= 0):
            raise ReadError("wavelengths must be positive")
        if self.band_names is not None:
            names = tuple(str(n) for n in self.band_names)
            if len(names) != bands:
                raise ReadError(
                    f"{len(names)} band names were given but the cube has {bands} bands"
                )
            object.__setattr__(self, "band_names", names)
        if self.nodata is not None:
            nd = float(self.nodata)
            object.__setattr__(self, "nodata", nd)
        if self.transform is not None:
            t = tuple(float(v) for v in self.transform)
            if len(t) != 6 or not all(np.isfinite(t)):
                raise ReadError("the affine transform needs six finite coefficients")
            object.__setattr__(self, "transform", t)
        object.__setattr__(self, "extra", dict(self.extra))

    # -- shape -----------------------------------------------------------------------------
    @property
    def bands(self) -> int:
        return int(self.data.shape[0])

    @property
    def height(self) -> int:
        return int(self.data.shape[1])

    @property
    def width(self) -> int:
        return int(self.data.shape[2])

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.bands, self.height, self.width)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def bits_per_sample(self) -> int:
        """The source's own bit depth, which a compression ratio is measured against."""
        return int(self.data.dtype.itemsize * 8)

    # -- wavelengths -------------------------------------------------------------------------
    @property
    def wavelengths_increasing(self) -> bool:
        """True when the wavelengths are strictly increasing (or absent).

        Real sensors break this: AVIRIS spectrometer overlaps make a few centres step
        backwards.  hsz accepts such cubes and reports it instead of reordering bands.
        """
        if self.wavelengths is None or self.bands < 2:
            return True
        return bool(np.all(np.diff(self.wavelengths) > 0))

    def valid_mask(self) -> np.ndarray | None:
        """Pixels (rows, cols) that hold data: False where every band equals nodata.

        A pixel is nodata when *all* its bands carry the nodata value, the convention of
        ENVI's ``data ignore value`` and GDAL's per-dataset nodata for image cubes.
        """
        if self.nodata is None:
            return None
        if np.isnan(self.nodata):
            hit = np.isnan(self.data) if self.data.dtype.kind == "f" else np.zeros_like(
                self.data, dtype=bool
            )
        else:
            hit = self.data == self.data.dtype.type(self.nodata) if _representable(
                self.nodata, self.data.dtype
            ) else np.zeros(self.data.shape, dtype=bool)
        return ~np.all(hit, axis=0)

    def replace(self, **changes: Any) -> Cube:
        """A copy with some fields changed (and validated again)."""
        return dataclasses.replace(self, **changes)

    def check_finite(self, name: str = "the cube") -> None:
        """Refuse NaN/Inf samples, except NaN used as the declared nodata value."""
        if self.data.dtype.kind != "f":
            return
        bad = ~np.isfinite(self.data)
        if self.nodata is not None and np.isnan(self.nodata):
            bad &= ~np.isnan(self.data)
        if bad.any():
            count = int(bad.sum())
            raise ReadError(
                f"{name} has {count} NaN or infinite samples; declare a nodata value "
                "(e.g. --nodata nan) or clean the data first"
            )


def _representable(value: float, dtype: np.dtype) -> bool:
    if dtype.kind == "f":
        return True
    info = np.iinfo(dtype)
    return float(value).is_integer() and info.min <= value <= info.max


def band_names_or_default(cube: Cube) -> Sequence[str]:
    """Band names to show a person: the stored ones, else ``"Band k"`` (1-based, as GDAL)."""
    if cube.band_names is not None:
        return cube.band_names
    return tuple(f"Band {k + 1}" for k in range(cube.bands))
