"""`--group-by`: every group's statistics against a pandas groupby of conftest's per-row reference losses."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import eval_json, reference_loss

ROWS = 600
PREDS = ("model_a", "model_b", "model_c")
STATS = ("count", "value", "mean", "sum", "std", "min", "max", "mae", "rmse", "linear_fraction")
REL = 1e-9


def _frame(seed: int = 17) -> pd.DataFrame:
    """Seven groups of very different sizes (one of a single row), three models, weights with zeros."""
    rng = np.random.default_rng(seed)
    names = np.array(["alpha", "beta", "gamma", "delta", "epsilon", "zeta"])
    groups = names[rng.choice(6, ROWS, p=[0.4, 0.25, 0.15, 0.1, 0.07, 0.03])].astype(object)
    groups[123] = "omega"  # a group of one row
    target = rng.normal(0.0, 3.0, ROWS)
    weight = rng.uniform(0.0, 3.0, ROWS)
    weight[::17] = 0.0
    return pd.DataFrame(
        {
            "g": groups,
            "y": target,
            "model_a": target + rng.normal(0.0, 1.0, ROWS),
            "model_b": target + rng.standard_t(2, ROWS),
            "model_c": target + 0.8 + rng.normal(0.0, 0.3, ROWS),
            "w": weight,
        }
    )


FRAME = _frame()


def pandas_reference(
    frame: pd.DataFrame, preds: tuple[str, ...], beta: float = 1.0, weight: str | None = None, reduction: str = "mean"
) -> dict[tuple[Any, str], dict[str, float]]:
    """(group, pred) -> statistics, from a pandas groupby of the textbook per-row losses.

    Weights are frequency weights: Σw·x / Σw, a population (ddof 0) weighted std, and min/max over
    rows of weight above 0; `count` is every row of the group. A missing group value is its own group.
    """
    out: dict[tuple[Any, str], dict[str, float]] = {}
    w = frame[weight] if weight else pd.Series(1.0, index=frame.index)
    for pred in preds:
        diff = frame[pred] - frame["y"]
        losses = [reference_loss(p, t, beta) for p, t in zip(frame[pred], frame["y"], strict=True)]
        loss = pd.Series(losses, index=frame.index)
        work = pd.DataFrame(
            {
                "g": frame["g"],
                "w": w,
                "wl": w * loss,
                "wad": w * diff.abs(),
                "wsq": w * diff * diff,
                "wlin": w * (diff.abs() >= beta),
                "seen": loss.where(w > 0),
            }
        )
        grouped = work.groupby("g", dropna=False, sort=True)
        sums = grouped[["w", "wl", "wad", "wsq", "wlin"]].sum()
        mean = sums["wl"] / sums["w"]
        if weight is None:
            std = loss.groupby(frame["g"], dropna=False).std(ddof=0)
        else:
            row_mean = grouped["wl"].transform("sum") / grouped["w"].transform("sum")
            work["wdev"] = work["w"] * (loss - row_mean) ** 2
            std = np.sqrt(work.groupby("g", dropna=False)["wdev"].sum() / sums["w"])
        counts = grouped.size()
        lowest, highest = grouped["seen"].min(), grouped["seen"].max()
        for key in sums.index:
            group = None if isinstance(key, float) and math.isnan(key) else key
            out[(group, pred)] = {
                "count": int(counts[key]),
                "value": float(sums["wl"][key] if reduction == "sum" else mean[key]),
                "mean": float(mean[key]),
                "sum": float(sums["wl"][key]),
                "std": float(std[key]),
                "min": float(lowest[key]),
                "max": float(highest[key]),
                "mae": float(sums["wad"][key] / sums["w"][key]),
                "rmse": math.sqrt(sums["wsq"][key] / sums["w"][key]),
                "linear_fraction": float(sums["wlin"][key] / sums["w"][key]),
            }
    return out


def check_groups(report: dict[str, Any], expected: dict[tuple[Any, str], dict[str, float]]) -> None:
    got = {(g["group"], g["pred"]): g for g in report["groups"]}
    assert list(got) == list(expected)  # the same groups, in the same order
    for key, stats in expected.items():
        for name in STATS:
            assert got[key][name] == pytest.approx(stats[name], rel=REL, abs=1e-15), (key, name)


def group_order(report: dict[str, Any]) -> list[Any]:
    return list(dict.fromkeys(g["group"] for g in report["groups"]))


def parquet(tmp_path: Path, frame: pd.DataFrame, name: str = "data") -> Path:
    path = tmp_path / f"{name}.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path


def _by_group_then_pred(expected: dict[tuple[Any, str], dict[str, float]], order: list[Any]) -> dict[Any, Any]:
    """The reference in the report's order: groups sorted (missing last), then preds as given."""
    preds = list(dict.fromkeys(pred for _, pred in expected))
    return {(group, pred): expected[(group, pred)] for group in order for pred in preds}


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_several_preds_match_a_pandas_groupby(tmp_path, reduction):
    path = parquet(tmp_path, FRAME)
    report = eval_json([path, "-t", "y", "-p", ",".join(PREDS), "--group-by", "g", "--reduction", reduction])
    expected = pandas_reference(FRAME, PREDS, reduction=reduction)
    order = sorted({key for key, _ in expected})
    assert group_order(report) == order == ["alpha", "beta", "delta", "epsilon", "gamma", "omega", "zeta"]
    check_groups(report, _by_group_then_pred(expected, order))
    assert report["group_by"] == "g"
    singleton = next(g for g in report["groups"] if g["group"] == "omega" and g["pred"] == "model_a")
    assert singleton["count"] == 1
    assert singleton["std"] == 0.0
    assert (
        singleton["min"]
        == singleton["max"]
        == pytest.approx(reference_loss(FRAME["model_a"][123], FRAME["y"][123]), rel=1e-15)
    )


