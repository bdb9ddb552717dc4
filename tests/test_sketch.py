"""Properties of QuantileSketch (smoothl1_cli.sketch): exact while few, within 1% beyond, order-free merging."""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from smoothl1_cli.sketch import ALPHA, EXACT_LIMIT, QuantileSketch

MAX = float(np.finfo(np.float64).max)
REPORTED = (0.5, 0.9, 0.95, 0.99)
QS = st.sampled_from(REPORTED) | st.floats(0, 1)
# losses: >= 0; hypothesis adds 0, subnormals and integers of its own accord
LOSSES = st.floats(0, 1e300) | st.floats(0, 1e6) | st.floats(0, 3)
WIDE = st.floats(1e-300, 1e300)
SPECIAL = st.sampled_from([0.0, math.inf, 5e-324, 1e-300, 1e300, MAX])
LIMITS = st.sampled_from([EXACT_LIMIT, 0, 1, 7, 64])  # 0: bucketed from the first value
EXAMPLES = settings(max_examples=60, deadline=None)


@contextmanager
def warnings_as_errors() -> Iterator[None]:
    """Any warning (a NumPy overflow, say) fails the test, even without pytest's filterwarnings=error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def sketch_of(
    values: np.ndarray,
    chunk_rows: int,
    rnd: random.Random,
    weights: np.ndarray | None = None,
    limit: float = EXACT_LIMIT,
) -> QuantileSketch:
    """Per-chunk sketches (every other one by update, the rest by merge) merged as a random tree."""
    pool = []
    for i, start in enumerate(range(0, values.size, chunk_rows)):
        part = slice(start, start + chunk_rows)
        chunk_weights = None if weights is None else weights[part]
        sketch = QuantileSketch(limit).update(values[part], chunk_weights)
        pool.append(sketch if i % 2 else QuantileSketch(limit).merge(sketch))
    while len(pool) > 1:
        a, b = (pool.pop(rnd.randrange(len(pool))) for _ in range(2))
        pool.insert(rnd.randrange(len(pool) + 1), a.merge(b))
    return pool[0]


def order_statistics(values: Sequence[float], q: float) -> tuple[float, float]:
    """The order statistics at ranks floor(q * (n - 1)) and ceil(q * (n - 1))."""
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    return ordered[math.floor(rank)], ordered[math.ceil(rank)]


def assert_within_one_percent(sketch: QuantileSketch, values: Sequence[float], qs: Sequence[float]) -> None:
    for q in qs:
        low, high = order_statistics(values, q)
        estimate = sketch.quantile(q)
        # Python floats: 1.01 * MAX is inf, as a bound should be, without a NumPy overflow warning
        assert 0.99 * low <= estimate <= 1.01 * high, (q, low, estimate, high)


def same_float(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@st.composite
def chunked(draw: st.DrawFn, values: st.SearchStrategy[np.ndarray]) -> tuple[np.ndarray, int]:
    drawn = draw(values)
    return drawn, draw(st.integers(1, drawn.size))


def many_losses(seed: int, size: int, shape: str) -> np.ndarray:
    """More than EXACT_LIMIT values, from one of a few shapes a loss column takes."""
    rng = np.random.default_rng(seed)
    if shape == "lognormal":
        return rng.lognormal(0, 3, size)
    if shape == "uniform":
        return rng.uniform(0, 10, size)
    if shape == "mostly zero":
        return np.where(rng.random(size) < 0.7, 0.0, rng.exponential(1, size))
    if shape == "few distinct":
        return rng.choice([0.0, 0.125, 0.5, 2.5, 1e6], size)
    return 10.0 ** rng.uniform(-300, 300, size)  # "1e-300..1e300"


SHAPES = st.sampled_from(["lognormal", "uniform", "mostly zero", "few distinct", "1e-300..1e300"])


# --- exact while few ------------------------------------------------------------------------------


@EXAMPLES
@given(data=chunked(arrays(np.float64, st.integers(1, 300), elements=LOSSES)), q=QS, rnd=st.randoms())
def test_up_to_the_exact_limit_quantiles_are_numpys_bit_for_bit(data, q, rnd):
    values, chunk_rows = data
    sketch = sketch_of(values, chunk_rows, rnd)
    for quantile in (*REPORTED, q):
        assert sketch.quantile(quantile) == float(np.quantile(values, quantile))


# Thousands of values: numpy makes them from a seed, and a seeded random.Random (not st.randoms,
# whose every call hypothesis records) orders the merges of at most CHUNKS chunks.
SEEDS = st.integers(0, 2**32 - 1)
CHUNKS = st.integers(1, 200)


@settings(max_examples=10, deadline=None)
@given(seed=SEEDS, shape=SHAPES, chunks=CHUNKS)
def test_exactly_exact_limit_values_are_still_exact(seed, shape, chunks):
    values = many_losses(seed, EXACT_LIMIT, shape)
    sketch = sketch_of(values, -(-values.size // chunks), random.Random(seed))
    assert [sketch.quantile(q) for q in REPORTED] == [float(np.quantile(values, q)) for q in REPORTED]


# --- within 1% beyond -----------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    seed=SEEDS,
    shape=SHAPES,
    size=st.integers(EXACT_LIMIT + 1, 3 * EXACT_LIMIT),
    special=arrays(np.float64, st.integers(0, 20), elements=SPECIAL | LOSSES),
    chunks=CHUNKS,
)
def test_beyond_the_exact_limit_quantiles_lie_within_one_percent_of_the_order_statistics(
    seed, shape, size, special, chunks
):
    values = np.concatenate([many_losses(seed, size, shape), special])
    rnd = random.Random(seed)
    rnd.shuffle(values)  # the special values anywhere, not only in the last chunk
    with warnings_as_errors():
        sketch = sketch_of(values, -(-values.size // chunks), rnd)
        assert_within_one_percent(sketch, values.tolist(), (*REPORTED, 0.0, 1.0))


@EXAMPLES
@given(
    data=chunked(arrays(np.float64, st.integers(1, 200), elements=LOSSES | WIDE | SPECIAL)),
    q=QS,
    rnd=st.randoms(),
)
def test_bucketed_quantiles_lie_within_one_percent_for_any_values_zeros_and_infinities(data, q, rnd):
    values, chunk_rows = data
    with warnings_as_errors():
        sketch = sketch_of(values, chunk_rows, rnd, limit=0)  # limit 0: no value is kept exactly
        assert_within_one_percent(sketch, values.tolist(), (*REPORTED, q))


@EXAMPLES
@given(data=chunked(arrays(np.float64, st.integers(1, 200), elements=WIDE)), rnd=st.randoms())
def test_values_from_1e_minus_300_to_1e300_do_not_overflow(data, rnd):
    values, chunk_rows = data
    values = np.concatenate([values, [1e-300, 1e300, MAX]])
    with warnings_as_errors():
        sketch = sketch_of(values, chunk_rows, rnd, limit=0)
        assert_within_one_percent(sketch, values.tolist(), (0.0, *REPORTED, 1.0))
        assert sketch.quantile(1.0) <= MAX  # the top bucket's estimate is still a float64
        assert sketch.counts.size < 270_000  # 128 a power of two: bounded by the range of magnitudes, never by the rows


def bucket_ends(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The smallest and largest float64 whose bits, shifted right by 45 (exponent and 7 mantissa bits), are `keys`."""
    return (keys << 45).view(np.float64), (((keys + 1) << 45) - 1).view(np.float64)


