"""Conformance: the independent reader (format/reader.py) agrees with hsz on every file.

Golden files live in ``format/v1.0/<name>.hsz`` with ``<name>.info.json`` (the expected
``hsz.codec.describe`` output), ``<name>.decoded.npy`` (the decoded samples) and
``<name>.sha256`` (their SHA-256).  They are produced once by ``format/make_golden.py``.
Files generated here from synthetic tensors cover the reader's other paths.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from hsz import api
from hsz.codec import describe, pack, unpack
from hsz.codec.container import FLAG_CRITICAL, write_container

HERE = Path(__file__).parent
GOLDEN = sorted((HERE / "v1.0").glob("*.hsz"))


def _load_reader():
    spec = importlib.util.spec_from_file_location("hsz_format_reader", HERE / "reader.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reader = _load_reader()


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_file(path: Path) -> None:
    buf = path.read_bytes()
    expected = json.loads(path.with_suffix(".info.json").read_text(encoding="utf-8"))
    assert reader.info(buf) == expected
    assert describe(path) == expected
    ours, theirs = unpack(buf).tensors, reader.decode_tensors(buf)
    assert list(ours) == list(theirs)
    for name in ours:
        assert np.array_equal(ours[name], theirs[name]), name
    _decodes_to_its_golden_cube(path, buf)


def _matches_its_info(path: Path, buf: bytes, version: str) -> dict:
    """hsz and the reader both describe the file as its saved info says; returns that."""
    expected = json.loads(path.with_suffix(".info.json").read_text(encoding="utf-8"))
    assert expected["format"] == version
    assert reader.info(buf) == expected
    assert describe(path) == expected
    return expected


def _grids_match_golden(path: Path, buf: bytes) -> None:
    """Every grid, decoded by hsz and by the reader, is the saved one, in the saved order."""
    saved = np.load(path.with_suffix(".grids.npz"))
    ours, theirs = unpack(buf).grids, reader.decode_grids(buf)
    assert list(ours) == list(theirs) == list(saved.files)
    for name in ours:
        assert np.array_equal(ours[name], saved[name]), name
        assert np.array_equal(theirs[name], saved[name]), name


def _decodes_to_its_golden_cube(path: Path, buf: bytes) -> None:
    """The saved cube matches its SHA-256, and hsz decodes the file to it."""
    expected_cube = np.load(path.with_suffix(".decoded.npy"))
    digest = hashlib.sha256(np.ascontiguousarray(expected_cube).tobytes()).hexdigest()
    assert digest == path.with_suffix(".sha256").read_text().split()[0]
    cube = api.decode(buf)
    assert cube.data.dtype == expected_cube.dtype and cube.data.shape == expected_cube.shape
    # Bit-identical on the machine that made the file; another CPU's convolution kernels may
    # round the last place differently, which can move an integer sample by one unit.
    if cube.data.dtype.kind == "f":
        span = float(expected_cube.max() - expected_cube.min()) or 1.0
        assert np.max(np.abs(cube.data - expected_cube)) <= 1e-4 * span
    else:
        diff = np.abs(cube.data.astype(np.int64) - expected_cube.astype(np.int64))
        assert diff.max() <= 1 and np.mean(diff > 0) < 0.01
    from hsz.archive import Archive

    arc = Archive(buf)
    masked = any(arc.tile(i).mask is not None for i in range(arc.grid.count))
    if arc.meta.get("nodata") is not None and masked:
        assert np.any(cube.data == np.asarray(arc.meta["nodata"], dtype=cube.data.dtype))


def _synthetic(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    tensors = {
        "embed": rng.normal(0, 0.1, (40, 8)).astype(np.float32),
        "conv.weight": rng.laplace(0, 0.05, (16, 8, 3, 3)).astype(np.float32),
        "conv.bias": rng.normal(0, 0.01, 16).astype(np.float32),
        "scaled": (rng.normal(0, 1, (12, 50)) * np.exp(rng.normal(0, 2, (12, 1)))
                   ).astype(np.float32),
        "gain": np.full((3,), 0.5, np.float32),
        "empty": np.zeros((0, 4), np.float32),
    }
    raw = {"band_min": rng.normal(size=30), "band_max": rng.normal(size=30).astype(np.float32)}
    meta = {"shape": [32, 32, 30], "dtype": "uint16", "note": "synthetic ü"}
    bits = {"embed": 8, "conv.weight": 6, "conv.bias": 8, "scaled": 4, "gain": 8, "empty": 8}
    return pack(meta, tensors, bits=bits, raw=raw)


@pytest.mark.parametrize("seed", [0, 1])
def test_reader_agrees_on_synthetic_files(seed: int) -> None:
    buf = _synthetic(seed)
    assert reader.info(buf) == describe(buf)
    ours, theirs = unpack(buf).tensors, reader.decode_tensors(buf)
    assert list(ours) == list(theirs)
    for name in ours:
        assert ours[name].shape == theirs[name].shape
        assert np.array_equal(ours[name], theirs[name]), name
    assert {e["method"] for e in reader.info(buf)["tensors"]} >= {"raw", "const"}


def test_reader_covers_every_method() -> None:
    rng = np.random.default_rng(5)
    tensors = {
        "gauss": rng.normal(size=4000).astype(np.float32),  # parametric at 8 bits
        "lap": rng.laplace(size=4000).astype(np.float32),
        "coarse": rng.normal(size=4000).astype(np.float32),  # categorical at 3 bits
    }
    buf = pack({}, tensors, bits={"gauss": 8, "lap": 8, "coarse": 3})
    methods = {e["method"] for e in reader.info(buf)["tensors"]}
    assert methods >= {"categorical"} and methods & {"gaussian", "geometric"}
    ours, theirs = unpack(buf).tensors, reader.decode_tensors(buf)
    for name in ours:
        assert np.array_equal(ours[name], theirs[name]), name


def test_reader_skips_unknown_optional_section() -> None:
    good = hsz_sections(_synthetic(3))
    buf = write_container(good + [("XTRA", 0, b"future stuff")], minor=3)
    assert reader.info(buf)["skipped"] == ["XTRA"]
    assert describe(buf)["skipped"] == ["XTRA"]
    assert reader.info(buf) == describe(buf)
    crit = write_container(good + [("XTRA", FLAG_CRITICAL, b"")], minor=3)
    with pytest.raises(reader.ReaderError):
        reader.info(crit)


def hsz_sections(buf: bytes) -> list[tuple[str, int, bytes]]:
    c = reader.parse_container(buf)
    return [(s["type"], s["flags"], s["payload"]) for s in c["sections"]]


# ------------------------------------------------------------------------- format 1.1 (grids)

GOLDEN_1_1 = sorted((HERE / "v1.1").glob("*.hsz"))


def _toy_family():
    spec = importlib.util.spec_from_file_location(
        "toy_family", HERE.parent / "tests" / "toy_family.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TOY


@pytest.mark.parametrize("path", GOLDEN_1_1, ids=[p.stem for p in GOLDEN_1_1])
def test_golden_file_1_1(path: Path) -> None:
    """Every symbol of every grid is decoded twice: by hsz and by the spec-only reader."""
    from hsz.model import register, unregister

    buf = path.read_bytes()
    _matches_its_info(path, buf, "1.1")
    _grids_match_golden(path, buf)
    cube_file = path.with_suffix(".decoded.npy")
    if not cube_file.exists():
        return
    toy = _toy_family()
    register(toy, replace=True)
    try:
        cube = api.decode(buf).data
    finally:
        unregister(toy.id)
    expected_cube = np.load(cube_file)
    digest = hashlib.sha256(np.ascontiguousarray(expected_cube).tobytes()).hexdigest()
    assert digest == path.with_suffix(".sha256").read_text().split()[0]
    # Every grid symbol is exact (above); the float64 rendering after it may round the last
    # place differently with another BLAS, which can move an integer sample by one unit.
    diff = np.abs(cube.astype(np.int64) - expected_cube.astype(np.int64))
    assert diff.max() <= 1 and np.mean(diff > 0) < 0.01


@pytest.mark.parametrize("rule", [0, 1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reader_agrees_on_synthetic_grids(seed: int, rule: int) -> None:
    from hsz.codec import context
    from hsz.codec.payload import Grid

    rng = np.random.default_rng(seed)

    def net(inputs: int, channels: int, layers: int) -> context.IntNet:
        widths = [inputs] + [int(rng.integers(2, 9)) for _ in range(layers - 1)] + [2]
        ws = [rng.normal(0, 0.3, (o, i)) for i, o in zip(widths, widths[1:], strict=False)]
        bs = [rng.normal(0, 0.2, o) for o in widths[1:]]
        return context.IntNet.from_float(ws, bs, rng.normal(0, 0.5, (channels, 2)),
                                         frac=int(rng.integers(4, 11)))

    a = np.rint(rng.laplace(0, 5, (2, 5, 9))).astype(np.int32)
    b = np.clip(np.rint(rng.laplace(0, 40, (3, 11, 17))), -2048, 2047).astype(np.int32)
    group = 2 if rule == context.RULE_RATIO else 1
    grids = {"a": Grid(a, 8, net(context.inputs(rule), 2, 1), rule=rule),
             "b": Grid(b, 12, net(context.inputs(rule), 3, 3), guide="a", rule=rule,
                       group=group)}
    buf = pack({"note": "synthetic grids"}, {}, grids=grids)
    assert reader.info(buf) == describe(buf)
    theirs = reader.decode_grids(buf)
    for name, g in grids.items():
        assert np.array_equal(theirs[name], g.levels), name


# ------------------------------------------------------------- format 1.2 (curves, deltas)

GOLDEN_1_2 = sorted((HERE / "v1.2").glob("*.hsz"))


@pytest.mark.parametrize("path", GOLDEN_1_2, ids=[p.stem for p in GOLDEN_1_2])
def test_golden_file_1_2(path: Path) -> None:
    """Band curves, difference-coded tensors and grids, decoded by hsz and by the reader."""
    buf = path.read_bytes()
    _matches_its_info(path, buf, "1.2")
    ours, theirs = unpack(buf), reader.decode_tensors(buf)
    assert list(ours.tensors) == list(theirs)
    for name in theirs:
        assert np.array_equal(ours.tensors[name], theirs[name]), name
    grids = path.with_suffix(".grids.npz")
    if grids.exists():
        saved = np.load(grids)
        for name, levels in reader.decode_grids(buf).items():
            assert np.array_equal(levels, saved[name]) and np.array_equal(ours.grids[name],
                                                                          saved[name]), name
    if path.with_suffix(".decoded.npy").exists():
        _decodes_to_its_golden_cube(path, buf)


GOLDEN_1_5 = sorted((HERE / "v1.5").glob("*.hsz"))


@pytest.mark.parametrize("path", GOLDEN_1_5, ids=[p.stem for p in GOLDEN_1_5])
def test_golden_file_1_5(path: Path) -> None:
    """Grids under context rule 1 (finer tables), decoded by hsz and by the reader."""
    buf = path.read_bytes()
    expected = _matches_its_info(path, buf, "1.5")
    assert {g["rule"] for g in expected["grids"]} == {1}
    _grids_match_golden(path, buf)
    if path.with_suffix(".decoded.npy").exists():
        _decodes_to_its_golden_cube(path, buf)


#: Golden files whose grids use rule 2's model: (file, format version, its rule).
GOLDEN_RATIO = [(p, version, rule) for version, rule in (("1.6", 2), ("1.7", 3), ("1.8", 4))
                for p in sorted((HERE / f"v{version}").glob("*.hsz"))]


@pytest.mark.parametrize(("path", "version", "rule"), GOLDEN_RATIO,
                         ids=[f"{v}-{p.stem}" for p, v, _ in GOLDEN_RATIO])
def test_golden_file_ratio_rules(path: Path, version: str, rule: int) -> None:
    """Grids under context rule 2 (zero ratio, group feature; 1.6), rule 3 (the same with
    packed channel biases; 1.7) and rule 4 (packed layers too; 1.8), decoded by hsz and by
    the reader: a misread bias or weight would change the tables and so every later
    symbol."""
    buf = path.read_bytes()
    expected = _matches_its_info(path, buf, version)
    assert {g["rule"] for g in expected["grids"]} == {rule}
    assert all(g["group"] in (2, 3) for g in expected["grids"])
    _grids_match_golden(path, buf)
    if path.with_suffix(".decoded.npy").exists():
        _decodes_to_its_golden_cube(path, buf)


def test_golden_1_6_shrink_decodes_its_latents_nearer_zero() -> None:
    """The shrink file stores its offsets; decoding without them gives another cube."""
    from hsz import api
    from hsz.model.latent import FAMILY, coefficient_maps

    buf = (HERE / "v1.6" / "latent_shrink_ip_u16.hsz").read_bytes()
    opened = api.open_file(buf)
    cfg = FAMILY.config_from_json(opened.meta["model"]["config"])
    shrink = opened.stored.tensors["shrink"]
    assert cfg.shrink and shrink.shape == (cfg.levels, 2) and np.any(shrink != 0)
    levels = [opened.stored.grids[f"level{i}"] for i in range(cfg.levels)]
    steps = opened.stored.tensors["log2_step"]
    assert not np.array_equal(coefficient_maps(cfg, levels, steps, shrink),
                              coefficient_maps(cfg, levels, steps))
    old = api.open_file((HERE / "v1.6" / "latent_ip_u16.hsz").read_bytes())
    assert "shrink" not in old.meta["model"]["config"] and "shrink" not in old.stored.tensors


def test_golden_1_6_uses_every_rung_and_scale() -> None:
    """The conformance file reaches all 49 ratio rungs and all 76 scale tables."""
    spec_reader = reader
    used: set[tuple[int, int]] = set()
    run = spec_reader.run_net

    def spy(*args: object) -> tuple[object, list[tuple[int, int]]]:
        centre, tables = run(*args)  # type: ignore[arg-type]
        used.update(tables)
        return centre, tables

    spec_reader.run_net = spy  # type: ignore[assignment]
    try:
        spec_reader.decode_grids((HERE / "v1.6" / "ratio_tables.hsz").read_bytes())
    finally:
        spec_reader.run_net = run  # type: ignore[assignment]
    assert {j for _, j in used} == set(range(49)) and {g for g, _ in used} == set(range(76))


def test_golden_1_7_packs_biases_of_every_kind() -> None:
    """The conformance file's biases use exponents 0, 3 and 4 and an all-zero output, and
    the reader's biases are hsz's."""
    import importlib

    from hsz.codec.binio import Cursor

    pack_module = importlib.import_module("hsz.codec.pack")
    buf = (HERE / "v1.7" / "packed_bias.hsz").read_bytes()
    lats = next(s for s in reader.parse_container(buf)["sections"] if s["type"] == "LATS")
    payload = lats["payload"]
    cur = Cursor(payload, 0, "test")
    cur.u32()
    exponents, biases = set(), []
    known: dict = {}
    nets: dict = {}
    for _ in range(3):
        name, shape, _bits, _rule, _group, _guide, net = pack_module._read_grid_header(
            cur, known, nets)
        known[name], nets[name] = shape, net
        biases.append(net.channel_bias)
        cur.take(cur.u64())
    for cb in biases:
        for j in range(2):
            col = cb[:, j].astype(np.int64)
            q = 0
            while q < 15 and col.any() and not np.any(col % (1 << (q + 1))):
                q += 1
            exponents.add(q if col.any() else "zero")
    assert exponents >= {0, 3, 4, "zero"}
    theirs = [e["channel_bias"] for e in reader.parse_lats(payload)]
    assert all(np.array_equal(a, b) for a, b in zip(biases, theirs, strict=True))


def test_golden_1_8_packs_layers_of_every_kind() -> None:
    """The conformance file's layers use weight exponents 0, 2 and 5, bias exponents 0 and
    20 and an all-zero bias, an int16 extreme and a third layer; hsz and the reader read
    the same integers."""
    from hsz.codec import context

    buf = (HERE / "v1.8" / "packed_net.hsz").read_bytes()
    lats = next(s for s in reader.parse_container(buf)["sections"] if s["type"] == "LATS")
    entries = reader.parse_lats(lats["payload"])
    assert [e["info"]["rule"] for e in entries] == [4, 4, 4]
    ours = unpack(buf).grids
    assert len(entries) == len(ours) == 3

    def exponent(values: np.ndarray) -> int | str:
        v = np.asarray(values, np.int64)
        if not v.any():
            return "zero"
        q = 0
        while not np.any(v % (1 << (q + 1))):
            q += 1
        return q

    sparse = entries[1]["layers"]
    assert len(sparse) == 3 and sparse[0][0].min() == -32768
    assert [exponent(w) for w, _ in sparse] == [2, 0, 5]
    assert [exponent(b) for _, b in sparse] == [20, 0, "zero"]
    assert entries[2]["layers"] is sparse  # shared, not stored twice
    # hsz's own reading of the same bytes.
    from hsz.codec.binio import Cursor

    cur = Cursor(lats["payload"], 0, "test")
    cur.u32()
    known: dict = {}
    nets: dict = {}
    import importlib

    pack_module = importlib.import_module("hsz.codec.pack")
    for entry in entries:
        name, shape, _bits, rule, _group, _guide, net = pack_module._read_grid_header(
            cur, known, nets)
        known[name], nets[name] = shape, net
        assert rule == context.RULE_PACKED_NET
        assert len(net.weights) == len(entry["layers"])
        for w, b, (tw, tb) in zip(net.weights, net.biases, entry["layers"], strict=True):
            assert np.array_equal(w.astype(np.int64), tw)
            assert np.array_equal(b.astype(np.int64), tb)
        cur.take(cur.u64())


def test_golden_1_2_covers_every_curve_and_difference_method() -> None:
    buf = (HERE / "v1.2" / "band_curves.hsz").read_bytes()
    methods = {t["method"] for t in reader.info(buf)["tensors"]}
    assert methods == {"gaussian/delta", "geometric/delta", "categorical/delta"}
    curves = {name: values for name, _, values in
              reader.parse_bands(reader.parse_container(buf)["sections"][1]["payload"])}
    assert set(curves) == {"wavelengths", "fwhm", "band_low", "band_high"}
    assert curves["band_low"].dtype == np.float32 and curves["band_high"].dtype == np.int16
    u = unpack(buf)
    assert u.meta["wavelengths"] == [float(v) for v in curves["wavelengths"]]
    assert np.array_equal(u.raw["band_low"], curves["band_low"])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_band_curves_round_trip_exactly(seed: int) -> None:
    """Whatever the values, a curve comes back bit for bit, by hsz and by the reader."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    wl = [float(x) for x in np.round(np.sort(rng.uniform(350, 2500, n)), int(rng.integers(0, 6)))]
    meta = {"wavelengths": wl, "fwhm": [float(x) for x in rng.normal(10, 3, n)]}
    raw = {"band_low": rng.normal(0, 1e3, n).astype(np.float32),
           "band_high": rng.integers(0, 2**16, n).astype(np.uint16)}
    buf = pack(meta, {}, raw=raw)
    u = unpack(buf)
    assert u.meta == meta
    for name, v in raw.items():
        assert u.raw[name].dtype == v.dtype and np.array_equal(u.raw[name], v)
    assert reader.info(buf) == describe(buf)


