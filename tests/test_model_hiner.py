"""The HINER network: shapes, PE, decoder export/rebuild, and the model registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hsz.model import get_family, model_ids
from hsz.model.arch import HinerConfig, param_counts
from hsz.model.hiner import Hiner, build_decoder, decoder_state


def _cfg(**kw: object) -> HinerConfig:
    base: dict[str, object] = dict(
        bands=6, height=37, width=53, fc_h=2, fc_w=3, fc_dim=14, dec_strides=(5, 2, 2),
        mlp_hidden=32, pe_levels=8,
    )
    base.update(kw)
    return HinerConfig(**base)  # type: ignore[arg-type]


def _model(cfg: HinerConfig, seed: int = 0) -> Hiner:
    torch.manual_seed(seed)
    return Hiner(cfg).eval()


def test_shapes_range_and_param_counts() -> None:
    cfg = _cfg()
    m = _model(cfg)
    coords = torch.linspace(0, 1, 4)
    with torch.no_grad():
        emb = m.embed(coords)
    assert emb.shape == (4, *cfg.embed_shape)
    with torch.no_grad():
        out = m.decode(emb)
    assert out.shape == (4, 37, 53)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    counts = param_counts(cfg)
    assert sum(p.numel() for p in m.decoder.parameters()) == counts["decoder"]
    assert sum(p.numel() for p in m.mlp.parameters()) == counts["mlp"]


def test_positional_encoding_matches_the_paper_formula() -> None:
    cfg = _cfg(pe_levels=5, pe_base=1.25)
    m = _model(cfg)
    x = 0.3
    got = m.pe(torch.tensor([x])).double().numpy()[0]
    want = []
    for k in range(5):
        want += [math.sin(1.25**k * math.pi * x), math.cos(1.25**k * math.pi * x)]
    np.testing.assert_allclose(got, want, atol=1e-6)
    no_pe = _model(_cfg(use_pe=False))
    assert no_pe.pe(torch.tensor([0.25, 0.5])).shape == (2, 1)


def test_json_rebuild_gives_identical_network_and_output() -> None:
    cfg = _cfg()
    m = _model(cfg, seed=3)
    cfg2 = HinerConfig.from_json(cfg.to_json())
    tensors = decoder_state(m)
    assert all(a.dtype == np.float32 for a in tensors.values())
    assert list(tensors) == list(m.decoder.state_dict())
    dec = build_decoder(cfg2, tensors)
    assert sum(p.numel() for p in dec.parameters()) == param_counts(cfg)["decoder"]
    with torch.no_grad():
        emb = m.embed(torch.tensor([0.0, 0.4, 1.0]))
        a = m.decode(emb)
        b = dec(emb)
    assert torch.equal(a, b)


def test_decoder_state_is_only_what_decoding_needs() -> None:
    cfg = _cfg()
    names = list(decoder_state(_model(cfg)))
    assert not any(n.startswith(("mlp", "pe")) for n in names)
    assert names[0] == "stem.weight" and names[-1] == "head.bias"


def test_build_decoder_rejects_mismatched_tensors() -> None:
    cfg = _cfg()
    tensors = decoder_state(_model(cfg))
    bad = dict(tensors)
    bad["head.bias"] = np.zeros(2, np.float32)
    with pytest.raises(ValueError, match="shape"):
        build_decoder(cfg, bad)
    missing = dict(tensors)
    del missing["stem.bias"]
    with pytest.raises(ValueError, match="missing"):
        build_decoder(cfg, missing)
    extra = dict(tensors, junk=np.zeros(1, np.float32))
    with pytest.raises(ValueError, match="unexpected"):
        build_decoder(cfg, extra)
    wider = HinerConfig.from_json({**cfg.to_json(), "fc_dim": 15})
    with pytest.raises(ValueError):
        build_decoder(wider, tensors)


def test_registry_by_stable_id() -> None:
    assert "hiner" in model_ids()
    family = get_family("hiner")
    assert family.id == "hiner"
    assert family.config_from_json(_cfg().to_json()) == _cfg()
    with pytest.raises(ValueError, match="hiner"):
        get_family("nerv")
