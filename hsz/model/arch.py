"""HINER architecture description: the config, the output geometry and the parameter budget.

Everything here is plain Python arithmetic (no torch), because a decoder reading a ``.hsz``
file must be able to rebuild the *exact* network from a few numbers, and because the rate
controller sizes networks long before any tensor exists.

Geometry: a band is decoded from a ``C x fc_h x fc_w`` embedding by upsampling blocks whose
strides multiply to ``P``; the decoded frame is ``(fc_h * P) x (fc_w * P)`` and is cropped
(centred) to ``height x width``.  The paper pads Indian Pines (145 x 145) to 180 x 180, i.e.
spends 54% more decoder compute on pixels nobody sees; :func:`plan_geometry` searches the
stride lists for a frame that hugs the image (150 x 150 there).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from itertools import combinations_with_replacement
from typing import Any

#: Upsampling factors a decoder block may use (PixelShuffle factors), largest first.
STRIDE_CHOICES: tuple[int, ...] = (5, 4, 3, 2)

#: Embedding channel counts :func:`size_for_budget` may pick from when none is imposed
#: (16 = paper default; fewer channels let small budgets keep the embedding share near 5%).
CHANNEL_CHOICES: tuple[int, ...] = (16, 8, 4, 32)

# Upper bounds enforced on configs read from files: generous for real scenes, but they stop a
# damaged or hostile header from making the decoder allocate absurd amounts of memory.
_MAX_SIDE = 1 << 16
_MAX_BANDS = 1 << 16
_MAX_WIDTH = 8192
_MAX_DECODER_PARAMS = 400_000_000
_MAX_EMBED_VALUES = 400_000_000
_MAX_FRAME_PIXELS = 1 << 30


class BudgetTooSmall(ValueError):
    """No network fits the budget; ``smallest`` is the fewest stored values any network needs.

    A ValueError still, for callers that only care that sizing failed; rate control reads
    ``smallest`` instead of the message.
    """

    def __init__(self, message: str, *, smallest: int) -> None:
        super().__init__(message)
        self.smallest = smallest


@dataclass(frozen=True)
class HinerConfig:
    """Every number needed to rebuild one HINER network exactly.

    The decoder of a ``.hsz`` file is rebuilt from this alone (plus the stored tensors), so it
    holds the whole architecture, including the fields that only the (unstored) wavelength
    encoder uses: keeping them makes the config describe the full model that was fitted.
    """

    bands: int
    height: int
    width: int
    fc_h: int
    fc_w: int
    fc_dim: int
    dec_strides: tuple[int, ...]
    embed_channels: int = 16
    reduce: float = 1.2
    lower_width: int = 12
    #: Kernel of decoder block i is ``min(kernel_min + kernel_step * i, kernel_max)``.
    kernel_min: int = 1
    kernel_step: int = 2
    kernel_max: int = 5
    head_kernel: int = 3
    pe_base: float = 1.25
    pe_levels: int = 80
    #: False feeds the raw coordinate to the MLP (ablation of the positional encoding).
    use_pe: bool = True
    mlp_hidden: int = 320

    def __post_init__(self) -> None:
        _validate(self)

    # -- derived sizes -------------------------------------------------------------------
    @property
    def upsample(self) -> int:
        """Product of the strides: how many frame pixels one embedding cell spans per side."""
        return math.prod(self.dec_strides)

    @property
    def frame(self) -> tuple[int, int]:
        """(rows, cols) of the decoded frame before the centred crop."""
        return self.fc_h * self.upsample, self.fc_w * self.upsample

    @property
    def embed_shape(self) -> tuple[int, int, int]:
        return self.embed_channels, self.fc_h, self.fc_w

    @property
    def embed_size(self) -> int:
        """Values in one band's embedding."""
        return self.embed_channels * self.fc_h * self.fc_w

    def widths(self) -> list[int]:
        """Channel counts after the stem and after each decoder block."""
        return _widths(self.fc_dim, len(self.dec_strides), self.reduce, self.lower_width)

    def kernels(self) -> list[int]:
        return [
            min(self.kernel_min + self.kernel_step * i, self.kernel_max)
            for i in range(len(self.dec_strides))
        ]

    # -- serialization -------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """Plain JSON types only; ``from_json(cfg.to_json()) == cfg`` exactly."""
        out = asdict(self)
        out["dec_strides"] = list(self.dec_strides)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HinerConfig:
        """Validate and build a config from a decoded JSON object.

        Unknown keys are rejected (a newer writer may mean something this build cannot
        honour); fields with a default may be missing.  Raises ValueError on anything wrong.
        """
        if not isinstance(data, dict):
            raise ValueError(f"model config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"model config has unknown keys: {', '.join(map(str, unknown))}")
        kwargs = dict(data)
        strides = kwargs.get("dec_strides")
        if isinstance(strides, (list, tuple)):
            kwargs["dec_strides"] = tuple(strides)
        try:
            return cls(**kwargs)
        except TypeError as exc:  # a missing required field
            raise ValueError(f"model config is incomplete: {exc}") from None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _check_int(name: str, v: Any, lo: int, hi: int) -> None:
    if not _is_int(v) or not lo <= v <= hi:
        raise ValueError(f"model config: {name} must be an integer in [{lo}, {hi}], got {v!r}")


def _validate(cfg: HinerConfig) -> None:
    _check_int("bands", cfg.bands, 1, _MAX_BANDS)
    _check_int("height", cfg.height, 1, _MAX_SIDE)
    _check_int("width", cfg.width, 1, _MAX_SIDE)
    _check_int("fc_h", cfg.fc_h, 1, 4096)
    _check_int("fc_w", cfg.fc_w, 1, 4096)
    _check_int("fc_dim", cfg.fc_dim, 1, _MAX_WIDTH)
    _check_int("embed_channels", cfg.embed_channels, 1, 1024)
    _check_int("lower_width", cfg.lower_width, 1, _MAX_WIDTH)
    _check_int("kernel_min", cfg.kernel_min, 1, 15)
    _check_int("kernel_step", cfg.kernel_step, 0, 14)
    _check_int("kernel_max", cfg.kernel_max, 1, 15)
    _check_int("head_kernel", cfg.head_kernel, 1, 15)
    _check_int("pe_levels", cfg.pe_levels, 1, 256)
    _check_int("mlp_hidden", cfg.mlp_hidden, 1, 65536)
    for name in ("kernel_min", "kernel_step", "kernel_max", "head_kernel"):
        v = getattr(cfg, name)
        if name != "kernel_step" and v % 2 == 0:
            raise ValueError(f"model config: {name} must be odd (centred convolutions), got {v}")
        if name == "kernel_step" and v % 2:
            raise ValueError(f"model config: kernel_step must be even, got {v}")
    if not _is_num(cfg.reduce) or not 1.0 <= cfg.reduce <= 8.0:
        raise ValueError(f"model config: reduce must be a number in [1, 8], got {cfg.reduce!r}")
    if not _is_num(cfg.pe_base) or not 1.0 < cfg.pe_base <= 4.0:
        raise ValueError(f"model config: pe_base must be a number in (1, 4], got {cfg.pe_base!r}")
    if cfg.pe_base ** (cfg.pe_levels - 1) > 1e12:
        raise ValueError("model config: pe_base ** pe_levels is too large for float32 phases")
    if not isinstance(cfg.use_pe, bool):
        raise ValueError(f"model config: use_pe must be true or false, got {cfg.use_pe!r}")
    if not isinstance(cfg.dec_strides, tuple) or not 1 <= len(cfg.dec_strides) <= 12:
        raise ValueError(
            f"model config: dec_strides must be a list of 1 to 12 integers, got {cfg.dec_strides!r}"
        )
    for s in cfg.dec_strides:
        _check_int("each of dec_strides", s, 1, 16)
    rows, cols = cfg.frame
    if rows < cfg.height or cols < cfg.width:
        raise ValueError(
            f"model config: frame {rows}x{cols} (fc {cfg.fc_h}x{cfg.fc_w} x {cfg.upsample}) "
            f"does not cover the {cfg.height}x{cfg.width} image"
        )
    if rows * cols > _MAX_FRAME_PIXELS:
        raise ValueError(f"model config: frame {rows}x{cols} is too large")
    if max(cfg.widths()) > _MAX_WIDTH:
        raise ValueError("model config: decoder too wide")
    counts = param_counts(cfg)
    if counts["decoder"] > _MAX_DECODER_PARAMS:
        raise ValueError(f"model config: decoder of {counts['decoder']} parameters is too large")
    if counts["embeddings"] > _MAX_EMBED_VALUES:
        raise ValueError(f"model config: {counts['embeddings']} embedding values is too many")


def _widths(fc_dim: int, blocks: int, reduce: float, lower_width: int) -> list[int]:
    # Python's round (half to even), as the reference code does: part of the architecture.
    out = [fc_dim]
    for _ in range(blocks):
        out.append(max(round(out[-1] / reduce), lower_width))
    return out


def _decoder_params(
    embed_channels: int,
    fc_dim: int,
    strides: tuple[int, ...],
    reduce: float,
    lower_width: int,
    kernels: list[int],
    head_kernel: int,
) -> int:
    w = _widths(fc_dim, len(strides), reduce, lower_width)
    n = embed_channels * fc_dim + fc_dim  # 1x1 stem
    for i, s in enumerate(strides):
        out = w[i + 1] * s * s
        n += kernels[i] * kernels[i] * w[i] * out + out
    n += head_kernel * head_kernel * w[-1] + 1
    return n


def param_counts(cfg: HinerConfig) -> dict[str, int]:
    """Parameter counts: what is stored (decoder + embeddings) and what is not (the MLP).

    Keys: ``decoder``, ``embeddings`` (bands x C x h x w values), ``stored`` (their sum),
    ``mlp`` (the wavelength encoder, dropped from the file), ``total_trainable``.
    """
    dec = _decoder_params(
        cfg.embed_channels,
        cfg.fc_dim,
        cfg.dec_strides,
        cfg.reduce,
        cfg.lower_width,
        cfg.kernels(),
        cfg.head_kernel,
    )
    emb = cfg.bands * cfg.embed_size
    pe_in = 2 * cfg.pe_levels if cfg.use_pe else 1
    mlp = pe_in * cfg.mlp_hidden + cfg.mlp_hidden + cfg.mlp_hidden * cfg.embed_size
    mlp += cfg.embed_size
    return {
        "decoder": dec,
        "embeddings": emb,
        "stored": dec + emb,
        "mlp": mlp,
        "total_trainable": dec + mlp,
    }


# -- geometry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Geometry:
    """An embedding grid and stride list, with the padding it costs."""

    fc_h: int
    fc_w: int
    strides: tuple[int, ...]
    pad_ratio: float  # frame area / image area (>= 1)

    @property
    def cells(self) -> int:
        return self.fc_h * self.fc_w


@lru_cache(maxsize=64)
def _stride_lists(min_stages: int, max_stages: int) -> tuple[tuple[int, ...], ...]:
    out = []
    for n in range(min_stages, max_stages + 1):
        # combinations_with_replacement of a descending tuple yields non-increasing lists:
        # large strides first, where the feature maps are small and the work is cheap.
        out.extend(combinations_with_replacement(STRIDE_CHOICES, n))
    return tuple(out)


def geometry_candidates(
    height: int, width: int, *, max_pad: float = 1.5, max_cells: int | None = None
) -> list[Geometry]:
    """Every (grid, strides) with 2-6 blocks whose frame covers the image within ``max_pad``.

    Sorted deterministically (by padding, then blocks, then grid) so callers that pick by a
    score with ties get the same answer everywhere.
    """
    if not _is_int(height) or not _is_int(width) or height < 1 or width < 1:
        raise ValueError(f"image size must be positive integers, got {height}x{width}")
    if max_cells is None:
        max_cells = max(64, (height * width) // (24 * 24))
    seen: dict[tuple[int, int, tuple[int, ...]], Geometry] = {}
    for strides in _stride_lists(2, 6):
        p = math.prod(strides)
        if p > 2 * max(height, width):
            continue
        fh, fw = -(-height // p), -(-width // p)
        if fh * fw > max_cells:
            continue
        pad = (fh * p) * (fw * p) / (height * width)
        if pad > max_pad:
            continue
        seen[(fh, fw, strides)] = Geometry(fh, fw, strides, pad)
    return sorted(
        seen.values(),
        key=lambda g: (round(g.pad_ratio, 9), len(g.strides), g.cells, g.strides),
    )


def _default_cells(height: int, width: int) -> float:
    # About one embedding cell per 100 x 100 pixels: Indian Pines -> 1-4 cells, Pavia
    # University -> ~20 (the paper used 9 and 18).  Budget-driven sizing overrides this.
    return max(1.0, height * width / 100.0**2)


def _geometry_score(g: Geometry, target_cells: float) -> float:
    # Padding is paid in compute on every step; each 1% of extra area costs ~0.1 here.
    # Four blocks is the paper's depth; the cell count only weakly matters on its own.
    return (
        10.0 * math.log(g.pad_ratio)
        + 0.3 * abs(len(g.strides) - 4)
        + 0.5 * abs(math.log(g.cells / target_cells))
    )


def plan_geometry(
    height: int, width: int, *, cells: float | None = None
) -> tuple[int, int, tuple[int, ...]]:
    """Choose ``(fc_h, fc_w, strides)`` for an image: little padding, ~4 blocks.

    ``cells`` is the wanted number of embedding cells (fc_h * fc_w); by default about one per
    100 x 100 pixels.  Works for any image of at least 1 x 1 (8 x 8 and up is what hsz
    encodes).  Indian Pines 145 x 145 -> 1x1 grid, strides (5, 5, 3, 2): a 150 x 150 frame
    instead of the paper's 180 x 180.
    """
    target = float(cells) if cells is not None else _default_cells(height, width)
    if not target > 0:
        raise ValueError(f"cells must be positive, got {cells!r}")
    cands = geometry_candidates(height, width)
    if not cands:  # tiny or very elongated images: allow more padding rather than fail
        cands = geometry_candidates(height, width, max_pad=64.0, max_cells=1 << 20)
    best = min(cands, key=lambda g: (round(_geometry_score(g, target), 9), g.strides, g.cells))
    return best.fc_h, best.fc_w, best.strides


# -- budget --------------------------------------------------------------------------------


def _solve_fc_dim(
    budget: int,
    embed: int,
    embed_channels: int,
    strides: tuple[int, ...],
    reduce: float,
    lower_width: int,
    kernels: list[int],
    head_kernel: int,
    min_fc_dim: int,
) -> int | None:
    """fc_dim whose decoder + ``embed`` lands closest to ``budget`` (None if none fits)."""

    def total(d: int) -> int:
        return embed + _decoder_params(
            embed_channels, d, strides, reduce, lower_width, kernels, head_kernel
        )

    if total(min_fc_dim) > budget:
        return None
    lo, hi = min_fc_dim, _MAX_WIDTH
    if total(hi) <= budget:
        return hi
    while hi - lo > 1:  # total() is non-decreasing in d: bisect the last d within budget
        mid = (lo + hi) // 2
        if total(mid) <= budget:
            lo = mid
        else:
            hi = mid
    # Take one step over the budget when that lands closer (budgets are approximate targets).
    return hi if abs(total(hi) - budget) < abs(total(lo) - budget) else lo


def size_for_budget(
    bands: int,
    height: int,
    width: int,
    budget_params: int,
    embed_share: float = 0.05,
    *,
    embed_channels: int | None = None,
    geometry: tuple[int, int, tuple[int, ...]] | None = None,
    min_fc_dim: int | None = None,
    **fixed: Any,
) -> HinerConfig:
    """Size a network so decoder + embeddings ~= ``budget_params`` stored values.

    Searches embedding grids, stride lists and (unless ``embed_channels`` is given) channel
    counts; for each it solves the decoder width ``fc_dim`` exactly, then keeps the candidate
    whose embedding share of the stored values is closest to ``embed_share`` (the paper's
    Table 3 finds ~5% best), penalizing frame padding (compute) and non-4-block decoders.
    Fully deterministic.  ``fixed`` passes other config fields through (e.g. ``use_pe``).

    Raises ValueError naming the smallest budget that can be met when ``budget_params`` is
    below the smallest model (``fc_dim == lower_width``, fewest embedding values).
    """
    for name in ("bands", "height", "width", "budget_params"):
        v = locals()[name]
        if not _is_int(v) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not _is_num(embed_share) or not 0.0 < embed_share < 1.0:
        raise ValueError(f"embed_share must be in (0, 1), got {embed_share!r}")
    base = HinerConfig(  # validates the fixed fields early, with a throwaway geometry
        bands=bands,
        height=height,
        width=width,
        fc_h=height,
        fc_w=width,
        fc_dim=16,
        dec_strides=(1,),
        **({"embed_channels": embed_channels} if embed_channels else {}),
        **fixed,
    )
    if geometry is not None:
        fh, fw, st = geometry
        p = math.prod(st)
        geos = [Geometry(fh, fw, tuple(st), (fh * p) * (fw * p) / (height * width))]
    else:
        geos = geometry_candidates(height, width)
        if not geos:
            geos = geometry_candidates(height, width, max_pad=64.0, max_cells=1 << 20)
    channels = (embed_channels,) if embed_channels else CHANNEL_CHOICES
    # Small budgets may narrow the floor of the decoder (lower_width; the paper's 12 makes the
    # smallest 4-block Indian Pines model ~62k values), at a penalty, unless the caller fixed
    # it: a narrow floor beats wasting the budget on padding or a starved embedding.
    floors = [base.lower_width]
    if "lower_width" not in fixed:
        floors += [w for w in (8, 6, 4) if w < base.lower_width]
    best: tuple[tuple[float, int, int], HinerConfig] | None = None
    smallest = math.inf
    for lower in floors:
        min_d = lower if min_fc_dim is None else int(min_fc_dim)
        for g in geos:
            kernels = [
                min(base.kernel_min + base.kernel_step * i, base.kernel_max)
                for i in range(len(g.strides))
            ]
            for c in channels:
                emb = bands * c * g.cells
                args = (g.strides, base.reduce, lower, kernels, base.head_kernel)
                smallest = min(smallest, emb + _decoder_params(c, min_d, *args))
                d = _solve_fc_dim(budget_params, emb, c, *args, min_d)
                if d is None:
                    continue
                total = emb + _decoder_params(c, d, *args)
                share = emb / total
                score = (
                    0.5 * abs(math.log(share / embed_share))
                    + 10.0 * math.log(g.pad_ratio)
                    + 0.3 * abs(len(g.strides) - 4)
                    + 0.5 * abs(math.log2(c / 16))
                    + 0.3 * math.log2(base.lower_width / lower)
                )
                key = (round(score, 9), c, g.cells)
                if best is None or key < best[0]:
                    cfg = HinerConfig(
                        **{
                            **base.to_json(),
                            "fc_h": g.fc_h,
                            "fc_w": g.fc_w,
                            "fc_dim": d,
                            "dec_strides": g.strides,
                            "embed_channels": c,
                            "lower_width": lower,
                        }
                    )
                    best = (key, cfg)
    if best is None:
        raise BudgetTooSmall(
            f"a budget of {budget_params} parameters is below the smallest model for "
            f"{bands} bands of {height}x{width} ({int(smallest)} parameters)",
            smallest=int(smallest),
        )
    return best[1]
