"""The valid-pixel mask's bytes: bit-packed (big-endian bit order) and deflated (SPEC.md).

Stored as the ``valid_mask`` raw array; absent when every pixel is valid.
"""

from __future__ import annotations

import zlib

import numpy as np

from hsz.errors import FormatError

#: Name of the raw array holding the mask.
NAME = "valid_mask"


def mask_arrays(mask: np.ndarray | None) -> dict[str, np.ndarray]:
    """The raw arrays that store ``mask``: none when every pixel is valid."""
    if mask is None or bool(mask.all()):
        return {}
    packed = np.packbits(mask.astype(np.uint8).reshape(-1), bitorder="big").tobytes()
    return {NAME: np.frombuffer(zlib.compress(packed, 9), dtype=np.uint8)}


def read_mask(raw: dict[str, np.ndarray], rows: int, cols: int) -> np.ndarray | None:
    """The (rows, cols) valid-pixel mask from the raw arrays, None when there is none."""
    blob = raw.get(NAME)
    if blob is None:
        return None
    need = (rows * cols + 7) // 8
    try:
        d = zlib.decompressobj()
        packed = d.decompress(np.asarray(blob, dtype=np.uint8).tobytes(), need + 1)
    except zlib.error:
        raise FormatError("the valid-pixel mask is damaged") from None
    if len(packed) != need:
        raise FormatError("the valid-pixel mask has the wrong size")
    bits = np.unpackbits(np.frombuffer(packed, dtype=np.uint8), bitorder="big")[: rows * cols]
    return bits.reshape(rows, cols).astype(bool)
