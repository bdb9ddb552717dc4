"""A streaming, seeded Poisson bootstrap: confidence intervals and paired tests in one pass.

Each row r gets, in each replicate b, a Poisson(1) weight that is a pure function of
(seed, r, b) (a counter-based hash), so replicates do not depend on chunking, order or the
machine, and the per-replicate sums merge like every other accumulator. Cost: one weight per
row and replicate, about rows x replicates x a few nanoseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from smoothl1_cli import backends
from smoothl1_cli.sketch import same_fields
from smoothl1_cli.stats import zero_where_weightless

Floats = np.ndarray[Any, Any]
_BLOCK_ROWS = 2048  # rows per weight matrix (the sums' bits depend on it: keep it, or replicates change)
_BLOCK_REPLICATES = 128  # replicates per weight matrix: 128 x 2048 float64 is 2 MiB, at any --bootstrap
_DEVICE_BLOCK = 1 << 24  # a device's weight matrix: up to 2**20 rows by as many replicates as fit 2**24 weights
_DEVICE_BLOCK_ROWS = 1 << 20
_MASK16 = np.uint64(0xFFFF)


def _poisson_table() -> np.ndarray[Any, Any]:
    """Poisson(1) draws by 16-bit uniform: entry u is the k with CDF(k-1) <= u / 2**16 < CDF(k)."""
    cdf = np.cumsum([math.exp(-1) / math.factorial(k) for k in range(16)])
    return np.searchsorted(cdf * 65536, np.arange(65536) + 0.5).astype(np.float64)


_POISSON = _poisson_table()


def _splitmix64(z: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    mixed: np.ndarray[Any, Any] = z ^ (z >> np.uint64(31))
    return mixed


_TABLES: dict[tuple[str, int], Any] = {}  # the Poisson table on each device, copied there once


def _table(xp: Any) -> Any:
    if xp is np:
        return _POISSON
    device = (xp.__name__, int(xp.cuda.runtime.getDevice()))
    if device not in _TABLES:  # (setdefault would copy it there on every call, to find it kept)
        _TABLES[device] = xp.asarray(_POISSON, blocking=True)  # there before any thread's stream reads it
    return _TABLES[device]


def poisson_weights(seed: int, rows: Any, replicates: int, first: int = 0, xp: Any = np) -> Any:
    """A (replicates, len(rows)) matrix of Poisson(1) weights of replicates first, first + 1, ...
    (`first` a multiple of 4), each a function of (seed, row, replicate); on `xp`'s device with its rows."""
    groups = (replicates + 3) // 4  # one 64-bit hash gives four 16-bit uniforms
    key = _splitmix64(np.array([seed], dtype=np.uint64))[0]
    hash_groups = xp.arange(first // 4, first // 4 + groups, dtype=np.uint64)
    counters = (rows.astype(np.uint64)[None, :] << np.uint64(16)) + hash_groups[:, None]
    hashed = _splitmix64(counters ^ key)
    uniforms = xp.stack([(hashed >> np.uint64(16 * part)) & _MASK16 for part in range(4)], axis=1)
    return _table(xp)[uniforms.reshape(groups * 4, rows.size)[:replicates]]


def _blocks(xp: Any, rows: int) -> tuple[int, int]:
    """Rows and replicates per weight matrix. NumPy keeps its small blocks (the replicates' bits depend on
    them); a device takes up to 2**20 rows of its batch at once, a few launches per block, and its sums
    differ from NumPy's only by rounding (they agree to a relative 1e-12)."""
    if xp is np:
        return _BLOCK_ROWS, _BLOCK_REPLICATES
    block_rows = min(max(rows, 1), _DEVICE_BLOCK_ROWS)
    return block_rows, max(4, _DEVICE_BLOCK // block_rows // 4 * 4)


@dataclass(frozen=True, slots=True, eq=False)
class BootstrapStats:
    """Per replicate: each result's weighted loss sum, and the (shared) weight sum."""

    seed: int
    sums: Floats  # (results, replicates)
    weights: Floats  # (replicates,)

    @staticmethod
    def empty(results: int, replicates: int, seed: int) -> BootstrapStats:
        return BootstrapStats(seed, np.zeros((results, replicates)), np.zeros(replicates))

    def update(self, rows: Any, losses: list[Any], weight: Any, xp: Any = np) -> BootstrapStats:
        """Add one chunk: `rows` are global row numbers, `losses` one array per result, all on `xp`'s
        device: the weights are drawn there, and only the replicates' sums come back."""
        sums, weights = xp.array(self.sums), xp.array(self.weights)  # (copies)
        losses = [zero_where_weightless(loss, weight) for loss in losses]  # 0 * inf is NaN
        block_rows, block_replicates = _blocks(xp, rows.size)
        for start in range(0, rows.size, block_rows):
            block = slice(start, start + block_rows)
            for first in range(0, self.weights.size, block_replicates):  # bounded memory at any replicate count
                replicates = slice(first, first + block_replicates)
                draws = poisson_weights(self.seed, rows[block], weights[replicates].size, first, xp)
                if weight is not None:
                    draws = draws * weight[block]
                weights[replicates] += draws.sum(axis=1)
                for index, loss in enumerate(losses):
                    sums[index, replicates] += (draws * loss[block]).sum(axis=1)  # no BLAS: it fights Arrow's threads
        return BootstrapStats(self.seed, backends.to_numpy(sums), backends.to_numpy(weights))

    def __eq__(self, other: object) -> bool:
        return same_fields(self, other)

    def merge(self, other: BootstrapStats) -> BootstrapStats:
        return BootstrapStats(self.seed, self.sums + other.sums, self.weights + other.weights)

    def replicate_values(self, index: int, reduction: str) -> Floats:
        """The result's value in every replicate."""
        values: Floats = self.sums[index]
        if reduction == "sum":
            return values
        with np.errstate(invalid="ignore", divide="ignore"):
            means: Floats = values / self.weights
        return means


def interval(values: Floats, level: float) -> tuple[float, float]:
    """The percentile interval of replicate values at `level` (linear interpolation)."""
    alpha = (1 - level) / 2
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return float(low), float(high)


def paired_p_value(differences: Floats) -> float:
    """Two-sided bootstrap p-value of 'no difference': twice the smaller tail around 0, (k + 1) / (n + 1)."""
    finite = differences[np.isfinite(differences)]
    if finite.size == 0:
        return math.nan
    below = np.count_nonzero(finite <= 0)
    above = np.count_nonzero(finite >= 0)
    return min(1.0, 2 * (min(below, above) + 1) / (finite.size + 1))
