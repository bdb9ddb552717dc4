"""--help that a person scans: options under headings, one metavar per kind, help for each; compare -q."""

from __future__ import annotations

import json
import re

import click
import pytest

from smoothl1_cli.cli import HELP_SECTIONS, cli
from tests.conftest import run_command

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
    assert {p.name for p in options} <= placed  # every option of eval has a heading of its own


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
