""".mat v5 (scipy) and v7.3 (HDF5) reading and writing, on real Jasper Ridge and Samson crops."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

import hsz.io.matlab as matlab
from hsz import io
from hsz.cube import Cube
from hsz.errors import ReadError

DATA = Path(__file__).parent / "data"
JASPER = DATA / "jasper_ridge_crop.mat"
SAMSON = DATA / "samson_crop_v73.mat"


def read_error(path: Path, match: str, **kwargs: object) -> ReadError:
    with pytest.raises(ReadError, match=match) as info:
        io.read(path, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    return info.value


def small(shape: tuple[int, ...] = (4, 3, 5), dtype: str = "uint16") -> np.ndarray:
    return np.arange(int(np.prod(shape))).astype(dtype).reshape(shape)


# -- real fixtures ----------------------------------------------------------------------------
def test_jasper_ridge_v5_picks_the_cube_and_its_wavelengths() -> None:
    notes: list[str] = []
    cube = io.read(JASPER, report=notes.append)
    raw = scipy.io.loadmat(JASPER)
    assert notes[0] == "picked variable 'jasper' (20×16×198) from jasper_ridge_crop.mat"
    assert cube.shape == (198, 20, 16) and cube.dtype == np.uint16
    np.testing.assert_array_equal(cube.data, raw["jasper"].transpose(2, 0, 1))
    np.testing.assert_allclose(cube.wavelengths, raw["wavelength"].ravel())
    assert cube.wavelength_units == "nm" and cube.source_format == "mat"
    assert any("variable 'wavelength'" in n for n in notes)


def test_samson_v73_axis_order_matches_matlab() -> None:
    """h5py shows MATLAB's (rows, cols, bands) reversed; scipy's v5 writer is the referee."""
    with h5py.File(SAMSON, "r") as f:
        assert f["samson"].shape == (156, 10, 12)  # bands, cols, rows
        matlab_order = np.transpose(f["samson"][()])  # (rows, cols, bands) = (12, 10, 156)
    cube = io.read(SAMSON)
    assert cube.shape == (156, 12, 10) and cube.dtype == np.float64
    np.testing.assert_array_equal(cube.data, matlab_order.transpose(2, 0, 1))
    assert cube.wavelengths is None


def test_samson_v73_equals_the_same_array_saved_as_v5(tmp_path: Path) -> None:
    with h5py.File(SAMSON, "r") as f:
        scipy.io.savemat(tmp_path / "v5.mat", {"samson": np.transpose(f["samson"][()])})
    np.testing.assert_array_equal(io.read(SAMSON).data, io.read(tmp_path / "v5.mat").data)


def test_samson_values_are_dn_over_1402() -> None:
    """SOURCES.md: Samson is integer DN / 1402 exactly; a misread would break that."""
    dn = io.read(SAMSON).data * 1402
    np.testing.assert_allclose(dn, np.round(dn), atol=1e-6)


# -- picking and layout -----------------------------------------------------------------------
def test_var_picks_and_refuses(tmp_path: Path) -> None:
    path = tmp_path / "two.mat"
    scipy.io.savemat(path, {"big": small((6, 5, 4)), "Small": small((2, 3, 4)),
                            "gt": small((6, 5))})
    assert io.read(path).shape == (4, 6, 5)
    assert io.read(path, var="Small").shape == (4, 2, 3)
    assert io.read(path, var="small").shape == (4, 2, 3)  # case-insensitive fallback
    read_error(path, r"two\.mat has no variable 'nope'; it holds .*big 6×5×4", var="nope")
    read_error(path, r"variable 'gt' is 6×5 uint16; hsz needs a 3-D", var="gt")


def test_two_dimensional_file_is_refused_with_the_layout_expected(tmp_path: Path) -> None:
    path = tmp_path / "flat.mat"
    scipy.io.savemat(path, {"Y": small((198, 100))})
    read_error(path, r"holds no 3-D numeric array \(Y 198×100 uint16\).*\(rows, cols, bands\)")


@pytest.mark.parametrize("version", ["v5", "v73"])
def test_bhw_layout(tmp_path: Path, version: str, monkeypatch) -> None:
    data = small((4, 3, 5))  # (bands, rows, cols)
    if version == "v73":
        monkeypatch.setattr(matlab, "V5_MAX_BYTES", 0)
    io.write(Cube(data), tmp_path / "c.mat")  # stored (rows, cols, bands)
    stored = io.read(tmp_path / "c.mat")
    np.testing.assert_array_equal(stored.data, data)
    # Read the same file as if it were (bands, rows, cols): (3, 5, 4) -> bands = 3.
    as_bhw = io.read(tmp_path / "c.mat", layout="bhw")
    np.testing.assert_array_equal(as_bhw.data, data.transpose(1, 2, 0))


# -- wavelength vectors -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "values", "unit", "nm"),
    [
        ("wavelength", [400.0, 500.0, 600.0, 700.0], "nm", [400, 500, 600, 700]),
        ("Wavelengths", [0.4, 0.5, 0.6, 0.7], "um", [400, 500, 600, 700]),
        ("WL", [1.0, 1.5, 2.0, 2.5], "um", [1000, 1500, 2000, 2500]),
        ("lambda", [450.0, 550.0, 650.0, 750.0], "nm", [450, 550, 650, 750]),
        ("wavelength_um", [0.4, 0.5, 0.6, 0.7], "um", [400, 500, 600, 700]),
        ("wavelength_nm", [10.0, 20.0, 30.0, 40.0], "nm", [10, 20, 30, 40]),
    ],
)
def test_wavelength_vector_names_and_units(
    tmp_path: Path, name: str, values: list[float], unit: str, nm: list[float]
) -> None:
    path = tmp_path / "w.mat"
    scipy.io.savemat(path, {"cube": small((3, 5, 4)), name: np.array(values)})
    cube = io.read(path)
    np.testing.assert_allclose(cube.wavelengths, nm)
    assert cube.wavelength_units == unit


def test_wavelength_vectors_that_do_not_fit_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "w.mat"
    scipy.io.savemat(path, {"cube": small((3, 5, 4)), "wavelength": np.arange(400.0, 900, 100),
                            "bands": np.arange(1.0, 5.0)})
    notes: list[str] = []
    assert io.read(path, report=notes.append).wavelengths is None
    assert any("ignored variable 'wavelength' (5 values for 4 bands)" in n for n in notes)
    assert any("band numbers" in n for n in notes)


def test_supplied_wavelengths_win_and_must_fit() -> None:
    wl = np.linspace(380.0, 2500.0, 198)
    np.testing.assert_allclose(io.read(JASPER, wavelengths=wl).wavelengths, wl)
    read_error(JASPER, r"jasper_ridge_crop\.mat: 3 wavelengths were given but the cube has 198",
               wavelengths=np.array([1.0, 2.0, 3.0]))


# -- writing ----------------------------------------------------------------------------------
def _rich_cube() -> Cube:
    return Cube(small((3, 4, 5), "float32") / 7, wavelengths=[0.45e3, 0.55e3, 0.65e3],
                fwhm=[10.0, 11.0, 12.0], wavelength_units="Micrometers",
                band_names=("blue", "green", "red"), nodata=-1, crs=None)


def test_v5_writer_layout_and_round_trip(tmp_path: Path) -> None:
    cube = _rich_cube()
    assert io.write(cube, tmp_path / "out.mat") == [tmp_path / "out.mat"]
    raw = scipy.io.loadmat(tmp_path / "out.mat")
    assert raw["cube"].shape == (4, 5, 3) and raw["wavelength"].shape == (3, 1)
    back = io.read(tmp_path / "out.mat")
    np.testing.assert_array_equal(back.data, cube.data)
    np.testing.assert_allclose(back.wavelengths, cube.wavelengths)
    np.testing.assert_allclose(back.fwhm, cube.fwhm)
    assert back.band_names == cube.band_names
    # What a .mat cannot carry: the unit goes back to nm, nodata is gone.
    assert back.wavelength_units == "nm" and back.nodata is None


def test_v73_writer_is_a_matlab_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(matlab, "V5_MAX_BYTES", 0)  # as if the cube were over 2 GB
    cube = _rich_cube()
    io.write(cube, tmp_path / "big.mat")
    head = (tmp_path / "big.mat").read_bytes()[:128]
    assert head.startswith(b"MATLAB 7.3 MAT-file") and head[124:128] == b"\x00\x02IM"
    with h5py.File(tmp_path / "big.mat", "r") as f:
        assert f["cube"].shape == (3, 5, 4)  # MATLAB (4, 5, 3) reversed
        assert f["cube"].attrs["MATLAB_class"] == b"single"
        assert f["band_names"].attrs["MATLAB_class"] == b"char"
    back = io.read(tmp_path / "big.mat")
    np.testing.assert_array_equal(back.data, cube.data)
    np.testing.assert_allclose(back.wavelengths, cube.wavelengths)
    np.testing.assert_allclose(back.fwhm, cube.fwhm)
    assert back.band_names == cube.band_names


def test_v73_cell_array_band_names(tmp_path: Path) -> None:
    """MATLAB itself saves a cellstr as references to char arrays."""
    path = tmp_path / "cell.mat"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("cube", data=small((2, 5, 4)))  # MATLAB (4, 5, 2)
        ds.attrs["MATLAB_class"] = np.bytes_("uint16")
        refs = f.create_group("#refs#")
        handles = []
        for k, name in enumerate(["NIR", "SWIR"]):
            c = refs.create_dataset(f"n{k}", data=np.array([[ord(ch)] for ch in name], "u2"))
            c.attrs["MATLAB_class"] = np.bytes_("char")
            handles.append(c.ref)
        cell = f.create_dataset("band_names", data=np.array([handles]).T,
                                dtype=h5py.ref_dtype)
        cell.attrs["MATLAB_class"] = np.bytes_("cell")
    assert io.read(path).band_names == ("NIR", "SWIR")


# -- refusals ---------------------------------------------------------------------------------
def test_text_file_renamed_mat(tmp_path: Path) -> None:
    (tmp_path / "fake.mat").write_text("not matlab at all\n" * 20)
    read_error(tmp_path / "fake.mat", r"fake\.mat is not a MATLAB \.mat file hsz can read")


def test_unsupported_and_non_finite_samples(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "i64.mat", {"c": small((2, 2, 2), "int64")})
    read_error(tmp_path / "i64.mat", r"samples of type int64 are not supported")
    data = np.ones((2, 2, 2))
    data[0, 0, 0] = np.nan
    scipy.io.savemat(tmp_path / "nan.mat", {"c": data})
    read_error(tmp_path / "nan.mat", r"nan\.mat has 1 NaN or infinite samples")
    assert np.isnan(io.read(tmp_path / "nan.mat", nodata=float("nan")).nodata)


def test_logical_and_complex_arrays_are_refused(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "b.mat", {"mask": np.ones((2, 2, 2), bool)})
    read_error(tmp_path / "b.mat", r"holds no 3-D numeric array \(mask 2×2×2 logical\)")
    scipy.io.savemat(tmp_path / "z.mat", {"z": np.ones((2, 2, 2), complex)})
    read_error(tmp_path / "z.mat", r"samples of type complex128 are not supported")


@pytest.mark.parametrize("layout", ["hwb", "bhw"])
def test_plain_h5py_file_is_read_by_its_dtypes(tmp_path: Path, layout: str) -> None:
    """A .mat written by plain h5py has no MATLAB_class attributes: its numeric datasets are
    taken by their dtype, with their axes as stored (C order, not reversed as MATLAB's)."""
    cube = small((5, 4, 6)) if layout == "hwb" else small((6, 5, 4))
    wl = np.linspace(450.0, 700.0, 6)
    path = tmp_path / "plain.mat"
    with h5py.File(path, "w") as f:
        f.create_dataset("radiance", data=cube)
        f.create_dataset("wavelength", data=wl)
    got = io.read(path, layout=layout)
    expect = cube.transpose(2, 0, 1) if layout == "hwb" else cube
    assert got.shape == expect.shape and got.dtype == np.uint16
    np.testing.assert_array_equal(got.data, expect)
    np.testing.assert_allclose(got.wavelengths, wl)
