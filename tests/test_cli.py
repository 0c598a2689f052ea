"""The command line, driven through click's CliRunner as a user would drive it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hsz import io, metrics
from hsz.cli import cli
from hsz.cube import Cube
from hsz.spectral import parse_wavelengths


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory, tiny_cube: Cube) -> dict[str, Path]:
    """One short encode shared by the tests that only need some .hsz file."""
    root = tmp_path_factory.mktemp("enc")
    src = root / "tiny.tif"
    io.write(tiny_cube, src)
    out = root / "tiny.hsz"
    result = CliRunner().invoke(
        cli, ["encode", str(src), "-o", str(out), "--bpppb", "3.0", "--epochs", "30", "-q"]
    )
    assert result.exit_code == 0, result.output
    return {"src": src, "hsz": out, "root": root}


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, list(args))
    return res.exit_code, res.stdout, res.stderr


@pytest.mark.parametrize("cmd", [[], ["encode"], ["decode"], ["info"]])
def test_help_reads_well(cmd: list[str]) -> None:
    code, out, _ = run(*cmd, "--help")
    assert code == 0
    assert "Usage: " in out and len(out.splitlines()) > 5


def test_encode_help_states_the_presets_as_they_are() -> None:
    from hsz.model.fit import PRESETS

    _, out, _ = run("encode", "--help")
    text = " ".join(out.split())  # click wraps the help text
    for name in ("fast", "balanced", "max"):
        p = PRESETS[name]
        said = f"{name} = {p.epochs} epochs"
        said += f" and at least {p.min_steps} steps" if p.min_steps else ";"
        assert said in text, said
        assert f"a step fits {p.batch_cpu} bands on CPU" in text


def test_version() -> None:
    code, out, _ = run("--version")
    assert code == 0 and "hsz" in out


def test_encode_writes_a_file_that_states_its_rate(encoded: dict[str, Path]) -> None:
    code, out, _ = run("info", str(encoded["hsz"]), "--json")
    assert code == 0
    info = json.loads(out)
    size = encoded["hsz"].stat().st_size
    assert info["bytes"] == size
    assert info["bpppb"] == pytest.approx(metrics.bpppb(size, (40, 20, 20)))
    assert info["meta"]["shape"] == [40, 20, 20]
    assert 0.8 * 3.0 <= info["bpppb"] <= 3.0
    code, out, _ = run("info", str(encoded["hsz"]))
    assert code == 0 and "bpppb" in out and "wavelengths" in out


@pytest.mark.parametrize("suffix", [".tif", ".hdr", ".mat", ".npy"])
def test_decode_to_each_format(encoded: dict[str, Path], tiny_cube: Cube, suffix: str) -> None:
    out = encoded["root"] / f"back{suffix}"
    code, _, err = run("decode", str(encoded["hsz"]), "-o", str(out), "-q")
    assert code == 0, err
    back = io.read(out)
    assert back.shape == tiny_cube.shape
    assert back.dtype == tiny_cube.dtype
    assert metrics.psnr_band_mean(tiny_cube.data, back.data) > 20.0
    if suffix != ".npy":  # .npy carries samples only
        np.testing.assert_allclose(back.wavelengths, tiny_cube.wavelengths, rtol=1e-6)


def test_decode_at_new_wavelengths(encoded: dict[str, Path]) -> None:
    out = encoded["root"] / "resampled.tif"
    code, _, err = run(
        "decode", str(encoded["hsz"]), "-o", str(out), "--wavelengths", "450:950:5", "-q"
    )
    assert code == 0, err
    back = io.read(out)
    assert back.bands == 101
    np.testing.assert_allclose(back.wavelengths, parse_wavelengths("450:950:5"))


def test_out_of_range_wavelengths_are_a_usage_error(encoded: dict[str, Path]) -> None:
    out = encoded["root"] / "nope.tif"
    code, _, err = run("decode", str(encoded["hsz"]), "-o", str(out), "--wavelengths", "300:500:10")
    assert code == 2
    assert "outside the encoded range" in err and "Traceback" not in err
    assert not out.exists()


def test_existing_output_is_never_overwritten_silently(encoded: dict[str, Path]) -> None:
    target = encoded["root"] / "keep.tif"
    target.write_bytes(b"precious")
    code, _, err = run("decode", str(encoded["hsz"]), "-o", str(target), "-q")
    assert code == 1 and "--overwrite" in err
    assert target.read_bytes() == b"precious"
    code, _, err = run("decode", str(encoded["hsz"]), "-o", str(target), "-q", "--overwrite")
    assert code == 0, err
    assert target.read_bytes() != b"precious"


def test_missing_input_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "x.hsz"
    code, _, err = run("encode", str(tmp_path / "missing.tif"), "-o", str(out))
    assert code == 1
    assert err.strip().count("\n") == 0 and "missing.tif" in err and "Traceback" not in err
    assert not out.exists()


def test_damaged_file_is_refused_cleanly(encoded: dict[str, Path], tmp_path: Path) -> None:
    blob = bytearray(encoded["hsz"].read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    bad = tmp_path / "bad.hsz"
    bad.write_bytes(bytes(blob))
    out = tmp_path / "out.tif"
    code, _, err = run("decode", str(bad), "-o", str(out))
    assert code == 1 and "Traceback" not in err and err.startswith("hsz: error:")
    assert not out.exists()
    code, _, err = run("info", str(tmp_path / "nothing.hsz"))
    assert code == 1 and "no such file" in err


def test_text_file_is_not_a_cube(tmp_path: Path) -> None:
    fake = tmp_path / "notes.tif"
    fake.write_text("this is not an image\n")
    code, _, err = run("encode", str(fake), "-o", str(tmp_path / "n.hsz"), "--epochs", "1")
    assert code == 1 and "Traceback" not in err
    assert not (tmp_path / "n.hsz").exists()


def test_conflicting_rates_are_a_usage_error(encoded: dict[str, Path], tmp_path: Path) -> None:
    code, _, err = run(
        "encode", str(encoded["src"]), "-o", str(tmp_path / "a.hsz"),
        "--bpppb", "0.1", "--size", "1000",
    )
    assert code == 2 and "only one of" in err


def test_decode_is_deterministic(encoded: dict[str, Path]) -> None:
    outs = []
    for k in range(2):
        out = encoded["root"] / f"det{k}.npy"
        code, _, err = run("decode", str(encoded["hsz"]), "-o", str(out), "-q")
        assert code == 0, err
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_info_does_not_import_torch() -> None:
    """`hsz info` is a quick look: it must answer without loading the model code."""
    import subprocess
    import sys

    golden = Path(__file__).parents[1] / "format" / "v1.0" / "indian_pines_u16.hsz"
    code = (
        "import sys\n"
        "from hsz.cli import cli\n"
        f"try:\n    cli(['info', {str(golden)!r}, '--json'], standalone_mode=False)\n"
        "finally:\n    print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["format"] == "1.0"
    assert res.stderr.strip().endswith("NO-TORCH")


GOLDEN_DIR = Path(__file__).parents[1] / "format" / "v1.0"
GOLDEN = sorted(GOLDEN_DIR.glob("*.hsz"))


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda p: p.stem)
def test_info_reports_golden_files_intact(golden: Path) -> None:
    code, out, err = run("info", str(golden), "--json")
    assert code == 0, err
    assert json.loads(out)["integrity"] == {
        "intact": True, "checked": ["META", "TDIR", "TDAT", "RAWA"], "damaged": []
    }
    code, out, _ = run("info", str(golden))
    assert code == 0 and "intact (CRC-32 of all 4 sections verified)" in out


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda p: p.stem)
def test_info_finds_bit_flips_in_the_tensor_data(golden: Path, tmp_path: Path) -> None:
    """`info` reads little of TDAT's content, yet must see damage anywhere in it."""
    from hsz.codec.container import read_container

    blob = golden.read_bytes()
    tdat = read_container(blob).require("TDAT")
    rng = np.random.default_rng(1)
    positions = {tdat.offset, tdat.offset + tdat.length - 1}
    positions |= {int(p) for p in rng.integers(tdat.offset, tdat.offset + tdat.length, 40)}
    bad = tmp_path / "bad.hsz"
    for pos in sorted(positions):
        damaged = bytearray(blob)
        damaged[pos] ^= 1 << int(rng.integers(8))
        bad.write_bytes(bytes(damaged))
        code, out, err = run("info", str(bad), "--json")
        assert code == 1, f"flip at {pos} passed info"
        assert [d["section"] for d in json.loads(out)["integrity"]["damaged"]] == ["TDAT"]
        assert err.startswith("hsz: error:") and err.count("\n") == 1, err
        assert "'TDAT'" in err and "damaged" in err and "Traceback" not in err


