"""GeoTIFF (and generic GDAL raster) reading and writing, checked with rasterio directly."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine

import hsz.io._common as common
from hsz import io
from hsz.cube import SUPPORTED_DTYPES, Cube
from hsz.errors import ReadError, WriteError
from hsz.spectral import read_wavelength_file

DATA = Path(__file__).parent / "data"


def read_error(path: Path, match: str, **kwargs: object) -> ReadError:
    with pytest.raises(ReadError, match=match) as info:
        io.read(path, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    return info.value


def indian_pines_cube() -> Cube:
    """The real Indian Pines crop with its real centres and FWHM, plus a made-up UTM frame."""
    data = np.load(DATA / "indian_pines_crop.npy").transpose(2, 0, 1)
    lines = (DATA / "indian_pines_crop_wavelengths.csv").read_text().splitlines()
    rows = list(csv.DictReader(line for line in lines if not line.startswith("#")))
    table = {key: np.array([float(r[key]) for r in rows]) for key in rows[0]}
    return Cube(
        np.ascontiguousarray(data), wavelengths=table["center_nm"], fwhm=table["fwhm_nm"],
        wavelength_units="nm",
        band_names=tuple(f"AVIRIS {int(c)}" for c in table["aviris_channel"]),
        nodata=0, crs=CRS.from_epsg(32616).to_wkt(),
        transform=(20.0, 0.0, 500000.0, 0.0, -20.0, 4500000.0),
    )


def plain_tiff(path: Path, data: np.ndarray, **profile: object) -> rasterio.io.DatasetWriter:
    """A GeoTIFF as another program would write it, without hsz's writer."""
    bands, rows, cols = data.shape
    profile.setdefault("transform", Affine(2, 0, 100, 0, -2, 200))  # keep rasterio quiet
    return rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=bands,
                         dtype=data.dtype.name, **profile)


def test_indian_pines_round_trip_keeps_everything(tmp_path: Path) -> None:
    cube = indian_pines_cube()
    assert io.write(cube, tmp_path / "ip.tif") == [tmp_path / "ip.tif"]
    assert [p.name for p in tmp_path.iterdir()] == ["ip.tif"]  # no .aux.xml, no temporaries
    back = io.read(tmp_path / "ip.tif")
    assert [p.name for p in tmp_path.iterdir()] == ["ip.tif"]  # reading wrote nothing either
    np.testing.assert_array_equal(back.data, cube.data)
    assert back.dtype == np.uint16 and back.source_format == "gtiff"
    np.testing.assert_allclose(back.wavelengths, cube.wavelengths, rtol=1e-12)
    np.testing.assert_allclose(back.fwhm, cube.fwhm, rtol=1e-12)
    assert back.wavelength_units == "nm"
    assert back.band_names == cube.band_names
    assert back.nodata == 0.0
    assert back.transform == cube.transform
    assert CRS.from_wkt(back.crs) == CRS.from_epsg(32616)


def test_creation_options_and_band_metadata_as_gdal_sees_them(tmp_path: Path) -> None:
    cube = indian_pines_cube().replace(wavelengths=indian_pines_cube().wavelengths,
                                       wavelength_units="Micrometers")
    io.write(cube, tmp_path / "ip.tif")
    with rasterio.open(tmp_path / "ip.tif") as ds:
        assert ds.profile["tiled"] and ds.profile["compress"] == "deflate"
        assert ds.tags(ns="IMAGE_STRUCTURE")["INTERLEAVE"] == "BAND"
        assert ds.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR", "2") == "2"
        assert ds.tags(1)["wavelength_units"] == "Micrometers"
        assert float(ds.tags(1)["wavelength"]) == pytest.approx(cube.wavelengths[0] / 1000)
        imagery = ds.tags(200, ns="IMAGERY")
        assert float(imagery["CENTRAL_WAVELENGTH_UM"]) == pytest.approx(cube.wavelengths[-1] / 1e3)
        assert float(imagery["FWHM_UM"]) == pytest.approx(cube.fwhm[-1] / 1000)
        assert ds.descriptions[0] == cube.band_names[0]
    back = io.read(tmp_path / "ip.tif")
    assert back.wavelength_units == "Micrometers"
    np.testing.assert_allclose(back.wavelengths, cube.wavelengths, rtol=1e-12)


def test_imagery_domain_alone_gives_wavelengths(tmp_path: Path) -> None:
    data = np.arange(24, dtype=np.uint16).reshape(2, 3, 4)
    with plain_tiff(tmp_path / "im.tif", data) as ds:
        ds.write(data)
        for k, (wl, fw) in enumerate([(0.45, 0.02), (0.65, 0.03)], start=1):
            ds.update_tags(k, ns="IMAGERY", CENTRAL_WAVELENGTH_UM=str(wl), FWHM_UM=str(fw))
    cube = io.read(tmp_path / "im.tif")
    np.testing.assert_allclose(cube.wavelengths, [450, 650])
    np.testing.assert_allclose(cube.fwhm, [20, 30])
    assert cube.wavelength_units == "um"
    assert cube.band_names is None and cube.crs is None


def test_descriptions_become_band_names_even_when_some_are_empty(tmp_path: Path) -> None:
    data = np.zeros((3, 2, 2), dtype=np.float32)
    with plain_tiff(tmp_path / "d.tif", data) as ds:
        ds.write(data)
        ds.set_band_description(1, "coastal")
        ds.set_band_description(3, "red")
    assert io.read(tmp_path / "d.tif").band_names == ("coastal", "", "red")