def estimate_of_each(values: np.ndarray) -> np.ndarray:
    """The bucketed estimate of each value, from a sketch that holds it alone."""
    return np.array([QuantileSketch(0).update(np.array([value])).quantile(0.5) for value in values.tolist()])


def test_every_normal_bucket_estimates_its_smallest_and_largest_float_within_alpha():
    assert ALPHA < 0.005  # the README's promise: 0.5% by construction (1% with what is left for the rest)
    keys = np.arange(1 << 7, 0x7FF << 7)  # every bucket from 2**-1022 up to the largest float64
    for ends in bucket_ends(keys):  # one value per bucket: a sketch of them gives one estimate each, in order
        estimates = QuantileSketch(0).update(ends).points()[0][1:-1]  # (less the 0 and inf entries)
        assert estimates.size == keys.size
        assert np.all(np.abs(estimates - ends) <= ALPHA * ends)
    assert np.isfinite(estimates[-1])  # the top bucket's estimate is still a float64


def test_subnormal_values_are_estimated_within_alpha():
    rng = np.random.default_rng(0)
    ulps = np.concatenate([np.arange(1, 1500), rng.integers(1500, 2**52, 1500)])
    values = np.ldexp(ulps.astype(np.float64), -1074)  # n * 2**-1074: every subnormal float64 is one
    assert np.all(np.abs(estimate_of_each(values) - values) <= ALPHA * values)


# --- merging --------------------------------------------------------------------------------------


FINITE_SPECIAL = st.sampled_from([0.0, 5e-324, 1e-300, 1e300, MAX])