def test_info_page_of_a_damaged_file_says_so(tmp_path: Path) -> None:
    from hsz.codec.container import read_container

    blob = bytearray(GOLDEN[0].read_bytes())
    c = read_container(bytes(blob))
    blob[c.require("TDAT").offset + 3] ^= 0x10
    bad = tmp_path / "bad.hsz"
    bad.write_bytes(bytes(blob))
    code, out, err = run("info", str(bad))
    assert code == 1
    assert "DAMAGED" in out and "bands x" in out  # what could be read is still shown
    assert "'TDAT'" in err and err.count("\n") == 1
    # With a section info needs damaged as well, nothing is shown and both are named.
    blob[c.require("RAWA").offset + 3] ^= 0x10
    bad.write_bytes(bytes(blob))
    code, out, err = run("info", str(bad))
    assert code == 1 and out == ""
    assert "'TDAT'" in err and "'RAWA'" in err and err.count("\n") == 1


def _info_page(path: Path, columns: int) -> list[str]:
    res = CliRunner().invoke(cli, ["info", str(path)], env={"COLUMNS": str(columns)})
    assert res.exit_code == 0, res.stderr
    return res.stdout.splitlines()


def _assert_names_whole(lines: list[str], names: list[str]) -> None:
    table = lines[lines.index("tensors"):]
    for name in names:
        rows = [line for line in table if line.split()[:1] == [name]]
        assert len(rows) == 1, f"{name!r} is not whole on one row:\n" + "\n".join(table)


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda p: p.stem)
def test_info_tensor_table_reads_at_80_columns(golden: Path) -> None:
    lines = _info_page(golden, 80)
    assert max(len(line.rstrip()) for line in lines) <= 80
    names = [t["name"] for t in json.loads(run("info", str(golden), "--json")[1])["tensors"]]
    _assert_names_whole(lines, names)
    rows = [line for line in lines if line.split()[:1] and line.split()[0] in names]
    assert rows and not any("…" in row for row in rows)  # no figure cut short at 80 either


