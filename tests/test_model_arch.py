"""HinerConfig JSON, geometry planning and budget sizing (pure arithmetic, no torch)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsz.model.arch import (
    HinerConfig,
    geometry_candidates,
    param_counts,
    plan_geometry,
    size_for_budget,
)


def _cfg(**kw: object) -> HinerConfig:
    base: dict[str, object] = dict(
        bands=200, height=145, width=145, fc_h=1, fc_w=1, fc_dim=20, dec_strides=(5, 5, 3, 2)
    )
    base.update(kw)
    return HinerConfig(**base)  # type: ignore[arg-type]


def test_json_round_trip_is_exact_and_survives_json_text() -> None:
    cfg = _cfg(embed_channels=8, reduce=1.25, use_pe=False, mlp_hidden=64)
    doc = cfg.to_json()
    assert HinerConfig.from_json(doc) == cfg
    assert HinerConfig.from_json(json.loads(json.dumps(doc))) == cfg
    assert isinstance(doc["dec_strides"], list)


def test_from_json_missing_defaulted_fields_take_defaults() -> None:
    doc = _cfg().to_json()
    for k in ("reduce", "pe_levels", "mlp_hidden"):
        del doc[k]
    assert HinerConfig.from_json(doc) == _cfg()


@pytest.mark.parametrize(
    "change",
    [
        {"surprise": 1},
        {"bands": 0},
        {"bands": 2.0},
        {"bands": True},
        {"fc_dim": -3},
        {"dec_strides": []},
        {"dec_strides": [5, "5"]},
        {"dec_strides": 5},
        {"reduce": float("nan")},
        {"reduce": 0.5},
        {"kernel_max": 4},
        {"kernel_step": 1},
        {"use_pe": 1},
        {"pe_base": 1.0},
        {"fc_h": 1, "fc_w": 1, "dec_strides": [2, 2]},  # frame 4x4 does not cover 145x145
        {"fc_dim": 8192, "lower_width": 8192},  # absurdly large decoder
    ],
)
def test_from_json_rejects_bad_documents(change: dict[str, object]) -> None:
    doc = _cfg().to_json()
    doc.update(change)
    with pytest.raises(ValueError):
        HinerConfig.from_json(doc)


def test_from_json_rejects_missing_required_and_non_objects() -> None:
    doc = _cfg().to_json()
    del doc["fc_dim"]
    with pytest.raises(ValueError):
        HinerConfig.from_json(doc)
    with pytest.raises(ValueError):
        HinerConfig.from_json([1, 2])  # type: ignore[arg-type]


def test_widths_and_kernels_follow_the_paper_rule() -> None:
    cfg = _cfg(fc_dim=100, dec_strides=(5, 4, 3, 2, 2), fc_h=1, fc_w=1)
    assert cfg.widths() == [100, 83, 69, 58, 48, 40]
    assert cfg.kernels() == [1, 3, 5, 5, 5]
    small = _cfg(fc_dim=14)
    assert small.widths() == [14, 12, 12, 12, 12]


@pytest.mark.parametrize(
    ("h", "w"), [(37, 53), (8, 8), (145, 145), (610, 340), (512, 512), (100, 100)]
)
def test_plan_geometry_covers_with_little_padding(h: int, w: int) -> None:
    fh, fw, strides = plan_geometry(h, w)
    p = math.prod(strides)
    assert fh * p >= h and fw * p >= w
    assert (fh * p) * (fw * p) <= 1.25 * h * w
    assert list(strides) == sorted(strides, reverse=True)
    assert all(s in (2, 3, 4, 5) for s in strides)


def test_plan_geometry_beats_paper_padding_on_indian_pines() -> None:
    fh, fw, strides = plan_geometry(145, 145)
    p = math.prod(strides)
    assert (fh * p, fw * p) == (150, 150)  # paper: 180 x 180


@settings(max_examples=60, deadline=None)
@given(st.integers(8, 1200), st.integers(8, 1200))
def test_plan_geometry_any_size(h: int, w: int) -> None:
    fh, fw, strides = plan_geometry(h, w)
    p = math.prod(strides)
    assert fh * p >= h and fw * p >= w
    assert (fh * p) * (fw * p) <= 1.5 * h * w
    assert 2 <= len(strides) <= 6
    # The config it implies is valid.
    HinerConfig(bands=3, height=h, width=w, fc_h=fh, fc_w=fw, fc_dim=12, dec_strides=strides)


def test_geometry_candidates_are_sorted_and_valid() -> None:
    cands = geometry_candidates(145, 145)
    assert cands and cands == sorted(cands, key=lambda g: (round(g.pad_ratio, 9), len(g.strides),
                                                           g.cells, g.strides))
    for g in cands:
        p = math.prod(g.strides)
        assert g.fc_h * p >= 145 and g.pad_ratio <= 1.5


def test_param_counts_match_formula_for_paper_network() -> None:
    cfg = _cfg(fc_h=3, fc_w=3, dec_strides=(5, 3, 2, 2), fc_dim=30)
    n = param_counts(cfg)
    w = cfg.widths()
    dec = 16 * 30 + 30
    for i, (k, s) in enumerate(zip(cfg.kernels(), cfg.dec_strides, strict=True)):
        dec += k * k * w[i] * w[i + 1] * s * s + w[i + 1] * s * s
    dec += 9 * w[-1] + 1
    assert n["decoder"] == dec
    assert n["embeddings"] == 200 * 16 * 9
    assert n["stored"] == n["decoder"] + n["embeddings"]
    assert n["mlp"] == 160 * 320 + 320 + 320 * 144 + 144


@pytest.mark.parametrize("bpppb", [0.05, 0.1, 0.2, 0.5])
def test_size_for_budget_lands_near_budget(bpppb: float) -> None:
    budget = int(145 * 145 * 200 * bpppb / 7)
    cfg = size_for_budget(200, 145, 145, budget)
    assert cfg == size_for_budget(200, 145, 145, budget)  # deterministic
    stored = param_counts(cfg)["stored"]
    assert abs(stored - budget) <= 0.05 * budget
    share = param_counts(cfg)["embeddings"] / stored
    assert 0.01 <= share <= 0.15


def test_size_for_budget_other_scenes_and_fixed_fields() -> None:
    cfg = size_for_budget(103, 610, 340, 300_000, embed_channels=16, use_pe=False)
    assert cfg.embed_channels == 16 and cfg.use_pe is False
    assert abs(param_counts(cfg)["stored"] - 300_000) <= 0.05 * 300_000
    fixed = size_for_budget(200, 145, 145, 120_000, geometry=(3, 3, (5, 3, 2, 2)))
    assert (fixed.fc_h, fixed.fc_w, fixed.dec_strides) == (3, 3, (5, 3, 2, 2))


def test_size_for_budget_too_small_names_the_minimum() -> None:
    with pytest.raises(ValueError, match=r"smallest model .*\((\d+) parameters\)") as err:
        size_for_budget(200, 145, 145, 500)
    smallest = int(str(err.value).rsplit("(", 1)[1].split()[0])
    cfg = size_for_budget(200, 145, 145, smallest)
    assert param_counts(cfg)["stored"] <= smallest
