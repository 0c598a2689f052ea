"""Container and file-level API: round trips, versioning, sections, describe."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from hsz.codec import describe, estimate_size, meta_json, pack, unpack
from hsz.codec.container import (
    FLAG_CRITICAL,
    SIGNATURE,
    check_integrity,
    read_container,
    read_container_header,
    write_container,
)
from hsz.codec.pack import dequantized
from hsz.errors import FormatError, HszError


def _tensors(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"dec.0.weight": rng.normal(0, 0.05, (16, 8, 3, 3)).astype(np.float32),
            "dec.0.bias": rng.normal(0, 0.01, 16).astype(np.float32),
            "emb": rng.laplace(0, 0.1, (30, 12)).astype(np.float32),
            "scalar": np.array(0.25, np.float32)}


META = {"shape": [64, 64, 30], "dtype": "uint16", "wavelengths": [400.5, 410.25], "ü": None}
RAW = {"band_min": np.linspace(0, 1, 30), "band_max": np.linspace(1, 2, 30).astype(np.float32),
       "ids": np.arange(5, dtype=np.int16)}


def test_pack_unpack_roundtrip() -> None:
    t = _tensors()
    buf = pack(META, t, bits={"dec.0.weight": 6, "dec.0.bias": 8, "emb": 8, "scalar": 8}, raw=RAW)
    u = unpack(buf)
    assert u.meta == META and u.version == (1, 2)  # 1.2: the wavelengths are a band curve
    assert list(u.tensors) == list(t)
    expect = dequantized(t, {"dec.0.weight": 6, "dec.0.bias": 8, "emb": 8, "scalar": 8})
    for k in t:
        assert u.tensors[k].dtype == np.float32 and u.tensors[k].shape == t[k].shape
        assert np.array_equal(u.tensors[k], expect[k])
    for k, v in RAW.items():
        assert u.raw[k].dtype == v.dtype and np.array_equal(u.raw[k], v)
    assert [s[0] for s in u.sections] == ["META", "BNDS", "TDIR", "TDAT", "RAWA"]
    assert pack(META, t, bits=8, raw=RAW) == pack(META, _tensors(), bits=8, raw=RAW)


def test_no_raw_and_no_tensors() -> None:
    u = unpack(pack({}, {}))
    assert u.meta == {} and u.tensors == {} and u.raw == {}
    assert [s[0] for s in u.sections] == ["META", "TDIR", "TDAT"]


def test_estimate_size_is_exact() -> None:
    t = _tensors(1)
    plain = {k: v for k, v in META.items() if k != "wavelengths"}  # no band curves
    buf = pack(plain, t, bits=7, raw=RAW)
    assert estimate_size(t, 7, len(meta_json(plain)), RAW) == len(buf)


def test_a_file_without_band_curves_stays_format_1_0() -> None:
    plain = {k: v for k, v in META.items() if k != "wavelengths"}
    u = unpack(pack(plain, {"w": np.zeros((3, 4), np.float32)}, raw=RAW))
    assert u.version == (1, 0) and u.meta == plain


def test_describe_from_path_and_bytes(tmp_path) -> None:
    buf = pack(META, _tensors(), raw=RAW)
    p = tmp_path / "x.hsz"
    p.write_bytes(buf)
    d = describe(p)
    assert d == describe(buf)
    assert d["format"] == "1.2" and d["total_bytes"] == len(buf) and d["meta"] == META
    assert [t["name"] for t in d["tensors"]] == list(_tensors())
    assert d["header_bytes"] == 32 + 28 * 5


def test_header_reader_skips_tensor_data(tmp_path) -> None:
    buf = bytearray(pack(META, _tensors()))
    c = read_container(bytes(buf))
    tdat = c.require("TDAT")
    buf[tdat.offset + 3] ^= 0xFF  # damage only the coded data
    p = tmp_path / "d.hsz"
    p.write_bytes(bytes(buf))
    assert describe(p)["meta"] == META  # info still works: TDAT is never read
    h = read_container_header(p)
    assert h.require("META").data is not None and h.require("TDAT").data is None
    with pytest.raises(FormatError, match="TDAT"):
        unpack(bytes(buf))


def test_integrity_names_each_damaged_section(tmp_path) -> None:
    buf = pack(META, _tensors(), raw=RAW)
    p = tmp_path / "x.hsz"
    p.write_bytes(buf)
    checked = ["META", "BNDS", "TDIR", "TDAT", "RAWA"]
    assert check_integrity(p) == {"intact": True, "checked": checked, "damaged": []}
    sections = read_container(buf).sections
    for s in sections:
        for at in (s.offset, s.offset + s.length - 1):
            bad = bytearray(buf)
            bad[at] ^= 0x01
            p.write_bytes(bytes(bad))
            report = check_integrity(p)
            assert not report["intact"]
            assert [(d["section"], d["offset"], d["length"]) for d in report["damaged"]] == [
                (s.type, s.offset, s.length)]
    bad = bytearray(buf)
    for s in sections:
        bad[s.offset + s.length // 2] ^= 0x80
    p.write_bytes(bytes(bad))
    assert [d["section"] for d in check_integrity(p)["damaged"]] == [s.type for s in sections]
    bad = bytearray(buf)
    bad[40] ^= 0x01  # the table: nothing can be checked without it
    p.write_bytes(bytes(bad))
    with pytest.raises(FormatError, match="table CRC"):
        check_integrity(p)


def test_signature_bytes() -> None:
    assert SIGNATURE == b"\x89HSZ\r\n\x1a\n" and pack({}, {})[:8] == SIGNATURE


@pytest.mark.parametrize("mangle, message", [
    (lambda b: b[:4] + b[5:], "CR LF became LF"),
    (lambda b: b[:5] + b"\r" + b[5:], "LF became CR LF"),
    (lambda b: b"\x09" + b[1:], "high bit"),
    (lambda b: b"PK\x03\x04" + b[4:], "not an .hsz file"),
])
def test_transfer_damage_is_named(mangle, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        unpack(mangle(pack({}, {})))


def test_newer_major_refused_newer_minor_read() -> None:
    sections = [("META", FLAG_CRITICAL, b"\0{}"), ("TDIR", FLAG_CRITICAL, b"\0\0\0\0"),
                ("TDAT", FLAG_CRITICAL, b"")]
    with pytest.raises(FormatError, match=r"newer hsz \(format 2\.0\); upgrade hsz"):
        unpack(write_container(sections, major=2))
    u = unpack(write_container(sections + [("NEWS", 0, b"later")], minor=9))
    assert u.version == (1, 9) and u.skipped == ["NEWS"]
    with pytest.raises(FormatError, match="'NEWS'.*critical.*upgrade hsz"):
        unpack(write_container(sections + [("NEWS", FLAG_CRITICAL, b"")], minor=7))


def test_missing_and_duplicate_sections() -> None:
    meta = ("META", FLAG_CRITICAL, b"\0{}")
    tdir = ("TDIR", FLAG_CRITICAL, b"\0\0\0\0")
    with pytest.raises(FormatError, match="'TDAT' is missing"):
        unpack(write_container([meta, tdir]))
    with pytest.raises(FormatError, match="twice"):
        unpack(write_container([meta, meta, tdir, ("TDAT", FLAG_CRITICAL, b"")]))


@pytest.mark.parametrize("meta", [b"[1,2]", b"{\"a\":NaN}", b"\xff\xfe", b"[" * 100000])
def test_bad_metadata(meta: bytes) -> None:
    buf = write_container([("META", FLAG_CRITICAL, b"\0" + meta),
                           ("TDIR", FLAG_CRITICAL, b"\0" * 4),
                           ("TDAT", FLAG_CRITICAL, b"")])
    with pytest.raises(FormatError, match="metadata"):
        unpack(buf)


def test_unstorable_inputs_refused() -> None:
    with pytest.raises(HszError):
        pack({"x": float("nan")}, {})
    with pytest.raises(HszError):
        pack({}, {}, raw={"c": np.array([1 + 2j])})
    with pytest.raises(HszError):
        pack({}, {"w": np.array([np.nan], np.float32)})


def test_table_entry_layout() -> None:
    buf = pack({}, {})
    major, minor, flags, length, count = struct.unpack("<HHIQI", buf[8:28])
    assert (major, minor, flags, length, count) == (1, 0, 0, len(buf), 3)
    kind, fl, off, ln, _ = struct.unpack("<4sIQQI", buf[28:56])
    assert (kind, fl, off, ln) == (b"META", 1, 32 + 28 * 3, 3)


def test_codec_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, hsz.codec; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_long_metadata_is_deflated_and_round_trips() -> None:
    meta = {"shape": [200, 145, 145], "wavelengths": [400.0 + 9.81 * k for k in range(200)]}
    payload = meta_json(meta)
    assert payload[0] == 1 and len(payload) < len(json.dumps(meta)) / 2
    assert unpack(pack(meta, {})).meta == meta


@pytest.mark.parametrize("payload", [b"\x01not zlib", b"\x07{}", b"", b"\x01" + b"x\x9c"])
def test_bad_metadata_encoding(payload: bytes) -> None:
    buf = write_container([("META", FLAG_CRITICAL, payload),
                           ("TDIR", FLAG_CRITICAL, b"\0" * 4), ("TDAT", FLAG_CRITICAL, b"")])
    with pytest.raises(FormatError, match="metadata"):
        unpack(buf)


def test_damaged_band_curves_are_refused_or_read_whole() -> None:
    """Bit flips in BNDS with valid CRCs: a one-line FormatError or a complete file."""
    rng = np.random.default_rng(3)
    meta = {"wavelengths": [float(x) for x in np.round(np.linspace(400, 1000, 60), 2)],
            "fwhm": [float(x) for x in rng.normal(10, 1, 60)]}
    raw = {"band_low": np.round(rng.random(60), 3).astype(np.float32),
           "band_high": rng.integers(0, 4000, 60).astype(np.uint16)}
    c = read_container(pack(meta, {"w": np.zeros((4, 4), np.float32)}, raw=raw))
    bnds = c.require("BNDS")
    assert bnds.data is not None
    refused = 0
    for _ in range(200):
        payload = bytearray(bnds.data)
        pos = int(rng.integers(0, len(payload)))
        payload[pos] ^= 1 << int(rng.integers(0, 8))
        crafted = write_container([(s.type, s.flags, bytes(payload) if s.type == "BNDS"
                                    else s.data) for s in c.sections], minor=2)
        try:
            u = unpack(crafted)
        except FormatError as exc:
            assert "\n" not in str(exc)
            refused += 1
            continue
        assert set(u.meta) == set(meta) and set(u.raw) == set(raw)
        assert all(len(u.meta[k]) == 60 for k in meta)
    assert refused >= 20  # many flips land in stored float64s and only change a value


def test_difference_coding_round_trips_every_level() -> None:
    """Methods 5-7 recover any levels, wrap-around included."""
    from hsz.codec import entropy
    from hsz.codec.binio import Cursor

    rng = np.random.default_rng(4)
    for bits in (7, 10, 16):
        smooth = np.cumsum(rng.integers(-2, 2, (50, 6)), axis=0) + 1  # crosses 0: wraps
        q = np.mod(smooth, 1 << bits)
        assert q.max() > (1 << (bits - 1)) > q.min()
        method, data = entropy.encode_values(q, bits, rows=50)
        assert method >= entropy.DELTA_CATEGORICAL
        back = entropy.decode_values(method, Cursor(data, 0, "t"), q.size, bits, rows=50)
        assert np.array_equal(back, q.reshape(-1))
        with pytest.raises(FormatError):
            entropy.decode_values(method, Cursor(data, 0, "t"), q.size, bits, rows=None)
