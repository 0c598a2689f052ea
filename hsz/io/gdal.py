"""ENVI and GeoTIFF (and, for reading, any single raster GDAL opens) through rasterio.

GDAL already parses ENVI headers in all their variants (three interleaves, both byte
orders, header offsets, ``map info`` and ``coordinate system string``), so hsz does not
parse them again: it reads what GDAL exposes.

Where the spectral metadata is found, in order of trust:

* ENVI files: the ``ENVI`` metadata domain (``wavelength``, ``fwhm``, ``wavelength_units``,
  ``band_names``), which holds the header's lists verbatim.  GDAL also derives band
  descriptions ("366.551 nm") and a band ``IMAGERY`` domain from them, but rounds the
  latter to 3 decimals of a micrometre, so neither is used for ENVI.
* Other rasters: per-band ``wavelength``/``fwhm``/``wavelength_units`` items (the
  convention GDAL uses across drivers), else the band ``IMAGERY`` domain
  (``CENTRAL_WAVELENGTH_UM``/``FWHM_UM``, GDAL >= 3.10).  Band names are the band
  descriptions.

Writers give every piece back in the form the format's own tools read: ENVI gets header
lists in the unit the source used, GeoTIFF gets the per-band items, the ``IMAGERY`` domain
and descriptions.  GDAL's PAM side-car files (``.aux.xml``) are disabled on write so that
an output is exactly the files :func:`write` reports; on read they are honoured.

Dropped on purpose: GCPs and RPCs, per-band scale/offset, colour tables, mask bands, and
per-band nodata when bands disagree (the first band's value is kept and reported).  ENVI has
no signed 8-bit type, so int8 cubes are refused by the ENVI writer rather than silently
reinterpreted as unsigned.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import CRSError, NotGeoreferencedWarning, RasterioError
from rasterio.transform import Affine
from rasterio.windows import Window as RioWindow

from hsz.cube import Cube
from hsz.errors import ReadError, WriteError
from hsz.fsutil import atomic_outputs
from hsz.io._common import (
    Blocks,
    ReadOptions,
    Report,
    Samples,
    check_dtype,
    note,
    parse_float_list,
    split_list,
    wavelengths_to_nm,
)
from hsz.spectral import from_nm, unit_scale
from hsz.tiles import Window

#: Extensions an ENVI data file commonly has; a data file may also have none.
ENVI_DATA_EXTS = (".img", ".dat", ".raw", ".bsq", ".bil", ".bip")

#: ENVI header fields that describe layout or that hsz maps to Cube fields; everything
#: else in the header is carried in ``Cube.extra`` as ``envi:<field>`` and written back.
_ENVI_OWN_FIELDS = frozenset({
    "samples", "lines", "bands", "header_offset", "file_type", "data_type", "interleave",
    "byte_order", "map_info", "coordinate_system_string", "projection_info", "band_names",
    "wavelength", "fwhm", "wavelength_units", "data_ignore_value", "description",
    "rpc_info", "file_compression", "geo_points",
})

_ENVI_TYPE_NAMES = {
    "1": "uint8", "2": "int16", "3": "int32", "4": "float32", "5": "float64", "6": "complex64",
    "9": "complex128", "12": "uint16", "13": "uint32", "14": "int64", "15": "uint64",
}

_GTIFF_BLOCK = 256
#: GDAL block cache for one read or write, in MB.
_CACHE_MB = 256


@contextlib.contextmanager
def _gdal_env(writing: bool) -> Iterator[None]:
    """GDAL settings for one read or write.

    Writing disables PAM side-cars (.aux.xml) so that an output is exactly the files the
    atomic rename knows about; reading keeps PAM on because other tools store band
    metadata there.  A cube without georeferencing is normal (lab scenes), so rasterio's
    warning about it is noise.
    """
    options: dict[str, Any] = {"GDAL_PAM_ENABLED": "NO"} if writing else {}
    # GDAL's block cache defaults to 5 % of RAM; a tile-by-tile read or write only ever
    # needs the blocks of one tile row, and memory should follow the tile.
    options["GDAL_CACHEMAX"] = _CACHE_MB
    with rasterio.Env(**options), warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0].strip() if text else type(exc).__name__


# -- ENVI file pairs --------------------------------------------------------------------------
def resolve_envi(path: Path) -> tuple[Path, Path]:
    """(data file, header) for a path naming either one; ReadError when the other is missing.

    GDAL only opens the data file and, given a header, says "select the data file instead";
    hsz accepts either because people pick whichever one their file browser shows.
    """
    if path.suffix.lower() == ".hdr":
        data = _find_data_for_header(path)
        if data is None:
            tried = ", ".join(p.name for p in _data_candidates(path))
            raise ReadError(
                f"{path}: ENVI header without its data file (looked for {tried}); put the "
                "data file next to the header under the same name"
            )
        return data, path
    for hdr in (path.with_suffix(".hdr"), Path(f"{path}.hdr"),
                path.with_suffix(".HDR"), Path(f"{path}.HDR")):
        if hdr.is_file():
            return path, hdr
    raise ReadError(
        f"{path}: no ENVI header beside it (expected {path.with_suffix('.hdr').name}); "
        "an ENVI data file cannot be read without its .hdr"
    )


def _data_candidates(hdr: Path) -> list[Path]:
    stem = hdr.with_suffix("")
    return [stem] + [stem.with_name(stem.name + ext) for ext in ENVI_DATA_EXTS]


def _find_data_for_header(hdr: Path) -> Path | None:
    stem = hdr.with_suffix("")
    for cand in _data_candidates(hdr):
        if cand.is_file():
            return cand
    # Case-insensitive extensions (FOO.IMG beside foo.hdr happens on files from Windows).
    if hdr.parent.is_dir():
        for cand in sorted(hdr.parent.iterdir()):
            if (cand.is_file() and cand.stem.lower() == stem.name.lower()
                    and cand.suffix.lower() in ENVI_DATA_EXTS):
                return cand
    return None


def envi_targets(path: Path) -> tuple[Path, Path]:
    """(data, header) to write for an output named by either; .img when only .hdr is named."""
    if path.suffix.lower() == ".hdr":
        return path.with_suffix(".img"), path
    if path.suffix.lower() in ENVI_DATA_EXTS or not path.suffix:
        return path, path.with_suffix(".hdr")
    return path, Path(f"{path}.hdr")


# -- reading ----------------------------------------------------------------------------------
def read_raster(path: Path, options: ReadOptions) -> tuple[np.ndarray, dict[str, Any]]:
    """Samples (bands, rows, cols) and Cube metadata of an ENVI file or other GDAL raster."""
    samples, meta = open_raster(path, options)
    try:
        return samples.read_all(path), meta
    finally:
        samples.close()


class RasterSamples(Samples):
    """Windows of an open GDAL dataset: GDAL reads only the blocks a window touches."""

    def __init__(self, ds: Any, path: Path, dtype: np.dtype) -> None:
        self._ds, self._path = ds, path
        self.shape = (int(ds.count), int(ds.height), int(ds.width))
        self.dtype = dtype

    def read(self, window: Window) -> np.ndarray:
        out = np.empty((self.shape[0], window.height, window.width), dtype=self.dtype)
        try:
            with _gdal_env(writing=False):
                self._ds.read(out=out, window=RioWindow(window.col, window.row, window.width,
                                                        window.height))
        except RasterioError as exc:
            raise ReadError(f"{self._path}: reading the samples failed: "
                            f"{_one_line(exc)}") from None
        return out

    def close(self) -> None:
        self._ds.close()


def open_raster(path: Path, options: ReadOptions) -> tuple[Samples, dict[str, Any]]:
    """An ENVI file or other GDAL raster, opened for reading windows, and its metadata."""
    if options.fmt == "envi":
        data_path, _ = resolve_envi(path)
        driver: str | None = "ENVI"
    else:
        data_path, driver = path, None
    with _gdal_env(writing=False), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NotGeoreferencedWarning)  # recorded, not shown
        try:
            ds = rasterio.open(data_path, driver=driver)
        except RasterioError as exc:
            raise ReadError(f"cannot read {path}: {_one_line(exc)}") from None
        georeferenced = not any(issubclass(w.category, NotGeoreferencedWarning) for w in caught)
        try:
            dtype = _check_samples(ds, path, data_path)
            meta = _metadata(ds, path, georeferenced, options.wavelengths_given,
                             options.report)
        except BaseException:
            ds.close()
            raise
    return RasterSamples(ds, path, dtype), meta


def _check_samples(ds: Any, path: Path, data_path: Path) -> np.dtype:
    if ds.count == 0:
        subs = ", ".join(ds.subdatasets[:3])
        raise ReadError(
            f"{path} has no raster bands" + (f"; open one of its subdatasets ({subs})"
                                              if subs else "")
        )
    if len(set(ds.dtypes)) != 1:
        raise ReadError(f"{path}: bands have different sample types ({', '.join(ds.dtypes)})")
    hint = ""
    if ds.driver == "ENVI":
        code = ds.tags(ns="ENVI").get("data_type", "?")
        hint = f" (this file has ENVI data type {code}: {_ENVI_TYPE_NAMES.get(code, 'unknown')})"
    dtype = check_dtype(path, ds.dtypes[0], hint)
    shape = (ds.count, ds.height, ds.width)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if ds.driver == "ENVI":
        _check_envi_size(ds, path, data_path, nbytes)
    return dtype


def _check_envi_size(ds: Any, path: Path, data_path: Path, nbytes: int) -> None:
    """GDAL reads a short ENVI data file as zeros; a truncated scene must not pass as data."""
    try:
        offset = int(ds.tags(ns="ENVI").get("header_offset", "0") or 0)
    except ValueError:
        offset = 0
    have = data_path.stat().st_size
    if have < offset + nbytes:
        raise ReadError(
            f"{path}: the data file {data_path.name} has {have} bytes but the header "
            f"describes {offset + nbytes}; the file is truncated or the header is wrong"
        )


def _metadata(
    ds: Any, path: Path, georeferenced: bool, wavelengths_given: bool, report: Report | None
) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    meta.update(_nodata(ds, path, report))
    if ds.crs is not None:
        meta["crs"] = ds.crs.to_wkt()
    if georeferenced:
        meta["transform"] = tuple(ds.transform)[:6]
    if ds.driver == "ENVI":
        meta.update(_envi_metadata(ds, path, wavelengths_given, report))
    else:
        meta.update(_band_metadata(ds, path, report))
    return meta


def _nodata(ds: Any, path: Path, report: Report | None) -> dict[str, Any]:
    values = [v for v in ds.nodatavals if v is not None]
    if not values:
        return {}
    distinct = {("nan" if np.isnan(v) else v) for v in values}
    if len(distinct) > 1:
        note(report, f"{path.name}: bands declare different nodata values; using band 1's")
    return {"nodata": float(values[0])}


def _envi_metadata(
    ds: Any, path: Path, wavelengths_given: bool, report: Report | None
) -> dict[str, Any]:
    env = ds.tags(ns="ENVI")
    bands = ds.count
    meta: dict[str, Any] = {}
    if "wavelength" in env:
        wl = parse_float_list(env["wavelength"], path, "wavelength")
        fwhm = parse_float_list(env["fwhm"], path, "fwhm") if "fwhm" in env else None
        if fwhm is not None and fwhm.size != bands:
            note(report, f"{path.name}: ignored the fwhm list ({fwhm.size} values, "
                         f"{bands} bands)")
            fwhm = None
        if wl.size != bands and not wavelengths_given:
            raise ReadError(
                f"{path}: the header lists {wl.size} wavelengths for {bands} bands; fix the "
                "header or give the wavelengths explicitly (--wavelengths)"
            )
        if wl.size == bands:
            nm, fwhm_nm, unit = wavelengths_to_nm(
                wl, env.get("wavelength_units"), path.name, report, fwhm
            )
            meta.update(wavelengths=nm, fwhm=fwhm_nm, wavelength_units=unit)
    if "band_names" in env:
        names = split_list(env["band_names"], keep_empty=True)
        if len(names) == bands and names != _default_band_names(bands):
            meta["band_names"] = tuple(names)
        elif len(names) != bands:
            note(report, f"{path.name}: ignored {len(names)} band names for {bands} bands")
    extra = {
        f"envi:{key}": value for key, value in env.items() if key not in _ENVI_OWN_FIELDS
    }
    if env.get("interleave"):
        extra["envi:interleave"] = env["interleave"].strip().lower()
    if env.get("description"):
        extra["envi:description"] = env["description"].strip().strip("{}").strip()
    meta["extra"] = extra
    return meta


def _default_band_names(bands: int) -> list[str]:
    return [f"Band {k + 1}" for k in range(bands)]


def _band_metadata(ds: Any, path: Path, report: Report | None) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    tags = [ds.tags(b) for b in ds.indexes]
    imagery = [ds.tags(b, ns="IMAGERY") for b in ds.indexes]
    try:
        if all("wavelength" in t for t in tags):
            meta.update(_from_band_items(tags, ds.tags(), path, report))
        elif all("CENTRAL_WAVELENGTH_UM" in t for t in imagery):
            wl = np.array([float(t["CENTRAL_WAVELENGTH_UM"]) for t in imagery])
            fwhm = (np.array([float(t["FWHM_UM"]) for t in imagery])
                    if all("FWHM_UM" in t for t in imagery) else None)
            nm, fwhm_nm, unit = wavelengths_to_nm(wl, "um", path.name, report, fwhm)
            meta.update(wavelengths=nm, fwhm=fwhm_nm, wavelength_units=unit)
    except ValueError:
        note(report, f"{path.name}: ignored band wavelengths that are not numbers")
        meta.clear()
    descriptions = [d or "" for d in ds.descriptions]
    if any(descriptions):
        meta["band_names"] = tuple(descriptions)
    return meta


def _from_band_items(
    tags: list[dict[str, str]], dataset_tags: dict[str, str], path: Path, report: Report | None
) -> dict[str, Any]:
    units = {t.get("wavelength_units") or dataset_tags.get("wavelength_units") for t in tags}
    if len(units) > 1:
        note(report, f"{path.name}: ignored band wavelengths given in mixed units")
        return {}
    wl = np.array([float(t["wavelength"]) for t in tags])
    fwhm = (np.array([float(t["fwhm"]) for t in tags])
            if all("fwhm" in t for t in tags) else None)
    nm, fwhm_nm, unit = wavelengths_to_nm(wl, units.pop(), path.name, report, fwhm)
    return {"wavelengths": nm, "fwhm": fwhm_nm, "wavelength_units": unit}


# -- writing ----------------------------------------------------------------------------------
def _fmt(values: np.ndarray) -> list[str]:
    return [f"{float(v):.12g}" for v in values]


def _write_unit(cube: Cube) -> str:
    """The unit the source used when hsz can convert to it; ENVI's own "Nanometers" else."""
    unit = cube.wavelength_units
    return unit if unit and unit_scale(unit) is not None else "Nanometers"


