"""The hsz.io front door: format registry, format detection, shared refusals, and imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hsz import io
from hsz.cube import Cube
from hsz.errors import ReadError, UsageError

DATA = Path(__file__).parent / "data"


def test_registry_ids_are_stable() -> None:
    assert set(io.FORMATS) == {"envi", "gtiff", "mat", "npy"}
    assert all(info.id == key for key, info in io.FORMATS.items())


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.hdr", "envi"), ("a.IMG", "envi"), ("a.dat", "envi"), ("a.raw", "envi"),
     ("a.bsq", "envi"), ("a.bil", "envi"), ("a.bip", "envi"), ("a.tif", "gtiff"),
     ("a.TIFF", "gtiff"), ("a.vrt", "gtiff"), ("a.mat", "mat"), ("a.npy", "npy")],
)
def test_format_by_extension(name: str, expected: str) -> None:
    assert io.format_for_path(name) == expected


def test_format_argument_overrides_and_aliases() -> None:
    assert io.format_for_path("cube.bin", "npy") == "npy"
    assert io.format_for_path("x.tif", "ENVI") == "envi"
    assert io.format_for_path("x", "GeoTIFF", for_write=True) == "gtiff"
    with pytest.raises(UsageError, match="unknown format 'jpeg'; choose one of envi, gtiff"):
        io.format_for_path("x.tif", "jpeg")


def test_unknown_extensions_give_usage_errors() -> None:
    with pytest.raises(UsageError, match="cannot tell the format of nowhere.xyz"):
        io.format_for_path("nowhere.xyz")
    with pytest.raises(UsageError, match="cannot tell which format to write out.vrt"):
        io.format_for_path("out.vrt", for_write=True)
    with pytest.raises(UsageError, match=r"\.tif"):
        io.format_for_path("out", for_write=True)


def test_content_sniffing_for_odd_names(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros((2, 2, 2), np.uint8))
    (tmp_path / "a.npy").rename(tmp_path / "cube.bin")
    assert io.format_for_path(tmp_path / "cube.bin") == "npy"
    assert io.read(tmp_path / "cube.bin").shape == (2, 2, 2)
    (tmp_path / "scene").write_bytes(b"\0" * 8)
    (tmp_path / "scene.hdr").write_text("ENVI\n")
    assert io.format_for_path(tmp_path / "scene") == "envi"


def test_missing_folder_and_empty_inputs(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match=r"nope\.tif does not exist"):
        io.read(tmp_path / "nope.tif")
    with pytest.raises(ReadError, match="does not exist"):
        io.read(tmp_path / "no_extension")
    with pytest.raises(ReadError, match="is a folder"):
        io.read(tmp_path, format="npy")


@pytest.mark.parametrize("name", ["e.npy", "e.mat", "e.tif", "e.hdr", "e.img"])
def test_empty_files(tmp_path: Path, name: str) -> None:
    (tmp_path / name).touch()
    with pytest.raises(ReadError, match=r"is empty \(0 bytes\)"):
        io.read(tmp_path / name)


def test_layout_is_validated_and_ignored_where_the_file_knows(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown layout 'hbw'"):
        io.read(DATA / "indian_pines_crop.npy", layout="hbw")
    io.write(Cube(np.ones((2, 3, 4), np.uint8)), tmp_path / "x.tif")
    notes: list[str] = []
    cube = io.read(tmp_path / "x.tif", layout="bhw", var="cube", report=notes.append)
    assert cube.shape == (2, 3, 4)
    assert any("layout 'bhw' ignored" in n for n in notes)
    assert any("variable 'cube' ignored" in n for n in notes)


def test_every_format_round_trips_the_same_cube(tmp_path: Path) -> None:
    cube = io.read(DATA / "corn_kernel_crop.hdr")
    for name in ("c.img", "c.tif", "c.mat", "c.npy"):
        back = io.read(tmp_path / io.write(cube, tmp_path / name)[0])
        np.testing.assert_array_equal(back.data, cube.data)
        assert back.dtype == cube.dtype


def test_importing_hsz_io_does_not_import_torch() -> None:
    code = (
        "import sys, hsz.io, hsz.io.gdal, hsz.io.matlab, hsz.io.npy; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_format_detection_does_not_load_gdal_or_hdf5() -> None:
    code = ("import sys, hsz.io; hsz.io.format_for_path('x.tif'); "
            "print(any(m in sys.modules for m in ('rasterio', 'h5py', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["corn_kernel_crop.hdr", "indian_pines_crop.npy",
                                  "jasper_ridge_crop.mat", "samson_crop_v73.mat"])
def test_every_reader_refuses_a_cube_larger_than_memory(name: str, monkeypatch) -> None:
    import hsz.io._common as common

    monkeypatch.setattr(common, "available_memory", lambda: 50_000)
    with pytest.raises(ReadError, match=r"needs about .* of memory is available") as info:
        io.read(DATA / name)
    assert "\n" not in str(info.value) and name in str(info.value)
