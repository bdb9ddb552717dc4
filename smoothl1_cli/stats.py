"""Mergeable accumulators: chunks, threads, a GPU or cluster workers all reduce the same way.

Every accumulator is frozen and has `update` (add a chunk) and `merge` (add another
accumulator); merging is order-free, so where a chunk was reduced never changes a result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from operator import itemgetter
from typing import Any

import numpy as np

from smoothl1_cli import backends
from smoothl1_cli.sketch import QuantileSketch, field_values, same_fields, same_value

FloatArray = np.ndarray[Any, Any]
Real = Any  # a float: one result's statistic; or a float64 array, one per group (GroupStats)
QUANTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}
_NO_FLOATS: FloatArray = np.zeros(0)
_NO_ROWS = np.zeros(0, dtype=np.int64)


def _native(value: Any) -> Any:
    """A NumPy scalar (or 0-d array) as a Python number: one result's statistics stay floats and ints,
    while a group's are arrays with one element per group, through the same arithmetic."""
    if isinstance(value, np.ndarray) and value.ndim:
        return value
    return value.item() if isinstance(value, np.ndarray | np.generic) else value


def _pick(condition: Any, a: Any, b: Any) -> Any:
    """np.where, element by element for groups, that keeps a float a float."""
    if isinstance(condition, bool | np.bool_):
        return _native(a if condition else b)  # one result: no array to build
    return _native(np.where(condition, a, b))


def _any(flags: Any) -> bool:
    return bool(flags) if isinstance(flags, bool | np.bool_) else bool(flags.any())


def _two_sum(a: Real, b: Real) -> tuple[Real, Real]:
    """a + b, and what rounding lost (Knuth); an infinite or NaN sum loses nothing we can keep."""
    if type(a) is float and type(b) is float:  # one result's sums: the same IEEE arithmetic, without NumPy's calls
        s = a + b
        if not math.isfinite(s):
            return s, 0.0
        b_part = s - a
        return s, (a - (s - b_part)) + (b - b_part)
    with np.errstate(invalid="ignore", over="ignore"):
        s = a + b
        b_part = s - a
        error = (a - (s - b_part)) + (b - b_part)
    return s, _pick(np.isfinite(s), error, 0.0)


def _ldexp(x: Real, exponent: Any) -> Real:
    """x * 2**exponent: exact unless it leaves float64's range (inf beyond it, 0 below)."""
    if isinstance(exponent, int) and exponent == 0:
        return x
    with np.errstate(over="ignore", under="ignore"):
        return _native(np.ldexp(x, exponent))


def _exponent(top: Real) -> Any:
    """The power of two that brings |top| into [0.5, 1) (0 for 0, inf and NaN: a GPU's frexp leaves those
    unspecified)."""
    return _native(np.where(np.isfinite(top), np.frexp(top)[1], 0).astype(np.int64))


def _larger_exponent(exponent_a: Any, a: Real, exponent_b: Any, b: Real) -> Any:
    """The exponent that brings the larger of |a| * 2**exponent_a and |b| * 2**exponent_b into [0.5, 1);
    a zero (or not finite) one claims none, and with neither the larger exponent stays."""
    with np.errstate(invalid="ignore"):
        claims_a, claims_b = (a != 0) & np.isfinite(a), (b != 0) & np.isfinite(b)
    top_a, top_b = exponent_a + _exponent(a), exponent_b + _exponent(b)
    either = _pick(claims_a, top_a, _pick(claims_b, top_b, np.maximum(exponent_a, exponent_b)))
    return _pick(claims_a & claims_b, np.maximum(top_a, top_b), either)


def _terms(values: FloatArray, weights: FloatArray | None, square: bool) -> FloatArray:
    if not square:
        return values if weights is None else values * weights
    terms = np.square(values)
    if weights is not None:
        terms *= weights  # in the squares' own array: one temporary, not two
    return terms


class AllRows:
    """Reductions over all of a chunk's rows: the statistics of one result."""

    def __init__(self, rows: int) -> None:
        self.count = float(rows)

    def sum(self, values: FloatArray) -> float:
        return float(values.sum())  # pairwise summation

    def max(self, values: FloatArray) -> float:
        return float(values.max()) if values.size else 0.0

    def min(self, values: FloatArray) -> float:
        return float(values.min()) if values.size else math.inf

    def highest(self, values: FloatArray) -> float:
        """The largest value (NaN if any is; -inf without rows), where `max` is a magnitude's (0 without rows)."""
        return float(values.max()) if values.size else -math.inf

    def count_true(self, flags: np.ndarray[Any, Any]) -> float:
        """How many flags are true: a sum of 0s and 1s, exact."""
        return float(np.count_nonzero(flags))

    def all(self, flags: np.ndarray[Any, Any]) -> bool:
        return bool(flags.all())

    def any(self, flags: np.ndarray[Any, Any]) -> bool:
        return bool(flags.any())

    def spread(self, per_result: Any) -> Any:
        """A value of the result, for each of its rows."""
        return per_result


