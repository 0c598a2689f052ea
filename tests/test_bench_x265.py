"""The x265 baseline of the benchmark: it works where the binaries are, and is skipped
cleanly (with a note, not an error) where they are not."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import baselines  # noqa: E402
import bench_rd  # noqa: E402

from hsz import metrics  # noqa: E402


def test_missing_binaries_skip_the_rows_with_a_note(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(baselines.X265, "available", staticmethod(lambda: False))
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    np.save(data / "tiny.npy", rng.integers(0, 999, (6, 9, 10)).astype(np.uint16))
    out = tmp_path / "out"
    logged: list[str] = []
    monkeypatch.setattr("builtins.print", lambda *a, **k: logged.append(" ".join(map(str, a))))
    assert bench_rd.main(["--codecs", "x265", "--scenes", "tiny", "--data", str(data),
                          "--out", str(out), "--targets", "0.5"]) == 0
    report = (out.parent / "RESULTS.md").read_text()
    assert "skipped: no x265 and ffmpeg binaries on PATH" in report
    assert any("x265: skipped" in line for line in logged)


@pytest.mark.skipif(not baselines.X265.available(), reason="x265/ffmpeg not installed")
@pytest.mark.parametrize("intra", [True, False])
def test_x265_round_trips_an_odd_sized_cube(intra: bool) -> None:
    rng = np.random.default_rng(1)
    smooth = np.cumsum(np.cumsum(rng.normal(size=(8, 15, 21)), axis=1), axis=2)
    cube = (smooth - smooth.min()).astype(np.uint16)
    codec = baselines.X265(intra)
    blob = codec.encode(cube, 45.0)
    back = codec.decode(blob)
    assert back.shape == cube.shape and back.dtype == cube.dtype
    assert metrics.quality(cube, back, None)["psnr_band_mean"] > 40.0
    assert len(codec.encode(cube, 10.0)) < len(blob)  # the level is a rate knob
