"""Neural representations hsz can fit and decode, looked up by stable string id.

Files name their model by id (never by position in :data:`MODELS`), so ids are forever: add
new ones, never rename or reuse.

The functions ``fit`` and ``render`` are reached through the registry or their modules
(``from hsz.model.fit import fit``); they are deliberately not re-exported here, where they
would shadow the submodules of the same name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hsz.model import _omp  # noqa: F401  (must run before anything imports torch)
from hsz.model import fit as _fit_mod
from hsz.model import render as _render_mod
from hsz.model.arch import (
    HinerConfig,
    geometry_candidates,
    param_counts,
    plan_geometry,
    size_for_budget,
)
from hsz.model.fit import PRESETS, FitResult
from hsz.model.hiner import Hiner, HinerDecoder, build_decoder, decoder_state
from hsz.model.render import interpolate_embeddings, render_all


@dataclass(frozen=True)
class ModelEntry:
    """The entry points of one model family, as the codec and CLI use them."""

    model_id: str
    config_from_json: Callable[[dict[str, Any]], Any]
    size_for_budget: Callable[..., Any]
    param_counts: Callable[[Any], dict[str, int]]
    fit: Callable[..., FitResult]
    build_decoder: Callable[..., Any]
    render: Callable[..., Any]
    render_all: Callable[..., Any]
    presets: tuple[str, ...]


MODELS: dict[str, ModelEntry] = {
    "hiner": ModelEntry(
        model_id="hiner",
        config_from_json=HinerConfig.from_json,
        size_for_budget=size_for_budget,
        param_counts=param_counts,
        fit=_fit_mod.fit,
        build_decoder=build_decoder,
        render=_render_mod.render,
        render_all=render_all,
        presets=tuple(PRESETS),
    ),
}


def get_model(model_id: str) -> ModelEntry:
    """The entry for ``model_id``; ValueError naming the known ids otherwise."""
    try:
        return MODELS[model_id]
    except (KeyError, TypeError):
        known = ", ".join(sorted(MODELS))
        raise ValueError(f"unknown model {model_id!r}; known models: {known}") from None


__all__ = [
    "MODELS",
    "FitResult",
    "Hiner",
    "HinerConfig",
    "HinerDecoder",
    "ModelEntry",
    "PRESETS",
    "build_decoder",
    "decoder_state",
    "geometry_candidates",
    "get_model",
    "interpolate_embeddings",
    "param_counts",
    "plan_geometry",
    "render_all",
    "size_for_budget",
]
