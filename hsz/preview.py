"""Quick-look pictures of a cube, and of where a decoded cube went wrong.

A quick look answers "is this the scene I think it is, and does the decoded one look right?"
before anyone opens a GIS.  Three bands nearest 640/550/470 nm make a true-colour image (any
three wavelengths a false-colour one, e.g. 860,650,550 for vegetation in red); each channel is
stretched between its own 2nd and 98th percentiles, because raw radiance or reflectance spans
a few percent of the sample type and a min-max stretch is ruled by a few hot pixels.  Nodata
is black so it is never mistaken for dark ground.

With a reference cube, the picture adds two maps beside the colour image: per-pixel RMSE over
the bands (data units) and the spectral angle (degrees, via :func:`hsz.metrics.sam_map`), each
with a colour scale and its end values, so that errors concentrated on edges, bright targets
or one corner of the scene are visible at a glance where a mean PSNR hides them.

PNGs are written through GDAL's PNG driver (rasterio is already a core dependency), and labels
are drawn with a tiny built-in bitmap font, so quick looks need nothing beyond hsz's own
dependencies.  No torch import here.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hsz import metrics
from hsz.cube import Cube
from hsz.errors import UsageError

#: Wavelengths (nm) of a true-colour picture: red, green, blue.
TRUE_COLOUR_NM = (640.0, 550.0, 470.0)

#: Percentiles of the robust stretch.
STRETCH_PERCENTILES = (2.0, 98.0)

#: Error maps are scaled from 0 to this percentile of their valid values (a few outliers would
#: otherwise turn the whole map dark).
ERROR_PERCENTILE = 99.0

#: An error picture is upscaled (nearest neighbour) until its maps are at least this tall, so
#: that a 31 x 43 lab cube still gives a picture whose labels can be read.
MIN_PANEL_HEIGHT = 128

_BACKGROUND = 255
_INK = 0
_GAP = 10
_MARGIN = 6
_BAR_WIDTH = 12

# Viridis, sampled at nine points: perceptually ordered and readable by colour-blind people.
_CMAP_ANCHORS = np.array([
    (68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141),
    (39, 173, 129), (92, 200, 99), (170, 220, 50), (253, 231, 37),
], dtype=np.float64)

# A 5 x 7 bitmap font: just the characters titles and scale labels use.
_GLYPHS: dict[str, tuple[str, ...]] = {
    "0": (" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "),
    "1": ("  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "),
    "2": (" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"),
    "3": ("#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "),
    "4": ("   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "),
    "5": ("#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "),
    "6": ("  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "),
    "7": ("#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "),
    "8": (" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "),
    "9": (" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "),
    ".": ("     ", "     ", "     ", "     ", "     ", " ##  ", " ##  "),
    "-": ("     ", "     ", "     ", "#####", "     ", "     ", "     "),
    "+": ("     ", "  #  ", "  #  ", "#####", "  #  ", "  #  ", "     "),
    "/": ("     ", "    #", "   # ", "  #  ", " #   ", "#    ", "     "),
    ":": ("     ", " ##  ", " ##  ", "     ", " ##  ", " ##  ", "     "),
    "A": (" ### ", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"),
    "B": ("#### ", "#   #", "#   #", "#### ", "#   #", "#   #", "#### "),
    "D": ("#### ", "#   #", "#   #", "#   #", "#   #", "#   #", "#### "),
    "E": ("#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#####"),
    "G": (" ### ", "#   #", "#    ", "# ###", "#   #", "#   #", " ####"),
    "I": (" ### ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "),
    "M": ("#   #", "## ##", "# # #", "# # #", "#   #", "#   #", "#   #"),
    "N": ("#   #", "##  #", "# # #", "#  ##", "#   #", "#   #", "#   #"),
    "R": ("#### ", "#   #", "#   #", "#### ", "# #  ", "#  # ", "#   #"),
    "S": (" ####", "#    ", "#    ", " ### ", "    #", "    #", "#### "),
}
_GLYPH_W, _GLYPH_H = 5, 7


# -- choosing and stretching bands ----------------------------------------------------------------


@dataclass(frozen=True)
class RgbChoice:
    """The three bands (0-based) shown as red, green, blue, and how they were chosen."""

    bands: tuple[int, int, int]
    wavelengths: tuple[float, float, float] | None
    rule: str  # "wavelength", "band number" or "spread" (no wavelengths to go by)
    note: str | None = None


def _spread_bands(count: int) -> tuple[int, int, int]:
    """Three bands spread over the axis, longest wavelength (last) as red.

    Without wavelengths nothing is known about the spectrum; bands at 3/4, 1/2 and 1/4 of the
    axis at least show three different parts of it, in the usual red = long order.
    """
    if count < 3:
        return (count - 1, count // 2, 0)
    return tuple(int(round(f * (count - 1))) for f in (0.75, 0.5, 0.25))  # type: ignore[return-value]


def choose_rgb(cube: Cube, wavelengths: Sequence[float] | None = None) -> RgbChoice:
    """Pick the bands of a quick look.

    With wavelengths in the cube: the bands nearest ``wavelengths`` (default 640/550/470 nm).
    Without: ``wavelengths`` are read as 1-based band numbers (the only meaning they can have),
    and by default three bands spread over the axis are used.
    """
    if wavelengths is not None:
        wanted = [float(v) for v in wavelengths]
        if len(wanted) != 3:
            raise UsageError(f"the colour choice needs three values (red, green, blue); "
                             f"got {len(wanted)}", option="rgb")
    if cube.wavelengths is None:
        if wavelengths is None:
            return RgbChoice(_spread_bands(cube.bands), None, "spread",
                             "the cube has no wavelengths: bands spread over the axis")
        if not all(v.is_integer() and 1 <= v <= cube.bands for v in wanted):
            raise UsageError(
                f"the cube has no wavelengths, so the colour choice must be three band numbers "
                f"from 1 to {cube.bands}; got {','.join(f'{v:g}' for v in wanted)}",
                option="rgb",
            )
        picked = tuple(int(v) - 1 for v in wanted)
        return RgbChoice(picked, None, "band number")  # type: ignore[arg-type]
    wl = cube.wavelengths
    targets = TRUE_COLOUR_NM if wavelengths is None else tuple(wanted)
    picked = tuple(int(np.argmin(np.abs(wl - t))) for t in targets)
    if wavelengths is None and len(set(picked)) < 2:
        # A sensor that does not see the visible (e.g. SWIR only): nearest-to-visible would
        # give one grey band; show three different parts of its own range instead.
        picked = _spread_bands(cube.bands)
        return RgbChoice(picked, tuple(float(wl[k]) for k in picked), "spread",  # type: ignore[arg-type]
                         f"no visible bands ({wl.min():g}-{wl.max():g} nm): bands spread over "
                         "the range")
    off = max(abs(float(wl[k]) - t) for k, t in zip(picked, targets, strict=True))
    note = None
    if off > 25.0:
        note = f"the nearest bands are up to {off:.0f} nm from the wavelengths asked for"
    return RgbChoice(picked, tuple(float(wl[k]) for k in picked), "wavelength", note)  # type: ignore[arg-type]


def stretch(band: np.ndarray, valid: np.ndarray | None = None,
            percentiles: tuple[float, float] = STRETCH_PERCENTILES) -> np.ndarray:
    """Map a band to uint8 between its own low and high percentiles (valid pixels only).

    Falls back to min-max when the percentiles coincide (a mostly constant band), and to
    black for a constant band, instead of dividing by zero.
    """
    x = np.asarray(band, dtype=np.float64)
    use = np.isfinite(x) if valid is None else (valid & np.isfinite(x))
    out = np.zeros(x.shape, dtype=np.uint8)
    if not use.any():
        return out
    vals = x[use]
    lo, hi = (float(v) for v in np.percentile(vals, percentiles))
    if hi <= lo:
        lo, hi = float(vals.min()), float(vals.max())
    if hi <= lo:
        return out
    scaled = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    out[use] = np.round(scaled[use] * 255.0).astype(np.uint8)
    return out


def rgb_image(cube: Cube, wavelengths: Sequence[float] | None = None
              ) -> tuple[np.ndarray, RgbChoice]:
    """The (rows, cols, 3) uint8 colour image of a cube, nodata black."""
    choice = choose_rgb(cube, wavelengths)
    valid = _valid(cube)
    img = np.stack([stretch(cube.data[k], valid) for k in choice.bands], axis=-1)
    if valid is not None:
        img[~valid] = 0
    return img, choice


def _valid(cube: Cube) -> np.ndarray | None:
    mask = cube.valid_mask()
    if cube.data.dtype.kind == "f":
        finite = np.all(np.isfinite(cube.data), axis=0)
        mask = finite if mask is None else (mask & finite)
    return mask


# -- error maps ---------------------------------------------------------------------------------


def error_maps(reference: Cube, decoded: Cube) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Per-pixel RMSE over the bands (data units) and SAM (degrees); nodata of the reference."""
    from hsz.evaluate import check_comparable

    check_comparable(reference, decoded)
    se = np.zeros(reference.shape[1:], dtype=np.float64)
    for k in range(reference.bands):
        d = reference.data[k].astype(np.float64) - decoded.data[k].astype(np.float64)
        se += d * d
    rmse = np.sqrt(se / reference.bands)
    sam = metrics.sam_map(reference.data, decoded.data)
    return rmse, sam, reference.valid_mask()