def assert_merging_is_order_free(values, chunk_rows, limit, weights, rnd) -> None:
    whole = QuantileSketch(limit).update(values, weights)
    merged = sketch_of(values, chunk_rows, rnd, weights, limit)
    for q in np.linspace(0, 1, 41).tolist():
        assert same_float(merged.quantile(q), whole.quantile(q)), q


@settings(max_examples=40, deadline=None)
@given(
    data=chunked(arrays(np.float64, st.integers(1, 120), elements=LOSSES | FINITE_SPECIAL)),
    limit=LIMITS,
    weighted=st.booleans(),
    weights=arrays(np.float64, 120, elements=st.integers(0, 3).map(float)),
    rnd=st.randoms(),
)
def test_any_chunking_and_merge_order_gives_bit_identical_quantiles(data, limit, weighted, weights, rnd):
    values, chunk_rows = data
    assert_merging_is_order_free(values, chunk_rows, limit, weights[: values.size] if weighted else None, rnd)


@settings(max_examples=40, deadline=None)
@given(
    data=chunked(arrays(np.float64, st.integers(1, 120), elements=LOSSES | SPECIAL)),
    limit=LIMITS,
    weighted=st.booleans(),
    weights=arrays(np.float64, 120, elements=st.integers(0, 3).map(float)),
    rnd=st.randoms(),
)
@example(  # tied infinities, weights 1 then 3 or 3 then 1: q = 0.1 was NaN one way, inf the other
    data=(np.array([math.inf, math.inf]), 1),
    limit=EXACT_LIMIT,
    weighted=True,
    weights=np.array([1.0, 3.0]),
    rnd=random.Random(0),
)
def test_with_infinities_any_chunking_and_merge_order_gives_bit_identical_quantiles(
    data, limit, weighted, weights, rnd
):
    values, chunk_rows = data
    assert_merging_is_order_free(values, chunk_rows, limit, weights[: values.size] if weighted else None, rnd)


