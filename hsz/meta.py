"""The JSON metadata a ``.hsz`` file carries about its cube, and the way back to a ``Cube``.

The keys are documented in SPEC.md ("Metadata keys"); this module is the only code that
writes or reads them, so the spec and the code have one place to agree.  No torch here:
``hsz info`` reads metadata without loading the model code.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hsz.cube import SUPPORTED_DTYPES, Cube
from hsz.errors import FormatError

#: Keys a metadata object must have for this build to decode the file.
REQUIRED_KEYS = ("shape", "dtype", "model", "coords")


def _float_or_str(value: float | None) -> float | str | None:
    if value is None:
        return None
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return float(value)


def _float_from(value: Any, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        if value in ("nan", "inf", "-inf"):
            return float(value)
        raise FormatError(f"metadata key {key!r} holds {value!r}, not a number")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise FormatError(f"metadata key {key!r} must be a number")


def cube_meta(cube: Cube) -> dict[str, Any]:
    """What the file records about the source cube (everything but the samples)."""
    data_min = float(np.nanmin(cube.data)) if cube.data.size else 0.0
    data_max = float(np.nanmax(cube.data)) if cube.data.size else 0.0
    return {
        "shape": [cube.bands, cube.height, cube.width],
        "dtype": cube.dtype.name,
        "value_range": [data_min, data_max],
        "wavelengths": None if cube.wavelengths is None else [float(v) for v in cube.wavelengths],
        "fwhm": None if cube.fwhm is None else [float(v) for v in cube.fwhm],
        "wavelength_units": cube.wavelength_units,
        "band_names": None if cube.band_names is None else list(cube.band_names),
        "nodata": _float_or_str(cube.nodata),
        "crs": cube.crs,
        "transform": None if cube.transform is None else list(cube.transform),
        "source_format": cube.source_format,
    }


def _vector(meta: dict[str, Any], key: str, count: int) -> np.ndarray | None:
    value = meta.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != count:
        raise FormatError(f"metadata key {key!r} must be a list of {count} numbers")
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise FormatError(f"metadata key {key!r} must hold numbers") from None
    if not np.all(np.isfinite(arr)):
        raise FormatError(f"metadata key {key!r} holds non-finite numbers")
    return arr


def check_meta(meta: Any) -> tuple[int, int, int]:
    """Validate the keys decoding relies on; return the shape (bands, rows, cols)."""
    if not isinstance(meta, dict):
        raise FormatError("the metadata section is not a JSON object")
    for key in REQUIRED_KEYS:
        if key not in meta:
            raise FormatError(f"the metadata section lacks the required key {key!r}")
    shape = meta["shape"]
    if (
        not isinstance(shape, list)
        or len(shape) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1 << 20
                   for v in shape)
    ):
        raise FormatError(f"metadata shape {shape!r} is not three positive sizes")
    if meta["dtype"] not in SUPPORTED_DTYPES:
        raise FormatError(f"metadata dtype {meta['dtype']!r} is not one hsz knows")
    return int(shape[0]), int(shape[1]), int(shape[2])


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shown(value: Any, limit: int = 40) -> str:
    """A value as JSON-ish text, cut short: warnings quote what the file holds."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _list_problem(meta: dict[str, Any], key: str, bands: int, numbers: bool) -> str | None:
    value = meta.get(key)
    if value is None:
        return None
    what = "numbers" if numbers else "strings"
    if not isinstance(value, list):
        return f"{key} is {_shown(value)}, not a list of {what}"
    if numbers and not all(_is_number(v) and math.isfinite(v) for v in value):
        return f"{key} holds entries that are not finite numbers"
    if not numbers and not all(isinstance(v, str) for v in value):
        return f"{key} holds entries that are not strings"
    if len(value) != bands:
        return f"{key} has {len(value)} entries for {bands} bands"
    return None