@pytest.mark.parametrize("dtype", SUPPORTED_DTYPES)
def test_every_sample_type_round_trips(tmp_path: Path, dtype: str) -> None:
    if np.dtype(dtype).kind == "f":
        data = np.linspace(-3e5, 3e5, 60).astype(dtype).reshape(3, 4, 5)
    else:
        info = np.iinfo(dtype)
        data = np.linspace(info.min, info.max, 60).round().astype(dtype).reshape(3, 4, 5)
    io.write(Cube(data), tmp_path / "t.tiff")
    back = io.read(tmp_path / "t.tiff")
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back.data, data)
    assert back.transform is None and back.crs is None and back.nodata is None


def test_rotated_transform_and_nan_nodata(tmp_path: Path) -> None:
    t = tuple(Affine.translation(300000, 5000000) @ Affine.rotation(15) @ Affine.scale(10, -10))
    data = np.ones((2, 3, 4), dtype=np.float32)
    data[:, 1, 1] = np.nan
    cube = Cube(data, nodata=float("nan"), transform=t[:6], crs=CRS.from_epsg(32633).to_wkt())
    io.write(cube, tmp_path / "r.tif")
    back = io.read(tmp_path / "r.tif")
    assert back.transform == pytest.approx(t[:6])
    assert np.isnan(back.nodata)
    np.testing.assert_array_equal(np.isnan(back.data), np.isnan(data))


def test_unrepresentable_nodata_is_not_written(tmp_path: Path) -> None:
    io.write(Cube(np.ones((1, 2, 2), dtype=np.uint16), nodata=-1), tmp_path / "n.tif")
    assert io.read(tmp_path / "n.tif").nodata is None


def test_infinite_samples_are_refused(tmp_path: Path) -> None:
    data = np.ones((2, 2, 2), dtype=np.float64)
    data[1, 0, 1] = np.inf
    with plain_tiff(tmp_path / "inf.tif", data) as ds:
        ds.write(data)
    read_error(tmp_path / "inf.tif", r"inf\.tif has 1 NaN or infinite samples")
    read_error(tmp_path / "inf.tif", r"NaN or infinite", nodata=float("nan"))


def test_vrt_with_different_nodata_per_band_uses_the_first(tmp_path: Path) -> None:
    """Any GDAL raster reads through the same path; a VRT also lets bands disagree."""
    data = np.arange(8, dtype=np.int16).reshape(2, 2, 2)
    with plain_tiff(tmp_path / "src.tif", data) as ds:
        ds.write(data)
    bands = "".join(
        f'<VRTRasterBand dataType="Int16" band="{k}"><NoDataValue>{nd}</NoDataValue>'
        f'<SimpleSource><SourceFilename relativeToVRT="1">src.tif</SourceFilename>'
        f"<SourceBand>{k}</SourceBand></SimpleSource></VRTRasterBand>"
        for k, nd in ((1, -1), (2, -2))
    )
    (tmp_path / "v.vrt").write_text(
        f'<VRTDataset rasterXSize="2" rasterYSize="2">{bands}</VRTDataset>'
    )
    notes: list[str] = []
    cube = io.read(tmp_path / "v.vrt", report=notes.append)
    np.testing.assert_array_equal(cube.data, data)
    assert cube.nodata == -1 and cube.source_format == "gtiff"
    assert any("different nodata" in n for n in notes)


def test_text_file_renamed_tif(tmp_path: Path) -> None:
    (tmp_path / "fake.tif").write_text("this is not a raster\n")
    read_error(tmp_path / "fake.tif", r"cannot read .*fake\.tif.*not recognized")


def test_memory_is_checked_before_allocating(tmp_path: Path, monkeypatch) -> None:
    io.write(indian_pines_cube(), tmp_path / "ip.tif")
    monkeypatch.setattr(common, "available_memory", lambda: 100_000)
    err = read_error(tmp_path / "ip.tif", r"ip\.tif: reading the 200×24×20 uint16 cube needs")
    assert "free memory or crop" in str(err)


def test_output_exists(tmp_path: Path) -> None:
    (tmp_path / "x.tif").write_bytes(b"keep me")
    with pytest.raises(WriteError, match="already exists"):
        io.write(indian_pines_cube(), tmp_path / "x.tif")
    assert (tmp_path / "x.tif").read_bytes() == b"keep me"


def test_supplied_wavelength_file(tmp_path: Path) -> None:
    wl = read_wavelength_file(DATA / "indian_pines_crop_wavelengths.csv")
    cube = indian_pines_cube().replace(wavelengths=None, fwhm=None, wavelength_units=None)
    io.write(cube, tmp_path / "nowl.tif")
    back = io.read(tmp_path / "nowl.tif", wavelengths=wl)
    np.testing.assert_allclose(back.wavelengths, indian_pines_cube().wavelengths)
    assert back.wavelength_units == "nm"


def test_band_metadata_in_an_aux_xml_side_car_is_read(tmp_path: Path) -> None:
    """Some tools keep wavelengths in GDAL's .aux.xml rather than inside the file."""
    data = np.ones((2, 2, 3), dtype=np.uint8)
    with plain_tiff(tmp_path / "pam.tif", data) as ds:
        ds.write(data)
    bands = "".join(
        f'<PAMRasterBand band="{k}"><Metadata><MDI key="wavelength">{wl}</MDI>'
        f'<MDI key="wavelength_units">nm</MDI></Metadata></PAMRasterBand>'
        for k, wl in ((1, 470), (2, 560))
    )
    (tmp_path / "pam.tif.aux.xml").write_text(f"<PAMDataset>{bands}</PAMDataset>")
    np.testing.assert_allclose(io.read(tmp_path / "pam.tif").wavelengths, [470, 560])
