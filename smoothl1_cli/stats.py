"""Mergeable accumulators: chunks, threads, a GPU or cluster workers all reduce the same way.

Every accumulator is frozen and has `update` (add a chunk) and `merge` (add another
accumulator); merging is order-free, so where a chunk was reduced never changes a result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from smoothl1_cli.sketch import QuantileSketch

FloatArray = np.ndarray[Any, Any]
QUANTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}
_NO_FLOATS: FloatArray = np.zeros(0)
_NO_ROWS = np.zeros(0, dtype=np.int64)


def _two_sum(a: float, b: float) -> tuple[float, float]:
    """a + b, and what rounding lost (Knuth); an infinite or NaN sum loses nothing we can keep."""
    s = a + b
    if not math.isfinite(s):
        return s, 0.0
    b_part = s - a
    return s, (a - (s - b_part)) + (b - b_part)


def _ldexp(x: float, exponent: int) -> float:
    """x * 2**exponent: exact unless it leaves float64's range (inf beyond it, 0 below)."""
    if exponent == 0 or not math.isfinite(x):
        return x
    try:
        return math.ldexp(x, exponent)
    except OverflowError:
        return math.copysign(math.inf, x)


def _exponent(values: FloatArray | None) -> int:
    """The power of two that brings the largest |value| into [0.5, 1)."""
    if values is None or values.size == 0:
        return 0
    return math.frexp(float(np.max(np.abs(values))))[1]


def _terms(values: FloatArray, weights: FloatArray | None, square: bool) -> FloatArray:
    terms = np.square(values) if square else values
    return terms if weights is None else terms * weights


def _finite(*arrays: FloatArray | None) -> bool:
    return all(a is None or bool(np.isfinite(a).all()) for a in arrays)


@dataclass(frozen=True, slots=True)
class ExactSum:
    """A compensated sum, times 2**exponent.

    Long sums of chunk totals stay within 1e-12 of math.fsum; a sum of finite terms that would
    overflow float64 is kept scaled down by a power of two (exactly), so that a mean of huge
    losses is still right, and only a value that is itself beyond float64 becomes inf.
    """

    total: float = 0.0
    error: float = 0.0  # rounding lost from `total`
    exponent: int = 0

    @staticmethod
    def of(values: FloatArray, weights: FloatArray | None = None, square: bool = False) -> ExactSum:
        """sum(w * v) (or sum(w * v**2)), scaled where the plain float64 sum would overflow."""
        with np.errstate(over="ignore", invalid="ignore"):
            plain = float(_terms(values, weights, square).sum())
        if math.isfinite(plain) or not _finite(values, weights):
            return ExactSum(plain)  # the common case; or inf and NaN that come from the data
        value_exponent, weight_exponent = _exponent(values), _exponent(weights)
        scaled_weights = None if weights is None else np.ldexp(weights, -weight_exponent)
        scaled = float(_terms(np.ldexp(values, -value_exponent), scaled_weights, square).sum())
        return ExactSum(scaled, 0.0, (2 if square else 1) * value_exponent + weight_exponent)

    def add(self, value: float) -> ExactSum:
        return self.merge(ExactSum(value))

    def merge(self, other: ExactSum) -> ExactSum:
        a, b = self._at(max(self.exponent, other.exponent)), other._at(max(self.exponent, other.exponent))
        total, error = _two_sum(a.total, b.total)
        return ExactSum(total, a.error + b.error + error, a.exponent)

    def _at(self, exponent: int) -> ExactSum:
        shift = self.exponent - exponent
        return ExactSum(_ldexp(self.total, shift), _ldexp(self.error, shift), exponent)

    @property
    def scaled(self) -> float:
        """The sum without its power of two."""
        return self.total + self.error if math.isfinite(self.total) else self.total

    @property
    def value(self) -> float:
        return _ldexp(self.scaled, self.exponent)

    def ratio(self, other: ExactSum) -> float:
        """self / other, without overflowing on the way (a mean of huge losses stays finite)."""
        if other.scaled == 0:
            return math.nan
        return _ldexp(self.scaled / other.scaled, self.exponent - other.exponent)


