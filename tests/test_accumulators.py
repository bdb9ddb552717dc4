"""The accumulators behind every number (smoothl1_cli.stats, sketch, bootstrap): one overflow-safe
arithmetic for overall results, groups and the API; bounded cost; value equality."""

from __future__ import annotations

import json
import math
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from smoothl1_cli import bootstrap, evaluate, huber, smooth_l1
from smoothl1_cli.bootstrap import BootstrapStats
from smoothl1_cli.sketch import QuantileSketch
from smoothl1_cli.stats import Chunk, ExactSum, GroupStats, LossStats, Moments
from tests.conftest import run_command

REPORTED = (0.5, 0.9, 0.95, 0.99)


def _report(command: list[str], *args: Any) -> dict[str, Any]:
    """The installed command's JSON report, checked to have exited 0 with nothing on stderr but warnings."""
    done = run_command(command, "eval", *args, "-f", "json")
    assert done.returncode == 0, done.stderr.decode()
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_bootstrap_works_in_blocks_of_bounded_size_with_the_same_replicates(monkeypatch):
    """At any replicate count no weight matrix exceeds 128 x 2048 cells, and every replicate's sums are
    those of the whole matrix of weights, 2048 rows at a time, as before the blocking (bit for bit)."""
    rng = np.random.default_rng(4)
    rows, loss, weight = np.arange(5, 5005, dtype=np.int64), rng.exponential(size=5000), rng.random(5000)
    expected_sums, expected_weights = np.zeros((2, 1001)), np.zeros(1001)
    for start in range(0, rows.size, 2048):
        block = slice(start, start + 2048)
        draws = bootstrap.poisson_weights(9, rows[block], 1001) * weight[block]
        expected_weights += draws.sum(axis=1)
        expected_sums[0] += (draws * loss[block]).sum(axis=1)
        expected_sums[1] += (draws * 2 * loss[block]).sum(axis=1)
    cells = []
    real = bootstrap.poisson_weights

    def counted(*args: Any) -> Any:
        drawn = real(*args)
        cells.append(drawn.size)
        return drawn

    monkeypatch.setattr(bootstrap, "poisson_weights", counted)
    stats = BootstrapStats.empty(2, 1001, seed=9).update(rows, [loss, 2 * loss], weight)
    assert max(cells) <= 128 * 2048
    assert np.array_equal(stats.sums, expected_sums)
    assert np.array_equal(stats.weights, expected_weights)


def test_a_bootstrap_of_200000_replicates_runs_in_bounded_memory(smoothl1_command, tmp_path):
    """--bootstrap 200000 (a MemoryError before, all replicates x 2048 rows at once) stays far below the
    2 GB that 300 rows took in one block: a parent of nothing else reads the command's peak memory."""
    path = tmp_path / "data.csv"
    path.write_text("y,pred\n" + "".join(f"{i % 7},{i % 5}\n" for i in range(300)))
    peak_of_child = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    args = ["eval", path, "-t", "y", "--ci", "0.9", "--bootstrap", "200000", "-f", "json"]
    done = run_command([sys.executable, "-c", peak_of_child, *smoothl1_command], *args, timeout=120)
    returncode, peak_kib = map(int, done.stdout.split())
    assert returncode == 0, done.stderr.decode()
    assert peak_kib < 400_000


def test_exact_quantiles_keep_chunks_without_copying_them():
    """--exact-quantiles is linear in the chunks: each chunk's values join one list by reference (no
    copy of the chunks before, as a tuple per merge made), concatenated once when the quantiles are taken."""
    rng = np.random.default_rng(8)
    chunks = [rng.exponential(size=3) for _ in range(2000)]
    sketch = QuantileSketch(math.inf)
    for chunk in chunks:
        grown = sketch.update(chunk)
        assert sketch.parts is None or not sketch.used or grown.parts is sketch.parts  # appended in place
        sketch = grown
    assert sketch.parts is not None
    assert [values for values, _ in sketch.parts] == chunks  # the chunks' own arrays, in order
    assert all(kept is chunk for (kept, _), chunk in zip(sketch.parts, chunks, strict=True))
    assert sketch.quantiles(REPORTED) == [float(np.quantile(np.concatenate(chunks), q)) for q in REPORTED]


