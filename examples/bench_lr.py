"""Learning rate and schedule length across scenes: what the presets' defaults rest on.

Each run fits the network the rate controller plans for a scene at a target rate, with a given
learning rate and epoch count, and prints the psnr_band_mean of the fitted (float) weights.
Quantization is left out on purpose: it costs well under 0.01 dB at these sizes
(examples/RESULTS_fit.md), and the fit is what the knobs change.

    python examples/bench_lr.py --runs indian_pines:0.2:100:2e-3,cave_balloons:0.05:400:2e-3

A run is ``scene:bpppb:epochs:lr``; scenes are the names examples/bench_rd.py knows.  Appends
one JSON line per run to examples/results/lr.jsonl.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import bench_rd

from hsz import api
from hsz.model.fit import fit
from hsz.model.hiner_family import stored_values

RESULTS = Path(__file__).parent / "results"


def run_one(data: Path, scene: str, bpppb: float, epochs: int, lr: float,
            preset: str) -> dict[str, Any]:
    """Plan the network exactly as ``hsz encode`` does, then fit it with the given knobs."""
    found = bench_rd.load_scenes(data, [scene], print)
    if not found:
        raise SystemExit(f"scene {scene!r} not found in {data}")
    prep = api.plan_encode(found[0].cube, bpppb=bpppb, preset=preset)
    start = time.perf_counter()
    result = fit(prep.target, prep.coords, prep.plan.config, mask=prep.mask, epochs=epochs,
                 preset=preset, lr=lr, device="cpu")
    return {
        "scene": scene, "bpppb": bpppb, "epochs": epochs, "lr": lr, "preset": preset,
        "stored_values": stored_values(prep.plan.config), "fit_psnr": round(result.best_psnr, 3),
        "seconds": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, help="comma list of scene:bpppb:epochs:lr")
    parser.add_argument("--preset", default="fast", help="batch size and bf16 come from it")
    parser.add_argument("--data", type=Path, default=bench_rd.DEFAULT_DATA)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    for spec in args.runs.split(","):
        scene, bpppb, epochs, lr = spec.split(":")
        row = run_one(args.data, scene, float(bpppb), int(epochs), float(lr), args.preset)
        print(json.dumps(row), flush=True)
        with open(RESULTS / "lr.jsonl", "a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
