"""A mergeable quantile sketch with bounded relative error (DDSketch, with its log-linear mapping).

Up to `limit` values (EXACT_LIMIT by default; unbounded for --exact-quantiles) are kept as
they are, and quantiles are then exact: NumPy's linear interpolation, where a weight counts
as that many copies of the row. Beyond that, values above 0 fall into buckets keyed by their
binary exponent and the first 7 bits of their mantissa: the float's own bits shifted right, an
integer that grows with the value, so no logarithm is computed and no value's bucket depends on
rounding. A bucket spans a factor of at most 1 + 2**-7; its estimate, the harmonic mean of its
smallest and largest float, is within ALPHA (1/257, 0.39%) of every value in it. Counts are
exact, so merging is order-free, and memory is bounded by the range of magnitudes (at most
128 buckets a power of two: about 270,000 across all of float64), never by the rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from smoothl1_cli import backends

_MANTISSA_BITS = 7  # buckets per power of two: 2**7
ALPHA = 1 / (2 ** (_MANTISSA_BITS + 1) + 1)  # (b - a) / (b + a) at b = a * (1 + 2**-7): an estimate's error at most
EXACT_LIMIT = 4096
_SHIFT = 52 - _MANTISSA_BITS  # a float64's bits >> _SHIFT: its exponent, then its mantissa's first bits
_NORMAL = 1 << _MANTISSA_BITS  # the key of 2**-1022, the smallest normal float; subnormals' bits are not logarithmic
_INFINITE = 0x7FF << _MANTISSA_BITS  # the key of inf (and of NaN's bits, or above; a negative sign makes keys < 0)
_LIFT = 64  # a subnormal x is keyed as x * 2**64 (exact, and normal) is, 64 powers of two lower
_LIFT_KEYS = _LIFT << _MANTISSA_BITS
_EMPTY = np.zeros(0)

Floats = np.ndarray[Any, Any]
_Part = tuple[Floats, Floats | None]  # values (no NaN), and their weights (None: all 1)


def field_values(accumulator: Any) -> tuple[Any, ...]:
    """A dataclass's field values, in order."""
    return tuple(getattr(accumulator, f.name) for f in fields(accumulator))


def same_fields(a: Any, b: object) -> bool:
    """Accumulators are equal when their statistics are: the same type, field by field (same_value)."""
    return type(a) is type(b) and same_value(field_values(a), field_values(b))


