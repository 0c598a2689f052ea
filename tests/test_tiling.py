"""Tiled files (format 1.3, margins 1.4): encode tile by tile, decode a window, run jobs
anywhere."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hsz import allocate, api, codec, io, metrics
from hsz.archive import Archive
from hsz.cli import cli
from hsz.codec.container import ENTRY, HEADER, read_container
from hsz.codec.tiled import TiledFile, pack_tiled
from hsz.cube import Cube
from hsz.errors import FormatError
from hsz.parallel import Runner, dask_available
from hsz.tiles import TileGrid, Window, grid_for

TILE = 32
#: Four small tiles each carry their own basis and context network (about 1.1 bpppb here).
SETTINGS = {"bpppb": 1.5, "epochs": 4, "preset": "fast", "tile": TILE}


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory: pytest.TempPathFactory, tiny_cube: Cube) -> Path:
    """A 64x56 georeferenced GeoTIFF made of the real Indian Pines crop and its mirror
    images, with a nodata corner: four 32-pixel tiles, the right ones cut short."""
    d = tiny_cube.data
    top = np.concatenate([d, d[:, :, ::-1], d[:, :, :16]], axis=2)
    data = np.ascontiguousarray(np.concatenate([top, top[:, ::-1], top[:, :24]], axis=1)[
        :, :64, :56])
    data[:, :5, :6] = 0
    cube = tiny_cube.replace(data=data, nodata=0.0, transform=(30.0, 0.0, 500000.0, 0.0,
                                                                 -30.0, 4200000.0),
                             crs='LOCAL_CS["hsz test"]')
    path = tmp_path_factory.mktemp("tiles") / "mosaic.tif"
    io.write(cube, path)
    return path


@pytest.fixture(scope="module")
def encoded(mosaic: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    with io.open_scene(mosaic) as scene:
        result = api.encode_scene(scene, **SETTINGS)
    out = tmp_path_factory.mktemp("tiled") / "mosaic.hsz"
    out.write_bytes(result.data)
    return out, result.data


def test_grid_places_tiles_row_major_and_cuts_the_last_ones() -> None:
    grid = TileGrid(64, 56, 32, 32)
    assert grid.count == 4
    assert grid.window(3) == Window(32, 32, 32, 24)
    assert grid.touching(Window(10, 30, 5, 5)) == [0, 1]
    assert grid_for(31, 100, 100, tile=None, tile_values=1 << 23).count == 1


def test_a_margin_grows_each_tile_inside_the_scene_only() -> None:
    grid = TileGrid(64, 56, 32, 32, margin=8)
    assert grid.window(0) == Window(0, 0, 32, 32)
    assert grid.coded(0) == Window(0, 0, 40, 40)
    assert grid.coded(3) == Window(24, 24, 40, 32)
    assert TileGrid(64, 56, 32, 32).coded(3) == grid.window(3)
    with pytest.raises(ValueError, match="margin"):
        grid_for(31, 1000, 1000, tile=64, tile_values=1 << 23, margin=40)


def test_tiled_file_round_trips_with_its_metadata(mosaic: Path, encoded: tuple[Path, bytes]
                                                 ) -> None:
    path, data = encoded
    original = io.read(mosaic)
    budget = api.target_bytes(original.shape, bpppb=SETTINGS["bpppb"])
    assert len(data) <= budget
    # Tiles with a margin are 1.4; tiles whose grids use context rule 4 make the file 1.8.
    assert read_container(data).version == (1, 8)
    # Each tile's own file covers its window grown by the margin, inside the scene.
    f = TiledFile(data)
    grid = TileGrid(*original.shape[1:], TILE, TILE, margin=8)
    assert f.meta["tiles"] == {"size": [TILE, TILE], "margin": 8}
    for i in range(4):
        inner = read_container(f.tile_bytes(i))
        assert inner.version[0] == 1
        assert codec.unpack(f.tile_bytes(i)).meta["window"] == grid.coded(i).as_list()
    decoded = api.decode(path)
    assert decoded.shape == original.shape and decoded.dtype == original.dtype
    assert decoded.transform == original.transform and decoded.crs == original.crs
    assert np.array_equal(decoded.wavelengths, original.wavelengths)
    assert np.all(decoded.data[:, :5, :6] == 0)  # nodata comes back as nodata
    mask = original.valid_mask()
    quality = metrics.quality(original.data, decoded.data, mask)
    assert quality["psnr_band_mean"] > 25.0
    # The figures recorded while encoding are those of the decoded file.
    recorded = Archive(path).meta["quality"]
    for key, value in quality.items():
        assert recorded[key] == pytest.approx(value, abs=1e-3)


def test_window_decode_reads_only_the_tiles_under_it(encoded: tuple[Path, bytes]) -> None:
    path, _ = encoded
    full = api.decode(path)
    for window, tiles in ((Window(3, 4, 20, 20), 1), (Window(10, 20, 30, 20), 4),
                          (Window(40, 2, 10, 20), 1)):
        arc = Archive(path)
        region = arc.region(window)
        out = np.empty((arc.bands, window.height, window.width), dtype=full.dtype)
        for where, block in api.decode_blocks(arc, region, None, full.dtype):
            out[(slice(None), *where.slices())] = block
        assert arc.reads == tiles
        assert np.array_equal(out, full.data[(slice(None), *window.slices())])
    part = api.decode(path, window=Window(40, 2, 10, 20))
    a, b, c, d, e, f = full.transform
    assert part.transform == (a, b, c + 2 * a, d, e, f + 40 * e)


def test_workers_give_the_same_bytes_as_serial(mosaic: Path, encoded: tuple[Path, bytes]
                                              ) -> None:
    with io.open_scene(mosaic) as scene:
        result = api.encode_scene(scene, **SETTINGS, runner=Runner(workers=2))
    assert result.data == encoded[1]


@pytest.mark.skipif(not dask_available(), reason="the dask extra is not installed")
def test_a_local_dask_cluster_gives_the_same_bytes(mosaic: Path, encoded: tuple[Path, bytes]
                                                  ) -> None:
    with io.open_scene(mosaic) as scene:
        result = api.encode_scene(scene, **SETTINGS, runner=Runner(workers=2, backend="dask"))
    assert result.data == encoded[1]


def _outer(data: bytes) -> tuple[dict, dict, list[bytes]]:
    f = TiledFile(data)
    return f.meta, f.raw, [f.tile_bytes(i) for i in range(len(f.tiles))]


def test_tiles_in_the_wrong_place_or_number_are_refused(encoded: tuple[Path, bytes]) -> None:
    meta, raw, tiles = _outer(encoded[1])
    assert api.decode(pack_tiled(meta, raw, tiles)).shape == api.decode(encoded[1]).shape
    swapped = pack_tiled(meta, raw, [tiles[1], tiles[0], *tiles[2:]])
    with pytest.raises(FormatError, match="covers"):
        api.decode(swapped)
    with pytest.raises(FormatError, match="holds 3"):
        api.decode(pack_tiled(meta, raw, tiles[:3]))
    with pytest.raises(FormatError, match="tile size"):
        api.decode(pack_tiled({**meta, "tiles": {"size": [0, 32]}}, raw, tiles))
    # A margin other than the one the tiles were coded with puts them in the wrong place.
    with pytest.raises(FormatError, match="covers"):
        api.decode(pack_tiled({**meta, "tiles": {"size": [TILE, TILE]}}, raw, tiles))
    for bad in (65, -1, 2.5, True):
        with pytest.raises(FormatError, match="margin"):
            api.decode(pack_tiled({**meta, "tiles": {"size": [TILE, TILE], "margin": bad}},
                                  raw, tiles))


def test_a_tiled_file_is_the_newest_version_any_part_needs(mosaic: Path) -> None:
    """No margin: the outer file alone is 1.3, and its grids' context rule makes it 1.7."""
    from hsz.codec.tiled import pack_tiled

    with io.open_scene(mosaic) as scene:
        result = api.encode_scene(scene, **{**SETTINGS, "epochs": 1}, margin=0)
    f = TiledFile(result.data)
    assert read_container(result.data).version == (1, 8)
    assert {read_container(f.tile_bytes(i)).version for i in range(len(f.tiles))} == {(1, 8)}
    assert read_container(pack_tiled(f.meta, {}, [])).version == (1, 3)
    assert "margin" not in TiledFile(result.data).meta["tiles"]
    assert api.decode(result.data).shape == io.read(mosaic).shape


