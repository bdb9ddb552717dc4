"""Properties of the per-row loss terms (smoothl1_cli.kernel) against the plain-Python reference."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from smoothl1_cli.kernel import huber_terms, smooth_l1_terms
from tests.conftest import exact_smooth_l1, leaves_pytorchs_formula, reference_loss

MAX = float(np.finfo(np.float64).max)
SMALLEST_NORMAL = float(np.finfo(np.float64).smallest_normal)

# Both scales at once: hypothesis' own bias gives subnormals, zeros and small integers, the narrow
# range puts plenty of rows on the quadratic side of beta, the wide one on the linear side.
FINITE = st.one_of(st.floats(-1e300, 1e300), st.floats(-2e6, 2e6), st.floats(-2, 2))
BETAS = st.one_of(st.just(0.0), st.floats(0, 1e6), st.floats(0, 2))
DELTAS = st.one_of(st.floats(0, 1e6, exclude_min=True), st.floats(0, 2, exclude_min=True))
NORMAL_PARAMETERS = st.floats(1e-300, 1e6)  # where 0.5 * beta is exact: no subnormal halving
SIZES = st.integers(1, 60)
EXAMPLES = settings(max_examples=120, deadline=None)


@st.composite
def pred_and_target(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    size = draw(SIZES)
    return draw(arrays(np.float64, size, elements=FINITE)), draw(arrays(np.float64, size, elements=FINITE))


def finite_diffs(elements: st.SearchStrategy[float] = FINITE) -> st.SearchStrategy[np.ndarray]:
    return arrays(np.float64, SIZES, elements=elements)


def loss_terms(loss: str, diff: np.ndarray, parameter: float) -> np.ndarray:
    return (smooth_l1_terms if loss == "smooth_l1" else huber_terms)(diff, parameter, np)


def within_two_roundings(term: float, exact: Fraction) -> bool:
    """|term - exact| <= 2**-51 * exact, or one subnormal step (2**-1074) where the loss is that small."""
    return abs(Fraction(term) - exact) <= Fraction(2) ** -51 * exact + Fraction(2) ** -1074


@contextmanager
def warnings_as_errors() -> Iterator[None]:
    """Any warning (a NumPy overflow, say) fails the test, even without pytest's filterwarnings=error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# --- agreement with the reference -------------------------------------------------------------


@EXAMPLES
@given(data=pred_and_target(), beta=BETAS)
def test_smooth_l1_terms_equal_the_reference_bit_for_bit(data, beta):
    pred, target = data
    terms = smooth_l1_terms(pred - target, beta, np)
    assert terms.dtype == np.float64
    assert terms.shape == pred.shape
    for term, p, t in zip(terms.tolist(), pred.tolist(), target.tolist(), strict=True):
        d = abs(p - t)
        if leaves_pytorchs_formula(d, beta):  # PyTorch has few correct digits here (or inf): be right instead
            assert within_two_roundings(term, exact_smooth_l1(d, beta)), (d, beta, term)
        else:
            assert term == reference_loss(p, t, beta), (p, t, beta)


@EXAMPLES
@given(
    diff=finite_diffs(st.floats(-MAX, MAX) | st.floats(-1e-150, 1e-150) | st.floats(-2, 2)),
    beta=st.floats(1e-300, MAX) | st.floats(1e-300, 1e-100) | st.floats(1e150, MAX) | st.floats(0, 2, exclude_min=True),
    scale=st.floats(0.001, 1.0),
)
def test_every_smooth_l1_term_is_the_exact_loss_to_two_roundings(diff, beta, scale):
    diff = np.concatenate([diff, scale * beta * np.sign(diff)])  # and some rows just below beta
    with warnings_as_errors():  # neither (0.5 * d) * d overflowing nor going subnormal may show
        terms = smooth_l1_terms(diff, beta, np).tolist()
    for term, d in zip(terms, diff.tolist(), strict=True):
        assert within_two_roundings(term, exact_smooth_l1(d, beta)), (d, beta, term)