def test_groups_add_up_to_the_overall_result(tmp_path):
    path = parquet(tmp_path, FRAME)
    report = eval_json([path, "-t", "y", "-p", ",".join(PREDS), "--group-by", "g"])
    for result in report["results"]:
        parts = [g for g in report["groups"] if g["pred"] == result["pred"]]
        assert sum(g["count"] for g in parts) == result["count"] == ROWS
        assert math.fsum(g["sum"] for g in parts) == pytest.approx(result["sum"], rel=1e-12)
        assert max(g["max"] for g in parts) == result["max"]
        assert min(g["min"] for g in parts) == result["min"]


def test_a_beta_other_than_one(tmp_path):
    path = parquet(tmp_path, FRAME)
    report = eval_json([path, "-t", "y", "-p", "model_a,model_b", "--group-by", "g", "--beta", "0.25"])
    expected = pandas_reference(FRAME, ("model_a", "model_b"), beta=0.25)
    check_groups(report, _by_group_then_pred(expected, sorted({key for key, _ in expected})))


def test_weights_match_a_weighted_pandas_groupby(tmp_path):
    path = parquet(tmp_path, FRAME)
    report = eval_json([path, "-t", "y", "-p", ",".join(PREDS), "-w", "w", "--group-by", "g"])
    expected = pandas_reference(FRAME, PREDS, weight="w")
    check_groups(report, _by_group_then_pred(expected, sorted({key for key, _ in expected})))
    weights = FRAME.groupby("g")["w"].sum()
    for group in report["groups"]:
        assert group["weight_sum"] == pytest.approx(weights[group["group"]], rel=1e-12)


def test_integer_weights_equal_repeated_rows(tmp_path):
    """A row of weight k is the row k times, within every group (0: the row is left out of all but count)."""
    rng = np.random.default_rng(4)
    frame = FRAME.assign(k=rng.integers(0, 4, ROWS).astype(np.float64))
    repeated = frame.loc[frame.index.repeat(frame["k"].astype(int))].reset_index(drop=True)
    args = ["-t", "y", "-p", "model_a,model_b", "--group-by", "g"]
    weighted = eval_json([parquet(tmp_path, frame, "w"), *args, "-w", "k"])
    plain = eval_json([parquet(tmp_path, repeated, "r"), *args])
    plain_groups = {(g["group"], g["pred"]): g for g in plain["groups"]}
    for group in weighted["groups"]:
        twin = plain_groups.get((group["group"], group["pred"]))
        if twin is None:  # every row of the group has weight 0
            assert group["weight_sum"] == 0.0
            continue
        assert group["weight_sum"] == twin["count"]
        for name in ("value", "mean", "sum", "std", "min", "max", "mae", "rmse", "linear_fraction"):
            assert group[name] == pytest.approx(twin[name], rel=REL, abs=1e-15), (group["group"], name)


