"""The HINER network: wavelength -> embedding (PE + MLP) -> band (convolutional decoder).

Only the decoder and the per-band embeddings end up in a file; the wavelength encoder is a
training-time device.  The decoder is therefore its own module (:class:`HinerDecoder`) that
can be rebuilt from numpy arrays without the encoder, torch.load or pickle.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import torch
from torch import Tensor, nn

from hsz.model.arch import HinerConfig


class PositionalEncoding(nn.Module):
    """``(sin(b^k pi x), cos(b^k pi x))`` for k < levels, interleaved as in the paper's Eq. 3.

    With ``use_pe=False`` the raw coordinate passes through (one input), for the ablation.
    """

    def __init__(self, cfg: HinerConfig) -> None:
        super().__init__()
        self.use_pe = cfg.use_pe
        freqs = torch.tensor(
            [cfg.pe_base**k * math.pi for k in range(cfg.pe_levels)], dtype=torch.float64
        )
        # Not persistent: it is a pure function of the config, never stored.
        self.register_buffer("freqs", freqs.float(), persistent=False)
        self.out_features = 2 * cfg.pe_levels if cfg.use_pe else 1

    def forward(self, coords: Tensor) -> Tensor:
        x = coords.reshape(-1, 1).float()
        if not self.use_pe:
            return x
        phase = x * self.freqs  # (N, L)
        return torch.stack((torch.sin(phase), torch.cos(phase)), dim=-1).flatten(1)


class _Block(nn.Module):
    """Conv(k) to ``out * s^2`` channels -> PixelShuffle(s) -> GELU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout * stride * stride, kernel, padding=kernel // 2)
        self.shuffle = nn.PixelShuffle(stride)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.shuffle(self.conv(x)))


class HinerDecoder(nn.Module):
    """Embedding ``(N, C, fc_h, fc_w)`` -> bands ``(N, height, width)`` in [0, 1]."""

    def __init__(self, cfg: HinerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        widths = cfg.widths()
        self.stem = nn.Conv2d(cfg.embed_channels, widths[0], 1)
        self.stem_act = nn.GELU()
        self.blocks = nn.ModuleList(
            _Block(widths[i], widths[i + 1], k, s)
            for i, (k, s) in enumerate(zip(cfg.kernels(), cfg.dec_strides, strict=True))
        )
        self.head = nn.Conv2d(widths[-1], 1, cfg.head_kernel, padding=cfg.head_kernel // 2)
        rows, cols = cfg.frame
        self._top = (rows - cfg.height) // 2
        self._left = (cols - cfg.width) // 2

    def forward(self, emb: Tensor) -> Tensor:
        x = self.stem_act(self.stem(emb))
        for block in self.blocks:
            x = block(x)
        x = self.head(x)
        x = torch.tanh(x.float()) * 0.5 + 0.5
        top, left = self._top, self._left
        return x[:, 0, top : top + self.cfg.height, left : left + self.cfg.width]


class Hiner(nn.Module):
    """Full model: ``forward(coords) == decode(embed(coords))``."""

    def __init__(self, cfg: HinerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pe = PositionalEncoding(cfg)
        self.mlp = nn.Sequential(
            nn.Linear(self.pe.out_features, cfg.mlp_hidden),
            nn.GELU(),
            nn.Linear(cfg.mlp_hidden, cfg.embed_size),
        )
        self.decoder = HinerDecoder(cfg)

    def embed(self, coords: Tensor) -> Tensor:
        """Coordinates ``(N,)`` in [0, 1] -> embeddings ``(N, C, fc_h, fc_w)``."""
        out = self.mlp(self.pe(coords))
        return out.reshape(-1, *self.cfg.embed_shape)

    def decode(self, emb: Tensor) -> Tensor:
        """Embeddings ``(N, C, fc_h, fc_w)`` -> bands ``(N, H, W)`` in [0, 1]."""
        return self.decoder(emb)

    def forward(self, coords: Tensor) -> Tensor:
        return self.decode(self.embed(coords))


def _decoder_of(model: nn.Module) -> HinerDecoder:
    if isinstance(model, Hiner):
        return model.decoder
    if isinstance(model, HinerDecoder):
        return model
    raise TypeError(f"expected a Hiner or HinerDecoder, got {type(model).__name__}")


def decoder_state(model: nn.Module) -> dict[str, np.ndarray]:
    """The decoder's tensors as float32 numpy arrays, in module order (what a file stores)."""
    dec = _decoder_of(model)
    return OrderedDict(
        (name, np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy()).copy())
        for name, t in dec.state_dict().items()
    )


def expected_decoder_shapes(cfg: HinerConfig) -> dict[str, tuple[int, ...]]:
    """Names and shapes :func:`build_decoder` requires, without allocating a network."""
    widths = cfg.widths()
    out: dict[str, tuple[int, ...]] = OrderedDict()
    out["stem.weight"] = (widths[0], cfg.embed_channels, 1, 1)
    out["stem.bias"] = (widths[0],)
    for i, (k, s) in enumerate(zip(cfg.kernels(), cfg.dec_strides, strict=True)):
        c = widths[i + 1] * s * s
        out[f"blocks.{i}.conv.weight"] = (c, widths[i], k, k)
        out[f"blocks.{i}.conv.bias"] = (c,)
    out["head.weight"] = (1, widths[-1], cfg.head_kernel, cfg.head_kernel)
    out["head.bias"] = (1,)
    return out


def build_decoder(cfg: HinerConfig, tensors: dict[str, np.ndarray]) -> HinerDecoder:
    """Rebuild a decoder from numpy arrays (names/shapes checked first; ValueError if wrong).

    Uses ``torch.from_numpy`` + ``load_state_dict(strict=True)``: a file never executes
    anything (no pickle).
    """
    want = expected_decoder_shapes(cfg)
    missing = [k for k in want if k not in tensors]
    extra = [k for k in tensors if k not in want]
    if missing or extra:
        raise ValueError(
            f"decoder tensors do not match the config: missing {missing or 'none'}, "
            f"unexpected {extra or 'none'}"
        )
    state: dict[str, Tensor] = OrderedDict()
    for name, shape in want.items():
        arr = np.asarray(tensors[name])
        if arr.shape != shape:
            raise ValueError(f"decoder tensor {name} has shape {arr.shape}, expected {shape}")
        if not np.issubdtype(arr.dtype, np.floating):
            raise ValueError(f"decoder tensor {name} has dtype {arr.dtype}, expected float")
        state[name] = torch.from_numpy(np.array(arr, dtype=np.float32, order="C", copy=True))
    with torch.device("meta"):
        dec = HinerDecoder(cfg)
    dec = dec.to_empty(device="cpu")
    dec.load_state_dict(state, strict=True)
    return dec.eval()