class GroupRows(AllRows):
    """Reductions per group of a chunk whose rows are sorted by group code, one value for each group
    present (`present`, in order): each group's rows are summed pairwise (np.add.reduceat), like a whole
    chunk, never one after another. The work is the chunk's, however many groups there are."""

    def __init__(self, codes: np.ndarray[Any, Any]) -> None:
        self.starts = np.flatnonzero(np.concatenate(([True], codes[1:] != codes[:-1]))) if codes.size else _NO_ROWS
        self.present = codes[self.starts]
        self.lengths = np.diff(np.append(self.starts, codes.size))
        self.count = self.lengths.astype(np.float64)  # type: ignore[assignment]

    @staticmethod
    def order(codes: np.ndarray[Any, Any], groups: int) -> np.ndarray[Any, Any]:
        """The positions that sort rows by group, keeping their order within each (radix sort where it can)."""
        return np.argsort(codes.astype(np.uint16) if groups <= 1 << 16 else codes, kind="stable")

    def sum(self, values: FloatArray) -> FloatArray:  # type: ignore[override]
        return np.add.reduceat(values, self.starts)

    def max(self, values: FloatArray) -> FloatArray:  # type: ignore[override]
        return np.maximum.reduceat(values, self.starts)

    def min(self, values: FloatArray) -> FloatArray:  # type: ignore[override]
        return np.minimum.reduceat(values, self.starts)

    def highest(self, values: FloatArray) -> FloatArray:  # type: ignore[override]
        return np.maximum.reduceat(values, self.starts)

    def count_true(self, flags: np.ndarray[Any, Any]) -> FloatArray:  # type: ignore[override]
        return np.add.reduceat(flags, self.starts, dtype=np.float64)

    def all(self, flags: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:  # type: ignore[override]
        return np.logical_and.reduceat(flags, self.starts)

    def any(self, flags: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:  # type: ignore[override]
        return np.logical_or.reduceat(flags, self.starts)

    def spread(self, per_result: Any) -> Any:
        return np.repeat(per_result, self.lengths) if isinstance(per_result, np.ndarray) else per_result


class MatrixRows(AllRows):
    """Reductions that view a chunk's rows as a matrix, one row of it per value wanted (`_matrix`, with
    `elsewhere` in the cells that are no row's), and reduce along its rows as trees, all at once."""

    def _matrix(self, values: Any, elsewhere: Any) -> Any:
        raise NotImplementedError

    def sum(self, values: FloatArray) -> FloatArray:  # type: ignore[override]
        return self._matrix(values, 0.0).sum(axis=1)  # type: ignore[no-any-return]

    def max(self, values: FloatArray) -> FloatArray:  # type: ignore[override]
        return self._matrix(values, -math.inf).max(axis=1)  # type: ignore[no-any-return]

    def min(self, values: FloatArray) -> FloatArray:  # type: ignore[override]
        return self._matrix(values, math.inf).min(axis=1)  # type: ignore[no-any-return]

    def highest(self, values: FloatArray) -> FloatArray:  # type: ignore[override]
        return self.max(values)

    def count_true(self, flags: np.ndarray[Any, Any]) -> FloatArray:  # type: ignore[override]
        return np.count_nonzero(self._matrix(flags, False), axis=1).astype(np.float64)  # type: ignore[no-any-return]

    def all(self, flags: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:  # type: ignore[override]
        return self._matrix(flags, True).all(axis=1)  # type: ignore[no-any-return]

    def any(self, flags: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:  # type: ignore[override]
        return self._matrix(flags, False).any(axis=1)  # type: ignore[no-any-return]


class ChunkRows(MatrixRows):
    """Reductions per chunk of a batch of `chunks` chunks of equal length, one value for each chunk, in
    order: the batch viewed as a (chunks, rows) matrix, one launch for all the chunks. A device reduces a
    batch so; each chunk's partials then merge on the host in chunk order (`LossStats.update`), as that
    chunk's own update would have merged them."""

    def __init__(self, chunks: int, rows: int) -> None:
        self.shape = (chunks, rows // chunks)
        self.count = float(rows // chunks)

    def _matrix(self, values: Any, elsewhere: Any) -> Any:
        return values.reshape(self.shape)  # (every cell is a row's)

    def spread(self, per_result: Any) -> Any:
        return np.repeat(per_result, self.shape[1]) if getattr(per_result, "ndim", 0) else per_result


class OneHotRows(MatrixRows):
    """Reductions per group of a chunk on a device, one value for each of its `groups` groups (each row's
    numbered by `slots`): a (groups, rows) mask picks each group's rows into its row of the matrix, all
    groups at once. (NumPy's reduceat sums each group pairwise; CuPy's computes sums from running totals,
    which loses digits, and has no minimum or maximum.) Rows where `keep` is false (weight 0) belong to
    no group. The mask takes groups x rows cells (ONE_HOT_CELLS at most)."""

    def __init__(self, slots: Any, groups: int, keep: Any, xp: Any) -> None:
        self.slots = slots
        self.mask = slots[None, :] == xp.arange(groups, dtype=slots.dtype)[:, None]
        if keep is not None:
            self.mask &= keep[None, :]
        self.count = np.count_nonzero(self.mask, axis=1).astype(np.float64)

    def _matrix(self, values: Any, elsewhere: Any) -> Any:
        return np.where(self.mask, values[None, :], elsewhere)

    def spread(self, per_result: Any) -> Any:
        return per_result[self.slots] if getattr(per_result, "ndim", 0) else per_result


ONE_HOT_CELLS = 1 << 22  # a device's group statistics of a chunk: groups x rows at most, else on the host


_TINY = 2.0**-900  # below this a sum may have lost digits to subnormals (or squares underflowed): scale up


@dataclass(frozen=True, slots=True, eq=False)
class ExactSum:
    """A compensated sum, times 2**exponent (each field an array of one per group in GroupStats).

    Long sums of chunk totals stay within 1e-12 of math.fsum; a sum of finite terms that would
    overflow float64, or go subnormal (squares of 1e-300), is kept scaled by a power of two
    (exactly), so that a mean of huge losses or an RMSE of tiny ones is still right, and only a
    value that is itself beyond float64 becomes inf.
    """

    total: Real = 0.0
    error: Real = 0.0  # rounding lost from `total`
    exponent: Any = 0  # an int, or an int64 array

    @staticmethod
    def of(
        values: FloatArray, weights: FloatArray | None = None, square: bool = False, rows: AllRows | None = None
    ) -> ExactSum:
        """sum(w * v) (or sum(w * v**2)) per result or group, scaled where the plain float64 sum would
        overflow or underflow."""
        rows = rows or AllRows(values.size)
        if values.dtype == np.bool_:  # a share of rows (the linear ones): counted, not summed as floats
            if weights is None and not square:
                return ExactSum(rows.count_true(values))
            values = values.astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            plain = rows.sum(_terms(values, weights, square))
            suspect = ~np.isfinite(plain) | (np.abs(plain) < _TINY)
            if not _any(suspect):
                return ExactSum(plain)  # the common case
            finite = rows.all(np.isfinite(values)) & (weights is None or rows.all(np.isfinite(weights)))
            scale = suspect & finite & rows.any(values != 0)  # inf and NaN from the data stay as they are
            if not _any(scale):
                return ExactSum(plain)
            value_exponent = _exponent(rows.max(np.abs(values)))
            weight_exponent = 0 if weights is None else _exponent(rows.max(np.abs(weights)))
            scaled_weights = None if weights is None else np.ldexp(weights, -rows.spread(weight_exponent))
            scaled = rows.sum(_terms(np.ldexp(values, -rows.spread(value_exponent)), scaled_weights, square))
        exponent = (2 if square else 1) * value_exponent + weight_exponent
        return ExactSum(_pick(scale, scaled, plain), 0.0, _pick(scale, exponent, 0))

    def merge(self, other: ExactSum) -> ExactSum:
        scalars = type(self.total) is type(other.total) is float and type(self.exponent) is type(other.exponent) is int
        if scalars and self.exponent == other.exponent:  # one result's sums at one scale: nothing to align
            total, error = _two_sum(self.total, other.total)
            if math.isfinite(total) or not (math.isfinite(self.total) and math.isfinite(other.total)):
                return ExactSum(total, self.error + other.error + error, self.exponent)
        zero_a, zero_b = (self.total == 0) & (self.error == 0), (other.total == 0) & (other.error == 0)
        exponent = _pick(
            zero_a, other.exponent, _pick(zero_b, self.exponent, np.maximum(self.exponent, other.exponent))
        )
        a, b = self._at(exponent), other._at(exponent)
        total, error = _two_sum(a.total, b.total)
        overflowed = ~np.isfinite(total) & np.isfinite(a.total) & np.isfinite(b.total)
        if _any(overflowed):  # beyond float64: add the halves (exactly halved) instead
            exponent = _pick(overflowed, exponent + 1, exponent)
            a, b = self._at(exponent), other._at(exponent)
            total, error = _two_sum(a.total, b.total)
        return ExactSum(total, a.error + b.error + error, exponent)

    def _at(self, exponent: Any) -> ExactSum:
        shift = self.exponent - exponent
        return ExactSum(_ldexp(self.total, shift), _ldexp(self.error, shift), exponent)

    @property
    def scaled(self) -> Real:
        """The sum without its power of two."""
        return self.total + self.error  # (an inf or NaN total has no error)

    @property
    def value(self) -> Real:
        return _ldexp(self.scaled, self.exponent)

    def __eq__(self, other: object) -> bool:
        return same_fields(self, other)

    def ratio(self, other: ExactSum) -> Real:
        """self / other, without overflowing on the way (a mean of huge losses stays finite); NaN where
        other is 0."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            quotient = _ldexp(np.divide(self.scaled, other.scaled), self.exponent - other.exponent)
        return _pick(other.scaled == 0, math.nan, quotient)


_WINDOW = 2.0**400  # a mean within [1 / _WINDOW, _WINDOW] has squares (and their sums) well within float64
_NARROW = 2.0**200  # means and weights within [1 / _NARROW, _NARROW] (and M2 within its square) merge unscaled


@dataclass(frozen=True, slots=True, eq=False)
class Moments:
    """Weight, mean and M2 of the losses, merged by Chan's formula (never a running mean).

    Like ExactSum, kept scaled by powers of two where the data would overflow or underflow them: the
    true weight is weight * 2**weight_exponent, the mean mean * 2**exponent, and M2
    m2 * 2**(2 * exponent + weight_exponent). A merge works at the exponents that bring the larger
    mean and weight into [0.5, 1), so that means far apart (0.125 and 1e160) neither overflow nor
    underflow there. Each field is an array of one per group in GroupStats.
    """

    weight: Real = 0.0
    mean: Real = 0.0
    m2: Real = 0.0
    exponent: Any = 0
    weight_exponent: Any = 0

    @staticmethod
    def of(
        values: FloatArray,
        weights: FloatArray | None,
        rows: AllRows | None = None,
        sums: tuple[Real, Real] | None = None,
    ) -> Moments:
        """The moments of a chunk; `sums`, where the caller has them, are its plain float64 sum(w * v) and
        sum(w) (ExactSum.of's, unscaled), which this would otherwise compute again."""
        rows = rows or AllRows(values.size)
        if values.size == 0:
            return Moments()
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            plain = Moments._plain(values, weights, rows, sums)
            magnitude = np.abs(plain.mean)
            fits = np.isfinite(plain.weight) & np.isfinite(plain.m2) & ((magnitude == 0) | (magnitude >= 1 / _WINDOW))
            fits &= magnitude <= _WINDOW
            if not _any(~fits):
                return plain
            finite = rows.all(np.isfinite(values)) & (weights is None or rows.all(np.isfinite(weights)))
            scale = ~fits & finite  # NaN or inf in the data: they propagate
            if not _any(scale):
                return plain
            exponent = _exponent(rows.max(np.abs(values)))
            weight_exponent = 0 if weights is None else _exponent(rows.max(np.abs(weights)))
            scaled_weights = None if weights is None else np.ldexp(weights, -rows.spread(weight_exponent))
            scaled = Moments._plain(np.ldexp(values, -rows.spread(exponent)), scaled_weights, rows)
        return Moments(
            _pick(scale, scaled.weight, plain.weight),
            _pick(scale, scaled.mean, plain.mean),
            _pick(scale, scaled.m2, plain.m2),
            _pick(scale, exponent, 0),
            _pick(scale, weight_exponent, 0),
        )

    @staticmethod
    def _plain(
        values: FloatArray, weights: FloatArray | None, rows: AllRows, sums: tuple[Real, Real] | None = None
    ) -> Moments:
        if weights is None:
            total = rows.sum(values) if sums is None else sums[0]
            mean = _pick(rows.count > 0, np.divide(total, rows.count), 0.0)  # (= values.mean())
            return Moments(rows.count, mean, rows.sum(_squared_deviations(values, rows.spread(mean), None)))
        weight = rows.sum(weights) if sums is None else sums[1]
        weighted = weight != 0
        total = rows.sum(values * weights) if sums is None else sums[0]
        mean = _pick(weighted, np.divide(total, weight), 0.0)
        m2 = rows.sum(_squared_deviations(values, rows.spread(mean), weights))
        return Moments(_pick(weighted, weight, 0.0), mean, _pick(weighted, m2, 0.0))

    def _at(self, exponent: Any, weight_exponent: Any) -> Moments:
        shift, weight_shift = self.exponent - exponent, self.weight_exponent - weight_exponent
        return Moments(
            _ldexp(self.weight, weight_shift),
            _ldexp(self.mean, shift),
            _ldexp(self.m2, 2 * shift + weight_shift),
            exponent,
            weight_exponent,
        )

    def merge(self, other: Moments) -> Moments:
        if self._narrow() and other._narrow():  # one result's moments of ordinary size: no scaling to do
            if self.weight == 0 or other.weight == 0:
                return self if other.weight == 0 else other
            return Moments(*_chan(self, other), 0, 0)
        exponent = _larger_exponent(self.exponent, self.mean, other.exponent, other.mean)
        weight_exponent = _larger_exponent(self.weight_exponent, self.weight, other.weight_exponent, other.weight)
        a, b = self._at(exponent, weight_exponent), other._at(exponent, weight_exponent)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            merged = (*_chan(a, b), exponent, weight_exponent)
        mine, theirs = field_values(self), field_values(other)
        return Moments(
            *(
                _pick(other.weight == 0, m, _pick(self.weight == 0, t, both))
                for m, t, both in zip(mine, theirs, merged, strict=True)
            )
        )

    def _narrow(self) -> bool:
        """Unscaled Python floats whose Chan merge can neither overflow nor lose digits to subnormals: a
        weight and a mean (or 0) within a factor _NARROW of 1, M2 (or 0) within its square."""
        if type(self.weight) is not float or type(self.exponent) is not int or type(self.weight_exponent) is not int:
            return False
        mean, m2 = abs(self.mean), self.m2
        return (
            self.exponent == self.weight_exponent == 0
            and (self.weight == 0 or 1 / _NARROW <= self.weight <= _NARROW)
            and (mean == 0 or 1 / _NARROW <= mean <= _NARROW)
            and (m2 == 0 or _NARROW**-4 <= m2 <= _NARROW**4)
        )

    def __eq__(self, other: object) -> bool:
        return same_fields(self, other)

    @property
    def std(self) -> Real:
        """Population standard deviation (ddof 0); NaN without a weight (or with a NaN M2)."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            std = _ldexp(np.sqrt(np.divide(self.m2, self.weight)), self.exponent)
            return _pick((self.weight > 0) & (self.m2 >= 0), std, math.nan)


def _squared_deviations(values: FloatArray, mean: Real, weights: FloatArray | None) -> FloatArray:
    """w * (v - mean)**2, in one new array."""
    deviations: FloatArray = values - mean
    deviations *= deviations
    if weights is not None:
        deviations *= weights
    return deviations


def _chan(a: Moments, b: Moments) -> tuple[Real, Real, Real]:
    """Weight, mean and M2 of two moments at the same scale (Chan, Golub and LeVeque)."""
    weight = a.weight + b.weight
    delta = b.mean - a.mean
    mean = a.mean + delta * np.divide(b.weight, weight)
    m2 = a.m2 + b.m2 + delta * delta * np.divide(a.weight * b.weight, weight)
    return _native(weight), _native(mean), _native(m2)


@dataclass(frozen=True, slots=True, eq=False)
class WorstRows:
    """The k largest losses seen so far, ties broken by the earlier row (deterministic at any chunking)."""

    k: int
    loss: FloatArray = field(default_factory=lambda: _NO_FLOATS)
    rows: np.ndarray[Any, Any] = field(default_factory=lambda: _NO_ROWS)
    prediction: FloatArray = field(default_factory=lambda: _NO_FLOATS)
    actual: FloatArray = field(default_factory=lambda: _NO_FLOATS)
    ids: tuple[Any, ...] = ()

    def update(
        self,
        loss: FloatArray,
        rows: np.ndarray[Any, Any],
        prediction: FloatArray,
        actual: FloatArray,
        ids_of: Callable[[np.ndarray[Any, Any]], Sequence[Any]] | None,
    ) -> WorstRows:
        """Keep the chunk's k worst rows; `ids_of(positions)` fetches their ids only."""
        if self.k == 0:
            return self
        if self.loss.size == self.k:  # full: only a loss of at least the current k-th worst can enter
            candidates = np.flatnonzero(loss >= self.loss[-1])
            if candidates.size == 0:
                return self  # (most chunks, once the list holds the worst of the first ones)
            picked = candidates[_largest(loss[candidates], self.k)]
        else:
            picked = _largest(loss, self.k)
        ids = tuple(ids_of(picked)) if ids_of is not None else ()
        host = backends.to_numpy  # only the k picked rows come back from a device
        picks = (host(loss[picked]), host(rows[picked]), host(prediction[picked]), host(actual[picked]))
        return self.merge(WorstRows(self.k, *picks, ids))

    def __eq__(self, other: object) -> bool:
        return same_fields(self, other)

    def merge(self, other: WorstRows) -> WorstRows:
        loss = np.concatenate([self.loss, other.loss])
        rows = np.concatenate([self.rows, other.rows])
        order = np.lexsort((rows, -loss))[: self.k]
        ids = self.ids + other.ids
        return WorstRows(
            self.k,
            loss[order],
            rows[order],
            np.concatenate([self.prediction, other.prediction])[order],
            np.concatenate([self.actual, other.actual])[order],
            tuple(ids[i] for i in order) if ids else (),
        )


def _largest(loss: FloatArray, k: int) -> np.ndarray[Any, Any]:
    """Positions of the k largest non-NaN values, the earlier position first among equals."""
    positions = np.flatnonzero(~np.isnan(loss))
    values = loss[positions]
    if values.size > k:
        threshold = -np.partition(-values, k - 1)[k - 1]  # the k-th largest (a small kth: CuPy selects, not sorts)
        above = np.flatnonzero(values > threshold)
        tied = np.flatnonzero(values == threshold)[: k - above.size]
        positions = positions[np.concatenate([above, tied])]
    return positions


@dataclass(frozen=True, slots=True)
class Chunk:
    """One result's per-row arrays for a chunk of rows (after any omitted rows were dropped)."""

    loss: FloatArray
    abs_diff: FloatArray  # |d|; for a row-sum of k outputs, the sum of the k |d|
    sq_diff: FloatArray | None  # d**2 summed over the k outputs of a row-sum; None: abs_diff squared
    linear: FloatArray  # share of the row's elements with |d| >= beta (0 or 1 for one output)
    rows: np.ndarray[Any, Any]
    weight: FloatArray | None = None
    prediction: FloatArray | None = None  # for the worst rows; None where a row has no single value
    actual: FloatArray | None = None
    ids_of: Callable[[np.ndarray[Any, Any]], Sequence[Any]] | None = None

    def for_sums(self, each: Callable[[Any], Any]) -> Chunk:
        """The arrays that sums use (not the worst rows' prediction, actual and ids), each through `each`:
        some of their rows (`itemgetter(at)`), or copies on the host."""
        parts = (self.loss, self.abs_diff, self.sq_diff, self.linear, self.rows, self.weight)
        return Chunk(*(None if part is None else each(part) for part in parts))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Summary:
    """The statistics a result reports; weights count as frequencies (weight 2 == the row twice)."""

    count: int
    weight: float
    mean: float
    sum: float
    std: float
    min: float
    max: float
    quantiles: dict[str, float]
    linear_fraction: float
    mae: float
    rmse: float
    distribution: QuantileSketch | None = None  # for the table view's histogram, drawn only there


@dataclass(frozen=True, slots=True, eq=False)
class LossStats:
    """Sufficient statistics of one result's losses: update with chunks, merge, summarize.

    Quantiles come from `sketch`; `LossStats.without_quantiles(top_k)` (sketch=None) keeps none, for a
    report that shows no quantiles (`-q`): its updates skip the sketch's work, its summary's quantiles
    are NaN and it has no distribution. Merged with statistics that keep quantiles, the result keeps
    none (it could not answer for the other's rows).
    """

    top_k: int = 0
    count: int = 0
    loss: ExactSum = field(default_factory=ExactSum)
    weight: ExactSum = field(default_factory=ExactSum)
    abs_diff: ExactSum = field(default_factory=ExactSum)
    sq_diff: ExactSum = field(default_factory=ExactSum)
    linear: ExactSum = field(default_factory=ExactSum)
    moments: Moments = field(default_factory=Moments)
    min: float = math.inf
    max: float = -math.inf
    sketch: QuantileSketch | None = field(default_factory=QuantileSketch)  # None: no quantiles
    worst: WorstRows | None = None

    @staticmethod
    def without_quantiles(top_k: int = 0) -> LossStats:
        """Empty statistics that keep no quantile sketch (every other statistic is the same)."""
        return LossStats(top_k, sketch=None)

    def update(self, chunk: Chunk, chunks: int = 1) -> LossStats:
        """These statistics plus those of `chunks` chunks of equal length, one after another (the sketch and
        worst rows are updated in place of a merge, so a full top-k list screens the chunk with one
        comparison).

        Several chunks (a device's batch) are reduced at once, per chunk (ChunkRows), and their sums and
        moments merge here in chunk order: the same partition and merges as one chunk at a time, so the
        results agree with NumPy's to rounding. Such a batch has no weight-0 rows (they would leave the
        chunks unequal; RunState hands their batches over a chunk at a time).
        """
        if chunk.loss.size == 0:
            return self
        rows_read = int(chunk.loss.size)
        keep = _weighted_rows(chunk.weight)
        if keep is not None:
            assert chunks == 1, "a batch of chunks with weight-0 rows is reduced a chunk at a time"
            chunk = _without_weightless_rows(chunk, keep)
        loss, w = chunk.loss, chunk.weight
        with np.errstate(invalid="ignore", over="ignore"):
            rows = AllRows(loss.size) if chunks == 1 else ChunkRows(chunks, loss.size)
            sums = _chunk_sums(chunk, rows)
            moments = Moments.of(loss, w, rows, _plain_sums(sums))
            lowest, highest = rows.min(loss), rows.highest(loss)
            if chunks > 1:  # each chunk's few numbers come back, and merge in order
                sums = {name: _fold(getattr(self, name), total, chunks) for name, total in sums.items()}
                moments = _fold(self.moments, moments, chunks)
                lowest, highest = float(np.min(backends.to_numpy(lowest))), float(np.max(backends.to_numpy(highest)))
            else:
                sums = {name: getattr(self, name).merge(total) for name, total in sums.items()}
                moments = self.moments.merge(moments)
            return LossStats(
                self.top_k,
                self.count + rows_read,
                **sums,
                moments=moments,
                min=_nan_or(min, self.min, lowest),
                max=_nan_or(max, self.max, highest),
                sketch=None if self.sketch is None else self.sketch.update(loss, w),
                worst=self._worst_with(chunk),
            )

    def _sums(self) -> dict[str, ExactSum]:
        return {name: getattr(self, name) for name in _SUMS}

    def _worst_with(self, chunk: Chunk) -> WorstRows | None:
        if self.top_k == 0 or chunk.prediction is None or chunk.actual is None:
            return self.worst
        loss = chunk.loss if chunk.weight is None else np.where(chunk.weight > 0, chunk.loss, np.nan)
        worst = self.worst or WorstRows(self.top_k)
        return worst.update(loss, chunk.rows, chunk.prediction, chunk.actual, chunk.ids_of)

    def merge(self, other: LossStats) -> LossStats:
        """The statistics of both inputs together; min and max propagate NaN, as NumPy's do."""
        return LossStats(
            self.top_k,
            self.count + other.count,
            self.loss.merge(other.loss),
            self.weight.merge(other.weight),
            self.abs_diff.merge(other.abs_diff),
            self.sq_diff.merge(other.sq_diff),
            self.linear.merge(other.linear),
            self.moments.merge(other.moments),
            _nan_or(min, self.min, other.min),
            _nan_or(max, self.max, other.max),
            None if self.sketch is None or other.sketch is None else self.sketch.merge(other.sketch),
            _merge_worst(self.worst, other.worst),
        )

    def summarize(self) -> Summary:
        """The reported statistics; the caller checks that there was a row and a weight."""
        statistics = _statistics(self.count, self._sums(), self.moments, self.min, self.max)
        return Summary(
            count=self.count,
            **{name: float(value) for name, value in statistics.items() if name != "count"},
            quantiles=self._quantiles(),
            distribution=self.sketch,
        )

    def __eq__(self, other: object) -> bool:
        return same_fields(self, other)

    def _quantiles(self) -> dict[str, float]:
        """The sketch's estimates, kept within [min, max] (an estimate may land just outside); NaN without one."""
        if self.sketch is None:
            return dict.fromkeys(QUANTILES, math.nan)
        estimates = self.sketch.quantiles(list(QUANTILES.values()))
        return {
            name: estimate if math.isnan(estimate) else min(max(estimate, self.min), self.max)
            for name, estimate in zip(QUANTILES, estimates, strict=True)
        }


_SUMS = ("loss", "weight", "abs_diff", "sq_diff", "linear")


def _chunk_sums(chunk: Chunk, rows: AllRows) -> dict[str, ExactSum]:
    """The chunk's sums (per result, or per group), named as in _SUMS; without weights the weight is
    the count of rows."""
    w = chunk.weight
    sq_diff = (
        ExactSum.of(chunk.abs_diff, w, True, rows)
        if chunk.sq_diff is None
        else ExactSum.of(chunk.sq_diff, w, rows=rows)
    )
    return {
        "loss": ExactSum.of(chunk.loss, w, rows=rows),
        "weight": ExactSum(rows.count) if w is None else ExactSum.of(w, rows=rows),
        "abs_diff": ExactSum.of(chunk.abs_diff, w, rows=rows),
        "sq_diff": sq_diff,
        "linear": ExactSum.of(chunk.linear, w, rows=rows),  # (a bool array is counted)
    }


def _fold(total: Any, partials: Any, chunks: int) -> Any:
    """`total` (an ExactSum or Moments) merged with each chunk's partial in chunk order: `partials` holds
    them as fields of one value per chunk (ChunkRows'), or one value for all, brought to the host."""
    columns = [np.broadcast_to(backends.to_numpy(part), (chunks,)).tolist() for part in field_values(partials)]
    for values in zip(*columns, strict=True):
        total = total.merge(type(total)(*values))
    return total


def _plain_sums(sums: dict[str, ExactSum]) -> tuple[Real, Real] | None:
    """A chunk's plain float64 sum(w * loss) and sum(w) from _chunk_sums, for Moments.of; None where
    either is kept scaled (Moments.of then scales the losses its own way)."""
    loss, weight = sums["loss"], sums["weight"]
    return None if _any(loss.exponent != 0) or _any(weight.exponent != 0) else (loss.total, weight.total)


def _statistics(count: Any, sums: dict[str, ExactSum], moments: Moments, lowest: Real, highest: Real) -> dict[str, Any]:
    """The reported statistics (Summary's fields but the quantiles) of a result, as floats, or of every
    group at once, as arrays of one per group: the same arithmetic either way, element by element."""
    weight = sums["weight"]
    return {
        "count": count,
        "weight": weight.value,
        "mean": sums["loss"].ratio(weight),
        "sum": sums["loss"].value,
        "std": moments.std,
        "min": _pick(count > 0, lowest, math.nan),
        "max": _pick(count > 0, highest, math.nan),
        "linear_fraction": sums["linear"].ratio(weight),
        "mae": sums["abs_diff"].ratio(weight),
        "rmse": _sqrt_ratio(sums["sq_diff"], weight),
    }


def _weighted_rows(weight: FloatArray | None) -> np.ndarray[Any, Any] | None:
    """The rows of positive weight, where some weight is 0 (else None): 0 * inf is NaN, so a weight-0
    row must not reach a sum (it still counts as a row read)."""
    return None if weight is None or bool(weight.all()) else weight > 0


def zero_where_weightless(loss: FloatArray, weight: FloatArray | None) -> FloatArray:
    """`loss` with the losses of weight-0 rows set to 0, for sums that keep every row (the bootstrap's):
    such a row takes no part in them, even where its loss overflowed."""
    keep = _weighted_rows(weight)
    return loss if keep is None else np.where(keep, loss, 0.0)


def _without_weightless_rows(chunk: Chunk, keep: np.ndarray[Any, Any]) -> Chunk:
    """The chunk without its weight-0 rows (`keep` from _weighted_rows); the worst rows and quantiles
    skip them on their own."""
    return replace(
        chunk,
        loss=chunk.loss[keep],
        abs_diff=chunk.abs_diff[keep],
        sq_diff=None if chunk.sq_diff is None else chunk.sq_diff[keep],
        linear=chunk.linear[keep],
        rows=chunk.rows[keep],
        weight=None if chunk.weight is None else chunk.weight[keep],
        prediction=None if chunk.prediction is None else chunk.prediction[keep],
        actual=None if chunk.actual is None else chunk.actual[keep],
        ids_of=None if chunk.ids_of is None else _positions_of(chunk.ids_of, np.flatnonzero(keep)),
    )


def _on_host_fields(accumulator: Any) -> Any:
    """An ExactSum or Moments whose fields may be on a device, with them on the host (a host's stay)."""
    kept = int | float | np.ndarray | np.generic
    return type(accumulator)(
        *(part if isinstance(part, kept) else backends.to_numpy(part) for part in field_values(accumulator))
    )


def _take(accumulator: Any, at: Any) -> Any:
    """The groups `at` (positions or a slice) of GroupStats' ExactSum or Moments (arrays of them)."""
    return type(accumulator)(*(part[at] for part in field_values(accumulator)))


def _put(accumulator: Any, at: np.ndarray[Any, Any], values: Any) -> None:
    """Write `values` (an ExactSum or Moments of the groups `at`) into GroupStats' arrays of them."""
    for part, value in zip(field_values(accumulator), field_values(values), strict=True):
        part[at] = value


def _positions_of(ids_of: Callable[[np.ndarray[Any, Any]], Sequence[Any]], kept: np.ndarray[Any, Any]) -> Any:
    return lambda positions: ids_of(kept[positions])


def _sqrt_ratio(a: ExactSum, b: ExactSum) -> Real:
    """sqrt(a / b) taken before the powers of two are applied: an RMSE of 1e160 does not overflow."""
    shift = a.exponent - b.exponent
    odd = shift % 2
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        quotient = np.divide(a.scaled, b.scaled) * _pick(odd != 0, 2.0, 1.0)
        root = _ldexp(np.sqrt(quotient), (shift - odd) // 2)
        return _pick((b.scaled == 0) | np.logical_not(a.scaled >= 0), math.nan, root)


def _nan_or(pick: Callable[[float, float], float], a: float, b: float) -> float:
    return math.nan if math.isnan(a) or math.isnan(b) else pick(a, b)


def _merge_worst(a: WorstRows | None, b: WorstRows | None) -> WorstRows | None:
    if a is None or b is None:
        return a if b is None else b
    return a.merge(b)


@dataclass(frozen=True, slots=True, eq=False)
class GroupStats:
    """LossStats for many groups at once, as arrays indexed by group code (no quantiles, no worst rows):
    the same ExactSum and Moments, each field an array of one per group.

    Memory grows with the number of groups, never with the rows; merging is element-wise. An update
    costs what its chunk's rows do, however many groups there are: it merges only the groups present,
    in place, into arrays with room to spare (half as large again when full). So an update spends the GroupStats it
    was called on: using that one again is an error (it would see the newer statistics).
    """

    count: np.ndarray[Any, Any]  # each array has room for at least `groups`; the ones after are empty
    sums: dict[str, ExactSum]  # weight, loss, abs_diff, sq_diff, linear
    moments: Moments
    min: FloatArray
    max: FloatArray
    groups: int
    writes: list[int] = field(default_factory=lambda: [0])  # updates written into these arrays (shared)
    version: int = 0  # writes[0] when this GroupStats was made: the arrays hold its statistics while equal

    @staticmethod
    def empty(groups: int) -> GroupStats:
        zeros, exponents = np.zeros(groups), np.zeros(groups, dtype=np.int64)
        return GroupStats(
            np.zeros(groups, dtype=np.int64),
            {name: ExactSum(zeros.copy(), zeros.copy(), exponents.copy()) for name in _SUMS},
            Moments(zeros.copy(), zeros.copy(), zeros.copy(), exponents.copy(), exponents.copy()),
            np.full(groups, math.inf),
            np.full(groups, -math.inf),
            groups,
        )

    def _check_unspent(self) -> None:
        if self.version != self.writes[0]:
            raise RuntimeError("this GroupStats was updated in place: use the one its update returned")

    def _resized(self, room: int) -> GroupStats:
        """The same statistics in new arrays of `room` (>= groups) entries, padded with empty groups."""
        self._check_unspent()
        extra = GroupStats.empty(room - self.groups)
        cut = slice(0, self.groups)

        def padded(mine: Any, theirs: Any) -> Any:
            parts = zip(field_values(_take(mine, cut)), field_values(theirs), strict=True)
            return type(mine)(*(np.concatenate([a, b]) for a, b in parts))

        return GroupStats(
            np.concatenate([self.count[cut], extra.count]),
            {name: padded(total, extra.sums[name]) for name, total in self.sums.items()},
            padded(self.moments, extra.moments),
            np.concatenate([self.min[cut], extra.min]),
            np.concatenate([self.max[cut], extra.max]),
            self.groups,
        )

    def update(self, codes: np.ndarray[Any, Any], groups: int, chunk: Chunk) -> GroupStats:
        """These statistics plus one chunk whose rows belong to groups `codes` (< `groups`, on the host).
        A chunk on a device is reduced there where it has few groups (OneHotRows), else on the host."""
        self._check_unspent()
        room = self.count.size
        stats = self if groups <= room else self._resized(max(groups, room + room // 2))
        xp = backends.namespace_of(chunk.loss)
        if xp is not np:
            codes = xp.asarray(codes)  # (there already where rows were omitted there)
            present, slots, lengths = np.unique(codes, return_inverse=True, return_counts=True)
            if 0 < present.size * codes.size <= ONE_HOT_CELLS:
                present = backends.to_numpy(present)
                stats.count[present] += backends.to_numpy(lengths)  # weight-0 rows count as rows read
                one_hot = OneHotRows(slots, present.size, _weighted_rows(chunk.weight), xp)
                return stats._merged(present, one_hot, chunk, groups)
            codes, chunk = backends.to_numpy(codes), chunk.for_sums(backends.to_numpy)  # too many groups for that
        order = GroupRows.order(codes, groups)
        everyone = GroupRows(codes[order])
        stats.count[everyone.present] += everyone.lengths  # weight-0 rows count as rows read
        keep = _weighted_rows(chunk.weight)
        positions = order if keep is None else order[keep[order]]
        rows = everyone if keep is None else GroupRows(codes[positions])  # rows by group, without weight-0 rows
        return stats._merged(rows.present, rows, chunk.for_sums(itemgetter(positions)), groups)

    def _merged(self, at: np.ndarray[Any, Any], rows: AllRows, chunk: Chunk, groups: int) -> GroupStats:
        """These statistics with those of a chunk's rows of the groups `at` merged in, in place: `rows`
        (GroupRows on the host, OneHotRows on a device) reduces the chunk to one value per group there,
        and only those values come back from a device."""
        if at.size:
            with np.errstate(invalid="ignore"):
                sums = _chunk_sums(chunk, rows)
                for name, total in self.sums.items():
                    _put(total, at, _take(total, at).merge(_on_host_fields(sums[name])))
                moments = Moments.of(chunk.loss, chunk.weight, rows, _plain_sums(sums))
                _put(self.moments, at, _take(self.moments, at).merge(_on_host_fields(moments)))
                host = backends.to_numpy  # (NaN propagates, as in LossStats)
                self.min[at] = np.minimum(self.min[at], host(rows.min(chunk.loss)))
                self.max[at] = np.maximum(self.max[at], host(rows.highest(chunk.loss)))
        self.writes[0] += 1
        return replace(self, groups=max(self.groups, groups), version=self.writes[0])

    def merge(self, other: GroupStats) -> GroupStats:
        """Both statistics together, group by group (groups missing from one are empty there)."""
        groups = max(self.groups, other.groups)
        a, b = self._resized(groups), other._resized(groups)
        return GroupStats(
            a.count + b.count,
            {name: total.merge(b.sums[name]) for name, total in a.sums.items()},
            a.moments.merge(b.moments),
            np.minimum(a.min, b.min),
            np.maximum(a.max, b.max),
            groups,
        )

    def placed(self, places: np.ndarray[Any, Any], groups: int) -> GroupStats:
        """These statistics as `groups` groups, group i at code places[i] (a merge matches groups by key)."""
        self._check_unspent()
        placed = GroupStats.empty(groups)
        cut = slice(0, self.groups)
        placed.count[places] = self.count[cut]
        for name, total in placed.sums.items():
            _put(total, places, _take(self.sums[name], cut))
        _put(placed.moments, places, _take(self.moments, cut))
        placed.min[places], placed.max[places] = self.min[cut], self.max[cut]
        return placed

    def summaries(self) -> list[Summary]:
        """Every group's statistics, as LossStats.summarize gives them (without quantiles): computed for all
        groups at once, as arrays, and only then cut into one Summary per group."""
        self._check_unspent()
        cut = slice(0, self.groups)
        sums = {name: _take(total, cut) for name, total in self.sums.items()}
        statistics = _statistics(self.count[cut], sums, _take(self.moments, cut), self.min[cut], self.max[cut])
        columns = {name: np.asarray(values).tolist() for name, values in statistics.items()}
        names = ("count", "weight", "mean", "sum", "std", "min", "max", "linear_fraction", "mae", "rmse")
        return [
            Summary(count, weight, mean, total, std, lowest, highest, {}, linear, mae, rmse)
            for count, weight, mean, total, std, lowest, highest, linear, mae, rmse in zip(
                *(columns[name] for name in names), strict=True
            )
        ]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GroupStats):
            return False
        mine, theirs = (s._resized(s.groups) for s in (self, other))
        return same_value(
            [mine.count, mine.sums, field_values(mine.moments), mine.min, mine.max],
            [theirs.count, theirs.sums, field_values(theirs.moments), theirs.min, theirs.max],
        )