@settings(max_examples=10, deadline=None)
@given(seed=SEEDS, shape=SHAPES, chunks=CHUNKS)
def test_many_values_merged_in_any_order_give_bit_identical_quantiles(seed, shape, chunks):
    values = many_losses(seed, 3 * EXACT_LIMIT, shape)
    whole = QuantileSketch().update(values)
    merged = sketch_of(values, -(-values.size // chunks), random.Random(seed))
    assert [merged.quantile(q) for q in REPORTED] == [whole.quantile(q) for q in REPORTED]


# --- weights --------------------------------------------------------------------------------------


@EXAMPLES
@given(
    data=chunked(arrays(np.float64, st.integers(1, 150), elements=LOSSES)),
    weights=arrays(np.float64, 150, elements=st.integers(0, 4).map(float)),
    rnd=st.randoms(),
)
def test_an_integer_weight_counts_as_that_many_copies(data, weights, rnd):
    values, chunk_rows = data
    weights = weights[: values.size]
    weights[0] = max(weights[0], 1.0)  # some row must count
    copies = np.repeat(values, weights.astype(np.int64))
    # bucketed: the counts are the same whole numbers, so the quantiles are the same, bit for bit
    bucketed = sketch_of(values, chunk_rows, rnd, weights, limit=0)
    assert [bucketed.quantile(q) for q in REPORTED] == [QuantileSketch(0).update(copies).quantile(q) for q in REPORTED]
    # exact: NumPy's quantile of the copies, up to the rounding of the interpolation (the rank
    # q * (n - 1) is computed a little differently, and t * (b - a) rounds to ~n ulps of b)
    exact = sketch_of(values, chunk_rows, rnd, weights)
    for q in REPORTED:
        expected = float(np.quantile(copies, q))
        assert exact.quantile(q) == pytest.approx(expected, rel=1e-12, abs=1e-12 * copies.max())


# --- zeros, infinities, NaN -----------------------------------------------------------------------


@EXAMPLES
@given(
    data=chunked(arrays(np.float64, st.integers(1, 100), elements=LOSSES | SPECIAL)),
    nan_at=st.data(),
    limit=LIMITS,
    weighted=st.booleans(),
    rnd=st.randoms(),
)
def test_any_nan_makes_every_quantile_nan(data, nan_at, limit, weighted, rnd):
    values, chunk_rows = data
    values = values.copy()
    values[nan_at.draw(st.integers(0, values.size - 1), label="nan at")] = math.nan
    weights = np.ones(values.size) if weighted else None
    sketch = sketch_of(values, chunk_rows, rnd, weights, limit)
    assert all(math.isnan(sketch.quantile(q)) for q in (0.0, *REPORTED, 1.0))


@pytest.mark.parametrize("limit", [EXACT_LIMIT, 0])
def test_all_zeros_give_zero_and_an_empty_sketch_gives_nan(limit):
    zeros = QuantileSketch(limit).update(np.zeros(10))
    assert [zeros.quantile(q) for q in REPORTED] == [0.0] * 4
    assert math.isnan(QuantileSketch(limit).quantile(0.5))


INFINITE_CASES = [  # values, q, the quantile
    ([1.0, math.inf], 0.25, math.inf),  # a quarter of the way from 1 to inf: inf
    ([0.0, 1.0, math.inf], 0.25, 0.5),
    ([math.inf], 0.5, math.inf),
    ([1.0, 2.0, math.inf], 0.5, 2.0),  # rank 1 exactly: the 2, nothing interpolated
    ([1.0, math.inf], 0.5, math.inf),
    ([1.0, math.inf], 0.99, math.inf),
    ([math.inf, math.inf], 0.5, math.inf),
    ([1.0, math.inf, math.inf], 0.75, math.inf),
]


@pytest.mark.parametrize(("values", "q", "expected"), INFINITE_CASES, ids=str)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_infinite_values_interpolate_like_order_statistics_while_exact(values, q, expected, weighted):
    # NumPy's interpolation computes 0 * inf or inf - inf next to an infinite value: NaN with no NaN
    # in (np.quantile([1, 2, inf], 0.5) is nan); the sketch must not. Bucketed, too, says inf.
    weights = np.ones(len(values)) if weighted else None
    exact = QuantileSketch().update(np.array(values), weights)
    bucketed = QuantileSketch(0).update(np.array(values), weights)
    assert exact.quantile(q) == expected
    low, high = order_statistics(values, q)
    assert 0.99 * low <= bucketed.quantile(q) <= 1.01 * high


def numpy_brackets(values: np.ndarray, q: float) -> tuple[float, float]:
    """The two order statistics NumPy interpolates between (no arithmetic, so no NaN next to inf)."""
    return float(np.quantile(values, q, method="lower")), float(np.quantile(values, q, method="higher"))


@EXAMPLES
@given(data=chunked(arrays(np.float64, st.integers(1, 100), elements=LOSSES | SPECIAL)), rnd=st.randoms())
def test_exact_quantiles_with_infinities_lie_between_the_order_statistics(data, rnd):
    values, chunk_rows = data
    sketch = sketch_of(values, chunk_rows, rnd)
    for q in (0.0, *REPORTED, 1.0):
        low, high = numpy_brackets(values, q)
        assert low <= sketch.quantile(q) <= high, q  # never NaN with no NaN in


@EXAMPLES
@given(
    data=chunked(arrays(np.float64, st.integers(1, 100), elements=LOSSES | SPECIAL)),
    weights=arrays(np.float64, 100, elements=st.integers(0, 3).map(float)),
    rnd=st.randoms(),
)
@example(data=(np.array([math.inf, math.inf]), 2), weights=np.ones(100), rnd=random.Random(0))
def test_weighted_exact_quantiles_with_infinities_lie_between_the_order_statistics(data, weights, rnd):
    values, chunk_rows = data
    weights = weights[: values.size]
    weights[0] = max(weights[0], 1.0)
    copies = np.repeat(values, weights.astype(np.int64))
    sketch = sketch_of(values, chunk_rows, rnd, weights)
    for q in (0.0, *REPORTED, 1.0):
        low, high = numpy_brackets(copies, q)
        assert low <= sketch.quantile(q) <= high, q


# --- the histogram the table view shows -------------------------------------------------------------


@EXAMPLES
@given(
    values=arrays(np.float64, st.integers(1, 100), elements=LOSSES | SPECIAL),
    limit=LIMITS,
    weights=arrays(np.float64, 100, elements=st.integers(0, 3).map(float)),
    weighted=st.booleans(),
)
@example(values=np.array([7.0, 7.000000000000001]), limit=EXACT_LIMIT, weights=np.ones(100), weighted=False)
@example(values=np.array([MAX]), limit=EXACT_LIMIT, weights=np.ones(100), weighted=False)
def test_histogram_rows_are_ordered_and_hold_every_weight(values, limit, weights, weighted):
    weights = weights[: values.size] if weighted else None
    rows = QuantileSketch(limit).update(values, weights).histogram()
    assert all(low <= high for low, high, _ in rows)
    assert all(a[1] <= b[0] for a, b in zip(rows, rows[1:], strict=False))
    assert sum(weight for _, _, weight in rows) == (values.size if weights is None else weights.sum())
