"""Fitting the ``latent`` family: the encoder is a training schedule.

The latents are trained against the bits their own entropy model charges them (D + λ·R):

* D is the metric the codec reports, mean over bands of 10·log10(MSE_b), whose gradient
  weights each band by 1/MSE_b instead of over-serving the bands that are already poor.
* R is −log2 of the codec's rule-2 law (a zero-mean Laplace tail with a free zero ratio)
  under the parameters the context network predicts from exactly the features the codec's
  integer rule will read (:mod:`hsz.codec.context`), so what is trained is what is paid
  for.
* First a noisy phase (uniform noise stands in for rounding), then a short phase with true
  rounding through a straight-through gradient at a small learning rate.
* λ is steered during the noisy phase so that the latents' estimated rate settles on the
  share of the budget left after the basis, steps and network: one run lands the file.

Training starts from a file already at the goal rate (the wavelet subbands of the cube's
principal-component maps, the entropy model warm-started on them) and keeps it where
training does not beat it; the start is then rounded for rate and distortion
(:func:`rd_polish`).  Frames of :data:`START_ONLY_FROM_PIXELS` or more keep the start
without training, where it was measured never to lose.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from hsz.codec.context import (
    BASE_FEATURES,
    DEFAULT_RULE,
    RATIO_FEATURES,
    RATIO_STEPS_PER_OCTAVE,
    RATIOS,
    inputs,
    log2_scale_range,
)
from hsz.model import wavelet
from hsz.model._malloc import keep_freed_memory
from hsz.model.family import FitJob, Fitted, loss_mask
from hsz.model.latent import (
    LEVEL_LIMIT,
    TENSOR_BITS,
    LatentConfig,
    Schedule,
    fixed_bytes,
    grid_group,
    knot_matrix,
    least_that_fits,
    measured_fixed_bytes,
    step_per_channel,
)
from hsz.model.training import Adam, fit_threads, lr_factor, resolve_device

#: log2 of the smallest and largest scale the tables of the rule new files use hold.
_LOG2_MIN, _LOG2_MAX = log2_scale_range(DEFAULT_RULE)
#: The smallest probability a training bin gets (the codec's floor is 2^-24 per symbol).
_P_FLOOR = 2.0**-24
#: log2 of the smallest and largest zero ratio p(±1)/p(0) rule 2's rungs hold.
_LOG2_RATIO_MIN, _LOG2_RATIO_MAX = -(RATIOS - 1) / RATIO_STEPS_PER_OCTAVE, 0.0


#: Switches for the ablation benchmark (``examples/bench_ablation.py``); empty is the codec:
#: ``{"loss": "mse"}`` trains on the cube's MSE in dB instead of the band-mean log MSE,
#: ``{"pca_init": False}`` starts from a random orthonormal basis, ``{"metric_pca": b}``
#: weights the start's principal components for the metric (:func:`_metric_principal`) or
#: not, whether or not the start is the file, ``{"context": "none"}`` leaves the context
#: network at zero (a factorized law per grid and component).
ABLATION: dict[str, Any] = {}

#: Frames of at least this many pixels train with mixed quantization in the noisy phase:
#: synthesis from the rounded latents (straight-through), rate from noisy ones.  Measured:
#: CAVE balloons (512x512) at 0.05 bpppb, 30 iterations: 45.3 dB mixed against 40.3 dB
#: noisy (the noisy model trained at 30 dB against 40 dB rounded); Jasper Ridge and Samson
#: (about 100x100), fast preset: noisy better by 0.9 dB (Jasper 0.05 and 0.5) and 2.1 dB
#: (Samson 0.05).  0 would mix everywhere.
MIXED_FROM_PIXELS = 1 << 17

#: Frames of at least this many pixels keep their start (the warm-started, rate-distortion
#: rounded principal-component wavelet subbands) under every preset: no gradient phase
#: runs unless ``epochs`` asks for one.  On CAVE chart and toy (512x512) training never beat
#: the start: at 0.05 bpppb after 10, 40, 150 and 300 iterations (``fast``), at 0.5 after
#: 300 (54.97 dB at the goal rate against 55.65 for the start before its rounding), and
#: under ``balanced`` at 0.1 it diverged (48.4 dB after 300 iterations, 32 dB after 900, λ
#: from 21 to 6,400), each time ending where the start was kept, after up to an hour on
#: two cores; the benchmark's 12 CAVE files were all the start.
START_ONLY_FROM_PIXELS = MIXED_FROM_PIXELS

#: Entries of the noise table beyond the latents' count: the random starts of its windows.
NOISE_SLACK = 1 << 16
#: Learning rate of the latents (in units of their step).
LATENT_LR = 0.1
#: Feature values the context network is evaluated on at once (a bound on its memory).
CONTEXT_CHUNK = 1 << 24
#: A model whose context features take more bytes than this recomputes them, and the rate
#: law's intermediates, in the backward pass instead of keeping them (what bounds a large
#: scene's memory); smaller ones keep them.  Same bytes either way; Indian Pines, ``fast``
#: at 0.1 bpppb: the recomputation was a fifth of the encode (56 of 273 s, profiled).
RECOMPUTE_ABOVE = 1 << 28
#: The entropy model's warm start (:func:`warm_start`): steps of each round (after each, the
#: step moves so that the latents cost the goal), the learning rate each round decays from,
#: and the share of zero latents a large grid's sample draws (WARM_ZEROS, weighted back
#: up; nonzero ones are all drawn up to WARM_CAP).  Measured on
#: CAVE chart and toy at 0.1 bpppb, the start at the goal rate: two full-grid rounds of 30
#: steps at 0.1 (what came before) 46.89 dB in 158 s; four sampled rounds of 200 steps
#: 47.27-47.45 dB over five runs in 150-230 s (two runs at a time).  More rounds matter
#: more than more steps: three rounds of 300 gave 47.39, two of 200 47.21.
WARM_ROUNDS = (200, 200, 200, 200)
#: Frames of fewer pixels than MIXED_FROM_PIXELS (every scene but CAVE's 512x512) train
#: rounds of 100 steps instead.  Measured against rounds of 200 (fast): the quick-start crop
#: at 0.2 bpppb 33.880 against 33.858 dB (warm start 4.1 against 6.1-7.2 s), Jasper Ridge
#: at 0.1 44.434 against 44.387, Samson at 0.05 42.113 against 42.091, Indian Pines at 0.1
#: 36.475 against 36.439 (65 against 69 s).  On CAVE chart and toy at 0.05 (older code)
#: they gave 43.69 against 43.72 dB, so large frames keep 200.
WARM_ROUNDS_SMALL = (100, 100, 100, 100)
WARM_LR = 0.05
WARM_ZEROS = 1.0 / 16.0
#: Grids of at most this many latents enter the warm start's sample whole.  Thinning their
#: zeros too cost CAVE chart and toy at 0.05 bpppb (whose file is the start) 0.06 dB (43.600
#: against 43.662), for 1-9 s less on the small scenes at about their quality.
WARM_WHOLE = 1 << 16
#: About the most latents the warm start's sample draws (nonzeros and zeros thinned alike).
#: Indian Pines at 0.5 bpppb drew about 500,000 a round (the four
#: rounds 39 s of a 202 s encode); at 2^17 they took 23 s and the fit gave 39.671 dB
#: against 39.675.  CAVE chart and toy at 0.05 bpppb (whose file is the start), fit dB for
#: seeds 0 / 1 / 2: all drawn 43.546 / 43.506 / 43.558, 2^17 43.447 / 43.542 / 43.463,
#: 2^18 (kept) 43.514 / 43.529 for seeds 1 and 2.
WARM_CAP = float(1 << 18)


#: The dead zone of the start's rounding (:func:`dead_round`).  Measured on CAVE chart and
#: toy at 0.1 bpppb, the warm start run with each rounding (seed 0), at the goal rate:
#: 47.46 dB rounding to nearest, 47.65 with 0.1, 47.70 with 0.2.
START_DEADZONE = 0.2


def dead_round(x: Tensor, deadzone: float) -> Tensor:
    """``x`` rounded with every bin edge ``deadzone`` further from zero: ``sign(x)·
    floor(|x| + 0.5 − deadzone)``; 0 is plain rounding.

    Why: a wavelet subband's values are peaked at zero, so the ones just past ±0.5 cost
    more bits as ±1 than the error they remove (a video codec's rounding offset); the
    entropy model and step are then fitted to the rounding that is used.
    """
    if deadzone == 0.0:
        return torch.round(x)
    return torch.sign(x) * torch.floor((x.abs() + (0.5 - deadzone)).clamp(min=0.0))


def features(q: Tensor, guide: Tensor | None, first: int = 0, group: int = 1) -> Tensor:
    """The codec's rule-2 features of every position of every channel: (38, C, h, w).

    Feature-major, so that each feature is one contiguous copy and the first layer is one
    matrix product over all positions (a position-major stack was half of a 512×512
    training step).  ``q`` may be channels ``first, first + 1, ...`` of a grid; its first
    ``group`` channels then lack what lies before them (callers pass ``group`` channels
    more and drop them).  Only what no neighbour fills is zeroed, and a guide of half or
    the same size is read by slicing rather than gathering: training builds these at every
    step.
    """
    c, h, w = q.shape
    f = q.new_empty((inputs(DEFAULT_RULE), c, h, w))
    p = F.pad(q, (1, 1, 1, 1))
    n4 = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    for j, (dy, dx) in enumerate(n4):
        f[j] = p[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
    # Same-channel neighbours are known only to the odd (second) pass.
    f[:4, :, 0::2, 0::2] = 0
    f[:4, :, 1::2, 1::2] = 0
    f[4:9, :1] = 0
    if c > 1:
        f[4, 1:] = q[:-1]
        for j, (dy, dx) in enumerate(n4):
            f[5 + j, 1:] = p[:-1, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
    if guide is None:
        f[9:BASE_FEATURES] = 0
    else:
        gc, gh, gw = guide.shape
        g = guide if first == 0 and c == gc else \
            guide[torch.clamp(torch.arange(first, first + c, device=q.device), max=gc - 1)]
        gp = F.pad(g, (1, 1, 1, 1))
        if (gh, gw) == (h, w):
            for j, (dy, dx) in enumerate([(0, 0)] + n4):
                f[9 + j] = gp[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        elif (2 * gh, 2 * gw) == (h, w):
            # Row y reads guide row y // 2: the padded guide doubled, then sliced.
            up = gp[:, :, None, :, None].expand(c, gh + 2, 2, gw + 2, 2).reshape(
                c, h + 4, w + 4)
            for j, (dy, dx) in enumerate([(0, 0)] + n4):
                f[9 + j] = up[:, 2 + 2 * dy : 2 + 2 * dy + h, 2 + 2 * dx : 2 + 2 * dx + w]
        else:
            iy = (torch.arange(h, device=q.device) * gh) // h
            ix = (torch.arange(w, device=q.device) * gw) // w
            for j, (dy, dx) in enumerate([(0, 0)] + n4):
                f[9 + j] = gp[:, (iy + 1 + dy)[:, None], (ix + 1 + dx)[None, :]]
    f[BASE_FEATURES:RATIO_FEATURES, :group] = 0
    if c > group:
        for j, (dy, dx) in enumerate([(0, 0)] + n4):
            f[BASE_FEATURES + j, group:] = p[:-group, 1 + dy : 1 + dy + h,
                                              1 + dx : 1 + dx + w]
    torch.abs(f[:RATIO_FEATURES], out=f[RATIO_FEATURES:])
    return f


def laplace_bits(q: Tensor, log2_scale: Tensor) -> Tensor:
    """−log2 of the unit bin around q under a zero-mean Laplace of that scale.

    At integer q this is the codec's table (SPEC.md §6.3); with uniform noise added it is
    the smooth stand-in that noisy training needs (a plain geometric law charges noisy
    zeros several bits and drives the scales the wrong way).
    """
    b = torch.exp2(log2_scale)
    d = q.abs()
    upper = 0.5 * torch.exp(-(d + 0.5) / b)
    p_tail = 0.5 * torch.exp(-(d - 0.5).clamp(min=0) / b) - upper
    p_mid = 1.0 - 0.5 * torch.exp((d - 0.5).clamp(max=0) / b) - upper
    p = torch.where(d >= 0.5, p_tail, p_mid)
    return -torch.log2(p.clamp(min=0) + _P_FLOOR)


def ratio_bits(q: Tensor, log2_ratio: Tensor, log2_scale: Tensor) -> Tensor:
    """−log2 of rule 2's law at q: ``p(0) ∝ 1``, ``p(±d) ∝ r·a^(d−1)``, ``a = e^(−1/s)``.

    At integer q this is the codec's table; between integers it is the probability
    interpolated linearly (the bin mass of the histogram-shaped density), the smooth
    stand-in noisy training needs.
    """
    log2_a = -torch.exp2(-log2_scale) / math.log(2.0)
    a = torch.exp2(log2_a)
    r = torch.exp2(log2_ratio)
    log2_z = torch.log2(1.0 + 2.0 * r / (1.0 - a).clamp(min=1e-12))
    d = q.abs()
    d0 = torch.floor(d).detach()
    t = d - d0

    def log2_p(k: Tensor) -> Tensor:
        tail = log2_ratio + (k - 1.0).clamp(min=0.0) * log2_a
        return torch.where(k >= 1.0, tail, torch.zeros_like(tail)) - log2_z

    p = (1.0 - t) * torch.exp2(log2_p(d0)) + t * torch.exp2(log2_p(d0 + 1.0))
    return -torch.log2(p + _P_FLOOR)


def _law(context: Tensor, scale_bias: Tensor, ratio_bias: Tensor) -> tuple[Tensor, Tensor]:
    """Rule 2's (log2 ratio, log2 scale) from the context outputs and the channel biases,
    within the ranges the codec's tables hold."""
    return ((context[0] + ratio_bias).clamp(_LOG2_RATIO_MIN, _LOG2_RATIO_MAX),
            (context[1] + scale_bias).clamp(_LOG2_MIN, _LOG2_MAX))


def _level_bits(q: Tensor, context: Tensor, scale_bias: Tensor, ratio_bias: Tensor,
                weights: Tensor | None = None) -> Tensor:
    """Bits of latents ``q`` given their context outputs (ratio, scale) and their
    channels' biases (shaped to broadcast against ``q``), each weighted when ``weights``."""
    lr, ls = _law(context, scale_bias, ratio_bias)
    bits = ratio_bits(q, lr, ls)
    return (bits if weights is None else bits * weights).sum()


def _channel_chunks(c: int, h: int, w: int, group: int) -> Iterator[tuple[int, int, int]]:
    """``(lo, first, end)`` for the channels of a (c, h, w) grid, a few at a time within
    CONTEXT_CHUNK feature values: channels ``first … end − 1`` with the ``group`` before
    them (from ``lo``), whose values are their features."""
    step = max(1, CONTEXT_CHUNK // (inputs(DEFAULT_RULE) * h * w))
    for first in range(0, c, step):
        yield max(0, first - group), first, min(c, first + step)


#: Rounds of :func:`_metric_principal`'s estimate (0: plain principal components).
METRIC_ROUNDS = 2
#: How far a band's weight in :func:`_metric_principal` may stray from their geometric
#: mean, either way: a band the estimate gives almost no error would otherwise take a
#: component of its own.
METRIC_WEIGHT_SPAN = 100.0


def _principal(cov: Tensor, weight: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` leading principal directions of the bands scaled by ``sqrt(weight)``: the
    synthesis basis (its columns take scores back to bands) and the analysis matrix (its
    columns make the scores); the two are one matrix where every weight is 1."""
    s = weight.sqrt()
    evals, evecs = torch.linalg.eigh(cov * s[:, None] * s[None, :])
    u = evecs[:, torch.argsort(evals, descending=True)[:k]]
    return u / s[:, None], u * s[:, None]


def _subbands(config: LatentConfig, scores: Tensor) -> list[Tensor]:
    """The wavelet subbands of (K, H, W) scores as the ``dwt`` grids lay them out, the
    frame first extended to whole multiples of the transform's depth."""
    depth = config.depth
    _, h, w = scores.shape
    grown = wavelet.extend(scores.float(), wavelet.padded(h, depth), wavelet.padded(w, depth),
                           torch)
    return [p.contiguous() for p in wavelet.analyze(grown, depth, torch)]


def _metric_principal(config: LatentConfig, cov: Tensor, centred: Tensor,
                      hw: tuple[int, int], k: int, goal_bits: float) -> tuple[Tensor, Tensor]:
    """Principal directions of the bands weighted for the metric: each band by 1 / the
    MSE the rounded wavelet start would leave it, estimated (the step that a zeroth-order
    rate puts at the goal, the start's dead zone) and re-estimated :data:`METRIC_ROUNDS`
    times.

    Why: the metric is the mean over bands of 10·log10 MSE_b, whose slope weighs each
    band's squared error by 1 / MSE_b, while plain principal components and one step for
    all spend bits for the plain sum of squared errors.  Where a few bands are far noisier
    than the rest (CAVE's blue end), the sum is theirs to decide.  CAVE chart and toy at
    0.05 bpppb: 43.74 -> 44.12 dB (SAM 5.11 -> 4.98 degrees, global PSNR 44.04 -> 44.14);
    feathers 43.36 -> 43.58; balloons 52.96 -> 53.00; at 0.5 bpppb the estimate is almost
    flat and nothing moves.

    Only for a start that is the file: a fit that trains tunes its basis for the metric
    itself, and from this start it ended worse at high rates.  At 0.5 bpppb Indian Pines
    fell 39.79 -> 39.48 dB (SAM 0.93 -> 1.36 degrees, global PSNR 44.4 -> 41.3), Jasper
    Ridge's SAM rose 1.24 -> 1.72 and Samson's global PSNR fell 59.0 -> 55.2, against gains
    of 0.15-0.70 dB at 0.1-0.2 bpppb.
    """
    weight = torch.ones(cov.shape[0], dtype=cov.dtype)
    flat_shape = torch.zeros(config.levels, k)
    span = math.log(METRIC_WEIGHT_SPAN)
    for _ in range(METRIC_ROUNDS):
        basis, analysis = _principal(cov, weight, k)
        parts = _subbands(config, (analysis.T @ centred).reshape(k, *hw))
        step = 2.0 ** _start_offset(config, parts, flat_shape, goal_bits)
        err = torch.zeros(k, dtype=cov.dtype)
        for part in parts:  # a detail grid holds each component's three subbands in a row
            q = dead_round(part / step, START_DEADZONE) * step
            e = ((part - q).double() ** 2).sum(dim=(1, 2))
            err += e.reshape(k, -1).sum(1)
        mse = ((basis * basis) @ err).clamp(min=1e-30)
        log_w = -torch.log(mse)
        log_w = log_w - log_w.mean()
        weight = torch.exp(log_w.clamp(-span, span))
    return _principal(cov, weight, k)


class LatentModel(nn.Module):
    """The trainable twin of the decoder plus the float twin of the context network."""

    def __init__(self, target: Tensor, weight: Tensor | None, config: LatentConfig,
                 goal_bits: float | None = None, metric_start: bool = False) -> None:
        super().__init__()
        self.config = config
        b, h, w = target.shape
        k, n_levels = config.k, config.levels
        flat = target.reshape(b, -1).double()
        valid = flat if weight is None else flat[:, weight.reshape(-1) > 0]
        mean = valid.mean(1)
        centred = valid - mean[:, None]
        cov = centred @ centred.T / max(1, centred.shape[1])
        del centred
        spread = flat - mean[:, None]  # every pixel, masked ones too, about the mean
        if ABLATION.get("pca_init") is False:
            basis = analysis = torch.linalg.qr(torch.randn(b, k, dtype=cov.dtype))[0]
        elif metric_start and config.transform == "dwt" and goal_bits:
            basis, analysis = _metric_principal(config, cov, spread, (h, w), k, goal_bits)
        else:
            basis, analysis = _principal(cov, torch.ones(b, dtype=cov.dtype), k)
        scores = (analysis.T @ spread).reshape(k, h, w)
        if weight is not None:
            scores = scores * weight
        self.offset = nn.Parameter(mean.float())
        interp = torch.from_numpy(knot_matrix(b, config.knots)).to(basis)
        self.register_buffer("interp", interp.float())
        # Knots: the least-squares fit of the principal components through the interpolation.
        knots = torch.linalg.lstsq(interp, basis).solution
        self.basis = nn.Parameter(knots.float())
        sizes = config.sizes()
        if config.transform == "dwt":
            # The wavelet subbands of the principal-component scores, one step everywhere
            # (the transform is nearly orthonormal).
            parts = _subbands(config, scores)
            shape = torch.zeros(n_levels, k)
        else:
            # Steps start coarse at full resolution and halve per level; the latents start
            # as a Laplacian pyramid of the principal-component scores.
            residual = scores.float()
            parts = [residual] * n_levels
            for lvl in reversed(range(n_levels)):
                part = residual if lvl == 0 else F.adaptive_avg_pool2d(residual[None],
                                                                       sizes[lvl])[0]
                parts[lvl] = part
                residual = residual - self.up(part)
            shape = torch.tensor([[-1.0 * lvl] * k for lvl in range(n_levels)])
        # Latents are in units of their step, so a step that must shrink a lot drags every
        # latent with it; start instead where the rounded pyramid already costs about the
        # goal, so that training refines rather than rescales.
        offset = _start_offset(config, parts, shape, goal_bits) if goal_bits else \
            math.log2(0.3)
        self.log2_step = nn.Parameter((shape + offset).float())
        self.latents = nn.ParameterList(
            nn.Parameter((p / torch.exp2(self._steps(lvl).detach())[:, None, None])
                         .contiguous())
            for lvl, p in enumerate(parts)
        )
        self.ctx1 = nn.Linear(inputs(DEFAULT_RULE), config.hidden)
        self.ctx2 = nn.Linear(config.hidden, 2)  # log2 zero ratio, log2 scale
        nn.init.zeros_(self.ctx2.weight)
        nn.init.zeros_(self.ctx2.bias)
        # Each (level, component) starts at the scale of its own rounded latents, the
        # estimate the start offset was chosen with, so the first rate is close to the goal.
        # Rows are padded to the widest grid (a wavelet's details have 3K channels, its low
        # band K); a grid uses the first rows it has channels for.
        # The zero ratio starts at each one's own p(±1)/p(0).
        with torch.no_grad():
            fitted = torch.full((n_levels, config.max_channels), 1e-3)
            ratio = torch.full((n_levels, config.max_channels), 2.0**_LOG2_RATIO_MIN)
            for lvl, p in enumerate(self.latents):
                r = torch.round(p)
                fitted[lvl, :p.shape[0]] = r.abs().mean(dim=(1, 2)).clamp(min=1e-3)
                zeros = (r == 0).float().mean(dim=(1, 2)).clamp(min=1e-6)
                ones = 0.5 * (r.abs() == 1).float().mean(dim=(1, 2))
                ratio[lvl, :p.shape[0]] = ones / zeros
        self.scale_bias = nn.Parameter(torch.log2(fitted).clamp(_LOG2_MIN, _LOG2_MAX).float())
        self.ratio_bias = nn.Parameter(torch.log2(ratio.clamp(min=1e-12)).clamp(
            _LOG2_RATIO_MIN, _LOG2_RATIO_MAX).float())
        self._cache: list[Tensor] | None = None
        self._table: Tensor | None = None  # noise, see _noise
        #: The rounding's dead zone (:func:`dead_round`): the start's, or 0 in training.
        self.deadzone = 0.0

    def level(self, p: Tensor) -> Tensor:
        """Latents ``p`` as the integers this model's rounding makes of them."""
        return dead_round(p, self.deadzone)

    def up(self, x: Tensor) -> Tensor:
        size = (self.config.height, self.config.width)
        if tuple(x.shape[-2:]) == size:
            return x
        return F.interpolate(x[None], size=size, mode="bilinear", align_corners=False)[0]

    def _steps(self, lvl: int) -> Tensor:
        """log2 steps of grid ``lvl``, one per channel."""
        return step_per_channel(self.config, lvl, self.log2_step[lvl])

    def maps(self, qs: list[Tensor]) -> Tensor:
        scaled = [q * torch.exp2(self._steps(lvl))[:, None, None] for lvl, q in enumerate(qs)]
        if self.config.transform == "dwt":
            h, w = self.config.height, self.config.width
            return wavelet.synthesize(scaled, torch)[:, :h, :w]
        out = 0.0
        for part in scaled:
            out = out + self.up(part)
        return out  # type: ignore[return-value]

    @property
    def large(self) -> bool:
        """Whether the context features of every latent take more than RECOMPUTE_ABOVE
        bytes: such a model recomputes in the backward pass and codes grid by grid."""
        return 4 * inputs(DEFAULT_RULE) * self.config.latent_values() > RECOMPUTE_ABOVE

    def recompute(self) -> bool:
        """Whether the backward pass recomputes the rate's intermediates (RECOMPUTE_ABOVE)."""
        return torch.is_grad_enabled() and self.large

    def context(self, lvl: int, seen: list[Tensor]) -> Tensor:
        """The context network's outputs for every latent of one level: (2, C, h, w).

        Computed a few channels at a time, each chunk recomputed in the backward pass
        rather than kept: the features of a full-size grid are 38 maps per channel (1.2 GB
        for 31 components at 512x512), which made them most of a fit's peak memory.
        """
        guide = seen[lvl + 1] if lvl + 1 < len(seen) else None
        q = seen[lvl]
        c, h, w = q.shape
        group = grid_group(self.config, lvl)
        outs = []
        recompute = self.recompute()
        for lo, first, end in _channel_chunks(c, h, w, group):
            args = (q[lo:end], guide, lo, first - lo, group)
            outs.append(checkpoint(self._context_chunk, *args, use_reentrant=False)
                        if recompute else self._context_chunk(*args))
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)

    def _context_chunk(self, q: Tensor, guide: Tensor | None, first: int, skip: int,
                       group: int) -> Tensor:
        f = features(q, guide, first, group)[:, skip:]
        return self.network(f.reshape(f.shape[0], -1)).reshape(2, *f.shape[1:])

    def network(self, f: Tensor) -> Tensor:
        """The float twin's outputs (ratio, scale), (2, n), for feature columns (F, n)."""
        hid = F.relu(self.ctx1.weight @ f + self.ctx1.bias[:, None])
        return self.ctx2.weight @ hid + self.ctx2.bias[:, None]

    def bits(self, qs: list[Tensor], seen: list[Tensor] | None = None,
             refresh: bool = True) -> Tensor:
        """Bits of ``qs`` under the context network reading ``seen`` (default: qs itself).

        Training passes the rounded latents as ``seen``: the codec's network reads integers,
        and a network trained on noisy neighbours mispredicts them (the rate jumped by about
        a tenth when a prototype switched from one to the other).  With ``refresh`` False the
        network's outputs from the last refresh are reused (the per-grid scale biases still
        train): the network is most of a step's cost, and rounded latents move slowly.
        """
        # All grids in one call of the law on small models: its few dozen elementwise
        # operations per grid cost more than their arithmetic there.  Decided by size
        # alone, so that outputs cached under one grad mode serve the other.
        pooled = not self.large
        if refresh or self._cache is None:
            seen = [q.detach() for q in (qs if seen is None else seen)]
            outs = [self.context(lvl, seen) for lvl in range(len(qs))]
            if pooled:
                outs = [torch.cat([o.reshape(2, -1) for o in outs], 1)]
            self._cache = [o.detach() for o in outs]
        else:
            outs = self._cache
        if pooled:
            return _level_bits(torch.cat([q.reshape(-1) for q in qs]), outs[0],
                               self._per_latent(self.scale_bias, qs),
                               self._per_latent(self.ratio_bias, qs))
        recompute = self.recompute()
        total = torch.zeros((), device=qs[0].device)
        for lvl, q in enumerate(qs):
            # Recomputed in the backward pass on large models: the law's dozen elementwise
            # intermediates at full resolution were a third of a fit's peak memory.
            args = (q, outs[lvl], self.scale_bias[lvl, :q.shape[0], None, None],
                    self.ratio_bias[lvl, :q.shape[0], None, None])
            total = total + (checkpoint(_level_bits, *args, use_reentrant=False)
                             if recompute else _level_bits(*args))
        return total

    def pooled_bits(self, values: Tensor, context: Tensor, rows: Tensor,
                    weights: Tensor | None = None) -> Tensor:
        """Bits of latents drawn from several grids, each with its context outputs and its
        row in the flattened (grid, channel) bias tables."""
        return _level_bits(values, context, self.scale_bias.reshape(-1)[rows],
                           self.ratio_bias.reshape(-1)[rows], weights)

    @staticmethod
    def _per_latent(table: Tensor, qs: list[Tensor]) -> Tensor:
        """A (grid, channel) bias table spread over every latent of ``qs``, grids in order.

        Broadcast rather than gathered: a gather's backward accumulates into the table one
        index at a time (10 of 108 ms of an Indian Pines step at 0.5 bpppb, 1 M latents),
        where a broadcast's is a sum over each channel.
        """
        return torch.cat([table[lvl, :c, None].expand(c, h * w).reshape(-1)
                          for lvl, (c, h, w) in enumerate(q.shape for q in qs)])

    def _noise(self) -> list[Tensor]:
        """Uniform noise in [−0.5, 0.5) shaped like every latent grid: consecutive windows of
        one table drawn once, from a random start each call.

        Each latent sees an independent draw from the table at every step (the starts are
        random), and neighbours see different entries; drawing afresh cost 6.0 against 0.2
        ms a step for the 860,000 latents of Indian Pines at 0.5 bpppb (2 threads).
        """
        sizes = [p.numel() for p in self.latents]
        total = sum(sizes) + NOISE_SLACK
        if self._table is None or self._table.numel() != total:
            self._table = torch.rand(total, device=self.basis.device) - 0.5
        at = int(torch.randint(0, NOISE_SLACK + 1, ()))
        out = []
        for p, n in zip(self.latents, sizes, strict=True):
            out.append(self._table[at:at + n].view_as(p))
            at += n
        return out

    def mix(self) -> Tensor:
        """The basis at every band, (B, K): maps to bands."""
        return self.interp @ self.basis

    def reconstruct(self, maps: Tensor) -> Tensor:
        """The bands (B, H·W) the decoder makes of coefficient maps (K, H, W)."""
        return self.offset[:, None] + self.mix() @ maps.reshape(maps.shape[0], -1)

    def forward(self, mode: str, refresh: bool = True) -> tuple[Tensor, Tensor]:
        """The reconstruction (B, H·W) and the latents' bits (see :meth:`coded`)."""
        s, bits = self.coded(mode, refresh)
        return self.reconstruct(s), bits

    def coded(self, mode: str, refresh: bool = True) -> tuple[Tensor, Tensor]:
        """The coefficient maps (K, H, W) the decoder synthesizes and the latents' bits:
        with uniform noise standing in for rounding (``noise``) or rounded (``round``)."""
        def rounded() -> list[Tensor]:  # straight-through
            return [p + (self.level(p) - p).detach() for p in self.latents]

        if mode == "noise":
            noisy = [p + u for p, u in zip(self.latents, self._noise(), strict=True)]
            # Mixed quantization: the rate sees noise (a smooth stand-in whose gradient
            # reaches latents near zero), the synthesis sees the rounded latents the decoder
            # will (noise in every latent of a coarse step drowned the signal: a 512x512
            # CAVE scene trained at 30 dB noisy against 40 dB rounded).
            big = self.config.height * self.config.width >= MIXED_FROM_PIXELS
            to_synth = rounded() if big else noisy
            to_rate = noisy
        else:
            to_synth = to_rate = rounded()
        s = self.maps(to_synth)
        # The levels the network reads, unless its cached outputs stand in for it.
        cached = not refresh and self._cache is not None
        seen = None if cached else [self.level(p) for p in self.latents]
        return s, self.bits(to_rate, seen, refresh)


class _BandSSE(torch.autograd.Function):
    """Per band, the (pixel-weighted) sum of squared errors of ``offset + mix @ maps``
    against the target, without the reconstruction's intermediates.

    Autograd's chain (product, offset, difference, square, mean) made and walked half a
    dozen band-by-pixel tensors per step; this makes one, the residual, and reuses it for
    the gradient.  Measured alone, forward and backward: 7.0 against 4.9 ms on the 64x64x200
    quick-start crop, 34.7 against 23.8 ms on Indian Pines (43 components, 2 threads).
    """

    @staticmethod
    def forward(ctx: Any, mix: Tensor, maps: Tensor, offset: Tensor, target: Tensor,
                weight: Tensor | None) -> Tensor:
        r = torch.addmm(offset[:, None], mix, maps).sub_(target)
        rw = r if weight is None else r * weight
        ctx.save_for_backward(mix, maps, rw)
        return torch.einsum("bp,bp->b", rw, r)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        mix, maps, rw = ctx.saved_tensors
        g = rw * (2.0 * grad)[:, None]
        need = ctx.needs_input_grad
        return (g @ maps.T if need[0] else None, mix.T @ g if need[1] else None,
                g.sum(1) if need[2] else None, None, None)


def _scored_db(model: LatentModel, maps: Tensor, target: Tensor, weight: Tensor | None
               ) -> Tensor:
    """:func:`_band_db` of the model's reconstruction from ``maps`` (K, H, W), through
    :class:`_BandSSE`."""
    pixels = float(target.shape[1]) if weight is None else weight.sum()
    sse = _BandSSE.apply(model.mix(), maps.reshape(maps.shape[0], -1), model.offset,
                         target, weight)
    return (10.0 * torch.log10(sse / pixels + 1e-12)).mean()


def _start_offset(config: LatentConfig, parts: list[Tensor], shape: Tensor,
                  goal_bits: float) -> float:
    """The global log2 step at which the rounded pyramid's entropy is nearest the goal.

    The entropy is estimated per (level, component) with a zero-mean Laplace fitted to the
    rounded values: a cheap, monotone stand-in for the trained context model.
    """
    def bits(offset: float) -> float:
        total = 0.0
        for lvl, part in enumerate(parts):
            steps = step_per_channel(config, lvl, shape[lvl] + offset)
            q = torch.round(part / torch.exp2(steps)[:, None, None])
            b = q.abs().mean(dim=(1, 2)).clamp(min=1e-3)[:, None, None]
            total += float(laplace_bits(q, torch.log2(b).clamp(_LOG2_MIN, _LOG2_MAX)).sum())
        return total

    lo, hi = -16.0, 6.0
    for _ in range(30):  # bits fall as the step grows
        mid = 0.5 * (lo + hi)
        if bits(mid) > goal_bits:
            lo = mid
        else:
            hi = mid
    return hi


@dataclass
class _Sample:
    """Latents drawn from every grid for the warm start: their features, values, rows in
    the flattened (grid, channel) bias tables and weights (1 / the share of their kind
    drawn, so the sum is the whole grid's bits)."""

    features: Tensor  # (F, m)
    values: Tensor  # (m,)
    rows: Tensor  # (m,)
    weights: Tensor  # (m,)


def _warm_sample(model: LatentModel, qs: list[Tensor], gen: torch.Generator) -> _Sample:
    """Small grids whole; of larger ones, the nonzero latents and a WARM_ZEROS share of the
    zeros (both thinned alike where they would pass WARM_CAP); their features computed once.

    The latents do not move within a round, so their features are fixed: computing them
    once for a sample turns each training step into one small matrix product, where the
    full grids' features had to be rebuilt (and checkpointed) at every step.  Zeros are most
    of a sparse grid and cheap to predict, so they are drawn sparsely and weighted up.  The
    grids are pooled into one sample, so that a step runs the network and the law once: a
    round of 200 steps took 2.0 s against 2.3 s grid by grid on a 64x64x200 crop, 4.6 s
    against 6.8 s at 145x145 (24 components, 2 threads).
    """
    out = []
    width = model.scale_bias.shape[1]
    # The share of a large grid's nonzero latents drawn (its zeros: WARM_ZEROS of that), so
    # that the whole sample stays near WARM_CAP.
    expected = sum(float((q != 0).sum()) * (1.0 - WARM_ZEROS) + WARM_ZEROS * q.numel()
                   for q in qs if q.numel() > WARM_WHOLE)
    share = min(1.0, WARM_CAP / expected) if expected > 0 else 1.0
    for lvl, q in enumerate(qs):
        c, h, w = q.shape
        n = c * h * w
        flat = q.reshape(-1)
        if n <= WARM_WHOLE:
            idx = torch.arange(n, device=q.device)
            weights = torch.ones(n, device=q.device)
        else:
            u = torch.rand(n, generator=gen).to(q.device)
            idx = torch.nonzero(u < torch.where(flat != 0, share, share * WARM_ZEROS)
                                ).reshape(-1)
            weights = torch.where(flat[idx] != 0, 1.0 / share, 1.0 / (share * WARM_ZEROS))
        group = grid_group(model.config, lvl)
        guide = qs[lvl + 1] if lvl + 1 < len(qs) else None
        parts = []
        for lo, first, end in _channel_chunks(c, h, w, group):
            f = features(q[lo:end], guide, lo, group)[:, first - lo:]
            a, b = first * h * w, end * h * w
            mine = idx[(idx >= a) & (idx < b)] - a
            parts.append(f.reshape(f.shape[0], -1)[:, mine])
        # Rows of the flattened (grid, channel) bias tables, for the drawn latents only
        # (the full table of a 512x512 scene would be tens of MB).
        out.append(_Sample(torch.cat(parts, 1), flat[idx], lvl * width + idx // (h * w),
                           weights))
    return _Sample(*(torch.cat([getattr(smp, name) for smp in out], -1)
                     for name in ("features", "values", "rows", "weights")))


def _sample_bits(model: LatentModel, sample: _Sample) -> Tensor:
    """The estimated bits of every grid from the sample, as :meth:`LatentModel.bits`
    counts them."""
    return model.pooled_bits(sample.values, model.network(sample.features), sample.rows,
                             sample.weights)


def warm_start(model: LatentModel, goal_bits: float, rounds: tuple[int, ...] = WARM_ROUNDS,
               seed: int = 0, report: Callable[[int], None] | None = None) -> None:
    """Train the entropy model on the starting latents, then move every step so that the
    latents cost the goal under it; again each round, since the model learns at the new
    steps too (the first round moved CAVE's steps by about 1.2 octaves, the fourth by
    less than 0.01).

    The start's step was chosen under a context-free Laplace, which overcharges sparse
    wavelet subbands: on CAVE balloons at 0.05 bpppb, 40 steps of the context network
    alone took the starting latents from 0.046 to 0.033 bits per value.  Fitted later by
    the joint loop, the network learns slowly while the latents and steps chase a rate
    that keeps moving.  Here the latents' values in map units stay as they are; only the
    step (one shift for all) and the rounding change.  Each round trains on a sample
    (:func:`_warm_sample`) with a learning rate decaying along a half cosine; the step is
    then chosen on the exact bits of the whole grids.
    """
    gen = torch.Generator().manual_seed(seed)
    for i, steps in enumerate(rounds):
        train_entropy(model, steps, gen)
        settle_step(model, goal_bits)
        if report is not None:
            report(i + 1)


def train_entropy(model: LatentModel, steps: int, gen: torch.Generator) -> None:
    """One round of the warm start: the context network and channel biases trained on a
    sample of the latents as they round now (the latents and steps stay)."""
    params = [*model.ctx1.parameters(), *model.ctx2.parameters(), model.scale_bias,
              model.ratio_bias]
    with torch.no_grad():
        sample = _warm_sample(model, [model.level(p.detach()) for p in model.latents], gen)
    opt = Adam([{"params": params, "lr": WARM_LR}])
    with torch.enable_grad():
        for i in range(steps):
            for g in opt.param_groups:
                g["lr"] = WARM_LR * (0.05 + 0.475 * (1.0 + math.cos(math.pi * i / steps)))
            bits = _sample_bits(model, sample)
            opt.zero_grad(set_to_none=True)
            bits.backward()
            opt.step()


def _in_map_units(model: LatentModel) -> tuple[list[Tensor], tuple[Tensor, Tensor]]:
    """The latents' values in map units and the steps and scale biases they were taken at:
    what a step shift (:func:`_shift_steps`, :func:`_place`) starts from."""
    with torch.no_grad():
        values = [p.detach() * torch.exp2(model._steps(lvl))[:, None, None]
                  for lvl, p in enumerate(model.latents)]
    return values, (model.log2_step.detach().clone(), model.scale_bias.detach().clone())


def settle_step(model: LatentModel, goal_bits: float) -> None:
    """Move every step by one shift (scale biases the other way), the latents' values in
    map units kept, to where the latents, rounded as the model rounds, cost the goal."""
    values, base = _in_map_units(model)

    # Bits fall as the step grows.
    def fits(delta: float) -> bool:
        with torch.no_grad():
            q = _shift_steps(model, values, base, delta)
            return float(model.bits(q, q)) <= goal_bits

    delta = least_that_fits(fits, -3.0, 3.0, 10)
    with torch.no_grad():
        _place(model, values, base, delta)


def _shift_steps(model: LatentModel, values: list[Tensor], base: tuple[Tensor, Tensor],
                 delta: float) -> list[Tensor]:
    """Every step ``delta`` octaves coarser than ``base`` (scale biases as much lower);
    returns ``values`` rounded at those steps."""
    model.log2_step.copy_(base[0] + delta)
    model.scale_bias.copy_(base[1] - delta)
    return [model.level(v / torch.exp2(model._steps(lvl))[:, None, None])
            for lvl, v in enumerate(values)]


def _place(model: LatentModel, values: list[Tensor], base: tuple[Tensor, Tensor],
           delta: float) -> None:
    """Steps ``delta`` octaves coarser than ``base`` and the latents ``values`` (map units)
    in units of those steps."""
    _shift_steps(model, values, base, delta)
    for lvl, (p, v) in enumerate(zip(model.latents, values, strict=True)):
        p.copy_(v / torch.exp2(model._steps(lvl))[:, None, None])


#: The rate price of :func:`rd_round`, as a share of the metric's slope along a step shift.
#: Measured on CAVE chart and toy at 0.05 bpppb, the start (42.984 dB) settled at its goal
#: again each time, with one pass and no nearest-level choice: 0.3 +0.016 dB, 0.5 +0.047,
#: 0.8 +0.128, 1.0 +0.111, 1.3 +0.020, 1.7 −0.129; as built (two passes, nearest level
#: too, a retrained round): 0.6 +0.570, 0.8 +0.570, 1.0 +0.460.
RD_PRICE = 0.8
#: Passes of :func:`rd_round` per trial step: each sees the contexts the last one left (a
#: latent sent to zero makes its neighbours' zeros cheaper).  The same file, one retrained
#: round, no nearest-level choice: one pass +0.162 dB, two +0.209, three +0.207.
RD_PASSES = 2
#: After the first settle: rounds of the entropy model trained on the new rounding and the
#: rounding settled again.  The same file, one pass: +0.062 dB for one round, +0.017 more
#: for a second.
RD_ROUNDS = 1
RD_TRAIN = 200
#: The step shifts (octaves) the settle searches, and its bisection steps (0.008 octave).
RD_SHIFTS = (-0.5, 0.5)
RD_BISECT = 7


def _metric_weights(model: LatentModel, flat: Tensor, wflat: Tensor | None
                    ) -> tuple[float, Tensor, Tensor]:
    """The metric (dB), the bits, and per band the metric's rise per unit of squared error
    summed over the band's pixels: 10 / ln 10 / (bands · pixels · MSE_b)."""
    recon, bits = model("round")
    err = (recon - flat).double() ** 2
    pixels = float(flat.shape[1]) if wflat is None else float(wflat.sum())
    mse = (err.sum(1) if wflat is None else (err * wflat).sum(1)) / pixels
    db = float((10.0 * torch.log10(mse + 1e-12)).mean())
    per_band = 10.0 / math.log(10.0) / (flat.shape[0] * pixels * mse.clamp(min=1e-24))
    return db, bits, per_band


def rd_round(model: LatentModel, price: float, per_band: Tensor) -> int:
    """Round each latent to the level that costs least in metric plus ``price`` dB per bit,
    among its level under the model's rounding, the one next nearer zero, zero and its
    nearest level, each latent's bits under the context its neighbours give now; the
    latent's value moves into the chosen level's bin (as little as it can, so that the
    level's centroid stays honest).  Returns how many moved.

    Why: one rounding for all, the start's dead zone included, ignores what a level costs
    where it sits: a ±1 the context network expects is cheap, one it does not costs
    several bits for an error of less than a step.  On CAVE chart and toy at 0.05 bpppb
    the choice of the nearest level (values the dead zone sent to zero where a ±1 is
    cheap) was worth +0.36 dB of the fit's metric, +0.13 dB in the file.

    The distortion uses the wavelet's near orthonormality (a latent's squared error
    reaches its component's map scaled by the step squared) and the basis column (the
    map's error reaches band b scaled by the column's entry squared).
    """
    cfg = model.config
    full = (model.interp @ model.basis).double()
    per_comp = (full * full * per_band[:, None]).sum(0)  # dB per unit of map error squared
    edge = 0.5 + model.deadzone
    moved = 0
    with torch.no_grad():
        qs = [model.level(p) for p in model.latents]
        for lvl, (p, q) in enumerate(zip(model.latents, qs, strict=True)):
            c = q.shape[0]
            log2_ratio, log2_scale = _law(model.context(lvl, qs),
                                          model.scale_bias[lvl, :c, None, None],
                                          model.ratio_bias[lvl, :c, None, None])
            comp = torch.arange(c, device=q.device) // (c // cfg.k)
            weight = (per_comp[comp] * torch.exp2(2.0 * model._steps(lvl).double())
                      )[:, None, None]
            v = p.double()
            best = q
            cost = weight * (v - q) ** 2 + price * ratio_bits(q, log2_ratio, log2_scale)
            for cand in (q - torch.sign(q), torch.zeros_like(q), torch.round(p)):
                c_cost = weight * (v - cand) ** 2 + price * ratio_bits(cand, log2_ratio,
                                                                        log2_scale)
                better = c_cost < cost
                cost = torch.where(better, c_cost, cost)
                best = torch.where(better, cand, best)
            change = best != q
            moved += int(change.sum())
            # The nearest value the chosen level's bin holds (bins end ``edge`` past each
            # integer's half; a value inside by 1e-3 survives float rounding).
            mag = best.abs()
            lo = torch.where(mag == 0, 0.0, mag - 1.0 + edge + 1e-3)
            top = mag + edge - 1e-3
            inside = torch.sign(best) * p.abs().clamp(min=lo, max=top)
            zero = p.clamp(-edge + 1e-3, edge - 1e-3)
            p.copy_(torch.where(change, torch.where(mag == 0, zero, inside), p))
    model._cache = None
    return moved


def rd_settle(model: LatentModel, goal_bits: float, price: float, per_band: Tensor) -> bool:
    """Find the step shift at which the latents, rounded by :func:`rd_round`, cost the goal,
    and keep it; when none within :data:`RD_SHIFTS` does, leave the model as it was.
    Returns whether it moved."""
    values, base = _in_map_units(model)
    with torch.no_grad():
        kept: list[Tensor] | None = None

        def fits(delta: float) -> bool:
            nonlocal kept
            _place(model, values, base, delta)
            for _ in range(RD_PASSES):
                rd_round(model, price, per_band)
            ok = float(model.bits([model.level(p) for p in model.latents])) <= goal_bits
            if ok:  # bits fall as delta grows: each fitting trial is the best so far
                kept = [model.log2_step.clone(), model.scale_bias.clone(),
                        *(p.detach().clone() for p in model.latents)]
            return ok

        least_that_fits(fits, *RD_SHIFTS, RD_BISECT)
        if kept is None:
            _place(model, values, base, 0.0)
            return False
        model.log2_step.copy_(kept[0])
        model.scale_bias.copy_(kept[1])
        for p, v in zip(model.latents, kept[2:], strict=True):
            p.copy_(v)
        model._cache = None
    return True


def rd_polish(model: LatentModel, goal_bits: float, flat: Tensor, wflat: Tensor | None,
              seed: int) -> None:
    """The start rounded for rate and distortion (:func:`rd_settle`), the entropy model
    retrained on that rounding and the rounding settled again (:data:`RD_ROUNDS`).

    The price is :data:`RD_PRICE` of the metric's slope measured along a step shift of
    ±0.1 octave, so it follows the rate.  Only for a wavelet start, whose near
    orthonormality :func:`rd_round`'s distortion relies on.
    """
    if model.config.transform != "dwt":
        return
    values, base = _in_map_units(model)
    with torch.no_grad():
        _place(model, values, base, -0.1)
        fine_db, fine_bits, _ = _metric_weights(model, flat, wflat)
        _place(model, values, base, 0.1)
        coarse_db, coarse_bits, _ = _metric_weights(model, flat, wflat)
        _place(model, values, base, 0.0)
        _, _, per_band = _metric_weights(model, flat, wflat)
        spent = float(fine_bits - coarse_bits)
        if spent <= 0.0:
            return
        price = RD_PRICE * max(coarse_db - fine_db, 0.0) / spent
    gen = torch.Generator().manual_seed(seed)
    rd_settle(model, goal_bits, price, per_band)
    for _ in range(RD_ROUNDS):
        train_entropy(model, RD_TRAIN, gen)
        rd_settle(model, goal_bits, price, per_band)


#: The largest latent magnitude training leaves in a (level, component): a grid holds 16-bit
#: levels, and the rounded phase still moves latents by a little.
LEVEL_MAX = LEVEL_LIMIT - 255


def keep_in_range(model: LatentModel) -> None:
    """Make every (level, component) whose latents outgrow a 16-bit grid coarser by whole
    octaves, values in map units unchanged (its scale biases lowered to match).

    A fine step is right for a large budget per latent, but the wavelet low band holds the
    largest values: on the corn kernels at 0.07 bpppb (2 components, 8.5 bits a latent) it
    reached 43,000 steps, and clipping it to 16 bits took the file from 27.2 dB to 16.8.
    """
    cfg = model.config
    with torch.no_grad():
        for lvl, p in enumerate(model.latents):
            top = p.abs().amax(dim=(1, 2))
            if cfg.channels(lvl) != cfg.k:  # three detail subbands share a step
                top = top.reshape(cfg.k, 3).amax(dim=1)
            octaves = torch.ceil(torch.log2(top.clamp(min=1.0) / LEVEL_MAX)).clamp(min=0)
            if not bool((octaves > 0).any()):
                continue
            model.log2_step[lvl] += octaves
            per = step_per_channel(cfg, lvl, octaves)
            model.scale_bias[lvl, :per.shape[0]] -= per
            p.div_(torch.exp2(per)[:, None, None])


#: The worth of a byte, as PSNR per octave of the file's size, by which
#: :func:`worth_keeping` weighs a component's cost against what it adds.  Measured on CAVE
#: chart and toy between 0.05, 0.1, 0.2 and 0.5 bpppb: 4.7, 4.0 and 3.5 dB per octave.
TRIM_SLOPE = 4.0
#: The largest share of the start's nonzero latents a component may hold and still be
#: dropped (see :func:`worth_keeping`).
TRIM_NONZEROS = 0.005


def _component_sums(model: LatentModel, per_channel: Callable[[int, Tensor], Tensor]
                    ) -> Tensor:
    """(k,) float64: ``per_channel(level, latents)`` (one value per channel of a grid)
    summed over each component's channels of every grid."""
    cfg = model.config
    out = torch.zeros(cfg.k, dtype=torch.float64, device=model.basis.device)
    with torch.no_grad():
        for lvl, p in enumerate(model.latents):
            out += per_channel(lvl, p).double().reshape(cfg.k, -1).sum(dim=1)
    return out


def component_losses(model: LatentModel, target: Tensor, weight: Tensor | None) -> Tensor:
    """(k,) float64: how much the metric (mean over bands of 10·log10 MSE_b) would rise, in
    dB, were each component's decoded map left out alone (the others kept)."""
    cfg = model.config
    with torch.no_grad():
        maps = model.maps([model.level(p) for p in model.latents]).reshape(cfg.k, -1).double()
        basis = (model.interp @ model.basis).double()
        resid = target.double() - model.offset.double()[:, None] - basis @ maps
        if weight is not None:
            w = weight.reshape(1, -1).double().sqrt()
            resid, maps = resid * w, maps * w
        mse = (resid * resid).sum(1).clamp(min=1e-24)  # (bands,), times the pixels
        cross = resid @ maps.T  # (bands, k)
        norms = (maps * maps).sum(1)  # (k,)
        grown = mse[:, None] + 2.0 * basis * cross + basis * basis * norms[None, :]
        return (10.0 * torch.log10(grown.clamp(min=1e-24) / mse[:, None])).mean(0)


def worth_keeping(model: LatentModel, target: Tensor, weight: Tensor | None,
                  budget: float) -> list[int]:
    """The components to keep: all but those that are (nearly) empty at the start and whose
    decoded maps add less to the metric than their fixed bytes (basis column, steps,
    channel biases) would buy spent on the other latents; at least one.

    Why: the plan gives cheap-basis scenes as many components as 2 % of the payload can
    describe, and the start's rounding leaves the weakest of them empty: CAVE chart and
    toy at 0.05 bpppb coded 1-3 nonzero latents in each of components 17-20 and none in
    21-31, about 65 bytes each, 2 % of the file for nothing.  Only nearly empty ones
    (:data:`TRIM_NONZEROS`): a component whose start is weak but busy is one training
    still has to shape, and its bytes may have nowhere else to go (the corn kernels at 0.2
    bpppb, 580 bands: components 5-20 added 0.01-0.03 dB each at the start but held 5 %
    of the nonzero latents each; without them the file landed at 0.65 of its budget).
    """
    cfg = model.config
    losses = component_losses(model, target, weight)
    busy = _component_sums(model, lambda _, p: (model.level(p) != 0).sum(dim=(1, 2)))
    few = TRIM_NONZEROS * float(busy.sum())
    each = fixed_bytes(cfg) - fixed_bytes(replace(cfg, k=cfg.k - 1)) if cfg.k > 1 else 0.0
    worth = TRIM_SLOPE * math.log2(1.0 + each / max(budget, 1.0))
    keep = [j for j in range(cfg.k) if float(losses[j]) > worth or float(busy[j]) > few]
    return keep or [int(torch.argmax(losses))]


def keep_components(model: LatentModel, keep: list[int]) -> None:
    """Cut the model down to the components ``keep`` (ascending): basis columns, steps,
    latent channels and their channel biases; the context network is untouched."""
    cfg = model.config
    new = replace(cfg, k=len(keep))
    idx = torch.tensor(keep, dtype=torch.long, device=model.basis.device)
    with torch.no_grad():
        model.basis = nn.Parameter(model.basis.detach()[:, idx].clone())
        model.log2_step = nn.Parameter(model.log2_step.detach()[:, idx].clone())
        scale = torch.zeros(cfg.levels, new.max_channels, dtype=model.scale_bias.dtype,
                            device=idx.device)
        ratio = torch.zeros_like(scale)
        latents = []
        for lvl, p in enumerate(model.latents):
            per = cfg.channels(lvl) // cfg.k
            chans = (idx[:, None] * per + torch.arange(per, device=idx.device)).reshape(-1)
            latents.append(nn.Parameter(p.detach()[chans].contiguous()))
            scale[lvl, :chans.numel()] = model.scale_bias.detach()[lvl, chans]
            ratio[lvl, :chans.numel()] = model.ratio_bias.detach()[lvl, chans]
        model.latents = nn.ParameterList(latents)
        model.scale_bias = nn.Parameter(scale)
        model.ratio_bias = nn.Parameter(ratio)
    model.config = new
    model._cache = None


#: How far the stored basis columns follow their components' spread (see :func:`_balanced`):
#: column k is scaled by (spread_k / largest spread)^BALANCE.  Measured on CAVE chart and
#: toy at 0.1 bpppb (31 components, spreads from 1 down to 1e-4), basis at 10 bits: 1,185
#: bytes and a band-space error of 2.0e-7 as it was, 965 bytes and 1.8e-8 at 0.5, 677 bytes
#: and 1.7e-7 at 1 (the weakest columns then round to almost nothing), against a latent
#: error of 1.9e-5.
BALANCE = 0.5


def _balanced(model: LatentModel) -> tuple[Tensor, Tensor]:
    """The basis and log2 steps with each basis column scaled by its component's relative
    spread to the power :data:`BALANCE` and the component's steps divided by as much, so
    that the decoded cube is the same and the latents too.

    Why: the basis is stored min-max quantized with one step for the whole tensor, so
    every column gets the same absolute error, but a column's error reaches the cube
    multiplied by its component's maps: the strong components' columns were too coarse and
    the weak ones' (most of them) needlessly fine.  The steps absorb the scales, at a
    price: a start's steps were one value (10 bytes) and become one per component (310
    bytes on CAVE chart and toy, where the basis gave back 220), so what this buys is
    precision, not bytes: the start frozen at 47.352 dB instead of 47.302.
    """
    def energy(lvl: int, p: Tensor) -> Tensor:
        v = (model.level(p) * torch.exp2(model._steps(lvl))[:, None, None]).double()
        return (v * v).sum(dim=(1, 2))

    spread = torch.sqrt(_component_sums(model, energy))
    with torch.no_grad():
        if float(spread.max()) <= 0.0:
            return model.basis.detach().clone(), model.log2_step.detach().clone()
        scale = (spread / spread.max()).clamp(min=2.0**-20) ** BALANCE
        basis = model.basis.detach() * scale[None, :].to(model.basis)
        steps = model.log2_step.detach() - torch.log2(scale)[None, :].to(model.log2_step)
    return basis, steps


def _freeze_quantized(model: LatentModel) -> None:
    """Put the basis, offsets and steps on the grid they will be stored on, and freeze them.

    The rounded phase then trains the latents against the very values the decoder will
    use, instead of finding out at landing that quantizing a step by 0.1 % shifts every
    latent it multiplies.  The steps are rescaled to the stored balance (:func:`_balanced`)
    and quantized first; each basis column then takes exactly the factor by which its
    component's low-band step moved, so that the low band, whose latents are the largest
    (thousands of steps at high rates), decodes as before, step rounding included.
    """
    from hsz.codec import quantize

    def stored(name: str, values: Tensor) -> Tensor:
        v = values.detach().cpu().numpy().astype(np.float32)
        q = quantize(name, v, TENSOR_BITS[name]).dequantize().reshape(v.shape)
        return torch.from_numpy(np.ascontiguousarray(q)).to(values)

    _, steps = _balanced(model)
    steps = stored("log2_step", steps)
    moved = torch.exp2((model.log2_step.detach()[-1] - steps[-1]).double()).to(model.basis)
    model.log2_step.data = steps
    model.basis.data = model.basis.detach() * moved[None, :]
    for name in ("basis", "offset"):
        param = getattr(model, name)
        param.data = stored(name, param)
    for name in TENSOR_BITS:
        getattr(model, name).requires_grad_(False)


def _float_tensors(model: LatentModel, balanced: bool = False) -> dict[str, np.ndarray]:
    """The stored float tensors; ``balanced``: as :func:`_freeze_quantized` will store them."""
    out = {name: getattr(model, name).detach() for name in TENSOR_BITS}
    if balanced:
        out["basis"], out["log2_step"] = _balanced(model)
    return {name: t.cpu().numpy().astype(np.float32) for name, t in out.items()}


def _band_db(recon: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
    err = (recon - target) ** 2
    if weight is not None:
        err = err * weight
        mse = err.sum(1) / weight.sum()
    else:
        mse = err.mean(1)
    return (10.0 * torch.log10(mse + 1e-12)).mean()


def _mse_db(recon: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
    """10·log10 of the whole cube's MSE (the ablation's D = MSE)."""
    err = (recon - target) ** 2
    mse = (err * weight).sum() / (weight.sum() * err.shape[0]) if weight is not None \
        else err.mean()
    return 10.0 * torch.log10(mse + 1e-12)


def fit(job: FitJob, schedule: Schedule) -> Fitted:
    """Train the latents, steps, basis and context network; return what landing needs."""
    config: LatentConfig = job.config
    with fit_threads(resolve_device(job.device), config.height * config.width):
        return _fit(job, schedule)


def _fit(job: FitJob, schedule: Schedule) -> Fitted:
    config: LatentConfig = job.config
    main, final, every = schedule.main, schedule.final, schedule.context_every
    if job.epochs is not None:  # an explicit count scales both phases
        main, final = max(1, int(job.epochs)), max(1, int(job.epochs) // 6)
    elif config.height * config.width >= START_ONLY_FROM_PIXELS:
        main = final = 0
    dev = resolve_device(job.device)
    keep_freed_memory()
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(job.seed)
        target = torch.from_numpy(np.ascontiguousarray(job.target, np.float32)).to(dev)
        # ``weight`` scores the loss; ``valid`` alone decides what the start may read (a
        # tile's margin is real data: zeroing it there would put an edge where the kept
        # pixels end, which measured 4 dB worse beside it).
        weight = valid = None
        scored = loss_mask(job)
        if scored is not None and not bool(np.all(scored)):
            weight = torch.from_numpy(scored.astype(np.float32)).to(dev)
        if job.mask is not None and not bool(np.all(job.mask)):
            valid = torch.from_numpy(job.mask.astype(np.float32)).to(dev)
        n_values = float(config.bands * config.height * config.width)
        # The rate the latents may take: the budget less the basis, steps and network, first
        # estimated, then measured on the initial basis coded as the file will code it.
        latent_bits = max(8.0 * (job.budget - fixed_bytes(config)), 64.0)
        # Where the start is the file, its principal components are weighted for the
        # metric (see _metric_principal); a fit that trains starts from plain ones.
        metric_start = ABLATION.get("metric_pca", main + final == 0)
        model = LatentModel(target, valid, config, 0.97 * latent_bits,
                            metric_start=metric_start).to(dev)

        def aim() -> float:
            """Bits per value the latents aim at: the budget less the model's fixed part as
            it will be coded."""
            fixed = measured_fixed_bytes(model.config, _float_tensors(model, balanced=True))
            return 0.97 * max(8.0 * (job.budget - fixed), 64.0) / n_values

        goal = aim()
        rounds = WARM_ROUNDS if config.height * config.width >= MIXED_FROM_PIXELS else \
            WARM_ROUNDS_SMALL
        # Progress counts the start's steps (its warm rounds, then its rounding when it is
        # the file), then the iterations: a 512x512 start takes a minute or more.
        start_steps = len(rounds) + (1 if main + final == 0 else 0)

        def start_step(done: int) -> None:
            if job.progress is not None:
                job.progress({"epoch": done, "epochs": start_steps, "unit": "start steps"})

        if rounds and ABLATION.get("context") != "none":
            model.deadzone = START_DEADZONE
            warm_start(model, goal * n_values, rounds, job.seed, start_step)
            keep = worth_keeping(model, target.reshape(config.bands, -1), weight, job.budget)
            if len(keep) < config.k:
                # The bytes of the components left out go to the others' latents.
                keep_components(model, keep)
                config = model.config
                goal = aim()
                settle_step(model, goal * n_values)
        keep_in_range(model)
        flat = target.reshape(config.bands, -1)
        wflat = None if weight is None else weight.reshape(1, -1)
        # The start is already a file at the goal rate; training must beat it to be kept.
        with torch.no_grad():
            start_recon, start_bits = model("round")
            start_score = (float(_band_db(start_recon, flat, wflat)),
                           float(start_bits) / n_values)
            start_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            del start_recon
        start_deadzone = model.deadzone
        if main + final == 0:
            # The start is the file: round it for rate and distortion, and nothing else.
            psnr = _keep_start(model, start_state, start_deadzone, goal * n_values, flat,
                               wflat, job.seed)
            start_step(start_steps)
            return Fitted(config=config, state=_state(model, job, scored, weight),
                          fit_psnr=psnr, iterations=0, device=str(dev),
                          seconds=time.perf_counter() - start, history=[])
        if start_deadzone:
            # Training rounds to nearest (its straight-through phase moves latents across
            # the edges itself), from the step where that rounding costs the goal.
            model.deadzone = 0.0
            settle_step(model, goal * n_values)
            keep_in_range(model)
        lam = 2.0 / max(goal, 1e-4)
        groups = [
            # Latents are in units of their step.  A research prototype with a fixed λ gained
            # from rates up to 1.0, but with λ steered toward a budget 1.0 diverged here
            # (Indian Pines at 0.05 bpppb collapsed to 22 dB); 0.1 is stable.
            {"params": list(model.latents), "lr": LATENT_LR},
            {"params": [model.basis, model.offset], "lr": 1e-3},
            {"params": [model.log2_step, model.scale_bias, model.ratio_bias,
                        *([] if ABLATION.get("context") == "none" else
                          [*model.ctx1.parameters(), *model.ctx2.parameters()])], "lr": 1e-2},
        ]
        opt = Adam(groups)
        base = [g["lr"] for g in opt.param_groups]
        history: list[dict[str, Any]] = []
        rate_ema = None
        total = main + final
        best: tuple[float, list[Tensor]] | None = None
        lam_final = lam
        for it in range(total):
            noisy = it < main
            if it == main:
                keep_in_range(model)
                _freeze_quantized(model)
                lam_final = lam  # keep-best compares losses at one λ
            f = lr_factor(it, main, floor=0.02) if noisy else 0.01
            for g, lr in zip(opt.param_groups, base, strict=True):
                g["lr"] = lr * f
            # Both phases reuse the context network's outputs between refreshes (the network
            # trains on the refresh steps only): the rounded phase moves latents at a hundredth
            # of the learning rate.  Measured against refreshing every rounded step (fast):
            # quick-start crop at 0.2 bpppb 33.894 against 33.890 dB, its rounded steps 17-19
            # against 25 ms; Jasper Ridge at 0.1 44.488 against 44.416 dB, Samson at 0.05
            # 42.110 against 42.015 dB.
            refresh = it % every == 0 or it == main
            maps, bits = model.coded("noise" if noisy else "round", refresh)
            dist = (_mse_db(model.reconstruct(maps), flat, wflat)
                    if ABLATION.get("loss") == "mse" else _scored_db(model, maps, flat, wflat))
            r = bits / n_values
            loss = dist + lam * r
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            rv = float(r.detach())
            if not noisy:  # keep the best rounded latents the final phase sees
                score = float(dist.detach()) + lam_final * rv
                if best is None or score < best[0]:
                    best = (score, [p.detach().clone() for p in model.latents])
            if it % 10 == 0:
                # Steer on the rate of the *rounded* latents, which is what gets coded (the
                # noisy rate runs higher, most for latents near zero).  In the rounded phase
                # that is the loss's own rate; steering goes on there, because the latents
                # still move and a file over budget would have to be requantized.
                if noisy:
                    with torch.no_grad():
                        # The context outputs of the last refresh serve (at most a few
                        # steps old): a rate estimate for steering.
                        rounded = float(model.bits([model.level(p) for p in model.latents],
                                                   refresh=False))
                    rounded /= n_values
                else:
                    rounded = rv
                rate_ema = rounded if rate_ema is None else 0.7 * rate_ema + 0.3 * rounded
                if it >= main // 10:  # a bounded step in log λ: no overshoot early on
                    step = 0.3 * math.log(max(rate_ema, 1e-6) / goal)
                    lam = min(max(lam * math.exp(min(max(step, -0.15), 0.15)), 1e-2), 1e5)
            if it % 25 == 0 or it == total - 1:
                rec = {"epoch": it + 1, "epochs": total, "unit": "iterations",
                       "loss": float(loss.detach()),
                       "psnr": -float(dist.detach()), "rate": rv, "rounded_rate": rate_ema,
                       "goal": goal, "lambda": lam}
                history.append(rec)
                if job.progress is not None:
                    job.progress(dict(rec))
        model.eval()
        with torch.no_grad():
            if best is not None:
                for p, kept in zip(model.latents, best[1], strict=True):
                    p.copy_(kept)
            recon, bits = model("round")
            trained = float(_band_db(recon, flat, wflat)) + lam_final * float(bits) / n_values
            if start_score[0] + lam_final * start_score[1] < trained:
                # Short schedules can end worse than they began: the first Adam steps move
                # every latent by about the learning rate, and the straight-through
                # gradient pushes zeros toward the rounding edge.  CAVE balloons at 0.05
                # bpppb: 51.4 dB at the start, 49.6 after one iteration, 50.8 after 116.
                psnr = _keep_start(model, start_state, start_deadzone, goal * n_values,
                                   flat, wflat, job.seed)
            else:
                psnr = -float(_band_db(recon, flat, wflat))
        state = _state(model, job, scored, weight)
    return Fitted(config=config, state=state, fit_psnr=psnr, iterations=total,
                  device=str(dev), seconds=time.perf_counter() - start, history=history)


def _keep_start(model: LatentModel, start_state: dict[str, Tensor], deadzone: float,
                goal_bits: float, flat: Tensor, wflat: Tensor | None, seed: int) -> float:
    """Put the start back as the model, round it for rate and distortion
    (:func:`rd_polish`) and freeze it as stored; returns its metric (dB)."""
    with torch.no_grad():
        model.load_state_dict(start_state)
        model.deadzone = deadzone
        if ABLATION.get("context") != "none":
            rd_polish(model, goal_bits, flat, wflat, seed)
            keep_in_range(model)  # its steps may have become finer
        _freeze_quantized(model)
        recon, _ = model("round")
        return -float(_band_db(recon, flat, wflat))


def _state(model: LatentModel, job: FitJob, scored: np.ndarray | None,
           weight: Tensor | None) -> dict[str, Any]:
    """What landing needs of a fitted model."""
    return {
        **_float_tensors(model),
        # The trained values in units of the step: rounded, they are the levels
        # (``trained_levels``); landing's dead zone and finer steps read them too.
        "values": [p.detach().cpu().numpy().astype(np.float32) for p in model.latents],
        # How they round to the levels (:func:`dead_round`): the start's dead zone when
        # the start is what the file keeps, else 0.
        "deadzone": float(model.deadzone),
        # Landing refits the basis, offsets and steps to the levels it settles on
        # (:func:`hsz.model.latent.refit`), on the pixels the loss scores.
        "target": job.target,
        "scored": None if weight is None else scored,
        "net": {
            "w1": model.ctx1.weight.detach().cpu().numpy().astype(np.float64),
            "b1": model.ctx1.bias.detach().cpu().numpy().astype(np.float64),
            # Rule 2's outputs: log2 zero ratio, log2 scale.
            "w2": model.ctx2.weight.detach().cpu().numpy().astype(np.float64),
            "b2": model.ctx2.bias.detach().cpu().numpy().astype(np.float64),
            "scale_bias": model.scale_bias.detach().cpu().numpy().astype(np.float64),
            "ratio_bias": model.ratio_bias.detach().cpu().numpy().astype(np.float64),
        },
    }
