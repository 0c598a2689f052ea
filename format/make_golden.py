"""Write the golden files in format/v1.0/ from small synthetic cubes (run by the lead).

For each case it writes ``<name>.hsz``, ``<name>.info.json`` (``hsz.codec.describe``) and
``<name>.sha256`` (SHA-256 of the decoded cube's sample bytes).  It needs the full
pipeline: ``hsz.api.encode(cube, **options) -> bytes`` and ``hsz.api.decode(bytes)``
returning a cube (or array) whose ``.data`` holds the samples.  Adjust the calls here if
the API's names differ.  Golden files are regenerated only on purpose: a change in their
bytes is a format change.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from hsz.codec import describe

OUT = Path(__file__).parent / "v1.0"


def cases() -> dict[str, tuple[np.ndarray, dict]]:
    rng = np.random.default_rng(2024)
    y, x, b = np.mgrid[0:24, 0:20, 0:16]
    smooth = (1000 + 300 * np.sin(x / 5.0) * np.cos(y / 7.0) + 20 * b).astype(np.uint16)
    noisy = (rng.normal(0.3, 0.05, (16, 16, 12))).astype(np.float32)
    return {"smooth_u16": (smooth, {}), "noisy_f32": (noisy, {})}


def main() -> int:
    from hsz import api  # imported late: needs the full pipeline (torch)

    OUT.mkdir(parents=True, exist_ok=True)
    for name, (cube, options) in cases().items():
        buf = api.encode(cube, **options)
        path = OUT / f"{name}.hsz"
        path.write_bytes(buf)
        info = describe(buf)
        (OUT / f"{name}.info.json").write_text(json.dumps(info, indent=2, ensure_ascii=False)
                                              + "\n", encoding="utf-8")
        decoded = api.decode(buf)
        data = np.ascontiguousarray(getattr(decoded, "data", decoded))
        digest = hashlib.sha256(data.tobytes()).hexdigest()
        (OUT / f"{name}.sha256").write_text(f"{digest}  {name}.hsz\n")
        print(f"{path}: {len(buf)} bytes, sha256(cube) {digest[:16]}…")
    return 0


if __name__ == "__main__":
    sys.exit(main())
