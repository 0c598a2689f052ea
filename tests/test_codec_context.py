"""Context-coded grids (format 1.1): exact round trips, honest cost, integer-only decisions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hsz.codec import context, pack, unpack
from hsz.codec.binio import Cursor
from hsz.codec.payload import Grid
from hsz.errors import FormatError


def _net(rng: np.random.Generator, inputs: int, channels: int, hidden: int = 6
         ) -> context.IntNet:
    return context.IntNet.from_float(
        [rng.normal(0, 0.3, (hidden, inputs)), rng.normal(0, 0.3, (2, hidden))],
        [rng.normal(0, 0.2, hidden), np.array([0.0, 1.0])],
        rng.normal(0, 0.5, (channels, 2)),
    )


def _grids(seed: int = 0, rule: int = context.DEFAULT_RULE) -> dict[str, Grid]:
    rng = np.random.default_rng(seed)
    coarse = np.clip(np.rint(rng.laplace(0, 6, (3, 6, 7))), -127, 127).astype(np.int32)
    fine = np.clip(np.rint(rng.laplace(0, 2, (4, 12, 13))), -127, 127).astype(np.int32)
    group = 3 if rule in context.RATIO_RULES else 1
    return {
        "coarse": Grid(coarse, 8, _net(rng, context.inputs(rule), 3), rule=rule),
        "fine": Grid(fine, 8, _net(rng, context.inputs(rule), 4), guide="coarse", rule=rule,
                     group=group),
    }


def test_scale_table_literals_are_the_stated_laplace_bins() -> None:
    for t in range(context.TABLES):
        s = float(context.scale_of(t))
        want = math.exp(-1.0 / s)
        assert abs(context.decay(t) - want) <= 2e-7 * want + 1e-12
        p0 = -math.expm1(-0.5 / s)
        p1 = 0.5 * math.exp(-0.5 / s) * -math.expm1(-1.0 / s)
        assert abs(context.edge(t) - p1 / p0) <= 2e-7 * (p1 / p0)
        probs = context.table_probs(t, 12)
        probs = probs / probs.sum()
        assert abs(probs[4095] - p0) < 1e-6 and abs(probs[4096] - p1) < 1e-6
    assert context.decay(0) < context.decay(1) < context.decay(context.TABLES - 1) < 1.0


@pytest.mark.parametrize(("rule", "version"),
                         [(0, (1, 1)), (1, (1, 5)), (2, (1, 6)), (3, (1, 7)), (4, (1, 8))])
def test_grids_round_trip_exactly_and_cost_what_they_say(rule: int, version: tuple) -> None:
    """Every rule round-trips; a file is 1.5 only when a grid uses rule 1's finer tables,
    1.6 when one uses rule 2, 1.7 when one uses rule 3, 1.8 when one uses rule 4."""
    grids = _grids(rule=rule)
    data = pack({"shape": [1, 1, 1]}, {}, grids=grids)
    u = unpack(data)
    assert u.version == version
    for name, g in grids.items():
        assert np.array_equal(u.grids[name], g.levels)
    g = grids["fine"]
    stream = context.encode(g.levels, g.bits, g.net, grids["coarse"].levels, rule, g.group)
    info = context.cost_bits(g.levels, g.bits, g.net, grids["coarse"].levels, rule, g.group)
    assert abs(len(stream) - context.stream_bytes(info)) <= 8  # the ANS flush, no more
    if rule == context.RULE_RATIO:  # the group is part of the rule: another one misreads
        try:
            out = context.decode(Cursor(stream, 0, "grid"), g.levels.shape, g.bits, g.net,
                                 grids["coarse"].levels, rule, 1)
        except FormatError:
            pass
        else:
            assert not np.array_equal(out, g.levels)


def test_rule_2_reads_the_channel_a_group_back() -> None:
    """Features 14..18 of channel c are channel c − group at the centre and its four
    neighbours (zero for the first ``group`` channels); rules 0 and 1 have no such slots."""
    grid = np.arange(5 * 4 * 4).reshape(5, 4, 4) + 1
    _, f = context.features(grid, None, 4, 1, True, context.RULE_RATIO, 3)
    assert f.shape[1] == context.inputs(context.RULE_RATIO) == 38
    _, f1 = context.features(grid, None, 4, 1, True, context.RULE_FINE)
    assert f1.shape[1] == context.inputs(context.RULE_FINE) == 28
    first = 1  # the pass's first position: (0, 1)
    assert f[0, 14] == grid[first, 0, 1] and f[0, 14 + 4] == grid[first, 0, 2]
    assert f[0, 14 + 1] == 0 and f[0, 14 + 2] == grid[first, 1, 1]
    _, f2 = context.features(grid, None, 2, 1, True, context.RULE_RATIO, 3)
    assert not f2[:, 14:19].any() and np.array_equal(f2[:, 19:], np.abs(f2[:, :19]))


def test_rule_2_rungs_are_exact_half_octaves() -> None:
    """Rung j is 2^(-j/2) to float32 precision, exactly a power of two on even rungs, and a
    rule-2 table's p(±1)/p(0) is its rung."""
    for j in range(context.RATIOS):
        assert abs(context.ratio(j) - 2.0 ** (-j / 2)) <= 1e-7 * 2.0 ** (-j / 2)
        if j % 2 == 0:
            assert context.ratio(j) == 2.0 ** (-j // 2)
    t = context.RATIO_BASE + 40 * context.RATIOS + 13
    assert context.split_table(t) == (40, 13)
    p = context.table_probs(t, 8)
    assert p[255] == 1.0 and p[256] == p[254] == context.ratio(13)
    assert p[257] == context.ratio(13) * context.decay(40)


def test_rule_2_fits_sparse_heavy_tails_better_than_rule_1() -> None:
    """Mostly zeros with rare large values, each rule at its best constant parameters: one
    Laplace scale cannot price both the zeros and the tail, a free zero ratio can."""
    rng = np.random.default_rng(8)
    lv = np.where(rng.random((1, 64, 64)) < 0.02,
                  np.rint(rng.laplace(0, 6, (1, 64, 64))), 0).astype(np.int32)

    def best(rule: int, ratios: list[float]) -> float:
        w1 = np.zeros((4, context.inputs(rule)))
        out = []
        for lr in ratios:
            for ls in np.arange(-5.0, 4.0, 0.25):
                net = context.IntNet.from_float([w1, np.zeros((2, 4))],
                                                [np.zeros(4), np.zeros(2)],
                                                np.array([[lr, ls]]))
                out.append(context.cost_bits(lv, 8, net, None, rule, 1))
        return min(out)

    one = best(context.RULE_FINE, [0.0])
    two = best(context.RULE_RATIO, [-float(x) for x in np.arange(0.0, 12.0, 0.5)])
    assert two < 0.8 * one


def test_rule_1_charges_sparse_zeros_less_than_rule_0() -> None:
    """A grid of zeros predicted at the smallest scale: rule 0's finest table charges each
    zero 0.026 bits, rule 1's (scale 2^-5) only what the 24-bit quantization leaves."""
    rng = np.random.default_rng(4)
    net = context.IntNet.from_float([rng.normal(0, 0.1, (4, context.inputs(1))),
                                     np.zeros((2, 4))], [np.zeros(4), np.zeros(2)],
                                    np.array([[0.0, -8.0]]))
    zeros = np.zeros((1, 64, 64), np.int32)
    per0 = context.cost_bits(zeros, 8, net, None, 0) / zeros.size
    per1 = context.cost_bits(zeros, 8, net, None, 1) / zeros.size
    assert 0.02 < per0 < 0.03 and per1 < 1e-4


def test_rule_0_tables_are_rule_1_tables_shifted() -> None:
    """The two rules share their tables: rule 0's t is the global table t + 12."""
    rng = np.random.default_rng(6)
    net = _net(rng, context.inputs(1), 1)
    feats = rng.integers(-50, 50, (500, context.inputs(1)))
    c0, t0 = context.evaluate(net, feats, 0, 10, 0)
    c1, t1 = context.evaluate(net, feats, 0, 10, 1)
    assert np.array_equal(c0, c1)
    assert t0.min() >= 12 and np.array_equal(np.maximum(t1, 12), t0)


def test_files_without_grids_stay_format_1_0() -> None:
    assert unpack(pack({}, {"w": np.ones(4, np.float32)})).version == (1, 0)


@pytest.mark.parametrize("rule", [1, 2])
def test_the_network_is_integer_arithmetic_only(rule: int) -> None:
    """Same features, same weights: the same centres and tables whatever the float state."""
    rng = np.random.default_rng(3)
    net = _net(rng, context.inputs(rule), 1)
    feats = rng.integers(-200, 200, (1000, context.inputs(rule)))
    a = context.evaluate(net, feats, 0, 10, rule)
    with np.errstate(all="raise"):
        b = context.evaluate(net, feats.copy(), 0, 10, rule)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert a[0].dtype == np.int64 and a[1].dtype == np.int64
    g = np.array([context.split_table(int(t))[0] for t in a[1]])
    assert g.min() >= 0 and g.max() < context.TABLES
    if rule == context.RULE_RATIO:
        assert not a[0].any() and a[1].min() >= context.RATIO_BASE


@pytest.mark.parametrize("cut", [4, 8, 12])
def test_a_truncated_stream_is_refused(cut: int) -> None:
    g = _grids()["coarse"]
    stream = context.encode(g.levels, g.bits, g.net, None)
    with pytest.raises(FormatError):
        context.decode(Cursor(stream[:-cut], 0, "grid"), g.levels.shape, g.bits, g.net, None)


def test_random_streams_never_hang_or_escape() -> None:
    g = _grids()["coarse"]
    rng = np.random.default_rng(5)
    for _ in range(30):
        junk = rng.integers(0, 256, 4 * int(rng.integers(1, 40)), dtype=np.uint8).tobytes()
        try:
            out = context.decode(Cursor(junk, 0, "grid"), g.levels.shape, g.bits, g.net, None)
        except FormatError as exc:
            assert "\n" not in str(exc)
        else:
            assert out.shape == g.levels.shape


def test_out_of_range_levels_are_refused_when_writing() -> None:
    g = _grids()["coarse"]
    bad = Grid(g.levels * 0 + 200, 8, g.net)
    from hsz.errors import HszError

    with pytest.raises(HszError, match="outside the 8-bit range"):
        pack({}, {}, grids={"coarse": bad})


def _reference(net: context.IntNet, feats: np.ndarray, c: int, bits: int, rule: int = 1
               ) -> tuple[np.ndarray, np.ndarray]:
    """SPEC §6.3 in plain Python integers, row by row: no float anywhere."""
    lim = 1 << context.ACT_BITS
    centres, tables = [], []
    for row in feats.tolist():
        h = [max(-lim, min(lim, int(v) << net.frac)) for v in row]
        for i, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
            out = []
            for wr, br in zip(w.tolist(), b.tolist(), strict=True):
                acc = sum(a * x for a, x in zip(wr, h, strict=True)) + (int(br) << net.frac)
                v = max(-lim, min(lim, acc >> net.frac))
                out.append(max(v, 0) if i < len(net.weights) - 1 else v)
            h = out
        half = 1 << net.frac >> 1
        mu, ls = h[0] + int(net.channel_bias[c, 0]), h[1] + int(net.channel_bias[c, 1])
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        zero, count = context.RULES[rule]
        g = max(0, min(count - 1, ((ls * context.STEPS_PER_OCTAVE + half) >> net.frac)
                       + zero)) + 30 - zero
        if rule == 2:
            rung = max(0, min(context.RATIOS - 1, (-2 * mu + half) >> net.frac))
            centres.append(0)
            tables.append(context.RATIO_BASE + g * context.RATIOS + rung)
        else:
            centres.append(max(lo, min(hi, (mu + half) >> net.frac)))
            tables.append(g)
    return np.array(centres), np.array(tables)


@pytest.mark.parametrize(("seed", "rule"), [(0, 1), (1, 1), (2, 2), (3, 2)])
def test_fast_evaluation_is_the_integer_rule(seed: int, rule: int) -> None:
    """The BLAS path (taken when its sums provably stay below 2^53) and the int64 path give
    the rule's integers exactly, with large weights and 16-bit inputs included."""
    rng = np.random.default_rng(seed)
    n = context.inputs(rule)
    widths = [n, int(rng.integers(2, 40)), int(rng.integers(2, 40)), 2]
    ws = [rng.integers(-(1 << 15), 1 << 15, (o, i)).astype(np.int16)
          for i, o in zip(widths, widths[1:], strict=False)]
    bs = [rng.integers(-(1 << 31), 1 << 31, o).astype(np.int32) for o in widths[1:]]
    net = context.IntNet(int(rng.integers(0, 13)), tuple(ws), tuple(bs),
                         rng.integers(-999, 999, (2, 2)).astype(np.int16))
    feats = rng.integers(-(1 << 15), 1 << 15, (60, n))
    feats[:, n // 2:] = np.abs(feats[:, :n // 2])
    for f in (feats, feats.astype(np.float64), np.asfortranarray(feats.astype(np.float64))):
        got = context.evaluate(net, f, 1, 16, rule)
        want = _reference(net, feats, 1, 16, rule)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


@pytest.mark.parametrize("rule", [1, 2])
def test_sparse_rows_take_the_zero_rows_output_exactly(rule: int) -> None:
    """Rows whose features are all zero share one evaluation (a sparse subband is mostly
    such rows); the result is the rule's integers row by row all the same."""
    rng = np.random.default_rng(7 + rule)
    n = context.inputs(rule)
    net = context.IntNet.from_float([rng.normal(0, 0.5, (8, n)), rng.normal(0, 0.5, (2, 8))],
                                    [rng.normal(0, 1, 8), rng.normal(0, 1, 2)],
                                    rng.normal(0, 2, (3, 2)))
    assert net.float_exact
    feats = np.zeros((400, n), dtype=np.float64)
    busy = rng.choice(400, 30, replace=False)
    feats[busy] = rng.integers(-40, 40, (30, n))
    feats[busy, n // 2:] = np.abs(feats[busy, :n // 2])
    want = _reference(net, feats.astype(np.int64), 2, 12, rule)
    # The coding loops' path: base features only, feature-major, all-zero rows evaluated
    # once; and the public one on whole rows.  Both sparse (30 busy) and dense (all busy).
    dense = feats.copy()
    dense[:, : n // 2] = rng.integers(-40, 40, (400, n // 2))
    dense[:, n // 2:] = np.abs(dense[:, : n // 2])
    for f in (feats, dense):
        want = _reference(net, f.astype(np.int64), 2, 12, rule)
        for got in (context.evaluate(net, f, 2, 12, rule),
                    context._evaluate_pass(net, np.ascontiguousarray(f[:, : n // 2].T), 2, 12,
                                           rule)):
            assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    got = context._evaluate_pass(net, np.ascontiguousarray(feats[:, : n // 2].T), 2, 12, rule)
    assert len(np.unique(got[1][np.setdiff1d(np.arange(400), busy)])) == 1


def _indexed_rows(geo: context.Geometry, padded: np.ndarray, c: int, parity: int,
                  decoded_odd: bool) -> np.ndarray:
    """The feature list of the module docstring, read position by position."""
    pos, at = geo.where[parity]
    s = geo.stride
    xt = np.zeros((geo.base, pos.size))
    flat = padded.reshape(padded.shape[0], -1)
    near = (0, -s, s, -1, 1)
    if decoded_odd:
        for j, d in enumerate(near[1:]):
            xt[j] = flat[c][at + d]
    if c > 0:
        for j, d in enumerate(near):
            xt[4 + j] = flat[c - 1][at + d]
    if geo.guide is not None:
        g, gs = geo.guide[min(c, geo.guide.shape[0] - 1)], geo.guide_stride
        for j, d in enumerate((0, -gs, gs, -1, 1)):
            xt[9 + j] = g[geo.guide_at[parity] + d]
    if geo.base == context.RATIO_FEATURES and c >= geo.group:
        for j, d in enumerate(near):
            xt[context.BASE_FEATURES + j] = flat[c - geo.group][at + d]
    return xt


@pytest.mark.parametrize(("h", "w", "guide"), [
    (4, 6, (2, 2, 3)), (5, 6, (3, 3, 3)), (6, 5, (1, 3, 3)), (8, 8, None), (7, 10, (2, 4, 5)),
    (1, 2, None), (2, 1, None), (1, 1, (1, 1, 1)), (16, 16, (6, 8, 8)), (9, 9, (2, 5, 5))])
def test_sliced_feature_reads_are_the_indexed_ones(h: int, w: int, guide: tuple | None
                                                   ) -> None:
    """Even widths read features as strided slices (and a half-size guide alike); they
    are the values and order of reading each position's neighbours one by one."""
    rng = np.random.default_rng(h * 31 + w)
    lv = rng.integers(-9, 9, (5, h, w))
    g = None if guide is None else rng.integers(-9, 9, guide)
    for rule, group in ((1, 1), (3, 1), (3, 2)):
        geo = context.Geometry(lv.shape, g, rule, group)
        assert geo.sliced == (w % 2 == 0)
        padded = context.pad_grid(lv)
        for c in range(lv.shape[0]):
            for parity in (0, 1):
                for odd in (False, True):
                    pos, xb = geo.base_rows(padded, c, parity, odd)
                    assert np.array_equal(pos, geo.where[parity][0])
                    assert np.array_equal(xb, _indexed_rows(geo, padded, c, parity, odd))


def test_even_grids_with_half_size_guides_round_trip() -> None:
    """The sliced reads, coded and decoded: a wavelet-like pair of grids."""
    rng = np.random.default_rng(12)
    coarse = np.clip(np.rint(rng.laplace(0, 6, (3, 8, 10))), -127, 127).astype(np.int32)
    fine = np.clip(np.rint(rng.laplace(0, 2, (6, 16, 20))), -127, 127).astype(np.int32)
    rule = context.DEFAULT_RULE
    grids = {"coarse": Grid(coarse, 8, _net(rng, context.inputs(rule), 3), rule=rule),
             "fine": Grid(fine, 8, _net(rng, context.inputs(rule), 6), guide="coarse",
                          rule=rule, group=3)}
    u = unpack(pack({"shape": [1, 1, 1]}, {}, grids=grids))
    for name, grid in grids.items():
        assert np.array_equal(u.grids[name], grid.levels)


def test_table_probs_are_the_whole_running_product() -> None:
    """Tables run the product on a prefix; it is the definition's vector, bit for bit."""
    for bits in (2, 5, 9, 12, 16):
        for t in [0, 17, 40, 75] + [context.RATIO_BASE + g * context.RATIOS + j
                                    for g in (0, 33, 75) for j in (0, 1, 24, 48)]:
            g, j = context.split_table(t)
            span = (1 << bits) - 1
            steps = np.full(span, context.decay(g))
            steps[0] = context.edge(g) if j is None else context.ratio(j)
            side = np.ones(span + 1)
            side[1:] = np.cumprod(steps)
            small = np.flatnonzero(side < 2.0**-64)
            if small.size:
                side[small[0]:] = 0.0
            want = np.concatenate((side[::-1], side[1:]))
            assert context.table_probs(t, bits).tobytes() == want.tobytes(), (t, bits)


def test_table_cache_holds_a_bounded_number_of_entries(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    """The cache evicts by entries, least recently used first, and rebuilds alike."""
    built: list[tuple[int, int]] = []
    monkeypatch.setattr(context, "TABLE_ENTRIES", 3 * (2 << 8))
    cache = context._TableCache(lambda t, bits: built.append((t, bits)) or (t, bits))
    for t in (1, 2, 3, 1, 4):
        assert cache(t, 8) == (t, 8)
    assert built == [(1, 8), (2, 8), (3, 8), (4, 8)]  # 1 was a hit; 4 evicted 2
    assert cache.entries <= context.TABLE_ENTRIES and set(cache.held) == {(3, 8), (1, 8), (4, 8)}
    cache(5, 10)  # larger than the budget alone: kept, everything else goes
    assert set(cache.held) == {(5, 10)}


def test_grouping_keeps_pass_order_within_each_table() -> None:
    rng = np.random.default_rng(2)
    table = rng.choice([30, context.RATIO_BASE + 7, context.RATIO_BASE + 75 * 49 + 48], 300)
    order, groups = context._grouped(table)
    assert [t for t, _, _ in groups] == sorted(set(table.tolist()))
    for t, a, b in groups:
        assert np.array_equal(order[a:b], np.flatnonzero(table == t))
    assert context._grouped(np.zeros(0, np.int64))[1] == []


def test_rule_3_is_rule_2_with_smaller_biases() -> None:
    """The same grids under rules 2 and 3 decode alike and code the same streams; only the
    channel biases shrink (coarse biases, as the latent family writes them)."""
    from hsz.model.latent import coarse_bias

    rng = np.random.default_rng(11)
    levels = np.where(rng.random((24, 16, 16)) < 0.1,
                      np.rint(rng.laplace(0, 3, (24, 16, 16))), 0).astype(np.int32)
    base = _net(rng, context.inputs(context.RULE_RATIO), 24)
    cb = np.stack([np.linspace(-3000, -200, 24), np.linspace(-900, 400, 24)], 1)
    net = context.IntNet(base.frac, base.weights, base.biases,
                         coarse_bias(cb + rng.normal(0, 10, cb.shape)))
    sizes = {}
    for rule in (context.RULE_RATIO, context.RULE_PACKED):
        data = pack({}, {}, grids={"g": Grid(levels, 8, net, rule=rule, group=3)})
        assert np.array_equal(unpack(data).grids["g"], levels)
        sizes[rule] = len(data)
    packed = len(context.packed_bias_bytes(net.channel_bias, 3))
    assert packed < 0.6 * 24 * 4
    assert sizes[context.RULE_RATIO] - sizes[context.RULE_PACKED] == 24 * 4 - packed


@pytest.mark.parametrize("group", [1, 2, 3, 7])
def test_packed_biases_round_trip_any_integers(group: int) -> None:
    """Lossless for any int16 biases: exponents from the values, the extremes included."""
    rng = np.random.default_rng(group)
    for cb in (rng.integers(-32768, 32768, (40, 2)),
               rng.integers(-50, 50, (5, 2)) * np.array([16, 8]),
               np.zeros((3, 2)), np.array([[-32768, 32767]]),
               np.array([[0, 1 << 14], [-(1 << 15), 0]])):
        cb = cb.astype(np.int16)
        data = context.packed_bias_bytes(cb, group)
        cur = Cursor(data, 0, "bias")
        got = context.read_packed_bias(cur, cb.shape[0], group)
        assert cur.remaining == 0 and np.array_equal(got, cb)


def test_damaged_packed_biases_are_refused_in_one_line() -> None:
    cb = (np.arange(-20, 20).reshape(20, 2) * 16).astype(np.int16)
    good = context.packed_bias_bytes(cb, 3)
    stream_len = int.from_bytes(good[4:8], "little")
    cases = {
        "exponent": bytes([16]) + good[1:],
        "too short": good[:4] + (1).to_bytes(4, "little") + good[8:9],
        "ends early": good[:4] + (stream_len - 1).to_bytes(4, "little") + good[8:-1],
        "left over": good[:4] + (stream_len + 1).to_bytes(4, "little") + good[8:] + b"\0",
        # Exponent 15 turns the multiples into values beyond int16.
        "range": bytes([15]) + good[1:],
    }
    for what, data in cases.items():
        with pytest.raises(FormatError) as err:
            context.read_packed_bias(Cursor(data, 0, "bias"), 20, 3)
        assert "\n" not in str(err.value), what


def _layers(rng: np.random.Generator, shapes: list[tuple[int, int]]
            ) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    ws = tuple(rng.integers(-32768, 32768, s).astype(np.int16) for s in shapes)
    bs = tuple(rng.integers(-(1 << 31), 1 << 31, s[0]).astype(np.int32) for s in shapes)
    return ws, bs


def test_packed_layers_round_trip_any_integers() -> None:
    """Lossless for any int16 weights and int32 biases, extremes, multiples of powers of
    two and all-zero tensors included; the writer finds each tensor's exponent."""
    rng = np.random.default_rng(4)
    cases = [_layers(rng, [(5, 38), (2, 5)]),
             _layers(rng, [(1, 3)]),
             ((np.full((2, 4), -32768, np.int16), np.full((3, 2), 32767, np.int16),
               (np.arange(6).reshape(2, 3) * 4096).astype(np.int16)),
              (np.array([-(1 << 31), (1 << 31) - 1], np.int32), np.zeros(3, np.int32),
               np.array([1 << 30, -(1 << 30)], np.int32)))]
    for ws, bs in cases:
        data = context.packed_layer_bytes(ws, bs)
        cur = Cursor(data, 0, "layers")
        got_w, got_b = context.read_packed_layers(cur, len(ws))
        assert cur.remaining == 0
        for a, b in zip((*ws, *bs), (*got_w, *got_b), strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b)
    # Exponents as the writer chose them: 12 for multiples of 4096, 30 for ±2^30.
    ws, bs = cases[2]
    head = context.packed_layer_bytes(ws, bs)[4 * len(ws):4 * len(ws) + 4 * len(ws)]
    assert head[8] == 12 and head[10] == 30 and head[6] == 0  # all-zero biases: exponent 0


def test_rule_4_saves_exactly_the_layers_coding() -> None:
    """Rule 4 differs from rule 3 only in the layers' bytes; the grids decode alike."""
    rng = np.random.default_rng(12)
    levels = np.where(rng.random((6, 16, 16)) < 0.2,
                      np.rint(rng.laplace(0, 3, (6, 16, 16))), 0).astype(np.int32)
    net = _net(rng, context.inputs(context.RULE_PACKED_NET), 6)
    sizes = {}
    for rule in (context.RULE_PACKED, context.RULE_PACKED_NET):
        data = pack({}, {}, grids={"g": Grid(levels, 8, net, rule=rule, group=3)})
        u = unpack(data)
        assert np.array_equal(u.grids["g"], levels)
        sizes[rule] = len(data)
    raw = len(net.layer_bytes(context.RULE_PACKED))
    coded = len(net.layer_bytes(context.RULE_PACKED_NET))
    assert coded < 0.8 * raw
    assert sizes[context.RULE_PACKED] - sizes[context.RULE_PACKED_NET] == raw - coded


def test_damaged_packed_layers_are_refused_in_one_line() -> None:
    ws = (np.arange(-40, 40).reshape(2, 40).astype(np.int16) * 4,
          np.array([[3, -5], [7, 1]], np.int16))
    bs = (np.array([256, -512], np.int32), np.array([0, 9], np.int32))
    good = context.packed_layer_bytes(ws, bs)
    at = 4 * len(ws)  # the exponents and orders follow the shapes
    length_at = at + 4 * len(ws)
    stream_len = int.from_bytes(good[length_at:length_at + 4], "little")
    stream = good[length_at + 4:]

    def with_length(n: int, body: bytes) -> bytes:
        return good[:length_at] + n.to_bytes(4, "little") + body

    cases = {
        "weight exponent": good[:at] + bytes([16]) + good[at + 1:],
        "bias order": good[:at + 3] + bytes([32]) + good[at + 4:],
        "too short for the count": with_length(1, stream[:1]),
        "ends early": with_length(stream_len - 1, stream[:-1]),
        "left over": with_length(stream_len + 1, stream + b"\0"),
        # Exponent 15 turns the weights' multiples (of 4, so 2..160 after zigzag) beyond
        # int16.
        "weight range": good[:at] + bytes([15]) + good[at + 1:],
        "layer shape": (0).to_bytes(2, "little") + good[2:],
    }
    for what, data in cases.items():
        with pytest.raises(FormatError) as err:
            context.read_packed_layers(Cursor(data, 0, "layers"), len(ws))
        assert "\n" not in str(err.value), what