def test_a_sketch_whose_list_grew_elsewhere_keeps_its_own_values():
    """Sharing the list is safe: growing an older sketch again copies its prefix, it never sees the other's chunks."""
    base = QuantileSketch(math.inf).update(np.array([1.0])).update(np.array([2.0]))
    first, second = base.update(np.array([10.0])), base.update(np.array([20.0, 30.0]))
    assert first.quantiles([0.0, 1.0]) == [1.0, 10.0]
    assert second.quantiles([0.0, 0.5, 1.0]) == [float(np.quantile([1, 2, 20, 30], q)) for q in (0.0, 0.5, 1.0)]
    assert base.quantiles([1.0]) == [2.0]
    assert base.merge(first).quantiles([0.25, 1.0]) == [float(np.quantile([1, 2, 1, 2, 10], 0.25)), 10.0]


def _write(path: Path, rows: list[tuple[Any, ...]], header: str = "g,y,pred") -> Path:
    path.write_text(header + "\n" + "".join(",".join(map(repr, row)) + "\n" for row in rows))
    return path


def _exact_sqrt(value: Fraction) -> float:
    """sqrt of an exact value of any magnitude, rounded (float(value) alone may overflow or underflow)."""
    exponent = (value.numerator.bit_length() - value.denominator.bit_length()) // 2
    return math.ldexp(math.sqrt(float(value / Fraction(2) ** (2 * exponent))), exponent)


def _std(losses: list[float]) -> float:
    """The population standard deviation in exact rational arithmetic."""
    exact = [Fraction(x) for x in losses]
    mean = sum(exact) / len(exact)
    return _exact_sqrt(sum((x - mean) ** 2 for x in exact) / len(exact))


def _rmse(diffs: list[float]) -> float:
    return _exact_sqrt(sum(Fraction(d) ** 2 for d in diffs) / len(diffs))


@pytest.mark.parametrize("chunk", [1, 2, 65_536])
def test_a_group_of_huge_losses_has_the_overall_results_finite_statistics(smoothl1_command, tmp_path, chunk):
    """pred [1.7e308, 1.7e308, 1] against 0 (beta 0: the loss is |d|): the group's mean, std and rmse
    (null before) are the overall result's, and both are the exact values rounded."""
    data = _write(tmp_path / "huge.csv", [("a", 0, 1.7e308), ("a", 0, 1.7e308), ("a", 0, 1.0)])
    report = _report(smoothl1_command, data, "-t", "y", "--beta", "0", "--group-by", "g", "--chunk-rows", chunk)
    overall, (group,) = report["results"][0], report["groups"]
    losses = [1.7e308, 1.7e308, 1.0]
    expected = {
        "mean": float(sum(map(Fraction, losses)) / 3),
        "std": _std(losses),
        "rmse": _rmse(losses),
        "mae": float(sum(map(Fraction, losses)) / 3),
    }
    for name, value in expected.items():
        assert overall[name] == pytest.approx(value, rel=1e-12), name
        assert group[name] == pytest.approx(value, rel=1e-12), name


