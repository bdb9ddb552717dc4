"""A mergeable quantile sketch with bounded relative error (the DDSketch construction).

Up to EXACT_LIMIT unweighted values are kept as they are, and quantiles are then exact
(NumPy's linear interpolation). Beyond that, values above 0 fall into logarithmic buckets
(gamma**(k-1), gamma**k]; a bucket's estimate 2 * gamma**k / (gamma + 1) is within ALPHA of
every value in it. Counts are exact, so merging is order-free, and memory is bounded by the
range of magnitudes (at most about 150,000 buckets across all of float64), never by the rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ALPHA = 0.005  # half the promised 1%: leaves room for log() rounding at bucket edges
GAMMA = (1 + ALPHA) / (1 - ALPHA)
EXACT_LIMIT = 4096
_LOG_GAMMA = math.log(GAMMA)
_INV_LOG_GAMMA = 1.0 / _LOG_GAMMA
_LOG_MIDPOINT = math.log(2.0 / (GAMMA + 1.0))  # in logs, so the top bucket of float64 cannot overflow
_EMPTY = np.zeros(0)

Floats = np.ndarray[Any, Any]


@dataclass(frozen=True, slots=True)
class QuantileSketch:
    """Weighted counts of non-negative values: zero, logarithmic buckets, +inf, and NaN."""

    exact: Floats | None = field(default_factory=lambda: _EMPTY)  # the values themselves, while few
    offset: int = 0  # bucket key of counts[0]
    counts: Floats = field(default_factory=lambda: _EMPTY)
    zeros: float = 0.0
    infinite: float = 0.0
    nan: float = 0.0

    def update(self, values: Floats, weights: Floats | None = None) -> QuantileSketch:
        """Add a chunk of values (>= 0, inf or NaN), each counted with its weight (default 1)."""
        if self.exact is not None and weights is None and self.exact.size + values.size <= EXACT_LIMIT:
            nan = np.isnan(values)
            return QuantileSketch(np.concatenate([self.exact, values[~nan]]), nan=self.nan + np.count_nonzero(nan))
        return self._bucketed().merge(_buckets(values, weights))

    def merge(self, other: QuantileSketch) -> QuantileSketch:
        """The sketch of both inputs together (exact: counts add)."""
        if self.exact is not None and other.exact is not None and self.exact.size + other.exact.size <= EXACT_LIMIT:
            return QuantileSketch(np.concatenate([self.exact, other.exact]), nan=self.nan + other.nan)
        a, b = self._bucketed(), other._bucketed()
        if a.counts.size == 0 or b.counts.size == 0:
            offset, counts = (a.offset, a.counts) if b.counts.size == 0 else (b.offset, b.counts)
        else:
            offset = min(a.offset, b.offset)
            end = max(a.offset + a.counts.size, b.offset + b.counts.size)
            counts = np.zeros(end - offset)
            counts[a.offset - offset : a.offset - offset + a.counts.size] += a.counts
            counts[b.offset - offset : b.offset - offset + b.counts.size] += b.counts
        return QuantileSketch(None, offset, counts, a.zeros + b.zeros, a.infinite + b.infinite, a.nan + b.nan)

    def _bucketed(self) -> QuantileSketch:
        if self.exact is None:
            return self
        values = _buckets(self.exact, None)
        return QuantileSketch(None, values.offset, values.counts, values.zeros, values.infinite, self.nan)

    def quantile(self, q: float) -> float:
        """The value at rank q * (n - 1): exact while few, else within ALPHA of the true order statistic."""
        if self.nan:
            return math.nan
        if self.exact is not None:
            if self.exact.size == 0:
                return math.nan
            with np.errstate(invalid="ignore"):
                return float(np.quantile(self.exact, q))
        total = self.zeros + float(self.counts.sum()) + self.infinite
        if total == 0:
            return math.nan
        rank = q * (total - 1)
        if rank < self.zeros:
            return 0.0
        cumulative = self.zeros + np.cumsum(self.counts)
        index = int(np.searchsorted(cumulative, rank, side="right"))
        if index >= self.counts.size:
            return math.inf
        return math.exp((self.offset + index) * _LOG_GAMMA + _LOG_MIDPOINT)  # 2 * GAMMA**k / (GAMMA + 1)

    def histogram(self, bins: int = 8) -> list[tuple[float, float, float]]:
        """(low, high, weight) rows: zeros as (0, 0, n), then log-spaced bins over the positive values."""
        if self.exact is not None:
            finite = self.exact[np.isfinite(self.exact)]
            values, weights = finite[finite > 0], np.ones(int(np.count_nonzero(finite > 0)))
            zeros, infinite = float(np.count_nonzero(finite == 0)), float(self.exact.size - finite.size)
        else:
            used = np.flatnonzero(self.counts)
            values = np.exp((self.offset + used) * _LOG_GAMMA + _LOG_MIDPOINT)
            weights, zeros, infinite = self.counts[used], self.zeros, self.infinite
        rows = [(0.0, 0.0, zeros)] if zeros else []
        if values.size:
            low, high = float(values.min()), float(values.max())
            edges = np.geomspace(low, high, bins + 1) if high > low else np.array([low, high])
            counts, edges = np.histogram(values, bins=edges, weights=weights)
            rows += [(float(a), float(b), float(c)) for a, b, c in zip(edges[:-1], edges[1:], counts, strict=True)]
        if infinite:
            rows.append((math.inf, math.inf, infinite))
        return rows


def _buckets(values: Floats, weights: Floats | None) -> QuantileSketch:
    """A bucketed sketch of one chunk."""
    with np.errstate(divide="ignore", invalid="ignore"):
        positive = (values > 0) & (values < math.inf)
        keys = np.ceil(np.log(values[positive]) * _INV_LOG_GAMMA).astype(np.int64)
        zeros = _total(values == 0, weights)
        infinite = _total(values == math.inf, weights)
        nan = _total(np.isnan(values), weights)
    if keys.size == 0:
        return QuantileSketch(None, 0, _EMPTY, zeros, infinite, nan)
    low = int(keys.min())
    counts = np.bincount(keys - low, weights=None if weights is None else weights[positive]).astype(np.float64)
    return QuantileSketch(None, low, counts, zeros, infinite, nan)


def _total(mask: Floats, weights: Floats | None) -> float:
    return float(np.count_nonzero(mask)) if weights is None else float(weights[mask].sum())
