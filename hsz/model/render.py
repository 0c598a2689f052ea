"""Decoding bands from stored decoder tensors and per-band embeddings.

The wavelength encoder is not stored, so a wavelength that is not one of the encoded bands is
decoded from an embedding interpolated linearly between the two nearest encoded bands (in
coordinate order).  At an encoded band's coordinate the stored embedding is used unchanged,
so rendering the original wavelengths reproduces exactly what the encoder measured.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from hsz.model.arch import HinerConfig
from hsz.model.hiner import build_decoder
from hsz.spectral import neighbours


def interpolate_embeddings(
    embeddings: np.ndarray, band_coords: np.ndarray, query_coords: np.ndarray
) -> np.ndarray:
    """Embeddings at ``query_coords``: stored ones at band coords, linear in between.

    Band coordinates may be unsorted or repeated (real sensors step backwards at detector
    joins): they are sorted stably, an exact match takes the first band (in file order) with
    that coordinate, and a query between two coordinates blends the nearest band on each
    side.  Queries outside the encoded range take the end band's embedding (no extrapolation).
    """
    emb = np.asarray(embeddings)
    bc = np.asarray(band_coords, dtype=np.float64).reshape(-1)
    q = np.asarray(query_coords, dtype=np.float64).reshape(-1)
    if emb.ndim < 1 or emb.shape[0] != bc.shape[0] or bc.shape[0] == 0:
        raise ValueError(
            f"{bc.shape[0]} band coordinates for {emb.shape[0] if emb.ndim else 0} embeddings"
        )
    if not (np.all(np.isfinite(bc)) and np.all(np.isfinite(q))):
        raise ValueError("coordinates must be finite")
    out = np.empty((q.shape[0],) + emb.shape[1:], dtype=np.float32)
    for j, (lo, hi, t) in enumerate(neighbours(bc, q)):
        if t == 0.0:
            out[j] = emb[lo]
        else:
            mix = (1.0 - t) * emb[lo].astype(np.float64) + t * emb[hi].astype(np.float64)
            out[j] = mix.astype(np.float32)
    return out


def render(
    cfg: HinerConfig,
    decoder_tensors: dict[str, np.ndarray],
    embeddings: np.ndarray,
    band_coords: np.ndarray,
    query_coords: np.ndarray,
    *,
    device: str = "cpu",
    batch: int = 8,
) -> Iterator[np.ndarray]:
    """Yield decoded bands (H, W) float32 in [0, 1], one per query coordinate, in order.

    At most ``batch`` bands are decoded at a time, so memory stays bounded however many
    wavelengths are asked for.  Runs in fp32 without autocast: the same inputs give the same
    output on the same machine.
    """
    emb = np.asarray(embeddings)
    if emb.shape != (cfg.bands, *cfg.embed_shape):
        raise ValueError(
            f"embeddings of shape {emb.shape}, expected {(cfg.bands, *cfg.embed_shape)}"
        )
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    q = np.asarray(query_coords, dtype=np.float64).reshape(-1)
    dev = torch.device(device)
    dec = build_decoder(cfg, decoder_tensors).to(dev)
    for s in range(0, q.shape[0], batch):
        chunk = interpolate_embeddings(emb, band_coords, q[s : s + batch])
        with torch.inference_mode():
            out = dec(torch.from_numpy(chunk).to(dev)).float().cpu().numpy()
        for band in out:
            yield np.ascontiguousarray(band, dtype=np.float32)


def render_all(
    cfg: HinerConfig,
    decoder_tensors: dict[str, np.ndarray],
    embeddings: np.ndarray,
    band_coords: np.ndarray,
    query_coords: np.ndarray,
    *,
    device: str = "cpu",
    batch: int = 8,
) -> np.ndarray:
    """All queried bands as one (len(query_coords), H, W) float32 array."""
    q = np.asarray(query_coords, dtype=np.float64).reshape(-1)
    out = np.empty((q.shape[0], cfg.height, cfg.width), dtype=np.float32)
    for k, band in enumerate(
        render(cfg, decoder_tensors, embeddings, band_coords, q, device=device, batch=batch)
    ):
        out[k] = band
    return out
