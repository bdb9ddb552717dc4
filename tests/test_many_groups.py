"""Many `--group-by` keys (issue 13.11): the work of a chunk is the chunk's and the groups' summaries are
computed as arrays, with the same values as a pandas groupby at any --chunk-rows."""

from __future__ import annotations

import json
import sys
import tracemalloc
from typing import Any

import numpy as np
import pandas as pd
import pytest

from smoothl1_cli import stats
from smoothl1_cli.stats import Chunk, GroupStats
from tests.conftest import run_command
from tests.test_groups import STATS, parquet

GROUPS = 20_000


def _frame() -> pd.DataFrame:
    """20,000 groups over 50,000 rows in shuffled order: every group has a row of weight above 0, and
    some of its others weigh 0. Values are multiples of 1/16 and weights of 1/4, so every sum is exact
    in float64, in any order."""
    rng = np.random.default_rng(13)
    rows = 50_000
    groups = np.concatenate([np.arange(GROUPS), rng.integers(0, GROUPS, rows - GROUPS)])
    weight = np.concatenate([rng.integers(1, 12, GROUPS), rng.integers(0, 12, rows - GROUPS)]) / 4
    order = rng.permutation(rows)
    target = rng.integers(-64, 64, rows) / 16
    pred = target + rng.integers(-48, 48, rows) / 16
    return pd.DataFrame({"g": groups[order], "y": target, "pred": pred, "w": weight[order]})


def _pandas_reference(frame: pd.DataFrame, weight: str | None) -> pd.DataFrame:
    """Each group's statistics from a pandas groupby of the textbook per-row losses (beta 1)."""
    diff = frame["pred"] - frame["y"]
    loss = np.where(diff.abs() < 1, 0.5 * diff * diff, diff.abs() - 0.5)
    w = frame[weight] if weight else pd.Series(1.0, index=frame.index)
    work = pd.DataFrame({"g": frame["g"], "w": w, "wl": w * loss, "wad": w * diff.abs(), "wsq": w * diff * diff,
                         "wlin": w * (diff.abs() >= 1), "seen": pd.Series(loss).where(w > 0)})  # fmt: skip
    grouped = work.groupby("g", sort=True)
    sums = grouped[["w", "wl", "wad", "wsq", "wlin"]].sum()
    mean = sums["wl"] / sums["w"]
    work["wdev"] = work["w"] * (loss - work["g"].map(mean)) ** 2
    return pd.DataFrame(
        {
            "count": grouped.size(),
            "value": mean,
            "mean": mean,
            "sum": sums["wl"],
            "std": np.sqrt(work.groupby("g")["wdev"].sum() / sums["w"]),
            "min": grouped["seen"].min(),
            "max": grouped["seen"].max(),
            "mae": sums["wad"] / sums["w"],
            "rmse": np.sqrt(sums["wsq"] / sums["w"]),
            "linear_fraction": sums["wlin"] / sums["w"],
        }
    )


@pytest.mark.parametrize("weight", [None, "w"])
def test_many_groups_match_pandas_at_any_chunk_rows(tmp_path, smoothl1_command, weight):
    """Every group against a pandas groupby (rel 1e-12), at --chunk-rows 100 and 7919: with exact sums,
    every statistic but std is the same bit for bit at both (std merges by Chan's formula, whose
    rounding follows the chunks)."""
    frame = _frame()
    path = parquet(tmp_path, frame)
    options = ["-t", "y", "-p", "pred", "--group-by", "g", "-f", "json"] + (["-w", weight] if weight else [])
    reports = []
    for chunk_rows in (100, 7_919):
        out = tmp_path / f"report-{chunk_rows}.json"
        done = run_command(smoothl1_command, "eval", path, *options, "--chunk-rows", chunk_rows, "-o", out)
        assert done.returncode == 0, done.stderr.decode()
        reports.append(json.loads(out.read_bytes()))
    expected = _pandas_reference(frame, weight)
    for report in reports:
        got = pd.DataFrame(report["groups"])
        assert got["group"].tolist() == expected.index.tolist()  # every group once, sorted
        for name in STATS:
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-12, atol=1e-300, err_msg=name)
    small, large = ([{k: v for k, v in g.items() if k != "std"} for g in r["groups"]] for r in reports)
    assert small == large


