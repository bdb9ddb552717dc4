"""--help that a person scans: options under headings, one metavar per kind, help for each; compare -q."""

from __future__ import annotations

import json
import os
import re
import subprocess

import click
import pytest

from smoothl1_cli.cli import HELP_SECTIONS, cli
from tests.conftest import invoke, run_command

COLUMN_OPTIONS = ("-t, --target", "-p, --pred", "-w, --weight", "--id", "--group-by")


def help_text(smoothl1_command: list[str], *args: str) -> str:
    done = run_command(smoothl1_command, *args, "--help")
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


def headings(text: str) -> list[str]:
    return [line[:-1] for line in text.splitlines() if re.fullmatch(r"[A-Z][a-z ]+:", line)]


def test_eval_help_lists_every_option_under_a_heading(smoothl1_command):
    text = help_text(smoothl1_command, "eval")
    expected = ["Columns", "Loss", "Data handling", "Output", "Gates", "Statistics", "Execution"]
    assert headings(text)[: len(expected)] == expected
    assert "Options:" not in text  # no flat list
    options = [p for p in cli.commands["eval"].params if isinstance(p, click.Option)]
    placed = {name for names in HELP_SECTIONS.values() for name in names}
    assert {p.name for p in options} == placed  # every option of eval has a heading, every heading an option


def test_every_option_has_help_and_column_options_say_col(smoothl1_command):
    for command in cli.commands.values():
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, (command.name, param.name)
    text = help_text(smoothl1_command, "eval")
    for option in COLUMN_OPTIONS:
        assert re.search(rf"^  {re.escape(option)} COL ", text, re.MULTILINE), option
    assert "TEXT" not in text
    assert "INTEGER RANGE" not in text


def test_the_seed_range_reads_as_64_bits(smoothl1_command):
    text = help_text(smoothl1_command, "eval")
    assert str(2**64 - 1) not in text
    assert "0<=x<2**64" in text


def test_top_level_help_lists_exit_codes_and_whole_command_descriptions(smoothl1_command):
    text = help_text(smoothl1_command)
    for code, meaning in [("0", "every gate passed"), ("1", "a gate failed"), ("2", "usage or input error"),
                          ("3", "internal error"), ("130", "interrupted")]:  # fmt: skip
        assert re.search(rf"^\s+{code}\s+.*{meaning}", text, re.MULTILINE), code
    commands = " ".join(text.split("Commands:")[1].split("Exit codes:")[0].split())  # wrapped lines joined
    for name, command in cli.commands.items():
        first = command.help.split("\n\n")[0] if command.help else ""
        assert " ".join(first.split()) in commands, name
    assert "..." not in commands


def test_no_option_name_is_cut_at_a_line_end(smoothl1_command):
    for args in ([], ["eval"], ["compare"]):
        text = help_text(smoothl1_command, *args)
        assert not re.search(r"--[a-z-]*-\n", text), args


@pytest.fixture
def two_reports(tmp_path, smoothl1_command):
    data = tmp_path / "data.csv"
    data.write_text("y,pred\n1,1.5\n2,2.5\n")
    worse = tmp_path / "worse.csv"
    worse.write_text("y,pred\n1,2\n2,3\n")
    paths = []
    for name, source in (("base", data), ("worse", worse)):
        path = tmp_path / f"{name}.json"
        assert run_command(smoothl1_command, "eval", source, "-t", "y", "-o", path).returncode == 0
        paths.append(path)
    return paths


def test_compare_quiet_prints_no_report(smoothl1_command, two_reports):
    base, worse = two_reports
    same = run_command(smoothl1_command, "compare", base, base, "-q")
    assert (same.returncode, same.stdout, same.stderr) == (0, b"", b"")
    regressed = run_command(smoothl1_command, "compare", base, worse, "-q")
    assert regressed.returncode == 1
    assert regressed.stdout == b""
    baseline, current = (json.loads(p.read_text())["results"][0]["value"] for p in two_reports)
    assert (baseline, current) == (0.125, 0.5)  # the worked example, and |d| = 1: 1 - 0.5
    (line,) = regressed.stderr.decode().splitlines()
    assert line.startswith("gate failed: pred: 0.125 -> 0.5")


# --- shell completion (click's _SMOOTHL1_COMPLETE protocol, as the shell scripts call it) ---------------------


def complete(smoothl1_command: list[str], line: str) -> list[tuple[str, ...]]:
    """What `smoothl1 ...<Tab>` offers at the end of `line`, as (type, value) pairs (bash's protocol)."""
    words = line.split(" ")
    env = {**os.environ, "_SMOOTHL1_COMPLETE": "bash_complete", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)}
    done = subprocess.run(smoothl1_command, env=env, capture_output=True, timeout=60, check=False)
    assert (done.returncode, done.stderr) == (0, b""), done.stderr
    return [tuple(item.split(",", 1)) for item in done.stdout.decode().splitlines() if item]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_column_options_complete_the_inputs_header(smoothl1_command, write_table, fmt):
    path = write_table(fmt, image=["a"], y=[1.0], y_pred=[1.5], w=[1.0])
    names = [("plain", name) for name in ("image", "y", "y_pred", "w")]
    for option in ("-t", "--pred", "-w", "--id", "--group-by"):
        assert complete(smoothl1_command, f"smoothl1 eval {path} {option} ") == names, option
    assert complete(smoothl1_command, f"smoothl1 eval {path} -t y -p y") == [("plain", "y"), ("plain", "y_pred")]
    assert complete(smoothl1_command, f"smoothl1 eval {path} -t image,y_") == [("plain", "image,y_pred")]


def test_paths_complete_as_files(smoothl1_command):
    for line in ("smoothl1 eval sample_da", "smoothl1 eval x.csv -o rep", "smoothl1 eval x.csv --baseline rep",
                 "smoothl1 eval x.csv --labels lab", "smoothl1 eval x.csv --per-row ro",
                 "smoothl1 compare rep", "smoothl1 compare a.json rep"):  # fmt: skip
        assert complete(smoothl1_command, line) == [("file", line.rsplit(" ", 1)[1])], line


def test_an_unreadable_input_completes_no_columns(smoothl1_command, tmp_path):
    corrupt = tmp_path / "broken.parquet"
    corrupt.write_bytes(b"PAR1 not really parquet PAR1")
    for path in (corrupt, tmp_path / "missing.csv", tmp_path):
        assert complete(smoothl1_command, f"smoothl1 eval {path} -t ") == []


def test_compare_table_says_the_gate_passed(two_reports):
    base, _ = two_reports
    result = invoke(["compare", base, base, "-f", "table"])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1] == "gate passed"
