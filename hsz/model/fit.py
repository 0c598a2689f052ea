"""Overfitting HINER to one cube: the encoder side of the codec.

Design notes (measured on the 2-core CPU this project targets; see examples/RESULTS_fit.md):

- The last decoder blocks (5x5 convs at full resolution) are almost all of the cost, and the
  cost is proportional to the *frame* area: the planned 150x150 frame for Indian Pines instead
  of the paper's 180x180 is 1.44x less work before anything else.
- A few bands per step in channels-last layout run ~2.5x faster per band than one band per
  step (oneDNN convolutions are underfed by a single 150x150 map on CPU).
- The loss is computed on the cropped H x W output only: padding is never supervised.
- The weights kept are the best ones by psnr_band_mean, evaluated exactly (fp32, all bands)
  every few epochs, not whatever the last step left.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hsz.model.arch import HinerConfig
from hsz.model.hiner import Hiner, decoder_state
from hsz.model.hiner_schedule import LR, PRESETS, Preset, preset_epochs
from hsz.model.training import adam, fit_threads, lr_factor, resolve_device

__all__ = ["LR", "PRESETS", "FitResult", "Preset", "cam_degrees", "fit", "preset_epochs",
           "resolve_device"]

@dataclass
class FitResult:
    """What a fit produces: everything the codec stores, plus how the fit went."""

    config: HinerConfig
    decoder: dict[str, np.ndarray]  # name -> float32 array, module order
    embeddings: np.ndarray  # (bands, C, fc_h, fc_w) float32: MLP outputs at the band coords
    history: list[dict[str, Any]] = field(default_factory=list)
    best_psnr: float = float("nan")  # psnr_band_mean of the kept weights, normalized data
    seconds: float = 0.0
    epochs: int = 0
    device: str = "cpu"


def cam_degrees(out: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Angle in degrees between each flattened output band and its target band, (N,).

    Uses ``2 atan2(|u - v|, |u + v|)`` on unit vectors rather than ``acos`` of a cosine: it
    stays accurate (and its gradient finite) when the angle is tiny, which is exactly where a
    good fit lives.  ``weight`` (0/1 per pixel) removes nodata pixels from both vectors.
    """
    a = out.flatten(1)
    b = target.flatten(1)
    if weight is not None:
        w = weight.flatten()
        a = a * w
        b = b * w
    u = a / (a.norm(dim=1, keepdim=True) + 1e-12)
    v = b / (b.norm(dim=1, keepdim=True) + 1e-12)
    diff = (u - v).pow(2).sum(dim=1).add(1e-20).sqrt()
    summ = (u + v).pow(2).sum(dim=1).add(1e-20).sqrt()
    return torch.rad2deg(2.0 * torch.atan2(diff, summ))


#: bf16 pays for its conversions only on large maps (measured: slower on a 24 x 24 crop).
_BF16_MIN_FRAME = 96 * 96


def _cpu_has_bf16() -> bool:
    """Native bf16 dot products (AVX512-BF16 or AMX), not merely emulated bf16.

    Emulated bf16 (plain AVX-512) is slower than fp32, so only real hardware support counts.
    The probes are private torch helpers: any failure means "no".
    """
    try:
        native = any(
            bool(getattr(torch.cpu, name, lambda: False)())
            for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        )
        return native and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _eval_epochs(epochs: int, evals: int) -> set[int]:
    # Denser towards the end, where the cosine schedule makes the best weights.
    out = {epochs}
    for k in range(1, evals + 1):
        frac = 1.0 - (1.0 - k / evals) ** 2
        out.add(max(1, min(epochs, round(frac * epochs))))
    return out


