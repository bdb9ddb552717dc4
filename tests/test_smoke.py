"""SPEC's worked example, through the Python API, the CLI in-process and the installed command."""

from __future__ import annotations

import json

import numpy as np

from smoothl1_cli import smooth_l1
from tests.conftest import eval_json, run_command


def test_worked_example_api() -> None:
    assert smooth_l1(np.array([0.5, 1.5, 2.5]), np.array([1.0, 2.0, 3.0]), beta=1.0) == 0.125


def test_worked_example_cli(write_table) -> None:
    path = write_table("csv", pred=[0.5, 1.5, 2.5], y=[1.0, 2.0, 3.0])
    report = eval_json([path, "--target", "y"])
    assert report["results"][0]["value"] == 0.125
    assert report["results"][0]["pred"] == "pred"


def test_installed_command_prints_json_when_piped(write_table, smoothl1_command) -> None:
    path = write_table("csv", pred=[0.5, 1.5, 2.5], y=[1.0, 2.0, 3.0])
    done = run_command(smoothl1_command, "eval", path, "-t", "y")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"][0]["value"] == 0.125
