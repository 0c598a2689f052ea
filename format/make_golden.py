"""Write the golden files in format/v1.0/ to v1.8/ from small crops of real scenes.

For each case it writes ``<name>.hsz``, ``<name>.info.json`` (``hsz.codec.describe``),
``<name>.decoded.npy`` (the decoded cube's samples, bands first) and ``<name>.sha256``
(SHA-256 of those sample bytes).  Golden files are made once, on purpose, and never
regenerated to make a test pass: a change in their bytes is a format change.

Format 1.1 cases add ``<name>.grids.npz`` (every decoded grid's levels).  One is encoded by
the ``latent`` family, one by the toy family of ``tests/toy_family.py`` (so the test
registers it to decode the cube), one is written straight through the codec with three
grids (two guided by the first, the third sharing the second's network) and two-layer
context networks, to cover every path of the grid coding.

Format 1.2 cases: the ``latent`` family on the Indian Pines crop (band curves in ``BNDS``,
basis and offsets coded as differences), HINER on the float64 Samson crop (float band
ranges as short decimals), and a codec-only file with a curve of each kind and every
difference method.

Format 1.3 cases: tiled files (SPEC §4.7) made through ``hsz.api.encode_scene`` from a
georeferenced Indian Pines crop with a nodata corner (``latent``, six tiles, the last
column of tiles cut short) and from a float32 Samson crop (``hiner``, four tiles).
Format 1.4 cases: the same two scenes with each tile coded over an 8-pixel margin.
Format 1.5 cases: grids under context rule 1 (finer scale tables): the ``latent`` family on
the Indian Pines crop of 1.2, and a codec-only file of sparse grids whose predicted scales
reach the tables rule 0 does not have.
Format 1.6 cases: grids under context rule 2 (a free zero ratio, the ``group`` feature): the
``latent`` family on the same crop, and a codec-only file of three grids (a guide, a sparse
six-channel grid, a third sharing its layers) whose biases spread the ratio rungs; then,
with the family's ``shrink`` (nonzero latents decode nearer zero), the crop again.
Format 1.7 cases: grids under context rule 3 (rule 2 with its channel biases as Exp-Golomb
codes): the ``latent`` family on the same crop, and a codec-only file of three grids whose
biases have different exponents, negative values, jumps and both kinds of prediction
(``c − 1`` below ``group``, ``c − group`` above).
Format 1.8 cases: grids under context rule 4 (rule 3 with the network's layers as
Exp-Golomb codes): the ``latent`` family on the same crop, and a codec-only file of three
grids, two sharing a three-layer network whose tensors have different exponents (an int16
extreme, odd values, an all-zero bias) and one with its own two layers.

Run from the repository root with ``../shared/data`` beside it:
``python format/make_golden.py [1.0|1.1|1.2|1.3|1.4|1.5|1.6|1.7|1.8]`` (default 1.0).
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


def cases_1_1() -> dict[str, bytes]:
    """Format 1.1 files: one through a family, one straight through the codec."""
    from hsz import api, codec
    from hsz.codec import context
    from hsz.codec.payload import Grid
    from hsz.model import register

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from toy_family import TOY

    register(TOY, replace=True)
    ip = np.load(SHARED / "indian_pines_corrected.npy")[50:66, 80:96, 40:64]
    table = np.loadtxt(SHARED / "indian_pines_corrected_wavelengths.csv", delimiter=",",
                       comments="#", skiprows=4, usecols=(3, 4))[40:64]
    cube = Cube_(np.ascontiguousarray(np.moveaxis(ip, -1, 0)), wavelengths=table[:, 0],
                 fwhm=table[:, 1], wavelength_units="Nanometers", source_format="npy")
    toy = api.encode(cube, bpppb=2.0, model=TOY.id).data
    latent = api.encode(cube, bpppb=6.0, model="latent", preset="fast", epochs=150, seed=0).data

    # PCA scores of the same crop, as a coarse grid and a full-resolution residual guided by it.
    x = cube.data.reshape(cube.bands, -1).astype(np.float64)
    x = (x - x.mean(axis=1, keepdims=True)) / (x.std() or 1.0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    scores = (vt[:3] * 40.0).reshape(3, 16, 16)
    coarse = np.rint(scores.reshape(3, 8, 2, 8, 2).mean(axis=(2, 4))).astype(np.int32)
    fine = np.rint(scores - np.repeat(np.repeat(coarse, 2, 1), 2, 2)).astype(np.int32)
    rng = np.random.default_rng(11)

    def net(inputs: int, channels: int) -> context.IntNet:
        return context.IntNet.from_float(
            [rng.normal(0, 0.2, (5, inputs)), rng.normal(0, 0.3, (2, 5))],
            [rng.normal(0, 0.1, 5), np.array([0.0, 1.0])], rng.normal(0, 0.3, (channels, 2)))

    shared = net(context.inputs(context.RULE_CHECKERBOARD), 3)
    half = context.IntNet(shared.frac, shared.weights, shared.biases,
                          (shared.channel_bias - 64).astype(np.int16))
    rule = context.RULE_CHECKERBOARD
    grids = {"coarse": Grid(coarse, 10, net(context.inputs(rule), 3), rule=rule),
             "fine": Grid(fine, 10, shared, guide="coarse", rule=rule),
             "fine_half": Grid(fine // 2, 10, half, guide="coarse", shares="fine", rule=rule)}
    guided = codec.pack({"note": "grid conformance file; no model"}, {}, grids=grids)
    return {"toy_linear_ip_u16": toy, "guided_grids": guided, "latent_ip_u16": latent}


def _latent_ip_crop() -> bytes:
    """The 16x16x24 Indian Pines crop with its band curves, encoded by ``latent``."""
    from hsz import api

    ip = np.load(SHARED / "indian_pines_corrected.npy")[50:66, 80:96, 40:64]
    table = np.loadtxt(SHARED / "indian_pines_corrected_wavelengths.csv", delimiter=",",
                       comments="#", skiprows=4, usecols=(3, 4))[40:64]
    ip_cube = Cube_(np.ascontiguousarray(np.moveaxis(ip, -1, 0)), wavelengths=table[:, 0],
                    fwhm=table[:, 1], wavelength_units="Nanometers", source_format="npy")
    return api.encode(ip_cube, bpppb=6.0, model="latent", preset="fast", epochs=150,
                      seed=0).data


def cases_1_2() -> dict[str, bytes]:
    """Format 1.2 files: band curves and difference-coded tensors."""
    from hsz import api, codec

    latent = _latent_ip_crop()

    import scipy.io

    v = scipy.io.loadmat(SHARED / "samson.mat")["V"]
    samson = np.reshape(v.T, (95, 95, 156), order="F")[30:42, 40:52, 60:80]
    samson_cube = Cube_(np.ascontiguousarray(np.moveaxis(samson, -1, 0)), source_format="mat")
    hiner = api.encode(samson_cube, bpppb=6.0, epochs=40, seed=0).data

    # Curves of every kind: decimal float64 wavelengths on a near-linear grid with a jump,
    # fwhm that are not short decimals (stored), float32 and int16 band ranges; tensors
    # smooth along their first axis, so that each difference method is the cheapest.
    rng = np.random.default_rng(12)
    wl = np.round(np.concatenate([np.linspace(400.0, 700.0, 20), np.linspace(900.0, 1000.0, 12)])
                  + rng.normal(0, 0.02, 32), 2)
    meta = {"note": "band-curve conformance file; no model", "wavelengths": wl.tolist(),
            "fwhm": (10.0 + rng.random(32) / 3.0).tolist()}
    raw = {"band_low": np.round(rng.random(32), 3).astype(np.float32),
           "band_high": (1000 + np.cumsum(rng.integers(-20, 21, 32))).astype(np.int16)}
    t = np.linspace(0, 1, 64, dtype=np.float32)[:, None]
    tensors = {"smooth_gauss": np.cumsum(rng.normal(0, 0.02, (64, 6)), axis=0) + t,
               "smooth_geom": np.cumsum(rng.laplace(0, 0.02, (64, 5)), axis=0),
               "smooth_hist": np.cumsum(rng.choice([-0.1, 0.0, 0.0, 0.25], (64, 4)), axis=0)}
    tensors = {k: np.asarray(v, np.float32) for k, v in tensors.items()}
    curves = codec.pack(meta, tensors, bits={"smooth_gauss": 10, "smooth_geom": 10,
                                             "smooth_hist": 6}, raw=raw)
    return {"latent_ip_u16": latent, "hiner_samson_f64": hiner, "band_curves": curves}


def cases_1_3(margin: int = 0) -> dict[str, bytes]:
    """Format 1.3 files: tiled scenes, read from files as ``hsz encode`` reads them (1.4:
    the same scenes with tiles coded over a margin)."""
    import tempfile

    from hsz import api, io

    ip = np.load(SHARED / "indian_pines_corrected.npy")[60:100, 40:112, 40:64].copy()
    ip[:4, :6] = 0
    table = np.loadtxt(SHARED / "indian_pines_corrected_wavelengths.csv", delimiter=",",
                       comments="#", skiprows=4, usecols=(3, 4))[40:64]
    ip_cube = Cube_(np.ascontiguousarray(np.moveaxis(ip, -1, 0)), wavelengths=table[:, 0],
                    fwhm=table[:, 1], wavelength_units="Nanometers", nodata=0.0,
                    transform=(20.0, 0.0, 641000.0, 0.0, -20.0, 4501000.0))
    import scipy.io

    v = scipy.io.loadmat(SHARED / "samson.mat")["V"]
    samson = np.reshape(v.T, (95, 95, 156), order="F")[20:60, 30:70, 60:76]
    samson_cube = Cube_(np.ascontiguousarray(np.moveaxis(samson, -1, 0)).astype(np.float32))
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, cube, options in (
                ("latent_tiled_ip_u16", ip_cube, {"model": "latent", "preset": "fast",
                                                  "epochs": 60, "bpppb": 3.0}),
                ("hiner_tiled_samson_f32", samson_cube, {"model": "hiner", "epochs": 20,
                                                         "bpppb": 6.0})):
            path = Path(tmp) / f"{name}.tif"
            io.write(cube, path)
            with io.open_scene(path) as scene:
                out[name] = api.encode_scene(scene, tile=32, seed=0, margin=margin,
                                             **options).data
    return out


def cases_1_4() -> dict[str, bytes]:
    """Format 1.4 files: tiles coded over an 8-pixel margin."""
    made = cases_1_3(margin=8)
    return {name.replace("_tiled_", "_margin_"): buf for name, buf in made.items()}


def cases_1_5() -> dict[str, bytes]:
    """Format 1.5 files: grids coded under context rule 1."""
    from hsz import codec
    from hsz.codec import context
    from hsz.codec.payload import Grid

    latent = _latent_ip_crop()
    # Sparse levels under scales from 2^-5 up: the channel biases put most positions on
    # the tables below rule 0's finest, and the neighbours of the few nonzeros above it.
    rng = np.random.default_rng(15)
    sparse = np.where(rng.random((3, 24, 20)) < 0.03,
                      np.rint(rng.laplace(0, 3, (3, 24, 20))), 0).astype(np.int32)
    coarse = np.rint(rng.laplace(0, 4, (3, 12, 10))).astype(np.int32)
    w1 = rng.normal(0, 0.4, (6, context.inputs(context.RULE_FINE)))
    w2 = np.vstack([np.zeros(6), np.abs(rng.normal(0, 0.5, 6))])
    fine_net = context.IntNet.from_float([w1, w2], [np.zeros(6), np.zeros(2)],
                                         np.array([[0.0, -5.0], [0.0, -4.2], [0.0, -3.4]]))
    coarse_net = context.IntNet.from_float([w1, w2], [np.zeros(6), np.zeros(2)],
                                           np.array([[0.0, 2.0], [0.0, 1.5], [0.0, 1.0]]))
    grids = {"coarse": Grid(coarse, 8, coarse_net, rule=context.RULE_FINE),
             "sparse": Grid(sparse, 8, fine_net, guide="coarse", rule=context.RULE_FINE)}
    fine = codec.pack({"note": "rule-1 grid conformance file; no model"}, {}, grids=grids)
    return {"latent_ip_u16": latent, "fine_tables": fine}


def cases_1_6() -> dict[str, bytes]:
    """Format 1.6 files: grids coded under context rule 2 (zero ratio, group feature)."""
    from hsz import codec
    from hsz.codec import context
    from hsz.codec.payload import Grid

    latent = _latent_ip_crop()
    # A coarse grid read by a sparse one (six channels, group 3) and a third sharing the
    # sparse one's layers (group 2): channel biases spread the ratio rungs from 2^0 to
    # 2^-24 and the scales from 2^-5 up, so most of the ladder is in use.
    rng = np.random.default_rng(16)
    rule, width = context.RULE_RATIO, context.inputs(context.RULE_RATIO)
    coarse = np.rint(rng.laplace(0, 4, (3, 12, 10))).astype(np.int32)
    sparse = np.where(rng.random((6, 24, 20)) < 0.05,
                      np.rint(rng.laplace(0, 5, (6, 24, 20))), 0).astype(np.int32)
    w1 = rng.normal(0, 0.4, (6, width))
    w2 = np.vstack([-np.abs(rng.normal(0, 0.8, 6)), np.abs(rng.normal(0, 0.5, 6))])
    bias = np.stack([np.linspace(0.0, -20.0, 6), np.linspace(-5.0, 1.0, 6)], axis=1)
    sparse_net = context.IntNet.from_float([w1, w2], [np.zeros(6), np.zeros(2)], bias)
    half_net = context.IntNet(sparse_net.frac, sparse_net.weights, sparse_net.biases,
                              (sparse_net.channel_bias - 96).astype(np.int16))
    coarse_net = context.IntNet.from_float([rng.normal(0, 0.2, (4, width)),
                                            rng.normal(0, 0.3, (2, 4))],
                                           [np.zeros(4), np.zeros(2)],
                                           np.array([[-1.0, 2.0], [-2.0, 1.5], [-0.5, 1.0]]))
    grids = {"coarse": Grid(coarse, 8, coarse_net, rule=rule, group=2),
             "sparse": Grid(sparse, 8, sparse_net, guide="coarse", rule=rule, group=3),
             "sparse_half": Grid(sparse // 2, 8, half_net, guide="coarse", shares="sparse",
                                 rule=rule, group=2)}
    ratio = codec.pack({"note": "rule-2 grid conformance file; no model"}, {}, grids=grids)
    # ``latent_ip_u16`` was written before the latent family's ``shrink`` and is kept; the
    # same crop encoded now has it, so it is written again under its own name.
    return {"latent_ip_u16": latent, "ratio_tables": ratio, "latent_shrink_ip_u16": latent}


def cases_1_7() -> dict[str, bytes]:
    """Format 1.7 files: grids under context rule 3 (rule 2's model, packed channel biases)."""
    from hsz import codec
    from hsz.codec import context
    from hsz.codec.payload import Grid

    latent = _latent_ip_crop()
    rng = np.random.default_rng(17)
    rule, width = context.RULE_PACKED, context.inputs(context.RULE_PACKED)
    coarse = np.rint(rng.laplace(0, 3, (4, 10, 8))).astype(np.int32)
    sparse = np.where(rng.random((9, 20, 16)) < 0.08,
                      np.rint(rng.laplace(0, 4, (9, 20, 16))), 0).astype(np.int32)
    w1 = rng.normal(0, 0.4, (5, width))
    w2 = np.vstack([-np.abs(rng.normal(0, 0.8, 5)), np.abs(rng.normal(0, 0.5, 5))])
    # Biases in units of 2^-8: the sparse grid's ratios are multiples of 16 falling with a
    # jump (exponent 4), its scales multiples of 8 (exponent 3); the coarse grid's are odd
    # (exponent 0) and the shared grid's all zero in one output.
    ratio = -16 * np.array([0, 3, 5, 9, 10, 14, 40, 41, 47])
    scale = 8 * np.array([-80, -72, -66, -40, -31, -30, -5, 0, 12])
    sparse_net = context.IntNet.from_float([w1, w2], [np.zeros(5), np.zeros(2)],
                                           np.stack([ratio, scale], 1) / 256.0)
    shared_net = context.IntNet(sparse_net.frac, sparse_net.weights, sparse_net.biases,
                                np.stack([np.zeros(9), scale - 40], 1).astype(np.int16))
    coarse_net = context.IntNet.from_float([rng.normal(0, 0.2, (3, width)),
                                            rng.normal(0, 0.3, (2, 3))],
                                           [np.zeros(3), np.zeros(2)],
                                           np.array([[-1.0, 2.0], [-2.3, 1.5], [-0.7, 1.1],
                                                     [-3.1, 0.9]]) + 1 / 256)
    grids = {"coarse": Grid(coarse, 8, coarse_net, rule=rule, group=2),
             "sparse": Grid(sparse, 8, sparse_net, guide="coarse", rule=rule, group=3),
             "sparse_half": Grid(sparse // 2, 8, shared_net, guide="coarse", shares="sparse",
                                 rule=rule, group=2)}
    packed = codec.pack({"note": "rule-3 grid conformance file; no model"}, {}, grids=grids)
    return {"latent_ip_u16": latent, "packed_bias": packed}


def cases_1_8() -> dict[str, bytes]:
    """Format 1.8 files: grids under context rule 4 (rule 3 with the network's layers
    stored as Exp-Golomb codes)."""
    from hsz import codec
    from hsz.codec import context
    from hsz.codec.payload import Grid

    latent = _latent_ip_crop()
    rng = np.random.default_rng(18)
    rule, width = context.RULE_PACKED_NET, context.inputs(context.RULE_PACKED_NET)
    coarse = np.rint(rng.laplace(0, 3, (4, 10, 8))).astype(np.int32)
    sparse = np.where(rng.random((9, 20, 16)) < 0.08,
                      np.rint(rng.laplace(0, 4, (9, 20, 16))), 0).astype(np.int32)
    # Three layers whose tensors exercise the exponents: weights of the first layer are
    # multiples of 4 (exponent 2) with one at the int16 extreme, the second's are odd
    # (exponent 0), the last's multiples of 32; the layer biases are multiples of 2^20,
    # odd, and all zero (exponent 0, the writer's choice for an all-zero tensor).
    w1 = 4 * np.rint(rng.normal(0, 30, (6, width))).astype(np.int64)
    w1[0, 0] = -32768
    w2 = 2 * np.rint(rng.normal(0, 40, (4, 6))).astype(np.int64) + 1
    w3 = 32 * np.vstack([-np.abs(np.rint(rng.normal(0, 6, 4))),
                         np.abs(np.rint(rng.normal(0, 4, 4)))]).astype(np.int64)
    b1 = (1 << 20) * np.array([3, -1, 0, 7, -2, 1])
    b2 = np.array([5, -17, 301, -1])
    b3 = np.zeros(2, np.int64)
    ratio = -16 * np.array([0, 3, 5, 9, 10, 14, 40, 41, 47])
    scale = 8 * np.array([-80, -72, -66, -40, -31, -30, -5, 0, 12])
    sparse_net = context.IntNet(8, tuple(w.astype(np.int16) for w in (w1, w2, w3)),
                                tuple(b.astype(np.int32) for b in (b1, b2, b3)),
                                np.stack([ratio, scale], 1).astype(np.int16))
    shared_net = context.IntNet(8, sparse_net.weights, sparse_net.biases,
                                np.stack([np.zeros(9), scale - 40], 1).astype(np.int16))
    coarse_net = context.IntNet.from_float([rng.normal(0, 0.2, (3, width)),
                                            rng.normal(0, 0.3, (2, 3))],
                                           [rng.normal(0, 0.5, 3), np.zeros(2)],
                                           np.array([[-1.0, 2.0], [-2.3, 1.5], [-0.7, 1.1],
                                                     [-3.1, 0.9]]) + 1 / 256)
    grids = {"coarse": Grid(coarse, 8, coarse_net, rule=rule, group=2),
             "sparse": Grid(sparse, 8, sparse_net, guide="coarse", rule=rule, group=3),
             "sparse_half": Grid(sparse // 2, 8, shared_net, guide="coarse", shares="sparse",
                                 rule=rule, group=2)}
    packed = codec.pack({"note": "rule-4 grid conformance file; no model"}, {}, grids=grids)
    return {"latent_ip_u16": latent, "packed_net": packed}


def Cube_(*args, **kwargs):  # noqa: N802 - imported late so that --help needs no hsz
    from hsz.cube import Cube

    return Cube(*args, **kwargs)


def _write_common(out: Path, name: str, buf: bytes) -> None:
    from hsz.codec import describe

    (out / f"{name}.hsz").write_bytes(buf)
    info = describe(buf)
    (out / f"{name}.info.json").write_text(
        json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def _write_cube(out: Path, name: str, buf: bytes) -> str:
    from hsz import api

    data = np.ascontiguousarray(api.decode(buf).data)
    np.save(out / f"{name}.decoded.npy", data)
    digest = hashlib.sha256(data.tobytes()).hexdigest()
    (out / f"{name}.sha256").write_text(f"{digest}  {name}.decoded.npy\n")
    return digest


def main(argv: list[str]) -> int:
    from hsz import api
    from hsz.codec import unpack

    version = argv[0] if argv else "1.0"
    out = OUT.parent / f"v{version}"
    out.mkdir(parents=True, exist_ok=True)
    if version == "1.0":
        made = {name: api.encode(cube, seed=0, **options).data
                for name, (cube, options) in cases().items()}
    elif version == "1.1":
        made = cases_1_1()
    elif version == "1.2":
        made = cases_1_2()
    elif version == "1.3":
        made = cases_1_3()
    elif version == "1.4":
        made = cases_1_4()
    elif version == "1.5":
        made = cases_1_5()
    elif version == "1.6":
        made = cases_1_6()
    elif version == "1.7":
        made = cases_1_7()
    elif version == "1.8":
        made = cases_1_8()
    else:
        print(f"unknown version {version}; use 1.0 to 1.8", file=sys.stderr)
        return 2
    for name, buf in made.items():
        path = out / f"{name}.hsz"
        if path.exists():
            print(f"{path} exists and is kept: golden files are never regenerated",
                  file=sys.stderr)
            continue
        _write_common(out, name, buf)
        from hsz.codec.container import read_container
        from hsz.codec.tiled import TiledFile, is_tiled

        if is_tiled(read_container(buf)):
            f = TiledFile(buf)
            grids = {f"tile{i}/{k}": v for i in range(len(f.tiles))
                     for k, v in unpack(f.tile_bytes(i)).grids.items()}
            meta = f.meta
        else:
            u = unpack(buf)
            grids, meta = u.grids, u.meta
        if grids:
            np.savez_compressed(out / f"{name}.grids.npz", **grids)
        digest = _write_cube(out, name, buf) if "model" in meta else "(no cube)"
        print(f"{path}: {len(buf)} bytes, sha256(cube) {digest[:16]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
