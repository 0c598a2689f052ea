"""Entropy coding: exact round trips for every method, estimates, fixed-point model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hsz.codec import entropy
from hsz.codec.binio import Cursor
from hsz.errors import FormatError


def _roundtrip(q: np.ndarray, bits: int) -> int:
    method, data = entropy.encode_values(q, bits)
    out = entropy.decode_values(method, Cursor(data, 0, "t"), q.size, bits)
    assert np.array_equal(out, q.reshape(-1).astype(np.int64))
    assert len(data) <= -(-q.size * bits // 8) + 2  # never worse than raw (+ CONST u16)
    return method


@settings(max_examples=80, deadline=None)
@given(st.integers(2, 16).flatmap(lambda b: st.tuples(
    st.just(b), hnp.arrays(np.uint16, st.integers(0, 400), elements=st.integers(0, 2**b - 1)))))
def test_roundtrip_any_levels(case) -> None:
    bits, q = case
    _roundtrip(q, bits)


@pytest.mark.parametrize("kind", ["normal", "laplace", "skewed", "uniform", "spiky"])
@pytest.mark.parametrize("bits", [3, 8, 12])
def test_roundtrip_and_estimate(kind: str, bits: int) -> None:
    rng = np.random.default_rng(bits)
    top = (1 << bits) - 1
    x = {"normal": rng.normal(0.5, 0.12, 5000), "laplace": rng.laplace(0.5, 0.05, 5000),
         "skewed": rng.gamma(2.0, 0.08, 5000), "uniform": rng.uniform(0, 1, 5000),
         "spiky": np.where(rng.random(5000) < 0.9, 0.5, rng.random(5000))}[kind]
    q = np.clip(np.rint(x * top), 0, top).astype(np.uint16)
    _roundtrip(q, bits)
    method, data = entropy.encode_values(q, bits)
    assert abs(entropy.estimate_bits(q, bits) - 8 * len(data)) <= 64 + 0.002 * 8 * len(data)


def test_methods_chosen_sensibly() -> None:
    rng = np.random.default_rng(0)
    assert _roundtrip(np.full(100, 7, np.uint16), 8) == entropy.CONST
    assert _roundtrip(np.array([1, 200, 3], np.uint16), 8) == entropy.RAW
    g = np.clip(np.rint(rng.normal(128, 20, 20000)), 0, 255).astype(np.uint16)
    assert _roundtrip(g, 8) in (entropy.GAUSSIAN, entropy.GEOMETRIC, entropy.CATEGORICAL)
    method, data = entropy.encode_values(g, 8)
    assert 8 * len(data) / g.size < 6.5  # well under 8 bits/value


def test_quantized_cdf_matches_constriction_via_decode() -> None:
    """Python ANS decode with our CDF reproduces constriction's output (proves the spec)."""
    rng = np.random.default_rng(3)
    probs = rng.random(37) ** 3
    q = rng.choice(37, 3000, p=probs / probs.sum()).astype(np.int32)
    words = np.frombuffer(entropy._ans_encode(q, probs), "<u4").tolist()
    c = entropy.quantized_cdf(probs).tolist()
    import bisect

    state = 0
    if words:
        state = words.pop()
        while words and state < 2**32:
            state = (state << 32) | words.pop()
    out = []
    for _ in range(q.size):
        z = state & (2**24 - 1)
        s = bisect.bisect_right(c, z) - 1
        state = (state >> 24) * (c[s + 1] - c[s]) + z - c[s]
        if state < 2**32 and words:
            state = (state << 32) | words.pop()
        out.append(s)
    assert out == q.tolist() and state == 0 and not words


def test_parametric_probs_have_no_subnormals() -> None:
    for kind in (entropy.GEOMETRIC, entropy.GAUSSIAN):
        p = entropy.parametric_probs(kind, 500, 100, 0.3, 0.97)
        nz = p[p > 0]
        assert nz.min() >= entropy.FLUSH and p[100] == 1.0


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x05\x00\x02\x00" + b"\x00" * 4,
                                  b"\x00\x00\x01\x00\x08" + b"\xff" * 3 + b"\x00\x00\x00\x00"])
def test_damaged_streams_raise_format_error(data: bytes) -> None:
    for method in range(7):
        try:
            entropy.decode_values(method, Cursor(data, 100, "t"), 50, 8)
        except FormatError:
            pass


def test_codec_modules_import_one_another_without_a_circle() -> None:
    """A circle (entropy <-> quantize) once forced function-local imports; keep it gone."""
    import ast
    import graphlib
    from pathlib import Path

    import hsz.codec

    root = Path(hsz.codec.__file__).parent
    modules = {p.stem for p in root.glob("*.py")} - {"__init__"}
    graph: dict[str, set[str]] = {}
    for name in modules:
        deps: set[str] = set()
        for node in ast.walk(ast.parse((root / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "hsz.codec":
                deps |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom) and node.module:
                deps |= {node.module.removeprefix("hsz.codec.")} & modules
            elif isinstance(node, ast.Import):
                deps |= {a.name.removeprefix("hsz.codec.") for a in node.names} & modules
        graph[name] = deps
    assert graph["quantize"] == {"entropy"}  # the walk does see imports
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError on a circle


def test_remembered_codings_are_the_codings_of_exactly_those_levels() -> None:
    """Landing packs the same tensors many times; the memo must give each input its own
    coding: a repeat is the same bytes, a one-level change or another depth is coded anew."""
    rng = np.random.default_rng(5)
    q = rng.integers(0, 200, 500)
    first = entropy.encode_values(q, 8, rows=50)
    assert entropy.encode_values(q.copy(), 8, rows=50) == first
    moved = q.copy()
    moved[123] += 1
    for args in ((moved, 8, 50), (q, 9, 50), (q, 8, None)):
        method, data = entropy.encode_values(*args)
        out = entropy.decode_values(method, Cursor(data, 0, "t"), q.size, args[1], args[2])
        assert np.array_equal(out, np.asarray(args[0], np.int64))
