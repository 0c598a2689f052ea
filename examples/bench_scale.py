"""Scenes of any size: peak memory and time against area, seams, tiling's cost, workers, Dask.

    python examples/bench_scale.py                      # everything, ~1 h on 2 cores
    python examples/bench_scale.py --parts memory --sizes 512,1024

The large scene is a mosaic of the three real CAVE scenes in ``../shared/data``
(31 bands, 512x512 each, uint16): a 4x4 arrangement of 512-pixel cells, cell (i, j) holding
scene (4i + j) mod 3, rotated by (i + j) quarter turns and mirrored left-right when
(4i + j) div 3 is odd, so no two neighbouring cells repeat.  Smaller scenes are its
top-left corner.  It is written as a (bands, rows, cols) .npy file under ``--work``.

Every encode and decode runs as a separate ``hsz`` process, so its peak resident memory
(``ru_maxrss`` from ``wait4``) is the codec's alone.  Parts:

* ``memory``: encode and decode of each size (fixed iteration count ``--epochs``, so time
  per tile is comparable), peak RSS and seconds, and a plot;
* ``seams``: PSNR of pixels within 2 of an inner tile border against the rest, in a
  512x512 scene coded in 256-pixel tiles with margins of 0, 4, 8 and 16 pixels and coded
  whole;
* ``tiling``: RD of a 512x512 scene coded whole and in four 256-pixel tiles (default
  margin);
* ``allocation``: equal-slope against equal-area budgets on the 1024 mosaic;
* ``workers``: the 1024 mosaic with 1 and 2 workers and on a local Dask cluster (bytes
  must match); Dask's cost per job, measured with empty jobs.

Results go to ``examples/results/scale.json`` and ``examples/SCALE.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"
SCENES = ("cave_balloons", "cave_chart_and_stuffed_toy", "cave_feathers")
CELL = 512
RATE = 0.1


def build_mosaic(work: Path, side: int) -> Path:
    """The top-left ``side`` x ``side`` of the 2048 mosaic, as a .npy file."""
    path = work / f"mosaic_{side}.npy"
    if path.exists():
        return path
    scenes = [np.load(SHARED / f"{name}.npy", mmap_mode="r") for name in SCENES]
    cells = -(-side // CELL)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16,
                                    shape=(31, cells * CELL, cells * CELL))
    for i in range(cells):
        for j in range(cells):
            k = 4 * i + j
            cell = np.rot90(np.asarray(scenes[k % 3]), k=(i + j) % 4, axes=(1, 2))
            if (k // 3) % 2:
                cell = cell[:, :, ::-1]
            out[:, i * CELL:(i + 1) * CELL, j * CELL:(j + 1) * CELL] = cell
    out.flush()
    del out
    if cells * CELL != side:
        full = np.load(path, mmap_mode="r")
        np.save(path, np.ascontiguousarray(full[:, :side, :side]))
    return path


def run_hsz(args: list[str]) -> dict[str, Any]:
    """Run ``hsz`` in a child process: its wall time and peak resident memory."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "hsz.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"hsz {' '.join(args)} failed: {err.strip()[-400:]}")
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024.0, "stdout": out}


def encode(src: Path, out: Path, epochs: int, extra: list[str] | None = None
           ) -> dict[str, Any]:
    args = ["encode", str(src), "--layout", "bhw", "-o", str(out), "--bpppb", str(RATE),
            "--preset", "fast", "--epochs", str(epochs), "--threads", "1", "--overwrite",
            "--json", "-q", *(extra or [])]
    r = run_hsz(args)
    r.update(json.loads(r.pop("stdout")))
    return r


