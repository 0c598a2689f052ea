"""Benchmark HINER fitting on Indian Pines: quality vs size, time, and ablations.

Run from the repository root (CPU time is scarce: run it in the background)::

    nohup nice python examples/bench_fit.py > examples/out/bench_fit.log 2>&1 &

Every finished run is appended as one JSON line to ``--out`` so a long benchmark that is
interrupted still leaves its results.  Budgets are in stored parameters, from a target rate
assuming ~7 coded bits per parameter (8-bit quantization + entropy coding), so that the sizes
correspond to roughly 0.05 / 0.1 / 0.2 bits per pixel per band once in a file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import hsz.model.fit as fit_mod
from hsz import metrics
from hsz.cube import Cube
from hsz.model.arch import HinerConfig, param_counts, size_for_budget
from hsz.model.fit import FitResult, fit
from hsz.model.render import render_all
from hsz.normalize import band_scale, normalize
from hsz.spectral import band_coordinates, read_wavelength_file

BITS_PER_PARAM = 7.0


def load_scene(cube_path: Path, wl_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(bands, rows, cols) float64 cube and its wavelengths in nm."""
    cube = np.load(cube_path)  # (rows, cols, bands) as distributed
    cube = np.ascontiguousarray(np.transpose(cube, (2, 0, 1))).astype(np.float64)
    wl = read_wavelength_file(wl_path)
    if wl.shape[0] != cube.shape[0]:
        raise SystemExit(f"{wl.shape[0]} wavelengths for {cube.shape[0]} bands")
    return cube, wl


