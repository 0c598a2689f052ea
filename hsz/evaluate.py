"""What a decoded cube lost against its original: the figures ``hsz eval`` and benchmarks print.

Every number comes from :mod:`hsz.metrics`, so ``hsz eval``, encode summaries, tests and the
rate-distortion benchmark can never disagree on what "PSNR" means.  This module only decides
*which* pixels count (nodata is left out, as everywhere in hsz), checks that the two cubes can
be compared at all, and adds the per-band view a single mean hides: on real scenes one noisy
band (Indian Pines' 400 nm band, a water-absorption band) can sit 20 dB below the rest.

No torch here: evaluating a decoded GeoTIFF must not pay for the network's import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hsz import metrics
from hsz.cube import Cube, band_names_or_default
from hsz.errors import UsageError

#: How many of the worst bands a report lists.
WORST_BANDS = 5

#: Wavelengths closer than this (nm) are the same band; files round them differently.
WAVELENGTH_TOLERANCE_NM = 0.01


def is_hsz(path: str | Path) -> bool:
    """True when ``path`` is (or claims to be) a .hsz file: by extension or by signature.

    The signature check lets a renamed file be evaluated; it reads eight bytes only.
    """
    p = Path(path)
    if p.suffix.lower() == ".hsz":
        return True
    from hsz.codec.container import SIGNATURE

    try:
        with open(p, "rb") as fh:
            return fh.read(len(SIGNATURE)) == SIGNATURE
    except OSError:
        return False


def check_comparable(original: Cube, decoded: Cube) -> None:
    """Refuse, with a message that says why, a pair whose samples do not line up.

    Comparing band k with band k is only meaningful when both cubes hold the same bands on the
    same pixel grid; a cube decoded at other wavelengths must be compared with a reference at
    those wavelengths, not silently against the wrong bands.
    """
    if original.shape[1:] != decoded.shape[1:]:
        raise UsageError(
            f"the cubes cover different pixels: original {original.height} x {original.width}, "
            f"decoded {decoded.height} x {decoded.width} (rows x cols)"
        )
    if original.bands != decoded.bands:
        raise UsageError(
            f"the cubes have different band counts: original {original.bands}, decoded "
            f"{decoded.bands}; decode at the original's own bands to compare them"
        )
    if original.wavelengths is not None and decoded.wavelengths is not None:
        gap = np.abs(original.wavelengths - decoded.wavelengths)
        if float(gap.max()) > WAVELENGTH_TOLERANCE_NM:
            k = int(np.argmax(gap))
            raise UsageError(
                f"the cubes hold different wavelengths (band {k + 1}: original "
                f"{original.wavelengths[k]:g} nm, decoded {decoded.wavelengths[k]:g} nm); "
                "compare cubes at the same bands"
            )


def band_label(cube: Cube, k: int) -> dict[str, Any]:
    """One band as a report names it: 1-based number (as GDAL and ENVI), name, wavelength."""
    entry: dict[str, Any] = {"band": k + 1, "name": band_names_or_default(cube)[k]}
    if cube.wavelengths is not None:
        entry["wavelength_nm"] = float(cube.wavelengths[k])
    return entry


def compare(original: Cube, decoded: Cube, *, file_bytes: int | None = None) -> dict[str, Any]:
    """Quality of ``decoded`` against ``original`` (and the rate, when ``file_bytes`` is known).

    Pixels that are nodata in the *original* are left out of every figure: their decoded value
    is whatever the codec filled in and says nothing about quality.  Returns a JSON-ready dict::

        shape, valid_pixels, psnr_band_mean, psnr_global, sam_deg, max_abs_error,
        band_psnr: {mean, min, median, worst: [{band, name, wavelength_nm?, psnr}, ...]},
        bytes, bpppb, compression_ratio      (only with file_bytes)
    """
    check_comparable(original, decoded)
    mask = original.valid_mask()
    valid = original.height * original.width if mask is None else int(mask.sum())
    if valid == 0:
        raise UsageError("every pixel of the original is nodata; there is nothing to compare")
    a, b = original.data, decoded.data
    per_band = metrics.per_band_psnr(a, b, mask)
    order = np.argsort(per_band, kind="stable")[:WORST_BANDS]
    worst = [{**band_label(original, int(k)), "psnr": float(per_band[k])} for k in order]
    report: dict[str, Any] = {
        "shape": list(original.shape),
        "valid_pixels": valid,
        "psnr_band_mean": metrics.psnr_band_mean(a, b, mask),
        "psnr_global": metrics.psnr_global(a, b, mask),
        "sam_deg": metrics.sam_deg(a, b, mask),
        "max_abs_error": metrics.max_abs_error(a, b, mask),
        "band_psnr": {
            "mean": float(np.mean(per_band)),
            "min": float(np.min(per_band)),
            "median": float(np.median(per_band)),
            "worst": worst,
        },
    }
    if file_bytes is not None:
        if file_bytes <= 0:
            raise UsageError(f"file_bytes must be positive, got {file_bytes}")
        report["bytes"] = int(file_bytes)
        report["bpppb"] = metrics.bpppb(file_bytes, original.shape)
        report["compression_ratio"] = metrics.compression_ratio(
            file_bytes, original.shape, original.bits_per_sample
        )
    return report
