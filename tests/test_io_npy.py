""".npy reading and writing on real Indian Pines (rows, cols, bands) and CAVE (bands, rows,
cols) crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hsz import io
from hsz.cube import Cube
from hsz.errors import ReadError
from hsz.spectral import read_wavelength_file

DATA = Path(__file__).parent / "data"
IP = DATA / "indian_pines_crop.npy"
CAVE = DATA / "cave_balloons_crop_bhw.npy"


def read_error(path: Path, match: str, **kwargs: object) -> ReadError:
    with pytest.raises(ReadError, match=match) as info:
        io.read(path, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    return info.value


def test_indian_pines_hwb_with_its_wavelength_file() -> None:
    wl = read_wavelength_file(DATA / "indian_pines_crop_wavelengths.csv")
    cube = io.read(IP, wavelengths=wl)
    raw = np.load(IP)
    assert raw.shape == (24, 20, 200)
    assert cube.shape == (200, 24, 20) and cube.dtype == np.uint16
    np.testing.assert_array_equal(cube.data, raw.transpose(2, 0, 1))
    assert cube.data.flags.c_contiguous and not isinstance(cube.data, np.memmap)
    assert cube.wavelengths[0] == pytest.approx(400.019989)
    assert not cube.wavelengths_increasing  # AVIRIS spectrometer overlaps, kept as they are
    assert cube.wavelength_units == "nm" and cube.source_format == "npy"


def test_cave_bhw() -> None:
    wl = read_wavelength_file(DATA / "cave_balloons_crop_wavelengths.csv")
    cube = io.read(CAVE, layout="bhw", wavelengths=wl)
    assert cube.shape == (31, 32, 24)
    np.testing.assert_array_equal(cube.data, np.load(CAVE))
    np.testing.assert_allclose(cube.wavelengths, np.arange(400, 701, 10))


def test_round_trip_writes_rows_cols_bands_and_drops_metadata(tmp_path: Path) -> None:
    cube = io.read(CAVE, layout="bhw", wavelengths=np.arange(400.0, 701, 10), nodata=0)
    assert io.write(cube, tmp_path / "c.npy") == [tmp_path / "c.npy"]
    assert np.load(tmp_path / "c.npy").shape == (32, 24, 31)
    back = io.read(tmp_path / "c.npy")
    np.testing.assert_array_equal(back.data, cube.data)
    assert back.wavelengths is None and back.nodata is None


def test_big_endian_and_fortran_order_come_back_native(tmp_path: Path) -> None:
    raw = np.load(IP)
    np.save(tmp_path / "be.npy", raw.astype(">u2"))
    np.save(tmp_path / "f.npy", np.asfortranarray(raw))
    for name in ("be.npy", "f.npy"):
        cube = io.read(tmp_path / name)
        assert cube.data.dtype == np.dtype("uint16") and cube.data.dtype.isnative
        np.testing.assert_array_equal(cube.data, raw.transpose(2, 0, 1))


def test_wavelength_count_mismatch() -> None:
    read_error(IP, r"indian_pines_crop\.npy: 31 wavelengths were given but the cube has 200",
               wavelengths=np.arange(400.0, 701, 10))


def test_object_array_is_refused_without_unpickling(tmp_path: Path) -> None:
    np.save(tmp_path / "obj.npy", np.array([[[1, "a"]]], dtype=object), allow_pickle=True)
    read_error(tmp_path / "obj.npy", r"obj\.npy holds Python objects")


def test_two_dimensional_array(tmp_path: Path) -> None:
    np.save(tmp_path / "flat.npy", np.zeros((198, 100), dtype=np.uint16))
    read_error(tmp_path / "flat.npy", r"holds a 2-D array of shape 198×100; hsz needs a 3-D")


@pytest.mark.parametrize("dtype", ["int64", "uint64", "float16", "bool", "complex64"])
def test_unsupported_dtypes(tmp_path: Path, dtype: str) -> None:
    np.save(tmp_path / "u.npy", np.zeros((2, 2, 2), dtype=dtype))
    read_error(tmp_path / "u.npy", rf"samples of type {dtype} are not supported")


def test_nan_and_inf(tmp_path: Path) -> None:
    data = np.ones((3, 3, 2), dtype=np.float32)
    data[0, 0, :] = np.nan
    np.save(tmp_path / "nan.npy", data)
    read_error(tmp_path / "nan.npy", r"nan\.npy has 2 NaN or infinite samples; declare a nodata")
    cube = io.read(tmp_path / "nan.npy", nodata=float("nan"))
    assert cube.valid_mask() is not None and not cube.valid_mask()[0, 0]
    data[1, 1, 1] = np.inf
    np.save(tmp_path / "inf.npy", data)
    read_error(tmp_path / "inf.npy", r"has 1 NaN or infinite", nodata=float("nan"))


@pytest.mark.parametrize("content", [b"\x93NUMPY\x01\x00garbage", b"just text\n"])
def test_damaged_files(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "bad.npy").write_bytes(content)
    read_error(tmp_path / "bad.npy", r"bad\.npy is not a valid \.npy file")


def test_truncated_file(tmp_path: Path) -> None:
    np.save(tmp_path / "t.npy", np.zeros((4, 4, 4), dtype=np.uint16))
    (tmp_path / "t.npy").write_bytes((tmp_path / "t.npy").read_bytes()[:-10])
    read_error(tmp_path / "t.npy", r"t\.npy is not a valid \.npy file")


def test_writer_accepts_any_cube_dtype(tmp_path: Path) -> None:
    data = np.arange(-12, 12, dtype=np.int8).reshape(2, 3, 4)
    io.write(Cube(data), tmp_path / "i8.npy")
    np.testing.assert_array_equal(io.read(tmp_path / "i8.npy").data, data)
