"""``hsz.evaluate.compare`` and ``hsz eval``: figures checked against values worked out by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hsz.cli import cli
from hsz.cube import Cube
from hsz.errors import UsageError
from hsz.evaluate import compare, is_hsz
from hsz.metrics import PSNR_EXACT

# Two bands of 2 x 2 pixels.  Band 1: range 30, one sample off by 1 -> MSE 1/4.
# Band 2: range 10, one sample off by 2 -> MSE 1.
ORIGINAL = np.array([[[0, 10], [20, 30]], [[5, 5], [5, 15]]], dtype=np.uint16)
DECODED = np.array([[[1, 10], [20, 30]], [[5, 5], [5, 13]]], dtype=np.uint16)


def _angle(u: tuple[float, float], v: tuple[float, float]) -> float:
    cos = (u[0] * v[0] + u[1] * v[1]) / (math.hypot(*u) * math.hypot(*v))
    return math.degrees(math.acos(min(1.0, cos)))


def test_compare_matches_hand_computed_figures() -> None:
    r = compare(Cube(ORIGINAL, wavelengths=[500, 600]), Cube(DECODED), file_bytes=3)
    band1 = 10 * math.log10(30**2 / 0.25)
    band2 = 10 * math.log10(10**2 / 1.0)
    assert r["psnr_band_mean"] == pytest.approx((band1 + band2) / 2)
    # Whole cube: range 0..30, MSE (1 + 4) / 8.
    assert r["psnr_global"] == pytest.approx(10 * math.log10(30**2 / (5 / 8)))
    # Pixel (0,0) goes from (0,5) to (1,5), pixel (1,1) from (30,15) to (30,13); 4 pixels.
    sam = (_angle((0, 5), (1, 5)) + _angle((30, 15), (30, 13))) / 4
    assert r["sam_deg"] == pytest.approx(sam)
    assert r["max_abs_error"] == 2.0
    assert r["band_psnr"]["min"] == pytest.approx(band2)
    assert r["band_psnr"]["median"] == pytest.approx((band1 + band2) / 2)
    worst = r["band_psnr"]["worst"]
    assert [w["band"] for w in worst] == [2, 1]
    assert worst[0]["wavelength_nm"] == 600.0 and worst[0]["psnr"] == pytest.approx(band2)
    # 3 bytes over 2 x 2 x 2 samples = 3 bits per sample; uint16 source -> ratio 16/3.
    assert r["bytes"] == 3
    assert r["bpppb"] == pytest.approx(3.0)
    assert r["compression_ratio"] == pytest.approx(16 / 3)
    assert r["shape"] == [2, 2, 2] and r["valid_pixels"] == 4
    json.dumps(r)  # JSON-ready


def test_no_rate_without_file_bytes_and_exact_copy_is_finite() -> None:
    r = compare(Cube(ORIGINAL), Cube(ORIGINAL.copy()))
    assert "bpppb" not in r and "compression_ratio" not in r
    assert r["psnr_band_mean"] == PSNR_EXACT and r["psnr_global"] == PSNR_EXACT
    assert r["sam_deg"] == 0.0 and r["max_abs_error"] == 0.0
    assert "wavelength_nm" not in r["band_psnr"]["worst"][0]


def test_nodata_pixels_are_left_out() -> None:
    # A third column of nodata (0 in every band) that the decoder filled with garbage.
    orig = np.concatenate([ORIGINAL, np.zeros((2, 2, 1), np.uint16)], axis=2)
    dec = np.concatenate([DECODED, np.full((2, 2, 1), 999, np.uint16)], axis=2)
    with_nodata = compare(Cube(orig, nodata=0), Cube(dec))
    reference = compare(Cube(ORIGINAL), Cube(DECODED))
    for key in ("psnr_band_mean", "psnr_global", "sam_deg", "max_abs_error"):
        assert with_nodata[key] == pytest.approx(reference[key]), key
    assert with_nodata["valid_pixels"] == 4


def test_all_nodata_is_refused() -> None:
    zeros = np.zeros((2, 3, 3), np.uint16)
    with pytest.raises(UsageError, match="nodata"):
        compare(Cube(zeros, nodata=0), Cube(zeros))


@pytest.mark.parametrize(
    ("decoded", "match"),
    [
        (np.zeros((2, 2, 3), np.uint16), "different pixels"),
        (np.zeros((3, 2, 2), np.uint16), "different band counts"),
    ],
)
def test_mismatched_cubes_are_a_usage_error(decoded: np.ndarray, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        compare(Cube(ORIGINAL), Cube(decoded))


def test_different_wavelengths_are_a_usage_error() -> None:
    with pytest.raises(UsageError, match="different wavelengths"):
        compare(Cube(ORIGINAL, wavelengths=[500, 600]), Cube(DECODED, wavelengths=[500, 610]))


def test_float_cubes_compare_in_float64() -> None:
    a = ORIGINAL.astype(np.float32) / 7
    b = DECODED.astype(np.float32) / 7
    r = compare(Cube(a), Cube(b))
    assert r["psnr_band_mean"] == pytest.approx(compare(Cube(ORIGINAL), Cube(DECODED))[
        "psnr_band_mean"], abs=1e-4)


# -- the command --------------------------------------------------------------------------------


def _save_hwb(path: Path, bhw: np.ndarray) -> Path:
    np.save(path, np.ascontiguousarray(np.moveaxis(bhw, 0, -1)))
    return path


@pytest.fixture()
def pair(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(1)
    orig = rng.integers(100, 4000, size=(6, 9, 7)).astype(np.uint16)
    dec = np.clip(orig + rng.integers(-20, 21, size=orig.shape), 0, None).astype(np.uint16)
    return _save_hwb(tmp_path / "orig.npy", orig), _save_hwb(tmp_path / "dec.npy", dec)


def _run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, list(args))
    return res.exit_code, res.stdout, res.stderr


def test_eval_json_equals_compare(pair: tuple[Path, Path]) -> None:
    code, out, err = _run("eval", str(pair[0]), str(pair[1]), "--json", "-q")
    assert code == 0, err
    got = json.loads(out)
    a = Cube(np.moveaxis(np.load(pair[0]), -1, 0))
    b = Cube(np.moveaxis(np.load(pair[1]), -1, 0))
    want = compare(a, b)
    for key in ("psnr_band_mean", "psnr_global", "sam_deg", "max_abs_error"):
        assert got[key] == pytest.approx(want[key])
    assert "bpppb" not in got


def test_eval_human_output(pair: tuple[Path, Path]) -> None:
    code, out, _ = _run("eval", str(pair[0]), str(pair[1]), "-q")
    assert code == 0
    assert "psnr band mean" in out and "worst bands" in out and "dB" in out


def test_eval_refuses_mismatched_shapes(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    other = _save_hwb(tmp_path / "small.npy", np.zeros((6, 9, 6), np.uint16))
    code, _, err = _run("eval", str(pair[0]), str(other))
    assert code == 2 and "hsz: error: the cubes cover different pixels" in err


def test_eval_reader_options_apply_to_the_original(tmp_path: Path,
                                                   pair: tuple[Path, Path]) -> None:
    bhw = np.moveaxis(np.load(pair[0]), -1, 0)
    np.save(tmp_path / "orig_bhw.npy", bhw)
    code, out, err = _run("eval", str(tmp_path / "orig_bhw.npy"), str(pair[0]),
                          "--layout", "bhw", "--json", "-q")
    assert code == 0, err
    assert json.loads(out)["psnr_band_mean"] == PSNR_EXACT


def test_eval_of_a_hsz_file_decodes_it_and_reports_the_rate(
    tmp_path: Path, pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The .hsz path: decoding is the API's job (stubbed here), the rate is the file's size."""
    import hsz.api
    from hsz.codec.container import SIGNATURE

    decoded = Cube(np.moveaxis(np.load(pair[1]), -1, 0))
    seen: list[Path] = []

    def fake_decode(source: Path, **_kw: object) -> Cube:
        seen.append(Path(source))
        return decoded

    monkeypatch.setattr(hsz.api, "decode", fake_decode)
    fake = tmp_path / "renamed.bin"
    fake.write_bytes(SIGNATURE + bytes(92))  # 100 bytes
    assert is_hsz(fake) and not is_hsz(pair[0])
    code, out, err = _run("eval", str(pair[0]), str(fake), "--json", "-q")
    assert code == 0, err
    got = json.loads(out)
    assert seen == [fake]
    assert got["bytes"] == 100
    assert got["bpppb"] == pytest.approx(800 / (6 * 9 * 7))
    assert got["compression_ratio"] == pytest.approx(16 / got["bpppb"])


def test_eval_missing_file(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    code, _, err = _run("eval", str(pair[0]), str(tmp_path / "nope.hsz"))
    assert code == 1 and "no such file" in err