def part_memory(work: Path, sizes: list[int], epochs: int, margin: int | None,
                earlier: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each size's row; rows of sizes not measured now are kept from ``earlier``."""
    rows = [r for r in earlier if r["side"] not in sizes]
    extra = [] if margin is None else ["--tile-margin", str(margin)]
    for side in sizes:
        src = build_mosaic(work, side)
        out = work / f"mosaic_{side}.hsz"
        enc = encode(src, out, epochs, extra)
        dec = run_hsz(["decode", str(out), "-o", str(work / f"mosaic_{side}_dec.npy"),
                       "--overwrite", "-q"])
        row = {"side": side, "megapixels": side * side / 1e6,
               "margin": 8 if margin is None else margin,
               "encode_s": enc["seconds"], "encode_rss_mb": enc["peak_rss_mb"],
               "decode_s": dec["seconds"], "decode_rss_mb": dec["peak_rss_mb"],
               "bytes": enc["bytes"], "bpppb": enc["bpppb"],
               "psnr_band_mean": enc["psnr_band_mean"], "sam_deg": enc["sam_deg"]}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return sorted(rows, key=lambda r: r["side"])


def _border_psnr(original: np.ndarray, decoded: np.ndarray, near: np.ndarray
                 ) -> tuple[float, float]:
    """Band-mean PSNR over the ``near`` pixels and over the others."""
    border, inner = [], []
    for k in range(original.shape[0]):
        a = original[k].astype(np.float64)
        b = decoded[k].astype(np.float64)
        rng = float(a.max() - a.min()) or 1.0
        err = (a - b) ** 2
        border.append(10 * np.log10(rng * rng / max(err[near].mean(), 1e-12)))
        inner.append(10 * np.log10(rng * rng / max(err[~near].mean(), 1e-12)))
    return float(np.mean(border)), float(np.mean(inner))


def part_seams(work: Path, epochs: int, tile: int = 256, rate: float = 0.2,
               margins: tuple[int, ...] = (0, 4, 8, 16)) -> dict[str, Any]:
    """Pixels within 2 of an inner tile border against the rest, tiled and untiled.

    The same pixels are scored in a file coded whole, so what the content does at those
    places (an edge, a texture) is taken out: the tiled file's border deficit beyond the
    untiled one's is what the tiles cost there.  Each margin is one tiled file.
    """
    from hsz import api

    src = SHARED / "cave_balloons.npy"
    original = np.load(src)
    side = original.shape[1]
    near = np.zeros(original.shape[1:], dtype=bool)
    for edge in range(tile, side, tile):
        near[edge - 2:edge + 2, :] = True
        near[:, edge - 2:edge + 2] = True
    row: dict[str, Any] = {"scene": "cave_balloons", "tile": tile, "rate": rate,
                           "iterations": epochs, "border_pixels": int(near.sum()),
                           "tiled": []}
    runs = [("untiled", None, [])] + [(f"tiled_m{m}", m, ["--tile", str(tile),
                                                           "--tile-margin", str(m)])
                                       for m in margins]
    for name, margin, extra in runs:
        out = work / f"seams_{name}.hsz"
        r = encode(src, out, epochs, ["--bpppb", str(rate), *extra])
        border, inner = _border_psnr(original, api.decode(out).data, near)
        entry = {"psnr_border": border, "psnr_interior": inner,
                 "difference_db": inner - border, "bpppb": r["bpppb"],
                 "psnr_band_mean": r["psnr_band_mean"], "encode_s": r["seconds"]}
        if margin is None:
            row["untiled"] = entry
        else:
            entry["margin"] = margin
            entry["seam_cost_db"] = entry["difference_db"] - row["untiled"]["difference_db"]
            row["tiled"].append(entry)
        print(json.dumps({name: entry}), flush=True)
    return row


def part_tiling(work: Path, epochs: int, rates: list[float]) -> list[dict[str, Any]]:
    src = SHARED / "cave_balloons.npy"
    rows = []
    for rate in rates:
        for tile in (None, 256):
            extra = ["--bpppb", str(rate)] + ([] if tile is None else ["--tile", str(tile)])
            # tiled rows use the default margin
            r = encode(src, work / "balloons.hsz", epochs, extra)
            row = {"rate": rate, "tiles": 1 if tile is None else 4, "transform": "dwt",
                   "bpppb": r["bpppb"],
                   "psnr_band_mean": r["psnr_band_mean"], "sam_deg": r["sam_deg"],
                   "encode_s": r["seconds"]}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def part_allocation(work: Path, epochs: int, memory_rows: list[dict[str, Any]]
                    ) -> list[dict[str, Any]]:
    src = build_mosaic(work, 1024)
    rows = []
    for mode in ("rd", "area"):
        code = ("import sys, json; from hsz import io, api\n"
                f"sc = io.open_scene({str(src)!r}, layout='bhw')\n"
                f"r = api.encode_scene(sc, bpppb={RATE}, preset='fast', epochs={epochs}, "
                f"threads=1, allocation={mode!r})\n"
                "print(json.dumps({'bpppb': r.bpppb, **r.quality}))")
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout
        row = {"allocation": mode, **json.loads(out.strip().splitlines()[-1]),
               "seconds": time.perf_counter() - t0}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def part_workers(work: Path, epochs: int) -> dict[str, Any]:
    src = build_mosaic(work, 1024)
    runs = {}
    for name, extra in (("1 worker", []), ("2 workers", ["--workers", "2"]),
                        ("dask, 2 workers", ["--workers", "2", "--backend", "dask"])):
        out = work / f"workers_{len(runs)}.hsz"
        r = encode(src, out, epochs, extra)
        runs[name] = {"seconds": r["seconds"], "peak_rss_mb": r["peak_rss_mb"],
                      "bytes": out.read_bytes()}
        print(name, round(r["seconds"], 1), flush=True)
    first = runs["1 worker"]["bytes"]
    result = {name: {"seconds": v["seconds"], "peak_rss_mb_parent": v["peak_rss_mb"],
                     "identical_to_serial": v["bytes"] == first} for name, v in runs.items()}
    result["dask_overhead"] = dask_overhead()
    print(json.dumps(result), flush=True)
    return result


def _nothing(x: int) -> int:
    return x


def dask_overhead(jobs: int = 64) -> dict[str, float]:
    """Start-up of a local 2-worker cluster, and wall time per empty job through it."""
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=40)
    client = Client(cluster)
    t1 = time.perf_counter()
    client.gather(client.map(_nothing, range(4), pure=False))  # warm
    t2 = time.perf_counter()
    client.gather(client.map(_nothing, range(jobs), pure=False))
    t3 = time.perf_counter()
    client.close()
    cluster.close()
    return {"cluster_start_s": t1 - t0, "per_job_ms": 1000 * (t3 - t2) / jobs}


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mp = [r["megapixels"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    axes[0].plot(mp, [r["encode_rss_mb"] for r in rows], "o-", label="encode")
    axes[0].plot(mp, [r["decode_rss_mb"] for r in rows], "s-", label="decode")
    axes[0].axhline(2048, color="grey", ls=":", label="2 GB")
    axes[0].set(xlabel="scene area (megapixels, 31 bands)", ylabel="peak RSS (MB)")
    axes[0].legend()
    axes[1].plot(mp, [r["encode_s"] for r in rows], "o-", label="encode")
    axes[1].plot(mp, [r["decode_s"] for r in rows], "s-", label="decode")
    axes[1].set(xlabel="scene area (megapixels, 31 bands)", ylabel="seconds")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def report(results: dict[str, Any], path: Path) -> None:
    """examples/SCALE.md from the measured figures (nothing here is typed in by hand)."""
    lines = ["# Scenes of any size: measured", "",
             "Made by `python examples/bench_scale.py` (2 CPU cores, no GPU; each encode and "
             "decode a separate process; peak RSS from `wait4`).  The scenes are the "
             "top-left corners of a 2048x2048x31 uint16 mosaic of the three CAVE scenes "
             "(see the script's docstring for how it is laid out); the latent family, "
             f"`--preset fast --epochs {results.get('epochs')}` (a fixed iteration count, "
             f"so time per tile is comparable), `--threads 1`, {RATE} bpppb.", ""]
    if results.get("memory"):
        lines += ["## Memory and time against area", ""]
        if not all("margin" in r for r in results["memory"]):
            lines += ["Rows without a margin were measured before the wavelet latents and "
                      "tile margins (pyramid latents); rows with one, after.", ""]
        lines += [
                  "| scene | tiles | margin | encode s | encode peak RSS | decode s | decode "
                  "peak RSS | bpppb | PSNR (band mean) | SAM |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in results["memory"]:
            tiles = max(1, (r["side"] // CELL) ** 2)
            margin = "-" if tiles == 1 else r.get("margin", 0)
            lines.append(f"| {r['side']}x{r['side']}x31 | {tiles} | {margin} | "
                         f"{r['encode_s']:.0f} | "
                         f"{r['encode_rss_mb']:.0f} MB | {r['decode_s']:.1f} | "
                         f"{r['decode_rss_mb']:.0f} MB | {r['bpppb']:.4f} | "
                         f"{r['psnr_band_mean']:.2f} dB | {r['sam_deg']:.2f} deg |")
        per = [r["encode_s"] / r["megapixels"] for r in results["memory"]]
        lines += ["", "Encode seconds per megapixel: " + ", ".join(f"{v:.0f}" for v in per)
                  + ".  ![memory and time](results/scale.png)", ""]
    if results.get("seams"):
        s = results["seams"]
        u = s["untiled"]
        lines += ["## Seams", "",
                  f"CAVE balloons at {s['rate']} bpppb ({s['iterations']} "
                  f"iterations) in {s['tile']}-pixel tiles, by tile margin: PSNR of the "
                  f"{s['border_pixels']:,d} pixels within 2 of an inner tile border and of "
                  "the rest.  Coded whole, the same pixels decode at "
                  f"{u['psnr_border']:.2f} dB against {u['psnr_interior']:.2f} dB for the "
                  f"rest ({u['difference_db']:+.2f} dB); the seam cost is the tiled file's "
                  "border deficit beyond that.", "",
                  "| file | bpppb | PSNR (band mean) | border PSNR | interior PSNR | "
                  "border deficit | seam cost | encode s |",
                  "|---|---|---|---|---|---|---|---|",
                  f"| whole | {u['bpppb']:.4f} | {u['psnr_band_mean']:.2f} dB | "
                  f"{u['psnr_border']:.2f} dB | {u['psnr_interior']:.2f} dB | "
                  f"{u['difference_db']:+.2f} dB | - | {u['encode_s']:.0f} |"]
        for t in s["tiled"]:
            lines.append(f"| tiles, margin {t['margin']} | {t['bpppb']:.4f} | "
                         f"{t['psnr_band_mean']:.2f} dB | {t['psnr_border']:.2f} dB | "
                         f"{t['psnr_interior']:.2f} dB | {t['difference_db']:+.2f} dB | "
                         f"{t['seam_cost_db']:+.2f} dB | {t['encode_s']:.0f} |")
        lines.append("")
    if results.get("tiling"):
        old = "" if all("transform" in r for r in results["tiling"]) else (
            "  Measured before the wavelet latents and tile margins (pyramid latents, no "
            "margin); not rerun since.")
        lines += ["## Tiled against untiled (CAVE balloons, 512x512x31, "
                  f"{3 * results.get('epochs', 0)} iterations)", "", old.strip(), "",
                  "| target bpppb | tiles | bpppb | PSNR (band mean) | SAM | encode s |",
                  "|---|---|---|---|---|---|"]
        for r in results["tiling"]:
            lines.append(f"| {r['rate']} | {r['tiles']} | {r['bpppb']:.4f} | "
                         f"{r['psnr_band_mean']:.2f} dB | {r['sam_deg']:.2f} deg | "
                         f"{r['encode_s']:.0f} |")
        lines.append("")
    if results.get("allocation"):
        lines += ["## Budget split across tiles (1024 mosaic, four tiles)", "",
                  "| allocation | bpppb | PSNR (band mean) | PSNR (global) | SAM |",
                  "|---|---|---|---|---|"]
        for r in results["allocation"]:
            name = "equal slope (default)" if r["allocation"] == "rd" else "equal area"
            lines.append(f"| {name} | {r['bpppb']:.4f} | {r['psnr_band_mean']:.2f} dB | "
                         f"{r['psnr_global']:.2f} dB | {r['sam_deg']:.2f} deg |")
        lines.append("")
    if results.get("workers"):
        w = results["workers"]
        lines += ["## Workers and Dask (1024 mosaic, four tiles)", "",
                  "| run | seconds | same bytes as serial |", "|---|---|---|"]
        for name in ("1 worker", "2 workers", "dask, 2 workers"):
            if name in w:
                lines.append(f"| {name} | {w[name]['seconds']:.0f} | "
                             f"{'yes' if w[name]['identical_to_serial'] else 'NO'} |")
        o = w.get("dask_overhead", {})
        if o:
            lines += ["", f"A local Dask cluster of two worker processes starts in "
                      f"{o['cluster_start_s']:.1f} s and costs {o['per_job_ms']:.1f} ms per "
                      "job (empty jobs), against minutes per tile fit."]
        lines.append("")
    path.write_text("\n".join(lines))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="memory,seams,tiling,allocation,workers")
    ap.add_argument("--sizes", default="512,1024,2048")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--margins", default="0,4,8,16", help="tile margins for the seams part")
    ap.add_argument("--margin", type=int, default=None,
                    help="tile margin for the memory part (default: hsz's)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/hsz_scale"))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "scale.json")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    parts = args.parts.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    if "memory" in parts or "allocation" in parts or "workers" in parts:
        results["epochs"] = args.epochs  # what the tables of those parts say they used

    def save() -> None:
        args.out.write_text(json.dumps(results, indent=2) + "\n")

    if "memory" in parts:
        results["memory"] = part_memory(args.work, sizes, args.epochs, args.margin,
                                        results.get("memory", []))
        save()
        plot(results["memory"], HERE / "results" / "scale.png")
    if "seams" in parts:
        results["seams"] = part_seams(args.work, 3 * args.epochs, margins=tuple(
            int(m) for m in args.margins.split(",")))
        save()
    if "tiling" in parts:
        results["tiling"] = part_tiling(args.work, 3 * args.epochs, [0.1, 0.2])
        save()
    if "allocation" in parts:
        results["allocation"] = part_allocation(args.work, args.epochs,
                                                results.get("memory", []))
        save()
    if "workers" in parts:
        results["workers"] = part_workers(args.work, args.epochs)
        save()
    report(results, HERE / "SCALE.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
