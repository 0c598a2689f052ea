"""The ``latent`` family: a spectral basis times rate-trained, context-coded latent grids.

band_b(x, y) = offset_b + Σ_k basis_bk · S_k(x, y),  S_k = Σ_l up(step_lk · q_lk)

The basis is stored at ``knots`` evenly spaced band positions and interpolated linearly
between them (spectra are smooth, and a full 200-band basis would be a quarter of a small
scene's budget at low rates); with ``knots == bands`` it is stored whole.

The K coefficient maps S are built from integer latent grids q_l, each scaled by a
per-(level, component) step: with ``transform="dwt"`` (what the encoder writes) the grids are
the CDF 9/7 wavelet subbands of the maps (:mod:`hsz.model.wavelet`); with ``"pyramid"``
(files written before it) a Laplacian pyramid, full resolution then halving, upsampled
bilinearly.  With
``shrink`` (what the encoder writes) every nonzero latent decodes a little nearer zero, by
a per-level offset that landing measures (:func:`dequantized`).  The
latents are trained against the rate their own entropy model gives them (loss D + λ·R) and
stored as format 1.1 grids, coded under a small context network that the codec evaluates in
integer arithmetic (:mod:`hsz.codec.context`), so the probabilities that decide every symbol
are identical on every machine.  The basis and offsets are smooth along the bands, so the
container codes them as differences there (format 1.2).  The basis starts from the cube's
principal components; once the levels are final, landing refits the basis, offsets and steps
to them by least squares (:func:`refit`).

Decoding is numpy only: grids, then upsampling and one matrix product per band.  Asked for
a coordinate between the stored bands, :func:`render_bands` mixes the two neighbouring
basis rows linearly; ``hsz decode --wavelengths`` instead asks for the stored bands around
each wavelength and mixes them by the container's rule (:func:`hsz.spectral.mixing`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from hsz.codec.context import DEFAULT_RULE, IntNet, inputs
from hsz.codec.payload import Grid, Payload, Stored
from hsz.errors import RateError
from hsz.model import wavelet
from hsz.model.family import FitJob, Fitted, ModelFamily, Packer

_MAX_SIDE = 1 << 16
_MAX_BANDS = 1 << 16
_MAX_LATENTS = 400_000_000
#: How the latent grids make the coefficient maps (see the module docstring).
TRANSFORMS = ("pyramid", "dwt")
#: What new files use.
DEFAULT_TRANSFORM = "dwt"


@dataclass(frozen=True)
class LatentConfig:
    """Every number needed to rebuild the decoder: sizes, components, levels, network width."""

    bands: int
    height: int
    width: int
    k: int = 16
    levels: int = 6
    hidden: int = 8
    #: The least bit depth of a grid; a grid takes more where its latents need them
    #: (:func:`grid_bits`).  The coder's tables span every residual of the depth, and each
    #: entry holds at least 2^-24 of probability, so a deeper table charges every zero
    #: more: 12 against 4..12 as the latents need cost CAVE chart and toy 341 bytes
    #: (0.7 %) at 0.05 bpppb, and its decode built 8191-entry tables where 127 would do.
    grid_bits: int = 4
    knots: int = 0  # 0 means one per band
    transform: str = "pyramid"  # "pyramid" or "dwt"; absent in files older than "dwt"
    shrink: bool = False  # nonzero latents decode nearer zero (tensor "shrink"); absent: no

    def __post_init__(self) -> None:
        for name, lo, hi in (("bands", 1, _MAX_BANDS), ("height", 1, _MAX_SIDE),
                             ("width", 1, _MAX_SIDE), ("k", 1, 64), ("levels", 1, 10),
                             ("hidden", 1, 64), ("grid_bits", 4, 16)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"latent config: {name} must be an integer in {lo}..{hi}, "
                                 f"got {v!r}")
        if self.k > self.bands:
            raise ValueError(f"latent config: k={self.k} exceeds the {self.bands} bands")
        if isinstance(self.knots, bool) or not isinstance(self.knots, int) or not (
                self.knots == 0 or 2 <= self.knots <= self.bands):
            raise ValueError(f"latent config: knots must be 0 or in 2..{self.bands}, "
                             f"got {self.knots!r}")
        if not isinstance(self.shrink, bool):
            raise ValueError(f"latent config: shrink must be true or false, got "
                             f"{self.shrink!r}")
        if self.transform not in TRANSFORMS:
            raise ValueError(f"latent config: transform must be one of {TRANSFORMS}, got "
                             f"{self.transform!r}")
        if self.latent_values() > _MAX_LATENTS:
            raise ValueError("latent config: too many latent values")

    @property
    def depth(self) -> int:
        """Wavelet levels of a ``dwt`` config: every grid but the low band is one level."""
        return self.levels - 1

    def sizes(self) -> list[tuple[int, int]]:
        """Rows and cols of each grid, finest first.

        Pyramid: each level half the previous, rounded up.  Wavelet: the maps extended to
        multiples of 2^depth, then each level's subbands half the previous; the last grid
        (the low band) has the size of the coarsest details.
        """
        if self.transform == "dwt":
            hp, wp = wavelet.padded(self.height, self.depth), wavelet.padded(self.width,
                                                                               self.depth)
            out = [(hp >> (j + 1), wp >> (j + 1)) for j in range(self.depth)]
            return out + [(hp >> self.depth, wp >> self.depth)]
        out, h, w = [], self.height, self.width
        for _ in range(self.levels):
            out.append((h, w))
            h, w = (h + 1) // 2, (w + 1) // 2
        return out

    def channels(self, level: int) -> int:
        """Channels of grid ``level``: a wavelet detail grid holds three subbands per
        component."""
        return 3 * self.k if self.transform == "dwt" and level < self.depth else self.k

    @property
    def max_channels(self) -> int:
        return max(self.channels(lvl) for lvl in range(self.levels))

    @property
    def basis_rows(self) -> int:
        """Rows of the stored basis: the knots, or every band."""
        return self.knots or self.bands

    def latent_values(self) -> int:
        return sum(self.channels(lvl) * h * w for lvl, (h, w) in enumerate(self.sizes()))

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if self.transform == "pyramid":  # as written before "dwt" existed
            del out["transform"]
        if not self.shrink:  # as written before "shrink" existed
            del out["shrink"]
        return out

    @classmethod
    def from_json(cls, data: Any) -> LatentConfig:
        if not isinstance(data, dict):
            raise ValueError("latent config must be a JSON object")
        known = set(cls.__dataclass_fields__)
        extra = sorted(set(data) - known)
        if extra:
            raise ValueError(f"latent config has unknown keys {extra}")
        return cls(**data)


#: The largest share of the payload the plan lets the basis, steps and network take.
FIXED_SHARE = 0.35
#: Above this share of the payload for the full basis, a scene of many bands stores its
#: basis at half as many knots (see :meth:`LatentFamily.plan`).
KNOTS_SHARE = 0.28


def level_name(level: int) -> str:
    return f"level{level}"


def default_levels(height: int, width: int) -> int:
    """Halve down to about 4 pixels on the short side, at most 6 levels (1/32)."""
    side = min(height, width)
    return max(1, min(6, int(math.floor(math.log2(max(side, 1) / 4))) + 1))


#: The fewest components a plan takes (fewer only where the cube has fewer bands).  One
#: component is no model of a real scene: the corn kernels' least file with one took
#: 0.0541 bpppb and decoded at 11.03 dB, with two 0.0571 bpppb and 27.32 dB.
LEAST_K = 2

#: The context network's hidden width by payload size: (payload below, width), else 8.
#: Its int16 weights are 84 bytes a hidden unit, a fixed cost that small files feel most.
#: Measured (``fast``, psnr_band_mean at the same rate, width 4 or 2 against 8):
#: Samson at 0.05 bpppb (8.8 kB payload) 42.68 with 2, 42.59 with 3, 42.55 with 4, 42.29
#: with 6, 42.11 with 8; Jasper Ridge at 0.05 (12 kB) 39.32 against 39.08; Samson at 0.1
#: (18 kB) 47.81 against 47.71; Jasper Ridge at 0.1 (25 kB) 44.50 against 44.43; Indian
#: Pines at 0.05 (26 kB) 34.94 against 34.90; CAVE chart and toy at 0.05 (51 kB) 43.75
#: against 43.70; but at 0.1 (101 kB) 48.20 against 48.27, where 8 stays.
HIDDEN_STEPS: tuple[tuple[int, int], ...] = ((12_000, 2), (64_000, 4))
HIDDEN_DEFAULT = 8


def hidden_units(payload_bytes: float) -> int:
    """The hidden width a payload of this size gets (:data:`HIDDEN_STEPS`)."""
    for below, width in HIDDEN_STEPS:
        if payload_bytes < below:
            return width
    return HIDDEN_DEFAULT


def half_knots(bands: int) -> int:
    """The knots a basis of this many bands is stored at when the plan thins it: half the
    bands, for scenes of more than 256 (0: never thinned)."""
    return -(-bands // 2) if bands > 256 else 0


def _planned(shape: tuple[int, int, int], k: int, hidden: int, knots: int = 0
             ) -> LatentConfig:
    """The configuration every plan has, for ``shape`` (bands, H, W) and these choices."""
    bands, h, w = shape
    return LatentConfig(bands, h, w, k=k, levels=default_levels(h, w), hidden=hidden,
                        knots=knots, transform=DEFAULT_TRANSFORM, shrink=True)


def network_bytes(config: LatentConfig) -> float:
    """Bytes of the context network, the per-channel biases and the grid headers.

    Rule 3 codes the channel biases (:func:`hsz.codec.context.packed_bias_bytes`): 1.7
    bytes a channel on CAVE chart and toy at 0.1 bpppb, where int16 pairs took 4.  Rule 4
    codes the layers too (:func:`hsz.codec.context.packed_layer_bytes`): about a byte a
    weight (182 bytes for 170 values on CAVE chart and toy at 0.05, 85 for 84 on Samson),
    where int16 took two.
    """
    hid, n_levels = config.hidden, config.levels
    channels = sum(config.channels(lvl) for lvl in range(n_levels))
    return 1.1 * (inputs() * hid + hid * 2) + 2 * (hid + 2) + 2 * channels + 48 * n_levels


def fixed_bytes(config: LatentConfig) -> float:
    """Estimated bytes of everything but the latents: basis, offsets, steps, network.

    Basis and offsets are smooth along the bands and coded as differences there (format
    1.2): about 5 bits a basis value and 8 an offset at 10 bits (Jasper Ridge, Samson).
    """
    b, k, n_levels = config.bands, config.k, config.levels
    tensors = 0.6 * config.basis_rows * k + 1.0 * b + 2.0 * n_levels * k + 60
    if config.shrink:
        tensors += 2.0 * n_levels + 12
    return tensors + network_bytes(config)


def measured_fixed_bytes(config: LatentConfig, tensors: dict[str, np.ndarray]) -> float:
    """:func:`fixed_bytes` with the float tensors really coded at their stored bit depths,
    so that training aims the latents at what is truly left of the budget."""
    from hsz.codec import pack

    coded = len(pack({}, tensors, bits=TENSOR_BITS)) - len(pack({}, {}))
    return coded + network_bytes(config)


# ------------------------------------------------------------------------------ decoding


def knot_matrix(bands: int, knots: int) -> np.ndarray:
    """(bands, knots) linear interpolation from knots at ``j·(bands − 1)/(knots − 1)``."""
    if knots in (0, bands):
        return np.eye(bands)
    pos = np.arange(knots, dtype=np.float64) * (bands - 1) / (knots - 1)
    m = np.zeros((bands, knots), dtype=np.float64)
    for b in range(bands):
        j = min(int(np.searchsorted(pos, b, side="right")) - 1, knots - 2)
        t = (b - pos[j]) / (pos[j + 1] - pos[j])
        m[b, j] += 1.0 - t
        m[b, j + 1] += t
    return m


def full_basis(config: LatentConfig, stored_basis: np.ndarray) -> np.ndarray:
    """The (bands, k) basis from the stored rows."""
    return knot_matrix(config.bands, config.knots) @ np.asarray(stored_basis, np.float64)


def _upsample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Bilinear resampling (half-pixel centres, edge clamped) as an (n_out, n_in) matrix."""
    m = np.zeros((n_out, n_in), dtype=np.float64)
    if n_in == n_out:
        np.fill_diagonal(m, 1.0)
        return m
    scale = n_in / n_out
    for i in range(n_out):
        src = max((i + 0.5) * scale - 0.5, 0.0)
        i0 = min(int(src), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        t = src - i0
        m[i, i0] += 1.0 - t
        m[i, i1] += t
    return m


def step_per_channel(config: LatentConfig, level: int, values: Any) -> Any:
    """A level's per-component values (steps, scales) repeated for each of its channels."""
    if config.channels(level) == config.k:
        return values
    return values.repeat(3, 0) if isinstance(values, np.ndarray) else \
        values.repeat_interleave(3, 0)


def dequantized(level: np.ndarray, shrink: np.ndarray | None) -> np.ndarray:
    """A grid's latents as values in units of their step: the integers themselves, or with
    ``shrink`` = (θ₁, θ₂) every nonzero one moved toward zero, by θ₁ where |q| = 1 and by θ₂
    where |q| ≥ 2.

    Why: a wavelet subband's values are peaked at zero, so those that round to ±1 lie
    nearer 0.5 than 1.5 on average, and the integer itself overshoots.  The mean of
    |q| − |value| per level is the offset that minimizes the squared error; on CAVE chart
    and toy at 0.1 bpppb it was 0.11-0.17 for ±1 and 0.01-0.06 beyond, worth 0.20 dB at
    the same rate.
    """
    q = level.astype(np.float64)
    if shrink is None:
        return q
    flat = q.reshape(-1)
    nz = np.flatnonzero(flat)  # most latents are zero: touch only the others
    v = flat[nz]
    flat[nz] = v - np.sign(v) * np.where(np.abs(v) == 1.0, float(shrink[0]), float(shrink[1]))
    return q


def centroid_shrink(values: list[np.ndarray], levels: list[np.ndarray]) -> np.ndarray:
    """(L, 2) float32: per level, the mean of |q| − |value| over the latents coded as ±1
    and over those beyond (0 where there are none), within ±0.5."""
    out = np.zeros((len(levels), 2), np.float32)
    for lvl, (v, q) in enumerate(zip(values, levels, strict=True)):
        a = np.abs(q)
        gap = a - np.abs(np.asarray(v, np.float64))
        for j, sel in enumerate((a == 1, a >= 2)):
            if sel.any():
                out[lvl, j] = np.clip(gap[sel].mean(), -0.5, 0.5)
    return out


def coefficient_maps(config: LatentConfig, levels: list[np.ndarray],
                     log2_step: np.ndarray, shrink: np.ndarray | None = None) -> np.ndarray:
    """S (K, H, W) float64: every level scaled by its steps, then synthesized (wavelet) or
    upsampled to full size and summed (pyramid); ``shrink`` (L, 2) when the config has it."""
    h, w = config.height, config.width
    levels = [dequantized(lv, None if shrink is None else shrink[lvl])
              for lvl, lv in enumerate(levels)]
    if config.transform == "dwt":
        scaled = [lv * np.exp2(step_per_channel(
            config, lvl, np.asarray(steps, np.float64)))[:, None, None]
            for lvl, (lv, steps) in enumerate(zip(levels, log2_step, strict=True))]
        return np.ascontiguousarray(wavelet.synthesize(scaled, np)[:, :h, :w])
    out = np.zeros((config.k, h, w), dtype=np.float64)
    for lv, (lh, lw), steps in zip(levels, config.sizes(), log2_step, strict=True):
        scaled = lv * np.exp2(steps.astype(np.float64))[:, None, None]
        uy, ux = _upsample_matrix(lh, h), _upsample_matrix(lw, w)
        out += np.einsum("yi,kij,xj->kyx", uy, scaled, ux, optimize=True)
    return out


def _check_stored(config: LatentConfig, stored: Stored) -> list[np.ndarray]:
    want = {"basis": (config.basis_rows, config.k), "offset": (config.bands,),
            "log2_step": (config.levels, config.k)}
    if config.shrink:
        want["shrink"] = (config.levels, 2)
    for name, shape in want.items():
        t = stored.tensors.get(name)
        if t is None or t.shape != shape:
            raise ValueError(f"tensor {name} is missing or not of shape {shape}")
    levels = []
    for lvl, (lh, lw) in enumerate(config.sizes()):
        g = stored.grids.get(level_name(lvl))
        c = config.channels(lvl)
        if g is None or g.shape != (c, lh, lw):
            raise ValueError(f"grid {level_name(lvl)} is missing or not {c}x{lh}x{lw}")
        levels.append(g)
    return levels


#: Samples rendered per matrix product (float64, so 32 MB).
RENDER_BLOCK = 1 << 22


def render_bands(config: LatentConfig, stored: Stored, band_coords: np.ndarray,
                 query: np.ndarray) -> Iterator[np.ndarray]:
    from hsz.spectral import neighbours

    levels = _check_stored(config, stored)
    maps = coefficient_maps(config, levels, stored.tensors["log2_step"],
                            stored.tensors.get("shrink") if config.shrink else None)
    flat = maps.reshape(config.k, -1)
    basis = full_basis(config, stored.tensors["basis"])
    offset = stored.tensors["offset"].astype(np.float64)
    rows, offs = [], []
    for lo, hi, t in neighbours(np.asarray(band_coords, np.float64), np.asarray(query)):
        rows.append(basis[lo] if t == 0.0 else (1.0 - t) * basis[lo] + t * basis[hi])
        offs.append(offset[lo] if t == 0.0 else (1.0 - t) * offset[lo] + t * offset[hi])
    # Bands in blocks of one matrix product: one band at a time re-read all K maps per
    # band (Indian Pines at 0.5 bpppb, K = 43: 0.18 s of a 1 s decode).
    block = max(1, RENDER_BLOCK // max(flat.shape[1], 1))
    for start in range(0, len(rows), block):
        part = np.asarray(rows[start:start + block]) @ flat
        part += np.asarray(offs[start:start + block])[:, None]
        for band in part:
            yield band.reshape(config.height, config.width).astype(np.float32)


# ------------------------------------------------------------------------------ landing


def grid_bits(config: LatentConfig, levels: np.ndarray) -> int:
    """The config's bit depth, or more when fine steps made larger latents (at most 16)."""
    top = int(np.abs(levels).max(initial=0))
    return min(16, max(config.grid_bits, top.bit_length() + 1))


def grid_group(config: LatentConfig, level: int) -> int:
    """Rule 2's channel stride of grid ``level``: a wavelet detail grid's channels come three
    per component, so 3 reads the previous component's same orientation; elsewhere 2 reads
    the component before the previous one (channel c − 1 is a feature already)."""
    return 3 if config.channels(level) != config.k else 2


#: Units of 2^−8 octave the channel biases are rounded to: the zero ratio's to 1/16 octave,
#: the scale's to 1/32 (their tables are 1/2 and 1/6 octave apart).  Measured on CAVE chart
#: and toy at 0.1 bpppb: the biases coded in 849 bytes instead of 1,984, the latents 8
#: bytes more (1/64 and 1/128 octave: 908 bytes, no more for the latents; 1/8 and 1/16:
#: 730 and 48 more).
BIAS_UNITS = (16, 8)


def coarse_bias(channel_bias: np.ndarray) -> np.ndarray:
    """Integer channel biases rounded to multiples of :data:`BIAS_UNITS`, within int16."""
    out = np.asarray(channel_bias, np.int64).copy()
    for j, unit in enumerate(BIAS_UNITS):
        k = np.clip(np.rint(out[:, j] / unit), -(32768 // unit), 32767 // unit)
        out[:, j] = k.astype(np.int64) * unit
    return out.astype(np.int16)


def _grids(config: LatentConfig, levels: list[np.ndarray], net: dict[str, np.ndarray],
           shift: float) -> dict[str, Grid]:
    """The grids, coarsest first, sharing one network; ``shift`` lowers every log2-scale."""
    grids: dict[str, Grid] = {}
    first: str | None = None
    for lvl in reversed(range(config.levels)):
        c = config.channels(lvl)
        bias = np.stack([net["ratio_bias"][lvl][:c], net["scale_bias"][lvl][:c] - shift],
                        axis=1)
        intnet = IntNet.from_float([net["w1"], net["w2"]], [net["b1"], net["b2"]], bias)
        intnet = replace(intnet, channel_bias=coarse_bias(intnet.channel_bias))
        name = level_name(lvl)
        guide = level_name(lvl + 1) if lvl + 1 < config.levels else None
        grids[name] = Grid(levels[lvl], grid_bits(config, levels[lvl]), intnet, guide=guide,
                           shares=first, rule=DEFAULT_RULE, group=grid_group(config, lvl))
        first = first or name
    return grids


def _sensitivity(config: LatentConfig, tensors: dict[str, np.ndarray],
                 levels: list[np.ndarray]) -> dict[str, float]:
    """:func:`hsz.rate.quantization_sensitivity` over 4,096 pixels of every band."""
    from hsz import rate

    n = config.height * config.width
    pick = np.unique(np.linspace(0, n - 1, min(4096, n)).astype(int))

    return rate.quantization_sensitivity(
        tensors, lambda ts: decoded_bands(config, ts, levels, pick))


def decoded_bands(config: LatentConfig, tensors: Mapping[str, np.ndarray],
                  levels: list[np.ndarray], pixels: np.ndarray | None = None) -> np.ndarray:
    """(bands, n) float64: what a decoder makes of these tensors and levels at the stored
    bands, at every pixel (flat y·W + x) or at ``pixels``."""
    maps = coefficient_maps(config, levels, tensors["log2_step"], tensors.get("shrink")
                            if config.shrink else None).reshape(config.k, -1)
    if pixels is not None:
        maps = maps[:, pixels]
    return (np.asarray(tensors["offset"], np.float64)[:, None]
            + full_basis(config, tensors["basis"]) @ maps)


#: A file landing under this share of its budget is requantized at a finer step.  Not
#: 0.95: the fit aims at 0.97 of what the latents may take, and a CAVE start landed at
#: 0.976 of its budget, 2.4 kB left unspent (about 0.1 dB at 0.1 bpppb).
FULL = 0.985


#: The largest magnitude a grid's levels reach: grids hold at most 16 bits.
LEVEL_LIMIT = (1 << 15) - 1


def dead_rint(x: np.ndarray, deadzone: float) -> np.ndarray:
    """numpy's twin of :func:`hsz.model.latent_fit.dead_round`: every bin edge
    ``deadzone`` further from zero (0: round half to even, as the training twin's
    ``torch.round``)."""
    x = np.asarray(x, np.float32)
    if deadzone == 0.0:
        return np.rint(x)
    return np.sign(x) * np.floor(np.maximum(np.abs(x) + np.float32(0.5 - deadzone),
                                            np.float32(0.0)))


def trained_levels(values: list[np.ndarray], deadzone: float = 0.0) -> list[np.ndarray]:
    """The integer latents a fit's trained values round to (what the file codes unless
    landing has to change them), within the 16 bits a grid can hold; ``deadzone``: the
    rounding's (the start's, when the file keeps it)."""
    return [dead_rint(v, deadzone).clip(-LEVEL_LIMIT - 1, LEVEL_LIMIT).astype(np.int32)
            for v in values]

#: Fewest bits of the float tensors, which training freezes them on before its rounded
#: phase: a step multiplies latents of hundreds at high rates, and the basis every latent;
#: measured on Jasper Ridge at 0.5 bpppb, 8-9 bits there cost 6.7 dB (50.2 dB fitted,
#: 43.5 dB in the file).
TENSOR_BITS = {"basis": 10, "offset": 10, "log2_step": 14}
#: Bits of the shrink tensor, which landing computes (training never sees it): an error of
#: 1/500 of its range in an offset of about 0.1 step is far below the rounding's own.
SHRINK_BITS = 8


def land_payload(config: LatentConfig, state: dict[str, Any], pack: Packer,
                 limit: int) -> Payload:
    """The file's payload within ``limit`` bytes (:func:`fit_to_budget`), its basis, offsets
    and steps then refitted to the levels it codes (:func:`refit`) where the fit left the
    target in its state and the refit still fits and measures better."""
    from hsz.codec import dequantized

    payload, levels = fit_to_budget(config, state, pack, limit)
    target = state.get("target")
    if target is None:
        return payload
    scored = state.get("scored")
    bits = dict(payload.bits)
    kept = dequantized(payload.tensors, bits)
    tried = Payload(dict(payload.tensors, **refit(config, kept, levels, target, scored,
                                                  bits["log2_step"])), bits, payload.grids)
    if len(pack(tried)) > limit:
        return payload
    mine = dequantized(tried.tensors, bits)
    if band_db(config, mine, levels, target, scored) < band_db(config, kept, levels, target,
                                                               scored):
        return tried
    return payload


def band_db(config: LatentConfig, tensors: Mapping[str, np.ndarray], levels: list[np.ndarray],
            target: np.ndarray, scored: np.ndarray | None) -> float:
    """The metric the fit trains on (mean over bands of 10·log10 MSE_b, on the scored
    pixels) for these stored tensors and levels."""
    x = np.asarray(target, np.float64).reshape(config.bands, -1)
    err = (decoded_bands(config, tensors, levels) - x) ** 2
    if scored is not None:
        err = err[:, np.asarray(scored, bool).reshape(-1)]
    return float(np.mean(10.0 * np.log10(err.mean(1) + 1e-12)))


#: Rounds of :func:`refit`: each a least-squares basis, then least-squares step gains.
#: Measured on CAVE chart and toy at 0.1 bpppb (a file's own levels): the basis alone
#: +0.056 dB, one round with the gains +0.084, two +0.091, four +0.096.
REFIT_ROUNDS = 3
#: How far :func:`refit` may move a step: a factor within 2^±GAIN_OCTAVES.
GAIN_OCTAVES = 2.0


def refit(config: LatentConfig, tensors: Mapping[str, np.ndarray], levels: list[np.ndarray],
          target: np.ndarray, scored: np.ndarray | None, step_bits: int
          ) -> dict[str, np.ndarray]:
    """The basis rows, offsets and steps that fit the target best with these levels, as a
    decoder dequantizes them (steps and shrink as stored, the new steps at ``step_bits``).

    Why: the basis and steps were fitted to the maps before they were quantized, and a
    quantized map is not the map.  Given the levels, the decoded cube is linear in the
    basis and offsets (each band's least-squares row is the best that band can do, and the
    metric is a sum over bands of their log MSE), and, basis fixed, linear in a gain per
    (level, component) step (weighted least squares, each band by 1/MSE_b, the metric's
    gradient).  Alternating the two converges in a few rounds.  The coded levels do not
    change, so neither do the latent bytes.  Everything is computed from sufficient
    statistics of the per-level maps (their Gram matrix and their products with the
    target), so a round costs k·L square, not a pass over the pixels.  With knots, the full
    rows are projected onto the knots by least squares.
    """
    from hsz.codec import dequantized

    k, n_levels = config.k, config.levels
    steps = np.asarray(tensors["log2_step"], np.float64)
    shrink = tensors.get("shrink") if config.shrink else None
    x = np.asarray(target, np.float64).reshape(config.bands, -1)
    keep = None if scored is None else np.asarray(scored, bool).reshape(-1)
    if keep is not None:
        x = x[:, keep]
    # (L·k, N): row l·k + j is component j's map from level l.  Held as float32 (a tile's
    # maps can be hundreds of MB) and multiplied out in float64 a slice at a time.
    p = np.empty((n_levels * k, x.shape[1]), np.float32)
    for lvl in range(n_levels):
        only = [lv if i == lvl else np.zeros_like(lv) for i, lv in enumerate(levels)]
        m = coefficient_maps(config, only, steps, shrink).reshape(k, -1)
        p[lvl * k:(lvl + 1) * k] = m if keep is None else m[:, keep]
        del m
    gram = np.zeros((n_levels * k, n_levels * k))
    xp = np.zeros((config.bands, n_levels * k))
    psum = np.zeros(n_levels * k)
    for a in range(0, p.shape[1], 1 << 16):
        part = p[:, a:a + (1 << 16)].astype(np.float64)
        gram += part @ part.T
        xp += x[:, a:a + (1 << 16)] @ part.T
        psum += part.sum(1)
    del p
    n = float(x.shape[1])
    xsum, xx = x.sum(1), (x * x).sum(1)
    comp = np.tile(np.arange(k), n_levels)
    live = np.diag(gram) > 0.0
    ridge = 1e-12 * max(float(np.trace(gram)), 1.0)

    def mixing(gain: np.ndarray) -> np.ndarray:
        """(L·k, k): component j's map is Σ_l gain_l,j · map_l,j."""
        mix = np.zeros((n_levels * k, k))
        mix[np.arange(n_levels * k), comp] = gain
        return mix

    def basis_for(gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Least-squares offsets and rows for maps S = Σ_l gain_l,j · map_l,j."""
        mix = mixing(gain)
        normal = np.empty((k + 1, k + 1))
        normal[0, 0], normal[0, 1:] = n, psum @ mix
        normal[1:, 0], normal[1:, 1:] = normal[0, 1:], mix.T @ gram @ mix
        rhs = np.concatenate([xsum[None, :], (xp @ mix).T])  # (k + 1, bands)
        coef = np.linalg.solve(normal + ridge * np.eye(k + 1), rhs)
        return coef[0], coef[1:].T

    gain = np.ones(n_levels * k)
    for _ in range(REFIT_ROUNDS):
        offset, rows = basis_for(gain)
        # Each band's squared error from the statistics, then a Gauss-Newton step of the
        # metric in the gains: weights 1/MSE_b.
        mix = mixing(gain)
        xs, s1, ss = xp @ mix, psum @ mix, mix.T @ gram @ mix
        sq = (xx - 2.0 * offset * xsum + n * offset**2 - 2.0 * np.einsum("bk,bk->b", xs, rows)
              + 2.0 * offset * (rows @ s1) + np.einsum("bk,kl,bl->b", rows, ss, rows))
        w = 1.0 / np.maximum(sq / n, 1e-24)
        bw = (rows * w[:, None]).T @ rows
        h = gram * bw[comp][:, comp]
        g = ((rows[:, comp] * w[:, None]) * (xp - offset[:, None] * psum[None, :])).sum(0)
        if live.any():
            sub = np.linalg.solve(h[np.ix_(live, live)] + ridge * np.eye(int(live.sum())),
                                  g[live])
            gain[live] = np.clip(sub, 2.0**-GAIN_OCTAVES, 2.0**GAIN_OCTAVES)
    new_steps = (steps + np.log2(gain).reshape(n_levels, k)).astype(np.float32)
    stored = dequantized({"log2_step": new_steps}, {"log2_step": step_bits})["log2_step"]
    offset, rows = basis_for(np.exp2(stored.astype(np.float64) - steps).reshape(-1))
    if config.knots not in (0, config.bands):
        rows = np.linalg.lstsq(knot_matrix(config.bands, config.knots), rows, rcond=None)[0]
    return {"basis": rows.astype(np.float32), "offset": offset.astype(np.float32),
            "log2_step": new_steps}


def fit_to_budget(config: LatentConfig, state: dict[str, Any], pack: Packer,
                  limit: int) -> tuple[Payload, list[np.ndarray]]:
    """Quantize the float tensors by measured sensitivity, then fit the file to ``limit``;
    returns the payload and the levels its grids code.

    Training steered the rate to the budget, so usually the float tensors' bit depths alone
    land the file.  A file that lands well under its budget (the entropy model kept
    learning after the rate was steered) is requantized at a finer step: every latent's
    trained value (``state["values"]``) rounded again at the finest step that fits.  Over
    budget, the float tensors give bits first; when even their fewest bits cannot make
    room, latents nearest zero are dropped (a dead zone, given the trained values); failing
    that, every latent is requantized at a coarser step (its log2 step raised by ``u``, the
    levels divided by 2^u and rounded, the entropy model's scales lowered to match) with
    the smallest ``u`` that fits, found by bisection on the real packed size: a second
    rounding, so a last resort.  Whatever levels it settles on, a ``shrink`` config stores
    their centroid offsets (:func:`centroid_shrink`) beside them.
    """
    from hsz import rate
    from hsz.codec.pack import code_grids

    tensors = {name: np.asarray(state[name], np.float32) for name in TENSOR_BITS}
    values = [np.asarray(v, np.float32) for v in state["values"]]
    deadzone = float(state.get("deadzone", 0.0))
    levels = trained_levels(values, deadzone)
    depths = dict(TENSOR_BITS)
    if config.shrink:
        tensors["shrink"] = centroid_shrink(values, levels)
        depths["shrink"] = SHRINK_BITS
    sens = _sensitivity(config, tensors, levels)
    fewest = {n: max(8, b) for n, b in depths.items()}

    def coded(lv: list[np.ndarray], u: float, bits: Mapping[str, int] = depths) -> Payload:
        """Levels ``lv`` at steps 2^u as large as trained (scales shifted to match), their
        grids coded once; each level's shrink the centroid of the values they code."""
        ts = tensors if u == 0 else dict(tensors,
                                         log2_step=tensors["log2_step"] + np.float32(u))
        if config.shrink:
            scaled = values if u == 0 else [v * np.float32(2.0**-u) for v in values]
            ts = dict(ts, shrink=centroid_shrink(scaled, lv))
        return Payload(ts, dict(bits), code_grids(_grids(config, lv, state["net"], u)))

    def coarser_levels(u: float) -> list[np.ndarray]:
        return levels if u == 0 else [np.rint(v / 2.0**u).astype(np.int32) for v in levels]

    def coarser(u: float) -> Payload:
        """Latents requantized ``u`` octaves coarser (none for u = 0)."""
        return coded(coarser_levels(u), u, fewest)

    def with_bits(p: Payload) -> Payload:
        bits = rate.allocate_bits(p.tensors, lambda b: len(pack(Payload(p.tensors, b, p.grids))),
                                  limit, sens, depths)
        return Payload(p.tensors, bits, p.grids)

    # Training froze the float tensors on their TENSOR_BITS grids, so those depths store
    # them exactly; more bits would put them on another grid (the grids are not nested) and
    # buy error, not accuracy (Jasper Ridge at 0.05 bpppb spent 300 bytes on a 12-bit basis).
    base = coarser(0.0)  # the trained latents, coded once for every attempt below
    exact = Payload(base.tensors, dict(depths), base.grids)
    size = len(pack(exact))
    if size <= limit:
        if size >= FULL * limit:
            return exact, levels

        def finer_levels(u: float) -> list[np.ndarray]:
            return [np.where(np.abs(v) < 0.5 + deadzone, 0.0,
                             dead_rint(v * np.float32(2.0**-u), deadzone)
                             ).clip(-LEVEL_LIMIT - 1, LEVEL_LIMIT).astype(np.int32)
                    for v in values]

        def finer(u: float) -> Payload:
            """The trained values rounded at steps 2^u as large (u < 0), scales to match.

            Latents that rounded to zero stay zero: the rate term leaves many trained
            values just under 0.5, and re-rounding those at a step 1 % finer doubled the
            nonzero latents of a CAVE file (106,801 to 198,315) for no gain in distortion.
            """
            return coded(finer_levels(u), u)

        # No finer than the 16 bits a grid holds: a low band trained near that bound (the
        # corn kernels at 0.07 bpppb) would otherwise be clipped (27.2 dB fitted, 25.6 dB
        # in the file).
        top = max(float(np.abs(v).max(initial=0.0)) for v in values)
        lo = max(-1.0, math.log2(max(top, 1.0) / LEVEL_LIMIT))
        if lo >= 0.0:
            return exact, levels
        u = least_that_fits(lambda v: len(pack(finer(v))) <= limit, lo, 0.0, 6)
        return (exact, levels) if u == 0.0 else (finer(u), finer_levels(u))
    # Over budget: first let the float tensors give way (cheap in quality); only when even
    # their fewest bits cannot make room are the latents requantized (a second rounding).
    try:
        return with_bits(base), levels
    except RateError:
        pass
    # Then a dead zone: the nonzero latents whose trained values lie nearest zero are coded
    # as zero, the least significant first, as many as it takes, so the size falls
    # smoothly (a coarser step cannot: most nonzero latents are ±1 and all of them vanish
    # together once the step doubles, which took a CAVE file from 1.1x its budget to
    # 0.64x).  By rank, not by a threshold on the value: the rate term pushes trained
    # values down to the rounding edge, and so many sat within 0.004 of 0.5 that a
    # threshold took a CAVE file from over its budget to 0.81x in one step.
    mags = np.concatenate([np.abs(v).ravel() for v in values])
    nonzero = np.flatnonzero(np.concatenate([lv.ravel() != 0 for lv in levels]))
    order = nonzero[np.argsort(mags[nonzero], kind="stable")]
    ends = np.cumsum([0] + [lv.size for lv in levels])

    def dead_levels(share: float) -> list[np.ndarray]:
        drop = np.zeros(ends[-1], dtype=bool)
        drop[order[:int(share * order.size)]] = True
        return [np.where(drop[a:b].reshape(v.shape), 0, v).astype(np.int32)
                for v, a, b in zip(levels, ends[:-1], ends[1:], strict=True)]

    def dead(share: float) -> Payload:
        return coded(dead_levels(share), 0.0)

    tried: dict[float, Payload] = {}

    def dead_size(share: float) -> int:
        tried[share] = dead(share)
        return len(pack(tried[share]))

    if order.size and (emptied := dead_size(1.0)) <= limit:
        t = least_that_fits_size(dead_size, limit, 0.0, 1.0, size, emptied, 12)
        return tried[t], dead_levels(t)
    lo, hi = 0.0, 0.125
    while len(pack(coarser(hi))) > limit:
        lo, hi = hi, hi * 2
        if hi > 8:
            raise RateError(f"the latent model cannot be coded in {limit} bytes")
    u = least_that_fits(lambda v: len(pack(coarser(v))) <= limit, lo, hi, 8)
    return with_bits(coarser(u)), coarser_levels(u)


#: Landing's search for a dead zone stops once the file is within this share of its limit.
LAND_CLOSE = 0.998


def least_that_fits_size(size: Callable[[float], int], limit: int, lo: float, hi: float,
                         size_lo: int, size_hi: int, steps: int) -> float:
    """The smallest x in (lo, hi] whose ``size`` fits ``limit``, to (hi − lo)·2^−steps or
    until a fitting size is within LAND_CLOSE of the limit, given ``size_lo`` = size(lo) >
    limit ≥ ``size_hi`` = size(hi), sizes falling as x grows.

    Regula falsi with the Illinois rule rather than bisection: a file's size falls nearly
    linearly in the share of latents a dead zone drops, so an interpolated guess lands close
    in a few codings where bisection spent twelve, and every guess codes every grid (12 of
    the quick start's 16 packings, 6.8 of its 8.9 s of landing).  The finer step keeps
    its six bisections: on a test case the regula falsi landed 8 bytes nearer the limit,
    which left no room for the refit that followed (0.03 dB lost).
    """
    width = (hi - lo) * 2.0**-steps
    over, under = float(size_lo - limit), float(size_hi - limit)
    kept = 0  # +1: lo was kept last time, -1: hi was
    for _ in range(2 * steps):
        if hi - lo <= width or size_hi >= LAND_CLOSE * limit:
            break
        x = hi - under * (hi - lo) / (under - over)
        x = min(max(x, lo + 0.5 * width), hi - 0.5 * width)
        got = size(x)
        if got <= limit:
            hi, size_hi, under = x, got, float(got - limit)
            if kept == 1:
                over *= 0.5
            kept = 1
        else:
            lo, over = x, float(got - limit)
            if kept == -1:
                under *= 0.5
            kept = -1
    return hi


def least_that_fits(fits: Callable[[float], bool], lo: float, hi: float, steps: int) -> float:
    """Bisection for the smallest x in (lo, hi] with ``fits(x)``, given ``fits(hi)``."""
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        if fits(mid):
            hi = mid
        else:
            lo = mid
    return hi


# ------------------------------------------------------------------------------ the family


class Schedule(NamedTuple):
    """One preset's training phases (:func:`hsz.model.latent_fit.fit`)."""

    #: Iterations of the noisy main phase and of the final rounded phase.
    main: int
    final: int
    #: How often training runs the context network over every latent (both phases, and on
    #: the first rounded step); in between it reuses the last outputs.
    context_every: int = 1


#: ``fast`` refreshes the context network every 4th step: noisy steps 28 % shorter (the
#: network over every latent is most of a small scene's step); quality moved -0.03 dB
#: (quick-start crop, 0.2 bpppb), -0.04 and -0.03 (Jasper Ridge, 0.1 and 0.05), -0.02
#: (Indian Pines, 0.1) and +0.10 (Samson, 0.05).  The warm start's rounds are the fit's
#: (:data:`hsz.model.latent_fit.WARM_ROUNDS`): 100 steps on frames under 2^17 pixels, 200
#: on larger ones, where 100 cost CAVE chart and toy (0.05 bpppb, whose file is the start)
#: 0.03 dB, 43.69 against 43.72.
SCHEDULES: dict[str, Schedule] = {
    "fast": Schedule(900, 150, context_every=4),
    "balanced": Schedule(2400, 300),
    "max": Schedule(6000, 600),
}


class LatentFamily(ModelFamily):
    """Rate-trained latent grids over a learned spectral basis (format 1.1 grids)."""

    id = "latent"
    summary = "a spectral basis times rate-trained, context-coded latent grids"
    presets = {name: f"{sc.main} noisy + {sc.final} rounded iterations"
               + (f" (context network on every {sc.context_every}th)"
                  if sc.context_every > 1 else "")
               for name, sc in SCHEDULES.items()}
    preset_note = "frames of 2^17 pixels or more keep the rounded start under every preset"
    default_preset = "balanced"

    def config_from_json(self, obj: Any) -> LatentConfig:
        return LatentConfig.from_json(obj)

    def config_to_json(self, config: LatentConfig) -> dict[str, Any]:
        return config.to_json()

    def describe(self, config: LatentConfig) -> str:
        grids = (f"wavelet subbands ({config.depth} levels)" if config.transform == "dwt"
                 else f"pyramid ({config.levels} levels)")
        return (f"k={config.k}, {grids}, basis knots={config.basis_rows}, "
                f"hidden={config.hidden}, {config.latent_values():,d} latents")

    def plan(self, shape: tuple[int, int, int], payload_bytes: int) -> LatentConfig | None:
        bands, h, w = shape
        # More components as the rate grows: 16 principal components alone cap Indian Pines
        # at 36.2 dB and Jasper Ridge at 48.2 dB, below what higher rates should reach.
        rate = 8.0 * payload_bytes / (bands * h * w)
        most = int(min(48, max(8, round(16 * math.sqrt(max(rate, 1e-9) / 0.1)))))
        # Half as many knots as bands for scenes with very many bands where the full basis
        # would be a large share of the payload.  Not below 256 bands: on Indian Pines
        # (200) a basis at 50 knots measured 0.5 dB below the full one at 0.05 bpppb
        # (32.74 dB at 0.0463 against 33.26 dB at 0.0481).  The corn kernels (580 bands,
        # fast), full basis against knots: at 0.5 bpppb the full basis is 31 % of the
        # payload, 42.1 dB against 55.9; at 0.7 26 %, 83.0 dB against 54.0; at 1.0 20 %,
        # 74.5 dB against 52.1.
        hidden = hidden_units(payload_bytes)
        full = _planned(shape, min(most, bands), hidden)
        knots = half_knots(bands) if fixed_bytes(full) > KNOTS_SHARE * payload_bytes else 0
        # Where the basis is cheap (few bands), as many components as 2 % of the payload
        # can describe: the fit drops those its start leaves (nearly) empty
        # (:func:`hsz.model.latent_fit.worth_keeping`), so a generous count costs little.
        # CAVE balloons at 0.05 bpppb (31 bands), the start before
        # training: 50.6 dB with 11 components, 51.5 with 20, 51.4 with 31; chart and toy
        # 41.8 / 41.8 / 41.9.  Indian Pines keeps the count above (2 % buys 4 components).
        cheap = int(0.02 * payload_bytes / (0.6 * (knots or bands)))
        most = max(most, min(cheap, 64))
        for k in sorted({min(most, bands), 16, 12, 8, 6, 4, 3, LEAST_K}, reverse=True):
            if k > bands or k > most:
                continue
            config = _planned(shape, k, hidden, knots)
            # The fixed part may take at most about a third of the payload: the rest is
            # latents.  0.35, not 1/3: rule 2's network reads 10 more features (160 bytes),
            # which alone took the corn kernels at 0.1 bpppb from 6 components to 4 (35.07
            # dB to 34.20).
            if fixed_bytes(config) <= FIXED_SHARE * payload_bytes:
                return config
        return None

    def smallest_payload_bytes(self, shape: tuple[int, int, int]) -> float:  # type: ignore[override]
        bands = shape[0]
        # The least payload whose own width's fixed part fits (a wider network above a
        # step may need more than the step itself), with the knots the plan takes there:
        # at the least payload the full basis is always over KNOTS_SHARE of it.
        low = 0.0
        for below, width in (*HIDDEN_STEPS, (math.inf, HIDDEN_DEFAULT)):
            least_plan = _planned(shape, min(LEAST_K, bands), width, half_knots(bands))
            least = max(low, fixed_bytes(least_plan) / FIXED_SHARE)
            if least < below:
                return least
            low = below
        raise AssertionError("the last step is unbounded")

    def fit(self, job: FitJob) -> Fitted:
        from hsz.model.latent_fit import fit

        return fit(job, SCHEDULES[self.check_preset(job.preset)])

    def land(self, fitted: Fitted, pack: Packer, limit: int) -> Payload:
        return land_payload(fitted.config, fitted.state, pack, limit)

    def render(self, config: LatentConfig, stored: Stored, band_coords: np.ndarray,
               query: np.ndarray, *, device: str = "cpu") -> Iterator[np.ndarray]:
        yield from render_bands(config, stored, band_coords, query)


FAMILY = LatentFamily()