def colormap(values: np.ndarray, vmax: float, valid: np.ndarray | None = None) -> np.ndarray:
    """Colour a non-negative map from 0 to ``vmax`` (viridis); invalid pixels black."""
    v = np.asarray(values, dtype=np.float64)
    t = np.clip(v / vmax, 0.0, 1.0) if vmax > 0 else np.zeros_like(v)
    t = np.where(np.isfinite(t), t, 0.0)
    pos = t * (len(_CMAP_ANCHORS) - 1)
    i = np.minimum(np.floor(pos).astype(int), len(_CMAP_ANCHORS) - 2)
    f = (pos - i)[..., None]
    rgb = _CMAP_ANCHORS[i] * (1.0 - f) + _CMAP_ANCHORS[i + 1] * f
    out = np.round(rgb).astype(np.uint8)
    if valid is not None:
        out[~valid] = 0
    return out


def robust_max(values: np.ndarray, valid: np.ndarray | None = None) -> float:
    """The top of an error map's scale: its 99th percentile, or its max when that is 0."""
    v = values if valid is None else values[valid]
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 1.0
    top = float(np.percentile(v, ERROR_PERCENTILE))
    if top <= 0.0:
        top = float(v.max())
    return top if top > 0.0 else 1.0


# -- drawing ------------------------------------------------------------------------------------