class _Evaluator:
    """Exact psnr_band_mean over all bands, in fp32, with nodata masked out."""

    def __init__(self, target: Tensor, weight: Tensor | None, batch: int) -> None:
        self.target = target
        self.weight = weight
        self.batch = batch
        valid = target if weight is None else target[:, weight.bool()]
        flat = valid.flatten(1)
        rng = (flat.max(dim=1).values - flat.min(dim=1).values).double()
        self.peak2 = torch.where(rng > 0, rng, torch.ones_like(rng)).pow(2)
        self.count = flat.shape[1]

    def band_mse(self, out: Tensor, idx: Tensor) -> Tensor:
        d = (out.float() - self.target[idx]).pow(2)
        if self.weight is not None:
            d = d * self.weight
        return d.flatten(1).double().sum(dim=1) / max(1, self.count)

    def psnr(self, mse: Tensor, idx: Tensor) -> float:
        p = 10.0 * torch.log10(self.peak2[idx] / mse.clamp_min(1e-300))
        p = torch.where(mse > 0, p, torch.full_like(p, 999.0))
        return float(p.mean())

    @torch.no_grad()
    def __call__(self, model: Hiner, coords: Tensor) -> float:
        n = coords.shape[0]
        mse = torch.empty(n, dtype=torch.float64, device=coords.device)
        for s in range(0, n, self.batch):
            idx = torch.arange(s, min(n, s + self.batch), device=coords.device)
            mse[idx] = self.band_mse(model(coords[idx]), idx)
        return self.psnr(mse, torch.arange(n, device=coords.device))