def test_damage_inside_a_tile_is_a_format_error(encoded: tuple[Path, bytes]) -> None:
    """Flips inside TILE payloads with every CRC made valid again: an error or a cube."""
    data = encoded[1]
    c = read_container(data)
    rng = np.random.default_rng(3)
    tiles = c.every("TILE")
    for trial in range(40):
        s = tiles[trial % len(tiles)]
        buf = bytearray(data)
        pos = s.offset + int(rng.integers(0, s.length))
        buf[pos] ^= 1 << int(rng.integers(0, 8))
        _refresh_crcs(buf)
        try:
            api.decode(bytes(buf))
        except FormatError:
            pass


def _refresh_crcs(buf: bytearray) -> None:
    """Recompute every CRC, inner tiles first, as a crafted file would."""
    n = struct.unpack_from("<I", buf, 24)[0]
    for i in range(n):
        at = HEADER.size + ENTRY.size * i
        tag, flags, off, ln, _ = ENTRY.unpack_from(buf, at)
        if tag == b"TILE":
            inner = bytearray(buf[off:off + ln])
            if inner[:4] == b"\x89HSZ" and len(inner) >= 32:
                _refresh_crcs(inner)
                buf[off:off + ln] = inner
        struct.pack_into("<I", buf, at + 24, zlib.crc32(buf[off:off + ln]) & 0xFFFFFFFF)
    end = HEADER.size + ENTRY.size * n
    struct.pack_into("<I", buf, end, zlib.crc32(buf[:end]) & 0xFFFFFFFF)