@pytest.mark.parametrize(
    ("d", "beta", "loss"),  # README's examples, where PyTorch gives 4.99994e-221 and inf
    [(1e-160, 1e-100, 5e-221), (1e200, 1e300, 5e99)],
)
def test_where_pytorchs_square_overflows_or_goes_subnormal_the_loss_is_still_right(d, beta, loss):
    assert smooth_l1_terms(np.array([d, -d]), beta, np).tolist() == [pytest.approx(loss, rel=2**-51)] * 2


@EXAMPLES
@given(data=pred_and_target(), delta=DELTAS)
def test_huber_terms_equal_the_reference_bit_for_bit(data, delta):
    pred, target = data
    terms = huber_terms(pred - target, delta, np)
    assert terms.dtype == np.float64
    expected = [reference_loss(p, t, delta, "huber") for p, t in zip(pred.tolist(), target.tolist(), strict=True)]
    assert terms.tolist() == expected


@pytest.mark.parametrize(
    ("loss", "parameter", "expected"),
    [("smooth_l1", 1.0, [0.125, 0.125, 0.125]), ("huber", 1.0, [0.125, 0.125, 0.125]), ("smooth_l1", 0.0, [0.5] * 3)],
)
def test_worked_example_of_the_spec(loss, parameter, expected):
    diff = np.array([0.5, 1.5, 2.5]) - np.array([1.0, 2.0, 3.0])
    assert loss_terms(loss, diff, parameter).tolist() == expected


@settings(max_examples=50, deadline=None)
@given(diff=finite_diffs(), parameter=DELTAS, loss=st.sampled_from(["smooth_l1", "huber"]))
def test_the_input_array_is_left_unchanged(diff, parameter, loss):
    before = diff.copy()
    terms = loss_terms(loss, diff, parameter)
    assert np.array_equal(diff, before)
    assert not np.shares_memory(terms, diff)


# --- properties of the loss --------------------------------------------------------------------


@EXAMPLES
@given(diff=finite_diffs(st.floats(allow_nan=True, allow_infinity=True)))
def test_beta_zero_is_exactly_the_absolute_difference(diff):
    terms = smooth_l1_terms(diff, 0.0, np)
    assert np.array_equal(terms, np.abs(diff), equal_nan=True)
    assert not np.signbit(terms).any()  # |-0.0| is +0.0, not -0.0


@EXAMPLES
@given(beta=NORMAL_PARAMETERS, sign=st.sampled_from([1.0, -1.0]))
def test_smooth_l1_is_continuous_at_beta(beta, sign):
    below, at, above = np.nextafter(beta, 0.0), beta, np.nextafter(beta, math.inf)
    terms = smooth_l1_terms(sign * np.array([below, at, above]), beta, np).tolist()
    assert terms[1] == 0.5 * beta  # the linear side starts at exactly beta / 2
    assert terms[0] == pytest.approx(0.5 * beta, rel=1e-15)  # the quadratic side ends there too
    assert terms[2] == pytest.approx(0.5 * beta, rel=1e-15)


@EXAMPLES
@given(delta=NORMAL_PARAMETERS, sign=st.sampled_from([1.0, -1.0]))
def test_huber_is_continuous_at_delta(delta, sign):
    below, at, above = np.nextafter(delta, 0.0), delta, np.nextafter(delta, math.inf)
    terms = huber_terms(sign * np.array([below, at, above]), delta, np).tolist()
    quadratic = 0.5 * delta * delta
    assert terms[1] == quadratic  # delta * (delta - delta / 2) == delta**2 / 2 exactly
    # delta**2 / 2 is subnormal (or 0) for delta < 1.5e-154: there the rounding step is absolute
    assert terms[0] == pytest.approx(quadratic, rel=1e-15, abs=2**-1072)
    assert terms[2] == pytest.approx(quadratic, rel=1e-15, abs=2**-1072)


