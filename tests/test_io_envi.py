"""ENVI reading and writing through GDAL, on the real PlantCV corn-kernel file and on small
files whose bytes are laid out here by hand (so the reader is checked against an
independent encoding of every interleave, byte order and data type)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from rasterio.crs import CRS

from hsz import io
from hsz.cube import Cube
from hsz.errors import ReadError, WriteError

DATA = Path(__file__).parent / "data"
CORN_HDR = DATA / "corn_kernel_crop.hdr"
CORN_RAW = DATA / "corn_kernel_crop.raw"

ENVI_CODES = {"uint8": 1, "int16": 2, "int32": 3, "float32": 4, "float64": 5,
              "uint16": 12, "uint32": 13}
AXES = {"bsq": (0, 1, 2), "bil": (1, 0, 2), "bip": (1, 2, 0)}


def envi_by_hand(
    stem: Path, data: np.ndarray, *, interleave: str = "bsq", byte_order: int = 0,
    data_ext: str = ".img", header_offset: int = 0, code: int | None = None,
    extra: str = "",
) -> tuple[Path, Path]:
    """Write an ENVI pair with numpy and plain text, the way many instruments do."""
    bands, rows, cols = data.shape
    dt = data.dtype.newbyteorder(">" if byte_order else "<")
    body = np.ascontiguousarray(data.transpose(AXES[interleave])).astype(dt).tobytes()
    data_path = stem.with_name(stem.name + data_ext)
    data_path.write_bytes(b"\0" * header_offset + body)
    hdr = stem.with_name(stem.name + ".hdr")
    code = ENVI_CODES[data.dtype.name] if code is None else code
    hdr.write_text(
        f"ENVI\ndescription = {{hand-made}}\nsamples = {cols}\nlines = {rows}\n"
        f"bands = {bands}\nheader offset = {header_offset}\nfile type = ENVI Standard\n"
        f"data type = {code}\ninterleave = {interleave}\nbyte order = {byte_order}\n{extra}"
    )
    return data_path, hdr


def sample_cube(dtype: str, shape: tuple[int, int, int] = (3, 4, 5)) -> np.ndarray:
    """Values spanning the type's range, so a byte swap or sign error cannot hide."""
    n = int(np.prod(shape))
    if np.dtype(dtype).kind == "f":
        values = np.linspace(-1e6, 1e6, n)
    else:
        info = np.iinfo(dtype)
        values = np.linspace(info.min, info.max, n).round()
    return values.astype(dtype).reshape(shape)


