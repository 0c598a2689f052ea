"""Rate control: the planner sizes networks for many shapes, and landing obeys the budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hsz import api, codec, rate
from hsz.cube import Cube
from hsz.errors import RateError, UsageError
from hsz.meta import coords_meta, cube_meta
from hsz.model.hiner import Hiner, decoder_state
from hsz.model.hiner_family import CODED_BITS_PER_PARAM, model_tensors, stored_values
from hsz.normalize import band_scale


def _side(cube: Cube) -> tuple[dict, dict]:
    scale = band_scale(cube, None)
    meta = {**cube_meta(cube), "coords": coords_meta(cube.wavelengths, cube.bands)}
    return meta, {"band_low": scale.low, "band_high": scale.high}


def _untrained_tensors(config, coords: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    torch.manual_seed(seed)
    model = Hiner(config)
    with torch.no_grad():
        emb = model.embed(torch.as_tensor(coords, dtype=torch.float32)).numpy()
    return model_tensors(decoder_state(model), emb)


@pytest.mark.parametrize(
    ("bands", "rows", "cols", "bpppb"),
    [
        (200, 145, 145, 0.05),
        (200, 145, 145, 0.2),
        (198, 100, 100, 0.1),
        (31, 512, 512, 0.05),
        (103, 610, 340, 0.1),
        (156, 95, 95, 0.5),
        (40, 37, 53, 2.0),
    ],
)
def test_planned_network_lands_in_the_window(bands: int, rows: int, cols: int, bpppb: float):
    """Plan, then land with untrained weights: the file is within [0.9, 1.0] of the target."""
    cube = Cube(
        np.zeros((bands, rows, cols), dtype=np.uint16),
        wavelengths=np.linspace(400, 2500, bands),
    )
    meta, raw = _side(cube)
    budget = api.target_bytes(cube.shape, bpppb=bpppb)
    plan = rate.plan(cube.shape, budget, meta, raw)
    assert stored_values(plan.config) <= int(plan.payload_bytes * 8 / CODED_BITS_PER_PARAM)
    coords = np.linspace(0, 1, bands)
    tensors = _untrained_tensors(plan.config, coords)
    meta["model"] = {"id": "hiner", "config": plan.config.to_json()}
    landed = rate.land(meta, tensors, raw, budget)
    assert rate.LOW_WATER * budget <= len(landed.data) <= budget
    assert len(landed.data) == len(codec.pack(meta, tensors, bits=landed.bits, raw=raw))


def test_plan_is_deterministic() -> None:
    cube = Cube(np.zeros((50, 64, 48), dtype=np.int16))
    meta, raw = _side(cube)
    a = rate.plan(cube.shape, 20_000, meta, raw)
    b = rate.plan(cube.shape, 20_000, meta, raw)
    assert a.config == b.config


def test_too_small_a_budget_names_the_smallest_rate() -> None:
    cube = Cube(np.zeros((200, 145, 145), dtype=np.uint16))
    meta, raw = _side(cube)
    with pytest.raises(RateError, match=r"smallest achievable rate is about \d+\.\d+ bpppb") as err:
        rate.plan(cube.shape, 1500, meta, raw)
    # Scripts get the figure without parsing the message, and it is a rate that can be planned.
    smallest = err.value.smallest_bpppb
    assert f"{smallest:.4f} bpppb" in str(err.value)
    enough = int(smallest * 1.01 * cube.data.size / 8) + 1
    assert stored_values(rate.plan(cube.shape, enough, meta, raw).config) > 0
    with pytest.raises(RateError):
        rate.plan(cube.shape, int(smallest * 0.95 * cube.data.size / 8), meta, raw)


def test_landing_takes_bits_where_they_cost_least() -> None:
    rng = np.random.default_rng(0)
    tensors = {
        "loud": rng.normal(size=4000).astype(np.float32),
        "quiet": rng.normal(size=4000).astype(np.float32),
    }
    meta: dict = {"shape": [1, 1, 1]}
    full = len(codec.pack(meta, tensors, bits=8))
    landed = rate.land(meta, tensors, {}, int(full * 0.85), {"loud": 100.0, "quiet": 1.0})
    assert landed.bits["quiet"] < landed.bits["loud"]
    assert len(landed.data) <= int(full * 0.85)


def test_landing_refuses_what_cannot_fit() -> None:
    tensors = {"w": np.random.default_rng(1).normal(size=10_000).astype(np.float32)}
    with pytest.raises(RateError, match="bits per value"):
        rate.land({"shape": [1, 1, 1]}, tensors, {}, 200)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [({"bpppb": 0.1}, 1000), ({"size": 777}, 777), ({"ratio": 160.0}, 1000), ({}, 2000)],
)
def test_target_bytes(kwargs: dict, expected: int) -> None:
    assert api.target_bytes((10, 100, 80), bits_per_sample=16, **kwargs) == expected


@pytest.mark.parametrize("kwargs", [{"bpppb": -1}, {"size": 0}, {"ratio": 0},
                                    {"bpppb": 0.1, "size": 5}])
def test_target_bytes_refuses_nonsense(kwargs: dict) -> None:
    with pytest.raises(UsageError):
        api.target_bytes((10, 100, 80), **kwargs)
