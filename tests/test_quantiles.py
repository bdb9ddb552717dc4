"""p50..p99: exact (NumPy's linear interpolation) up to 4,096 rows and with --exact-quantiles; the
sketch beyond that stays within 1% of the exact order statistics. Every reference is computed here
with NumPy from the tool's own per-row losses (written with --per-row), so `==` tests the quantile
step alone, and those losses are checked against conftest's textbook formula."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smoothl1_cli import evaluate
from tests.conftest import eval_json, reference_loss

QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
SKETCH_ERROR = 0.01  # README: within 1% of the order statistic at rank q*(n-1)


def _frame(n: int, kind: str = "normal", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    target = rng.normal(0.0, 3.0, n)
    if kind == "normal":
        noise = rng.normal(0.0, 1.0, n)
    elif kind == "heavy":  # losses over many orders of magnitude
        noise = rng.standard_t(1.5, n) * 10.0 ** rng.uniform(-4, 2, n)
    elif kind == "ties":  # a third of the losses exactly 0, the rest from a few values
        noise = rng.choice([0.0, 0.0, 0.25, 0.5, 2.0, -3.0], n)
    else:
        raise ValueError(kind)
    return pd.DataFrame({"y": target, "pred": target + noise, "w": rng.integers(0, 5, n).astype(np.float64)})


def run(frame: pd.DataFrame, tmp_path: Path, **options: Any) -> tuple[np.ndarray[Any, Any], dict[str, Any]]:
    """The report's first result, and the per-row losses the tool wrote while making it."""
    rows = tmp_path / "rows.parquet"
    report = evaluate(frame, target="y", pred="pred", per_row=str(rows), **options).to_dict()
    losses = np.asarray(pq.read_table(rows).column("loss").to_pylist(), dtype=np.float64)
    rows.unlink()
    return losses, report["results"][0]


def check_losses(frame: pd.DataFrame, losses: np.ndarray[Any, Any]) -> None:
    expected = [reference_loss(p, t) for p, t in zip(frame["pred"], frame["y"], strict=True)]
    np.testing.assert_allclose(losses, expected, rtol=1e-15, atol=0)


def order_statistics(values: np.ndarray[Any, Any], q: float) -> tuple[float, float]:
    """The order statistics on either side of rank q*(n-1)."""
    ordered = np.sort(values)
    rank = q * (ordered.size - 1)
    return float(ordered[math.floor(rank)]), float(ordered[math.ceil(rank)])


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 1000, 4096])
def test_up_to_4096_rows_quantiles_are_numpys(tmp_path, n):
    frame = _frame(n, seed=n)
    losses, result = run(frame, tmp_path)
    check_losses(frame, losses)
    for name, q in QUANTILES.items():
        assert result["quantiles"][name] == float(np.quantile(losses, q)), name


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_exact_quantiles_do_not_depend_on_chunking(tmp_path, chunk):
    frame = _frame(4096 if chunk > 1 else 500, "ties", seed=3)
    losses, result = run(frame, tmp_path, chunk_rows=chunk)
    for name, q in QUANTILES.items():
        assert result["quantiles"][name] == float(np.quantile(losses, q)), name


@pytest.mark.parametrize(("n", "kind"), [(4097, "normal"), (30_000, "normal"), (30_000, "heavy"), (30_000, "ties")])
def test_beyond_4096_rows_the_sketch_is_within_one_percent(tmp_path, n, kind):
    frame = _frame(n, kind, seed=n)
    losses, result = run(frame, tmp_path)
    check_losses(frame, losses)
    for name, q in QUANTILES.items():
        low, high = order_statistics(losses, q)
        estimate = result["quantiles"][name]
        assert low * (1 - SKETCH_ERROR) <= estimate <= high * (1 + SKETCH_ERROR), (name, low, estimate, high)
        assert result["min"] <= estimate <= result["max"]
    if kind == "normal":  # continuous losses: the sketch (not the exact values) answered
        assert any(result["quantiles"][name] != float(np.quantile(losses, q)) for name, q in QUANTILES.items())


def test_the_sketch_does_not_depend_on_chunking(tmp_path):
    frame = _frame(20_000, "heavy", seed=8)
    _, whole = run(frame, tmp_path)
    for chunk in (7, 4096, 5000):
        _, chunked = run(frame, tmp_path, chunk_rows=chunk)
        for name in QUANTILES:
            assert chunked["quantiles"][name] == pytest.approx(whole["quantiles"][name], rel=1e-12), (chunk, name)


def test_exact_quantiles_on_50000_rows_are_numpys(tmp_path):
    n = 50_000
    frame = _frame(n, "heavy", seed=50)
    data = tmp_path / "data.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), data)
    rows = tmp_path / "rows.parquet"
    report = eval_json([data, "-t", "y", "-p", "pred", "--exact-quantiles", "--chunk-rows", "4000", "--per-row", rows])
    losses = np.asarray(pq.read_table(rows).column("loss").to_pylist(), dtype=np.float64)
    check_losses(frame, losses)
    result = report["results"][0]
    for name, q in QUANTILES.items():
        assert result["quantiles"][name] == float(np.quantile(losses, q)), name
    without = eval_json([data, "-t", "y", "-p", "pred"])["results"][0]["quantiles"]
    assert without != result["quantiles"]  # the flag changed something: by default, 50,000 rows are sketched


@pytest.mark.parametrize(("n", "options"), [(300, {}), (3000, {"chunk_rows": 7}), (6000, {"exact_quantiles": True})])
def test_weighted_exact_quantiles_equal_repeated_rows(tmp_path, n, options):
    """An integer weight k counts the row k times (0: not at all), for up to 4,096 rows or --exact-quantiles."""
    frame = _frame(n, "normal", seed=n)
    if n == 6000:
        assert frame["w"].sum() > 4096  # even the repeated rows would be too many for the default
    losses, result = run(frame, tmp_path, weight="w", **options)
    repeated = np.repeat(losses, frame["w"].to_numpy().astype(int))
    for name, q in QUANTILES.items():
        assert result["quantiles"][name] == float(np.quantile(repeated, q)), name
    assert result["weight_sum"] == repeated.size


def test_weighted_sketch_is_within_one_percent_of_repeated_rows(tmp_path):
    frame = _frame(12_000, "heavy", seed=12)
    losses, result = run(frame, tmp_path, weight="w")
    repeated = np.repeat(losses, frame["w"].to_numpy().astype(int))
    for name, q in QUANTILES.items():
        low, high = order_statistics(repeated, q)
        assert low * (1 - SKETCH_ERROR) <= result["quantiles"][name] <= high * (1 + SKETCH_ERROR), name
