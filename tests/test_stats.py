"""Properties of LossStats (smoothl1_cli.stats): any chunking and merge order gives the reference's statistics."""

from __future__ import annotations

import math
import pickle
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from smoothl1_cli.kernel import smooth_l1_terms
from smoothl1_cli.stats import QUANTILES, Chunk, LossStats, Summary
from tests.conftest import reference_loss

VALUES = st.one_of(st.floats(-1e6, 1e6), st.floats(-1e100, 1e100), st.floats(-3, 3))
BETAS = st.one_of(st.just(0.0), st.floats(0, 10), st.floats(0, 1e6))
MERGES = st.sampled_from(["update in order", "random merge tree"])
EXAMPLES = settings(max_examples=60, deadline=None)
STD_RTOL = 1e-9
SUM_RTOL = 1e-12


@st.composite
def tables(draw: st.DrawFn, max_rows: int = 300, values: st.SearchStrategy[float] = VALUES) -> tuple[np.ndarray, ...]:
    """(pred, target) of one random length."""
    size = draw(st.integers(1, max_rows))
    return draw(arrays(np.float64, size, elements=values)), draw(arrays(np.float64, size, elements=values))


def chunk_of(pred, target, beta, start, stop, weight=None) -> Chunk:
    """Rows [start, stop) as evaluate.py's _Run.reduce builds them for one (pred, target) pair."""
    prediction, actual = pred[start:stop], target[start:stop]
    diff = prediction - actual
    abs_diff = np.abs(diff)
    return Chunk(
        smooth_l1_terms(diff, beta, np),
        abs_diff,
        np.square(diff),
        abs_diff >= beta,
        np.arange(start, stop, dtype=np.int64),
        None if weight is None else weight[start:stop],
        prediction,
        actual,
        ids_getter(start),
    )


def ids_getter(start: int) -> Callable[[np.ndarray], Sequence[str]]:
    return lambda positions: [f"id{start + int(p)}" for p in positions]


def loss_stats(pred, target, beta, chunk_rows, merge, rnd, weight=None, top_k=0, quantiles=True) -> LossStats:
    """LossStats of all rows, fed in chunks of `chunk_rows`, combined as `merge` says."""
    chunks = [chunk_of(pred, target, beta, start, min(start + chunk_rows, pred.size), weight)
              for start in range(0, pred.size, chunk_rows)]  # fmt: skip
    empty = LossStats(top_k) if quantiles else LossStats.without_quantiles(top_k)
    if merge == "update in order":
        stats = empty
        for chunk in chunks:
            stats = stats.update(chunk)
        return stats
    pool = [empty.update(chunk) for chunk in chunks]
    while len(pool) > 1:  # merge two random ones, either way round, until one is left: any tree, any order
        a, b = (pool.pop(rnd.randrange(len(pool))) for _ in range(2))
        pool.insert(rnd.randrange(len(pool) + 1), a.merge(b))
    return pool[0]


def summarize(pred, target, beta, chunk_rows, merge, rnd, weight=None) -> Summary:
    return loss_stats(pred, target, beta, chunk_rows, merge, rnd, weight).summarize()


def reference_losses(pred, target, beta) -> list[float]:
    """Independent per-row losses: conftest's reference_loss (PyTorch's formula, or the exact loss where
    that formula loses the value)."""
    return [reference_loss(p, t, beta) for p, t in zip(pred.tolist(), target.tolist(), strict=True)]


def fed_losses(pred, target, beta) -> list[float]:
    """The kernel's terms, which LossStats is fed: min, max and quantiles must be these, exactly."""
    return smooth_l1_terms(pred - target, beta, np).tolist()


def reference_mean(losses: Sequence[float], weights: Sequence[float] | None = None) -> float:
    """conftest.reference_mean's formula: math.fsum(w * l) / math.fsum(w)."""
    if weights is None:
        return math.fsum(losses) / len(losses)
    return math.fsum(w * loss for w, loss in zip(weights, losses, strict=True)) / math.fsum(weights)


