"""Rate control: size the network from a byte budget, then make the coded file land on it.

The promise is about the file on disk, so both steps count every byte: the container,
the metadata, the per-band scales and masks, and the coded tensors.  Planning uses an
estimate of the coded bits per parameter; landing then adjusts per-tensor bit depths
on the real coded sizes, so the estimate only has to be close, not exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hsz import codec
from hsz.errors import RateError

#: Coded bits per stored value at 8-bit quantization, measured on fitted HINER networks
#: (entropy coding takes 8-bit symbols to about this); used only to size the network.
CODED_BITS_PER_PARAM = 7.0
#: Bytes the model configuration adds to the metadata once the network is chosen.
META_ALLOWANCE = 400
#: Bytes kept free when landing for the quality figures written afterwards (deflated text).
FIGURES_MARGIN = 24
#: Bit depths landing may choose from, best quality first.
BIT_DEPTHS = (8, 7, 6)
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
    try:
        config = _fitting_config(size_for_budget, param_counts, shape, budget)
    except ValueError as exc:
        smallest = _smallest_bpppb(shape, overhead, str(exc))
        raise RateError(
            f"a {target_bytes}-byte file cannot hold even the smallest model for a "
            f"{bands}x{rows}x{cols} cube; the smallest achievable rate is about "
            f"{smallest:.4f} bpppb"
        ) from None
    counts = param_counts(config)
    stored = int(counts["decoder"] + counts["embeddings"])
    return Plan(config, target_bytes, overhead, budget, stored)


def _fitting_config(size_for_budget: Any, param_counts: Any, shape: tuple[int, int, int],
                    budget: int) -> Any:
    """The sizing's network, shrunk until its stored values really fit the budget.

    The sizing rounds widths and grids, so it can land a little over; asking again with a
    proportionally smaller budget converges in a step or two.
    """
    ask = max(budget, 1)
    config = size_for_budget(*shape, ask)
    for _ in range(12):
        counts = param_counts(config)
        stored = int(counts["decoder"] + counts["embeddings"])
        if stored <= budget:
            return config
        ask = max(1, int(ask * budget / stored * 0.98))
        config = size_for_budget(*shape, ask)
    return config


def _smallest_bpppb(shape: tuple[int, int, int], overhead: int, message: str) -> float:
    """The rate of the smallest model, from the count size_for_budget reports."""
    digits = [int(tok) for tok in message.replace(",", " ").split() if tok.isdigit()]
    smallest_params = max(digits) if digits else 0
    total = overhead + smallest_params * CODED_BITS_PER_PARAM / 8
    return 8.0 * total / float(np.prod(shape))


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
) -> Landed:
    """Choose per-tensor bit depths so the file is as good as it can be within the budget.

    Start at the best depth everywhere; while the file is over budget, take one bit from
    the tensor whose step saves the most bytes per unit of added quantization noise.
    """
    bits = {name: BIT_DEPTHS[0] for name in tensors}
    limit = target_bytes
    data = codec.pack(meta, tensors, bits=bits, raw=raw)
    while len(data) > limit:
        best: tuple[float, str] | None = None
        for name, t in tensors.items():
            depth = bits[name]
            nxt = _next_depth(depth)
            if nxt is None:
                continue
            saved = t.size * (depth - nxt) / 8.0
            spread = float(np.ptp(t)) if t.size else 0.0
            noise = t.size * spread**2 * (4.0 ** (-nxt) - 4.0 ** (-depth))
            score = saved / (noise + 1e-30)
            if best is None or score > best[0]:
                best = (score, name)
        if best is None:
            raise RateError(
                f"the fitted model needs {len(data)} bytes even at "
                f"{BIT_DEPTHS[-1]} bits per value; the budget is {target_bytes}"
            )
        bits[best[1]] = _next_depth(bits[best[1]])  # type: ignore[assignment]
        data = codec.pack(meta, tensors, bits=bits, raw=raw)
    return Landed(data, bits)


def _next_depth(depth: int) -> int | None:
    idx = BIT_DEPTHS.index(depth)
    return BIT_DEPTHS[idx + 1] if idx + 1 < len(BIT_DEPTHS) else None
