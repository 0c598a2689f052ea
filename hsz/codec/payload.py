"""What a model family hands the codec to store, and what the codec hands back on decoding.

A family stores two kinds of arrays: float tensors (network weights), which the codec
quantizes min–max at a bit depth the family chooses (format 1.0, ``TDIR``/``TDAT``), and
integer grids (latents), which the family has already quantized and which the codec codes
under its context model (format 1.1, ``LATS``; :mod:`hsz.codec.context`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hsz.codec.context import DEFAULT_RULE, IntNet
from hsz.codec.quantize import DEFAULT_BITS


@dataclass(frozen=True)
class Grid:
    """Integer levels (C, H, W) coded under ``net``, with an earlier grid as ``guide``.

    ``shares`` names an earlier grid whose network layers are the same as this one's: the
    file then stores them once (``net.channel_bias`` is always this grid's own).
    """

    levels: np.ndarray
    bits: int
    net: IntNet
    guide: str | None = None
    shares: str | None = None
    #: The context rule (:data:`hsz.codec.context.RULES`); files before 1.5 hold rule 0.
    rule: int = DEFAULT_RULE
    #: Rule 2's channel stride: channel ``c − group`` is a feature (a wavelet level's
    #: three orientations per component make it 3: the previous component's same one).
    group: int = 1


@dataclass
class Payload:
    """Everything a family stores for one fitted model."""

    tensors: Mapping[str, np.ndarray] = field(default_factory=dict)
    bits: int | Mapping[str, int] = DEFAULT_BITS
    #: Grids, or the same already coded (:func:`hsz.codec.pack.code_grids`).
    grids: Mapping[str, Grid] | Any = field(default_factory=dict)
    #: Arrays stored exactly (in ``RAWA``, beside the codec's own normalization arrays).
    raw: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Stored:
    """What a decoder gets back: dequantized tensors, decoded grids, exact arrays."""

    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    grids: dict[str, np.ndarray] = field(default_factory=dict)
    raw: dict[str, np.ndarray] = field(default_factory=dict)