def header_warnings(meta: dict[str, Any], raw: list[dict[str, Any]] | None = None) -> list[str]:
    """Each way the parts of a file's header disagree with one another, as one sentence.

    ``hsz info`` shows a header as it is; without these a wavelength list one short of
    the band count, say, would be printed as if it described the bands.  Decoding refuses
    most such files, so saying it up front spares a user the attempt.  ``raw`` is the
    list of raw arrays (name, dtype, shape) that :func:`hsz.codec.describe` reports.
    ``check_meta`` must have accepted the shape and dtype already.
    """
    bands, rows, cols = check_meta(meta)
    out = [p for p in (_list_problem(meta, "wavelengths", bands, True),
                       _list_problem(meta, "fwhm", bands, True),
                       _list_problem(meta, "band_names", bands, False)) if p]
    transform = meta.get("transform")
    if transform is not None and not (isinstance(transform, list) and len(transform) == 6
                                      and all(_is_number(v) for v in transform)):
        out.append(f"transform is {_shown(transform)}, not 6 numbers")
    vr = meta.get("value_range")
    if vr is not None and not (isinstance(vr, list) and len(vr) == 2
                               and all(_is_number(v) for v in vr) and vr[0] <= vr[1]):
        out.append(f"value_range is {_shown(vr)}, not a minimum and a maximum")
    nodata = meta.get("nodata")
    if nodata is not None and not _is_number(nodata) and nodata not in ("nan", "inf", "-inf"):
        out.append(f"nodata is {_shown(nodata)}, not a number")
    for key in ("crs", "wavelength_units"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            out.append(f"{key} is {_shown(meta[key])}, not a string")
    out += _coords_warnings(meta, bands)
    model = meta.get("model")
    config = model.get("config") if isinstance(model, dict) else None
    if isinstance(config, dict):
        for key, actual in (("bands", bands), ("height", rows), ("width", cols)):
            if key in config and config[key] != actual:
                out.append(f"the model is configured for {key} {_shown(config[key])} but the "
                           f"cube has {actual}")
    for entry in raw or []:
        if entry.get("name") in ("band_low", "band_high") and entry.get("shape") != [bands]:
            out.append(f"raw array {entry['name']} has shape {entry.get('shape')}, not "
                       f"[{bands}] (one value per band)")
    return out


def _coords_warnings(meta: dict[str, Any], bands: int) -> list[str]:
    """Whether ``coords`` matches the wavelengths it was made from (SPEC: Metadata keys)."""
    coords = meta["coords"]
    rng = coords.get("range") if isinstance(coords, dict) else None
    if not (isinstance(rng, list) and len(rng) == 2 and all(_is_number(v) for v in rng)):
        return [f"coords is {_shown(coords)}, not a rule and a range of 2 numbers"]
    rule, wl = coords.get("rule"), meta.get("wavelengths")
    if rule == "index":
        expected = [0, max(bands - 1, 1)]
    elif rule == "wavelength":
        if not wl:
            return ["coords places bands by wavelength but the file has no wavelengths"]
        if _list_problem(meta, "wavelengths", bands, True):
            return []  # already said; no range to compare with
        expected = [min(wl), max(wl)]
    else:
        return [f"coords has the unknown rule {_shown(rule)}"]
    close = (math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
             for a, b in zip(rng, expected, strict=True))
    if not all(close):
        basis = "the band indices" if rule == "index" else "the wavelengths"
        return [f"coords range {rng[0]:g}..{rng[1]:g} differs from "
                f"{expected[0]:g}..{expected[1]:g} given by {basis}"]
    return []


def source_wavelengths(meta: dict[str, Any]) -> np.ndarray | None:
    bands = check_meta(meta)[0]
    return _vector(meta, "wavelengths", bands)


def cube_from_meta(
    meta: dict[str, Any],
    data: np.ndarray,
    *,
    wavelengths: np.ndarray | None = None,
    fwhm: np.ndarray | None = None,
    resampled: bool = False,
) -> Cube:
    """Attach the recorded metadata to decoded samples.

    When the cube was decoded at new wavelengths (``resampled``), the source's band names
    and FWHM no longer describe its bands: names are rebuilt from the wavelengths and FWHM
    is whatever the request said (or none).
    """
    bands = check_meta(meta)[0]
    if resampled:
        names = None
        if wavelengths is not None:
            names = tuple(f"{w:g} nm" for w in wavelengths)
    else:
        wavelengths = _vector(meta, "wavelengths", bands)
        fwhm = _vector(meta, "fwhm", bands)
        raw_names = meta.get("band_names")
        if raw_names is not None and (
            not isinstance(raw_names, list)
            or len(raw_names) != bands
            or not all(isinstance(n, str) for n in raw_names)
        ):
            raise FormatError("metadata band_names must be a list of strings, one per band")
        names = tuple(raw_names) if raw_names is not None else None
    transform = meta.get("transform")
    if transform is not None:
        if not isinstance(transform, list) or len(transform) != 6:
            raise FormatError("metadata transform must be a list of six numbers")
        transform = tuple(_float_from(v, "transform") for v in transform)
    crs = meta.get("crs")
    if crs is not None and not isinstance(crs, str):
        raise FormatError("metadata crs must be a WKT string")
    units = meta.get("wavelength_units")
    if units is not None and not isinstance(units, str):
        raise FormatError("metadata wavelength_units must be a string")
    fmt = meta.get("source_format")
    return Cube(
        data=data,
        wavelengths=wavelengths,
        fwhm=fwhm,
        wavelength_units=units,
        band_names=names,
        nodata=_float_from(meta.get("nodata"), "nodata"),
        crs=crs,
        transform=transform,  # type: ignore[arg-type]
        source_format=fmt if isinstance(fmt, str) else None,
    )


#: A number whose JSON text is at least as long as any quality figure recorded.
_WIDEST = -99999999.9999
QUALITY_KEYS = ("psnr_band_mean", "psnr_global", "sam_deg")


def coords_meta(wavelengths: np.ndarray | None, bands: int) -> dict[str, Any]:
    """How band coordinates were made, so a decoder can place any wavelength on the same axis."""
    if wavelengths is None:
        return {"rule": "index", "range": [0.0, float(max(bands - 1, 1))]}
    return {"rule": "wavelength", "range": [float(wavelengths.min()), float(wavelengths.max())]}


def encode_meta(cube: Cube, *, hsz_version: str, preset: str, seed: int) -> dict[str, Any]:
    """The metadata an encode starts from, with placeholders for what the fit decides.

    Quality is only known at the end; placeholders at least as wide as any real figure keep
    the sizes computed before then close to the final file's.  No timing is recorded, so
    the same cube, options and seed give the same file on the same machine.
    """
    return {
        **cube_meta(cube),
        "coords": coords_meta(cube.wavelengths, cube.bands),
        "encoder": {
            "hsz_version": hsz_version, "preset": preset, "seed": int(seed),
            "epochs": 10**7, "device": "cuda:00",
        },
        "quality": dict.fromkeys(QUALITY_KEYS, _WIDEST),
    }


def set_model(meta: dict[str, Any], model_id: str, config: dict[str, Any], *,
              iterations: int, device: str) -> None:
    """Record the fitted model and how it was fitted."""
    meta["model"] = {"id": model_id, "config": config}
    meta["encoder"].update(epochs=int(iterations), device=str(device))


def set_quality(meta: dict[str, Any], quality: dict[str, float]) -> None:
    """Record the decoded file's measured quality (rounded: the figures are for people)."""
    meta["quality"] = {k: round(float(v), 4) for k, v in quality.items()}


def model_entry(meta: dict[str, Any]) -> tuple[str, Any]:
    """The model id and its JSON config; FormatError when the metadata names none."""
    model = meta.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("id"), str):
        raise FormatError("the metadata does not name the model that made this file")
    return model["id"], model.get("config")


def coords_range(meta: dict[str, Any]) -> tuple[str, float, float]:
    """The coordinate rule and the wavelength range it maps to [0, 1]."""
    coords = meta.get("coords")
    if not isinstance(coords, dict) or coords.get("rule") not in ("index", "wavelength"):
        raise FormatError("metadata coords must name the rule 'index' or 'wavelength'")
    rng = coords.get("range")
    if not isinstance(rng, list) or len(rng) != 2:
        raise FormatError("metadata coords range must be two numbers")
    lo = _float_from(rng[0], "coords")
    hi = _float_from(rng[1], "coords")
    assert lo is not None and hi is not None
    return coords["rule"], lo, hi