def same_value(a: Any, b: Any) -> bool:
    """Value equality for accumulators' fields: arrays element-wise (NaN equal to NaN), containers item
    by item, floats with NaN equal to NaN."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)) or a.shape != b.shape:
            return False
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind == b.dtype.kind == "f"))
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[key], b[key]) for key in a)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


@dataclass(frozen=True, slots=True, eq=False)
class QuantileSketch:
    """Exact values while few (or always, with limit=inf); else weighted counts in log buckets."""

    limit: float = EXACT_LIMIT
    # The exact values, chunk by chunk, are parts[:used] (None once bucketed). The list is append-only
    # and shared with the sketch this one grew from, so adding a chunk copies nothing (--exact-quantiles
    # stays linear in the chunks); a sketch whose list another one extended copies its own prefix.
    parts: list[_Part] | None = field(default_factory=list)
    used: int = 0
    size: int = 0  # values in parts[:used]
    offset: int = 0  # bucket key of counts[0]
    counts: Floats = field(default_factory=lambda: _EMPTY)
    zeros: float = 0.0
    infinite: float = 0.0
    nan: float = 0.0
    unit: float = 1.0  # the rank one row takes: 1, or the smallest positive weight where weights are below 1

    def __eq__(self, other: object) -> bool:
        """The same values (however chunked) and counts: equal sketches give equal quantiles."""
        if not isinstance(other, QuantileSketch):
            return False
        mine, theirs = (
            (s.limit, s.parts is None, s._exact() if s.parts is not None else (), s.offset, s.counts, s.zeros,
             s.infinite, s.nan, s.unit)
            for s in (self, other)
        )  # fmt: skip
        return same_value(mine, theirs)

    def update(self, values: Floats, weights: Floats | None = None) -> QuantileSketch:
        """Add a chunk of values (>= 0, inf or NaN), each counted with its weight (default 1)."""
        if self.parts is None:  # bucketed already: the chunk's counts are added, its values never kept
            return self.merge(_bucketed(self.limit, values, weights))
        nan = np.isnan(values)
        has_nan = bool(nan.any())
        nan_weight = (
            0.0 if not has_nan else float(np.count_nonzero(nan)) if weights is None else float(weights[nan].sum())
        )
        part = (values[~nan], None if weights is None else weights[~nan]) if has_nan else (values, weights)
        if self.size + part[0].size > self.limit:  # the chunk's own buckets, as merge would count them
            return self.merge(replace(_bucketed(self.limit, *part), nan=nan_weight))
        kept = (backends.to_numpy(part[0]), None if part[1] is None else backends.to_numpy(part[1]))  # (few)
        return self.merge(QuantileSketch(self.limit, [kept], 1, int(kept[0].size), nan=nan_weight))

    def merge(self, other: QuantileSketch) -> QuantileSketch:
        """The sketch of both inputs together (exact: values join, counts add)."""
        nan = self.nan + other.nan
        if self.parts is not None and other.parts is not None and self.size + other.size <= self.limit:
            parts = self.parts if self.used and len(self.parts) == self.used else self.parts[: self.used]
            parts.extend(other.parts[: other.used])
            return QuantileSketch(self.limit, parts, len(parts), self.size + other.size, nan=nan)
        a, b = self._bucketed(), other._bucketed()
        if a.counts.size == 0 or b.counts.size == 0:
            offset, counts = (a.offset, a.counts) if b.counts.size == 0 else (b.offset, b.counts)
        else:
            offset = min(a.offset, b.offset)
            end = max(a.offset + a.counts.size, b.offset + b.counts.size)
            counts = np.zeros(end - offset)
            counts[a.offset - offset : a.offset - offset + a.counts.size] += a.counts
            counts[b.offset - offset : b.offset - offset + b.counts.size] += b.counts
        zeros, infinite, unit = a.zeros + b.zeros, a.infinite + b.infinite, min(a.unit, b.unit)
        return QuantileSketch(self.limit, None, 0, 0, offset, counts, zeros, infinite, nan, unit)

    def _bucketed(self) -> QuantileSketch:
        if self.parts is None:
            return self
        return replace(_bucketed(self.limit, *self._exact()), nan=self.nan)  # the exact values hold no NaN

    def _exact(self) -> tuple[Floats, Floats | None]:
        parts = (self.parts or [])[: self.used]
        if len(parts) == 1:
            return parts[0]
        values = np.concatenate([v for v, _ in parts]) if parts else _EMPTY
        if all(w is None for _, w in parts):
            return values, None
        return values, np.concatenate([np.ones(v.size) if w is None else w for v, w in parts])

    def quantile(self, q: float) -> float:
        """The value at rank q * (n - 1): exact while kept, else within ALPHA of the true order statistic."""
        return self.quantiles([q])[0]

    def quantiles(self, qs: Sequence[float]) -> list[float]:
        """quantile(q) for each q (exact values are sorted once for all of them)."""
        if self.nan:
            return [math.nan for _ in qs]
        if self.parts is not None:
            return _exact_quantiles(*self._exact(), qs)
        total = self.zeros + float(self.counts.sum()) + self.infinite
        cumulative = self.zeros + np.cumsum(self.counts)
        return [self._bucket_quantile(q, total, cumulative) for q in qs]

    def _bucket_quantile(self, q: float, total: float, cumulative: Floats) -> float:
        if total == 0:
            return math.nan
        rank = max(q * (total - self.unit), 0.0)
        if rank < self.zeros:
            return 0.0
        index = int(np.searchsorted(cumulative, rank, side="right"))
        if index >= self.counts.size:
            return math.inf
        return float(_estimates(np.array([self.offset + index]))[0])

    def histogram(self, bins: int = 8) -> list[tuple[float, float, float]]:
        """(low, high, weight) rows: zeros as (0, 0, n), then log-spaced bins over the positive values."""
        if self.parts is not None:
            exact, exact_weights = self._exact()
            weights = np.ones(exact.size) if exact_weights is None else exact_weights
            finite = np.isfinite(exact)
            positive = finite & (exact > 0)
            values, weights, zeros, infinite = (
                exact[positive], weights[positive], float(weights[exact == 0].sum()), float(weights[~finite].sum())
            )  # fmt: skip
        else:
            used = np.flatnonzero(self.counts)
            values = _estimates(self.offset + used)
            weights, zeros, infinite = self.counts[used], self.zeros, self.infinite
        rows = [(0.0, 0.0, zeros)] if zeros else []
        if values.size:
            low, high = float(values.min()), float(values.max())
            with np.errstate(over="ignore"):  # exp() of the top edge may round past float64's maximum
                edges = np.exp(np.linspace(math.log(low), math.log(high), bins + 1))
            edges[0], edges[-1] = low, high
            edges = edges[np.concatenate(([True], np.diff(edges) > 0))]  # near-equal ends can repeat an edge
            if edges.size < 2:
                rows.append((low, high, float(weights.sum())))
            else:
                counts, edges = np.histogram(values, bins=edges, weights=weights)
                rows += [(float(a), float(b), float(c)) for a, b, c in zip(edges[:-1], edges[1:], counts, strict=True)]
        if infinite:
            rows.append((math.inf, math.inf, infinite))
        return rows

    def points(self) -> tuple[Floats, Floats]:
        """Every value but NaN with its weight: the values themselves while kept, else each bucket's
        estimate with its count (and 0 and inf with the zeros' and infinities' weights)."""
        if self.parts is not None:
            values, weights = self._exact()
            return values, np.ones(values.size) if weights is None else weights
        used = np.flatnonzero(self.counts)
        values = np.concatenate(([0.0], _estimates(self.offset + used), [math.inf]))
        return values, np.concatenate(([self.zeros], self.counts[used], [self.infinite]))


def _bucketed(limit: float, values: Floats, weights: Floats | None) -> QuantileSketch:
    """The bucketed sketch of a chunk of values (>= 0, inf or NaN) and their weights (None: all 1)."""
    values = values.astype(np.float64, copy=False)  # (its bits are read as a float64's)
    unit = _unit(weights)
    keys = values.view(np.int64) >> _SHIFT
    low = int(keys.min()) if keys.size else 0
    if low >= _NORMAL and int(keys.max()) < _INFINITE:
        # The common case, a shift and a count: every value is positive, normal and finite (0, a subnormal,
        # inf, NaN and a negative sign all fail a bound), so each value's bits are its key.
        keys -= low
        return QuantileSketch(limit, None, 0, 0, low, _counted(keys, weights), unit=unit)
    zeros, infinite, nan = values == 0, values == math.inf, np.isnan(values)
    positive = (values > 0) & ~infinite
    keys = _keys(values[positive])
    low = int(keys.min()) if keys.size else 0
    counts = _counted(keys - low, None if weights is None else weights[positive])
    totals = [_total(mask, weights) for mask in (zeros, infinite, nan)]
    return QuantileSketch(limit, None, 0, 0, low, counts, totals[0], totals[1], totals[2], unit)


def _keys(values: Floats) -> np.ndarray[Any, Any]:
    """The bucket key of each value (positive and finite): its bits shifted right, and a subnormal's as
    its normal x * 2**64 has it, 64 powers of two lower, so that keys stay logarithmic below 2**-1022."""
    keys = values.view(np.int64) >> _SHIFT
    if keys.size and int(keys.min()) < _NORMAL:
        subnormal = keys < _NORMAL
        keys[subnormal] = (np.ldexp(values[subnormal], _LIFT).view(np.int64) >> _SHIFT) - _LIFT_KEYS
    return keys


def _counted(offsets: np.ndarray[Any, Any], weights: Floats | None) -> Floats:
    """The weight (or the number) of keys at each offset from the lowest one (0)."""
    if not offsets.size:
        return _EMPTY
    return backends.to_numpy(np.bincount(offsets, weights)).astype(np.float64, copy=False)  # counted on a device


def _estimates(keys: np.ndarray[Any, Any]) -> Floats:
    """Each bucket's estimate: the harmonic mean 2ab / (a + b) of its smallest and largest float a and b,
    within (b - a) / (b + a) <= ALPHA of both (and so of every value between them)."""
    subnormal = keys < _NORMAL
    lifted = np.where(subnormal, keys + _LIFT_KEYS, keys)
    low, high = (lifted << _SHIFT).view(np.float64), (((lifted + 1) << _SHIFT) - 1).view(np.float64)
    if subnormal.any():  # a subnormal bucket's floats: the multiples of 2**-1074 between its lifted ends / 2**64
        low[subnormal] = np.ldexp(np.ceil(np.ldexp(low[subnormal], 1074 - _LIFT)), -1074)
        high[subnormal] = np.ldexp(np.floor(np.ldexp(high[subnormal], 1074 - _LIFT)), -1074)
    return low / ((1 + low / high) / 2)  # 2ab / (a + b), without overflowing at the top of float64


def _exact_quantiles(values: Floats, weights: Floats | None, qs: Sequence[float]) -> list[float]:
    """NumPy's linear-interpolation quantiles (bit for bit), where a row of weight w stands for w copies."""
    if weights is None:
        ordered = np.sort(values)
        return [_linear(ordered, q) for q in qs]
    used = weights > 0
    values, weights = values[used], weights[used]
    if weights.size and weights.max() < 1:  # fractions only count relative to each other: scale them
        weights = np.ldexp(weights, -math.frexp(float(weights.max()))[1])  # up (exactly), or subnormals lose digits
    order = np.argsort(values, kind="stable")
    values, weights = values[order], weights[order]
    ends = np.cumsum(weights)  # row i covers ranks [ends[i] - w_i, ends[i] - unit]
    unit = _unit(weights)
    return [_weighted(values, weights, ends, unit, q) for q in qs]


