"""How good are bands decoded at wavelengths the file never saw?

Encode a real cube with every other band removed, decode at the removed bands' wavelengths,
and compare with the true bands.  Methods compared:

- ``hsz``: what ``hsz decode --wavelengths`` does (the rule SPEC.md documents: the cubic
  through the two decoded bands on each side where the sampling is even, else the linear
  mix of the two neighbours);
- ``decoded-linear``: decode the kept bands and interpolate linearly in wavelength between
  the two decoded neighbours;
- ``decoded-spline``: the natural cubic spline through the decoded kept bands, per pixel;
- ``truth-linear`` / ``truth-spline`` / ``truth-rule``: the same interpolations of the
  *original* kept bands, no compression at all: what a rule built on the kept bands can
  reach;
- ``embedding`` (``hiner``): embeddings interpolated between the two nearest encoded bands,
  then decoded;
- ``basis-mlp`` (``latent``): the spectral weights as a function of wavelength,
  w(λ) = MLP(PE(λ)), fitted to the file's basis and offsets at the kept bands (its Fourier
  depth chosen by holding out every other kept band), then evaluated at the held-out
  wavelengths; ``basis-mlp (kept)`` is the same network at the kept bands, scored against
  the truth there, which is what storing w(λ) instead of the basis would give them.

Run from the repository root (needs ../shared/data):

    python examples/bench_interp.py --bpppb 0.2 --preset balanced
    python examples/bench_interp.py --bpppb 0.2 --preset fast --model latent
    python examples/bench_interp.py --bpppb 0.2 --epochs 10 --model latent --scene cave_feathers

Prints a table and appends a JSON line per method to examples/results/interp.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_rd import DEFAULT_DATA, _known_scenes  # noqa: E402

from hsz import api, metrics  # noqa: E402
from hsz.cube import Cube  # noqa: E402
from hsz.model.arch import HinerConfig  # noqa: E402
from hsz.model.hiner_family import split_tensors  # noqa: E402
from hsz.model.render import render_all  # noqa: E402
from hsz.spectral import band_coordinates, mixing, neighbours  # noqa: E402

RESULTS = Path(__file__).parent / "results"
#: Fourier depths the MLP's wavelength encoding may use (0: the coordinate alone).
PE_DEPTHS = (0, 2, 4, 6, 8)


def load_scene(data: Path, name: str) -> Cube:
    for scene, _files, loader in _known_scenes(data):
        if scene == name:
            cube = loader().cube
            if cube.wavelengths is None:
                raise SystemExit(f"{name} has no wavelengths; pick a scene that has them")
            return cube
    raise SystemExit(f"unknown scene {name!r}")


def mixed(kept: np.ndarray, mixes: list[list[tuple[int, float]]]) -> np.ndarray:
    """Each query as its weighted sum of kept bands (the form :func:`mixing` returns)."""
    out = np.zeros((len(mixes),) + kept.shape[1:], dtype=np.float64)
    for j, mix in enumerate(mixes):
        for band, weight in mix:
            out[j] += weight * kept[band].astype(np.float64)
    return out


def linear_between(kept: np.ndarray, kept_wl: np.ndarray, query_wl: np.ndarray) -> np.ndarray:
    """Per-pixel linear mix of the two kept bands around each query wavelength."""
    pairs = neighbours(kept_wl.astype(np.float64), query_wl.astype(np.float64))
    return mixed(kept, [[(lo, 1 - t), (hi, t)] for lo, hi, t in pairs])


def spline_weights(x: np.ndarray, query: np.ndarray) -> np.ndarray:
    """(queries, knots): the natural cubic spline through knots at increasing ``x``, as the
    linear map from the knot values to its values at ``query`` (inside [x₀, xₙ₋₁])."""
    n = x.size
    h = np.diff(x)
    a = np.zeros((n, n))
    c = np.zeros((n, n))
    a[0, 0] = a[-1, -1] = 1.0  # natural ends: zero second derivative
    for i in range(1, n - 1):
        a[i, i - 1], a[i, i], a[i, i + 1] = h[i - 1], 2 * (h[i - 1] + h[i]), h[i]
        c[i, i - 1], c[i, i], c[i, i + 1] = 6 / h[i - 1], -6 / h[i - 1] - 6 / h[i], 6 / h[i]
    second = np.linalg.solve(a, c)  # knot values -> second derivatives
    out = np.zeros((query.size, n))
    for j, q in enumerate(query):
        i = int(np.clip(np.searchsorted(x, q, side="right") - 1, 0, n - 2))
        t = (q - x[i]) / h[i]
        out[j, i] += 1 - t
        out[j, i + 1] += t
        curve = ((1 - t) ** 3 - (1 - t)) * second[i] + (t ** 3 - t) * second[i + 1]
        out[j] += h[i] ** 2 / 6 * curve
    return out


def rule_between(kept: np.ndarray, kept_wl: np.ndarray, query_wl: np.ndarray) -> np.ndarray:
    """What hsz's rule (:func:`hsz.spectral.mixing`) makes of the given kept bands."""
    return mixed(kept, mixing(kept_wl.astype(np.float64), query_wl.astype(np.float64)))