def exact_std(losses: Sequence[float], weights: Sequence[float] | None = None) -> float:
    """Population std (ddof 0, frequency weights) in exact rational arithmetic, rounded once at the end."""
    w = [Fraction(1)] * len(losses) if weights is None else [Fraction(x) for x in weights]
    x = [Fraction(value) for value in losses]
    total = sum(w)
    mean = sum(wi * xi for wi, xi in zip(w, x, strict=True)) / total
    variance = sum(wi * (xi - mean) ** 2 for wi, xi in zip(w, x, strict=True)) / total
    k = (variance.denominator.bit_length() - variance.numerator.bit_length()) // 2  # variance * 4**k is near 1
    return math.ldexp(math.sqrt(variance * Fraction(4) ** k), -k)  # float(variance) can under- or overflow


def assert_std_close(std: float, losses: Sequence[float], weights: Sequence[float] | None = None) -> None:
    # The std of nearly equal losses is ill-conditioned: each chunk's mean carries a rounding of
    # ~2**-53 * max loss, so an exactly-0 std comes out as ~1e-17 * max loss. The absolute floor
    # allows for that (1e-12 * max: thousands of roundings); the 1e-9 relative bound does the rest.
    floor = 1e-12 * max(losses)
    assert std == pytest.approx(exact_std(losses, weights), rel=STD_RTOL, abs=floor)


def assert_quantiles_close(weighted: dict[str, float], unweighted: dict[str, float], largest: float) -> None:
    """Exact weighted quantiles (a weight w: w copies) against NumPy's on the copies.

    Not bit for bit: the two compute the rank q * (n - 1) and the interpolation a + t * (b - a)
    in different orders, so they differ by a few ulps of t times b - a (~n ulps of the largest).
    """
    for name, value in unweighted.items():
        assert weighted[name] == pytest.approx(value, rel=1e-12, abs=1e-12 * largest), name


# --- unweighted --------------------------------------------------------------------------------


@EXAMPLES
@given(data=tables(), beta=BETAS, chunk=st.data(), merge=MERGES, rnd=st.randoms(use_true_random=False))
def test_any_chunking_and_merge_order_gives_the_reference_statistics(data, beta, chunk, merge, rnd):
    pred, target = data
    n = pred.size
    summary = summarize(pred, target, beta, chunk.draw(st.integers(1, n), label="chunk_rows"), merge, rnd)
    losses, fed = reference_losses(pred, target, beta), fed_losses(pred, target, beta)
    diffs = (pred - target).tolist()

    assert summary.count == n
    assert summary.weight == n
    assert summary.mean == pytest.approx(reference_mean(losses), rel=SUM_RTOL)
    assert summary.sum == pytest.approx(math.fsum(losses), rel=SUM_RTOL)
    assert_std_close(summary.std, losses)
    assert summary.min == min(fed)
    assert summary.max == max(fed)
    assert summary.linear_fraction == sum(abs(d) >= beta for d in diffs) / n
    assert summary.mae == pytest.approx(math.fsum(abs(d) for d in diffs) / n, rel=SUM_RTOL)
    assert summary.rmse == pytest.approx(math.sqrt(math.fsum(d * d for d in diffs) / n), rel=SUM_RTOL)
    # n <= EXACT_LIMIT unweighted rows: quantiles are NumPy's (linear interpolation), bit for bit
    assert summary.quantiles == {name: float(np.quantile(fed, q)) for name, q in QUANTILES.items()}


def test_the_worked_example_of_the_spec():
    pred, target = np.array([0.5, 1.5, 2.5]), np.array([1.0, 2.0, 3.0])
    summary = summarize(pred, target, 1.0, 2, "update in order", random.Random(0))
    assert (summary.mean, summary.sum, summary.std, summary.min, summary.max) == (0.125, 0.375, 0.0, 0.125, 0.125)
    assert (summary.linear_fraction, summary.mae, summary.rmse) == (0.0, 0.5, 0.5)


