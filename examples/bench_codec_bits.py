"""Measure the entropy coder: coded bits per value vs fixed 8 bits vs a Huffman code.

Run: ``python examples/bench_codec_bits.py`` for synthetic weights, or
``python examples/bench_codec_bits.py FILE.hsz`` for the fitted tensors of a real file.
The Huffman figure is the ideal static Huffman code
for the tensor's own histogram, *without* the cost of transmitting the code table, so
it flatters Huffman; ours includes every model byte.
"""

from __future__ import annotations

import heapq
import sys

import numpy as np

from hsz.codec.entropy import METHOD_NAMES, encode_values, estimate_bits
from hsz.codec.quantize import quantize


def huffman_lengths(counts: np.ndarray) -> np.ndarray:
    """Code length per symbol of a Huffman code for ``counts`` (zero counts get 0)."""
    nz = [(float(c), i) for i, c in enumerate(counts) if c > 0]
    lengths = np.zeros(len(counts), dtype=np.int64)
    if len(nz) == 1:
        lengths[nz[0][1]] = 1
        return lengths
    heap = [(c, k, [i]) for k, (c, i) in enumerate(nz)]
    heapq.heapify(heap)
    tie = len(heap)
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        for i in s1 + s2:
            lengths[i] += 1
        heapq.heappush(heap, (c1 + c2, tie, s1 + s2))
        tie += 1
    return lengths


def measure(name: str, w: np.ndarray, bits: int = 8) -> dict[str, float]:
    qt = quantize(name, w, bits, axis=None)
    flat = qt.q.reshape(-1).astype(np.int64)
    counts = np.bincount(flat, minlength=1 << bits)
    p = counts[counts > 0] / flat.size
    method, data = encode_values(qt.q, bits)
    return {
        "values": flat.size,
        "method": METHOD_NAMES[method],
        "coded": 8 * len(data) / flat.size,
        "estimate": estimate_bits(qt.q, bits) / flat.size,
        "entropy": float(-(p * np.log2(p)).sum()),
        "huffman": float((counts * huffman_lengths(counts)).sum() / flat.size),
        "fixed": float(bits),
    }


def real_file(path: str) -> int:
    """Every tensor of a real file, re-quantized at 8 bits, coded as hsz codes it."""
    from hsz.codec import unpack

    with open(path, "rb") as fh:
        tensors = unpack(fh.read()).tensors
    total = {"values": 0, "coded": 0.0, "huffman": 0.0, "entropy": 0.0}
    print(f"{'tensor':34} {'values':>7} {'method':>11} {'coded':>6} {'H':>6} {'huff':>6}")
    for name, w in tensors.items():
        m = measure(name, w.astype(np.float32), 8)
        n = w.size
        total["values"] += n
        for key in ("coded", "huffman", "entropy"):
            total[key] += m[key] * n
        print(f"{name:34} {n:7d} {m['method']:>11} {m['coded']:6.3f} {m['entropy']:6.3f} "
              f"{m['huffman']:6.3f}")
    n = total["values"]
    print(f"{'all tensors':34} {n:7d} {'':>11} {total['coded'] / n:6.3f} "
          f"{total['entropy'] / n:6.3f} {total['huffman'] / n:6.3f}   (bits/value; fixed: 8)")
    return 0


def main() -> int:
    if len(sys.argv) > 1:
        return real_file(sys.argv[1])
    rng = np.random.default_rng(0)
    cases = {
        "gaussian 64x64x3x3": rng.normal(0, 0.05, (64, 64, 3, 3)),
        "laplace 64x64x3x3": rng.laplace(0, 0.05, (64, 64, 3, 3)),
        "student-t(3) 64x64x3x3": rng.standard_t(3, (64, 64, 3, 3)) * 0.02,
        "uniform 64x64x3x3": rng.uniform(-0.1, 0.1, (64, 64, 3, 3)),
        "gaussian 16x3x3 (small)": rng.normal(0, 0.05, (16, 3, 3)),
        "gaussian 256x256": rng.normal(0, 0.05, (256, 256)),
    }
    print(f"{'tensor':26} {'bits':>4} {'method':>11} {'coded':>6} {'est':>6} {'H':>6} "
          f"{'huff':>6} {'fixed':>5}   (bits/value)")
    for bits in (8, 6, 4):
        for name, w in cases.items():
            m = measure(name, w.astype(np.float32), bits)
            print(f"{name:26} {bits:4d} {m['method']:>11} {m['coded']:6.3f} {m['estimate']:6.3f} "
                  f"{m['entropy']:6.3f} {m['huffman']:6.3f} {m['fixed']:5.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
