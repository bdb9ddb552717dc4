"""Replays tests/corpus/: every input that once found a bug, with what it must give.

tests/corpus/manifest.json names each file's arguments and expectation (exit status, value,
statistics, words of the error) and, while the bug stands, the bug (such entries are strict
xfails: they turn into failures the moment the bug is fixed, as a reminder to drop the `bug`).
Entries with `"bug": null` were fixed and stay as regression tests.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import invoke

CORPUS = Path(__file__).parent / "corpus"
MANIFEST: dict[str, dict[str, Any]] = json.loads((CORPUS / "manifest.json").read_text())


def test_every_corpus_file_is_in_the_manifest() -> None:
    files = {p.name for p in CORPUS.iterdir() if p.name != "manifest.json"}
    assert files == set(MANIFEST)


def _case(name: str) -> Any:
    bug = MANIFEST[name]["bug"]
    return pytest.param(name, id=name, marks=[pytest.mark.xfail(strict=True, reason=f"BUG: {bug}")] if bug else [])


@pytest.mark.parametrize("name", [_case(name) for name in MANIFEST])
def test_corpus_input(name: str) -> None:
    entry = MANIFEST[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stray Python warnings are test_extremes' subject, not this replay's
        result = invoke(["eval", CORPUS / name, *entry["args"], "-f", "json"])
    assert result.exit_code in entry["exit"], (result.exit_code, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    if result.exit_code == 2:
        lines = result.stderr.rstrip("\n").split("\n")
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("Error: "), result.stderr
        assert all(words in lines[0] for words in entry.get("error", [])), lines[0]
        assert not any(words in lines[0] for words in entry.get("not_in_error", [])), lines[0]
        return
    report = json.loads(result.stdout)
    found = report["results"][0]
    if "value" in entry:
        assert math.isclose(found["value"], entry["value"], rel_tol=1e-12), found["value"]
    if "rows" in entry:
        assert report["rows"] == entry["rows"]
    for stat, expected in entry.get("stats", {}).items():
        assert math.isclose(found[stat], expected, rel_tol=1e-12), (stat, found[stat])
    for quantile, expected in entry.get("quantiles", {}).items():
        assert math.isclose(found["quantiles"][quantile], expected, rel_tol=1e-12), (quantile, found["quantiles"])
    if "warning" in entry:
        assert any(entry["warning"] in warning for warning in report.get("warnings", []))