def _chunk(rows: int) -> Chunk:
    loss = np.linspace(0.0, 2.0, rows)
    return Chunk(loss, loss, None, loss >= 1.0, np.arange(rows))


def test_an_update_allocates_for_its_chunk_not_for_every_group():
    """A 100-row chunk into 200,000 groups allocates nothing group-sized (it reduced and merged every group
    on every chunk: quadratic in the groups with a small --chunk-rows)."""
    groups = 200_000
    stats = GroupStats.empty(groups).update(np.arange(groups), groups, _chunk(groups))
    codes = np.random.default_rng(3).integers(0, groups, 100)
    tracemalloc.start()
    try:
        stats = stats.update(codes, groups, _chunk(100))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < groups  # bytes: an array of one float per group is 8x that
    assert [s.count for s in stats.summaries()[:3]] == [1 + int(np.count_nonzero(codes == g)) for g in range(3)]


def _stats_calls(groups: int) -> int:
    """How many calls into stats.py it takes to summarize `groups` groups."""
    codes = np.arange(groups)
    grouped = GroupStats.empty(0).update(codes, groups, _chunk(groups))
    calls = 0

    def count(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        calls += event == "call" and frame.f_code.co_filename == stats.__file__

    sys.setprofile(count)
    try:
        grouped.summaries()
    finally:
        sys.setprofile(None)
    return calls


def test_summaries_take_the_same_calls_for_ten_groups_as_for_ten_thousand():
    """Every group's statistics come from arrays: no per-group ExactSum, Moments or dataclass fields."""
    assert _stats_calls(10_000) == _stats_calls(10)


def test_an_updated_group_stats_is_spent():
    """An update writes into the arrays of the GroupStats it was called on; using that one again is an
    error, not a silent read of newer statistics. One that had to grow its arrays is left as it was."""
    first = GroupStats.empty(0).update(np.array([0, 1, 0]), 2, _chunk(3))
    grown = first.update(np.array([2, 2]), 3, _chunk(2))
    again = grown.update(np.array([0]), 3, _chunk(1))
    assert [s.count for s in first.summaries()] == [2, 1]
    assert [s.count for s in again.summaries()] == [3, 1, 2]
    with pytest.raises(RuntimeError, match="updated in place"):
        grown.summaries()


def test_group_stats_of_two_parts_merge_into_those_of_the_whole():
    """merge is what pieces of one evaluation will be combined with: it must equal one update over all rows."""
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 40, size=600)
    codes[codes == 39] = 38
    codes[-1] = 39  # the last group appears in the second part only
    loss = rng.exponential(size=600).round(3)  # exact in binary to a few bits: sums compare exactly
    chunk = Chunk(loss, loss, None, loss >= 1.0, np.arange(600))
    whole = GroupStats.empty(0).update(codes, 40, chunk)

    def part(rows: slice) -> GroupStats:  # knows only the groups it has seen: merge sizes them alike
        piece = Chunk(loss[rows], loss[rows], None, loss[rows] >= 1.0, np.arange(600)[rows])
        return GroupStats.empty(0).update(codes[rows], int(codes[rows].max()) + 1, piece)

    merged = part(slice(0, 250)).merge(part(slice(250, 600)))
    for got, expected in zip(merged.summaries(), whole.summaries(), strict=True):
        assert got.count == expected.count
        assert got.sum == pytest.approx(expected.sum, rel=1e-15)
        assert got.mean == pytest.approx(expected.mean, rel=1e-15)
        assert got.std == pytest.approx(expected.std, rel=1e-12)
        assert (got.min, got.max, got.linear_fraction) == (expected.min, expected.max, expected.linear_fraction)