@pytest.mark.parametrize("chunk", [65_536, 200_001])
def test_group_sums_are_compensated_within_a_chunk(smoothl1_command, tmp_path, chunk):
    """200,000 rows of 1.49e-08 after one 1.5, --reduction sum: the group's sum (2.2e-11 off when a
    group was summed row after row) is math.fsum's to 1e-12, as the overall one is."""
    path = tmp_path / "small.csv"
    path.write_text("g,y,pred\na,0,1.5\n" + "a,0,1.49e-08\n" * 200_000)
    args = ("-t", "y", "--beta", "0", "--reduction", "sum", "--group-by", "g", "--chunk-rows", chunk)
    report = _report(smoothl1_command, path, *args)
    expected = math.fsum([1.5] + [1.49e-08] * 200_000)
    assert report["results"][0]["value"] == pytest.approx(expected, rel=1e-12)
    assert report["groups"][0]["value"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("preds", "chunk"),
    [
        ([0.125] * 65_536 + [1e160], 65_536),  # two chunks whose means are far apart
        ([0.125] * 65_536 + [1e160], 1000),
        ([1e300, 3e300], 1),
        ([1e-300, 3e-300], 1),  # the 1e-300 scale: squares underflow
        ([1e-300, 3e-300, 2e-300], 2),
        ([2e-300, 5e-301, 1e-300], 65_536),
    ],
)
def test_std_and_rmse_at_any_scale_and_chunking(smoothl1_command, tmp_path, preds, chunk):
    """std and rmse (null, or 0 at the 1e-300 scale, before) against exact rational references, for the
    overall result and its group (beta 0: the loss is |d|)."""
    data = _write(tmp_path / "data.csv", [("a", 0, p) for p in preds])
    args = ("-t", "y", "--beta", "0", "--group-by", "g", "--chunk-rows", chunk)  # beta 0: the loss is |d|
    report = _report(smoothl1_command, data, *args)
    for result in (report["results"][0], report["groups"][0]):
        assert result["std"] == pytest.approx(_std(preds), rel=1e-12)
        assert result["rmse"] == pytest.approx(_rmse(preds), rel=1e-12)
        assert result["std"] > 0


def test_a_weightless_row_whose_loss_overflows_changes_no_group_and_no_interval(smoothl1_command, tmp_path):
    """A weight-0 row with an infinite loss (d = 1.7e308 - -1.7e308) counts as a row and adds nothing:
    the group's value and the --ci bounds were null, and a warning said the value was inf."""
    rows = [("a", 0, 1, 1), ("a", 0, 2, 1), ("a", -1.7e308, 1.7e308, 0), ("b", 0, 3, 1)]
    data = _write(tmp_path / "w0.csv", rows, "g,y,pred,w")
    without = _write(tmp_path / "without.csv", rows[:2] + rows[3:], "g,y,pred,w")
    args = ("-t", "y", "-p", "pred", "-w", "w", "--group-by", "g", "--ci", "0.9")
    done = run_command(smoothl1_command, "eval", data, *args, "-f", "json")
    assert done.returncode == 0, done.stderr.decode()
    assert b"inf" not in done.stderr
    report, reference = json.loads(done.stdout), _report(smoothl1_command, without, *args)
    assert report["groups"][0]["count"] == 3
    assert [g["value"] for g in report["groups"]] == [1.0, 2.5]
    keys = ("value", "mean", "sum", "std", "min", "max", "mae", "rmse", "linear_fraction", "ci")
    mine_all, theirs_all = [report["results"][0], *report["groups"]], [reference["results"][0], *reference["groups"]]
    for mine, theirs in zip(mine_all, theirs_all, strict=True):
        assert {k: mine.get(k) for k in keys} == {k: theirs.get(k) for k in keys}


def _chunks(loss: np.ndarray[Any, Any], chunk_rows: int, weight: np.ndarray[Any, Any] | None = None) -> list[Chunk]:
    return [
        Chunk(loss[i : i + chunk_rows], loss[i : i + chunk_rows], None, loss[i : i + chunk_rows] > 1,
              np.arange(i, min(i + chunk_rows, loss.size)), None if weight is None else weight[i : i + chunk_rows],
              loss[i : i + chunk_rows], loss[i : i + chunk_rows], None)
        for i in range(0, loss.size, chunk_rows)
    ]  # fmt: skip