def fit(
    target: np.ndarray,
    coords: np.ndarray,
    cfg: HinerConfig,
    *,
    mask: np.ndarray | None = None,
    epochs: int | None = None,
    preset: str = "balanced",
    device: str = "auto",
    seed: int = 0,
    lr: float | None = None,
    gamma: float = 0.01,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> FitResult:
    """Fit a HINER network to ``target`` (bands, H, W), per-band normalized to [0, 1].

    ``coords`` (bands,) are the network coordinates of the bands (see
    ``hsz.spectral.band_coordinates``).  ``mask`` (H, W) marks valid pixels; the others are
    zeroed up front and weighted out of the loss and the metric, so their values cannot
    influence the fit at all.  Loss: ``L1 + gamma * CAM`` (gamma = 0 for plain L1).  Adam,
    warm-up then cosine decay, best weights by exact psnr_band_mean.  ``epochs`` and ``lr``
    default to the preset's (whose epoch count is raised to its ``min_steps`` for scenes with
    few bands).  A fixed ``seed`` gives identical weights on the same machine, device and
    thread count.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    p = PRESETS[preset]
    n_epochs = p.epochs if epochs is None else int(epochs)
    if n_epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs!r}")
    tgt = np.asarray(target)
    if tgt.shape != (cfg.bands, cfg.height, cfg.width):
        raise ValueError(
            f"target shape {tgt.shape} does not match the config "
            f"({cfg.bands}, {cfg.height}, {cfg.width})"
        )
    crd = np.asarray(coords, dtype=np.float64).reshape(-1)
    if crd.shape[0] != cfg.bands or not np.all(np.isfinite(crd)):
        raise ValueError(f"coords must be {cfg.bands} finite values")
    lr = p.lr if lr is None else float(lr)
    if not (math.isfinite(lr) and lr > 0 and math.isfinite(gamma) and gamma >= 0):
        raise ValueError("lr must be positive and gamma non-negative")
    valid: np.ndarray | None = None
    if mask is not None:
        valid = np.asarray(mask, dtype=bool)
        if valid.shape != (cfg.height, cfg.width):
            raise ValueError(f"mask shape {valid.shape} != image {(cfg.height, cfg.width)}")
        if not valid.any():
            raise ValueError("mask leaves no valid pixel to fit")
        if valid.all():
            valid = None
    # Zero what the mask excludes *before* anything reads it (NaN-safe, value-independent).
    tgt32 = np.where(valid[None], tgt, 0.0) if valid is not None else tgt
    tgt32 = np.ascontiguousarray(tgt32, dtype=np.float32)
    if not np.all(np.isfinite(tgt32)):
        raise ValueError("target has non-finite values at valid pixels")

    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    batch = max(1, min(cfg.bands, p.batch_cuda if cuda else p.batch_cpu))
    prev_cudnn = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    t_start = time.perf_counter()
    with fit_threads(dev, cfg.frame[0] * cfg.frame[1]):
        try:
            rng_devices: list[int] = []
            if cuda:
                # Reproducible cuDNN algorithms: a seed must mean the same weights.
                torch.backends.cudnn.benchmark = False
                torch.backends.cudnn.deterministic = True
                rng_devices = [dev.index if dev.index is not None else torch.cuda.current_device()]
            with torch.random.fork_rng(devices=rng_devices):
                torch.manual_seed(seed)
                model = Hiner(cfg)
            gen = torch.Generator().manual_seed(seed)
            model = model.to(dev).to(memory_format=torch.channels_last)
            t_target = torch.from_numpy(tgt32).to(dev)
            t_coords = torch.from_numpy(crd.astype(np.float32)).to(dev)
            weight = None if valid is None else torch.from_numpy(valid.astype(np.float32)).to(dev)
            n_valid = float(cfg.height * cfg.width if valid is None else valid.sum())
            evaluator = _Evaluator(t_target, weight, batch=max(batch, 8 if not cuda else 16))

            opt = adam(model.parameters(), lr=lr)
            steps_per_epoch = math.ceil(cfg.bands / batch)
            if epochs is None:
                n_epochs = preset_epochs(p, cfg.bands, batch)
            total = n_epochs * steps_per_epoch
            warm = int(round(p.warmup * total))
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, warm))
            eval_at = _eval_epochs(n_epochs, p.evals)
            amp: torch.autocast | None = None
            if cuda:
                amp = torch.autocast("cuda", dtype=torch.bfloat16)
            elif p.bf16_cpu and cfg.frame[0] * cfg.frame[1] >= _BF16_MIN_FRAME and _cpu_has_bf16():
                amp = torch.autocast("cpu", dtype=torch.bfloat16)

            best_psnr = -math.inf
            best_state: dict[str, Tensor] | None = None
            history: list[dict[str, Any]] = []
            for epoch in range(1, n_epochs + 1):
                t0 = time.perf_counter()
                model.train()
                order = torch.randperm(cfg.bands, generator=gen).to(dev)
                loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
                mse_run = torch.empty(cfg.bands, dtype=torch.float64, device=dev)
                for s in range(0, cfg.bands, batch):
                    idx = order[s : s + batch]
                    tb = t_target[idx]
                    if amp is not None:
                        with amp:
                            out = model(t_coords[idx])
                    else:
                        out = model(t_coords[idx])
                    out = out.float()
                    err = (out - tb).abs()
                    if weight is not None:
                        err = err * weight
                    l1 = err.flatten(1).sum(dim=1) / n_valid
                    loss = l1.mean()
                    if gamma > 0:
                        loss = loss + gamma * cam_degrees(out, tb, weight).mean()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    with torch.no_grad():  # free running estimate of the metric
                        mse_run[idx] = evaluator.band_mse(out.detach(), idx)
                        loss_sum += loss.detach().double() * idx.numel()
                rec: dict[str, Any] = {
                    "epoch": epoch,
                    "epochs": n_epochs,
                    "loss": float(loss_sum) / cfg.bands,
                    "psnr": evaluator.psnr(mse_run, torch.arange(cfg.bands, device=dev)),
                    "lr": opt.param_groups[0]["lr"],
                }
                if epoch in eval_at:
                    model.eval()
                    exact = evaluator(model, t_coords)
                    rec["eval_psnr"] = exact
                    if exact > best_psnr or best_state is None:
                        best_psnr = exact
                        best_state = copy.deepcopy(model.state_dict())
                    rec["best_psnr"] = best_psnr
                rec["seconds"] = time.perf_counter() - t0
                history.append(rec)
                if progress is not None:
                    progress(dict(rec))
            assert best_state is not None
            model.load_state_dict(best_state)
            model.eval()
            model = model.to(memory_format=torch.contiguous_format)
            with torch.no_grad():
                emb = model.embed(t_coords).float().cpu().numpy()
            dec = decoder_state(model)
        finally:
            if cuda:
                torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = prev_cudnn
    return FitResult(
        config=cfg,
        decoder=dec,
        embeddings=np.ascontiguousarray(emb, dtype=np.float32),
        history=history,
        best_psnr=float(best_psnr),
        seconds=time.perf_counter() - t_start,
        epochs=n_epochs,
        device=str(dev),
    )