def _representable(value: float, dtype: np.dtype) -> bool:
    if dtype.kind == "f":
        return True
    info = np.iinfo(dtype)
    return float(value).is_integer() and info.min <= value <= info.max


def _base_profile(cube: Cube, driver: str) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "driver": driver, "width": cube.width, "height": cube.height, "count": cube.bands,
        "dtype": cube.dtype.name,
    }
    if cube.crs:
        try:
            profile["crs"] = CRS.from_wkt(cube.crs)
        except CRSError as exc:
            raise WriteError(f"the cube's CRS cannot be written: {_one_line(exc)}") from None
    if cube.transform is not None:
        profile["transform"] = Affine(*cube.transform)
    # A nodata value the sample type cannot hold marks no sample; GDAL would refuse it.
    if cube.nodata is not None and _representable(cube.nodata, cube.dtype):
        profile["nodata"] = cube.nodata
    return profile


def _envi_interleave(cube: Cube) -> str:
    value = cube.extra.get("envi:interleave", "bsq").lower()
    return value if value in ("bsq", "bil", "bip") else "bsq"


def _write_samples(ds: Any, cube: Cube, blocks: Blocks | None) -> None:
    if blocks is None:
        ds.write(cube.data)
        return
    for w, block in blocks:
        ds.write(block, window=RioWindow(w.col, w.row, w.width, w.height))