def _unit(weights: Floats | None) -> float:
    """The rank one row takes. A weight counts as that many copies of its row, so a row is 1; where
    weights are fractions (normalised weights, say) the smallest one is the row, so that equal
    weights of any size give the unweighted quantiles."""
    if weights is None:
        return 1.0
    positive = weights[weights > 0]
    return min(1.0, float(positive.min())) if positive.size else 1.0


def _linear(ordered: Floats, q: float) -> float:
    """np.quantile(values, q) of sorted values, without NumPy's lazily imported machinery (and
    without its 0 * inf = NaN next to an infinite value)."""
    if ordered.size == 0:
        return math.nan
    virtual = q * (ordered.size - 1)
    low = math.floor(virtual)
    share = virtual - low
    a, b = float(ordered[low]), float(ordered[min(low + 1, ordered.size - 1)])
    if share == 0 or a == b or math.isinf(b):
        return a if share == 0 else b
    difference = b - a
    return b - difference * (1 - share) if share >= 0.5 else a + difference * share  # NumPy's _lerp


def _weighted(values: Floats, weights: Floats, ends: Floats, unit: float, q: float) -> float:
    if values.size == 0:
        return math.nan
    rank = max(q * (ends[-1] - unit), 0.0)
    i = min(int(np.searchsorted(ends - unit, rank, side="left")), values.size - 1)
    if i == 0 or rank >= ends[i] - weights[i]:
        return float(values[i])
    below = ends[i - 1] - unit  # the last rank of row i - 1: interpolate across the gap to row i
    if values[i] == values[i - 1] or math.isinf(values[i]):
        return float(values[i])  # no gap to cross (and no inf - inf)
    return float(values[i - 1] + (rank - below) / unit * (values[i] - values[i - 1]))


def _total(mask: Floats, weights: Floats | None) -> float:
    return float(np.count_nonzero(mask)) if weights is None else float(weights[mask].sum())