def text_size(text: str, scale: int = 1) -> tuple[int, int]:
    """(height, width) in pixels of ``text`` in the built-in font."""
    if not text:
        return (0, 0)
    return (_GLYPH_H * scale, (len(text) * (_GLYPH_W + 1) - 1) * scale)


def draw_text(canvas: np.ndarray, text: str, row: int, col: int, scale: int = 1,
              color: int = _INK) -> None:
    """Draw ``text`` (upper-cased; characters the font lacks are blank) clipped to the canvas."""
    h, w = canvas.shape[:2]
    x = col
    for ch in text.upper():
        glyph = _GLYPHS.get(ch)
        if glyph is not None:
            for gy, line in enumerate(glyph):
                for gx, cell in enumerate(line):
                    if cell != "#":
                        continue
                    r0, c0 = row + gy * scale, x + gx * scale
                    r1, c1 = min(r0 + scale, h), min(c0 + scale, w)
                    if r0 >= 0 and c0 >= 0 and r1 > r0 and c1 > c0:
                        canvas[r0:r1, c0:c1] = color
        x += (_GLYPH_W + 1) * scale


def _label(value: float) -> str:
    return f"{value:.3g}".upper()


@dataclass
class _Panel:
    image: np.ndarray  # (h, w, 3) uint8
    title: str
    vmax: float | None = None  # a colour bar from 0 to vmax when set


def _panel_width(p: _Panel, ts: int) -> int:
    w = p.image.shape[1]
    if p.vmax is not None:
        label_w = max(text_size(_label(p.vmax), ts)[1], text_size("0", ts)[1])
        w += 4 + _BAR_WIDTH + 3 + label_w
    return max(w, text_size(p.title, ts)[1])