@pytest.mark.parametrize("scale", [1e-300, 1e-5, 1.0, 1e150, 1e300])
@pytest.mark.parametrize("chunk_rows", [1, 3, 50])
def test_groups_and_results_share_one_overflow_safe_arithmetic(scale, chunk_rows):
    """GroupStats keeps ExactSum and Moments (arrays of them), and every group's statistics equal
    exact references at any magnitude and chunking, as LossStats' do."""
    rng = np.random.default_rng(11)
    loss = rng.exponential(size=50) * scale
    codes = rng.integers(0, 3, 50)
    groups, overall = GroupStats.empty(3), LossStats()
    for chunk in _chunks(loss, chunk_rows):
        groups = groups.update(codes[chunk.rows], 3, chunk)
        overall = overall.update(chunk)
    assert isinstance(groups.sums["loss"], ExactSum)
    assert isinstance(groups.moments, Moments)
    for summary, rows in [(overall.summarize(), loss), *((groups.summaries()[g], loss[codes == g]) for g in range(3))]:
        exact = [Fraction(x) for x in rows]
        assert summary.sum == pytest.approx(float(sum(exact)), rel=1e-12)
        assert summary.mean == pytest.approx(float(sum(exact) / len(exact)), rel=1e-12)
        assert summary.std == pytest.approx(_std(list(rows)), rel=1e-12)
        assert summary.rmse == pytest.approx(_rmse(list(rows)), rel=1e-12)
        assert (summary.min, summary.max) == (rows.min(), rows.max())


def test_accumulators_compare_by_value():
    """== on LossStats, GroupStats, the sketch, the worst rows, the bootstrap (a ValueError before, on
    their arrays): equal when built from the same rows, NaN equal to NaN, unequal when a value differs."""
    loss = np.array([0.5, 2.0, np.nan, 3.0, 0.25])
    codes = np.array([0, 1, 0, 1, 1])

    def build(values: np.ndarray[Any, Any], chunk_rows: int) -> tuple[Any, ...]:
        stats, groups = LossStats(top_k=2), GroupStats.empty(2)
        for chunk in _chunks(values, chunk_rows):
            stats, groups = stats.update(chunk), groups.update(codes[chunk.rows], 2, chunk)
        boot = BootstrapStats.empty(1, 8, seed=1).update(np.arange(values.size), [np.nan_to_num(values)], None)
        return stats, groups, stats.sketch, stats.worst, boot

    first, again = build(loss, 5), build(loss.copy(), 5)
    changed = build(np.where(loss == 3.0, 4.0, loss), 5)
    for mine, same, other in zip(first, again, changed, strict=True):
        assert mine == same
        assert mine != other
        assert mine != object()
    assert build(loss, 1)[2] == first[2]  # the same values however chunked: the same sketch


def test_the_api_reduces_as_evaluate_does(tmp_path):
    """smooth_l1/huber use the command's reduction: the mean of two losses of 1.7e308 is 1.7e308 (inf
    before), a weight-0 row whose loss overflows is left out, and ordinary data give evaluate's value bit
    for bit (which is also the plain float64 mean it always was)."""
    huge = np.array([1.7e308, 1.7e308])
    assert smooth_l1(huge, np.zeros(2), beta=0) == 1.7e308
    assert huber(huge, np.zeros(2), delta=1e-300) == pytest.approx(1.7e308 * 1e-300, rel=1e-12)
    assert smooth_l1(huge, np.zeros(2), beta=0, reduction="sum") == math.inf  # 3.4e308 is beyond float64
    pred, target, weight = np.array([2.0, 1.7e308, 0.5]), np.array([0.0, -1.7e308, 0.0]), np.array([1.0, 0.0, 3.0])
    expected = float((Fraction(1.5) + 3 * Fraction(0.125)) / 4)
    assert smooth_l1(pred, target, weight=weight) == pytest.approx(expected, rel=1e-15)
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"y": rng.normal(size=3000), "pred": rng.normal(size=3000), "w": rng.random(3000)})
    for options in ({}, {"weight": "w"}, {"reduction": "sum"}, {"reduction": "sum", "weight": "w"}):
        weights = frame["w"].to_numpy() if "weight" in options else None
        value = smooth_l1(
            frame["pred"].to_numpy(), frame["y"].to_numpy(), 1.0, options.get("reduction", "mean"), weights
        )
        assert type(value) is float
        assert value == evaluate(frame, target="y", pred="pred", **options).to_dict()["results"][0]["value"]
    terms = np.abs(frame["pred"].to_numpy() - frame["y"].to_numpy())
    assert smooth_l1(frame["pred"].to_numpy(), frame["y"].to_numpy(), beta=0) == float(terms.sum() / terms.size)
