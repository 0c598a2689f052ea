"""Everything that touches ``.hsz`` bytes: quantization, entropy coding, the container.

No torch here: the codec must be importable (and ``hsz info`` must work) without it.
SPEC.md in the repository root is the normative description of the bytes.
"""

from __future__ import annotations

from hsz.codec.container import FORMAT_MAJOR, FORMAT_MINOR, read_container, read_container_header
from hsz.codec.entropy import estimate_bits
from hsz.codec.pack import (
    Unpacked,
    dequantized,
    describe,
    estimate_size,
    meta_json,
    pack,
    pack_quantized,
    quantize_all,
    unpack,
)
from hsz.codec.quantize import QuantizedTensor, quantize

__all__ = [
    "FORMAT_MAJOR", "FORMAT_MINOR", "QuantizedTensor", "Unpacked", "dequantized", "describe",
    "estimate_bits", "estimate_size", "meta_json", "pack", "pack_quantized", "quantize",
    "quantize_all", "read_container", "read_container_header", "unpack",
]
