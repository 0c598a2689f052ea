"""Quantization: error bound, shapes, dtypes, determinism, refusal of non-finite input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hsz.codec.quantize import quantize, quantize_fixed
from hsz.errors import HszError

finite32 = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32)
arrays = hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=3, max_side=6),
                    elements=finite32)


def _bound_ok(w: np.ndarray, qt) -> None:
    rec = qt.dequantize()
    assert rec.dtype == np.float32 and rec.shape == w.shape
    assert qt.q.dtype == np.uint16 and qt.q.shape == w.shape
    assert int(qt.q.max(initial=0)) <= (1 << qt.bits) - 1
    s = qt.scales.astype(np.float64)
    if qt.axis == 0:
        s = s.reshape((-1,) + (1,) * (w.ndim - 1))
    err = np.abs(rec.astype(np.float64) - w.astype(np.float64))
    slack = 1e-6 * np.abs(w.astype(np.float64)) + 1e-30
    assert np.all(err <= s / 2 * (1 + 1e-6) + slack)


@settings(max_examples=60, deadline=None)
@given(arrays, st.integers(2, 16), st.sampled_from([None, 0, "auto"]))
def test_error_at_most_half_step(w: np.ndarray, bits: int, axis) -> None:
    qt = quantize("t", w, bits, axis)
    _bound_ok(w, qt)
    assert qt.scales.dtype == np.float32 and qt.offsets.dtype == np.float32
    assert qt.scales.size == (w.shape[0] if qt.axis == 0 else 1)


def test_constant_tensor_is_exact() -> None:
    w = np.full((4, 5), -3.25, np.float32)
    qt = quantize("c", w, 8)
    assert np.array_equal(qt.dequantize(), w)
    assert float(qt.scales[0]) == 0.0


def test_constant_channels_per_channel_exact() -> None:
    w = np.repeat(np.arange(6, dtype=np.float32)[:, None] * 1.7, 9, axis=1)
    qt = quantize_fixed("c", w, 4, 0)
    assert np.array_equal(qt.dequantize(), w)


def test_tiny_range_does_not_collapse() -> None:
    tiny = np.float32(np.finfo(np.float32).smallest_subnormal)
    w = np.array([0, tiny, 2 * tiny], np.float32)
    qt = quantize("t", w, 16)
    assert np.array_equal(qt.dequantize(), w)


def test_extreme_range_no_overflow() -> None:
    w = np.array([-3e38, 0, 3e38], np.float32)
    qt = quantize("t", w, 8)
    assert np.all(np.isfinite(qt.dequantize()))
    _bound_ok(w, qt)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_refused(bad: float) -> None:
    w = np.array([1.0, bad, 2.0], np.float32)
    with pytest.raises(HszError, match="non-finite"):
        quantize("w", w, 8)


@pytest.mark.parametrize("bits", [1, 17, 0, 8.0])
def test_bad_bits_refused(bits) -> None:
    with pytest.raises(HszError):
        quantize("w", np.ones(3, np.float32), bits)


def test_deterministic_and_empty() -> None:
    w = np.random.default_rng(0).normal(size=(8, 30)).astype(np.float32)
    a, b = quantize("w", w, 6), quantize("w", w.copy(), 6)
    assert np.array_equal(a.q, b.q) and np.array_equal(a.dequantize(), b.dequantize())
    e = quantize("e", np.zeros((0, 3), np.float32), 8)
    assert e.dequantize().shape == (0, 3)


def test_auto_picks_per_channel_when_channel_scales_differ() -> None:
    rng = np.random.default_rng(1)
    # channels far apart with small spread: one shared range wastes almost every level
    w = (rng.normal(size=(32, 1)) * 10 + rng.normal(size=(32, 400)) * 0.01).astype(np.float32)
    assert quantize("w", w, 8).axis == 0
    # channels of very different scale but the same centre: the large ones dominate the
    # MSE either way, so the cheaper per-tensor layout wins at equal error
    w = (rng.normal(size=(32, 400)) * np.logspace(-4, 0, 32)[:, None]).astype(np.float32)
    assert quantize("w", w, 8).axis is None
    same = rng.normal(size=(32, 400)).astype(np.float32)
    assert quantize("w", same, 8).axis is None