def read_error(path: Path, match: str, **kwargs: object) -> ReadError:
    with pytest.raises(ReadError, match=match) as info:
        io.read(path, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    return info.value


# -- the real file ----------------------------------------------------------------------------
def test_corn_kernel_samples_match_the_raw_bil_bytes() -> None:
    cube = io.read(CORN_HDR)
    expected = np.fromfile(CORN_RAW, dtype="<u2").reshape(31, 145, 43).transpose(1, 0, 2)
    assert cube.shape == (145, 31, 43) and cube.dtype == np.uint16
    np.testing.assert_array_equal(cube.data, expected)
    assert cube.source_format == "envi"


def test_corn_kernel_metadata() -> None:
    cube = io.read(CORN_RAW)  # the data file works as well as the header
    header = CORN_HDR.read_text()
    listed = re.search(r"wavelength = \{(.*?)\}", header, re.S).group(1)  # type: ignore[union-attr]
    np.testing.assert_allclose(cube.wavelengths, [float(v) for v in listed.split(",")])
    assert cube.wavelengths[0] == pytest.approx(366.551)
    assert cube.wavelength_units == "nm"
    assert cube.extra["envi:interleave"] == "bil"
    # GDAL invents descriptions like "366.551 nm" and an identity transform: neither is data.
    assert cube.band_names is None and cube.transform is None and cube.crs is None
    assert cube.nodata is None and cube.fwhm is None


def test_corn_kernel_round_trip_keeps_bil_and_header(tmp_path: Path) -> None:
    cube = io.read(CORN_HDR)
    written = io.write(cube, tmp_path / "corn.hdr")
    assert written == [tmp_path / "corn.img", tmp_path / "corn.hdr"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corn.hdr", "corn.img"]
    text = (tmp_path / "corn.hdr").read_text()
    assert re.search(r"^interleave = bil$", text, re.M)
    assert ".part" not in text  # the temporary name must not leak into the description
    back = io.read(tmp_path / "corn.img")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corn.hdr", "corn.img"]  # no .aux.xml
    np.testing.assert_array_equal(back.data, cube.data)
    np.testing.assert_allclose(back.wavelengths, cube.wavelengths, rtol=1e-12)


# -- every layout the format allows -----------------------------------------------------------
@pytest.mark.parametrize("byte_order", [0, 1])
@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
def test_interleaves_and_byte_orders(tmp_path: Path, interleave: str, byte_order: int) -> None:
    data = sample_cube("int16", (4, 3, 5))
    _, hdr = envi_by_hand(tmp_path / "x", data, interleave=interleave, byte_order=byte_order)
    cube = io.read(hdr)
    np.testing.assert_array_equal(cube.data, data)
    assert cube.data.dtype.isnative and cube.data.flags.c_contiguous
    assert cube.extra["envi:interleave"] == interleave


@pytest.mark.parametrize("byte_order", [0, 1])
@pytest.mark.parametrize("dtype", sorted(ENVI_CODES))
def test_every_envi_data_type(tmp_path: Path, dtype: str, byte_order: int) -> None:
    data = sample_cube(dtype)
    _, hdr = envi_by_hand(tmp_path / "x", data, interleave="bip", byte_order=byte_order)
    cube = io.read(hdr)
    assert cube.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(cube.data, data)


@pytest.mark.parametrize("dtype", sorted(ENVI_CODES))
def test_writer_round_trips_every_data_type(tmp_path: Path, dtype: str) -> None:
    data = sample_cube(dtype)
    io.write(Cube(data), tmp_path / "x.img")
    text = (tmp_path / "x.hdr").read_text()
    assert re.search(rf"^data type = {ENVI_CODES[dtype]}$", text, re.M)
    np.testing.assert_array_equal(io.read(tmp_path / "x.hdr").data, data)


def test_header_offset_and_data_file_without_extension(tmp_path: Path) -> None:
    data = sample_cube("uint16")
    data_path, _ = envi_by_hand(tmp_path / "scene", data, data_ext="", header_offset=128)
    assert io.format_for_path(data_path) == "envi"
    np.testing.assert_array_equal(io.read(data_path).data, data)
    np.testing.assert_array_equal(io.read(tmp_path / "scene.hdr").data, data)


def test_header_named_after_the_full_data_name(tmp_path: Path) -> None:
    data = sample_cube("uint16")
    data_path = tmp_path / "scene.dat"
    _, hdr = envi_by_hand(tmp_path / "scene", data, data_ext=".dat")
    hdr.rename(tmp_path / "scene.dat.hdr")  # ENVI's other naming convention
    np.testing.assert_array_equal(io.read(data_path).data, data)


# -- wavelengths and units --------------------------------------------------------------------
def test_micrometres_are_read_as_nm_and_written_back_as_micrometres(tmp_path: Path) -> None:
    data = sample_cube("uint16")
    extra = ("wavelength units = Micrometers\nwavelength = {0.45, 0.55, 0.65}\n"
             "fwhm = {0.01, 0.012, 0.014}\n")
    _, hdr = envi_by_hand(tmp_path / "um", data, extra=extra)
    cube = io.read(hdr)
    np.testing.assert_allclose(cube.wavelengths, [450, 550, 650])
    np.testing.assert_allclose(cube.fwhm, [10, 12, 14])
    assert cube.wavelength_units == "Micrometers"
    io.write(cube, tmp_path / "out.hdr")
    text = (tmp_path / "out.hdr").read_text()
    assert "wavelength units = Micrometers" in text
    assert re.search(r"wavelength = \{\s*0\.45,\s*0\.55,\s*0\.65\s*\}", text)
    assert re.search(r"fwhm = \{\s*0\.01,\s*0\.012,\s*0\.014\s*\}", text)
    back = io.read(tmp_path / "out.hdr")
    np.testing.assert_allclose(back.wavelengths, cube.wavelengths, rtol=1e-12)
    np.testing.assert_allclose(back.fwhm, cube.fwhm, rtol=1e-12)


def test_unitless_small_wavelengths_are_taken_as_micrometres(tmp_path: Path) -> None:
    _, hdr = envi_by_hand(tmp_path / "x", sample_cube("uint16"),
                          extra="wavelength = {0.4,0.5,0.6}\n")
    notes: list[str] = []
    cube = io.read(hdr, report=notes.append)
    np.testing.assert_allclose(cube.wavelengths, [400, 500, 600])
    assert cube.wavelength_units == "um"
    assert any("look like um" in n for n in notes)


def test_index_unit_is_not_a_wavelength(tmp_path: Path) -> None:
    _, hdr = envi_by_hand(tmp_path / "x", sample_cube("uint16"),
                          extra="wavelength units = Index\nwavelength = {1,2,3}\n")
    notes: list[str] = []
    cube = io.read(hdr, report=notes.append)
    assert cube.wavelengths is None
    assert any("not a length" in n for n in notes)


def test_wavelength_count_mismatch_and_supplied_wavelengths(tmp_path: Path) -> None:
    _, hdr = envi_by_hand(tmp_path / "x", sample_cube("uint16"),
                          extra="wavelength = {400, 500}\n")
    read_error(hdr, r"lists 2 wavelengths for 3 bands")
    cube = io.read(hdr, wavelengths=np.array([410.0, 510.0, 610.0]))
    np.testing.assert_allclose(cube.wavelengths, [410, 510, 610])
    read_error(hdr, r"2 wavelengths were given but the cube has 3 bands",
               wavelengths=np.array([1.0, 2.0]))


# -- georeferencing, nodata, names and other header fields ------------------------------------
def test_full_metadata_round_trip(tmp_path: Path) -> None:
    wkt = CRS.from_epsg(32611).to_wkt()
    cube = Cube(
        sample_cube("float32"), wavelengths=[450.0, 550.0, 650.0], fwhm=[9.5, 10.0, 10.5],
        wavelength_units="nm", band_names=("blue", "green", "red"), nodata=-9999.0,
        crs=wkt, transform=(30.0, 0.0, 500000.0, 0.0, -30.0, 4100000.0),
        extra={"envi:sensor_type": "AVIRIS", "envi:description": "a test scene"},
    )
    files = io.write(cube, tmp_path / "geo.bsq")
    assert files == [tmp_path / "geo.bsq", tmp_path / "geo.hdr"]
    text = (tmp_path / "geo.hdr").read_text()
    for field in ("map info", "coordinate system string", "band names", "data ignore value",
                  "sensor type = AVIRIS", "wavelength units = nm", "a test scene"):
        assert field in text
    back = io.read(tmp_path / "geo.hdr")
    np.testing.assert_array_equal(back.data, cube.data)
    np.testing.assert_allclose(back.wavelengths, cube.wavelengths)
    np.testing.assert_allclose(back.fwhm, cube.fwhm)
    assert back.band_names == cube.band_names
    assert back.nodata == -9999.0
    assert back.transform == pytest.approx(cube.transform)
    assert CRS.from_wkt(back.crs).to_epsg() == 32611
    assert back.extra["envi:sensor_type"] == "AVIRIS"
    assert back.extra["envi:description"] == "a test scene"


def test_nan_nodata_and_nan_samples(tmp_path: Path) -> None:
    data = sample_cube("float32")
    data[:, 0, 0] = np.nan
    _, hdr = envi_by_hand(tmp_path / "x", data)
    read_error(hdr, r"NaN or infinite")
    assert np.isnan(io.read(hdr, nodata=float("nan")).nodata)
    _, hdr2 = envi_by_hand(tmp_path / "y", data, extra="data ignore value = nan\n")
    cube = io.read(hdr2)
    assert np.isnan(cube.nodata)
    io.write(cube, tmp_path / "z.img")
    assert np.isnan(io.read(tmp_path / "z.img").nodata)


def test_band_names_with_commas_are_kept_countable(tmp_path: Path) -> None:
    cube = Cube(sample_cube("uint8"), band_names=("a,b", "c{d}", "e"))
    io.write(cube, tmp_path / "n.img")
    assert io.read(tmp_path / "n.img").band_names == ("a;b", "c;d;", "e")


# -- refusals ---------------------------------------------------------------------------------
def test_header_without_data_file(tmp_path: Path) -> None:
    data_path, hdr = envi_by_hand(tmp_path / "x", sample_cube("uint16"))
    data_path.unlink()
    read_error(hdr, r"x\.hdr: ENVI header without its data file")


def test_data_file_without_header(tmp_path: Path) -> None:
    data_path, hdr = envi_by_hand(tmp_path / "x", sample_cube("uint16"))
    hdr.unlink()
    read_error(data_path, r"no ENVI header beside it")


def test_truncated_data_file(tmp_path: Path) -> None:
    data_path, hdr = envi_by_hand(tmp_path / "x", sample_cube("uint16"))
    data_path.write_bytes(data_path.read_bytes()[:50])
    read_error(hdr, r"has 50 bytes but the header describes 120")


def test_complex_data_type_is_refused(tmp_path: Path) -> None:
    data = np.zeros((2, 2, 2), dtype=np.float64)  # 16 bytes a sample, as complex64 pairs
    _, hdr = envi_by_hand(tmp_path / "x", data.astype(np.float32), code=6)
    read_error(hdr, r"complex64 are not supported.*ENVI data type 6")


def test_int8_is_refused_before_any_file_is_made(tmp_path: Path) -> None:
    with pytest.raises(WriteError, match="no signed 8-bit"):
        io.write(Cube(sample_cube("int8")), tmp_path / "s.img")
    assert list(tmp_path.iterdir()) == []


def test_existing_outputs_are_kept_unless_overwrite(tmp_path: Path) -> None:
    cube = Cube(sample_cube("uint16"))
    io.write(cube, tmp_path / "o.img")
    (tmp_path / "o.img").unlink()  # only the header is left: still refused
    with pytest.raises(WriteError, match="already exists"):
        io.write(cube, tmp_path / "o.img")
    io.write(cube, tmp_path / "o.img", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.hdr", "o.img"]
