"""Rate control: size the network from a byte budget, then make the coded file land on it.

The promise is about the file on disk, so both steps count every byte: the container,
the metadata, the per-band scales and masks, and the coded tensors.  Planning uses an
estimate of the coded bits per parameter; landing then adjusts per-tensor bit depths
on the real coded sizes, so the estimate only has to be close, not exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hsz import codec
from hsz.errors import RateError

#: Coded bits per stored value at 8-bit quantization, measured on fitted HINER networks for
#: Indian Pines (6.2-6.9 from 0.05 to 1 bpppb; examples/results/rate.jsonl); used only to
#: size the network, since landing then works on the real coded sizes.
CODED_BITS_PER_PARAM = 6.6
#: Bytes the model configuration adds to the metadata once the network is chosen.
META_ALLOWANCE = 400
#: Bytes kept free when landing for the quality figures written afterwards (deflated text).
FIGURES_MARGIN = 24
#: Bit depths landing may choose from.
MIN_DEPTH = 5
MAX_DEPTH = 12
#: The lower edge of the window a landed file must fall in, as a share of the budget.
LOW_WATER = 0.9


@dataclass(frozen=True)
class Plan:
    """The network chosen for a budget and the arithmetic behind the choice."""

    config: Any
    target_bytes: int
    overhead_bytes: int
    param_budget: int
    params: int

    def describe(self) -> str:
        return (
            f"budget {self.target_bytes} B: {self.overhead_bytes} B of side information, "
            f"{self.param_budget} parameters planned, network has {self.params}"
        )


def side_bytes(base_meta: dict[str, Any], raw: dict[str, np.ndarray]) -> int:
    """Bytes the file spends before any network parameter: container, metadata, scales."""
    return len(codec.pack(base_meta, {}, raw=raw)) + META_ALLOWANCE


def plan(
    shape: tuple[int, int, int],
    target_bytes: int,
    base_meta: dict[str, Any],
    raw: dict[str, np.ndarray],
) -> Plan:
    from hsz.model.arch import param_counts, size_for_budget

    bands, rows, cols = shape
    overhead = side_bytes(base_meta, raw)
    budget = int((target_bytes - overhead) * 8 / CODED_BITS_PER_PARAM)
    config = _fitting_config(size_for_budget, param_counts, shape, budget)
    if config is None:
        smallest = _stored(param_counts, _smallest_config(size_for_budget, shape))
        rate = 8.0 * (overhead + smallest * CODED_BITS_PER_PARAM / 8) / float(np.prod(shape))
        raise RateError(
            f"a {target_bytes}-byte file cannot hold even the smallest model for a "
            f"{bands}x{rows}x{cols} cube; the smallest achievable rate is about "
            f"{rate:.4f} bpppb",
            smallest_bpppb=rate,
        )
    return Plan(config, target_bytes, overhead, budget, _stored(param_counts, config))


def _stored(param_counts: Any, config: Any) -> int:
    counts = param_counts(config)
    return int(counts["decoder"] + counts["embeddings"])


def _smallest_config(size_for_budget: Any, shape: tuple[int, int, int]) -> Any:
    """The smallest network the sizing can build for this shape.

    The sizing refuses a too-small budget with a message naming the smallest count; asking
    for exactly that count yields the network.
    """
    try:
        return size_for_budget(*shape, 1)
    except ValueError as exc:
        found = re.search(r"\((\d+) parameters\)", str(exc))
        if found is None:
            raise
        return size_for_budget(*shape, int(found.group(1)))


def _fitting_config(size_for_budget: Any, param_counts: Any, shape: tuple[int, int, int],
                    budget: int) -> Any | None:
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
        stored = _stored(param_counts, config)
        if stored <= budget:
            return config
        ask = max(1, int(ask * budget / stored * 0.98))
    smallest = _smallest_config(size_for_budget, shape)
    return smallest if _stored(param_counts, smallest) <= budget else None


@dataclass
class Landed:
    """A coded file that fits its budget, and the bit depths that got it there."""

    data: bytes
    bits: dict[str, int] = field(default_factory=dict)


def land(
    meta: dict[str, Any],
    tensors: dict[str, np.ndarray],
    raw: dict[str, np.ndarray],
    target_bytes: int,
    sensitivity: dict[str, float] | None = None,
) -> Landed:
    """Choose per-tensor bit depths so the file is as good as it can be within the budget.

    Each tensor's contribution to the output error is modelled as
    ``sensitivity[name] * 4**(8 - bits)`` (uniform quantization noise falls 6 dB a bit), with
    sensitivities measured by the caller (the output error when that tensor alone is coarsened)
    or, when absent, approximated from the tensor's size and spread.  Starting from 8 bits,
    while the file is over budget, the bit that costs least error per byte saved is taken;
    then, while any tensor can take one more bit within the budget, the bit that buys most
    error per byte is added.
    """
    sens = sensitivity or {
        name: float(t.size) * (float(np.ptp(t)) if t.size else 0.0) ** 2
        for name, t in tensors.items()
    }
    bits = {name: 8 for name in tensors}
    data = codec.pack(meta, tensors, bits=bits, raw=raw)

    def noise(name: str, depth: int) -> float:
        return sens.get(name, 0.0) * 4.0 ** (8 - depth)

    while len(data) > target_bytes:
        best: tuple[float, str] | None = None
        for name, t in tensors.items():
            depth = bits[name]
            if depth <= MIN_DEPTH:
                continue
            cost = noise(name, depth - 1) - noise(name, depth)
            score = cost / max(t.size / 8.0, 1e-9)
            if best is None or score < best[0]:
                best = (score, name)
        if best is None:
            raise RateError(
                f"the fitted model needs {len(data)} bytes even at {MIN_DEPTH} bits per "
                f"value; the budget is {target_bytes}"
            )
        bits[best[1]] -= 1
        data = codec.pack(meta, tensors, bits=bits, raw=raw)

    # Spend what is left: a bit more for the tensors where it buys the most, while any fits.
    tried: set[str] = set()
    while True:
        best = None
        for name, t in tensors.items():
            depth = bits[name]
            if depth >= MAX_DEPTH or name in tried:
                continue
            gain = noise(name, depth) - noise(name, depth + 1)
            score = gain / max(t.size / 8.0, 1e-9)
            if best is None or score > best[0]:
                best = (score, name)
        if best is None:
            break
        bits[best[1]] += 1
        grown = codec.pack(meta, tensors, bits=bits, raw=raw)
        if len(grown) > target_bytes:
            bits[best[1]] -= 1
            tried.add(best[1])
            continue
        data = grown
    return Landed(data, bits)
