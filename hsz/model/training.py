"""Pieces every family's fitting loop shares: the device, the optimizer, the schedule.

Each family keeps its own loop, because what a step is differs (HINER: a batch of bands per
step, evaluated per epoch, best weights kept; latent: a noisy then a rounded phase, with the
rate steered); what they have in common lives here once.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any

import torch

from hsz.parallel import THREADS_FIXED, fixed_threads

#: Pixels of a frame per CPU thread a fit uses.
PIXELS_PER_THREAD = 8192


def resolve_device(device: str) -> torch.device:
    """``auto`` is CUDA when there is one; a named device must exist here."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but CUDA is not available")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device!r} (use auto, cpu or cuda)")
    return dev


def cpu_threads(pixels: int) -> int:
    """Threads for fitting a frame of ``pixels``: one per PIXELS_PER_THREAD, at most what
    torch runs on now; exactly that where the count was chosen (``--threads``, a tile or
    batch job: :func:`hsz.parallel.fixed_threads`) or the user set OMP_NUM_THREADS.

    Small frames give OpenMP little to split, and on a shared machine every parallel region
    then waits for a descheduled sibling.  Measured on a 2-core machine: a HINER fit of a
    24 x 24 crop ran 10x slower on 2 threads while other jobs ran, and the latent quick
    start (64 x 64) took 37.1 and 39.6 s on one thread against 70.2 and 50.5 s on two, the
    two-thread runs losing 27 and 8 s to the hypervisor (steal).  The count depends on the
    frame and the setup only, never on the current load: results differ in the last bits
    between thread counts, and a seed must reproduce a fit.
    """
    current = torch.get_num_threads()
    if os.environ.get("OMP_NUM_THREADS") or THREADS_FIXED.get():  # a chosen count wins
        return current
    return max(1, min(current, pixels // PIXELS_PER_THREAD))


def fit_threads(device: torch.device, pixels: int) -> AbstractContextManager[None]:
    """Run a fit on :func:`cpu_threads` threads (CPU only), the caller's count given back
    afterwards."""
    return fixed_threads(cpu_threads(pixels) if device.type == "cpu" else None)


def adam(params: Iterable[Any], lr: float | None = None) -> torch.optim.Adam:
    """Adam with the fused kernel where torch has it (~4x cheaper than foreach on CPU)."""
    kwargs = {} if lr is None else {"lr": lr}
    params = list(params)
    try:
        return torch.optim.Adam(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # older torch / unsupported device
        return torch.optim.Adam(params, **kwargs)


class Adam:
    """Adam (torch's defaults: betas 0.9 / 0.999, eps 1e-8) over groups of parameters with
    a learning rate each, in a few foreach operations per group and step.

    Why not ``torch.optim.Adam``: constructing one imports ``torch._dynamo``, 1.6 s of the
    quick start's 37 (measured with ``python -X importtime``), for a loop that compiles
    nothing.  The groups are dicts with ``params`` and ``lr``, as torch's are, so a
    schedule sets ``group["lr"]`` between steps.  As torch's, a parameter without a
    gradient is left alone and keeps its own step count (the context network has none on
    the steps that reuse its outputs).
    """

    def __init__(self, groups: Iterable[dict[str, Any]], betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.param_groups = [{**g, "params": list(g["params"])} for g in groups]
        self.betas, self.eps = betas, eps
        # Per parameter: first and second moments, steps taken.
        self._state: dict[int, list[Any]] = {
            id(p): [torch.zeros_like(p), torch.zeros_like(p), 0]
            for g in self.param_groups for p in g["params"]}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        b1, b2 = self.betas
        for g in self.param_groups:
            live = [p for p in g["params"] if p.grad is not None]
            if not live:
                continue
            states = [self._state[id(p)] for p in live]
            for st in states:
                st[2] += 1
            grads = [p.grad for p in live]
            m, v = [st[0] for st in states], [st[1] for st in states]
            torch._foreach_lerp_(m, grads, 1.0 - b1)
            torch._foreach_mul_(v, b2)
            torch._foreach_addcmul_(v, grads, grads, 1.0 - b2)
            denom = torch._foreach_sqrt(v)
            torch._foreach_div_(denom, [math.sqrt(1.0 - b2 ** st[2]) for st in states])
            torch._foreach_add_(denom, self.eps)
            torch._foreach_addcdiv_(live, m, denom,
                                    [-g["lr"] / (1.0 - b1 ** st[2]) for st in states])


def lr_factor(step: int, total: int, warmup: int = 0, floor: float = 0.0) -> float:
    """Linear warm-up from 0.1x over ``warmup`` steps, then cosine decay to ``floor``."""
    if warmup > 0 and step < warmup:
        return 0.1 + 0.9 * step / warmup
    span = max(1, total - warmup)
    return max(0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / span))), floor)
