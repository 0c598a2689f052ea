"""What a model family is to hsz: one object behind one interface, found by a stable id.

Everything family-specific lives behind :class:`ModelFamily`: its configuration and the JSON
that stores it, sizing a network for a byte budget, fitting, which tensors it stores and how
each is coded, landing on the budget, rendering bands at any wavelength, and its presets.
The rest of hsz (the API, rate control, the container, the CLI and ``hsz info``) reaches a
family only through this interface, so a new family is a module and a :func:`register` call.

This module and the registry never import torch: ``hsz info``, planning and the codec must
work without it.  A family loads torch only inside ``fit`` and ``render``.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hsz.codec.payload import Payload, Stored

Progress = Callable[[dict[str, Any]], None]
#: Packs a payload into the whole file (metadata and side information included).
Packer = Callable[[Payload], bytes]


@dataclass(frozen=True)
class FitJob:
    """What a fit is asked to do: the normalized cube and how hard to try.

    ``target`` is (bands, H, W) float32 in [0, 1] with nodata zeroed, ``coords`` the network
    coordinate of each band (:func:`hsz.spectral.band_coordinates`), ``mask`` the valid
    pixels (None when all are), ``budget`` the bytes the family's payload may take.
    ``scored`` (None: every valid pixel) limits the loss to some valid pixels while the
    others still inform the fit: a tile's margin is real data that a decoder drops.
    """

    target: np.ndarray
    coords: np.ndarray
    config: Any
    budget: int
    mask: np.ndarray | None = None
    scored: np.ndarray | None = None
    preset: str | None = None
    epochs: int | None = None
    device: str = "auto"
    seed: int = 0
    progress: Progress | None = None


@dataclass
class Fitted:
    """A fitted model as its family hands it to landing: the config plus the family's state."""

    config: Any
    state: Any
    fit_psnr: float = float("nan")
    iterations: int = 0
    device: str = "cpu"
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


def loss_mask(job: FitJob) -> np.ndarray | None:
    """The pixels a fit's loss counts: valid and scored (None when that is all of them)."""
    if job.scored is None:
        return job.mask
    out = np.asarray(job.scored, dtype=bool)
    return out if job.mask is None else out & np.asarray(job.mask, dtype=bool)


