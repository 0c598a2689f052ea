"""HINER's presets: the training schedules an encode can ask for, torch-free.

Kept apart from the fitting loop so that the CLI's help, ``hsz info`` and planning can name
and describe them without importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Peak learning rate of every preset (see examples/RESULTS_fit.md for the sweep behind it).
LR = 4e-3


@dataclass(frozen=True)
class Preset:
    """Schedule knobs a preset fixes; ``epochs`` may be overridden per call."""

    epochs: int
    batch_cpu: int
    batch_cuda: int
    warmup: float = 0.1  # fraction of the steps spent warming up from 0.1 x lr
    evals: int = 12  # exact evaluations spread over the run (plus the last epoch)
    #: Train in bf16 autocast on CPUs with native bf16 (evaluation stays fp32).
    bf16_cpu: bool = False
    #: Peak Adam learning rate (after warm-up).
    lr: float = LR
    #: Fewest optimizer steps the preset runs, whatever the band count: "epochs" alone would
    #: give a 31-band scene a sixth of the updates of a 200-band one (an explicit epoch count
    #: bypasses this).
    min_steps: int = 0


#: "balanced" is the default: Indian Pines at ~0.2 bpppb fits in well under 10 minutes on 2 CPU
#: cores, close to the paper's 300-epoch one-band-per-step schedule (examples/RESULTS_fit.md).
#: bf16 training on CPU is used only where the CPU has native bf16 (measured: ~30% faster per
#: band, same PSNR curve); "max" stays fp32 so high-rate fits are not limited by it.
PRESETS: dict[str, Preset] = {
    "fast": Preset(epochs=100, batch_cpu=2, batch_cuda=4, bf16_cpu=True),
    "balanced": Preset(
        epochs=300, batch_cpu=2, batch_cuda=2, bf16_cpu=True, evals=15, min_steps=10_000
    ),
    "max": Preset(epochs=600, batch_cpu=2, batch_cuda=1, evals=20, min_steps=20_000),
    # The paper's schedule (one band per step, 300 epochs): the reference the others are
    # measured against, not a practical default on CPU.
    "paper": Preset(epochs=300, batch_cpu=1, batch_cuda=1, evals=15, lr=1e-3),
}


def preset_epochs(preset: Preset, bands: int, batch: int) -> int:
    """Epochs a preset runs on ``bands`` bands: its own count, raised to reach ``min_steps``."""
    per_epoch = math.ceil(bands / max(1, batch))
    return max(preset.epochs, math.ceil(preset.min_steps / per_epoch))


def describe(name: str) -> str:
    """One line stating a preset's schedule, as ``--help`` and the README show it."""
    p = PRESETS[name]
    text = f"{p.epochs} epochs"
    if p.min_steps:
        text += f" and at least {p.min_steps} steps"
    return text
