"""Bugs found in review, each pinned by the smallest input that showed it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smoothl1_cli import evaluate
from tests.conftest import eval_json, invoke, reference_mean, run_command


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_labels_with_csv_predictions_detect_the_prediction_column(tmp_path) -> None:
    """Set operations on a CSV's lazily inferred numeric columns once raised TypeError (exit 3)."""
    preds = write(tmp_path / "p.csv", "id,model\na,1.5\nb,2.0\n")
    labels = write(tmp_path / "l.csv", "id,y\nb,2.5\na,1.0\n")
    report = eval_json([preds, "-t", "y", "--labels", labels, "--on", "id"])
    assert [r["pred"] for r in report["results"]] == ["model"]
    assert report["results"][0]["value"] == reference_mean([1.5, 2.0], [1.0, 2.5])


def test_the_on_key_is_never_taken_for_a_prediction(tmp_path) -> None:
    preds = tmp_path / "p.parquet"
    pq.write_table(pa.table({"id": [1, 2], "model": [1.5, 2.0]}), preds)
    labels = write(tmp_path / "l.csv", "id,y\n2,2.5\n1,1.0\n")
    report = eval_json([preds, "-t", "y", "--labels", labels, "--on", "id"])
    assert [r["pred"] for r in report["results"]] == ["model"]


def test_a_header_only_labels_file_is_an_input_error(tmp_path) -> None:
    preds = write(tmp_path / "p.csv", "id,pred\na,1.5\n")
    labels = write(tmp_path / "l.csv", "id,y\n")
    result = invoke(["eval", preds, "-t", "y", "--labels", labels, "--on", "id"])
    assert result.exit_code == 2
    assert "no rows" in result.stderr


@pytest.mark.parametrize("name", ["a[/b]", "[red]x"])
def test_markup_in_names_is_shown_as_text_in_the_table(tmp_path, name) -> None:
    path = write(tmp_path / "m.csv", f"y,{name}\n1,2\n")
    result = invoke(["eval", path, "-t", "y", "-f", "table"])
    assert result.exit_code == 0, result.stderr
    assert name in result.stdout


def test_a_negative_seed_is_a_usage_error(tmp_path) -> None:
    path = write(tmp_path / "s.csv", "y,pred\n1,2\n3,5\n")
    result = invoke(["eval", path, "-t", "y", "--ci", "0.9", "--seed", "-1"])
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr


def test_a_weight_zero_row_with_an_overflowing_loss_counts_in_nothing(tmp_path) -> None:
    path = write(tmp_path / "w.csv", "y,pred,w\n1,2,1\n-1e308,1e308,0\n")
    result = eval_json([path, "-t", "y", "-p", "pred", "-w", "w"])["results"][0]
    assert result["value"] == 0.5
    assert result["count"] == 2
    assert math.isfinite(result["std"])


def test_a_failed_run_with_parquet_per_row_prints_one_line(tmp_path, smoothl1_command) -> None:
    path = write(tmp_path / "n.csv", "y,pred\n1,2\n3,nan\n5,6\n")
    done = run_command(
        smoothl1_command, "eval", path, "-t", "y", "--chunk-rows", "1", "--per-row", tmp_path / "r.parquet"
    )
    assert done.returncode == 2
    assert done.stderr.decode().count("\n") == 1, done.stderr.decode()
    assert not (tmp_path / "r.parquet").exists()


def test_the_api_reads_a_directory_as_the_command_does(tmp_path) -> None:
    (tmp_path / "runs").mkdir()
    write(tmp_path / "runs" / "a.csv", "y,pred\n1,2\n")
    write(tmp_path / "runs" / "b.csv", "y,pred\n3,3.5\n")
    report = evaluate(tmp_path / "runs", target="y").to_dict()
    assert report["rows"] == 2
    assert report["results"][0]["value"] == reference_mean([2.0, 3.5], [1.0, 3.0])


def test_a_baseline_value_beyond_float64_is_refused(tmp_path) -> None:
    data = write(tmp_path / "d.csv", "y,pred\n1,2\n")
    baseline = tmp_path / "b.json"
    report = eval_json([data, "-t", "y"])
    report["results"][0]["value"] = 10**400
    baseline.write_text(json.dumps(report))
    result = invoke(["eval", data, "-t", "y", "--baseline", baseline])
    assert result.exit_code == 2