def test_info_never_splits_long_tensor_names(tmp_path: Path) -> None:
    """Names longer than the golden files' still stay whole; other columns give way."""
    from hsz.codec import pack, unpack

    golden = unpack((GOLDEN[0]).read_bytes())
    names = [f"decoder.blocks.{k}.residual_branch.depthwise_conv.weight" for k in range(3)]
    tensors = {n: np.linspace(-1, 1, 24 * 8 * 3 * 3, dtype=np.float32).reshape(24, 8, 3, 3)
               for n in names}
    path = tmp_path / "long.hsz"
    path.write_bytes(pack(golden.meta, tensors, raw=golden.raw))
    for columns in (80, 60):
        _assert_names_whole(_info_page(path, columns), names)


def _with_meta(tmp_path: Path, **changes: object) -> Path:
    """The Indian Pines golden file with some metadata keys replaced (None deletes)."""
    from hsz.codec import pack_quantized, unpack

    golden = unpack((GOLDEN_DIR / "indian_pines_u16.hsz").read_bytes())
    meta = json.loads(json.dumps(golden.meta))
    for key, value in changes.items():
        if key == "model_bands":
            meta["model"]["config"]["bands"] = value
        else:
            meta[key] = value
    path = tmp_path / "odd.hsz"
    path.write_bytes(pack_quantized(meta, golden.quantized, golden.raw))
    return path


_IP = json.loads((GOLDEN_DIR / "indian_pines_u16.info.json").read_text())["meta"]