def write_envi(cube: Cube, path: Path, overwrite: bool = False,
               blocks: Blocks | None = None) -> list[Path]:
    """Write a data file and its .hdr; the source's interleave is kept when it was ENVI.

    With ``blocks``, the samples come from them (``cube`` gives shape and metadata only).
    """
    if cube.dtype.name == "int8":
        raise WriteError(
            f"cannot write {path}: ENVI has no signed 8-bit sample type; "
            "write GeoTIFF (.tif) or .npy instead"
        )
    data_path, hdr_path = envi_targets(path)
    profile = _base_profile(cube, "ENVI")
    profile.update(interleave=_envi_interleave(cube), suffix="REPLACE")
    with atomic_outputs([data_path, hdr_path], overwrite) as (tmp_data, tmp_hdr):
        gdal_hdr = tmp_data.with_suffix(".hdr")  # where SUFFIX=REPLACE puts it
        try:
            with _gdal_env(writing=True), rasterio.open(tmp_data, "w", **profile) as ds:
                _write_samples(ds, cube, blocks)
                ds.update_tags(ns="ENVI", **_envi_tags(cube))
                _set_descriptions(ds, cube, strip=",{}")
            _set_envi_description(gdal_hdr, cube.extra.get("envi:description") or
                                  "written by hsz")
            gdal_hdr.replace(tmp_hdr)
        except (RasterioError, OSError, ValueError) as exc:
            raise WriteError(f"cannot write {path}: {_one_line(exc)}") from None
        finally:
            gdal_hdr.unlink(missing_ok=True)
    return [data_path, hdr_path]