def spline_between(kept: np.ndarray, kept_wl: np.ndarray, query_wl: np.ndarray) -> np.ndarray:
    order = np.argsort(kept_wl, kind="stable")
    w = spline_weights(kept_wl[order].astype(np.float64), query_wl.astype(np.float64))
    flat = kept[order].reshape(kept.shape[0], -1).astype(np.float64)
    return (w @ flat).reshape((query_wl.size,) + kept.shape[1:])


def fit_mlp(coord: np.ndarray, rows: np.ndarray, gram: np.ndarray, peak: np.ndarray,
            depth: int, steps: int = 6000, seed: int = 0):
    """w(u) = MLP(PE(u)) fitted to spectral rows at band coordinates ``coord`` in [0, 1],
    each band's error measured in pixels (through the maps' Gram matrix) over its peak²."""
    import torch

    torch.manual_seed(seed)
    dt = torch.float64
    u = torch.tensor(coord, dtype=dt)[:, None]

    def encode(v: torch.Tensor) -> torch.Tensor:
        feats = [v]
        for lvl in range(depth):
            feats += [torch.sin(2.0 ** lvl * torch.pi * v), torch.cos(2.0 ** lvl * torch.pi * v)]
        return torch.cat(feats, 1)

    scale = np.sqrt(np.maximum(np.diag(gram), 1e-30))  # outputs in units the loss sees
    target = torch.tensor(rows * scale, dtype=dt)
    g = torch.tensor(gram / np.outer(scale, scale), dtype=dt)
    w = torch.tensor((peak.mean() / peak) ** 2, dtype=dt)  # loss near 1: Adam's ε is absolute
    net = torch.nn.Sequential(
        torch.nn.Linear(1 + 2 * depth, 64), torch.nn.SiLU(), torch.nn.Linear(64, 64),
        torch.nn.SiLU(), torch.nn.Linear(64, rows.shape[1]),
    ).to(dt)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    x = encode(u)
    for _ in range(steps):
        e = net(x) - target
        loss = (torch.einsum("bi,ij,bj->b", e, g, e) * w).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()

    def predict(c: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(encode(torch.tensor(c, dtype=dt)[:, None])).numpy() / scale

    return predict


def mlp_rows(opened, kept_cube: Cube, held_wl: np.ndarray):
    """The latent file's spectral rows in source units, the MLP's at held-out and kept
    wavelengths, the maps they multiply and the Fourier depth validation chose."""
    from hsz.model import latent

    config = latent.LatentConfig.from_json(opened.meta["model"]["config"])
    stored = opened.stored
    levels = [stored.grids[latent.level_name(lvl)] for lvl in range(config.levels)]
    maps = latent.coefficient_maps(config, levels, stored.tensors["log2_step"],
                                   stored.tensors.get("shrink") if config.shrink else None)
    ones = np.vstack([maps.reshape(config.k, -1), np.ones((1, maps[0].size))])
    gram = ones @ ones.T / ones.shape[1]
    span = opened.scale.span.astype(np.float64)
    low = opened.scale.low.astype(np.float64)
    basis = latent.full_basis(config, stored.tensors["basis"])
    rows = np.hstack([basis * span[:, None],
                      (low + span * stored.tensors["offset"].astype(np.float64))[:, None]])
    wl = kept_cube.wavelengths.astype(np.float64)
    lo, hi = wl.min(), wl.max()
    coord = (wl - lo) / (hi - lo)
    peak = np.maximum(np.ptp(kept_cube.data.reshape(kept_cube.bands, -1).astype(np.float64),
                             1), 1e-12)
    fit_idx, val_idx = np.arange(0, wl.size, 2), np.arange(1, wl.size - 1, 2)
    scores = {}
    for depth in PE_DEPTHS:
        f = fit_mlp(coord[fit_idx], rows[fit_idx], gram, peak[fit_idx], depth)
        e = f(coord[val_idx]) - rows[val_idx]
        mse = np.einsum("bi,ij,bj->b", e, gram, e)
        scores[depth] = float(np.mean(10 * np.log10(peak[val_idx] ** 2 / np.maximum(mse, 1e-30))))
    depth = max(scores, key=scores.get)
    f = fit_mlp(coord, rows, gram, peak, depth)
    held = f((held_wl - lo) / (hi - lo))
    kept = f(coord)
    render = lambda r: (r @ ones).reshape((r.shape[0],) + maps.shape[1:])  # noqa: E731
    return render(held), render(kept), depth, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", default="indian_pines")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--bpppb", type=float, default=0.2)
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--model", default="hiner", help="model family (hiner, latent)")
    parser.add_argument("--keep-file", type=Path, default=None,
                        help="write the encoded file here, or read it if it exists")
    args = parser.parse_args()

    cube = load_scene(args.data, args.scene)
    keep = np.arange(0, cube.bands, 2)
    held = np.arange(1, cube.bands - 1, 2)  # inside the kept range: no extrapolation
    kept_cube = cube.replace(
        data=np.ascontiguousarray(cube.data[keep]), wavelengths=cube.wavelengths[keep],
        fwhm=None if cube.fwhm is None else cube.fwhm[keep],
    )
    truth = cube.data[held].astype(np.float64)
    held_wl = cube.wavelengths[held]

    start = time.perf_counter()
    if args.keep_file is not None and args.keep_file.is_file():
        data = args.keep_file.read_bytes()
        encode_s = None  # encoded by an earlier run
    else:
        result = api.encode(kept_cube, bpppb=args.bpppb, model=args.model, preset=args.preset,
                            epochs=args.epochs)
        data = result.data
        encode_s = time.perf_counter() - start
        if args.keep_file is not None:
            args.keep_file.write_bytes(data)
    bpppb = len(data) * 8 / kept_cube.data.size
    rows: list[dict] = []

    def record(method: str, estimate: np.ndarray, reference: np.ndarray = truth) -> None:
        rows.append({
            "scene": f"{args.scene} (even bands kept)",
            "model": args.model,
            "method": method,
            "bpppb_of_kept": round(bpppb, 4),
            "held_out_bands": int(held.size),
            "psnr_band_mean": round(metrics.psnr_band_mean(reference, estimate), 3),
            "psnr_global": round(metrics.psnr_global(reference, estimate), 3),
            "sam_deg": round(metrics.sam_deg(reference, estimate), 3),
        })

    record("hsz", api.decode(data, wavelengths=held_wl, dtype="float64").data)

    opened = api.open_file(data)
    decoded_kept = api.decode(data, dtype="float64").data
    record("decoded-linear", linear_between(decoded_kept, kept_cube.wavelengths, held_wl))
    record("decoded-spline", spline_between(decoded_kept, kept_cube.wavelengths, held_wl))
    record("truth-linear", linear_between(kept_cube.data, kept_cube.wavelengths, held_wl))
    record("truth-spline", spline_between(kept_cube.data, kept_cube.wavelengths, held_wl))
    record("truth-rule", rule_between(kept_cube.data, kept_cube.wavelengths, held_wl))
    record("kept bands (file)", decoded_kept, kept_cube.data.astype(np.float64))

    note = ""
    if args.model == "hiner":
        # HINER's own embedding interpolation, called directly: it is not the decode rule.
        config = HinerConfig.from_json(opened.meta["model"]["config"])
        decoder, embeddings = split_tensors(opened.tensors)
        query = api.query_coordinates(opened.meta, held_wl)
        scale = opened.scale.interpolate(opened.band_coords, query)
        bands = render_all(config, decoder, embeddings,
                           band_coordinates(kept_cube.wavelengths, kept_cube.bands), query)
        record("embedding", bands * scale.span[:, None, None] + scale.low[:, None, None])
    elif args.model == "latent":
        at_held, at_kept, depth, scores = mlp_rows(opened, kept_cube, held_wl)
        record("basis-mlp", at_held)
        record("basis-mlp (kept)", at_kept, kept_cube.data.astype(np.float64))
        note = (f"basis-mlp: Fourier depth {depth} chosen by validation "
                + ", ".join(f"{d}: {s:.2f} dB" for d, s in scores.items()))

    took = "by an earlier run" if encode_s is None else f"in {encode_s:.0f} s"
    print(f"{args.scene}: encoded {kept_cube.bands} kept bands at {bpppb:.4f} bpppb {took}; "
          f"{held.size} held-out bands")
    if note:
        print(note)
    print(f"{'method':18s} {'PSNR band mean':>15s} {'PSNR global':>12s} {'SAM':>7s}")
    for r in rows:
        print(f"{r['method']:18s} {r['psnr_band_mean']:15.2f} {r['psnr_global']:12.2f} "
              f"{r['sam_deg']:7.3f}")
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / "interp.jsonl", "a", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps({**r, "preset": args.preset, "epochs": args.epochs,
                                 "encode_s": None if encode_s is None else round(encode_s, 1)})
                     + "\n")


if __name__ == "__main__":
    main()
