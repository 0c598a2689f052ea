"""Rendering: stored bands exactly at band coordinates, linear embeddings in between."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hsz.model.arch import HinerConfig
from hsz.model.hiner import Hiner, decoder_state
from hsz.model.render import interpolate_embeddings, render, render_all

CFG = HinerConfig(
    bands=5, height=20, width=18, fc_h=1, fc_w=1, fc_dim=10, dec_strides=(5, 2, 2),
    lower_width=6, mlp_hidden=16, pe_levels=8, embed_channels=4,
)
# Non-monotonic, with a duplicate: as real sensors do at detector joins.
COORDS = np.array([0.0, 0.5, 0.45, 0.5, 1.0])


def _model() -> tuple[dict[str, np.ndarray], np.ndarray, Hiner]:
    torch.manual_seed(0)
    m = Hiner(CFG).eval()
    with torch.no_grad():
        emb = m.embed(torch.tensor(COORDS, dtype=torch.float32)).numpy()
    return decoder_state(m), emb, m


def test_interpolation_is_exact_at_band_coords_and_linear_between() -> None:
    emb = np.random.default_rng(0).normal(size=(5, 4, 1, 1)).astype(np.float32)
    got = interpolate_embeddings(emb, COORDS, COORDS)
    # Exact matches: the first band (file order) with that coordinate.
    assert np.array_equal(got[[0, 2, 4]], emb[[0, 2, 4]])
    assert np.array_equal(got[1], emb[1]) and np.array_equal(got[3], emb[1])
    mid = interpolate_embeddings(emb, COORDS, [0.225, 0.475, 0.75])
    np.testing.assert_allclose(mid[0], 0.5 * emb[0] + 0.5 * emb[2], rtol=1e-6)
    # Between 0.45 (band 2) and the 0.5 pair: the nearest band of the pair in sorted order.
    np.testing.assert_allclose(mid[1], 0.5 * emb[2] + 0.5 * emb[1], rtol=1e-6)
    np.testing.assert_allclose(mid[2], 0.5 * emb[3] + 0.5 * emb[4], rtol=1e-6)
    ends = interpolate_embeddings(emb, COORDS, [-0.2, 1.3])
    assert np.array_equal(ends, emb[[0, 4]])


def test_render_reproduces_the_model_at_band_coords() -> None:
    tensors, emb, m = _model()
    out = render_all(CFG, tensors, emb, COORDS, COORDS)
    assert out.shape == (5, 20, 18) and out.dtype == np.float32
    with torch.no_grad():
        want = m.decode(torch.from_numpy(emb)).numpy()
    np.testing.assert_allclose(out[[0, 1, 2, 4]], want[[0, 1, 2, 4]], atol=1e-6, rtol=0)
    assert 0.0 <= out.min() and out.max() <= 1.0
    # Deterministic, and independent of how queries are batched.
    again = render_all(CFG, tensors, emb, COORDS, COORDS, batch=2)
    np.testing.assert_allclose(out, again, atol=1e-6, rtol=0)
    assert np.array_equal(out, render_all(CFG, tensors, emb, COORDS, COORDS))


def test_render_is_a_bounded_iterator() -> None:
    tensors, emb, _ = _model()
    q = np.linspace(0, 1, 11)
    it = render(CFG, tensors, emb, COORDS, q, batch=3)
    first = next(it)
    assert first.shape == (20, 18)
    rest = list(it)
    assert len(rest) == 10


def test_render_rejects_wrong_embeddings() -> None:
    tensors, emb, _ = _model()
    with pytest.raises(ValueError):
        render_all(CFG, tensors, emb[:4], COORDS[:4], COORDS)
    with pytest.raises(ValueError):
        interpolate_embeddings(emb, COORDS[:4], COORDS)
