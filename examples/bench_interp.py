"""How good are bands decoded at wavelengths the file never saw?

Encode a real cube with every other band removed, decode at the removed bands' wavelengths,
and compare with the true bands.  Methods compared:

- ``hsz``: what ``hsz decode --wavelengths`` does (the rule SPEC.md documents);
- ``embedding``: embeddings interpolated between the two nearest encoded bands, then decoded;
- ``decoded-linear``: the obvious baseline: decode the kept bands and interpolate linearly
  in wavelength between the two decoded neighbours;
- ``truth-linear``: the same interpolation of the *original* kept bands; no compression at
  all, so it is the floor any method built on the kept bands starts from.

Run from the repository root (needs ../shared/data):

    python examples/bench_interp.py --bpppb 0.2 --preset balanced
    python examples/bench_interp.py --bpppb 0.2 --preset fast --model latent

For ``latent`` there is no embedding row: its rule interpolates the basis and offsets
linearly between the neighbouring bands, which is exactly ``decoded-linear`` before rounding.

Prints a table and appends a JSON line per method to examples/results/interp.jsonl.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from hsz import api, metrics
from hsz.cube import Cube
from hsz.model.arch import HinerConfig
from hsz.model.hiner_family import split_tensors
from hsz.model.render import render_all
from hsz.spectral import band_coordinates

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RESULTS = Path(__file__).parent / "results"


def indian_pines() -> Cube:
    data = np.load(SHARED / "indian_pines_corrected.npy")
    table = np.loadtxt(
        SHARED / "indian_pines_corrected_wavelengths.csv", delimiter=",", comments="#",
        skiprows=4, usecols=(3, 4),
    )
    return Cube(np.ascontiguousarray(np.moveaxis(data, -1, 0)), wavelengths=table[:, 0],
                fwhm=table[:, 1])


def linear_between(kept: np.ndarray, kept_wl: np.ndarray, query_wl: np.ndarray) -> np.ndarray:
    """Per-pixel linear interpolation in wavelength between the nearest kept bands."""
    order = np.argsort(kept_wl, kind="stable")
    wl = kept_wl[order]
    stack = kept[order].astype(np.float64)
    out = np.empty((query_wl.size,) + kept.shape[1:], dtype=np.float64)
    for j, w in enumerate(query_wl):
        i = int(np.clip(np.searchsorted(wl, w), 1, wl.size - 1))
        t = (w - wl[i - 1]) / (wl[i] - wl[i - 1]) if wl[i] != wl[i - 1] else 0.0
        t = float(np.clip(t, 0.0, 1.0))
        out[j] = (1 - t) * stack[i - 1] + t * stack[i]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bpppb", type=float, default=0.2)
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--model", default="hiner", help="model family (hiner, latent)")
    args = parser.parse_args()

    cube = indian_pines()
    keep = np.arange(0, cube.bands, 2)
    held = np.arange(1, cube.bands - 1, 2)  # inside the kept range: no extrapolation
    kept_cube = cube.replace(
        data=np.ascontiguousarray(cube.data[keep]), wavelengths=cube.wavelengths[keep],
        fwhm=cube.fwhm[keep],
    )
    truth = cube.data[held].astype(np.float64)
    held_wl = cube.wavelengths[held]

    start = time.perf_counter()
    result = api.encode(kept_cube, bpppb=args.bpppb, model=args.model, preset=args.preset,
                        epochs=args.epochs)
    encode_s = time.perf_counter() - start
    rows: list[dict] = []

    def record(method: str, estimate: np.ndarray) -> None:
        rows.append({
            "scene": "indian_pines (even bands kept)",
            "model": args.model,
            "method": method,
            "bpppb_of_kept": round(result.bpppb, 4),
            "held_out_bands": int(held.size),
            "psnr_band_mean": round(metrics.psnr_band_mean(truth, estimate), 3),
            "psnr_global": round(metrics.psnr_global(truth, estimate), 3),
            "sam_deg": round(metrics.sam_deg(truth, estimate), 3),
        })

    record("hsz", api.decode(result.data, wavelengths=held_wl, dtype="float64").data)

    opened = api.open_file(result.data)
    decoded_kept = api.decode(result.data, dtype="float64").data
    record("decoded-linear", linear_between(decoded_kept, kept_cube.wavelengths, held_wl))
    record("truth-linear", linear_between(kept_cube.data, kept_cube.wavelengths, held_wl))

    if args.model == "hiner":
        # The embedding rule on its own, whatever the decode default is.
        # (HINER's own embedding interpolation, called directly: it is not the decode rule.)
        config = HinerConfig.from_json(opened.meta["model"]["config"])
        decoder, embeddings = split_tensors(opened.tensors)
        query = api.query_coordinates(opened.meta, held_wl)
        scale = opened.scale.interpolate(opened.band_coords, query)
        bands = render_all(config, decoder, embeddings,
                           band_coordinates(kept_cube.wavelengths, kept_cube.bands), query)
        record("embedding", bands * scale.span[:, None, None] + scale.low[:, None, None])

    print(f"encoded {kept_cube.bands} kept bands at {result.bpppb:.4f} bpppb "
          f"in {encode_s:.0f} s; {held.size} held-out bands")
    print(f"{'method':16s} {'PSNR band mean':>15s} {'PSNR global':>12s} {'SAM':>7s}")
    for r in rows:
        print(f"{r['method']:16s} {r['psnr_band_mean']:15.2f} {r['psnr_global']:12.2f} "
              f"{r['sam_deg']:7.3f}")
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / "interp.jsonl", "a", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps({**r, "preset": args.preset, "encode_s": round(encode_s, 1)})
                     + "\n")


if __name__ == "__main__":
    main()
