"""hsz: hyperspectral image compression with a wavelength-embedding neural representation."""

from __future__ import annotations

__version__ = "0.1.0"

from hsz.cube import Cube
from hsz.errors import HszError

__all__ = ["Cube", "HszError", "__version__"]