def _envi_tags(cube: Cube) -> dict[str, str]:
    tags = {
        key[len("envi:"):]: value for key, value in cube.extra.items()
        if key.startswith("envi:") and key[len("envi:"):] not in _ENVI_OWN_FIELDS
    }
    unit = _write_unit(cube)
    if cube.wavelengths is not None:
        tags["wavelength"] = "{" + ",".join(_fmt(from_nm(cube.wavelengths, unit))) + "}"
    if cube.fwhm is not None:
        tags["fwhm"] = "{" + ",".join(_fmt(from_nm(cube.fwhm, unit))) + "}"
    if cube.wavelengths is not None or cube.fwhm is not None:
        tags["wavelength_units"] = unit
    return tags


def _set_descriptions(ds: Any, cube: Cube, strip: str = "") -> None:
    """Band names as descriptions; ENVI lists cannot hold ',' '{' '}' so those become ';'."""
    if cube.band_names is None:
        return
    table = str.maketrans({c: ";" for c in strip})
    for k, name in enumerate(cube.band_names, start=1):
        ds.set_band_description(k, name.translate(table))


def _set_envi_description(hdr: Path, text: str) -> None:
    """GDAL writes the (temporary) file name as the description; put the real one there."""
    clean = text.replace("{", "(").replace("}", ")")
    content = hdr.read_text(encoding="latin-1")
    content = re.sub(r"description = \{.*?\}", lambda _: "description = {\n" + clean + "}",
                     content, count=1, flags=re.S)
    hdr.write_text(content, encoding="latin-1")


