"""`smoothl1 eval` options, each checked against conftest's independent float64 reference."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from smoothl1_cli import __version__
from smoothl1_cli.cli import cli
from tests.conftest import eval_json, invoke, reference_loss, reference_mean

ROWS = 60


def _columns() -> dict[str, list[Any]]:
    """Awkward float64 values, |d| on both sides of every beta used here, a second model, weights, ids."""
    rng = np.random.default_rng(7)
    target = rng.normal(0.0, 2.0, ROWS)
    return {
        "id": [f"row-{i:03d}" for i in range(ROWS)],
        "y": target.tolist(),
        "pred": (target + rng.normal(0.0, 1.2, ROWS)).tolist(),
        "alt": (target + rng.standard_t(3, ROWS)).tolist(),
        "w": rng.uniform(0.0, 3.0, ROWS).tolist(),
    }


DATA = _columns()
PRED, TARGET, ALT, WEIGHT = DATA["pred"], DATA["y"], DATA["alt"], DATA["w"]


@pytest.fixture
def data_csv(write_table) -> Path:
    return write_table("csv", **DATA)


def per_row_losses(
    pred: list[float], target: list[float], parameter: float = 1.0, loss: str = "smooth_l1"
) -> list[float]:
    return [reference_loss(p, t, parameter, loss) for p, t in zip(pred, target, strict=True)]


def parse_csv(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def ok(args: list[Any], input: bytes | None = None) -> str:
    """stdout of a run that must exit 0 with nothing on stderr."""
    result = invoke(["eval", *args], input=input)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


# The loss and its parameter.


@pytest.mark.parametrize("beta", [0.0, 0.25, 1.0, 2.5, 1e-300])
def test_beta_matches_reference(data_csv, beta) -> None:
    report = eval_json([data_csv, "-t", "y", "-p", "pred", "--beta", repr(beta)])
    assert report["beta"] == beta
    assert report["loss"] == "smooth_l1"
    assert f"|beta:{beta!r}".removesuffix(".0") in report["signature"]
    assert report["results"][0]["value"] == pytest.approx(reference_mean(PRED, TARGET, beta), rel=1e-12)


def test_beta_zero_is_exactly_l1(data_csv) -> None:
    report = eval_json([data_csv, "-t", "y", "-p", "pred", "--beta", "0"])
    (result,) = report["results"]
    l1 = [abs(p - t) for p, t in zip(PRED, TARGET, strict=True)]
    assert result["value"] == pytest.approx(math.fsum(l1) / ROWS, rel=1e-12)
    assert result["mae"] == pytest.approx(result["value"], rel=1e-12)
    assert result["linear_fraction"] == sum(d >= 0 for d in l1) / ROWS  # every row is linear at beta 0


def test_default_beta_is_one(data_csv) -> None:
    report = eval_json([data_csv, "-t", "y", "-p", "pred"])
    assert report["beta"] == 1.0
    assert report["results"][0]["value"] == pytest.approx(reference_mean(PRED, TARGET, 1.0), rel=1e-12)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 3.0])
def test_sigma_is_beta_one_over_sigma_squared(data_csv, sigma) -> None:
    beta = 1.0 / sigma**2
    report = eval_json([data_csv, "-t", "y", "-p", "pred", "--sigma", repr(sigma)])
    assert report["beta"] == pytest.approx(beta, rel=1e-15)
    assert report["results"][0]["value"] == pytest.approx(reference_mean(PRED, TARGET, beta), rel=1e-12)
    same = eval_json([data_csv, "-t", "y", "-p", "pred", "--beta", repr(report["beta"])])
    assert same["results"] == report["results"]


@pytest.mark.parametrize("delta", [0.3, 1.0, 2.0])
def test_huber_delta_matches_reference(data_csv, delta) -> None:
    report = eval_json([data_csv, "-t", "y", "-p", "pred", "--loss", "huber", "--delta", repr(delta)])
    assert report["loss"] == "huber"
    assert report["delta"] == delta
    assert "beta" not in report
    assert report["signature"].startswith(f"huber|delta:{delta!r}".removesuffix(".0") + "|")
    value = report["results"][0]["value"]
    assert value == pytest.approx(reference_mean(PRED, TARGET, delta, "huber"), rel=1e-12)
    smooth = eval_json([data_csv, "-t", "y", "-p", "pred", "--beta", repr(delta)])["results"][0]["value"]
    assert value == pytest.approx(delta * smooth, rel=1e-12)  # huber(delta) = delta * smooth_l1(beta=delta)


def test_huber_default_delta_is_one(data_csv) -> None:
    report = eval_json([data_csv, "-t", "y", "-p", "pred", "--loss", "huber"])
    assert report["delta"] == 1.0
    assert report["results"][0]["value"] == pytest.approx(reference_mean(PRED, TARGET, 1.0, "huber"), rel=1e-12)


# Reductions and per-row output.


def test_reduction_sum(data_csv) -> None:
    report = eval_json([data_csv, "-t", "y", "-p", "pred", "--reduction", "sum"])
    (result,) = report["results"]
    total = math.fsum(per_row_losses(PRED, TARGET))
    assert report["reduction"] == "sum"
    assert "|reduction:sum|" in report["signature"]
    assert result["value"] == pytest.approx(total, rel=1e-12)
    assert result["sum"] == result["value"]
    assert result["mean"] == pytest.approx(total / ROWS, rel=1e-12)


def test_reduction_none_streams_per_row_csv(data_csv) -> None:
    out = ok([data_csv, "-t", "y", "-p", "pred", "--reduction", "none"])
    lines = out.splitlines()
    assert lines[0] == "row,loss"
    assert len(lines) == ROWS + 1
    header, rows = parse_csv(out)
    assert [int(r["row"]) for r in rows] == list(range(ROWS))
    losses = [float(r["loss"]) for r in rows]
    assert losses == pytest.approx(per_row_losses(PRED, TARGET), rel=1e-15)
    report = eval_json([data_csv, "-t", "y", "-p", "pred", "--top", str(ROWS)])
    by_row = {w["row"]: w["loss"] for w in report["worst_rows"]}
    assert len(by_row) == ROWS
    assert {i: losses[i] for i in by_row} == by_row  # full precision: the very floats of the report
    assert math.fsum(losses) / ROWS == pytest.approx(report["results"][0]["value"], rel=1e-12)


def test_per_row_file_matches_reduction_none_and_report_still_printed(data_csv, tmp_path) -> None:
    per_row = tmp_path / "losses.csv"
    out = ok([data_csv, "-t", "y", "-p", "pred", "--per-row", per_row, "-f", "json"])
    assert json.loads(out)["results"][0]["count"] == ROWS
    streamed = ok([data_csv, "-t", "y", "-p", "pred", "--reduction", "none"])
    assert per_row.read_text() == streamed


def test_per_row_dash_writes_csv_to_stdout(data_csv) -> None:
    out = ok([data_csv, "-t", "y", "-p", "pred", "--per-row", "-"])
    assert out == ok([data_csv, "-t", "y", "-p", "pred", "--reduction", "none"])


def test_per_row_parquet_by_extension(data_csv, tmp_path) -> None:
    import pyarrow.parquet as pq

    per_row = tmp_path / "losses.parquet"
    ok([data_csv, "-t", "y", "-p", "pred", "--per-row", per_row, "-f", "json"])
    table = pq.read_table(per_row)
    assert table.column_names == ["row", "loss"]
    assert table.column("loss").to_pylist() == pytest.approx(per_row_losses(PRED, TARGET), rel=1e-15)


def test_id_is_carried_into_per_row_output_and_worst_rows(data_csv) -> None:
    header, rows = parse_csv(ok([data_csv, "-t", "y", "-p", "pred", "--id", "id", "--reduction", "none"]))
    assert header == ["row", "id", "loss"]
    assert [r["id"] for r in rows] == DATA["id"]
    report = eval_json([data_csv, "-t", "y", "-p", "pred", "--id", "id"])
    assert report["worst_rows"]
    for worst in report["worst_rows"]:
        assert worst["id"] == DATA["id"][worst["row"]]
        assert list(worst) == ["row", "id", "pred", "target", "prediction", "actual", "loss"]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_numeric_id_column_is_not_taken_for_a_prediction(write_table, fmt) -> None:
    path = write_table(fmt, key=[10, 11, 12], y=[1.0, 2.0, 3.0], model=[1.5, 2.5, 3.5])
    report = eval_json([path, "-t", "y", "--id", "key"])
    assert [r["pred"] for r in report["results"]] == ["model"]
    assert sorted(str(w["id"]) for w in report["worst_rows"]) == ["10", "11", "12"]
    header, rows = parse_csv(ok([path, "-t", "y", "--id", "key", "--reduction", "none"]))
    assert header == ["row", "key", "loss"]
    assert [r["key"] for r in rows] == ["10", "11", "12"]


# Weights.


def test_weight_is_sum_wl_over_sum_w(data_csv) -> None:
    report = eval_json([data_csv, "-t", "y", "-p", "pred", "-w", "w"])
    (result,) = report["results"]
    assert report["weight"] == "w"
    assert "|weights:w|" in report["signature"]
    assert result["value"] == pytest.approx(reference_mean(PRED, TARGET, weight=WEIGHT), rel=1e-12)
    unweighted = reference_mean(PRED, TARGET)
    assert result["value"] != pytest.approx(unweighted, rel=1e-6)  # the weights did something


def test_unit_weights_equal_no_weights(write_table) -> None:
    path = write_table("csv", y=TARGET, pred=PRED, one=[1.0] * ROWS)
    weighted = eval_json([path, "-t", "y", "-p", "pred", "-w", "one"])["results"][0]["value"]
    plain = eval_json([path, "-t", "y", "-p", "pred"])["results"][0]["value"]
    assert weighted == pytest.approx(plain, rel=1e-14)


def test_integer_weight_equals_repeated_row(write_table) -> None:
    counts = [1 + i % 3 for i in range(ROWS)]
    weighted = write_table("csv", name="weighted", y=TARGET, pred=PRED, n=[float(c) for c in counts])
    repeated = write_table(
        "csv",
        name="repeated",
        y=[t for t, c in zip(TARGET, counts, strict=True) for _ in range(c)],
        pred=[p for p, c in zip(PRED, counts, strict=True) for _ in range(c)],
    )
    a = eval_json([weighted, "-t", "y", "-p", "pred", "-w", "n"])["results"][0]["value"]
    b = eval_json([repeated, "-t", "y", "-p", "pred"])["results"][0]["value"]
    assert a == pytest.approx(b, rel=1e-12)


# The NaN policy.


def _holey(write_table) -> tuple[Path, set[int]]:
    """DATA with missing, NaN and infinite values in pred and target at some rows."""
    pred, target = list(PRED), list(TARGET)
    pred[3] = None
    pred[10] = math.nan
    target[17] = math.inf
    target[40] = None
    pred[41] = -math.inf
    return write_table("parquet", id=DATA["id"], y=target, pred=pred), {3, 10, 17, 40, 41}


def test_nan_policy_omit_skips_rows_and_counts_them(write_table) -> None:
    path, bad = _holey(write_table)
    report = eval_json([path, "-t", "y", "-p", "pred", "--nan-policy", "omit"])
    (result,) = report["results"]
    kept = [i for i in range(ROWS) if i not in bad]
    assert report["nan_policy"] == "omit"
    assert "|nan:omit|" in report["signature"]
    assert result["omitted"] == len(bad)
    assert result["count"] == len(kept)
    assert report["rows"] == ROWS
    expected = reference_mean([PRED[i] for i in kept], [TARGET[i] for i in kept])
    assert result["value"] == pytest.approx(expected, rel=1e-12)


def test_nan_policy_omit_keeps_the_per_row_line_with_an_empty_loss(write_table) -> None:
    path, bad = _holey(write_table)
    header, rows = parse_csv(
        ok([path, "-t", "y", "-p", "pred", "--id", "id", "--nan-policy", "omit", "--reduction", "none"])
    )
    assert header == ["row", "id", "loss"]
    assert [int(r["row"]) for r in rows] == list(range(ROWS))
    assert [r["id"] for r in rows] == DATA["id"]
    assert {int(r["row"]) for r in rows if r["loss"] == ""} == bad
    for r in rows:
        i = int(r["row"])
        if i not in bad:
            assert float(r["loss"]) == pytest.approx(reference_loss(PRED[i], TARGET[i]), rel=1e-15)


def test_nan_policy_propagate_gives_nan_as_null_in_json(write_table) -> None:
    path, _ = _holey(write_table)
    result = invoke(["eval", path, "-t", "y", "-p", "pred", "--nan-policy", "propagate", "-f", "json"])
    assert result.exit_code == 0, result.stderr
    assert "NaN" not in result.stdout  # strict JSON
    assert "Infinity" not in result.stdout
    report = json.loads(result.stdout)
    (row,) = report["results"]
    assert row["value"] is None
    assert row["mean"] is None
    assert row["count"] == ROWS
    assert row["omitted"] == 0


def test_nan_policy_propagate_table_and_quiet_show_nan(write_table) -> None:
    path, _ = _holey(write_table)
    args = ["eval", path, "-t", "y", "-p", "pred", "--nan-policy", "propagate"]
    table = CliRunner(env={"COLUMNS": "200"}).invoke(cli, [*map(str, args), "-f", "table"])
    assert table.exit_code == 0, table.stderr
    assert "nan" in table.stdout.split()
    assert ok([*args[1:], "-q"]) == "nan\n"
    _, rows = parse_csv(ok([*args[1:], "-f", "csv"]))
    assert rows[0]["value"] == "nan"


def test_nan_policy_propagate_fails_a_gate(write_table) -> None:
    path, _ = _holey(write_table)
    result = invoke(
        ["eval", path, "-t", "y", "-p", "pred", "--nan-policy", "propagate", "--fail-above", "1e300", "-f", "json"]
    )
    assert result.exit_code == 1
    assert json.loads(result.stdout)["gate"]["passed"] is False


def test_nan_policy_error_is_the_default(write_table) -> None:
    path, _ = _holey(write_table)
    result = invoke(["eval", path, "-t", "y", "-p", "pred"])
    assert result.exit_code == 2
    assert "5 rows" in result.stderr
    assert "row 3" in result.stderr


def test_nan_policy_omit_with_nothing_missing_omits_nothing(data_csv) -> None:
    report = eval_json([data_csv, "-t", "y", "-p", "pred", "--nan-policy", "omit"])
    assert report["results"][0]["omitted"] == 0
    assert report["results"][0]["value"] == pytest.approx(reference_mean(PRED, TARGET), rel=1e-12)


# Which columns are predictions.


@pytest.mark.parametrize(
    "name", ["pred", "prediction", "y_pred", "yhat", "y_hat", "PRED", "Y_Hat", "price_pred", "pred_price", "Price_PRED"]
)
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_default_prediction_column_by_name(write_table, name, fmt) -> None:
    path = write_table(fmt, other=TARGET, price=TARGET, **{name: PRED}, extra=ALT)
    report = eval_json([path, "-t", "price"])
    assert [(r["pred"], r["target"]) for r in report["results"]] == [(name, "price")]
    assert report["results"][0]["value"] == pytest.approx(reference_mean(PRED, TARGET), rel=1e-12)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_default_predictions_are_the_other_numeric_columns(write_table, fmt) -> None:
    path = write_table(fmt, key=list(range(ROWS)), m1=PRED, label=DATA["id"], y=TARGET, m2=ALT, w=WEIGHT)
    report = eval_json([path, "-t", "y", "--id", "key", "-w", "w"])
    assert [(r["pred"], r["target"]) for r in report["results"]] == [("m1", "y"), ("m2", "y")]
    assert report["results"][0]["value"] == pytest.approx(reference_mean(PRED, TARGET, weight=WEIGHT), rel=1e-12)
    assert report["results"][1]["value"] == pytest.approx(reference_mean(ALT, TARGET, weight=WEIGHT), rel=1e-12)


def test_two_conventional_names_fall_back_to_every_numeric_column(write_table) -> None:
    path = write_table("csv", y=TARGET, pred=PRED, yhat=ALT)
    report = eval_json([path, "-t", "y"])
    assert [r["pred"] for r in report["results"]] == ["pred", "yhat"]


# Several predictions and multi-output targets.


@pytest.mark.parametrize("spelling", [["-p", "pred", "-p", "alt"], ["-p", "pred,alt"], ["--pred", "pred, alt"]])
def test_several_predictions_side_by_side(data_csv, spelling) -> None:
    report = eval_json([data_csv, "-t", "y", *spelling])
    assert [(r["pred"], r["target"]) for r in report["results"]] == [("pred", "y"), ("alt", "y")]
    assert report["results"][0]["value"] == pytest.approx(reference_mean(PRED, TARGET), rel=1e-12)
    assert report["results"][1]["value"] == pytest.approx(reference_mean(ALT, TARGET), rel=1e-12)
    assert "overall" not in report


def test_several_predictions_per_row_columns(data_csv) -> None:
    header, rows = parse_csv(ok([data_csv, "-t", "y", "-p", "pred", "-p", "alt", "--reduction", "none"]))
    assert header == ["row", "loss_pred", "loss_alt"]
    assert [float(r["loss_alt"]) for r in rows] == pytest.approx(per_row_losses(ALT, TARGET), rel=1e-15)


def _boxes(
    write_table, fmt: str = "csv", names: tuple[str, ...] = ("px1", "py1", "px2", "py2")
) -> tuple[Path, list, list]:
    rng = np.random.default_rng(11)
    truth = rng.uniform(0, 50, (ROWS, 4))
    guess = truth + rng.normal(0, 1.5, (ROWS, 4))
    columns = {name: truth[:, k].tolist() for k, name in enumerate(("x1", "y1", "x2", "y2"))}
    columns |= {name: guess[:, k].tolist() for k, name in enumerate(names)}
    return write_table(fmt, **columns), truth.T.tolist(), guess.T.tolist()


@pytest.mark.parametrize(
    "spelling",
    [
        ["-t", "x1,y1,x2,y2", "-p", "px1,py1,px2,py2"],
        ["-t", "x1", "-t", "y1", "-t", "x2", "-t", "y2", "-p", "px1", "-p", "py1", "-p", "px2", "-p", "py2"],
    ],
)
def test_multi_output_elementwise_overall_is_mean_over_all_elements(write_table, spelling) -> None:
    path, truth, guess = _boxes(write_table)
    report = eval_json([path, *spelling])
    pairs = [(r["pred"], r["target"]) for r in report["results"]]
    assert pairs == [("px1", "x1"), ("py1", "y1"), ("px2", "x2"), ("py2", "y2")]
    for k, result in enumerate(report["results"]):
        assert result["value"] == pytest.approx(reference_mean(guess[k], truth[k]), rel=1e-12)
    overall = report["overall"]
    everything = [loss for k in range(4) for loss in per_row_losses(guess[k], truth[k])]
    assert overall["value"] == pytest.approx(math.fsum(everything) / (4 * ROWS), rel=1e-12)
    assert report["multioutput"] == "elementwise"
    assert "|multioutput:elementwise|" in report["signature"]


def test_multi_output_row_sum_is_sum_over_coordinates_mean_over_rows(write_table) -> None:
    path, truth, guess = _boxes(write_table)
    args = [path, "-t", "x1,y1,x2,y2", "-p", "px1,py1,px2,py2"]
    row_sum = eval_json([*args, "--multioutput", "row-sum"])
    elementwise = eval_json(args)
    everything = [loss for k in range(4) for loss in per_row_losses(guess[k], truth[k])]
    assert row_sum["overall"]["value"] == pytest.approx(math.fsum(everything) / ROWS, rel=1e-12)
    assert row_sum["overall"]["value"] == pytest.approx(4 * elementwise["overall"]["value"], rel=1e-12)
    assert row_sum["results"] == elementwise["results"]  # only `overall` depends on it
    assert "|multioutput:row-sum|" in row_sum["signature"]


def test_multi_output_predictions_found_by_target_pred_names(write_table) -> None:
    path, truth, guess = _boxes(write_table, "parquet", ("x1_pred", "pred_y1", "X2_PRED", "y2_pred"))
    report = eval_json([path, "-t", "x1,y1,x2,y2"])
    pairs = [(r["pred"], r["target"]) for r in report["results"]]
    assert pairs == [("x1_pred", "x1"), ("pred_y1", "y1"), ("X2_PRED", "x2"), ("y2_pred", "y2")]


def test_multi_output_quiet_lists_every_result_and_overall(write_table) -> None:
    path, _, _ = _boxes(write_table)
    args = [path, "-t", "x1,y1,x2,y2", "-p", "px1,py1,px2,py2"]
    report = eval_json(args)
    lines = ok([*args, "-q"]).splitlines()
    expected = [(r["pred"], r["value"]) for r in [*report["results"], report["overall"]]]
    assert [tuple(line.split("\t")) for line in lines] == [(p, repr(v)) for p, v in expected]


# Worst rows.


TIES = {"y": [0.0] * 7, "pred": [1.0, 3.0, 0.5, 3.0, 1.0, -3.0, 0.2]}  # losses .5 2.5 .125 2.5 .5 2.5 .02


@pytest.mark.parametrize(
    ("top", "rows"), [(1, [1]), (3, [1, 3, 5]), (4, [1, 3, 5, 0]), (5, [1, 3, 5, 0, 4]), (99, [1, 3, 5, 0, 4, 2, 6])]
)
def test_top_k_worst_rows_ties_by_earlier_row(write_table, top, rows) -> None:
    path = write_table("csv", **TIES)
    report = eval_json([path, "-t", "y", "--top", str(top)])
    assert [w["row"] for w in report["worst_rows"]] == rows
    for worst in report["worst_rows"]:
        row = worst["row"]
        assert worst["prediction"] == TIES["pred"][row]
        assert worst["actual"] == TIES["y"][row]
        assert worst["loss"] == reference_loss(TIES["pred"][row], TIES["y"][row])
        assert (worst["pred"], worst["target"]) == ("pred", "y")


def test_top_default_is_five_and_zero_gives_none(data_csv) -> None:
    assert len(eval_json([data_csv, "-t", "y", "-p", "pred"])["worst_rows"]) == 5
    assert eval_json([data_csv, "-t", "y", "-p", "pred", "--top", "0"])["worst_rows"] == []


def test_worst_rows_are_the_largest_losses(data_csv) -> None:
    report = eval_json([data_csv, "-t", "y", "-p", "pred", "--top", "7"])
    losses = per_row_losses(PRED, TARGET)
    expected = sorted(range(ROWS), key=lambda i: (-losses[i], i))[:7]
    assert [w["row"] for w in report["worst_rows"]] == expected


# Output: -q, -o, -f.


def test_quiet_prints_the_value_at_full_precision(data_csv) -> None:
    value = eval_json([data_csv, "-t", "y", "-p", "pred"])["results"][0]["value"]
    out = ok([data_csv, "-t", "y", "-p", "pred", "-q"])
    assert out == f"{value!r}\n"
    assert float(out) == value


def test_quiet_with_several_results_prints_pred_tab_value(data_csv) -> None:
    report = eval_json([data_csv, "-t", "y", "-p", "pred,alt"])
    out = ok([data_csv, "-t", "y", "-p", "pred,alt", "-q"])
    assert out == "".join(f"{r['pred']}\t{r['value']!r}\n" for r in report["results"])


def test_output_file_is_byte_identical_to_stdout_json(data_csv, tmp_path) -> None:
    target = tmp_path / "report.json"
    out = ok([data_csv, "-t", "y", "-p", "pred,alt", "--id", "id", "-o", target, "-f", "json"])
    assert target.read_bytes() == out.encode()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left behind


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv", "json"])
def test_output_file_is_json_whatever_the_format(data_csv, tmp_path, fmt) -> None:
    target = tmp_path / "report.json"
    ok([data_csv, "-t", "y", "-p", "pred", "-o", target, "-f", fmt])
    assert target.read_text() == ok([data_csv, "-t", "y", "-p", "pred", "-f", "json"])


def test_output_file_with_quiet(data_csv, tmp_path) -> None:
    target = tmp_path / "report.json"
    out = ok([data_csv, "-t", "y", "-p", "pred", "-o", target, "-q"])
    assert float(out) == json.loads(target.read_text())["results"][0]["value"]


def test_output_file_replaces_an_old_one(data_csv, tmp_path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old and much longer than the new report would ever be " * 1000)
    out = ok([data_csv, "-t", "y", "-p", "pred", "-o", target, "-f", "json"])
    assert target.read_text() == out


def test_fail_above_exceeded_exits_1_and_still_reports(data_csv, tmp_path) -> None:
    value = reference_mean(PRED, TARGET)
    target = tmp_path / "report.json"
    result = invoke(
        ["eval", data_csv, "-t", "y", "-p", "pred", "--fail-above", repr(value / 2), "-f", "json", "-o", target]
    )
    assert result.exit_code == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["gate"]["passed"] is False
    assert len(report["gate"]["failures"]) == 1
    assert "pred" in report["gate"]["failures"][0]
    assert json.loads(target.read_text())["gate"] == report["gate"]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("factor", [2.0, 1.0])  # below the limit, and at it: "exceeds" is strict
def test_fail_above_not_exceeded_exits_0(data_csv, factor) -> None:
    value = eval_json([data_csv, "-t", "y", "-p", "pred"])["results"][0]["value"]
    report = eval_json([data_csv, "-t", "y", "-p", "pred", "--fail-above", repr(value * factor)])
    assert report["gate"] == {"passed": True, "failures": []}


def test_fail_above_checks_every_result(data_csv) -> None:
    a, b = reference_mean(PRED, TARGET), reference_mean(ALT, TARGET)
    limit = (a + b) / 2
    result = invoke(["eval", data_csv, "-t", "y", "-p", "pred,alt", "--fail-above", repr(limit), "-f", "json"])
    assert result.exit_code == 1
    failures = json.loads(result.stdout)["gate"]["failures"]
    worse = "pred" if a > b else "alt"
    assert len(failures) == 1
    assert failures[0].startswith(worse)


def test_fail_above_quiet_still_exits_1(data_csv) -> None:
    result = invoke(["eval", data_csv, "-t", "y", "-p", "pred", "--fail-above", "0", "-q"])
    assert result.exit_code == 1
    assert float(result.stdout) == pytest.approx(reference_mean(PRED, TARGET), rel=1e-12)


def test_format_json_is_the_report(data_csv) -> None:
    out = ok([data_csv, "-t", "y", "-p", "pred", "-f", "json"])
    assert json.loads(out) == eval_json([data_csv, "-t", "y", "-p", "pred"])
    assert ok([data_csv, "-t", "y", "-p", "pred"]) == out  # not a terminal: auto is JSON


def test_format_markdown(data_csv) -> None:
    out = ok([data_csv, "-t", "y", "-p", "pred,alt", "-f", "markdown"])
    lines = out.splitlines()
    table = [line for line in lines if line.startswith("| ")]
    assert table[0].startswith("| pred | target |")
    assert any(line.startswith("| pred | y |") for line in table)
    assert any(line.startswith("| alt | y |") for line in table)
    assert any(set(line) <= set("|-: ") for line in lines if line.startswith("|")), "a header separator row"


def test_format_csv_has_full_precision(data_csv) -> None:
    report = eval_json([data_csv, "-t", "y", "-p", "pred,alt"])
    header, rows = parse_csv(ok([data_csv, "-t", "y", "-p", "pred,alt", "-f", "csv"]))
    assert {"pred", "target", "count", "value"} <= set(header)
    assert [r["pred"] for r in rows] == ["pred", "alt"]
    for row, result in zip(rows, report["results"], strict=True):
        assert float(row["value"]) == result["value"]
        assert int(row["count"]) == result["count"]


def test_format_table(data_csv) -> None:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        cli, ["eval", str(data_csv), "-t", "y", "-p", "pred", "-f", "table"]
    )
    assert result.exit_code == 0, result.stderr
    assert "pred" in result.stdout
    assert not result.stdout.lstrip().startswith("{")


def test_format_table_off_a_terminal_is_not_truncated(write_table, monkeypatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    path = write_table("csv", y=[1.0, 2.0], prediction_of_model=[1.5, 2.5])
    result = invoke(["eval", path, "-t", "y", "-f", "table"])
    assert result.exit_code == 0, result.stderr
    assert "prediction_of_model" in result.stdout
    assert "…" not in result.stdout


# Determinism and the report's shape.


def test_two_runs_are_byte_identical(data_csv) -> None:
    args = [data_csv, "-t", "y", "-p", "pred,alt", "--id", "id", "-w", "w", "-f", "json"]
    assert ok(args) == ok(args)


def test_chunk_rows_do_not_change_the_result(write_table) -> None:
    rng = np.random.default_rng(3)
    n = 1500
    target = rng.normal(0, 10, n)
    pred = target + rng.standard_cauchy(n)
    tied = [50, 100, 900, 1400]  # equal losses far above the rest, in different chunks: ties by earlier row
    target[tied], pred[tied] = 0.0, 1e6
    path = write_table("csv", y=target.tolist(), pred=pred.tolist())
    reports = [eval_json([path, "-t", "y", "--chunk-rows", str(c), "--top", "6"]) for c in (1, 7, 1000, 65536)]
    expected = reference_mean(pred.tolist(), target.tolist())
    first = reports[0]["results"][0]
    for report in reports:
        result = report["results"][0]
        assert result["value"] == pytest.approx(expected, rel=1e-12)
        for key in ("mean", "sum", "std", "mae", "rmse", "linear_fraction"):
            assert result[key] == pytest.approx(first[key], rel=1e-12), key
        for key in ("count", "omitted", "min", "max"):
            assert result[key] == first[key], key
        assert report["worst_rows"] == reports[0]["worst_rows"]
        assert [w["row"] for w in report["worst_rows"]][:4] == tied


def test_report_has_every_key_spec_lists(data_csv) -> None:
    report = eval_json([data_csv, "-t", "y", "-p", "pred", "--id", "id"])
    for key in (
        "schema_version",
        "version",
        "signature",
        "loss",
        "beta",
        "reduction",
        "nan_policy",
        "inputs",
        "rows",
        "results",
        "worst_rows",
        "gate",
    ):
        assert key in report, key
    assert report["schema_version"] == 1
    assert report["version"] == __version__
    assert report["signature"] == (
        f"smooth_l1|beta:1|reduction:mean|weights:none|nan:error|multioutput:elementwise|v:{__version__}"
    )
    assert report["inputs"] == [{"path": str(data_csv), "format": "csv", "rows": ROWS}]
    assert report["rows"] == ROWS
    assert report["gate"] == {"passed": True, "failures": []}
    (result,) = report["results"]
    for key in (
        "pred",
        "target",
        "count",
        "omitted",
        "value",
        "mean",
        "sum",
        "std",
        "min",
        "max",
        "quantiles",
        "linear_fraction",
        "mae",
        "rmse",
    ):
        assert key in result, key
    assert set(result["quantiles"]) == {"p50", "p90", "p95", "p99"}
    for worst in report["worst_rows"]:
        assert set(worst) == {"row", "id", "pred", "target", "prediction", "actual", "loss"}


def test_report_statistics_match_reference(data_csv) -> None:
    (result,) = eval_json([data_csv, "-t", "y", "-p", "pred"])["results"]
    losses = per_row_losses(PRED, TARGET)
    diffs = [p - t for p, t in zip(PRED, TARGET, strict=True)]
    assert result["count"] == ROWS
    assert result["omitted"] == 0
    assert result["value"] == result["mean"]
    assert result["sum"] == pytest.approx(math.fsum(losses), rel=1e-12)
    assert result["std"] == pytest.approx(statistics.pstdev(losses), rel=1e-9)  # population, ddof 0
    assert result["min"] == pytest.approx(min(losses), rel=1e-15)
    assert result["max"] == pytest.approx(max(losses), rel=1e-15)
    assert result["linear_fraction"] == sum(abs(d) >= 1.0 for d in diffs) / ROWS
    assert result["mae"] == pytest.approx(math.fsum(abs(d) for d in diffs) / ROWS, rel=1e-12)
    assert result["rmse"] == pytest.approx(math.sqrt(math.fsum(d * d for d in diffs) / ROWS), rel=1e-12)
    q = result["quantiles"]
    assert q["p50"] <= q["p90"] <= q["p95"] <= q["p99"] <= result["max"]
    for name, level in (("p50", 50), ("p90", 90)):  # the sketch: relative error <= 1% (SPEC)
        assert q[name] == pytest.approx(float(np.percentile(losses, level)), rel=0.011), name


def test_worked_example_of_the_spec(write_table) -> None:
    path = write_table("csv", pred=[0.5, 1.5, 2.5], y=[1.0, 2.0, 3.0])
    report = eval_json([path, "-t", "y", "--beta", "1"])
    assert report["results"][0]["value"] == 0.125
    assert report["results"][0]["min"] == report["results"][0]["max"] == 0.125
