"""Fixtures shared by the pipeline and CLI tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hsz.cube import Cube

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def tiny_cube() -> Cube:
    """A real 20x20x40 crop of Indian Pines with its AVIRIS band centres and FWHM."""
    data = np.load(DATA / "ip_tiny.npy")
    table = np.loadtxt(DATA / "ip_tiny_wavelengths.csv", delimiter=",", skiprows=1)
    return Cube(
        np.ascontiguousarray(np.moveaxis(data, -1, 0)),
        wavelengths=table[:, 0],
        fwhm=table[:, 1],
        wavelength_units="Nanometers",
    )
