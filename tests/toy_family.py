"""A toy model family that lives outside hsz: a per-pixel linear spectral basis.

band_b(x, y) = mean_b + Σ_k basis_bk · step · level_k(x, y).  The basis and means are float
tensors the codec quantizes; the levels are an integer grid the codec context-codes (format
1.1).  It exists to prove the seam: tests register it and run the whole codec through it
without changing any hsz module.  No torch anywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from hsz.codec.context import RULE_FINE, IntNet
from hsz.codec.payload import Grid, Payload, Stored
from hsz.errors import RateError
from hsz.model import FitJob, Fitted, ModelFamily

GRID_BITS = 12


class ToyLinear(ModelFamily):
    id = "toy-linear"
    summary = "per-pixel linear spectral basis (a test family)"
    presets = {"only": "one SVD"}
    default_preset = "only"

    def config_from_json(self, obj: Any) -> dict[str, int]:
        if not isinstance(obj, dict) or not isinstance(obj.get("k"), int) or obj["k"] < 1:
            raise ValueError("toy config needs a positive integer k")
        return {"k": obj["k"]}

    def config_to_json(self, config: dict[str, int]) -> dict[str, Any]:
        return dict(config)

    def plan(self, shape: tuple[int, int, int], payload_bytes: int) -> dict[str, int] | None:
        if payload_bytes < self.smallest_payload_bytes(shape):
            return None
        return {"k": int(min(shape[0], 4))}

    def smallest_payload_bytes(self, shape: tuple[int, int, int]) -> int:
        return 200 + 2 * shape[0]

    def fit(self, job: FitJob) -> Fitted:
        bands, h, w = job.target.shape
        flat = job.target.reshape(bands, -1).astype(np.float64)
        mean = flat.mean(axis=1)
        u, s, vt = np.linalg.svd(flat - mean[:, None], full_matrices=False)
        k = job.config["k"]
        scores = (s[:k, None] * vt[:k]).reshape(k, h, w)
        return Fitted(job.config, {"basis": u[:, :k], "mean": mean, "scores": scores,
                                   "coords": job.coords}, iterations=1)

    def _payload(self, fitted: Fitted, step: float) -> Payload:
        scores = fitted.state["scores"]
        top = (1 << (GRID_BITS - 1)) - 1
        levels = np.clip(np.rint(scores / step), -top - 1, top).astype(np.int32)
        spread = np.log2(np.abs(levels).reshape(levels.shape[0], -1).mean(axis=1) + 0.5)
        # Centre: the mean of the four neighbours (decoded in the odd pass), through a ReLU
        # pair so that negative means survive; scale: a per-channel constant.  Rule 1,
        # which has a centre (rule 2 spends that output on the zero ratio): a family
        # chooses its rule.
        avg = np.array([0.25] * 4 + [0.0] * 24)
        net = IntNet.from_float([np.stack([avg, -avg]), np.array([[1.0, -1.0], [0.0, 0.0]])],
                                [np.zeros(2), np.zeros(2)],
                                np.stack([np.zeros_like(spread), spread - 1.0], axis=1))
        return Payload(
            tensors={"basis": fitted.state["basis"].astype(np.float32),
                     "mean": fitted.state["mean"].astype(np.float32)},
            bits=10, grids={"scores": Grid(levels, GRID_BITS, net, rule=RULE_FINE)},
            raw={"step": np.array([step])},
        )

    def land(self, fitted: Fitted, pack: Any, limit: int) -> Payload:
        lo, hi = 1e-4, 16.0  # step in normalized units: bisect on log scale
        best = None
        for _ in range(30):
            mid = float(np.sqrt(lo * hi))
            p = self._payload(fitted, mid)
            if len(pack(p)) <= limit:
                best, hi = p, mid
            else:
                lo = mid
        if best is None:
            raise RateError(f"the toy model cannot fit in {limit} bytes")
        return best

    def render(self, config: dict[str, int], stored: Stored, band_coords: np.ndarray,
               query: np.ndarray, *, device: str = "cpu") -> Iterator[np.ndarray]:
        basis, mean = stored.tensors["basis"], stored.tensors["mean"]
        levels, step = stored.grids["scores"], stored.raw["step"]
        k, h, w = levels.shape
        if basis.shape != (band_coords.size, k) or mean.shape != (band_coords.size,):
            raise ValueError("basis or mean does not match the grid")
        if step.shape != (1,):
            raise ValueError("step must hold one value")
        maps = levels.reshape(k, -1).astype(np.float64) * float(step[0])
        for q in np.asarray(query, dtype=np.float64):
            b = int(np.argmin(np.abs(band_coords - q)))
            band = mean[b] + basis[b].astype(np.float64) @ maps
            yield band.reshape(h, w).astype(np.float32)


TOY = ToyLinear()