def _with_missing(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    """NaN, inf and missing values scattered over target, preds and weight; every group keeps rows."""
    frame = frame.copy()
    rng = np.random.default_rng(9)
    bad = np.zeros(len(frame), dtype=bool)
    for column, value in (("y", np.nan), ("model_a", np.inf), ("model_b", np.nan), ("model_c", -np.inf), ("w", np.nan)):
        rows = rng.choice(np.flatnonzero(frame["g"] != "omega"), 12, replace=False)
        frame.loc[rows, column] = value
        bad[rows] = True
    return frame, bad


def test_nan_policy_omit_matches_a_groupby_of_the_rows_left(tmp_path):
    frame, bad = _with_missing(FRAME)
    path = parquet(tmp_path, frame)
    report = eval_json([path, "-t", "y", "-p", ",".join(PREDS), "-w", "w", "--group-by", "g", "--nan-policy", "omit"])
    kept = frame[~bad].reset_index(drop=True)
    assert report["results"][0]["omitted"] == int(bad.sum()) > 40
    expected = pandas_reference(kept, PREDS, weight="w")
    check_groups(report, _by_group_then_pred(expected, sorted({key for key, _ in expected})))


def test_nan_policy_omit_drops_a_group_with_no_rows_left(tmp_path):
    frame = FRAME.copy()
    frame.loc[frame["g"] == "zeta", "model_a"] = np.nan
    path = parquet(tmp_path, frame)
    report = eval_json([path, "-t", "y", "-p", "model_a", "--group-by", "g", "--nan-policy", "omit"])
    kept = frame[frame["model_a"].notna()].reset_index(drop=True)
    expected = pandas_reference(kept, ("model_a",))
    assert "zeta" not in group_order(report)
    check_groups(report, _by_group_then_pred(expected, sorted({key for key, _ in expected})))


def test_integer_group_keys_stay_integers_and_nulls_sort_last(tmp_path):
    rng = np.random.default_rng(2)
    n = 300
    keys = rng.choice([3, 10, 2, -1, 100], n).tolist()
    for row in (5, 50, 150, 299):
        keys[row] = None
    target = rng.normal(size=n)
    pred = target + rng.normal(0.0, 1.5, n)
    path = tmp_path / "ints.parquet"
    pq.write_table(pa.table({"g": pa.array(keys, type=pa.int64()), "y": target, "pred": pred}), path)
    report = eval_json([path, "-t", "y", "--group-by", "g"])
    order = group_order(report)
    assert order == [-1, 2, 3, 10, 100, None]  # numeric order (not "10" < "2"), the missing value last
    assert all(type(key) is int for key in order[:-1])
    frame = pd.DataFrame({"g": pd.array(keys, dtype="Int64"), "y": target, "pred": pred})
    expected = pandas_reference(frame.astype({"g": "float64"}), ("pred",))
    expected = {(None if key is None else int(key), pred_): stats for (key, pred_), stats in expected.items()}
    check_groups(report, _by_group_then_pred(expected, order))
    assert next(g for g in report["groups"] if g["group"] is None)["count"] == 4


def test_null_string_group_values_form_one_group_sorted_last(tmp_path):
    frame = FRAME.copy()
    frame.loc[[0, 7, 300], "g"] = None
    report = eval_json([parquet(tmp_path, frame), "-t", "y", "-p", "model_a", "--group-by", "g"])
    assert group_order(report)[-1] is None
    expected = pandas_reference(frame, ("model_a",))
    order = sorted(k for k, _ in expected if k is not None) + [None]
    check_groups(report, _by_group_then_pred(expected, order))
    assert report["groups"][-1]["count"] == 3


def test_chunk_size_does_not_change_any_group(tmp_path):
    frame, bad = _with_missing(FRAME)
    path = parquet(tmp_path, frame)
    args = [path, "-t", "y", "-p", ",".join(PREDS), "-w", "w", "--group-by", "g", "--nan-policy", "omit"]
    reports = {rows: eval_json([*args, "--chunk-rows", rows]) for rows in (1, 7, 1000)}
    expected = pandas_reference(frame[~bad].reset_index(drop=True), PREDS, weight="w")
    check_groups(reports[1000], _by_group_then_pred(expected, sorted({key for key, _ in expected})))
    for rows in (1, 7):
        assert len(reports[rows]["groups"]) == len(reports[1000]["groups"])
        for got, want in zip(reports[rows]["groups"], reports[1000]["groups"], strict=True):
            assert (got["group"], got["pred"], got["count"]) == (want["group"], want["pred"], want["count"])
            for name in STATS[1:]:
                assert got[name] == pytest.approx(want[name], rel=1e-12, abs=1e-15), (rows, got["group"], name)


def test_csv_and_parquet_give_the_same_groups(tmp_path, write_table: Callable[..., Path]):
    """Text group values from a CSV: the same groups and numbers as the Parquet copy."""
    columns = {name: FRAME[name].tolist() for name in ("g", "y", "model_a")}
    from_csv = eval_json([write_table("csv", **columns), "-t", "y", "--group-by", "g"])
    from_parquet = eval_json([write_table("parquet", **columns), "-t", "y", "--group-by", "g"])
    assert from_csv["groups"] == from_parquet["groups"]


def test_nan_and_missing_float_group_values_are_one_missing_group_sorted_last(tmp_path):
    keys = [1.5, math.nan, None, 2.5, math.nan, 1.5]
    target = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    pred = [1.5, 2.0, 5.0, 4.0, 6.0, 6.25]
    path = tmp_path / "floats.parquet"
    pq.write_table(pa.table({"g": pa.array(keys, type=pa.float64()), "y": target, "pred": pred}), path)
    report = eval_json([path, "-t", "y", "--group-by", "g"])
    assert group_order(report) == [1.5, 2.5, None]  # pandas' groupby(dropna=False) has one NaN group, last
    expected = pandas_reference(pd.DataFrame({"g": keys, "y": target, "pred": pred}), ("pred",))
    check_groups(report, _by_group_then_pred(expected, [1.5, 2.5, None]))


def test_a_csv_integer_group_column_gives_the_parquet_copys_groups(write_table):
    columns = {"g": [2, 10, 2, 1, 10, 2], "y": [1.0, 2.0, 3.0, 0.0, 1.0, 2.0], "pred": [1.5, 2.0, 5.0, 0.0, 3.0, 2.5]}
    from_parquet = eval_json([write_table("parquet", **columns), "-t", "y", "--group-by", "g"])
    assert group_order(from_parquet) == [1, 2, 10]
    from_csv = eval_json([write_table("csv", **columns), "-t", "y", "--group-by", "g"])
    assert from_csv["groups"] == from_parquet["groups"]
