"""Write the golden files in format/v1.0/ from small crops of real scenes.

For each case it writes ``<name>.hsz``, ``<name>.info.json`` (``hsz.codec.describe``),
``<name>.decoded.npy`` (the decoded cube's samples, bands first) and ``<name>.sha256``
(SHA-256 of those sample bytes).  Golden files are made once, on purpose, and never
regenerated to make a test pass: a change in their bytes is a format change.

Run from the repository root with ``../shared/data`` beside it:
``python format/make_golden.py``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).parent / "v1.0"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def cases() -> dict[str, tuple[object, dict]]:
    from hsz.cube import Cube

    ip = np.load(SHARED / "indian_pines_corrected.npy")[50:66, 80:96, 40:64]
    table = np.loadtxt(SHARED / "indian_pines_corrected_wavelengths.csv", delimiter=",",
                       comments="#", skiprows=4, usecols=(3, 4))[40:64]
    ip_cube = Cube(np.ascontiguousarray(np.moveaxis(ip, -1, 0)), wavelengths=table[:, 0],
                   fwhm=table[:, 1], wavelength_units="Nanometers", source_format="npy")

    import scipy.io

    v = scipy.io.loadmat(SHARED / "samson.mat")["V"]
    samson = np.reshape(v.T, (95, 95, 156), order="F")[30:42, 40:52, 60:80]
    samson_cube = Cube(np.ascontiguousarray(np.moveaxis(samson, -1, 0)), source_format="mat")

    cave = np.load(SHARED / "cave_feathers.npy")[:, 300:320, 200:216].copy()
    cave[:, :3, :5] = 0
    cave_cube = Cube(cave, wavelengths=np.arange(400.0, 701.0, 10.0), nodata=0.0,
                     band_names=[f"CAVE {w} nm" for w in range(400, 701, 10)],
                     source_format="npy")
    return {
        "indian_pines_u16": (ip_cube, {"bpppb": 4.0, "epochs": 40}),
        "samson_f64_no_wavelengths": (samson_cube, {"bpppb": 6.0, "epochs": 40}),
        "cave_nodata_u16": (cave_cube, {"bpppb": 4.0, "epochs": 40}),
    }


def main() -> int:
    from hsz import api
    from hsz.codec import describe

    OUT.mkdir(parents=True, exist_ok=True)
    for name, (cube, options) in cases().items():
        path = OUT / f"{name}.hsz"
        if path.exists():
            print(f"{path} exists; golden files are never regenerated", file=sys.stderr)
            return 1
        buf = api.encode(cube, seed=0, **options).data
        path.write_bytes(buf)
        info = describe(buf)
        (OUT / f"{name}.info.json").write_text(
            json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        data = np.ascontiguousarray(api.decode(buf).data)
        np.save(OUT / f"{name}.decoded.npy", data)
        digest = hashlib.sha256(data.tobytes()).hexdigest()
        (OUT / f"{name}.sha256").write_text(f"{digest}  {name}.decoded.npy\n")
        print(f"{path}: {len(buf)} bytes, sha256(cube) {digest[:16]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