def test_equal_slope_gives_a_busy_tile_more_than_a_flat_one() -> None:
    rng = np.random.default_rng(0)
    flat = np.full((8, 32, 32), 0.5, np.float32) + 0.001 * rng.standard_normal((8, 32, 32))
    busy = rng.random((8, 32, 32)).astype(np.float32)
    profiles = [allocate.profile(flat), allocate.profile(busy)]
    budgets = allocate.equal_slope(profiles, [100, 100], 10_000)
    assert budgets[1] > 4 * budgets[0] and sum(budgets) <= 10_000
    assert allocate.equal_split([1024, 1024], [100, 100], 10_000) == [5000, 5000]


def test_cli_encodes_tiles_and_decodes_a_window(mosaic: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.hsz"
    r = CliRunner().invoke(cli, ["encode", str(mosaic), "-o", str(out), "--bpppb", "1.5",
                                 "--epochs", "4", "--preset", "fast", "--tile", "32", "-q"])
    assert r.exit_code == 0, r.output
    part = tmp_path / "part.tif"
    r = CliRunner().invoke(cli, ["decode", str(out), "-o", str(part), "--window", "4,3,20,20",
                                 "-q"])
    assert r.exit_code == 0, r.output
    full = api.decode(out)
    assert np.array_equal(io.read(part).data, full.data[:, 3:23, 4:24])
    r = CliRunner().invoke(cli, ["decode", str(out), "-o", str(tmp_path / "x.tif"),
                                 "--window", "50,60,20,20"])
    assert r.exit_code == 2 and "outside" in r.output
    # A box in map coordinates: 30 m pixels from (500000, 4200000) going down.
    box = tmp_path / "box.npy"
    r = CliRunner().invoke(cli, ["decode", str(out), "-o", str(box), "--bbox",
                                 "500120,4199400,500600,4199910", "-q"])
    assert r.exit_code == 0, r.output
    assert np.array_equal(np.load(box).transpose(2, 0, 1), full.data[:, 3:20, 4:20])


def test_batch_skips_finished_outputs(mosaic: Path, tiny_cube: Cube, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    a, b = src / "a.tif", src / "b.npy"
    io.write(tiny_cube, a)
    io.write(tiny_cube, b)
    out = tmp_path / "out"
    args = ["encode", str(a), str(b), "-o", str(out), "--bpppb", "3.0", "--epochs", "5",
            "--wavelengths", ",".join(f"{w:g}" for w in tiny_cube.wavelengths)]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    first = (out / "a.hsz").read_bytes()
    (out / "b.hsz").unlink()  # as if the batch had stopped before b
    r = CliRunner().invoke(cli, [*args, "--json"])
    assert r.exit_code == 0, r.output
    assert "skipped" in r.output and (out / "b.hsz").exists()
    assert (out / "a.hsz").read_bytes() == first


@pytest.mark.parametrize("name", ["cube.tif", "cube.img", "cube.npy", "cube.mat"])
def test_every_reader_reads_a_window_as_the_crop_of_the_whole(
        tiny_cube: Cube, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    cube = tiny_cube.replace(transform=(2.0, 0.0, 10.0, 0.0, -2.0, 50.0))
    io.write(cube, path)
    with io.open_scene(path) as scene:
        whole = scene.read_all()
        part = scene.window(Window(3, 5, 9, 11))
    assert np.array_equal(part.data, whole.data[:, 3:12, 5:16])
    if whole.transform is not None:
        assert part.transform == (2.0, 0.0, 20.0, 0.0, -2.0, 44.0)


def test_a_batch_reports_a_bad_input_and_writes_the_rest(tiny_cube: Cube, tmp_path: Path
                                                         ) -> None:
    good, bad = tmp_path / "good.tif", tmp_path / "bad.npy"
    io.write(tiny_cube, good)
    bad.write_bytes(b"not an array")
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["encode", str(good), str(bad), "-o", str(out), "--bpppb",
                                 "3.0", "--epochs", "3"])
    assert r.exit_code == 1
    assert "bad.npy" in r.output and "1 of 2 inputs failed" in r.output
    assert (out / "good.hsz").exists() and not (out / "bad.hsz").exists()


@pytest.mark.skipif(not dask_available(), reason="the dask extra is not installed")
def test_a_batch_on_a_local_dask_cluster_matches_a_serial_batch(tiny_cube: Cube,
                                                                 tmp_path: Path) -> None:
    inputs = []
    for k, name in enumerate(("a.tif", "b.npy", "c.tif")):
        path = tmp_path / name
        io.write(tiny_cube.replace(data=np.ascontiguousarray(np.roll(tiny_cube.data, 3 * k,
                                                                     axis=2))), path)
        inputs.append(str(path))
    wl = ",".join(f"{w:g}" for w in tiny_cube.wavelengths)
    outs = {}
    for name, extra in (("serial", []), ("dask", ["--backend", "dask", "--workers", "2"])):
        out = tmp_path / name
        r = CliRunner().invoke(cli, ["encode", *inputs, "-o", str(out), "--bpppb", "3.0",
                                     "--epochs", "5", "--wavelengths", wl, "-q", *extra])
        assert r.exit_code == 0, r.output
        outs[name] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert list(outs["serial"]) == ["a.hsz", "b.hsz", "c.hsz"]
    assert outs["serial"] == outs["dask"]
