"""Metrics against values worked out by hand on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hsz import metrics


def test_psnr_band_mean_by_hand() -> None:
    orig = np.zeros((2, 2, 2))
    orig[0] = [[0, 10], [0, 10]]  # range 10
    orig[1] = [[0, 2], [0, 2]]  # range 2
    dec = orig.copy()
    dec[0, 0, 0] = 1.0  # MSE 1/4 -> 10 log10(100 / 0.25) = 26.0206
    dec[1, 1, 1] = 1.0  # MSE 1/4 -> 10 log10(4 / 0.25) = 12.0412
    per = metrics.per_band_psnr(orig, dec)
    assert per[0] == pytest.approx(10 * math.log10(400), abs=1e-9)
    assert per[1] == pytest.approx(10 * math.log10(16), abs=1e-9)
    assert metrics.psnr_band_mean(orig, dec) == pytest.approx((per[0] + per[1]) / 2)


def test_psnr_global_uses_cube_range() -> None:
    orig = np.zeros((2, 2, 2))
    orig[0, 0, 1] = 10
    dec = orig.copy()
    dec[1, 1, 1] = 2.0  # total SE 4 over 8 samples -> MSE 0.5; range 10
    assert metrics.psnr_global(orig, dec) == pytest.approx(10 * math.log10(100 / 0.5))


def test_exact_reconstruction_is_finite() -> None:
    x = np.arange(24, dtype=np.uint16).reshape(2, 3, 4)
    assert metrics.psnr_band_mean(x, x) == metrics.PSNR_EXACT
    assert metrics.sam_deg(x, x) == pytest.approx(0.0, abs=1e-6)


def test_sam_by_hand() -> None:
    orig = np.zeros((2, 1, 2))
    dec = np.zeros((2, 1, 2))
    orig[:, 0, 0] = [1, 0]
    dec[:, 0, 0] = [1, 1]  # 45 degrees
    orig[:, 0, 1] = [0, 3]
    dec[:, 0, 1] = [0, 5]  # 0 degrees
    assert metrics.sam_map(orig, dec)[0].tolist() == pytest.approx([45.0, 0.0])
    assert metrics.sam_deg(orig, dec) == pytest.approx(22.5)


def test_mask_leaves_pixels_out() -> None:
    orig = np.ones((1, 1, 2)) * np.array([0.0, 4.0])
    dec = orig.copy()
    dec[0, 0, 1] = 100.0
    mask = np.array([[True, False]])
    assert metrics.max_abs_error(orig, dec, mask) == 0.0
    assert metrics.max_abs_error(orig, dec) == 96.0


def test_uint16_does_not_overflow() -> None:
    orig = np.full((1, 2, 2), 60000, dtype=np.uint16)
    orig[0, 0, 0] = 0
    dec = orig.copy()
    dec[0, 1, 1] = 0  # error 60000 must not wrap around
    mse = 60000.0**2 / 4
    assert metrics.psnr_band_mean(orig, dec) == pytest.approx(10 * math.log10(60000.0**2 / mse))


def test_rate_figures() -> None:
    assert metrics.bpppb(1000, (10, 20, 40)) == pytest.approx(1.0)
    assert metrics.compression_ratio(1000, (10, 20, 40), 16) == pytest.approx(16.0)


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.psnr_global(np.zeros((1, 2, 2)), np.zeros((1, 2, 3)))
