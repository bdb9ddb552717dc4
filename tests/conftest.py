"""Shared fixtures: an independent float64 reference, files written by pyarrow, the CLI."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from hypothesis import settings

from smoothl1_cli import readers
from smoothl1_cli.cli import cli

# Property tests are reproducible by default (the same examples on every run, in CI too); a
# longer, random exploration is a profile away: HYPOTHESIS_PROFILE=long (see tests/test_fuzz.py).
settings.register_profile("reproducible", derandomize=True, database=None)
settings.register_profile("long", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "reproducible"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run the tests marked slow (large files)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `slow` run only with --run-slow: the default suite stays fast."""
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


TEXT_FORMATS = ("csv", "tsv", "jsonl", "csv.gz", "csv.bz2", "csv.zst", "csv.lz4", "tsv.gz", "jsonl.gz")
BINARY_FORMATS = ("parquet", "arrow", "feather")
ALL_FORMATS = TEXT_FORMATS + BINARY_FORMATS


SMALLEST_NORMAL = 2.2250738585072014e-308
LARGEST = 1.7976931348623157e308


def leaves_pytorchs_formula(d: float, beta: float) -> bool:
    """README's one deliberate difference from PyTorch: beta outside [1, 1e150], |d| < beta, and
    PyTorch's (0.5 * d) * d overflows or goes subnormal; there the kernel computes 0.5 * d * (d / beta)."""
    if beta == 0 or 1.0 <= beta <= 1e150 or not 0 < d < beta:
        return False
    return not SMALLEST_NORMAL <= 0.5 * d * d <= LARGEST


def exact_smooth_l1(d: float, beta: float) -> Fraction:
    """The loss of |d| in exact rational arithmetic (beta > 0)."""
    d, beta = abs(Fraction(d)), Fraction(beta)
    return d * d / (2 * beta) if d < beta else d - beta / 2


def reference_loss(pred: float, target: float, parameter: float = 1.0, loss: str = "smooth_l1") -> float:
    """One row's loss from the textbook formula, in plain Python floats (independent of the kernel):
    PyTorch's expression, except where that loses the value (leaves_pytorchs_formula), where it is
    the exact loss rounded once."""
    d = abs(pred - target)
    if loss == "huber":
        return 0.5 * d * d if d < parameter else parameter * (d - 0.5 * parameter)
    if parameter == 0:
        return d
    if leaves_pytorchs_formula(d, parameter):
        return float(exact_smooth_l1(d, parameter))
    return 0.5 * d * d / parameter if d < parameter else d - 0.5 * parameter


def reference_mean(
    pred: Sequence[float],
    target: Sequence[float],
    parameter: float = 1.0,
    loss: str = "smooth_l1",
    weight: Sequence[float] | None = None,
) -> float:
    """math.fsum of the exact per-row losses (weighted: fsum(w * l) / fsum(w))."""
    losses = [reference_loss(p, t, parameter, loss) for p, t in zip(pred, target, strict=True)]
    if weight is None:
        return math.fsum(losses) / len(losses)
    return math.fsum(w * loss for w, loss in zip(weight, losses, strict=True)) / math.fsum(weight)


def within_1e12(value: Any) -> Any:
    """`value` (a report, or part of one) with each float compared to a relative 1e-12: what the SPEC
    promises when the same rows are cut into other chunks or pieces."""
    if isinstance(value, dict):
        return {key: within_1e12(item) for key, item in value.items()}
    if isinstance(value, list):
        return [within_1e12(item) for item in value]
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-12, abs=0, nan_ok=True)
    return value


def _compress(data: bytes, codec: str) -> bytes:
    if codec == "gz":
        return gzip.compress(data)
    if codec == "bz2":
        return bz2.compress(data)
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, {"zst": "zstd", "lz4": "lz4"}[codec]) as out:
        out.write(data)
    return bytes(sink.getvalue().to_pybytes())


def table_bytes(table: pa.Table, fmt: str) -> bytes:
    """The bytes of `table` written in `fmt` (csv, tsv, jsonl, parquet, arrow, feather, with .gz etc.)."""
    base, _, codec = fmt.partition(".")
    buffer = io.BytesIO()
    if base in ("csv", "tsv"):
        pacsv.write_csv(table, buffer, pacsv.WriteOptions(delimiter="," if base == "csv" else "\t"))
    elif base == "jsonl":
        for row in table.to_pylist():
            buffer.write((json.dumps(row) + "\n").encode())
    elif base == "parquet":
        pq.write_table(table, buffer)
    elif base == "arrow":
        with pa.ipc.new_file(buffer, table.schema) as writer:
            writer.write_table(table)
    elif base == "feather":
        feather.write_feather(table, buffer)
    else:
        raise ValueError(fmt)
    data = buffer.getvalue()
    return _compress(data, codec) if codec else data


@pytest.fixture
def write_table(tmp_path: Path) -> Callable[..., Path]:
    """write_table(fmt, name="data", **columns) -> a file in tmp_path holding those columns."""

    def write(fmt: str, name: str = "data", **columns: Any) -> Path:
        path = tmp_path / f"{name}.{fmt}"
        path.write_bytes(table_bytes(pa.table(columns), fmt))
        return path

    return write


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every input the command opens in this process, and whether it was closed (checked without the GC)."""
    log: list[dict[str, Any]] = []
    real = readers.open_source

    def tracked(*args: Any, **kwargs: Any) -> Any:
        source = real(*args, **kwargs)
        entry = {"label": source.label, "closed": False}
        inner = source.close

        def close() -> None:
            entry["closed"] = True
            inner()

        source.close = close
        log.append(entry)
        return source

    monkeypatch.setattr(readers, "open_source", tracked)
    return log


def invoke(args: Sequence[str], input: bytes | str | None = None) -> Result:
    """Run the CLI in-process with stdout and stderr kept apart."""
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def eval_json(args: Sequence[str], input: bytes | str | None = None) -> dict[str, Any]:
    """`smoothl1 eval ARGS -f json`, checked to have exited 0, parsed."""
    result = invoke(["eval", *args, "-f", "json"], input=input)
    assert result.exit_code == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


@pytest.fixture(scope="session")
def smoothl1_command() -> list[str]:
    """The installed `smoothl1` entry point (falls back to `python -m smoothl1_cli`)."""
    found = shutil.which("smoothl1", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "smoothl1_cli"]


def run_command(
    command: list[str], *args: Any, stdin: bytes | None = None, timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """The installed command in a subprocess, as a user runs it (in `cwd`, for relative paths)."""
    return subprocess.run(
        [*command, *map(str, args)], input=stdin, capture_output=True, timeout=timeout, check=False, cwd=cwd
    )
