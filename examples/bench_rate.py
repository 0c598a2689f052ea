"""Does the file land on the rate it promises?  Encode Indian Pines at several targets.

For each target the script prints the planned network, the real file size, the share of the
budget it uses (the promise is [0.9, 1.0]) and the quality.  Landing depends on the coded
size of the fitted weights, so short fits (``--epochs``) already exercise it; longer fits
give the real quality.

    python examples/bench_rate.py --targets 0.05,0.1,0.2,1.0 --epochs 20

Appends one JSON line per target to examples/results/rate.jsonl.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from hsz import api, codec
from hsz.io import read
from hsz.spectral import parse_wavelengths

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="0.05,0.1,0.2,1.0")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--preset", default="fast")
    args = parser.parse_args()

    wl = parse_wavelengths(str(SHARED / "indian_pines_corrected_wavelengths.csv"))
    cube = read(SHARED / "indian_pines_corrected.npy", wavelengths=wl)
    RESULTS.mkdir(exist_ok=True)
    print(f"{'target':>7s} {'bytes':>8s} {'budget':>8s} {'share':>6s} {'bpppb':>7s} "
          f"{'PSNR':>7s} {'SAM':>6s} {'params':>8s} {'s':>6s}")
    for target in (float(t) for t in args.targets.split(",")):
        start = time.perf_counter()
        result = api.encode(cube, bpppb=target, preset=args.preset, epochs=args.epochs)
        seconds = time.perf_counter() - start
        budget = api.target_bytes(cube.shape, bpppb=target)
        info = codec.describe(result.data)
        params = sum(math.prod(t["shape"]) for t in info["tensors"])
        row = {
            "scene": "indian_pines", "target_bpppb": target, "bytes": result.size,
            "budget_bytes": budget, "share": round(result.size / budget, 4),
            "bpppb": round(result.bpppb, 5), "stored_values": params,
            "coded_bits_per_value": round(8 * sum(t["bytes"] for t in info["tensors"]) / params,
                                          3),
            "header_and_side_bytes": result.size - sum(t["bytes"] for t in info["tensors"]),
            **{k: round(v, 3) for k, v in result.quality.items()},
            "fit_psnr": round(result.fit_psnr, 3), "epochs": args.epochs,
            "preset": args.preset, "seconds": round(seconds, 1),
        }
        print(f"{target:7.3f} {result.size:8d} {budget:8d} {row['share']:6.3f} "
              f"{result.bpppb:7.4f} {result.quality['psnr_band_mean']:7.2f} "
              f"{result.quality['sam_deg']:6.3f} {params:8d} {seconds:6.0f}", flush=True)
        with open(RESULTS / "rate.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
