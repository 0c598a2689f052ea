"""HINER as a model family: wavelength → embedding → band, the cube kept in network weights.

Stores the decoder's weights (``decoder.*``) and one embedding per band (``embeddings``),
all min–max quantized by the codec at per-tensor bit depths chosen when landing.  Files are
format 1.0: the family uses nothing that 1.1 added, so its files are byte-for-byte those of
earlier releases.  torch is imported only inside ``fit``, ``land`` and ``render``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from hsz.codec.payload import Payload, Stored
from hsz.model import hiner_schedule
from hsz.model.arch import BudgetTooSmall, HinerConfig, param_counts, size_for_budget
from hsz.model.family import FitJob, Fitted, ModelFamily, Packer, loss_mask

#: Coded bits per stored value at 8-bit quantization, measured on fitted HINER networks for
#: Indian Pines (6.2-6.9 from 0.05 to 1 bpppb; examples/results/rate.jsonl); used only to
#: size the network, since landing then works on the real coded sizes.
CODED_BITS_PER_PARAM = 6.6

_DECODER = "decoder."
_EMBEDDINGS = "embeddings"


def stored_values(config: HinerConfig) -> int:
    """Values the file stores for ``config``: decoder weights plus band embeddings."""
    counts = param_counts(config)
    return int(counts["decoder"] + counts["embeddings"])


def smallest_config(shape: tuple[int, int, int]) -> HinerConfig:
    """The smallest network the sizing can build for this shape."""
    try:
        return size_for_budget(*shape, 1)
    except BudgetTooSmall as exc:
        return size_for_budget(*shape, exc.smallest)


def fitting_config(shape: tuple[int, int, int], budget: int) -> HinerConfig | None:
    """The sizing's network, shrunk until its stored values really fit; None if none does.

    The sizing rounds widths and grids, so it can land a little over; asking again with a
    proportionally smaller budget converges in a step or two.
    """
    ask = max(budget, 1)
    for _ in range(12):
        try:
            config = size_for_budget(*shape, ask)
        except ValueError:
            break
        stored = stored_values(config)
        if stored <= budget:
            return config
        ask = max(1, int(ask * budget / stored * 0.98))
    smallest = smallest_config(shape)
    return smallest if stored_values(smallest) <= budget else None


def model_tensors(decoder: dict[str, np.ndarray], embeddings: np.ndarray) -> dict[str, np.ndarray]:
    """The arrays a decoder needs, under the names the file uses for them."""
    tensors = {f"{_DECODER}{name}": np.asarray(t, dtype=np.float32)
               for name, t in decoder.items()}
    tensors[_EMBEDDINGS] = np.asarray(embeddings, dtype=np.float32)
    return tensors


def split_tensors(tensors: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Decoder weights (names without the prefix) and the embeddings; KeyError if absent."""
    decoder = {n[len(_DECODER):]: t for n, t in tensors.items() if n.startswith(_DECODER)}
    if _EMBEDDINGS not in tensors:
        raise KeyError("the file has no embeddings tensor")
    return decoder, tensors[_EMBEDDINGS]


def quantization_sensitivity(
    config: HinerConfig,
    tensors: dict[str, np.ndarray],
    coords: np.ndarray,
    *,
    device: str = "cpu",
    probe_bands: int = 8,
    probe_bits: int = 6,
) -> dict[str, float]:
    """:func:`hsz.rate.quantization_sensitivity` over ``probe_bands`` decoded bands."""
    from hsz import rate
    from hsz.model.render import render

    picks = np.unique(np.linspace(0, coords.size - 1, min(probe_bands, coords.size)).round())
    query = coords[picks.astype(int)]

    def bands(ts: dict[str, np.ndarray]) -> np.ndarray:
        decoder, emb = split_tensors(ts)
        return np.stack(list(render(config, decoder, emb, coords, query, device=device)))

    return rate.quantization_sensitivity(tensors, bands, probe_bits)


class HinerFamily(ModelFamily):
    """The paper's model (seed 000), with hsz's sizing, schedules and rate landing."""

    id = "hiner"
    summary = "the cube lives in a network's weights (wavelength -> embedding -> band)"
    presets = {name: hiner_schedule.describe(name)
               for name in hiner_schedule.PRESETS if name != "paper"}
    default_preset = "balanced"

    def config_from_json(self, obj: Any) -> HinerConfig:
        return HinerConfig.from_json(obj)

    def config_to_json(self, config: HinerConfig) -> dict[str, Any]:
        return config.to_json()

    def describe(self, config: HinerConfig) -> str:
        cfg = config.to_json()
        keys = ("fc_h", "fc_w", "fc_dim", "dec_strides", "embed_channels")
        return ", ".join(f"{k}={cfg[k]}" for k in keys if k in cfg)

    def check_preset(self, preset: str | None) -> str:
        # "paper" stays reachable from the library (benchmarks compare against it) but is
        # not offered on the command line.
        if preset in hiner_schedule.PRESETS:
            return preset
        return super().check_preset(preset)

    def plan(self, shape: tuple[int, int, int], payload_bytes: int) -> HinerConfig | None:
        budget = int(payload_bytes * 8 / CODED_BITS_PER_PARAM)
        return fitting_config(shape, budget)

    def smallest_payload_bytes(self, shape: tuple[int, int, int]) -> float:  # type: ignore[override]
        return stored_values(smallest_config(shape)) * CODED_BITS_PER_PARAM / 8

    def fit(self, job: FitJob) -> Fitted:
        from hsz.model.fit import fit

        result = fit(
            job.target, job.coords, job.config, mask=loss_mask(job), epochs=job.epochs,
            preset=self.check_preset(job.preset), device=job.device, seed=job.seed,
            progress=job.progress,
        )
        state = {"tensors": model_tensors(result.decoder, result.embeddings),
                 "coords": np.asarray(job.coords, dtype=np.float64)}
        return Fitted(config=result.config, state=state, fit_psnr=float(result.best_psnr),
                      iterations=int(result.epochs), device=str(result.device),
                      seconds=result.seconds, history=result.history)

    def land(self, fitted: Fitted, pack: Packer, limit: int) -> Payload:
        from hsz import rate

        tensors = fitted.state["tensors"]
        sensitivity = quantization_sensitivity(fitted.config, tensors, fitted.state["coords"])
        bits = rate.allocate_bits(
            tensors, lambda b: len(pack(Payload(tensors, b))), limit, sensitivity
        )
        return Payload(tensors, bits)

    def render(
        self, config: HinerConfig, stored: Stored, band_coords: np.ndarray, query: np.ndarray,
        *, device: str = "cpu",
    ) -> Iterator[np.ndarray]:
        from hsz.model.render import render

        decoder, embeddings = split_tensors(stored.tensors)
        yield from render(config, decoder, embeddings, band_coords, query, device=device)


FAMILY = HinerFamily()
