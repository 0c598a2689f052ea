"""Quick-look PNGs: band choice, stretch, nodata, error maps, and ``hsz preview``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.errors import NotGeoreferencedWarning

from hsz.cli import cli
from hsz.cube import Cube
from hsz.errors import UsageError
from hsz.preview import choose_rgb, preview, render, stretch, write_png

WL = np.arange(400.0, 1000.0, 20.0)  # 30 bands, 400-980 nm


def _scene(rows: int = 24, cols: int = 18, seed: int = 0) -> np.ndarray:
    """A smooth, band-correlated uint16 cube (bands, rows, cols) with some texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    base = 1000 + 40 * xx + 25 * yy
    bands = [base * (1 + 0.02 * k) + rng.normal(0, 20, base.shape) for k in range(WL.size)]
    return np.clip(np.stack(bands), 0, 65535).astype(np.uint16)


def _read_png(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            assert ds.driver == "PNG"
            return ds.read()  # (bands, rows, cols)


def test_true_colour_bands_are_the_nearest() -> None:
    choice = choose_rgb(Cube(_scene(), wavelengths=WL))
    for k, target in zip(choice.bands, (640, 550, 470), strict=True):
        assert abs(WL[k] - target) == np.abs(WL - target).min()
    assert WL[choice.bands[0]] == 640.0 and choice.rule == "wavelength"
    cir = choose_rgb(Cube(_scene(), wavelengths=WL), [860, 650, 550])
    assert [WL[k] for k in cir.bands][0] == 860.0


def test_band_index_fallback_without_wavelengths() -> None:
    cube = Cube(_scene())
    spread = choose_rgb(cube)
    assert spread.rule == "spread" and spread.bands == (22, 14, 7) and spread.note
    assert choose_rgb(cube, [3, 2, 1]).bands == (2, 1, 0)
    with pytest.raises(UsageError, match="band numbers"):
        choose_rgb(cube, [860, 650, 550])
    with pytest.raises(UsageError, match="three values"):
        choose_rgb(cube, [1, 2])


def test_sensor_without_visible_bands_does_not_give_grey() -> None:
    swir = Cube(_scene(), wavelengths=np.linspace(1000, 2500, WL.size))
    assert len(set(choose_rgb(swir).bands)) == 3


def test_stretch_uses_percentiles_and_survives_constant_bands() -> None:
    band = np.arange(100, dtype=np.float64).reshape(10, 10)
    band[0, 0] = 1e9  # one hot pixel must not darken the rest
    out = stretch(band)
    assert out.dtype == np.uint8
    assert out[0, 0] == 255 and out[9, 9] == 255 and out[0, 1] == 0
    assert 100 < out[5, 0] < 160
    assert not stretch(np.full((4, 4), 7.0)).any()


def test_plain_preview_is_one_pixel_per_pixel_and_not_blank(tmp_path: Path) -> None:
    data = _scene()
    data[:, :3, :4] = 0  # a nodata corner
    cube = Cube(data, wavelengths=WL, nodata=0)
    info = preview(cube, tmp_path / "look.png")
    img = _read_png(tmp_path / "look.png")
    assert img.shape == (3, 24, 18) and info["size"] == [18, 24]
    assert not img[:, :3, :4].any()  # nodata black
    valid = img[:, 3:, 4:]
    assert valid.std() > 20 and valid.max() == 255
    assert [p.name for p in tmp_path.iterdir()] == ["look.png"]  # no sidecar, no temporaries


def test_preview_refuses_to_overwrite(tmp_path: Path) -> None:
    from hsz.errors import WriteError

    cube = Cube(_scene(), wavelengths=WL)
    preview(cube, tmp_path / "a.png")
    with pytest.raises(WriteError, match="overwrite"):
        preview(cube, tmp_path / "a.png")
    preview(cube, tmp_path / "a.png", overwrite=True)


def test_error_picture_has_three_labelled_panels(tmp_path: Path) -> None:
    ref = Cube(_scene(), wavelengths=WL)
    noisy = ref.data.astype(np.float64)
    noisy[:, :, 9:] += np.random.default_rng(3).normal(0, 50, noisy[:, :, 9:].shape)
    dec = ref.replace(data=np.clip(noisy, 0, 65535).astype(np.uint16))
    image, info = render(dec, reference=ref)
    assert info["upscale"] == 6  # 24 rows -> at least 128 px tall panels
    assert image.shape[1] > 3 * 18 * 6 and image.shape[0] > 24 * 6
    assert info["rmse_p99"] > 10 and info["sam_mean_deg"] > 0
    write_png(image, tmp_path / "err.png")
    back = _read_png(tmp_path / "err.png")
    assert back.shape == (3, image.shape[0], image.shape[1]) and info["size"] == [
        image.shape[1], image.shape[0]]
    assert np.array_equal(np.moveaxis(back, 0, -1), image)
    # Viridis' yellow end appears where the error is large; its dark end where it is zero.
    assert ((back[0] > 200) & (back[1] > 200) & (back[2] < 80)).any()
    assert ((back[0] < 80) & (back[2] > 80) & (back[1] < 20)).any()


def test_error_picture_refuses_mismatched_cubes() -> None:
    with pytest.raises(UsageError):
        render(Cube(_scene()), reference=Cube(_scene(rows=20)))


# -- the command --------------------------------------------------------------------------------


def _save_hwb(path: Path, bhw: np.ndarray) -> Path:
    np.save(path, np.ascontiguousarray(np.moveaxis(bhw, 0, -1)))
    return path


def _run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, list(args))
    return res.exit_code, res.stdout, res.stderr


def test_cli_preview_of_a_cube(tmp_path: Path) -> None:
    src = _save_hwb(tmp_path / "scene.npy", _scene())
    out = tmp_path / "look.png"
    code, stdout, err = _run("preview", str(src), "-o", str(out), "--wavelengths", "400:980:20",
                             "--rgb", "860,650,550", "--json", "-q")
    assert code == 0, err
    info = json.loads(stdout)
    assert info["rgb_wavelengths_nm"][0] == 860.0 and info["rgb_bands"][0] == 24
    assert _read_png(out).shape == (3, 24, 18)
    code, _, err = _run("preview", str(src), "-o", str(out))
    assert code == 1 and "--overwrite" in err
    code, _, err = _run("preview", str(src), "-o", str(tmp_path / "look.tif"))
    assert code == 2 and ".png" in err


def test_cli_preview_of_a_hsz_with_error_maps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hsz.api
    from hsz.codec.container import SIGNATURE

    ref = _scene()
    src = _save_hwb(tmp_path / "scene.npy", ref)
    decoded = Cube(np.clip(ref.astype(np.int32) + 30, 0, 65535).astype(np.uint16))
    monkeypatch.setattr(hsz.api, "decode", lambda source, **kw: decoded)
    fake = tmp_path / "scene.hsz"
    fake.write_bytes(SIGNATURE + bytes(8))
    out = tmp_path / "err.png"
    code, stdout, err = _run("preview", str(fake), "-o", str(out), "--error", str(src),
                             "--wavelengths", "400:980:20", "--json", "-q")
    assert code == 0, err
    info = json.loads(stdout)
    assert info["rmse_mean"] == pytest.approx(30.0)
    assert info["rgb_rule"] == "wavelength"  # wavelengths borrowed from the original
    img = _read_png(out)
    assert img.shape[1:] == (info["size"][1], info["size"][0])
