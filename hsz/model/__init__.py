"""Model families hsz can fit and decode, looked up by stable string id.

Files name their model by id, so ids are forever: add new ones, never rename or reuse.
This package face is torch-free (the registry loads a family's module on first use, and a
family imports torch only to fit or render), so ``hsz info`` and planning never load torch.
``_omp`` runs first so that OpenMP settles its spin policy before any torch import.
"""

from __future__ import annotations

from hsz.model import _omp  # noqa: F401  (must run before anything imports torch)
from hsz.model.family import (
    DEFAULT_MODEL,
    FitJob,
    Fitted,
    ModelFamily,
    get_family,
    model_ids,
    register,
    unregister,
)

__all__ = [
    "DEFAULT_MODEL", "FitJob", "Fitted", "ModelFamily", "get_family", "model_ids", "register",
    "unregister",
]