@pytest.mark.parametrize(("changes", "warning"), [
    ({"wavelengths": _IP["wavelengths"][:-1]}, "wavelengths has 23 entries for 24 bands"),
    ({"fwhm": _IP["fwhm"] + [9.0]}, "fwhm has 25 entries for 24 bands"),
    ({"band_names": ["a", "b"]}, "band_names has 2 entries for 24 bands"),
    ({"band_names": [f"b{k}" for k in range(23)] + [7]}, "band_names holds entries that are not"),
    ({"transform": [30.0, 0.0, 5e5, 0.0, -30.0]}, "not 6 numbers"),
    ({"transform": [30.0, 0.0, "x", 0.0, -30.0, 4e6]}, "not 6 numbers"),
    ({"value_range": [6059.0, 1967.0]}, "value_range is [6059.0, 1967.0], not a minimum"),
    ({"coords": {"rule": "wavelength", "range": [700.0, 994.88]}},
     "coords range 700..994.88 differs from 773.64..994.88 given by the wavelengths"),
    ({"wavelengths": None}, "coords places bands by wavelength but the file has no wavelengths"),
    ({"model_bands": 25}, "the model is configured for bands 25 but the cube has 24"),
])
def test_info_warns_when_header_parts_disagree(
    tmp_path: Path, changes: dict[str, object], warning: str
) -> None:
    path = _with_meta(tmp_path, **changes)
    code, out, err = run("info", str(path), "--json")
    assert code == 0, err
    warnings = json.loads(out)["warnings"]
    assert len(warnings) == 1 and warning in warnings[0], warnings
    code, out, err = run("info", str(path))
    assert code == 0, err  # the page is still drawn from what is there
    assert f"warning: {warnings[0]}" in " ".join(out.split())


def test_info_does_not_count_mismatched_wavelengths_as_bands(tmp_path: Path) -> None:
    path = _with_meta(tmp_path, wavelengths=_IP["wavelengths"][:-1])
    _, out, _ = run("info", str(path))
    assert "23 values for 24 bands" in out and "23 bands" not in out


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda p: p.stem)
def test_info_golden_headers_agree(golden: Path) -> None:
    code, out, _ = run("info", str(golden), "--json")
    assert code == 0 and json.loads(out)["warnings"] == []


def test_cuda_on_a_machine_without_it_is_a_usage_error(
    encoded: dict[str, Path], tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out_hsz, out_tif = tmp_path / "x.hsz", tmp_path / "x.tif"
    for args in (
        ["encode", str(encoded["src"]), "-o", str(out_hsz), "--epochs", "1", "--device", "cuda"],
        ["decode", str(GOLDEN[0]), "-o", str(out_tif), "--device", "cuda"],
        ["eval", str(encoded["src"]), str(GOLDEN[0]), "--device", "cuda"],
    ):
        code, _, err = run(*args)
        assert code == 2, (args, err)
        assert err.startswith("hsz: error: --device cuda:") and err.count("\n") == 1, err
        assert "internal error" not in err and "Traceback" not in err
    assert not out_hsz.exists() and not out_tif.exists()


def test_decode_on_the_auto_device(tmp_path: Path) -> None:
    out = tmp_path / "x.npy"
    code, _, err = run("decode", str(GOLDEN[0]), "-o", str(out), "--device", "auto", "-q")
    assert code == 0, err
    assert out.exists()


def test_quiet_and_verbose_do_not_leak_between_invocations(tmp_path: Path) -> None:
    """Invocations in one process: each has its own -q/-v, at group or command level."""
    missing = str(tmp_path / "missing.hsz")
    for verbose in (["-v", "info", missing], ["info", missing, "-v"]):
        code, _, err = run(*verbose)
        assert code == 1 and "Traceback" in err  # -v adds the traceback ...
        code, _, err = run("info", missing)
        assert code == 1 and "Traceback" not in err  # ... to that run only
        assert err.startswith("hsz: error:") and err.count("\n") == 1
    out = tmp_path / "x.npy"
    for quiet in (["-q", "decode", str(GOLDEN[0]), "-o", str(out)],
                  ["decode", str(GOLDEN[0]), "-o", str(out), "-q"]):
        code, _, err = run(*quiet, "--overwrite")
        assert code == 0 and err == ""
        code, _, err = run("decode", str(GOLDEN[0]), "-o", str(out), "--overwrite")
        assert code == 0 and "decoded" in err  # the summary is back
