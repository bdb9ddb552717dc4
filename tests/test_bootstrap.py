"""--ci/--bootstrap/--seed: reproducible, chunking-independent intervals that cover the truth as often
as they claim, and a paired test that finds a real difference and stays quiet without one.

The statistical checks run seeded data sets through the Python API, so their outcome is fixed; the
bounds are set so that a correct bootstrap passes with room to spare, while a broken one (an
interval too narrow or too wide, a test that rejects too often) fails.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from smoothl1_cli import evaluate
from smoothl1_cli.bootstrap import BootstrapStats
from tests.conftest import invoke, reference_mean

ROWS = 400


def _true_mean_loss_of_standard_normal_diff() -> float:
    """E[smooth_l1(Z)] for Z ~ N(0, 1), beta 1, in closed form.

    E[Z²; |Z|<1] = (2Φ(1) − 1) − 2φ(1) and E[|Z|; |Z|≥1] = 2φ(1), P(|Z|≥1) = 2(1 − Φ(1)), so
    E = ½[(2Φ(1) − 1) − 2φ(1)] + 2φ(1) − ½·2(1 − Φ(1)) ≈ 0.424660.
    """
    phi = math.exp(-0.5) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1 + math.erf(1 / math.sqrt(2)))
    return 0.5 * ((2 * cdf - 1) - 2 * phi) + 2 * phi - (1 - cdf)


TRUTH = _true_mean_loss_of_standard_normal_diff()


def test_the_true_mean_loss_agrees_with_numerical_integration():
    """The closed form against a trapezoid rule over the normal density (independent of each other)."""
    z = np.linspace(-12.0, 12.0, 2_400_001)
    density = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    loss = np.where(np.abs(z) < 1, 0.5 * z * z, np.abs(z) - 0.5)
    assert float(np.trapezoid(loss * density, z)) == pytest.approx(TRUTH, rel=1e-9)
    assert pytest.approx(0.4246602166562, rel=1e-12) == TRUTH


def _columns(seed: int = 1, rows: int = ROWS) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    target = rng.normal(0.0, 2.0, rows)
    model_a = target + rng.normal(0.0, 1.0, rows)
    return {
        "y": target.tolist(),
        "model_a": model_a.tolist(),
        "model_b": (model_a + rng.normal(0.0, 0.8, rows)).tolist(),  # a's errors plus clear extra noise
        "model_c": (target + rng.normal(0.0, 1.0, rows)).tolist(),  # exchangeable with a
        "w": rng.uniform(0.0, 2.0, rows).tolist(),
    }


DATA = _columns()


@pytest.fixture
def data_csv(write_table: Callable[..., Path]) -> Path:
    return write_table("csv", **DATA)


def ci_run(path: Path, *options: Any) -> tuple[str, dict[str, Any]]:
    result = invoke(["eval", path, "-t", "y", "-f", "json", *map(str, options)])
    assert result.exit_code == 0, result.stderr
    return result.stdout, json.loads(result.stdout)


# ---------------------------------------------------------------- the command


def test_same_seed_gives_byte_identical_json_and_another_seed_another_interval(data_csv):
    options = ["-p", "model_a,model_b", "--ci", "0.95", "--bootstrap", "300"]
    first, report = ci_run(data_csv, *options, "--seed", "7")
    again, _ = ci_run(data_csv, *options, "--seed", "7")
    assert first == again
    _, other = ci_run(data_csv, *options, "--seed", "8")
    for mine, theirs in zip(report["results"], other["results"], strict=True):
        assert mine["value"] == theirs["value"]  # the value itself is not resampled
        assert (mine["ci"]["low"], mine["ci"]["high"]) != (theirs["ci"]["low"], theirs["ci"]["high"])
        assert theirs["ci"]["seed"] == 8
        assert mine["ci"]["seed"] == 7


def test_the_report_describes_the_interval(data_csv):
    _, report = ci_run(data_csv, "-p", "model_a,model_b", "--ci", "0.9", "--bootstrap", "200", "--seed", "3")
    first, second = report["results"]
    assert {k: first["ci"][k] for k in ("level", "replicates", "seed")} == {"level": 0.9, "replicates": 200, "seed": 3}
    assert "paired" not in first  # the first pred is the reference of the paired tests
    assert second["paired"]["against"] == "model_a"
    expected = reference_mean(DATA["model_b"], DATA["y"]) - reference_mean(DATA["model_a"], DATA["y"])
    assert second["paired"]["difference"] == pytest.approx(expected, rel=1e-12)
    assert second["paired"]["low"] <= second["paired"]["difference"] <= second["paired"]["high"]


@pytest.mark.parametrize("options", [[], ["-w", "w"], ["--reduction", "sum"], ["--nan-policy", "omit"]])
def test_each_interval_contains_its_value(data_csv, options):
    _, report = ci_run(data_csv, "-p", "model_a,model_b,model_c", "--ci", "0.95", "--bootstrap", "400", *options)
    for result in report["results"]:
        assert result["ci"]["low"] < result["value"] < result["ci"]["high"], result["pred"]


def test_wider_levels_give_nested_intervals(data_csv):
    bounds = []
    for level in ("0.5", "0.9", "0.99"):
        _, report = ci_run(data_csv, "-p", "model_a", "--ci", level, "--bootstrap", "500", "--seed", "2")
        bounds.append((report["results"][0]["ci"]["low"], report["results"][0]["ci"]["high"]))
    assert bounds[2][0] < bounds[1][0] < bounds[0][0] < bounds[0][1] < bounds[1][1] < bounds[2][1]


@pytest.mark.parametrize("options", [[], ["-w", "w"]])
def test_the_interval_does_not_depend_on_chunking(data_csv, options):
    args = ["-p", "model_a,model_b", "--ci", "0.95", "--bootstrap", "250", "--seed", "11", *options]
    _, small = ci_run(data_csv, *args, "--chunk-rows", "37")
    _, medium = ci_run(data_csv, *args, "--chunk-rows", "1000")
    _, large = ci_run(data_csv, *args, "--chunk-rows", "65536")
    for chunked in (small, medium):
        for a, b in zip(chunked["results"], large["results"], strict=True):
            for key in ("low", "high"):
                assert a["ci"][key] == pytest.approx(b["ci"][key], rel=1e-12, abs=1e-15)
            if "paired" in b:
                for key in ("low", "high", "difference", "p_value"):
                    assert a["paired"][key] == pytest.approx(b["paired"][key], rel=1e-12, abs=1e-15)


def test_the_interval_width_matches_the_standard_error():
    """For a mean of n losses, a 95% bootstrap interval is about 2 * 1.96 * sd / sqrt(n) wide."""
    rng = np.random.default_rng(21)
    n = 3000
    target = rng.normal(size=n)
    frame = pd.DataFrame({"y": target, "pred": target + rng.normal(size=n)})
    result = evaluate(frame, target="y", ci=0.95, bootstrap=1000, seed=5).to_dict()["results"][0]
    expected = 2 * 1.959964 * result["std"] / math.sqrt(n)
    assert result["ci"]["high"] - result["ci"]["low"] == pytest.approx(expected, rel=0.12)


@pytest.mark.parametrize(("option", "value"), [("--ci", "1.5"), ("--ci", "0"), ("--bootstrap", "1")])
def test_bad_ci_options_are_usage_errors(data_csv, option, value):
    result = invoke(["eval", data_csv, "-t", "y", "-p", "model_a", "--ci", "0.9", option, value])
    assert result.exit_code == 2
    assert "Error" in result.stderr
    assert option in result.stderr


# ---------------------------------------------------------------- statistics, through the Python API


def _dataset(seed: int, rows: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(10_000 + seed)
    target = rng.normal(0.0, 3.0, rows)
    return pd.DataFrame({"y": target, "pred": target + rng.normal(0.0, 1.0, rows)})  # diff ~ N(0, 1)


def test_the_90_percent_interval_covers_the_true_mean_loss_about_90_percent_of_the_time():
    """100 seeded data sets of 300 rows, 400 replicates each: coverage must lie in [80, 97].

    At a true coverage of 90%, Binomial(100, 0.9) falls below 80 with probability 0.0008 and above 97
    with 0.002; the percentile bootstrap of a right-skewed mean at n = 300 tends to undercover by a
    point or two (at 88%, below 80 has probability 0.007), hence the lower bound's extra room. An
    interval from the wrong spread (e.g. sd instead of sd/sqrt(n), or n counted twice) lands far
    outside: about 100% or about 60%.
    """
    covered = 0
    for seed in range(100):
        result = evaluate(_dataset(seed), target="y", ci=0.9, bootstrap=400, seed=seed).to_dict()["results"][0]
        covered += result["ci"]["low"] <= TRUTH <= result["ci"]["high"]
    assert 80 <= covered <= 97


def _pair(seed: int, extra_noise: float, rows: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(20_000 + seed)
    target = rng.normal(0.0, 3.0, rows)
    model_a = target + rng.normal(0.0, 1.0, rows)
    # With no extra noise, b gets errors of its own from a's distribution: the two are exchangeable.
    model_b = model_a + rng.normal(0.0, extra_noise, rows) if extra_noise else target + rng.normal(0.0, 1.0, rows)
    return pd.DataFrame({"y": target, "model_a": model_a, "model_b": model_b})


def _paired(frame: pd.DataFrame, seed: int, replicates: int = 400) -> dict[str, Any]:
    report = evaluate(frame, target="y", pred=["model_a", "model_b"], ci=0.9, bootstrap=replicates, seed=seed)
    paired: dict[str, Any] = report.to_dict()["results"][1]["paired"]
    return paired


def test_the_paired_test_finds_a_real_difference():
    frame = _pair(0, extra_noise=0.8)
    paired = _paired(frame, seed=1, replicates=1000)
    assert paired["difference"] > 0
    assert paired["p_value"] < 0.01
    assert paired["low"] > 0  # the interval of the difference excludes 0


def test_the_paired_test_stays_quiet_on_exchangeable_models():
    paired = _paired(_pair(0, extra_noise=0.0), seed=1, replicates=1000)
    assert paired["p_value"] > 0.05
    assert paired["low"] < 0 < paired["high"]


def test_the_paired_test_rejects_exchangeable_models_rarely():
    """At level 0.05 over 40 seeded data sets: at most 6 rejections (15%).

    A calibrated test rejects 2 of 40 on average; Binomial(40, 0.05) exceeds 6 with probability 0.003.
    """
    p_values = [_paired(_pair(seed, extra_noise=0.0), seed=seed)["p_value"] for seed in range(40)]
    assert sum(p < 0.05 for p in p_values) <= 6
    assert 0.2 < float(np.median(p_values)) < 0.8  # roughly uniform under no difference, not stuck at 1


def test_the_facade_keeps_evaluate_a_function_after_a_run():
    """SPEC: `from smoothl1_cli import smooth_l1, huber, evaluate`; the second import below, as in a
    second module of the user's program, must still give the function. A fresh interpreter makes it
    independent of what other tests imported."""
    program = (
        "import pandas as pd\n"
        "from smoothl1_cli import evaluate\n"
        "evaluate(pd.DataFrame({'y': [1.0], 'pred': [2.0]}), target='y')\n"
        "from smoothl1_cli import evaluate as again\n"
        "assert callable(again), again\n"
        "print(again(pd.DataFrame({'y': [1.0], 'pred': [1.5]}), target='y').to_dict()['results'][0]['value'])\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"0.125\n"


def test_bootstrap_statistics_merge_like_every_accumulator() -> None:
    """Two halves reduced apart and merged give the replicates of the whole (weights are a function
    of the row, so where a row was reduced does not matter)."""
    rng = np.random.default_rng(3)
    loss, rows = rng.exponential(size=1000), np.arange(1000, dtype=np.int64)
    whole = BootstrapStats.empty(1, 200, seed=5).update(rows, [loss], None)
    first = BootstrapStats.empty(1, 200, seed=5).update(rows[:400], [loss[:400]], None)
    second = BootstrapStats.empty(1, 200, seed=5).update(rows[400:], [loss[400:]], None)
    merged = first.merge(second)
    assert np.allclose(merged.replicate_values(0, "mean"), whole.replicate_values(0, "mean"), rtol=1e-12)
    assert np.array_equal(merged.weights, whole.weights)