@dataclass(frozen=True, slots=True)
class Moments:
    """Weight, mean and M2 of the losses, merged by Chan's formula (never a running mean).

    Like ExactSum, kept scaled by powers of two where the data would overflow them: the true
    weight is weight * 2**weight_exponent, the mean mean * 2**exponent, and M2
    m2 * 2**(2 * exponent + weight_exponent).
    """

    weight: float = 0.0
    mean: float = 0.0
    m2: float = 0.0
    exponent: int = 0
    weight_exponent: int = 0

    @staticmethod
    def of(values: FloatArray, weights: FloatArray | None) -> Moments:
        if values.size == 0:
            return Moments()
        with np.errstate(over="ignore", invalid="ignore"):
            plain = Moments._plain(values, weights)
        if math.isfinite(plain.weight) and math.isfinite(plain.mean) and math.isfinite(plain.m2):
            return plain
        if not _finite(values, weights):
            return plain  # NaN or inf in the data: they propagate
        exponent, weight_exponent = _exponent(values), _exponent(weights)
        scaled_weights = None if weights is None else np.ldexp(weights, -weight_exponent)
        scaled = Moments._plain(np.ldexp(values, -exponent), scaled_weights)
        return Moments(scaled.weight, scaled.mean, scaled.m2, exponent, weight_exponent)

    @staticmethod
    def _plain(values: FloatArray, weights: FloatArray | None) -> Moments:
        if weights is None:
            mean = float(values.mean())
            return Moments(float(values.size), mean, float(np.square(values - mean).sum()))
        weight = float(weights.sum())
        if weight == 0:
            return Moments()
        mean = float((weights * values).sum() / weight)
        return Moments(weight, mean, float((weights * np.square(values - mean)).sum()))

    def _at(self, exponent: int, weight_exponent: int) -> Moments:
        shift, weight_shift = self.exponent - exponent, self.weight_exponent - weight_exponent
        return Moments(
            _ldexp(self.weight, weight_shift),
            _ldexp(self.mean, shift),
            _ldexp(self.m2, 2 * shift + weight_shift),
            exponent,
            weight_exponent,
        )

    def merge(self, other: Moments) -> Moments:
        if other.weight == 0:
            return self
        if self.weight == 0:
            return other
        exponent = max(self.exponent, other.exponent)
        weight_exponent = max(self.weight_exponent, other.weight_exponent)
        a, b = self._at(exponent, weight_exponent), other._at(exponent, weight_exponent)
        weight = a.weight + b.weight
        delta = b.mean - a.mean
        mean = a.mean + delta * (b.weight / weight)
        m2 = a.m2 + b.m2 + delta * delta * (a.weight * b.weight / weight)
        return Moments(weight, mean, m2, exponent, weight_exponent)

    @property
    def std(self) -> float:
        """Population standard deviation (ddof 0)."""
        if not (self.weight > 0 and self.m2 >= 0):
            return math.nan
        return _ldexp(math.sqrt(self.m2 / self.weight), self.exponent)


@dataclass(frozen=True, slots=True)
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
            picked = candidates[_largest(loss[candidates], self.k)]
        else:
            picked = _largest(loss, self.k)
        ids = tuple(ids_of(picked)) if ids_of is not None else ()
        return self.merge(WorstRows(self.k, loss[picked], rows[picked], prediction[picked], actual[picked], ids))

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
        threshold = np.partition(values, values.size - k)[values.size - k]
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


@dataclass(frozen=True, slots=True)
class LossStats:
    """Sufficient statistics of one result's losses: update with chunks, merge, summarize."""

    top_k: int = 0
    count: int = 0
    loss: ExactSum = ExactSum()
    weight: ExactSum = ExactSum()
    abs_diff: ExactSum = ExactSum()
    sq_diff: ExactSum = ExactSum()
    linear: ExactSum = ExactSum()
    moments: Moments = Moments()
    min: float = math.inf
    max: float = -math.inf
    sketch: QuantileSketch = QuantileSketch()
    worst: WorstRows | None = None

    def update(self, chunk: Chunk) -> LossStats:
        """These statistics plus one chunk's (the sketch and worst rows are updated in place of a merge,
        so a full top-k list screens the chunk with one comparison)."""
        loss, w = chunk.loss, chunk.weight
        if loss.size == 0:
            return self
        rows_read = int(loss.size)
        if w is not None and not bool(w.all()):
            chunk = _without_weightless_rows(chunk)  # 0 * inf is NaN: a weight-0 row must not reach a sum
            loss, w = chunk.loss, chunk.weight
        with np.errstate(invalid="ignore", over="ignore"):
            seen = loss if w is None else loss[w > 0]
            lowest = float(seen.min()) if seen.size else math.inf
            highest = float(seen.max()) if seen.size else -math.inf
            return LossStats(
                self.top_k,
                self.count + rows_read,
                self.loss.merge(ExactSum.of(loss, w)),
                self.weight.add(float(rows_read)) if w is None else self.weight.merge(ExactSum.of(w)),
                self.abs_diff.merge(ExactSum.of(chunk.abs_diff, w)),
                self.sq_diff.merge(
                    ExactSum.of(chunk.abs_diff, w, square=True)
                    if chunk.sq_diff is None
                    else ExactSum.of(chunk.sq_diff, w)
                ),
                self.linear.merge(ExactSum.of(chunk.linear, w)),
                self.moments.merge(Moments.of(loss, w)),
                _nan_or(min, self.min, lowest),
                _nan_or(max, self.max, highest),
                self.sketch.update(loss, w),
                self._worst_with(chunk),
            )

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
            self.sketch.merge(other.sketch),
            _merge_worst(self.worst, other.worst),
        )

    def summarize(self) -> Summary:
        """The reported statistics; the caller checks that there was a row and a weight."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return Summary(
                count=self.count,
                weight=self.weight.value,
                mean=self.loss.ratio(self.weight),
                sum=self.loss.value,
                std=self.moments.std,
                min=self.min if self.count else math.nan,
                max=self.max if self.count else math.nan,
                quantiles=self._quantiles(),
                linear_fraction=self.linear.ratio(self.weight),
                mae=self.abs_diff.ratio(self.weight),
                rmse=_sqrt_ratio(self.sq_diff, self.weight),
                distribution=self.sketch,
            )

    def _quantiles(self) -> dict[str, float]:
        """The sketch's estimates, kept within [min, max] (an estimate may land just outside)."""
        estimates = self.sketch.quantiles(list(QUANTILES.values()))
        return {
            name: estimate if math.isnan(estimate) else min(max(estimate, self.min), self.max)
            for name, estimate in zip(QUANTILES, estimates, strict=True)
        }