def test_summarize_works_for_losses_a_few_ulps_apart():  # its histogram once raised ValueError here
    pred, target = np.array([7.0, 7.000000000000001]), np.zeros(2)
    summary = summarize(pred, target, 0.0, 2, "update in order", random.Random(0))
    assert (summary.min, summary.max) == (7.0, 7.000000000000001)


# --- without quantiles ---------------------------------------------------------------------------


@EXAMPLES
@given(
    data=tables(),
    beta=BETAS,
    weighted=st.booleans(),
    chunk=st.data(),
    merge=MERGES,
    seed=st.integers(0, 2**32 - 1),
)
def test_statistics_without_quantiles_are_the_same_but_for_the_quantiles(data, beta, weighted, chunk, merge, seed):
    pred, target = data
    n = pred.size
    weight = chunk.draw(arrays(np.float64, n, elements=st.integers(0, 3).map(float)), "weight") if weighted else None
    weight = None if weight is None else some_positive(weight)
    chunk_rows = chunk.draw(st.integers(1, n), label="chunk_rows")
    kept, dropped = (
        loss_stats(pred, target, beta, chunk_rows, merge, random.Random(seed), weight, top_k=3, quantiles=quantiles)
        for quantiles in (True, False)
    )  # the same chunks, merged in the same tree
    with_quantiles, summary = kept.summarize(), dropped.summarize()

    assert dropped.sketch is None
    assert summary.distribution is None
    assert summary.quantiles.keys() == QUANTILES.keys()
    assert all(math.isnan(value) for value in summary.quantiles.values())
    assert replace(summary, quantiles=with_quantiles.quantiles, distribution=kept.sketch) == with_quantiles
    assert dropped.worst == kept.worst
    w = [1.0] * n if weight is None else weight.tolist()
    assert summary.mean == pytest.approx(reference_mean(reference_losses(pred, target, beta), w), rel=SUM_RTOL)
    assert pickle.loads(pickle.dumps(dropped)) == dropped


def test_merging_statistics_with_and_without_quantiles_keeps_none():
    pred, target = np.array([0.5, 3.0, -1.0, 2.0]), np.zeros(4)
    kept = LossStats(2).update(chunk_of(pred, target, 1.0, 0, 2))
    dropped = LossStats.without_quantiles(2).update(chunk_of(pred, target, 1.0, 2, 4))
    for merged in (kept.merge(dropped), dropped.merge(kept)):
        assert merged.sketch is None
        assert merged == LossStats.without_quantiles(2).update(chunk_of(pred, target, 1.0, 0, 2)).merge(dropped)
        summary = merged.summarize()
        assert (summary.count, summary.sum, summary.max) == (4, 0.125 + 2.5 + 0.5 + 1.5, 2.5)
        assert all(math.isnan(value) for value in summary.quantiles.values())
    assert kept.merge(dropped) != kept.merge(LossStats(2).update(chunk_of(pred, target, 1.0, 2, 4)))


# --- weights -----------------------------------------------------------------------------------


def some_positive(weight: np.ndarray) -> np.ndarray:
    """The weights, with the first made 1 if they add up to 0 (an input error the evaluator rejects)."""
    if not weight.sum() > 0:
        weight = weight.copy()
        weight[0] = 1.0
    return weight