def write_gtiff(cube: Cube, path: Path, overwrite: bool = False,
                blocks: Blocks | None = None) -> list[Path]:
    """Tiled, band-interleaved, deflate-compressed GeoTIFF: lossless and quick to subset.

    Band interleave keeps each tile to one band (a pixel-interleaved 256×256 tile of a
    200-band cube would be 26 MB); the horizontal/floating-point predictor roughly halves
    deflate's output on smooth imagery.  BIGTIFF=IF_SAFER switches to BigTIFF only when the
    file might pass 4 GB.
    """
    profile = _base_profile(cube, "GTiff")
    profile.update(
        tiled=True, blockxsize=_GTIFF_BLOCK, blockysize=_GTIFF_BLOCK, compress="deflate",
        predictor=3 if cube.dtype.kind == "f" else 2, zlevel=6, bigtiff="IF_SAFER",
        interleave="band",
    )
    with atomic_outputs([path], overwrite) as (tmp,):
        try:
            with _gdal_env(writing=True), rasterio.open(tmp, "w", **profile) as ds:
                _write_samples(ds, cube, blocks)
                _write_band_spectra(ds, cube)
                _set_descriptions(ds, cube)
        except (RasterioError, OSError, ValueError) as exc:
            raise WriteError(f"cannot write {path}: {_one_line(exc)}") from None
    return [path]


def _write_band_spectra(ds: Any, cube: Cube) -> None:
    unit = _write_unit(cube)
    wl = None if cube.wavelengths is None else _fmt(from_nm(cube.wavelengths, unit))
    fwhm = None if cube.fwhm is None else _fmt(from_nm(cube.fwhm, unit))
    wl_um = None if cube.wavelengths is None else _fmt(cube.wavelengths / 1000.0)
    fwhm_um = None if cube.fwhm is None else _fmt(cube.fwhm / 1000.0)
    for k in range(cube.bands):
        items: dict[str, str] = {}
        imagery: dict[str, str] = {}
        if wl is not None and wl_um is not None:
            items.update(wavelength=wl[k], wavelength_units=unit)
            imagery["CENTRAL_WAVELENGTH_UM"] = wl_um[k]
        if fwhm is not None and fwhm_um is not None:
            items.update(fwhm=fwhm[k], wavelength_units=unit)
            imagery["FWHM_UM"] = fwhm_um[k]
        if items:
            ds.update_tags(k + 1, **items)
        if imagery:
            ds.update_tags(k + 1, ns="IMAGERY", **imagery)
