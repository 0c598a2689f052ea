"""A scene opened for reading window by window, so that memory follows the tile, not the scene.

:func:`hsz.io.open_scene` hands back a :class:`Scene`: the cube's metadata, validated once,
and its samples behind :class:`hsz.io._common.Samples`.  ``scene.window(w)`` is a Cube of
that window alone, with its georeferencing moved to the window's corner.  A
:class:`SceneSpec` is the picklable recipe for opening the same scene again, which is what
a tile job carries to another process or machine instead of the samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hsz.cube import Cube
from hsz.io._common import Samples, make_cube
from hsz.tiles import Window


@dataclass(frozen=True)
class SceneSpec:
    """How to open a scene: the input path and every reader option, all picklable."""

    path: str
    format: str | None = None
    var: str | None = None
    layout: str | None = None
    wavelengths: tuple[float, ...] | None = None
    nodata: float | None = None

    def open(self) -> Scene:
        from hsz.io import open_scene

        wl = None if self.wavelengths is None else np.asarray(self.wavelengths)
        return open_scene(self.path, format=self.format, var=self.var, layout=self.layout,
                          wavelengths=wl, nodata=self.nodata)


def shifted_transform(transform: tuple[float, ...] | None, window: Window
                      ) -> tuple[float, ...] | None:
    """The affine transform of a window: the same pixel size, its origin at the corner."""
    if transform is None:
        return None
    a, b, c, d, e, f = transform
    return (a, b, c + a * window.col + b * window.row, d, e, f + d * window.col + e * window.row)


class Scene:
    """An open input cube: metadata now, samples when a window is asked for."""

    def __init__(self, path: Path, samples: Samples, fields: dict[str, Any],
                 spec: SceneSpec) -> None:
        self.path, self.samples, self.fields, self.spec = path, samples, fields, spec
        # Validates the metadata against the shape without reading a sample.
        self.header = Cube(data=np.broadcast_to(np.zeros((), samples.dtype), samples.shape),
                           **fields)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.samples.shape

    @property
    def dtype(self) -> np.dtype:
        return self.samples.dtype

    def window(self, window: Window) -> Cube:
        """The cube of one window, georeferenced at its corner."""
        _, rows, cols = self.shape
        if window.bottom > rows or window.right > cols:
            raise ValueError(f"window {window} reaches outside the {rows}x{cols} scene")
        fields = dict(self.fields)
        fields["transform"] = shifted_transform(self.header.transform, window)
        return make_cube(self.path, self.samples.read(window), fields)

    def read_all(self) -> Cube:
        return make_cube(self.path, self.samples.read_all(self.path), self.fields)

    def close(self) -> None:
        self.samples.close()

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
