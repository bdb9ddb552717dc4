"""Per-row files read back (unique column names), bounded bootstrap, the API on scalars and its own outputs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from smoothl1_cli import evaluate, huber, smooth_l1
from smoothl1_cli.errors import InputError
from tests.conftest import invoke, reference_loss, run_command


def read_back(path: Path) -> dict[str, list[Any]]:
    table = pq.read_table(path) if path.suffix == ".parquet" else pacsv.read_csv(path)
    assert len(set(table.column_names)) == len(table.column_names), table.column_names
    return table.to_pydict()


@pytest.mark.parametrize("ext", ["parquet", "csv"])
@pytest.mark.parametrize(
    ("columns", "args", "expected"),
    [
        (  # an id column named like the row number
            {"row": [10, 11], "y": [1.0, 2.0], "pred": [1.5, 4.0]},
            ["-t", "y", "--id", "row"],
            {"row": [0, 1], "id_row": [10, 11], "loss": [reference_loss(1.5, 1.0), reference_loss(4.0, 2.0)]},
        ),
        (  # one pred scored against two targets
            {"y1": [1.0, 2.0], "y2": [0.0, 5.0], "p": [1.5, 4.0]},
            ["-t", "y1,y2", "-p", "p,p"],
            {
                "row": [0, 1],
                "loss_p_y1": [reference_loss(1.5, 1.0), reference_loss(4.0, 2.0)],
                "loss_p_y2": [reference_loss(1.5, 0.0), reference_loss(4.0, 5.0)],
            },
        ),
    ],
    ids=["id-row", "pred-twice"],
)
def test_per_row_column_names_never_repeat(smoothl1_command, write_table, tmp_path, ext, columns, args, expected):
    out = tmp_path / f"rows.{ext}"
    done = run_command(smoothl1_command, "eval", write_table("parquet", **columns), *args, "--per-row", out, "-q")
    assert done.returncode == 0, done.stderr
    found = read_back(out)
    assert list(found) == list(expected)  # the column order too
    assert found == expected


def test_more_bootstrap_replicates_than_the_weights_can_tell_apart_are_refused(write_table):
    data = write_table("csv", y=[1.0, 2.0], pred=[1.5, 4.0])
    result = invoke(["eval", data, "-t", "y", "--ci", "0.9", "--bootstrap", "262145", "-q"])
    assert result.exit_code == 2
    assert "262145 is not in the range 2<=x<=262144" in result.stderr
    with pytest.raises(InputError, match="--bootstrap takes 2 to 262144 replicates"):
        evaluate(str(data), target="y", ci=0.9, bootstrap=262145)


def test_the_api_takes_scalars_and_keeps_the_shape_of_none():
    assert smooth_l1(np.float64(3.0), np.float64(1.0)) == 1.5
    assert smooth_l1(0.5, 1.0) == 0.125
    assert huber(3.0, 1.0, delta=1.0, reduction="sum") == 1.5
    scalar_terms = smooth_l1(np.float64(3.0), np.float64(1.0), reduction="none")
    assert np.shape(scalar_terms) == ()
    assert float(scalar_terms) == 1.5
    grid = smooth_l1(np.array([[0.0, 3.0], [0.5, -2.0]]), np.zeros((2, 2)), reduction="none")
    assert grid.shape == (2, 2)
    assert grid.tolist() == [[0.0, 2.5], [0.125, 1.5]]


def test_the_api_refuses_per_row_output_over_its_input(write_table):
    data = write_table("csv", y=[1.0, 2.0], pred=[1.5, 4.0])
    before = data.read_bytes()
    with pytest.raises(InputError, match="same file as input"):
        evaluate(str(data), target="y", per_row=str(data))
    assert data.read_bytes() == before
    report = evaluate(str(data), target="y", per_row=str(data.with_name("rows.csv")))
    assert math.isclose(report.to_dict()["results"][0]["value"], (0.125 + 1.5) / 2, rel_tol=1e-15)


def test_an_internal_error_message_reaches_the_terminal_escaped(write_table, monkeypatch):
    import smoothl1_cli.api

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("bad \x1b]0;owned\x07 title")

    monkeypatch.setattr(smoothl1_cli.api, "run", broken)
    result = invoke(["eval", write_table("csv", y=[1.0], pred=[2.0]), "-t", "y", "-q"])
    assert result.exit_code == 3
    assert "\x1b" not in result.stderr
    assert "\x07" not in result.stderr
    assert "RuntimeError: bad" in result.stderr


def test_fail_above_names_the_target_where_a_pred_repeats_and_junit_fails_that_case(smoothl1_command, tmp_path):
    import xml.etree.ElementTree as ET

    data = tmp_path / "d.csv"
    data.write_text("a,b,p\n0,0,0.1\n0,9,0.1\n")
    junit = tmp_path / "junit.xml"
    done = run_command(smoothl1_command, "eval", data, "-t", "a,b", "-p", "p,p", "--fail-above", "1",
                       "--junit", junit, "-q")  # fmt: skip
    assert done.returncode == 1
    failing = [line for line in done.stderr.decode().splitlines() if line.startswith("gate failed: ")]
    assert failing[0].startswith("gate failed: p (target b): ")
    assert not any("target a" in line for line in failing)
    cases = {case.get("name"): case for case in ET.parse(junit).getroot().iter("testcase")}
    assert cases["p (target a)"].find("failure") is None
    assert cases["p (target b)"].find("failure") is not None


def test_per_row_names_stay_unique_when_a_pred_is_named_like_another_loss_column(smoothl1_command, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("a,b,c,p,p_b\n0,0,0,1,2\n")
    out = tmp_path / "rows.parquet"
    args = ["eval", data, "-t", "a,b,c", "-p", "p,p,p_b", "--per-row", out, "-q"]
    assert run_command(smoothl1_command, *args).returncode == 0
    assert list(read_back(out)) == ["row", "loss_p_a", "loss_p_b", "loss_p_b_"]


def test_only_per_row_takes_a_dash_for_stdout(smoothl1_command, write_table, tmp_path):
    data = write_table("csv", y=[1.0], pred=[2.0])
    done = run_command(smoothl1_command, "eval", data, "-t", "y", "-o", "-", "--junit", "-", "-q", cwd=tmp_path)
    assert done.returncode == 2
    refusal = "Error: --junit - is the same file as -o -: it would be overwritten; name another file\n"
    assert done.stderr.decode() == refusal
    assert not (tmp_path / "-").exists()