GOLDEN_TILED = sorted((HERE / "v1.3").glob("*.hsz")) + sorted((HERE / "v1.4").glob("*.hsz"))


@pytest.mark.parametrize("path", GOLDEN_TILED,
                         ids=[f"{p.parent.name}-{p.stem}" for p in GOLDEN_TILED])
def test_golden_tiled_file(path: Path) -> None:
    """Tiled files (1.3) and tiles with a margin (1.4): the tile list, every tile's tensors
    and grids, and the scene."""
    from hsz.codec.tiled import TiledFile

    buf = path.read_bytes()
    expected = json.loads(path.with_suffix(".info.json").read_text(encoding="utf-8"))
    version = path.parent.name[1:]
    assert expected["format"] == version and len(expected["tiles"]) > 1
    assert all(("coded" in t) == (version == "1.4") for t in expected["tiles"])
    assert reader.info(buf) == expected
    assert describe(path) == expected
    theirs = reader.tiles(buf)
    ours = TiledFile(buf)
    assert [w for w, _ in theirs] == [t.get("coded", t["window"]) for t in expected["tiles"]]
    saved = np.load(path.with_suffix(".grids.npz")) if path.with_suffix(
        ".grids.npz").exists() else {}
    for i, (_, tile) in enumerate(theirs):
        assert tile == ours.tile_bytes(i)
        u = unpack(tile)
        decoded = reader.decode_tensors(tile)
        assert list(u.tensors) == list(decoded)
        for name in decoded:
            assert np.array_equal(u.tensors[name], decoded[name]), name
        for name, levels in reader.decode_grids(tile).items():
            assert np.array_equal(levels, u.grids[name])
            assert np.array_equal(levels, saved[f"tile{i}/{name}"])
    _decodes_to_its_golden_cube(path, buf)