@EXAMPLES
@given(data=tables(), beta=BETAS, chunk=st.data(), merge=MERGES, rnd=st.randoms(use_true_random=False))
def test_weighted_statistics_match_the_weighted_reference(data, beta, chunk, merge, rnd):
    pred, target = data
    n = pred.size
    # 0 and normal weights: a subnormal weight times a loss rounds to a few bits in both the
    # product and the reference, so its (ill-posed) relative precision is not tested here
    weight = some_positive(chunk.draw(arrays(np.float64, n, elements=st.just(0.0) | st.floats(1e-6, 1e6)), "weight"))
    summary = summarize(pred, target, beta, chunk.draw(st.integers(1, n), label="chunk_rows"), merge, rnd, weight)
    losses, fed = reference_losses(pred, target, beta), fed_losses(pred, target, beta)
    w, diffs = weight.tolist(), (pred - target).tolist()
    total = math.fsum(w)

    assert summary.count == n
    assert summary.weight == pytest.approx(total, rel=SUM_RTOL)
    assert summary.mean == pytest.approx(reference_mean(losses, w), rel=SUM_RTOL)
    assert summary.sum == pytest.approx(math.fsum(wi * li for wi, li in zip(w, losses, strict=True)), rel=SUM_RTOL)
    assert_std_close(summary.std, losses, w)
    assert summary.min == min(li for wi, li in zip(w, fed, strict=True) if wi > 0)  # a weight-0 row is not seen
    assert summary.max == max(li for wi, li in zip(w, fed, strict=True) if wi > 0)
    linear = math.fsum(wi for wi, d in zip(w, diffs, strict=True) if abs(d) >= beta)
    assert summary.linear_fraction == pytest.approx(linear / total, rel=SUM_RTOL)
    assert summary.mae == pytest.approx(
        math.fsum(wi * abs(d) for wi, d in zip(w, diffs, strict=True)) / total, rel=SUM_RTOL
    )
    rmse = math.sqrt(math.fsum(wi * d * d for wi, d in zip(w, diffs, strict=True)) / total)
    assert summary.rmse == pytest.approx(rmse, rel=SUM_RTOL)


@EXAMPLES
@given(data=tables(), beta=BETAS, chunk=st.data(), merge=MERGES, rnd=st.randoms(use_true_random=False))
def test_unit_weights_equal_no_weights(data, beta, chunk, merge, rnd):
    pred, target = data
    chunk_rows = chunk.draw(st.integers(1, pred.size), label="chunk_rows")
    plain = summarize(pred, target, beta, chunk_rows, merge, rnd)
    unit = summarize(pred, target, beta, chunk_rows, merge, rnd, np.ones(pred.size))

    assert (unit.count, unit.weight, unit.min, unit.max) == (plain.count, plain.weight, plain.min, plain.max)
    assert unit.linear_fraction == plain.linear_fraction
    for name in ("mean", "sum", "mae", "rmse"):
        assert getattr(unit, name) == pytest.approx(getattr(plain, name), rel=SUM_RTOL), name
    assert unit.std == pytest.approx(plain.std, rel=STD_RTOL, abs=1e-12 * plain.max)
    assert_quantiles_close(unit.quantiles, plain.quantiles, plain.max)


@EXAMPLES
@given(data=tables(max_rows=200), beta=BETAS, chunk=st.data(), merge=MERGES, rnd=st.randoms(use_true_random=False))
def test_an_integer_weight_equals_repeating_the_row(data, beta, chunk, merge, rnd):
    pred, target = data
    n = pred.size
    weight = some_positive(chunk.draw(arrays(np.float64, n, elements=st.integers(0, 4).map(float)), "weight"))
    counts = weight.astype(np.int64)
    repeated_pred, repeated_target = np.repeat(pred, counts), np.repeat(target, counts)
    weighted = summarize(pred, target, beta, chunk.draw(st.integers(1, n), label="chunk_rows"), merge, rnd, weight)
    repeated_rows = chunk.draw(st.integers(1, repeated_pred.size), label="repeated chunk_rows")
    repeated = summarize(repeated_pred, repeated_target, beta, repeated_rows, merge, rnd)

    assert weighted.count == n
    assert weighted.weight == repeated.count == repeated_pred.size
    for name in ("mean", "sum", "mae", "rmse"):
        assert getattr(weighted, name) == pytest.approx(getattr(repeated, name), rel=SUM_RTOL), name
    assert_std_close(weighted.std, reference_losses(repeated_pred, repeated_target, beta))
    assert (weighted.min, weighted.max) == (repeated.min, repeated.max)
    assert weighted.linear_fraction == repeated.linear_fraction  # whole-number sums: exact
    assert_quantiles_close(weighted.quantiles, repeated.quantiles, repeated.max)