class ModelFamily(ABC):
    """One model family.  Subclasses set the class attributes and implement the methods.

    ``presets`` maps each preset name to a one-line description of its schedule (shown in
    ``--help`` and the README); ``default_preset`` is what an encode uses when none is named.
    ``tile_values`` bounds a tile (:mod:`hsz.tiles`).
    """

    id: str = ""
    summary: str = ""
    presets: Mapping[str, str] = {}
    #: What holds for every preset, said once after them in ``--help`` (may be empty).
    preset_note: str = ""
    default_preset: str = ""
    #: Most values (bands x rows x cols) one fit should hold: larger scenes are coded in
    #: tiles of at most this many, so a fit's memory is bounded (about 1 GB at this size
    #: for the built-in families on CPU).
    tile_values: int = 1 << 23
    #: Pixels each tile is fitted beyond its edges and the decoder drops (SPEC §4.7), so
    #: that the model's weak edge falls outside the kept pixels.
    tile_margin: int = 8

    # -- configuration (torch-free) ------------------------------------------------------

    @abstractmethod
    def config_from_json(self, obj: Any) -> Any:
        """The config a file stores; ValueError/TypeError/KeyError when it is invalid."""

    @abstractmethod
    def config_to_json(self, config: Any) -> dict[str, Any]:
        """JSON for ``config``; ``config_from_json`` of it gives ``config`` back."""

    def describe(self, config: Any) -> str:
        """One line naming the architecture, for ``hsz info``."""
        return ", ".join(f"{k}={v}" for k, v in self.config_to_json(config).items())

    # -- planning (torch-free) -----------------------------------------------------------

    @abstractmethod
    def plan(self, shape: tuple[int, int, int], payload_bytes: int) -> Any | None:
        """A config whose coded payload should fit ``payload_bytes``; None if none can."""

    @abstractmethod
    def smallest_payload_bytes(self, shape: tuple[int, int, int]) -> int:
        """Estimated bytes of the smallest payload the family can make for ``shape``."""

    # -- encoding --------------------------------------------------------------------------

    @abstractmethod
    def fit(self, job: FitJob) -> Fitted:
        """Overfit the family's model to ``job.target``."""

    @abstractmethod
    def land(self, fitted: Fitted, pack: Packer, limit: int) -> Payload:
        """The best payload whose packed file is at most ``limit`` bytes.

        ``pack`` gives the whole file's bytes for a payload, so a family can measure
        exactly instead of estimating.  Raises :class:`hsz.errors.RateError` when nothing
        fits.
        """

    # -- decoding ------------------------------------------------------------------------

    @abstractmethod
    def render(
        self, config: Any, stored: Stored, band_coords: np.ndarray, query: np.ndarray, *,
        device: str = "cpu",
    ) -> Iterator[np.ndarray]:
        """Bands (H, W) float32 in normalized units, one per query coordinate, in order.

        Raises ValueError/KeyError/TypeError when ``stored`` does not match ``config`` (the
        caller reports that as a damaged file); any other exception is a bug.
        """

    def contexts(self, config: Any, stored: Stored) -> Mapping[str, Any]:
        """Context models for tensors coded with the family's entropy model (format 1.1).

        Empty for families that store only min-max quantized tensors.
        """
        return {}

    def check_preset(self, preset: str | None) -> str:
        """The preset to use; ValueError naming the family's presets for an unknown one."""
        name = self.default_preset if preset is None else preset
        if name not in self.presets:
            known = ", ".join(self.presets)
            raise ValueError(f"model {self.id!r} has no preset {name!r}; its presets: {known}")
        return name


# ------------------------------------------------------------------------------ registry

#: Families shipped with hsz: id -> "module:attribute", imported on first use so that
#: looking a family up never imports torch.  Ids are forever: add, never rename or reuse.
_BUILTIN: dict[str, str] = {
    "hiner": "hsz.model.hiner_family:FAMILY",
    "latent": "hsz.model.latent:FAMILY",
}
_LOADED: dict[str, ModelFamily] = {}
#: The family ``hsz encode`` uses when none is named (the one that measures best).
DEFAULT_MODEL = "latent"


def register(family: ModelFamily, *, replace: bool = False) -> ModelFamily:
    """Make ``family`` findable by its id (for families that live outside hsz)."""
    if not isinstance(family, ModelFamily):
        raise TypeError("a model family must be a ModelFamily instance")
    if not family.id or not isinstance(family.id, str):
        raise ValueError("a model family needs a non-empty string id")
    if not replace and (family.id in _LOADED or family.id in _BUILTIN):
        raise ValueError(f"a model family with id {family.id!r} is already registered")
    if family.default_preset not in family.presets:
        raise ValueError(f"family {family.id!r}: default preset {family.default_preset!r} "
                         "is not one of its presets")
    _LOADED[family.id] = family
    return family


def unregister(model_id: str) -> None:
    """Forget a family registered with :func:`register` (built-in ones stay findable)."""
    _LOADED.pop(model_id, None)


def model_ids() -> list[str]:
    """Every id that :func:`get_family` can find, sorted."""
    return sorted(set(_BUILTIN) | set(_LOADED))


def get_family(model_id: str) -> ModelFamily:
    """The family registered as ``model_id``; ValueError naming the known ids otherwise."""
    if isinstance(model_id, str) and model_id in _LOADED:
        return _LOADED[model_id]
    if not isinstance(model_id, str) or model_id not in _BUILTIN:
        known = ", ".join(model_ids())
        raise ValueError(f"unknown model {model_id!r}; known models: {known}")
    module, _, attr = _BUILTIN[model_id].partition(":")
    family = getattr(importlib.import_module(module), attr)
    _LOADED[model_id] = family
    return family