def run_one(
    name: str,
    cube: np.ndarray,
    coords: np.ndarray,
    cfg: HinerConfig,
    *,
    epochs: int | None,
    preset: str,
    gamma: float = 0.01,
    lr: float | None = None,
    seed: int = 0,
    band_order: np.ndarray | None = None,
) -> dict:
    scale = band_scale(Cube(cube), None)
    norm = normalize(Cube(cube), scale, None)
    t0 = time.perf_counter()
    c0 = time.process_time()
    last = [t0]

    def progress(rec: dict) -> None:
        if "eval_psnr" in rec:
            now = time.perf_counter()
            print(
                f"  [{name}] epoch {rec['epoch']:4d}/{rec['epochs']}  "
                f"psnr {rec['eval_psnr']:.2f} dB  ({now - t0:.0f} s)",
                flush=True,
            )
            last[0] = now

    res: FitResult = fit(
        norm, coords, cfg, epochs=epochs, preset=preset, gamma=gamma, lr=lr, seed=seed,
        device="cpu", progress=progress,
    )
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0  # CPU seconds: robust to other jobs sharing the cores
    decoded = render_all(cfg, res.decoder, res.embeddings, coords, coords)
    denorm = decoded.astype(np.float64) * scale.span[:, None, None] + scale.low[:, None, None]
    q = metrics.quality(cube, denorm)
    counts = param_counts(cfg)
    curve = []
    elapsed = 0.0
    for h in res.history:
        elapsed += h["seconds"]
        if "eval_psnr" in h:
            curve.append([h["epoch"], round(h["eval_psnr"], 3), round(elapsed, 1)])
    return {
        "name": name,
        "preset": preset,
        "epochs": res.epochs,
        "lr": fit_mod.PRESETS[preset].lr if lr is None else lr,
        "gamma": gamma,
        "seed": seed,
        "stored_params": counts["stored"],
        "decoder_params": counts["decoder"],
        "embedding_values": counts["embeddings"],
        "bpppb_at_7bits": counts["stored"] * BITS_PER_PARAM / cube.size,
        "config": cfg.to_json(),
        "wall_s": round(wall, 1),
        "fit_s": round(res.seconds, 1),
        "cpu_s": round(cpu, 1),
        "load_avg_end": round(os.getloadavg()[0], 2),
        "best_psnr_normalized": round(res.best_psnr, 3),
        "psnr_band_mean": round(q["psnr_band_mean"], 3),
        "psnr_global": round(q["psnr_global"], 3),
        "sam_deg": round(q["sam_deg"], 4),
        "curve": curve,
    }


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path,
                    default=here / "../shared/data/indian_pines_corrected.npy")
    ap.add_argument("--wavelengths", type=Path,
                    default=here / "../shared/data/indian_pines_corrected_wavelengths.csv")
    ap.add_argument("--sizes", default="0.2,0.1,0.05", help="target bpppb list (7 bits/param)")
    ap.add_argument("--preset", default="balanced")
    ap.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    ap.add_argument("--ablation-size", type=float, default=0.1)
    ap.add_argument("--ablation-epochs", type=int, default=60)
    ap.add_argument("--reference-size", type=float, default=0.2)
    ap.add_argument("--parts", default="sizes,ablations,reference",
                    help="comma list of: sizes, ablations, reference")
    ap.add_argument("--out", type=Path, default=here / "examples/out/bench_fit.jsonl")
    args = ap.parse_args(argv)

    if not args.data.exists():
        print(f"no data at {args.data}", file=sys.stderr)
        return 1
    # torch is imported through hsz.model only, so that hsz.model._omp runs before libgomp loads.
    torch = fit_mod.torch
    print(
        f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"cuda {'yes' if torch.cuda.is_available() else 'no'}; load avg "
        f"{os.getloadavg()[0]:.2f}; GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT')}",
        flush=True,
    )
    cube, wl = load_scene(args.data, args.wavelengths)
    bands, rows, cols = cube.shape
    coords = band_coordinates(wl, bands)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    parts = set(args.parts.split(","))

    def budget(bpppb: float) -> int:
        return int(round(bpppb * cube.size / BITS_PER_PARAM))

    def emit(rec: dict) -> None:
        with args.out.open("a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(
            f"{rec['name']:<28} params {rec['stored_params']:>7} ({rec['bpppb_at_7bits']:.3f} "
            f"bpppb@7b)  epochs {rec['epochs']:>4}  {rec['wall_s']:>6.0f} s "
            f"(cpu {rec['cpu_s']:.0f} s)  "
            f"PSNR {rec['psnr_band_mean']:.2f} dB  global {rec['psnr_global']:.2f} dB  "
            f"SAM {rec['sam_deg']:.3f} deg",
            flush=True,
        )
        print("    psnr vs epoch:", rec["curve"], flush=True)

    if "sizes" in parts:
        for s in [float(x) for x in args.sizes.split(",") if x]:
            cfg = size_for_budget(bands, rows, cols, budget(s))
            emit(run_one(f"size {s} {args.preset}", cube, coords, cfg,
                         epochs=args.epochs, preset=args.preset))

    if "ablations" in parts:
        s, ep = args.ablation_size, args.ablation_epochs
        cfg = size_for_budget(bands, rows, cols, budget(s))
        emit(run_one(f"abl {s} L1+CAM (default)", cube, coords, cfg, epochs=ep,
                     preset=args.preset))
        emit(run_one(f"abl {s} L1 only", cube, coords, cfg, epochs=ep, preset=args.preset,
                     gamma=0.0))
        perm = np.random.default_rng(0).permutation(bands)
        emit(run_one(f"abl {s} shuffled bands", cube, coords[perm], cfg, epochs=ep,
                     preset=args.preset))
        no_pe = size_for_budget(bands, rows, cols, budget(s), use_pe=False)
        emit(run_one(f"abl {s} no PE", cube, coords, no_pe, epochs=ep, preset=args.preset))
        for lr in (2e-3, 5e-4):
            emit(run_one(f"abl {s} lr {lr:g}", cube, coords, cfg, epochs=ep,
                         preset=args.preset, lr=lr))

    if "reference" in parts:
        s = args.reference_size
        cfg = size_for_budget(bands, rows, cols, budget(s))
        emit(run_one(f"ref {s} paper 300ep b1", cube, coords, cfg, epochs=None,
                     preset="paper"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
