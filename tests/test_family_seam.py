"""The model-family seam: a family defined here, outside hsz, runs the whole codec.

The toy family (tests/toy_family.py) is registered at run time; encode, landing, decode,
``info`` and damage handling go through the public API and the CLI without any hsz module
knowing it exists.  Its grid is context-coded, so these files are format 1.1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from toy_family import TOY

from hsz import api, codec, io
from hsz.cli import cli
from hsz.cube import Cube
from hsz.errors import FormatError, HszError
from hsz.model import get_family, model_ids, register, unregister


@pytest.fixture()
def toy():
    register(TOY, replace=True)
    yield TOY
    unregister(TOY.id)


@pytest.fixture(scope="module")
def real_crop() -> Cube:
    data = np.load(Path(__file__).parent / "data" / "ip_tiny.npy")
    table = np.loadtxt(Path(__file__).parent / "data" / "ip_tiny_wavelengths.csv",
                       delimiter=",", skiprows=1)
    return Cube(np.ascontiguousarray(np.moveaxis(data, -1, 0)), wavelengths=table[:, 0])


def test_registration_is_explicit_and_reversible(toy) -> None:
    assert toy.id in model_ids() and get_family(toy.id) is toy
    with pytest.raises(ValueError, match="already registered"):
        register(toy)
    unregister(toy.id)
    with pytest.raises(ValueError, match="unknown model 'toy-linear'"):
        get_family(toy.id)
    register(toy)


def test_a_foreign_family_encodes_lands_and_decodes(toy, real_crop: Cube) -> None:
    result = api.encode(real_crop, bpppb=1.0, model=toy.id)
    budget = api.target_bytes(real_crop.shape, bpppb=1.0)
    assert 0.5 * budget <= result.size <= budget
    assert result.meta["model"]["id"] == toy.id
    decoded = api.decode(result.data)
    assert decoded.data.dtype == real_crop.data.dtype
    assert np.array_equal(decoded.wavelengths, real_crop.wavelengths)
    # Four principal components of a 40-band AVIRIS crop: an honest, measured floor.
    assert result.quality["psnr_band_mean"] > 25.0
    info = codec.describe(result.data)
    assert info["format"] == "1.5"  # grids under context rule 1
    assert [g["name"] for g in info["grids"]] == ["scores"]


def test_unknown_model_and_preset_are_usage_errors(toy, real_crop: Cube) -> None:
    from hsz.errors import UsageError

    with pytest.raises(UsageError, match="known models: .*hiner"):
        api.encode(real_crop, bpppb=1.0, model="nope")
    with pytest.raises(UsageError, match="its presets: only"):
        api.encode(real_crop, bpppb=1.0, model=toy.id, preset="fast")


def test_the_cli_reaches_a_foreign_family(toy, real_crop: Cube, tmp_path: Path) -> None:
    src = tmp_path / "crop.npy"
    np.save(src, np.moveaxis(real_crop.data, 0, -1))
    out = tmp_path / "crop.hsz"
    runner = CliRunner()
    r = runner.invoke(cli, ["encode", str(src), "-o", str(out), "--model", toy.id,
                            "--bpppb", "1.0", "-q"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["info", str(out), "--json"])
    assert r.exit_code == 0, r.output
    shown = json.loads(r.stdout)
    assert shown["meta"]["model"]["id"] == toy.id and shown["format"] == "1.5"
    back = tmp_path / "back.npy"
    r = runner.invoke(cli, ["decode", str(out), "-o", str(back), "-q"])
    assert r.exit_code == 0, r.output
    assert io.read(back).shape == real_crop.shape
    r = runner.invoke(cli, ["encode", str(src), "-o", str(tmp_path / "x.hsz"), "--model",
                            "nope", "-q"])
    assert r.exit_code == 2 and "unknown model 'nope'" in r.stderr and "--model" in r.stderr


def test_damaged_grids_are_refused_never_misread(toy, real_crop: Cube) -> None:
    """Flips anywhere in the file, CRCs recomputed: a one-line error or a correct decode."""
    from hsz.codec.container import read_container, write_container

    data = api.encode(real_crop, bpppb=1.0, model=toy.id).data
    c = read_container(data)
    lats = c.require("LATS")
    assert lats.data is not None
    rng = np.random.default_rng(7)
    refused = 0
    for _ in range(40):
        payload = bytearray(lats.data)
        pos = int(rng.integers(0, len(payload)))
        payload[pos] ^= 1 << int(rng.integers(0, 8))
        sections = [(s.type, s.flags, bytes(payload) if s.type == "LATS" else s.data)
                    for s in c.sections]
        crafted = write_container(sections, minor=1)  # valid CRCs: as hostile as damage gets
        try:
            api.decode(crafted)
        except FormatError as exc:
            assert "\n" not in str(exc)
            refused += 1
    assert refused >= 30  # most flips break the stream; none may escape as another error


def test_old_readers_refuse_lats_by_version(toy, real_crop: Cube) -> None:
    """LATS is a critical section: a 1.0 reader stops with 'upgrade hsz', it cannot misread."""
    from hsz.codec import container

    data = api.encode(real_crop, bpppb=1.0, model=toy.id).data
    old = container.KNOWN_SECTIONS
    try:
        container.KNOWN_SECTIONS = frozenset(old - {"LATS"})
        with pytest.raises(HszError, match="upgrade hsz"):
            api.decode(data)
    finally:
        container.KNOWN_SECTIONS = old


def test_decoding_is_identical_under_any_thread_count(toy, real_crop: Cube,
                                                      tmp_path: Path) -> None:
    data = api.encode(real_crop, bpppb=1.0, model=toy.id).data
    path = tmp_path / "t.hsz"
    path.write_bytes(data)
    code = (
        "import sys, hashlib; sys.path.insert(0, sys.argv[2]);"
        "from toy_family import TOY; from hsz.model import register; register(TOY);"
        "from hsz import api; from hsz.codec import unpack;"
        "u = unpack(open(sys.argv[1], 'rb').read());"
        "print(hashlib.sha256(u.grids['scores'].tobytes()).hexdigest(),"
        " hashlib.sha256(api.decode(sys.argv[1]).data.tobytes()).hexdigest())"
    )
    outs = set()
    for threads in ("1", "2"):
        env = {"OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
               "MKL_NUM_THREADS": threads, "PATH": "/usr/bin:/bin"}
        r = subprocess.run([sys.executable, "-c", code, str(path), str(Path(__file__).parent)],
                           capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        outs.add(r.stdout)
    assert len(outs) == 1