def compose(panels: list[_Panel]) -> np.ndarray:
    """Lay panels out side by side with titles above and colour bars beside the maps."""
    img_h = max(p.image.shape[0] for p in panels)
    ts = 2 if img_h >= 256 else 1
    title_h = text_size("A", ts)[0]
    widths = [_panel_width(p, ts) for p in panels]
    height = _MARGIN + title_h + 4 + img_h + _MARGIN
    width = _MARGIN * 2 + sum(widths) + _GAP * (len(panels) - 1)
    canvas = np.full((height, width, 3), _BACKGROUND, dtype=np.uint8)
    x = _MARGIN
    top = _MARGIN + title_h + 4
    for p, pw in zip(panels, widths, strict=True):
        h, w = p.image.shape[:2]
        draw_text(canvas, p.title, _MARGIN, x, ts)
        canvas[top:top + h, x:x + w] = p.image
        if p.vmax is not None:
            bx = x + w + 4
            ramp = np.linspace(1.0, 0.0, h)[:, None] * np.ones((1, _BAR_WIDTH))
            canvas[top:top + h, bx:bx + _BAR_WIDTH] = colormap(ramp, 1.0)
            lx = bx + _BAR_WIDTH + 3
            draw_text(canvas, _label(p.vmax), top, lx, ts)
            draw_text(canvas, "0", top + h - title_h, lx, ts)
        x += pw + _GAP
    return canvas


def _upscale(img: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return img
    return np.repeat(np.repeat(img, factor, axis=0), factor, axis=1)


def _rgb_title(choice: RgbChoice) -> str:
    if choice.wavelengths is not None:
        return "RGB " + "/".join(f"{w:.0f}" for w in choice.wavelengths) + " NM"
    return "BANDS " + "/".join(str(k + 1) for k in choice.bands)


def render(cube: Cube, *, rgb: Sequence[float] | None = None,
           reference: Cube | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """The quick-look image (H, W, 3) uint8 and a description of what it shows.

    Without ``reference`` the image is exactly the cube's rows x cols: one pixel per pixel.
    With it, the colour image of ``cube``, its RMSE map and its SAM map against ``reference``
    stand side by side (upscaled to at least :data:`MIN_PANEL_HEIGHT` rows), titled, with
    colour scales from 0 to the 99th percentile of each map.
    """
    img, choice = rgb_image(cube, rgb)
    info: dict[str, Any] = {
        "rgb_rule": choice.rule,
        "rgb_bands": [k + 1 for k in choice.bands],
    }
    if choice.wavelengths is not None:
        info["rgb_wavelengths_nm"] = list(choice.wavelengths)
    if choice.note:
        info["note"] = choice.note
    if reference is None:
        info["size"] = [int(img.shape[1]), int(img.shape[0])]
        return img, info
    rmse, sam, valid = error_maps(reference, cube)
    rmse_top, sam_top = robust_max(rmse, valid), robust_max(sam, valid)
    factor = max(1, math.ceil(MIN_PANEL_HEIGHT / cube.height))
    panels = [
        _Panel(_upscale(img, factor), _rgb_title(choice)),
        _Panel(_upscale(colormap(rmse, rmse_top, valid), factor), "RMSE", rmse_top),
        _Panel(_upscale(colormap(sam, sam_top, valid), factor), "SAM DEG", sam_top),
    ]
    out = compose(panels)
    use = np.ones(rmse.shape, dtype=bool) if valid is None else valid
    info.update({
        "upscale": factor,
        "rmse_mean": float(np.mean(rmse[use])),
        "rmse_p99": rmse_top,
        "sam_mean_deg": float(np.mean(sam[use])),
        "sam_p99_deg": sam_top,
        "size": [int(out.shape[1]), int(out.shape[0])],
    })
    return out, info


# -- writing ------------------------------------------------------------------------------------


def write_png(image: np.ndarray, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write an (H, W, 3) or (H, W) uint8 image as PNG, atomically, through GDAL's PNG driver.

    GDAL's auxiliary ``.aux.xml`` files are switched off: a quick look is one file.
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    from hsz.fsutil import atomic_outputs

    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W[, 3]) uint8 image, got {arr.dtype} {arr.shape}")
    bands = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
    target = Path(path)
    with atomic_outputs([target], overwrite) as (tmp,):
        with rasterio.Env(GDAL_PAM_ENABLED="NO"), warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(
                tmp, "w", driver="PNG", width=bands.shape[2], height=bands.shape[1],
                count=bands.shape[0], dtype="uint8",
            ) as ds:
                ds.write(np.ascontiguousarray(bands))
    return target


def preview(cube: Cube, path: str | Path, *, rgb: Sequence[float] | None = None,
            reference: Cube | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Render and write a quick look; returns what :func:`render` says it shows, plus the path."""
    image, info = render(cube, rgb=rgb, reference=reference)
    written = write_png(image, path, overwrite=overwrite)
    return {"output": str(written), **info}
