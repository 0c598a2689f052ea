"""Context-coded integer grids (format 1.1, section ``LATS``): a codec-owned entropy model.

A family that stores latent grids hands the codec integer levels of shape (C, H, W), a small
fixed-point network and optionally a *guide* (an earlier grid, usually a coarser one).  The
codec codes each level under a discrete Laplace whose centre and scale the network predicts
from already-decoded neighbours.  Everything that decides a symbol is integer arithmetic or
a literal table, so encoder and decoder agree bit for bit on any CPU, thread count or GPU:

* the network runs in int64 on int16 weights (fixed point with ``frac`` fractional bits),
  with floor shifts and clamps after every layer (:func:`evaluate`);
* its outputs become an integer centre and a table: rule 0 (format 1.1) has 64 tables of
  scales 2^−3 … 2^7.5, rule 1 (1.5) the same and 12 finer ones down to 2^−5, all six to
  the octave (:data:`RULES`);
* table ``g`` is the zero-mean Laplace of scale ``s_g = 2^((g − 30)/6)`` integrated over
  unit bins, built from two float32 literals per table (:data:`SCALE_BITS`, :data:`EDGE_BITS`) by
  multiplications only, and quantized to 24 bits exactly as :mod:`hsz.codec.entropy` does
  (SPEC.md §6.2).  Laplace bins, not a plain geometric law, because that is what a model
  trained with additive uniform noise learns: noisy training and rounded coding then agree.

Rule 2 (format 1.6) keeps rule 1's scale tables but gives the distribution a second free
parameter: output 0 of the network, which rules 0 and 1 read as the centre, becomes the
log2 ratio ``r = p(±1)/p(0)`` on a half-octave ladder of :data:`RATIOS` rungs (the centre
is zero).  A wavelet's sparse subbands are mostly zeros with a heavy tail, which one Laplace
scale cannot fit at both ends: on CAVE's chart and toy at 0.1 bpppb (fixed latents, the
same network trained alike) the free ratio cost 11 % fewer bits.  Rule 2 also reads a grid's
``group``: channel ``c − group`` (the same wavelet orientation of the previous component),
another 10 %.

Decoding order (every rule): channel by channel; within a channel, first the pixels with
``(y + x)`` even, then the odd ones (a checkerboard).  Each pass is one vectorized network
evaluation and one ANS call per scale table in use, so decoding stays fast in numpy.
The feature vector of level ``(c, y, x)`` is, in this order (0 where a value is outside the
grid or not yet decoded):

1. the four neighbours ``(c, y−1, x), (c, y+1, x), (c, y, x−1), (c, y, x+1)`` (all zero in
   the even pass, all decoded in the odd pass);
2. channel ``c − 1`` at ``(y, x), (y−1, x), (y+1, x), (y, x−1), (y, x+1)``;
3. guide channel ``min(c, Cg − 1)`` at ``(gy, gx) = (y·Hg // H, x·Wg // W)`` and at
   ``(gy−1, gx), (gy+1, gx), (gy, gx−1), (gy, gx+1)`` (all zero without a guide);

4. rule 2 only: channel ``c − group`` at ``(y, x), (y−1, x), (y+1, x), (y, x−1), (y, x+1)``
   (zero while ``c < group``);

followed by the absolute values of all of the above, in the same order (scales depend on
magnitudes, which a ReLU network cannot otherwise form cheaply).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import constriction
import numpy as np

from hsz.codec import binio, golomb
from hsz.codec.binio import Cursor
from hsz.codec.entropy import PRECISION, quantized_cdf

#: float32 bit patterns of ``a_g = exp(−1/s_g)``, ``s_g = 2^((g − 30)/6)``, g = 0 … 75 (the
#: global table id, see :data:`RULES`), each the float32 nearest the exact value.
#: Literals, not computed: ``exp`` may differ in the last bit between math libraries.
SCALE_BITS: tuple[int, ...] = (
    0x28642328, 0x2AEA07E5, 0x2D240817, 0x2F23C56C, 0x30F1B3EB, 0x32883F0D, 0x33F1AADE, 0x352D13EF,
    0x364CEB73, 0x374CC1CA, 0x382FE453, 0x39040F0D,
    0x39AFE108, 0x3A527E97, 0x3AE50A4F, 0x3B64F306, 0x3BD432E4, 0x3C37DDF0, 0x3C960AAE, 0x3CE82286,
    0x3D2B38F8, 0x3D7218DE, 0x3DA4CEAB, 0x3DD8F4C1, 0x3E0A9555, 0x3E2C6017, 0x3E515CFE, 0x3E78F398,
    0x3E913E09, 0x3EA6A4FC, 0x3EBC5AB2, 0x3ED2111E, 0x3EE7829F, 0x3EFC7380, 0x3F085950, 0x3F120CB4,
    0x3F1B4598, 0x3F23FA31, 0x3F2C24AE, 0x3F33C2A0, 0x3F3AD463, 0x3F415C91, 0x3F475F7D, 0x3F4CE2C4,
    0x3F51ECE8, 0x3F5684FF, 0x3F5AB270, 0x3F5E7CBB, 0x3F61EB51, 0x3F650575, 0x3F67D223, 0x3F6A5801,
    0x3F6C9D52, 0x3F6EA7F6, 0x3F707D60, 0x3F72229D, 0x3F739C52, 0x3F74EEC2, 0x3F761DD2, 0x3F772D0C,
    0x3F781FAB, 0x3F78F89B, 0x3F79BA7F, 0x3F7A67BA, 0x3F7B0275, 0x3F7B8C9F, 0x3F7C07F5, 0x3F7C760A,
    0x3F7CD845, 0x3F7D2FE8, 0x3F7D7E16, 0x3F7DC3D0, 0x3F7E01FF, 0x3F7E3972, 0x3F7E6AE2, 0x3F7E96F6,
)
#: float32 bit patterns of ``c_g = p(1)/p(0)`` of the binned Laplace of scale ``s_g``:
#: ``p(0) = 1 − exp(−1/(2 s_g))``, ``p(1) = exp(−1/(2 s_g))·(1 − exp(−1/s_g))/2``.
EDGE_BITS: tuple[int, ...] = (
    0x3371AAE0, 0x34AD13F6, 0x35CCEB9C, 0x36CCC26E, 0x37AFE637, 0x3884134F, 0x392FF023, 0x39D2A9DC,
    0x3A6570C5, 0x3AE5BFC8, 0x3B5592AC, 0x3BB9EE2C,
    0x3C18CA32, 0x3C6EB67B, 0x3CB2614A, 0x3D003407, 0x3D3211D9, 0x3D6FF07F, 0x3D9D56AB, 0x3DC96468,
    0x3DFC2B3C, 0x3E1ABCE8, 0x3E3A71B4, 0x3E5CE22C, 0x3E80D2AE, 0x3E942095, 0x3EA8188F, 0x3EBC76A6,
    0x3ED0F855, 0x3EE55F32, 0x3EF972F1, 0x3F068160, 0x3F0FF2FF, 0x3F18FE30, 0x3F2196DA, 0x3F29B4A2,
    0x3F31528A, 0x3F386E7B, 0x3F3F08CB, 0x3F4523D0, 0x3F4AC36A, 0x3F4FECA6, 0x3F54A567, 0x3F58F41D,
    0x3F5CDF86, 0x3F606E80, 0x3F63A7E1, 0x3F669258, 0x3F693459, 0x3F6B9409, 0x3F6DB73B, 0x3F6FA361,
    0x3F715D92, 0x3F72EA81, 0x3F744E86, 0x3F758D9C, 0x3F76AB68, 0x3F77AB3E, 0x3F789023, 0x3F795CD5,
    0x3F7A13D0, 0x3F7AB752, 0x3F7B4962, 0x3F7BCBD1, 0x3F7C4045, 0x3F7CA837, 0x3F7D04FA, 0x3F7D57BE,
    0x3F7DA193, 0x3F7DE36F, 0x3F7E1E2B, 0x3F7E528C, 0x3F7E813F, 0x3F7EAAE3, 0x3F7ED001, 0x3F7EF118,
)
#: Every table either rule uses, finest first: ``g`` has scale ``2^((g − 30)/6)``.
TABLES = len(SCALE_BITS)
STEPS_PER_OCTAVE = 6
#: Rule 0 (format 1.1): checkerboard passes, channel by channel, 64 tables from scale 2^−3.
RULE_CHECKERBOARD = 0
#: Rule 1 (format 1.5): rule 0's passes and features, 76 tables from scale 2^−5.  Rule 0's
#: finest table still charges a zero 0.026 bits, and a wavelet's sparse fine subbands are
#: almost all zeros: on CAVE balloons at 0.05 bpppb that floor was a seventh of the budget.
RULE_FINE = 1
#: Rule → (zero, count): ``t = clamp(round(STEPS_PER_OCTAVE · log2 s) + zero, 0, count − 1)``,
#: and the rule's table t is the global table ``g = t − zero + FINEST_ZERO``.
#: Rule 2 (format 1.6): rule 1's tables, a free zero ratio and the ``group`` feature.
RULE_RATIO = 2
#: Rule 3 (format 1.7): rule 2's model; only the channel biases are stored differently, as
#: Exp-Golomb codes of coarse multiples predicted from channel ``c − group``
#: (:func:`packed_bias_bytes`).  As int16 they were 2 kB of a 99 kB CAVE file at 0.1 bpppb, two
#: fifths of everything but the latents; coded they take about 850 bytes.
RULE_PACKED = 3
#: Rule 4 (format 1.8): rule 3's model and biases; the network's layers, which every grid of
#: a file shares, are stored as Exp-Golomb codes too (:func:`packed_layer_bytes`) instead of
#: raw int16 weights and int32 biases.  As raw integers they were 354 bytes of a 50.7 kB
#: CAVE file at 0.05 bpppb and 176 of an 8.8 kB Samson file; coded, 182 and 85.
RULE_PACKED_NET = 4
RULES: dict[int, tuple[int, int]] = {RULE_CHECKERBOARD: (18, 64), RULE_FINE: (30, 76),
                                     RULE_RATIO: (30, 76), RULE_PACKED: (30, 76),
                                     RULE_PACKED_NET: (30, 76)}
#: The rules whose model is rule 2's (free zero ratio, the group feature).
RATIO_RULES = frozenset({RULE_RATIO, RULE_PACKED, RULE_PACKED_NET})
#: The rules that store channel biases as Exp-Golomb codes (:func:`packed_bias_bytes`).
PACKED_BIAS_RULES = frozenset({RULE_PACKED, RULE_PACKED_NET})
FINEST_ZERO = 30
#: What new files use.
DEFAULT_RULE = RULE_PACKED_NET
#: Rule 2's ratio ladder: rung ``j`` is ``r_j = 2^(−j/2)``, ``j = 0 … RATIOS − 1``.
RATIOS = 49
RATIO_STEPS_PER_OCTAVE = 2
#: float32 bit pattern of 2^(−1/2) (odd rungs are it times a power of two: exact).
HALF_OCTAVE_BITS = 0x3F3504F3
#: Rule 2's table id of (scale table g, ratio rung j) is ``RATIO_BASE + g·RATIOS + j``, so
#: that ids of every rule are distinct and ascending ids are (g, j) in lexicographic order.
RATIO_BASE = 1 << 12


def log2_scale_range(rule: int) -> tuple[float, float]:
    """log2 of the smallest and largest scale the rule's tables hold (the training twin's
    clamp)."""
    zero, count = RULES[rule]
    return (0 - zero) / STEPS_PER_OCTAVE, (count - 1 - zero) / STEPS_PER_OCTAVE


BASE_FEATURES = 14
#: Rule 2's features: rule 1's and channel ``c − group`` at five positions.
RATIO_FEATURES = 19
#: The largest ``group`` a rule-2 grid may declare.
MAX_GROUP = 255
MAX_FRAC = 12
MAX_LAYERS = 4
MAX_WIDTH = 256
#: Activations are clamped to ±2^ACT_BITS after every layer: with int16 weights and at most
#: MAX_WIDTH inputs, ``|W·x + b| < 2^(15 + ACT_BITS + 8) + 2^31`` stays far inside int64.
ACT_BITS = 30
MIN_BITS, MAX_BITS = 2, 16


def scale_of(g: int | np.ndarray) -> np.ndarray:
    """The nominal scale ``s_g`` of global table ``g`` (float64, for training twins and
    tests)."""
    return np.exp2((np.asarray(g, dtype=np.float64) - FINEST_ZERO) / STEPS_PER_OCTAVE)


def _f32(bits: int) -> float:
    return float(np.array([bits], dtype=np.uint32).view(np.float32)[0])


def decay(t: int) -> float:
    """The exact float32 decay ``a_t`` of table ``t``, as a Python float."""
    return _f32(SCALE_BITS[t])


def edge(t: int) -> float:
    """The exact float32 ratio ``c_t = p(1)/p(0)`` of table ``t``, as a Python float."""
    return _f32(EDGE_BITS[t])


def ratio(j: int) -> float:
    """Rule 2's rung ``r_j = 2^(−j/2)``, exactly (a power of two, or one times 2^(−1/2))."""
    return math.ldexp(1.0 if j % 2 == 0 else _f32(HALF_OCTAVE_BITS), -(j // 2))


def split_table(t: int) -> tuple[int, int | None]:
    """``(g, j)`` of table id ``t``: its scale table and ratio rung (None for rules 0/1)."""
    if t < RATIO_BASE:
        return t, None
    g, j = divmod(t - RATIO_BASE, RATIOS)
    return g, j


def table_probs(t: int, bits: int) -> np.ndarray:
    """Unnormalized float64 probabilities of residuals ``−(2^bits − 1) … 2^bits − 1``.

    One side is ``g[0] = 1, g[1] = c, g[d] = g[d−1] · a_g``, zero from the first value
    below 2^−64 on (no subnormals, so flush-to-zero modes change nothing); the vector is
    that side mirrored around the centre.  ``c`` is the table's own edge ``c_g`` (rules 0
    and 1) or the rung ``r_j`` (rule 2).  Multiplications only: exact everywhere.
    """
    g, j = split_table(t)
    span = (1 << bits) - 1
    a = decay(g)
    # The running product is sequential, so a prefix of it is the same numbers as the
    # whole; most tables fall below 2^-64 within a few dozen steps of thousands, so the
    # product runs on a prefix long enough to pass that floor (checked, else the rest).
    reach = span if a >= 1.0 else min(span, 8 + int(80.0 / -math.log2(a)))
    while True:
        steps = np.full(reach, a, dtype=np.float64)
        steps[0] = edge(g) if j is None else ratio(j)
        run = np.cumprod(steps)
        small = np.flatnonzero(run < 2.0**-64)
        if small.size or reach == span:
            break
        reach = min(span, 4 * reach)
    end = int(small[0]) if small.size else reach
    out = np.zeros(2 * span + 1, dtype=np.float64)
    out[span] = 1.0
    out[span + 1:span + 1 + end] = run[:end]
    out[span - end:span] = run[:end][::-1]
    return out


#: Table entries kept built at once, over every cached table.  A table of depth ``bits``
#: has 2^(bits+1) − 1 entries (about 4 bytes each in the coder, 8 as costs); rule 2 has
#: 76 × 49 tables per depth, so an unbounded cache would let a crafted file claim
#: gigabytes.  Counted in entries rather than tables: a count of 512 tables allowed a
#: quarter of a gigabyte at 16 bits yet thrashed on a 12-bit Indian Pines file at
#: 0.5 bpppb, whose 989 tables were built 3,110 times in one decode.
TABLE_ENTRIES = 1 << 24


class _TableCache:
    """Least-recently-used tables of one kind, within :data:`TABLE_ENTRIES` entries (safe
    to share between threads, as the ``lru_cache`` it replaces was)."""

    def __init__(self, build: Callable[[int, int], Any]) -> None:
        self.build = build
        self.held: OrderedDict[tuple[int, int], Any] = OrderedDict()
        self.entries = 0
        self.lock = threading.Lock()

    def __call__(self, t: int, bits: int) -> Any:
        key = (t, bits)
        with self.lock:
            hit = self.held.get(key)
            if hit is not None:
                self.held.move_to_end(key)
                return hit
        made = self.build(t, bits)
        with self.lock:
            if key not in self.held:
                self.held[key] = made
                self.entries += 2 << bits
            while self.entries > TABLE_ENTRIES and len(self.held) > 1:
                (_, old_bits), _ = self.held.popitem(last=False)
                self.entries -= 2 << old_bits
        return made


def _build_model(t: int, bits: int) -> object:
    return constriction.stream.model.Categorical(table_probs(t, bits), perfect=False)


def _build_cost_table(t: int, bits: int) -> np.ndarray:
    widths = np.diff(quantized_cdf(table_probs(t, bits))).astype(np.float64)
    return PRECISION - np.log2(widths)


#: constriction model of table ``t`` over residuals ``−(2^bits − 1) … 2^bits − 1``, whose
#: symbols are the residuals plus ``2^bits − 1``.
_model = _TableCache(_build_model)
#: Bits each residual costs under table ``t``: the exact 24-bit model, not a formula.
_cost_table = _TableCache(_build_cost_table)


@dataclass(frozen=True)
class IntNet:
    """A fixed-point MLP: ``x → relu(W1 x + b1) → … → W_L x + b_L`` with two outputs.

    Weights are int16 and biases int32, both in units of ``2^−frac``; inputs are levels
    scaled by ``2^frac``.  ``channel_bias`` (C, 2) int16 adds a per-channel centre and
    log-scale offset (same units) to the outputs.
    """

    frac: int
    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    channel_bias: np.ndarray

    def check(self, inputs: int, channels: int) -> None:
        """ValueError unless the shapes chain from ``inputs`` features to 2 outputs."""
        if not 0 <= self.frac <= MAX_FRAC:
            raise ValueError(f"frac {self.frac} is outside 0..{MAX_FRAC}")
        if not 1 <= len(self.weights) <= MAX_LAYERS or len(self.weights) != len(self.biases):
            raise ValueError(f"{len(self.weights)} layers (1..{MAX_LAYERS} allowed)")
        width = inputs
        for w, b in zip(self.weights, self.biases, strict=True):
            if w.ndim != 2 or w.shape[1] != width or b.shape != (w.shape[0],):
                raise ValueError(f"layer of shape {w.shape} does not take {width} inputs")
            if not 1 <= w.shape[0] <= MAX_WIDTH:
                raise ValueError(f"layer width {w.shape[0]} is outside 1..{MAX_WIDTH}")
            width = w.shape[0]
        if width != 2:
            raise ValueError(f"the last layer has {width} outputs, not 2")
        if self.channel_bias.shape != (channels, 2):
            raise ValueError(f"channel bias of shape {self.channel_bias.shape}, "
                             f"expected {(channels, 2)}")

    @classmethod
    def from_float(cls, weights: list[np.ndarray], biases: list[np.ndarray],
                   channel_bias: np.ndarray, frac: int = 8) -> IntNet:
        """Round a float network (inputs in level units) to fixed point."""
        lim16, lim32 = (1 << 15) - 1, (1 << 31) - 1
        s = float(1 << frac)
        ws = tuple(np.clip(np.rint(np.asarray(w, np.float64) * s), -lim16, lim16)
                   .astype(np.int16) for w in weights)
        bs = tuple(np.clip(np.rint(np.asarray(b, np.float64) * s), -lim32, lim32)
                   .astype(np.int32) for b in biases)
        cb = np.clip(np.rint(np.asarray(channel_bias, np.float64) * s), -lim16, lim16)
        return cls(frac, ws, bs, cb.astype(np.int16))

    @cached_property
    def float_exact(self) -> bool:
        """Whether every layer after the first sums provably below 2^53 on activations of
        at most 2^ACT_BITS: then float64 computes those integers exactly, in any order.
        A property of the weights alone, so computed once, not once per pass."""
        for w, b in zip(self.weights[1:], self.biases[1:], strict=True):
            rows = int(np.abs(w.astype(np.int64)).sum(axis=1).max(initial=0))
            bias = int(np.abs(b.astype(np.int64)).max(initial=0)) << self.frac
            if (rows << ACT_BITS) + bias >= 1 << 53:
                return False
        return True

    def layer_bytes(self, rule: int = RULE_RATIO) -> bytes:
        """``frac``, the layer count and every layer, as a grid of ``rule`` stores them
        (raw integers, or under rule 4 Exp-Golomb codes): what grids sharing a network
        share."""
        parts = [binio.u8(self.frac), binio.u8(len(self.weights))]
        if rule == RULE_PACKED_NET:
            return b"".join(parts) + packed_layer_bytes(self.weights, self.biases)
        for w, b in zip(self.weights, self.biases, strict=True):
            parts += [binio.u16(w.shape[0]), binio.u16(w.shape[1]),
                      np.ascontiguousarray(w, dtype="<i2").tobytes(),
                      np.ascontiguousarray(b, dtype="<i4").tobytes()]
        return b"".join(parts)

    def bias_bytes(self, rule: int = RULE_RATIO, group: int = 1) -> bytes:
        """The channel biases as a grid of ``rule`` stores them: int16 pairs, or under
        rules 3 and 4 Exp-Golomb codes (:func:`packed_bias_bytes`)."""
        if rule in PACKED_BIAS_RULES:
            return packed_bias_bytes(self.channel_bias, group)
        return np.ascontiguousarray(self.channel_bias, dtype="<i2").tobytes()

    def same_layers(self, other: IntNet) -> bool:
        return self.layer_bytes() == other.layer_bytes()

    @classmethod
    def read_layers(cls, cur: Cursor, rule: int = RULE_RATIO) -> IntNet:
        """The layers as a grid of ``rule`` stores them (channel bias still empty: see
        :meth:`with_bias`)."""
        frac, layers = cur.u8(), cur.u8()
        if not 0 <= frac <= MAX_FRAC or not 1 <= layers <= MAX_LAYERS:
            raise cur.fail(f"context network with frac {frac} and {layers} layers")
        if rule == RULE_PACKED_NET:
            ws, bs = read_packed_layers(cur, layers)
            return cls(frac, ws, bs, np.zeros((0, 2), np.int16))
        wl, bl = [], []
        for _ in range(layers):
            out, inp = _layer_shape(cur)
            wl.append(np.frombuffer(cur.take(2 * out * inp), "<i2").reshape(out, inp)
                      .astype(np.int16))
            bl.append(np.frombuffer(cur.take(4 * out), "<i4").astype(np.int32))
        return cls(frac, tuple(wl), tuple(bl), np.zeros((0, 2), np.int16))

    def with_bias(self, cur: Cursor, channels: int, rule: int, group: int = 1) -> IntNet:
        """This network's layers with ``channels`` rows of channel bias read from ``cur``."""
        if rule in PACKED_BIAS_RULES:
            cb = read_packed_bias(cur, channels, group)
        else:
            cb = np.frombuffer(cur.take(4 * channels), "<i2").reshape(channels, 2).astype(
                np.int16)
        net = IntNet(self.frac, self.weights, self.biases, cb)
        try:
            net.check(inputs(rule), channels)
        except ValueError as exc:
            raise cur.fail(f"context network: {exc}") from None
        return net


#: The largest quantum exponent and Exp-Golomb order of rule 3's channel biases.
MAX_BIAS_SHIFT = 15


def _bias_prediction(k: list[int], c: int, group: int) -> int:
    """Rule 3's prediction of channel ``c``'s bias: channel ``c − group`` (the previous
    component's same orientation in a wavelet level), else the channel before, else 0."""
    return k[c - group] if c >= group else k[c - 1] if c > 0 else 0


def packed_bias_bytes(channel_bias: np.ndarray, group: int) -> bytes:
    """Rule 3's channel biases: per output j, the exponent q of the largest power of two
    that divides them all, then their multiples of 2^q less their prediction
    (:func:`_bias_prediction`), zigzagged, as Exp-Golomb codes of the best order.
    Lossless: the encoder decides how coarse the biases are (in hsz, multiples of 16 and 8
    units of 2^−frac: 1/16 and 1/32 octave, against the tables' 1/2 and 1/6)."""
    cb = np.asarray(channel_bias, np.int64)
    head, w = [], golomb.Writer()
    codes = []
    for j in range(2):
        vals = [int(v) for v in cb[:, j]]
        q = _common_exponent(vals, MAX_BIAS_SHIFT)
        k = [v >> q for v in vals]
        zs = [golomb.zigzag(k[c] - _bias_prediction(k, c, group)) for c in range(len(k))]
        r = golomb.best_order(zs, MAX_BIAS_SHIFT)
        head.append(q)
        codes.append((zs, r))
    for zs, r in codes:
        for z in zs:
            w.code(z, r)
    stream = w.payload()
    return b"".join([binio.u8(head[0]), binio.u8(head[1]), binio.u8(codes[0][1]),
                     binio.u8(codes[1][1]), binio.u32(len(stream)), stream])


def read_packed_bias(cur: Cursor, channels: int, group: int) -> np.ndarray:
    """(channels, 2) int16 from rule 3's coded biases; damage raises FormatError."""
    q0, q1, r0, r1 = cur.u8(), cur.u8(), cur.u8(), cur.u8()
    if max(q0, q1, r0, r1) > MAX_BIAS_SHIFT:
        raise cur.fail(f"channel bias exponents {q0}, {q1} and orders {r0}, {r1} exceed "
                       f"{MAX_BIAS_SHIFT}")
    length = cur.u32()
    if 2 * channels > 8 * length:  # every code takes at least one bit
        raise cur.fail(f"{2 * channels} channel biases cannot fit in {length} bytes")
    reader = golomb.Reader(bytes(cur.take(length)), cur, "channel bias stream")
    out = np.zeros((channels, 2), np.int16)
    for j, (q, r) in enumerate(((q0, r0), (q1, r1))):
        k: list[int] = []
        for c in range(channels):
            k.append(golomb.unzigzag(reader.code(r)) + _bias_prediction(k, c, group))
            if not -(1 << 15) <= k[c] << q < 1 << 15:
                raise cur.fail(f"channel {c}'s bias leaves the 16-bit range")
        out[:, j] = [v << q for v in k]
    reader.finish()
    return out


def _layer_shape(cur: Cursor) -> tuple[int, int]:
    """A stored layer's (out, in), each within 1 … MAX_WIDTH."""
    out, inp = cur.u16(), cur.u16()
    if not 1 <= out <= MAX_WIDTH or not 1 <= inp <= MAX_WIDTH:
        raise cur.fail(f"context network layer {out}x{inp} is out of bounds")
    return out, inp


#: The largest quantum exponent and Exp-Golomb order of rule 4's weights (int16) and
#: layer biases (int32).
MAX_WEIGHT_SHIFT, MAX_LAYER_BIAS_SHIFT = 15, 31


def _common_exponent(vals: list[int], top: int) -> int:
    """The largest ``q`` ≤ ``top`` such that 2^q divides every value (0 when all are 0)."""
    q = 0
    while q < top and any(vals) and all(v % (1 << (q + 1)) == 0 for v in vals):
        q += 1
    return q


def _packed_ints(values: np.ndarray, top: int) -> tuple[int, int, list[int]]:
    """``(q, r, zs)``: the common exponent ``q`` of the values (:func:`_common_exponent`),
    the Exp-Golomb order ``r`` coding the zigzagged multiples in the fewest bits, and those
    zigzagged multiples."""
    vals = [int(v) for v in np.asarray(values, np.int64).reshape(-1)]
    q = _common_exponent(vals, top)
    zs = [golomb.zigzag(v >> q) for v in vals]
    return q, golomb.best_order(zs, top), zs


def packed_layer_bytes(weights: tuple[np.ndarray, ...], biases: tuple[np.ndarray, ...]
                       ) -> bytes:
    """Rule 4's layers after ``frac`` and the layer count: every layer's (out, in), then per
    layer the exponent and order of its weights and of its biases, then one Exp-Golomb
    stream of every layer's weights (row-major) and biases, each value a multiple of its
    tensor's 2^q.  Lossless: the weights are whatever the encoder rounded them to."""
    shapes, head, w = [], [], golomb.Writer()
    coded = []
    for wt, bt in zip(weights, biases, strict=True):
        shapes += [binio.u16(wt.shape[0]), binio.u16(wt.shape[1])]
        for values, top in ((wt, MAX_WEIGHT_SHIFT), (bt, MAX_LAYER_BIAS_SHIFT)):
            q, r, zs = _packed_ints(values, top)
            head += [binio.u8(q), binio.u8(r)]
            coded.append((zs, r))
    for zs, r in coded:
        for z in zs:
            w.code(z, r)
    stream = w.payload()
    return b"".join([*shapes, *head, binio.u32(len(stream)), stream])


def read_packed_layers(cur: Cursor, layers: int
                       ) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Rule 4's weights and layer biases (:func:`packed_layer_bytes`); damage raises
    FormatError."""
    shapes = [_layer_shape(cur) for _ in range(layers)]
    params = []
    for _ in range(layers):
        qw, rw, qb, rb = cur.u8(), cur.u8(), cur.u8(), cur.u8()
        if max(qw, rw) > MAX_WEIGHT_SHIFT or max(qb, rb) > MAX_LAYER_BIAS_SHIFT:
            raise cur.fail(f"context network exponents {qw}, {qb} and orders {rw}, {rb} "
                           f"exceed {MAX_WEIGHT_SHIFT} (weights) or {MAX_LAYER_BIAS_SHIFT} "
                           "(biases)")
        params.append((qw, rw, qb, rb))
    length = cur.u32()
    count = sum(out * inp + out for out, inp in shapes)
    if count > 8 * length:  # every code takes at least one bit
        raise cur.fail(f"{count} context network values cannot fit in {length} bytes")
    reader = golomb.Reader(bytes(cur.take(length)), cur, "context network stream")
    ws, bs = [], []
    for (out, inp), (qw, rw, qb, rb) in zip(shapes, params, strict=True):
        for n, q, r, bits, into in ((out * inp, qw, rw, 16, ws), (out, qb, rb, 32, bs)):
            lim = 1 << (bits - 1)
            vals = np.empty(n, np.int64)
            for i in range(n):
                v = golomb.unzigzag(reader.code(r)) << q
                if not -lim <= v < lim:
                    raise cur.fail(f"a context network value leaves the {bits}-bit range")
                vals[i] = v
            into.append(vals)
    reader.finish()
    return (tuple(v.reshape(out, inp).astype(np.int16)
                  for v, (out, inp) in zip(ws, shapes, strict=True)),
            tuple(v.astype(np.int32) for v in bs))


class Geometry:
    """Where each pass reads, computed once per grid instead of once per pass.

    Holds, for both parities, the flat indices of the pass's positions in a zero-padded
    (H + 2, W + 2) plane and of their guide positions in the padded guide, so that a
    pass's features are a few ``take`` reads of planes that decoding fills in place.
    Planes hold the levels as float64 (integers of at most 16 bits, so exact), which lets
    the first layer run as one BLAS product (:func:`evaluate`).
    """

    def __init__(self, shape: tuple[int, int, int], guide: np.ndarray | None,
                 rule: int = DEFAULT_RULE, group: int = 1) -> None:
        _, h, w = shape
        self.base = inputs(rule) // 2
        self.group = group
        self.h, self.w, self.stride = h, w, w + 2
        ys, xs = np.indices((h, w))
        self.where: list[tuple[np.ndarray, np.ndarray]] = []
        self.guide_at: list[np.ndarray] = []
        for parity in (0, 1):
            sel = ((ys + xs) % 2) == parity
            y, x = ys[sel], xs[sel]
            self.where.append((y * w + x, (y + 1) * self.stride + x + 1))
            if guide is not None:
                _, gh, gw = guide.shape
                self.guide_at.append(((y * gh) // h + 1) * (gw + 2) + (x * gw) // w + 1)
        self.guide = None if guide is None else pad_grid(guide).reshape(guide.shape[0], -1)
        self.guide_stride = 0 if guide is None else guide.shape[2] + 2
        # Even widths put W/2 positions of a pass on every row, so each feature is two
        # strided slices of a plane (rows of one parity each) instead of an indexed
        # gather: the same values in the same order, read at about twice the speed.  A
        # guide of exactly half the size is read alike ((y // 2, x // 2) is (y // 2, j)).
        self.sliced = w % 2 == 0
        self.guide_sliced = self.sliced and guide is not None and \
            (2 * guide.shape[1], 2 * guide.shape[2]) == (h, w)

    def rows(self, padded: np.ndarray, c: int, parity: int, decoded_odd: bool
             ) -> tuple[np.ndarray, np.ndarray]:
        """``(pos, X)`` for pass ``parity`` of channel ``c`` read from ``padded`` (C, H+2,
        W+2) float64, X float64 of shape (n, 2·base): the base features, then their
        absolute values."""
        pos, xt = self.base_rows(padded, c, parity, decoded_odd)
        return pos, _with_abs(xt).T

    def base_rows(self, padded: np.ndarray, c: int, parity: int, decoded_odd: bool
                  ) -> tuple[np.ndarray, np.ndarray]:
        """``(pos, Xb)``: the pass's base features only, feature-major (base, n) float64 (each
        feature one contiguous row; the coding loops take absolute values where needed)."""
        pos, at = self.where[parity]
        base = self.base
        xt = np.empty((base, pos.size), np.float64)
        reads: list[tuple[int, np.ndarray, int, int, bool]] = []  # (row, plane, dy, dx, guide)
        near = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))
        if decoded_odd:
            reads += [(j, padded[c], dy, dx, False) for j, (dy, dx) in enumerate(near[1:])]
        if c > 0:
            reads += [(4 + j, padded[c - 1], dy, dx, False) for j, (dy, dx) in enumerate(near)]
        if self.guide is not None:
            g = min(c, self.guide.shape[0] - 1)
            reads += [(9 + j, self.guide[g], dy, dx, True) for j, (dy, dx) in enumerate(near)]
        if base == RATIO_FEATURES and c >= self.group:
            reads += [(BASE_FEATURES + j, padded[c - self.group], dy, dx, False)
                      for j, (dy, dx) in enumerate(near)]
        filled = np.zeros(base, bool)
        for j, plane, dy, dx, is_guide in reads:
            filled[j] = True
            if is_guide:
                if self.guide_sliced:
                    self._guide_slices(plane, dy, dx, xt[j])
                else:
                    np.take(plane, self.guide_at[parity] + dy * self.guide_stride + dx,
                            out=xt[j])
            elif self.sliced:
                self._slices(plane, parity, dy, dx, xt[j])
            else:
                np.take(plane.reshape(-1), at + dy * self.stride + dx, out=xt[j])
        xt[~filled] = 0.0
        return pos, xt

    def _slices(self, plane: np.ndarray, parity: int, dy: int, dx: int, out: np.ndarray
                ) -> None:
        """``out`` (n,) = ``plane`` (H+2, W+2) at every position of the pass moved by (dy, dx):
        row y's positions are x = (parity + y) % 2 + 2j, so even and odd rows are each one
        strided slice."""
        h, w = self.h, self.w
        grid = out.reshape(h, w // 2)
        for first in (0, 1):
            x0 = 1 + (parity + first) % 2 + dx
            grid[first::2] = plane[1 + first + dy:1 + dy + h:2, x0:x0 + w:2]

    def _guide_slices(self, plane: np.ndarray, dy: int, dx: int, out: np.ndarray) -> None:
        """``out`` (n,) = the padded guide plane (flat) at (y // 2 + dy, j + dx) for the
        pass's positions (y, x = (parity + y) % 2 + 2j): both rows of a pair read alike."""
        h, w = self.h, self.w
        gh, gw = h // 2, w // 2
        g = plane.reshape(gh + 2, gw + 2)[1 + dy:1 + dy + gh, 1 + dx:1 + dx + gw]
        grid = out.reshape(h, w // 2)
        grid[0::2] = g
        grid[1::2] = g


def pad_grid(grid: np.ndarray) -> np.ndarray:
    """The grid as float64 with a zero border of one position (what the rule reads
    outside); levels are integers of at most 16 bits, exact in float64."""
    return np.pad(np.asarray(grid, np.float64), ((0, 0), (1, 1), (1, 1)))


def features(grid: np.ndarray, guide: np.ndarray | None, c: int, parity: int,
             decoded_odd: bool, rule: int = DEFAULT_RULE, group: int = 1
             ) -> tuple[np.ndarray, np.ndarray]:
    """Positions (flat y·W + x) of pass ``parity`` in channel ``c`` and their features.

    ``grid`` is the (C, H, W) int array holding every level decoded so far (others are
    ignored: the rule reads only what the decoder has).  Returns ``(pos, X)`` with X of
    shape (n, :func:`inputs`).  (One pass; coding loops use :class:`Geometry` directly.)
    """
    return Geometry(grid.shape, guide, rule, group).rows(pad_grid(grid), c, parity,
                                                         decoded_odd)


def inputs(rule: int = DEFAULT_RULE) -> int:
    """Width of the rule's feature vector, its base features and their absolute values
    (the same with or without a guide)."""
    return 2 * (RATIO_FEATURES if rule in RATIO_RULES else BASE_FEATURES)


def _layer(h: np.ndarray, w: np.ndarray, b: np.ndarray, frac: int) -> np.ndarray:
    """``h @ w.T + (b << frac)`` exactly, in int64.

    When every partial sum is provably below 2^53 in magnitude (the bound from this
    call's largest input and the weights' row sums), the product runs in float64, where
    integers that small add and multiply exactly in any order: the same integers, from
    BLAS instead of numpy's slow integer loop.  Otherwise it runs in int64.
    """
    w64 = w.astype(np.int64)
    bias = b.astype(np.int64) << frac
    top = int(np.abs(h).max(initial=0))
    bound = top * int(np.abs(w64).sum(axis=1).max(initial=0)) + int(np.abs(bias).max(initial=0))
    if bound < 1 << 53:
        acc = h.astype(np.float64) @ w64.T.astype(np.float64) + bias.astype(np.float64)
        return np.rint(acc).astype(np.int64)
    return h @ w64.T + bias


def _with_abs(xb: np.ndarray) -> np.ndarray:
    """Base features (base, n) followed by their absolute values: the network's input."""
    return np.concatenate((xb, np.abs(xb)))


def _float_layers(net: IntNet, xb: np.ndarray) -> np.ndarray:
    """:func:`_dense_layers` of the positions with a nonzero feature; every all-zero one
    gets the one output of a zero feature vector.

    ``xb`` holds the base features only, feature-major (base, n), as
    :meth:`Geometry.base_rows` builds them; absolute values are taken of the busy
    positions alone.  Each position's outputs are exact integers that depend on its
    features alone, so computing them apart changes nothing; in a sparse subband most
    positions are all zero (the finest grids of a CAVE file at 0.1 bpppb are 99 % zeros),
    and the product was most of a decode's time.
    """
    busy = np.flatnonzero(xb.any(axis=0))
    n = xb.shape[1]
    if busy.size * 4 > n * 3:
        return _dense_layers(net, _with_abs(xb))
    out = np.empty((n, net.weights[-1].shape[0]), dtype=np.int64)
    out[:] = _dense_layers(net, np.zeros((2 * xb.shape[0], 1), dtype=np.float64))
    if busy.size:
        out[busy] = _dense_layers(net, _with_abs(np.take(xb, busy, axis=1)))
    return out


def _dense_layers(net: IntNet, ft: np.ndarray) -> np.ndarray:
    """The network's outputs, (n, outputs) int64, from feature-major ``ft`` (features, n)
    of at most 2^16 and 2^(ACT_BITS − frac), every layer in float64 holding integers.

    Exact: the first layer is ``W·x + b`` (see :func:`evaluate`), and each later one's
    ``W·h + (b << frac)`` stays below 2^53 (:attr:`IntNet.float_exact`), so its floating sums are
    the integers in any order; ``floor(v · 2^−frac)`` is the arithmetic shift of an integer,
    and clamps and ReLUs are exact.  It spares the int64 round trips between layers, which
    were most of a decode's network time.  Feature-major, each layer is one product of a
    small matrix by a long one, and gathering the busy positions reads whole rows.
    """
    lim = float(1 << ACT_BITS)
    w0, b0 = net.weights[0], net.biases[0]
    h = w0.astype(np.float64) @ ft.astype(np.float64, copy=False)
    h += b0.astype(np.float64)[:, None]
    # Exact integers already; rounding (not truncating) also absorbs any last-bit slip.
    np.rint(h, out=h)
    np.clip(h, -lim, lim, out=h)
    shift = 2.0 ** -net.frac
    for w, b in zip(net.weights[1:], net.biases[1:], strict=True):
        np.maximum(h, 0.0, out=h)
        h = w.astype(np.float64) @ h
        h += (b.astype(np.float64) * float(1 << net.frac))[:, None]
        np.rint(h, out=h)
        h *= shift
        np.floor(h, out=h)
        np.clip(h, -lim, lim, out=h)
    return h.T.astype(np.int64)


def evaluate(net: IntNet, feats: np.ndarray, c: int, bits: int, rule: int = DEFAULT_RULE
             ) -> tuple[np.ndarray, np.ndarray]:
    """Integer centres and table ids for feature rows ``feats`` (n, :func:`inputs`) of
    channel ``c``: global scale tables (rules 0, 1) or ``RATIO_BASE + g·RATIOS + j``
    (rule 2).

    ``feats`` holds integers (int64, or float64 holding integers).  Inputs of at most
    2^(ACT_BITS − frac) in magnitude, which every 16-bit level is, never reach the first
    clamp, so the first layer's ``((x << frac)·W + (b << frac)) >> frac`` is exactly
    ``x·W + b``: computed in float64, where it is exact (28 int16 weights on 16-bit inputs
    stay far below 2^53).
    """
    f = np.asarray(feats)
    top = float(np.abs(f).max(initial=0))
    if _float_ok(net, top):
        out = _dense_layers(net, f.T)
    else:
        out = _int_layers(net, f)
    return _centres(net, out, c, bits, rule)


def _evaluate_pass(net: IntNet, xb: np.ndarray, c: int, bits: int, rule: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`evaluate` of a coding pass's base features ``xb`` (base, n) from
    :meth:`Geometry.base_rows`: the same integers, with all-zero positions evaluated once
    and absolute values taken only where a feature is nonzero."""
    top = max(float(xb.max(initial=0)), -float(xb.min(initial=0)))
    if _float_ok(net, top):
        out = _float_layers(net, xb)
    else:
        out = _int_layers(net, _with_abs(xb).T)
    return _centres(net, out, c, bits, rule)


def _float_ok(net: IntNet, top: float) -> bool:
    """Whether features of largest magnitude ``top`` may take the float64 path exactly."""
    return top * (1 << net.frac) <= 1 << ACT_BITS and top < 1 << 16 and net.float_exact


def _int_layers(net: IntNet, f: np.ndarray) -> np.ndarray:
    """The network's outputs (n, outputs) from features ``f`` (n, inputs), in int64 with
    the rule's shifts and clamps: the definition the float path reproduces."""
    lim = 1 << ACT_BITS
    last = len(net.weights) - 1
    h = np.clip(np.asarray(f).astype(np.int64) << net.frac, -lim, lim)
    for i, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        h = np.clip(_layer(h, w, b, net.frac) >> net.frac, -lim, lim)
        if i < last:
            np.maximum(h, 0, out=h)
    return h


def _centres(net: IntNet, out: np.ndarray, c: int, bits: int, rule: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Centres and table ids from the network's integer outputs and channel ``c``'s
    biases."""
    mu = out[:, 0] + int(net.channel_bias[c, 0])
    ls = out[:, 1] + int(net.channel_bias[c, 1])
    half = 1 << net.frac >> 1
    zero, count = RULES[rule]
    table = np.clip(((ls * STEPS_PER_OCTAVE + half) >> net.frac) + zero, 0, count - 1)
    table += FINEST_ZERO - zero
    if rule in RATIO_RULES:
        # Output 0 is log2 r: the rung is −2·log2 r rounded, and the centre is zero.
        rung = np.clip(((-mu * RATIO_STEPS_PER_OCTAVE) + half) >> net.frac, 0, RATIOS - 1)
        return np.zeros_like(mu), RATIO_BASE + table * RATIOS + rung
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    centre = np.clip((mu + half) >> net.frac, lo, hi)
    return centre, table


def _passes(shape: tuple[int, int, int]) -> list[tuple[int, int]]:
    return [(c, parity) for c in range(shape[0]) for parity in (0, 1)]


def _grouped(table: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """A pass's positions ordered by table, tables ascending, positions in pass order
    within each table; and each table in use with its ``[start, end)`` in that order.

    Table ids are below 2^16 (:data:`RATIO_BASE` + 76 · :data:`RATIOS`), and numpy sorts
    16-bit integers stably by radix: a fifth of the time of a 64-bit sort.
    """
    key = table.astype(np.uint16)
    order = np.argsort(key, kind="stable")
    if not order.size:
        return order, []
    ordered = key[order]
    starts = np.concatenate(([0], np.flatnonzero(ordered[1:] != ordered[:-1]) + 1))
    ends = np.append(starts[1:], order.size)
    return order, [(int(ordered[a]), int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def _residual_groups(lv: np.ndarray, bits: int, net: IntNet, guide: np.ndarray | None,
                     rule: int, group: int) -> Iterator[tuple[np.ndarray, int]]:
    """For a fully known grid, in decoding order: each table's residuals, pass by pass."""
    geo, padded = Geometry(lv.shape, guide, rule, group), pad_grid(lv)
    for c, parity in _passes(lv.shape):
        pos, xb = geo.base_rows(padded, c, parity, decoded_odd=parity == 1)
        centre, table = _evaluate_pass(net, xb, c, bits, rule)
        flat = lv[c].reshape(-1)[pos]
        order, groups = _grouped(table)
        residual = flat[order] - centre[order]
        for t, a, b in groups:
            yield residual[a:b], t


def check_levels(levels: np.ndarray, bits: int) -> None:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if levels.ndim != 3 or levels.size == 0:
        raise ValueError(f"context-coded levels must be a non-empty (C, H, W) array, "
                         f"got shape {levels.shape}")
    if levels.min() < lo or levels.max() > hi:
        raise ValueError(f"levels span {levels.min()}..{levels.max()}, outside the "
                         f"{bits}-bit range {lo}..{hi}")


def check_group(group: int, rule: int) -> None:
    """ValueError unless ``group`` is one a grid of ``rule`` may declare (1 before rule 2)."""
    top = MAX_GROUP if rule in RATIO_RULES else 1
    if isinstance(group, bool) or not isinstance(group, int) or not 1 <= group <= top:
        raise ValueError(f"group {group!r} is outside 1..{top} for context rule {rule}")


def encode(levels: np.ndarray, bits: int, net: IntNet, guide: np.ndarray | None,
           rule: int = DEFAULT_RULE, group: int = 1) -> bytes:
    """The ANS words coding ``levels`` (C, H, W) under ``net``: decoder order, reversed."""
    lv = np.asarray(levels, dtype=np.int64)
    check_levels(lv, bits)
    check_group(group, rule)
    net.check(inputs(rule), lv.shape[0])
    chunks = list(_residual_groups(lv, bits, net, guide, rule, group))
    coder = constriction.stream.stack.AnsCoder()
    span = (1 << bits) - 1
    for residual, t in reversed(chunks):
        coder.encode_reverse((residual + span).astype(np.int32), _model(t, bits))
    return coder.get_compressed().astype("<u4").tobytes()


def decode_bytes(shape: tuple[int, int, int], rule: int = DEFAULT_RULE) -> int:
    """About the most memory :func:`decode` holds for a grid of ``shape``: its padded
    float64 planes, the int32 result and one pass's features with their absolute values."""
    c, h, w = shape
    return 8 * c * (h + 2) * (w + 2) + 4 * c * h * w + 8 * inputs(rule) * -(-h * w // 2)


def decode(cur: Cursor, shape: tuple[int, int, int], bits: int, net: IntNet,
           guide: np.ndarray | None, rule: int = DEFAULT_RULE, group: int = 1) -> np.ndarray:
    """Levels (C, H, W) int32 from the rest of ``cur``; damage raises FormatError."""
    if cur.remaining % 4:
        raise cur.fail(f"coded stream length {cur.remaining} is not a multiple of 4")
    words = np.frombuffer(cur.take(cur.remaining), dtype="<u4").astype(np.uint32)
    padded = np.zeros((shape[0], shape[1] + 2, shape[2] + 2), dtype=np.float64)
    geo = Geometry(shape, guide, rule, group)
    span = (1 << bits) - 1
    try:
        coder = constriction.stream.stack.AnsCoder(words)
        for c, parity in _passes(shape):
            pos, xb = geo.base_rows(padded, c, parity, decoded_odd=parity == 1)
            centre, table = _evaluate_pass(net, xb, c, bits, rule)
            order, groups = _grouped(table)
            # Symbols table by table, joined in that order, then put back in pass order
            # at once (one numpy assignment per pass instead of one per table).
            symbols = np.concatenate([coder.decode(_model(t, bits), b - a)
                                      for t, a, b in groups] or [np.empty(0, np.int32)])
            values = np.empty(pos.size, dtype=np.float64)
            values[order] = symbols
            values += centre - span
            padded[c].reshape(-1)[geo.where[parity][1]] = values
        ok = coder.is_empty()
    except ValueError as exc:  # constriction rejects malformed streams with ValueError
        raise cur.fail(f"coded stream is invalid ({exc})") from None
    if not ok:
        raise cur.fail("coded stream does not end where the grid's size says")
    grid = padded[:, 1:-1, 1:-1].astype(np.int64)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if grid.min() < lo or grid.max() > hi:
        raise cur.fail(f"decoded levels leave the {bits}-bit range {lo}..{hi}")
    return np.ascontiguousarray(grid, dtype=np.int32)


def cost_bits(levels: np.ndarray, bits: int, net: IntNet, guide: np.ndarray | None,
              rule: int = DEFAULT_RULE, group: int = 1) -> float:
    """Information content of ``levels`` under ``net`` in bits (the ANS stream's size less
    at most 64 bits of flush), for encoders choosing between candidates without coding."""
    lv = np.asarray(levels, dtype=np.int64)
    span = (1 << bits) - 1
    return sum(float(np.sum(_cost_table(t, bits)[residual + span]))
               for residual, t in _residual_groups(lv, bits, net, guide, rule, group))


def stream_bytes(info_bits: float) -> int:
    """Expected ANS stream size for ``info_bits`` of information (32-bit words)."""
    return 4 * math.ceil((info_bits + 32.0) / 32.0)
