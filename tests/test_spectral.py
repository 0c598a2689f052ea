"""Wavelength requests as users type them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hsz import spectral
from hsz.errors import UsageError

DATA = Path(__file__).parent / "data"


def test_range_includes_stop_on_grid() -> None:
    w = spectral.parse_wavelengths("450:950:5")
    assert w.size == 101 and w[0] == 450 and w[-1] == 950


def test_range_stop_off_grid_is_excluded() -> None:
    w = spectral.parse_wavelengths("400:412:5")
    assert w.tolist() == [400, 405, 410]


def test_micrometre_suffix() -> None:
    assert spectral.parse_wavelengths("0.45:0.5:0.025um").tolist() == pytest.approx(
        [450, 475, 500]
    )
    assert spectral.parse_wavelengths("0.55,0.66um").tolist() == pytest.approx([550, 660])


def test_comma_list() -> None:
    assert spectral.parse_wavelengths("550, 660,865").tolist() == [550, 660, 865]


def test_file_with_header_and_um(tmp_path) -> None:
    p = tmp_path / "wl.csv"
    p.write_text("# a comment\nband,wavelength_um\n0,0.4\n1,0.5\n")
    assert spectral.parse_wavelengths(str(p)).tolist() == pytest.approx([400, 500])


def test_real_indian_pines_csv() -> None:
    w = spectral.parse_wavelengths(str(DATA / "indian_pines_crop_wavelengths.csv"))
    assert w.size == 200 and 399 < w[0] < 401


@pytest.mark.parametrize(
    "spec", ["", "abc", "500:400:5", "400:500:0", "400:500:-5", "1,2,x", "-5,10", "1:2:3furlong"]
)
def test_malformed_specs(spec: str) -> None:
    with pytest.raises(UsageError):
        spectral.parse_wavelengths(spec)


def test_huge_range_is_refused() -> None:
    with pytest.raises(UsageError, match="at most"):
        spectral.parse_wavelengths("1:1000000:0.001")


def test_units() -> None:
    assert spectral.unit_scale("Micrometers") == 1000.0
    assert spectral.unit_scale("nm") == 1.0
    assert spectral.unit_scale(None) == 1.0
    assert spectral.unit_scale("Unknown") is None
    assert spectral.guess_unit(np.array([0.4, 2.5])) == "um"
    assert spectral.guess_unit(np.array([400.0, 2500.0])) == "nm"


def test_band_coordinates_follow_physics() -> None:
    c = spectral.band_coordinates(np.array([400.0, 500.0, 1000.0]), 3)
    assert c.tolist() == pytest.approx([0.0, 1 / 6, 1.0])
    assert spectral.band_coordinates(None, 3).tolist() == [0.0, 0.5, 1.0]


def _apply(mixes: list[list[tuple[int, float]]], values: np.ndarray) -> np.ndarray:
    return np.array([sum(w * values[k] for k, w in mix) for mix in mixes])


def test_mixing_is_a_cubic_where_the_sampling_is_even() -> None:
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    q = np.array([1.5, 2.25, 3.7])
    mixes = spectral.mixing(x, q)
    assert all(len(m) == 4 for m in mixes)
    for m in mixes:
        assert abs(sum(w for _, w in m) - 1.0) < 1e-12
    cubic = 0.3 * x**3 - x**2 + 2 * x - 1
    np.testing.assert_allclose(_apply(mixes, cubic), 0.3 * q**3 - q**2 + 2 * q - 1,
                               rtol=0, atol=1e-12)
    # The two bands on each side of 1.5 are 0, 1 | 2, 3, whatever order the file has them in.
    shuffled = np.array([3, 0, 5, 1, 4, 2])
    again = spectral.mixing(x[shuffled], q)
    np.testing.assert_allclose(_apply(again, cubic[shuffled]), _apply(mixes, cubic),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("x, q", [
    ([0.0, 1.0, 2.0, 3.0], [0.4]),            # first interval: no band below the lower one
    ([0.0, 1.0, 2.0, 3.0], [2.6]),            # last interval: none above the upper one
    ([0.0, 1.0, 2.0, 6.0, 7.0], [1.5]),       # a gap (removed bands) beside the query
    ([0.0, 1.0, 1.0, 2.0, 3.0], [1.5]),       # a band repeated at a detector join
])
def test_mixing_falls_back_to_the_linear_mix_where_the_sampling_is_not_even(
        x: list[float], q: list[float]) -> None:
    mixes = spectral.mixing(np.array(x), np.array(q))
    linear = spectral.neighbours(np.array(x), np.array(q))
    assert [[(lo, 1.0 - t), (hi, t)] for lo, hi, t in linear] == mixes


def test_mixing_takes_exact_and_outside_queries_whole() -> None:
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    assert spectral.mixing(x, np.array([2.0, -1.0, 9.0])) == [[(2, 1.0)], [(0, 1.0)],
                                                               [(4, 1.0)]]