@EXAMPLES
@given(
    data=tables(max_rows=150),
    extra=tables(max_rows=150),
    beta=BETAS,
    chunk=st.data(),
    merge=MERGES,
    rnd=st.randoms(use_true_random=False),
)
def test_rows_of_weight_zero_change_nothing(data, extra, beta, chunk, merge, rnd):
    pred, target = data
    base_weight = chunk.draw(arrays(np.float64, pred.size, elements=st.integers(1, 5).map(float)), "weight")
    # the extra rows (any losses, however large) go in at random places, each with weight 0
    extra_pred, extra_target = extra
    order = np.array(rnd.sample(range(pred.size + extra_pred.size), pred.size + extra_pred.size))
    all_pred = np.concatenate([pred, extra_pred])[order]
    all_target = np.concatenate([target, extra_target])[order]
    all_weight = np.concatenate([base_weight, np.zeros(extra_pred.size)])[order]
    k = chunk.draw(st.integers(1, 10), label="top_k")

    base_stats = loss_stats(pred, target, beta, pred.size, "update in order", rnd, base_weight, top_k=k)
    rows = chunk.draw(st.integers(1, all_pred.size), label="chunk_rows")
    with_zeros = loss_stats(all_pred, all_target, beta, rows, merge, rnd, all_weight, top_k=k)
    base, summary = base_stats.summarize(), with_zeros.summarize()

    expected_mean = reference_mean(reference_losses(pred, target, beta), base_weight.tolist())
    assert summary.mean == pytest.approx(expected_mean, rel=SUM_RTOL)
    for name in ("mean", "sum", "mae", "rmse", "weight"):
        assert getattr(summary, name) == pytest.approx(getattr(base, name), rel=SUM_RTOL), name
    assert summary.std == pytest.approx(base.std, rel=STD_RTOL, abs=1e-12 * base.max)
    assert (summary.min, summary.max, summary.linear_fraction) == (base.min, base.max, base.linear_fraction)
    assert summary.quantiles == base.quantiles  # whole-number weights: the sketch's counts are exact
    assert with_zeros.worst.loss.tolist() == base_stats.worst.loss.tolist()
    assert all_weight[with_zeros.worst.rows].all()  # never a row of weight 0 among the worst


# --- worst rows ----------------------------------------------------------------------------------

# few distinct values, so that many losses tie
TIED = st.sampled_from([0.0, 0.25, 0.5, -0.5, 1.0, 2.0, -2.0, 3.0])


@settings(max_examples=100, deadline=None)
@given(
    data=tables(max_rows=80, values=TIED),
    beta=st.sampled_from([0.0, 1.0]),
    k=st.integers(0, 12),
    weighted=st.booleans(),
    chunk=st.data(),
    merge=MERGES,
    rnd=st.randoms(use_true_random=False),
)
def test_worst_rows_are_the_largest_losses_earliest_row_first_at_any_chunking(
    data, beta, k, weighted, chunk, merge, rnd
):
    pred, target = data
    n = pred.size
    weight = (
        chunk.draw(arrays(np.float64, n, elements=st.sampled_from([0.0, 1.0, 2.0])), "weight") if weighted else None
    )
    chunk_rows = chunk.draw(st.integers(1, n), label="chunk_rows")
    worst = loss_stats(pred, target, beta, chunk_rows, merge, rnd, weight, top_k=k).worst
    if k == 0:
        assert worst is None
        return
    losses = fed_losses(pred, target, beta)
    candidates = [row for row in range(n) if weight is None or weight[row] > 0]
    expected = sorted(candidates, key=lambda row: (-losses[row], row))[:k]
    assert worst.rows.tolist() == expected
    assert worst.loss.tolist() == [losses[row] for row in expected]
    assert worst.prediction.tolist() == pred[expected].tolist()
    assert worst.actual.tolist() == target[expected].tolist()
    assert worst.ids == tuple(f"id{row}" for row in expected)
