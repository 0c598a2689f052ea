"""Cube validation and normalization."""

from __future__ import annotations

import numpy as np
import pytest

from hsz.cube import Cube
from hsz.errors import ReadError
from hsz.normalize import band_scale, denormalize_band, normalize


def test_shape_and_dtype_checks() -> None:
    with pytest.raises(ReadError, match="3 dimensions"):
        Cube(np.zeros((4, 4)))
    with pytest.raises(ReadError, match="unsupported sample type"):
        Cube(np.zeros((2, 2, 2), dtype=np.complex64))
    with pytest.raises(ReadError, match="empty"):
        Cube(np.zeros((0, 2, 2)))


def test_wavelength_count_must_match() -> None:
    with pytest.raises(ReadError, match="3 values but the cube has 2 bands"):
        Cube(np.zeros((2, 2, 2)), wavelengths=[1.0, 2.0, 3.0])
    with pytest.raises(ReadError, match="non-finite"):
        Cube(np.zeros((2, 2, 2)), wavelengths=[1.0, np.nan])


def test_non_monotonic_wavelengths_are_reported_not_refused() -> None:
    c = Cube(np.zeros((3, 2, 2)), wavelengths=[400.0, 410.0, 405.0])
    assert not c.wavelengths_increasing


def test_nan_samples_refused_unless_nodata() -> None:
    data = np.ones((2, 2, 2), dtype=np.float32)
    data[0, 0, 0] = np.nan
    with pytest.raises(ReadError, match="NaN"):
        Cube(data).check_finite()
    Cube(data, nodata=float("nan")).check_finite()


def test_valid_mask_needs_all_bands_nodata() -> None:
    data = np.ones((2, 2, 2), dtype=np.int16)
    data[:, 0, 0] = -1
    data[0, 1, 1] = -1  # only one band: still a valid pixel
    mask = Cube(data, nodata=-1).valid_mask()
    assert mask.tolist() == [[False, True], [True, True]]


def test_normalize_round_trip_integer() -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(100, 5000, size=(3, 5, 6)).astype(np.uint16)
    cube = Cube(data)
    scale = band_scale(cube, None)
    norm = normalize(cube, scale, None)
    assert norm.min() == 0.0 and norm.max() == 1.0
    back = np.stack([
        denormalize_band(norm[k], scale.low[k], scale.span[k], data.dtype) for k in range(3)
    ])
    assert np.array_equal(back, data)


def test_denormalize_clips_integer_range() -> None:
    out = denormalize_band(np.array([[-0.5, 1.5]]), 0, 255, np.dtype(np.uint8))
    assert out.tolist() == [[0, 255]]