def _without_weightless_rows(chunk: Chunk) -> Chunk:
    """The chunk's sums without its weight-0 rows (they still count as rows read, and the worst rows
    and quantiles skip them on their own)."""
    assert chunk.weight is not None
    keep = chunk.weight > 0
    return replace(
        chunk,
        loss=chunk.loss[keep],
        abs_diff=chunk.abs_diff[keep],
        sq_diff=None if chunk.sq_diff is None else chunk.sq_diff[keep],
        linear=chunk.linear[keep],
        rows=chunk.rows[keep],
        weight=chunk.weight[keep],
        prediction=None if chunk.prediction is None else chunk.prediction[keep],
        actual=None if chunk.actual is None else chunk.actual[keep],
        ids_of=None if chunk.ids_of is None else _positions_of(chunk.ids_of, np.flatnonzero(keep)),
    )


def _positions_of(ids_of: Callable[[np.ndarray[Any, Any]], Sequence[Any]], kept: np.ndarray[Any, Any]) -> Any:
    return lambda positions: ids_of(kept[positions])


def _sqrt_ratio(a: ExactSum, b: ExactSum) -> float:
    """sqrt(a / b) taken before the powers of two are applied: an RMSE of 1e160 does not overflow."""
    if b.scaled == 0 or not a.scaled >= 0:
        return math.nan
    shift = a.exponent - b.exponent
    quotient = a.scaled / b.scaled * (2.0 if shift % 2 else 1.0)
    return _ldexp(math.sqrt(quotient), (shift - shift % 2) // 2)


def _nan_or(pick: Callable[[float, float], float], a: float, b: float) -> float:
    return math.nan if math.isnan(a) or math.isnan(b) else pick(a, b)


def _merge_worst(a: WorstRows | None, b: WorstRows | None) -> WorstRows | None:
    if a is None or b is None:
        return a if b is None else b
    return a.merge(b)


def _two_sum_arrays(a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Element-wise `_two_sum`."""
    with np.errstate(invalid="ignore", over="ignore"):
        s = a + b
        b_part = s - a
        error = (a - (s - b_part)) + (b - b_part)
    return s, np.where(np.isfinite(s), error, 0.0)


_GROUP_SUMS = ("weight", "loss", "abs_diff", "sq_diff", "linear")


@dataclass(frozen=True, slots=True)
class GroupStats:
    """LossStats for many groups at once, as arrays indexed by group code (no quantiles, no worst rows).

    Memory grows with the number of groups, never with the rows; merging is element-wise.
    """

    count: np.ndarray[Any, Any]
    sums: dict[str, tuple[FloatArray, FloatArray]]  # name -> (total, error) per group, as ExactSum
    moments: tuple[FloatArray, FloatArray, FloatArray]  # weight, mean, M2 per group
    min: FloatArray
    max: FloatArray

    @staticmethod
    def empty(groups: int) -> GroupStats:
        zeros = np.zeros(groups)
        return GroupStats(
            np.zeros(groups, dtype=np.int64),
            {name: (zeros, zeros) for name in _GROUP_SUMS},
            (zeros, zeros, zeros),
            np.full(groups, math.inf),
            np.full(groups, -math.inf),
        )

    @property
    def groups(self) -> int:
        return int(self.count.size)

    def grown(self, groups: int) -> GroupStats:
        """The same statistics, padded with empty groups up to `groups`."""
        if groups == self.groups:
            return self
        extra = GroupStats.empty(groups - self.groups)
        return GroupStats(
            np.concatenate([self.count, extra.count]),
            {
                name: (np.concatenate([total, extra.sums[name][0]]), np.concatenate([error, extra.sums[name][1]]))
                for name, (total, error) in self.sums.items()
            },
            tuple(np.concatenate([mine, theirs]) for mine, theirs in zip(self.moments, extra.moments, strict=True)),  # type: ignore[arg-type]
            np.concatenate([self.min, extra.min]),
            np.concatenate([self.max, extra.max]),
        )

    def update(self, codes: np.ndarray[Any, Any], groups: int, chunk: Chunk) -> GroupStats:
        """These statistics plus one chunk whose rows belong to groups `codes` (< `groups`)."""
        w = chunk.weight

        def per_group(values: FloatArray) -> FloatArray:
            return np.bincount(codes, weights=values if w is None else values * w, minlength=groups)

        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            count = np.bincount(codes, minlength=groups)
            weight = count.astype(np.float64) if w is None else np.bincount(codes, weights=w, minlength=groups)
            loss = per_group(chunk.loss)
            mean = np.where(weight > 0, loss / weight, 0.0)
            m2 = per_group(np.square(chunk.loss - mean[codes]))
            seen = chunk.loss if w is None else np.where(w > 0, chunk.loss, np.nan)
            lowest, highest = np.full(groups, math.inf), np.full(groups, -math.inf)
            np.fmin.at(lowest, codes, seen)  # fmin/fmax skip the NaN of weight-0 rows ...
            np.fmax.at(highest, codes, seen)
            nan_rows = np.isnan(chunk.loss) & (True if w is None else w > 0)
            lowest[np.unique(codes[nan_rows])] = np.nan  # ... while a NaN loss still propagates
            highest[np.unique(codes[nan_rows])] = np.nan
        sums = {
            "weight": weight,
            "loss": loss,
            "abs_diff": per_group(chunk.abs_diff),
            "sq_diff": per_group(np.square(chunk.abs_diff) if chunk.sq_diff is None else chunk.sq_diff),
            "linear": per_group(chunk.linear.astype(np.float64)),
        }
        zeros = np.zeros(groups)
        chunk_stats = GroupStats(
            count, {name: (total, zeros) for name, total in sums.items()}, (weight, mean, m2), lowest, highest
        )
        return self.grown(groups).merge(chunk_stats)

    def merge(self, other: GroupStats) -> GroupStats:
        """Both statistics together, group by group (the two must cover the same groups)."""
        sums = {}
        for name, (total, error) in self.sums.items():
            other_total, other_error = other.sums[name]
            merged, lost = _two_sum_arrays(total, other_total)
            sums[name] = (merged, error + other_error + lost)
        (wa, ma, m2a), (wb, mb, m2b) = self.moments, other.moments
        with np.errstate(invalid="ignore", divide="ignore"):
            weight = wa + wb
            delta = mb - ma
            share = np.where(weight > 0, wb / weight, 0.0)
            mean = ma + delta * share
            m2 = m2a + m2b + delta * delta * wa * share
        lowest = np.where(np.isnan(self.min) | np.isnan(other.min), np.nan, np.fmin(self.min, other.min))
        highest = np.where(np.isnan(self.max) | np.isnan(other.max), np.nan, np.fmax(self.max, other.max))
        return GroupStats(self.count + other.count, sums, (weight, mean, m2), lowest, highest)

    def summarize(self, group: int) -> Summary:
        """One group's statistics, as LossStats.summarize gives them (without quantiles)."""
        value = {name: float(total[group] + error[group]) for name, (total, error) in self.sums.items()}
        weight = value["weight"]
        m_weight, _, m2 = (float(part[group]) for part in self.moments)
        with np.errstate(invalid="ignore", divide="ignore"):
            return Summary(
                count=int(self.count[group]),
                weight=weight,
                mean=value["loss"] / weight if weight else math.nan,
                sum=value["loss"],
                std=math.sqrt(m2 / m_weight) if m_weight > 0 and m2 >= 0 else math.nan,
                min=float(self.min[group]),
                max=float(self.max[group]),
                quantiles={},
                linear_fraction=value["linear"] / weight if weight else math.nan,
                mae=value["abs_diff"] / weight if weight else math.nan,
                rmse=math.sqrt(value["sq_diff"] / weight) if weight and value["sq_diff"] >= 0 else math.nan,
            )