def test_reader_refuses_a_tile_out_of_place() -> None:
    from hsz.codec.tiled import TiledFile, pack_tiled

    f = TiledFile((HERE / "v1.3" / "latent_tiled_ip_u16.hsz").read_bytes())
    tiles = [f.tile_bytes(i) for i in range(len(f.tiles))]
    swapped = pack_tiled(f.meta, f.raw, [tiles[1], tiles[0], *tiles[2:]])
    with pytest.raises(reader.ReaderError, match="window"):
        reader.tiles(swapped)
    with pytest.raises(reader.ReaderError, match="tiles"):
        reader.info(pack_tiled(f.meta, f.raw, tiles[:-1]))


def test_reader_refuses_a_margin_the_tiles_were_not_coded_with() -> None:
    from hsz.codec.tiled import TiledFile, pack_tiled

    f = TiledFile((HERE / "v1.4" / "latent_margin_ip_u16.hsz").read_bytes())
    tiles = [f.tile_bytes(i) for i in range(len(f.tiles))]
    for margin in (0, 4):
        meta = {**f.meta, "tiles": {**f.meta["tiles"], "margin": margin}}
        with pytest.raises(reader.ReaderError, match="window"):
            reader.tiles(pack_tiled(meta, f.raw, tiles))
    with pytest.raises(reader.ReaderError, match="margin"):
        reader.info(pack_tiled({**f.meta, "tiles": {**f.meta["tiles"], "margin": 65}},
                               f.raw, tiles))