@EXAMPLES
@given(diff=finite_diffs(st.floats(allow_nan=False, allow_infinity=False)), beta=BETAS)
def test_smooth_l1_lies_between_zero_and_the_absolute_difference(diff, beta):
    terms = smooth_l1_terms(diff, beta, np)
    assert (terms >= 0).all()
    assert (terms <= np.abs(diff)).all()


@EXAMPLES
@given(diff=finite_diffs(), delta=DELTAS)
def test_huber_lies_between_zero_and_delta_times_the_absolute_difference(diff, delta):
    terms = huber_terms(diff, delta, np)
    assert (terms >= 0).all()
    assert (terms <= delta * np.abs(diff)).all()


@EXAMPLES
@given(diff=finite_diffs(), delta=DELTAS)
def test_huber_is_delta_times_smooth_l1_with_beta_delta(diff, delta):
    huber = huber_terms(diff, delta, np)
    scaled = delta * smooth_l1_terms(diff, delta, np)
    linear = np.abs(diff) >= delta
    # Linear side: delta * (|d| - delta / 2) either way, the same two roundings: identical.
    assert np.array_equal(huber[linear], scaled[linear])
    # Quadratic side: (d * d / 2) / delta * delta differs from d * d / 2 by the division's and the
    # multiplication's rounding, 2 * 2**-53 relative. Where a result is subnormal its rounding is
    # absolute, 2**-1075: delta * 2**-1074 covers smooth_l1's (scaled by delta), 2**-1074 huber's.
    tolerance = 2**-52 * huber[~linear] + (1 + delta) * 2**-1074
    assert (np.abs(huber[~linear] - scaled[~linear]) <= tolerance).all()


# --- edges: huge differences, NaN, infinity ----------------------------------------------------


def test_a_huge_difference_does_not_overflow():
    with warnings_as_errors():
        assert smooth_l1_terms(np.array([1e200, -1e200, MAX, -MAX]), 1.0, np).tolist() == [1e200, 1e200, MAX, MAX]
        assert huber_terms(np.array([1e200, -MAX]), 1.0, np).tolist() == [1e200, MAX]


@EXAMPLES
@given(
    diff=finite_diffs(st.floats(1e150, MAX) | st.floats(-MAX, -1e150)),
    beta=BETAS,
    delta=DELTAS,
)
def test_huge_differences_give_finite_terms_without_warnings(diff, beta, delta):
    with warnings_as_errors():
        smooth = smooth_l1_terms(diff, beta, np)
        expected = [reference_loss(d, 0.0, beta) for d in diff.tolist()]
        assert smooth.tolist() == expected
        assert np.isfinite(smooth).all()
        fits = np.abs(diff) <= MAX / delta  # huber grows as delta * |d|: keep to where that is a float64
        huber = huber_terms(diff[fits], delta, np)
        assert huber.tolist() == [reference_loss(d, 0.0, delta, "huber") for d in diff[fits].tolist()]
        assert np.isfinite(huber).all()


@EXAMPLES
@given(
    diff=finite_diffs(),
    nan_at=arrays(np.bool_, 60),
    parameter=DELTAS,
    loss=st.sampled_from(["smooth_l1", "huber"]),
)
def test_nan_in_gives_nan_out_and_leaves_other_rows_alone(diff, nan_at, parameter, loss):
    nan_at = nan_at[: diff.size]
    with_nan = np.where(nan_at, math.nan, diff)
    with warnings_as_errors():
        terms = loss_terms(loss, with_nan, parameter)
    assert np.array_equal(np.isnan(terms), nan_at)
    assert np.array_equal(terms[~nan_at], loss_terms(loss, diff[~nan_at], parameter))


@EXAMPLES
@given(
    signs=arrays(np.float64, SIZES, elements=st.sampled_from([math.inf, -math.inf])),
    beta=BETAS,
    delta=DELTAS,
)
def test_infinity_in_gives_infinity_out(signs, beta, delta):
    with warnings_as_errors():
        assert (smooth_l1_terms(signs, beta, np) == math.inf).all()
        assert (huber_terms(signs, delta, np) == math.inf).all()
