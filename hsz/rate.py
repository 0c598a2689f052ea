"""Rate control: turn a byte budget into a model size, then land the coded file on it.

The promise is about the file on disk, so every step counts every byte: the container, the
metadata, the per-band scales and masks, and the coded payload.  What is not specific to a
model family lives here: the side-information arithmetic, the smallest-rate refusal, and
per-tensor bit allocation for families that store min–max quantized tensors.  How many
bytes a given network codes to is the family's own estimate (:meth:`ModelFamily.plan`);
landing then works on the real coded sizes, so the estimate only has to be close.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hsz import codec
from hsz.errors import RateError

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

    model: str
    config: Any
    target_bytes: int
    overhead_bytes: int
    payload_bytes: int

    def describe(self) -> str:
        return (
            f"budget {self.target_bytes} B: {self.overhead_bytes} B of side information, "
            f"{self.payload_bytes} B for the {self.model} model"
        )


def side_bytes(base_meta: dict[str, Any], raw: Mapping[str, np.ndarray]) -> int:
    """Bytes the file spends before any model payload: container, metadata, scales."""
    return len(codec.pack(base_meta, {}, raw=raw)) + META_ALLOWANCE


def plan(
    shape: tuple[int, int, int],
    target_bytes: int,
    base_meta: dict[str, Any],
    raw: Mapping[str, np.ndarray],
    *,
    model: str = "hiner",
) -> Plan:
    """Size ``model``'s network for a whole-file budget of ``target_bytes``.

    Raises :class:`RateError` with the smallest achievable rate when even the family's
    smallest network does not fit.
    """
    from hsz.model import get_family

    family = get_family(model)
    overhead = side_bytes(base_meta, raw)
    payload = target_bytes - overhead
    config = family.plan(shape, payload) if payload > 0 else None
    if config is None:
        smallest = overhead + family.smallest_payload_bytes(shape)
        rate = 8.0 * smallest / float(np.prod(shape))
        bands, rows, cols = shape
        raise RateError(
            f"a {target_bytes}-byte file cannot hold even the smallest {family.id} model for a "
            f"{bands}x{rows}x{cols} cube; the smallest achievable rate is about "
            f"{rate:.4f} bpppb",
            smallest_bpppb=rate,
        )
    return Plan(family.id, config, target_bytes, overhead, payload)


@dataclass
class Landed:
    """A coded file that fits its budget, and the bit depths that got it there."""

    data: bytes
    bits: dict[str, int] = field(default_factory=dict)


def quantization_sensitivity(
    tensors: Mapping[str, np.ndarray],
    decode: Callable[[dict[str, np.ndarray]], np.ndarray],
    probe_bits: int = 6,
) -> dict[str, float]:
    """How much each tensor's quantization noise shows in what ``decode`` renders.

    Coarsening one tensor to ``probe_bits`` while the rest stay exact and measuring the
    mean squared change of the output gives that tensor's weight in :func:`allocate_bits`;
    rescaled to what the same tensor would cost at 8 bits.  ``decode`` renders whatever
    sample of the output the family finds representative.
    """
    from hsz.codec import quantize

    reference = decode(dict(tensors))
    scale = 4.0 ** (8 - probe_bits)
    out: dict[str, float] = {}
    for name, t in tensors.items():
        coarse = dict(tensors)
        coarse[name] = quantize(name, t, bits=probe_bits).dequantize().reshape(t.shape)
        out[name] = float(np.mean((decode(coarse) - reference) ** 2)) / scale
    return out


def land(
    meta: dict[str, Any],
    tensors: dict[str, np.ndarray],
    raw: dict[str, np.ndarray],
    target_bytes: int,
    sensitivity: dict[str, float] | None = None,
) -> Landed:
    """Pack ``tensors`` with ``meta`` and ``raw`` at the bit depths :func:`allocate_bits`
    chooses for ``target_bytes``."""

    def size_of(bits: dict[str, int]) -> int:
        return len(codec.pack(meta, tensors, bits=bits, raw=raw))

    bits = allocate_bits(tensors, size_of, target_bytes, sensitivity)
    return Landed(codec.pack(meta, tensors, bits=bits, raw=raw), bits)


def allocate_bits(
    tensors: Mapping[str, np.ndarray],
    size_of: Callable[[dict[str, int]], int],
    target_bytes: int,
    sensitivity: Mapping[str, float] | None = None,
    floors: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Choose per-tensor bit depths so the file is as good as it can be within the budget.

    ``size_of(bits)`` is the whole file's size at those depths.  Each tensor's contribution
    to the output error is modelled as ``sensitivity[name] * 4**(8 - bits)`` (uniform
    quantization noise falls 6 dB a bit), with sensitivities measured by the family (the
    output error when that tensor alone is coarsened) or, when absent, approximated from the
    tensor's size and spread.  Starting from 8 bits, while the file is over budget, the bit
    that costs least error per byte saved is taken; then, while any tensor can take one more
    bit within the budget, the bit that buys most error per byte is added.  ``floors`` sets a
    tensor's fewest bits (the family knows where the noise model understates the harm).
    """
    low = {name: max(MIN_DEPTH, (floors or {}).get(name, MIN_DEPTH)) for name in tensors}
    sens = sensitivity or {
        name: float(t.size) * (float(np.ptp(t)) if t.size else 0.0) ** 2
        for name, t in tensors.items()
    }
    bits = {name: max(8, low[name]) for name in tensors}
    size = size_of(bits)

    def noise(name: str, depth: int) -> float:
        return sens.get(name, 0.0) * 4.0 ** (8 - depth)

    while size > target_bytes:
        best: tuple[float, str] | None = None
        for name, t in tensors.items():
            depth = bits[name]
            if depth <= low[name]:
                continue
            cost = noise(name, depth - 1) - noise(name, depth)
            score = cost / max(t.size / 8.0, 1e-9)
            if best is None or score < best[0]:
                best = (score, name)
        if best is None:
            raise RateError(
                f"the fitted model needs {size} bytes even at its fewest bits per "
                f"value; the budget is {target_bytes}"
            )
        bits[best[1]] -= 1
        size = size_of(bits)

    # Spend what is left: a bit more for the tensors where it buys the most, while any fits.
    tried: set[str] = set()
    while True:
        best = None
        for name, t in tensors.items():
            depth = bits[name]
            if depth >= max(MAX_DEPTH, low[name]) or name in tried:
                continue
            gain = noise(name, depth) - noise(name, depth + 1)
            score = gain / max(t.size / 8.0, 1e-9)
            if best is None or score > best[0]:
                best = (score, name)
        if best is None:
            break
        bits[best[1]] += 1
        grown = size_of(bits)
        if grown > target_bytes:
            bits[best[1]] -= 1
            tried.add(best[1])
            continue
        size = grown
    return bits
