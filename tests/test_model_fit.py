"""Fitting on a small real crop: quality floor, epochs help, seeds reproduce, nodata ignored.

The crop (tests/data/model_crop.npy) is Indian Pines rows 40:64, cols 16:40, every 5th band:
24 x 24 x 40 uint16, (rows, cols, bands) as the scene is stored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hsz.model.arch import HinerConfig, size_for_budget
from hsz.model.fit import PRESETS, FitResult, Preset, cam_degrees, fit, preset_epochs
from hsz.model.render import render_all
from hsz.spectral import band_coordinates, read_wavelength_file

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def crop() -> tuple[np.ndarray, np.ndarray]:
    raw = np.load(DATA / "model_crop.npy").astype(np.float32).transpose(2, 0, 1)
    lo = raw.min(axis=(1, 2), keepdims=True)
    hi = raw.max(axis=(1, 2), keepdims=True)
    norm = ((raw - lo) / (hi - lo)).astype(np.float32)
    wl = read_wavelength_file(DATA / "model_crop_wavelengths.csv")
    return norm, band_coordinates(wl, norm.shape[0])


@pytest.fixture(scope="module")
def crop_cfg() -> HinerConfig:
    return size_for_budget(40, 24, 24, 6000)


@pytest.fixture(scope="module")
def fits(crop, crop_cfg) -> dict[int, FitResult]:
    norm, coords = crop
    return {ep: fit(norm, coords, crop_cfg, epochs=ep, device="cpu", seed=0) for ep in (8, 40)}


def _psnr_band_mean(a: np.ndarray, b: np.ndarray) -> float:
    from hsz.metrics import psnr_band_mean

    return psnr_band_mean(a, b)


def test_fit_beats_floor_and_improves_with_epochs(crop, crop_cfg, fits) -> None:
    norm, coords = crop
    short, long = fits[8], fits[40]
    # Measured on the 2-core CPU (seeds 0-2, preset learning rate 4e-3): 20.4-21.6 dB after 8
    # epochs, 27.3-27.6 dB after 40 (16.9-18.4 and 24.4-25.5 at the former 1e-3). Floors sit
    # ~1 dB under the worst seed so that other BLAS builds pass.
    assert long.best_psnr > 26.3
    assert long.best_psnr > short.best_psnr + 2.0
    # best_psnr is the real metric of what is stored: decode and measure independently.
    decoded = render_all(crop_cfg, long.decoder, long.embeddings, coords, coords)
    assert abs(_psnr_band_mean(norm, decoded) - long.best_psnr) < 0.01
    assert long.embeddings.shape == (40, *crop_cfg.embed_shape)
    assert long.embeddings.dtype == np.float32
    assert all(v.dtype == np.float32 for v in long.decoder.values())
    assert long.epochs == 40 and len(long.history) == 40 and long.device == "cpu"
    assert {"epoch", "loss", "psnr", "seconds"} <= set(long.history[0])
    assert long.best_psnr == max(h["eval_psnr"] for h in long.history if "eval_psnr" in h)


def _tiny(crop) -> tuple[np.ndarray, np.ndarray, HinerConfig]:
    norm, coords = crop
    sub = np.ascontiguousarray(norm[::5, :16, :16])
    cfg = HinerConfig(
        bands=sub.shape[0], height=16, width=16, fc_h=1, fc_w=1, fc_dim=8,
        dec_strides=(4, 2, 2), lower_width=4, mlp_hidden=16, pe_levels=16,
    )
    return sub, coords[::5], cfg


def _same(a: FitResult, b: FitResult) -> bool:
    return all(np.array_equal(a.decoder[k], b.decoder[k]) for k in a.decoder) and np.array_equal(
        a.embeddings, b.embeddings
    )


def test_fixed_seed_reproduces_identical_weights(crop) -> None:
    sub, coords, cfg = _tiny(crop)
    a = fit(sub, coords, cfg, epochs=3, device="cpu", seed=7)
    b = fit(sub, coords, cfg, epochs=3, device="cpu", seed=7)
    c = fit(sub, coords, cfg, epochs=3, device="cpu", seed=8)
    assert _same(a, b)
    assert not _same(a, c)


def test_masked_pixels_do_not_affect_the_fit(crop) -> None:
    sub, coords, cfg = _tiny(crop)
    mask = np.ones((16, 16), dtype=bool)
    mask[3:9, 5:12] = False
    mask[0, :] = False
    other = sub.copy()
    other[:, ~mask] = np.random.default_rng(1).uniform(-5, 5, size=other[:, ~mask].shape)
    other[0, 3, 5] = np.nan
    a = fit(sub, coords, cfg, mask=mask, epochs=2, device="cpu", seed=1)
    b = fit(other, coords, cfg, mask=mask, epochs=2, device="cpu", seed=1)
    assert _same(a, b)
    assert a.best_psnr == b.best_psnr
    # ... whereas the same change without a mask changes the fit.
    c = fit(np.nan_to_num(other), coords, cfg, epochs=2, device="cpu", seed=1)
    d = fit(sub, coords, cfg, epochs=2, device="cpu", seed=1)
    assert not _same(c, d)


def test_fit_rejects_bad_inputs(crop) -> None:
    sub, coords, cfg = _tiny(crop)
    with pytest.raises(ValueError):
        fit(sub[:-1], coords, cfg, epochs=1)
    with pytest.raises(ValueError):
        fit(sub, coords[:-1], cfg, epochs=1)
    with pytest.raises(ValueError):
        fit(sub, coords, cfg, epochs=1, preset="turbo")
    with pytest.raises(ValueError):
        fit(sub, coords, cfg, epochs=0)
    with pytest.raises(ValueError):
        fit(sub, coords, cfg, epochs=1, mask=np.zeros((16, 16), bool))


def test_progress_reports_each_epoch(crop) -> None:
    sub, coords, cfg = _tiny(crop)
    seen: list[dict] = []
    fit(sub, coords, cfg, epochs=2, device="cpu", progress=seen.append)
    assert [r["epoch"] for r in seen] == [1, 2]
    assert all(r["epochs"] == 2 and np.isfinite(r["loss"]) and "psnr" in r for r in seen)


def test_cam_is_the_angle_in_degrees() -> None:
    a = torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]]])
    b = torch.tensor([[[0.0, 1.0]], [[2.0, 2.0]]])
    got = cam_degrees(a, b)
    torch.testing.assert_close(got, torch.tensor([90.0, 0.0]), atol=1e-4, rtol=0)
    w = torch.tensor([[1.0, 0.0]])
    torch.testing.assert_close(cam_degrees(a[:1], torch.tensor([[[1.0, 9.0]]]), w),
                               torch.tensor([0.0]), atol=1e-4, rtol=0)


def test_presets_give_few_band_scenes_a_floor_of_steps() -> None:
    # 200 bands at 2 per step: 100 steps an epoch, so the epoch counts stand.
    assert preset_epochs(PRESETS["balanced"], 200, 2) == 300
    assert preset_epochs(PRESETS["max"], 200, 2) == 600
    # 31 bands (CAVE): 16 steps an epoch; "balanced" runs 10,000 steps, not 4,800.
    assert preset_epochs(PRESETS["balanced"], 31, 2) == 625
    assert preset_epochs(PRESETS["max"], 31, 2) == 1250
    # "fast" means fast: no floor.
    assert preset_epochs(PRESETS["fast"], 31, 2) == 100


def test_fit_follows_the_preset_schedule_unless_told(crop, monkeypatch) -> None:
    sub, coords, cfg = _tiny(crop)  # 8 bands: 4 steps an epoch at 2 per step
    monkeypatch.setitem(
        PRESETS, "tiny", Preset(epochs=1, batch_cpu=2, batch_cuda=2, min_steps=10, lr=0.05)
    )
    got = fit(sub, coords, cfg, preset="tiny", device="cpu")
    assert got.epochs == 3 and len(got.history) == 3  # ceil(10 / 4) epochs
    # The preset's rate is the peak of the schedule the history records...
    assert 0.025 < max(h["lr"] for h in got.history) <= 0.05
    # ... and explicit arguments win over both knobs.
    told = fit(sub, coords, cfg, preset="tiny", epochs=2, lr=0.001, device="cpu")
    assert told.epochs == 2 and max(h["lr"] for h in told.history) <= 0.001
