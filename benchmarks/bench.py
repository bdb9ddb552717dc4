"""smoothl1 against DuckDB, Polars, pyarrow, pandas and the pandas + torch recipe; ratios first.

Run through `bash benchmarks/run.sh` (it makes the environment); the options are this script's:

    bash benchmarks/run.sh [--rows 1000000,5000000] [--rounds 3] [--scaling] [--with-1e8]

Method:

- Every contender is a separate process started from scratch (`smoothl1 eval ...`, `python -c ...`,
  `gzip -dc ...`), as a user would run it, so interpreter start-up and imports count. Wall-clock time
  from spawn to exit; peak memory is the child's own `ru_maxrss` from `os.wait4`.
- Rounds are interleaved (A B C A B C ...): a slow spell of the machine hits every contender alike.
  Each round gives the ratio smoothl1 / peer; the table shows the median of those per-round ratios
  (below 1: smoothl1 is faster). Absolute seconds and peak MB are medians, shown as context.
- Every contender prints its value; each one must equal smoothl1's to a relative 1e-9, or the
  benchmark stops with exit status 1 and writes nothing.
- Files come from generate.py (seeded, cached in benchmarks/data/ by row count) and are read once
  before their rounds, so every contender finds them in the page cache.

Results are written between the markers of BENCHMARKS.md (the text outside them is kept), and the
raw per-round numbers to benchmarks/data/last_run.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import generate

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS_MD = ROOT / "BENCHMARKS.md"
BEGIN = "<!-- BEGIN RESULTS: written by benchmarks/bench.py; everything up to END RESULTS is replaced on each run -->"
END = "<!-- END RESULTS -->"
REL_TOL = 1e-9

PY = sys.executable
SMOOTHL1 = str(Path(sys.executable).parent / "smoothl1")

# --- the contenders: one shell-free command each, the file as its last argument -------------------------------

# Python inside uses double quotes only, so that the commands print readably in single shell quotes.
NUMPY_LOSS = "d = pred - y; a = np.abs(d); print(repr(float(np.where(a < 1.0, 0.5 * d * d, a - 0.5).mean())))"
SQL_EXPR = "avg(CASE WHEN abs(pred-y) < 1 THEN 0.5*(pred-y)^2 ELSE abs(pred-y)-0.5 END)"
POLARS_EXPR = (
    'd = pl.col("pred") - pl.col("y"); e = pl.when(d.abs() < 1).then(0.5 * d ** 2).otherwise(d.abs() - 0.5).mean(); '
)
TWO = '["y", "pred"]'

CODE = {
    # The file goes in as a query parameter: read_csv($path) is read_csv('FILE') without quoting trouble.
    "duckdb_csv": (
        f'import sys, duckdb; q = "SELECT {SQL_EXPR} FROM read_csv($path)"; '
        'print(repr(duckdb.sql(q, params={"path": sys.argv[1]}).fetchall()[0][0]))'
    ),
    "duckdb_parquet": (
        f'import sys, duckdb; q = "SELECT {SQL_EXPR} FROM read_parquet($path)"; '
        'print(repr(duckdb.sql(q, params={"path": sys.argv[1]}).fetchall()[0][0]))'
    ),
    "polars_csv": (
        f"import sys, polars as pl; {POLARS_EXPR}print(repr(pl.scan_csv(sys.argv[1]).select(e).collect().item()))"
    ),
    "polars_parquet": (
        f"import sys, polars as pl; {POLARS_EXPR}print(repr(pl.scan_parquet(sys.argv[1]).select(e).collect().item()))"
    ),
    "pyarrow_csv": (
        "import sys, numpy as np, pyarrow.csv as c; "
        f"t = c.read_csv(sys.argv[1], convert_options=c.ConvertOptions(include_columns={TWO})); "
        f'y = t.column("y").to_numpy(); pred = t.column("pred").to_numpy(); {NUMPY_LOSS}'
    ),
    "pyarrow_parquet": (
        "import sys, numpy as np, pyarrow.parquet as pq; "
        f"t = pq.ParquetFile(sys.argv[1]).read(columns={TWO}); "
        f'y = t.column("y").to_numpy(); pred = t.column("pred").to_numpy(); {NUMPY_LOSS}'
    ),
    "pandas_csv": (
        f"import sys, numpy as np, pandas as pd; df = pd.read_csv(sys.argv[1], usecols={TWO}); "
        f'y = df["y"].to_numpy(); pred = df["pred"].to_numpy(); {NUMPY_LOSS}'
    ),
    "pandas_parquet": (
        f"import sys, numpy as np, pandas as pd; df = pd.read_parquet(sys.argv[1], columns={TWO}); "
        f'y = df["y"].to_numpy(); pred = df["pred"].to_numpy(); {NUMPY_LOSS}'
    ),
    # The blog recipe: read the whole file with pandas, hand the columns to torch as float64 tensors.
    "torch_csv": (
        "import sys, pandas as pd, torch, torch.nn.functional as F; df = pd.read_csv(sys.argv[1]); "
        'print(repr(F.smooth_l1_loss(torch.tensor(df["pred"].values), torch.tensor(df["y"].values)).item()))'
    ),
    "torch_parquet": (
        "import sys, pandas as pd, torch, torch.nn.functional as F; df = pd.read_parquet(sys.argv[1]); "
        'print(repr(F.smooth_l1_loss(torch.tensor(df["pred"].values), torch.tensor(df["y"].values)).item()))'
    ),
}


def parse_json_value(out: str) -> float:
    return float(json.loads(out)["results"][0]["value"])


def parse_float(out: str) -> float:
    return float(out.strip().splitlines()[-1])


@dataclass(frozen=True)
class Contender:
    key: str  # short id used in tables
    label: str  # what the table shows
    argv: Callable[[str], list[str]]  # file -> command
    parse: Callable[[str], float] | None = parse_float  # stdout -> value; None: prints nothing to check
    stdout_null: bool = False  # send stdout to /dev/null (the decompression floors)


def smoothl1_full(path: str) -> list[str]:
    return [SMOOTHL1, "eval", path, "-t", "y", "-p", "pred", "-f", "json"]


def smoothl1_quiet(path: str) -> list[str]:
    return [SMOOTHL1, "eval", path, "-t", "y", "-p", "pred", "-q"]


def py(code_key: str) -> Callable[[str], list[str]]:
    return lambda path: [PY, "-c", CODE[code_key], path]


FULL = Contender("smoothl1", "smoothl1 eval -f json (full report)", smoothl1_full, parse_json_value)
QUIET = Contender("smoothl1 -q", "smoothl1 eval -q", smoothl1_quiet)


def zstd_floor() -> Contender:
    if shutil.which("zstd"):
        return Contender("zstd -dc", "zstd -dc FILE > /dev/null", lambda p: ["zstd", "-dc", p], None, True)
    code = "import sys, zstandard; zstandard.ZstdDecompressor().copy_stream(open(sys.argv[1], 'rb'), sys.stdout.buffer)"
    return Contender("zstd -dc", "python zstandard decompress > /dev/null", lambda p: [PY, "-c", code, p], None, True)


def contenders_for(fmt: str) -> list[Contender]:
    if fmt == "csv":
        return [
            FULL,
            QUIET,
            Contender("DuckDB", "DuckDB avg(...) FROM read_csv", py("duckdb_csv")),
            Contender("Polars", "Polars scan_csv lazy", py("polars_csv")),
            Contender("pyarrow", "pyarrow.csv.read_csv(y, pred) + NumPy", py("pyarrow_csv")),
            Contender("pandas", "pandas read_csv(usecols) + NumPy", py("pandas_csv")),
            Contender("pandas+torch", "pandas read_csv + torch smooth_l1_loss", py("torch_csv")),
        ]
    if fmt == "parquet":
        return [
            FULL,
            QUIET,
            Contender("DuckDB", "DuckDB avg(...) FROM read_parquet", py("duckdb_parquet")),
            Contender("Polars", "Polars scan_parquet lazy", py("polars_parquet")),
            Contender("pyarrow", "pq.ParquetFile.read(y, pred) + NumPy", py("pyarrow_parquet")),
            Contender("pandas", "pandas read_parquet(columns) + NumPy", py("pandas_parquet")),
            Contender("pandas+torch", "pandas read_parquet + torch smooth_l1_loss", py("torch_parquet")),
        ]
    if fmt == "gz":
        return [
            FULL,
            QUIET,
            Contender("gzip -dc", "gzip -dc FILE > /dev/null", lambda p: ["gzip", "-dc", p], None, True),
        ]
    if fmt == "zst":
        return [FULL, QUIET, zstd_floor()]
    raise ValueError(fmt)


# Targets from the issue: (peer key, limit on the median ratio smoothl1/peer, how it is written).
TARGETS: dict[str, list[tuple[str, float, str]]] = {
    "csv": [("DuckDB", 0.9, "<= 0.9x"), ("Polars", 0.9, "<= 0.9x"), ("pyarrow", 1.0, "<= 1.0x")],
    "parquet": [("pyarrow", 1.1, "<= 1.1x"), ("DuckDB", 1.0, "< 1.0x (ahead)"), ("Polars", 1.0, "< 1.0x (ahead)")],
    "gz": [("gzip -dc", 1.1, "<= 1.1x")],
    "zst": [("zstd -dc", 1.1, "<= 1.1x")],
}
FULL_VS_QUIET_LIMIT = 1.10
STARTUP_LIMIT = 1.2
MEMORY_LIMIT_MB = 250.0
MEMORY_GROWTH_LIMIT_MB = 50.0

# --- running one command ----------------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    peak_mb: float
    cpu_seconds: float
    value: float | None


class ContenderFailed(RuntimeError):
    pass


def run_once(argv: list[str], parse: Callable[[str], float] | None, stdout_null: bool = False) -> Run:
    """Spawn argv, wait with os.wait4 for its rusage; wall time covers spawn to exit.

    Linux carries the parent's RSS high-water mark through fork and exec into the child's ru_maxrss,
    so this process stays small (standard library only; generate.py runs apart): a child's peak reads
    at least harness_hwm_mb(), which matters only for the tiny decompressors.
    """
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        env = None
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL if stdout_null else out, stderr=err, env=env
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
        out.seek(0)
        stdout = out.read().decode(errors="replace")
        if proc.returncode != 0:
            err.seek(0)
            raise ContenderFailed(
                f"exit status {proc.returncode}: {shlex.join(argv)}\n{err.read().decode(errors='replace')[-2000:]}"
            )
    value = parse(stdout) if parse else None
    return Run(seconds, usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime, value)  # ru_maxrss: KiB on Linux


def check_install(log: Callable[[str], None]) -> str:
    """smoothl1 must run as a user installs it: a regular (not editable) install in the venv, whose
    copy of the package does not change while the run takes minutes. Returns where it lives."""
    where = subprocess.run(
        [PY, "-c", "import smoothl1_cli; print(smoothl1_cli.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",  # as the entry point: no working directory on sys.path
    ).stdout.strip()
    if "site-packages" not in where:
        raise ContenderFailed(f"smoothl1 is not a regular install in the venv: smoothl1_cli comes from {where}")
    log(f"smoothl1 runs from {where}")
    return where


def make_data(rows: int, formats: tuple[str, ...], log: Callable[[str], None]) -> dict[str, Path]:
    """generate.py in its own process: NumPy and pyarrow never enter this one (see run_once)."""
    proc = subprocess.run(
        [PY, str(HERE / "generate.py"), str(rows), "--formats", ",".join(formats)],
        capture_output=True,
        text=True,
        check=False,
    )
    for line in proc.stderr.splitlines():
        log(f"  {line}")
    if proc.returncode != 0:
        raise ContenderFailed(f"generate.py {rows} failed:\n{proc.stderr[-2000:]}")
    return {fmt: Path(path) for fmt, path in (line.split("\t", 1) for line in proc.stdout.splitlines())}


def harness_hwm_mb() -> float:
    """This process's own peak RSS (VmHWM): the floor of every child's ru_maxrss."""
    try:
        match = re.search(r"^VmHWM:\s*(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return float("nan")
    return int(match.group(1)) / 1024 if match else float("nan")


def warm_page_cache(path: Path) -> None:
    """Read the file (or every file under the directory) once, so that every contender finds it cached."""
    buffer = bytearray(1 << 20)  # small and reused: this process's peak RSS is every child's floor
    for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if file.is_file():
            with open(file, "rb", buffering=0) as f:
                while f.readinto(buffer):
                    pass


def size_of(path: Path) -> int:
    """Bytes of the file, or of every file under the directory."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def same(value: float, reference: float) -> bool:
    return math.isclose(value, reference, rel_tol=REL_TOL, abs_tol=0.0)


@dataclass
class Trial:
    """Every round of every contender on one input."""

    name: str  # e.g. "5M CSV"
    path: Path
    fmt: str
    rows: int
    contenders: list[Contender]
    runs: dict[str, list[Run]] = field(default_factory=dict)

    def execute(self, rounds: int, log: Callable[[str], None]) -> None:
        warm_page_cache(self.path)
        self.runs = {c.key: [] for c in self.contenders}
        for r in range(rounds):
            line = []
            for c in self.contenders:
                run = run_once(c.argv(str(self.path)), c.parse, c.stdout_null)
                self.runs[c.key].append(run)
                line.append(f"{c.key} {run.seconds:.2f}s")
            self.check_values(r)
            log(f"  {self.name} round {r + 1}/{rounds}: " + ", ".join(line))

    def check_values(self, r: int) -> None:
        reference = self.runs[self.contenders[0].key][r].value
        assert reference is not None
        bad = []
        for c in self.contenders[1:]:
            v = self.runs[c.key][r].value
            if v is not None and not same(v, reference):
                rel = abs(v - reference) / abs(reference)
                bad.append(f"{c.key}: {v!r} vs smoothl1 {reference!r} (relative difference {rel:.3g})")
        if bad:
            raise ContenderFailed(f"{self.name}: values disagree beyond a relative {REL_TOL}:\n  " + "\n  ".join(bad))

    def ratios(self, peer: str, subject: str = "smoothl1") -> list[float]:
        return [a.seconds / b.seconds for a, b in zip(self.runs[subject], self.runs[peer], strict=True)]

    def median_seconds(self, key: str) -> float:
        return statistics.median(r.seconds for r in self.runs[key])

    def peak_mb(self, key: str) -> float:
        return max(r.peak_mb for r in self.runs[key])

    def median_cpu(self, key: str) -> float:
        return statistics.median(r.cpu_seconds for r in self.runs[key])

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "path": str(self.path),
            "format": self.fmt,
            "rows": self.rows,
            "bytes": size_of(self.path),
            "commands": {c.key: shlex.join(c.argv(str(self.path))) for c in self.contenders},
            "runs": {k: [vars(r) for r in v] for k, v in self.runs.items()},
        }


# --- formatting -------------------------------------------------------------------------------------------------


def human_rows(n: int) -> str:
    for unit, size in (("M", 10**6), ("k", 10**3)):
        if n >= size and n % (size // 10 if size > 10 else 1) == 0:
            text = f"{n / size:.1f}".rstrip("0").rstrip(".")
            return f"{text}{unit}"
    return str(n)


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    raise AssertionError


FMT_NAME = {"csv": "CSV", "parquet": "Parquet", "gz": "CSV .gz", "zst": "CSV .zst"}


def verdict(ratio: float, limit: float, strict: bool = False) -> str:
    ok = ratio < limit if strict else ratio <= limit
    return "PASS" if ok else "**MISS**"


def ratio_table(trials: list[Trial]) -> list[str]:
    lines = [
        "| input | smoothl1 vs | ratio (median of rounds) | per-round ratios | target | |",
        "| --- | --- | ---: | --- | --- | --- |",
    ]
    for t in trials:
        targets = {peer: (limit, text) for peer, limit, text in TARGETS[t.fmt]}
        for c in t.contenders[2:]:
            ratios = t.ratios(c.key)
            med = statistics.median(ratios)
            limit_text = targets.get(c.key)
            if limit_text:
                limit, text = limit_text
                status = verdict(med, limit, strict="ahead" in text)
            else:
                text, status = "(context)", ""
            rounds = " ".join(f"{x:.2f}" for x in ratios)
            lines.append(f"| {t.name} | {c.label} | **{med:.2f}x** | {rounds} | {text} | {status} |")
        ratios = t.ratios("smoothl1 -q")  # full report / -q: what the report costs
        med = statistics.median(ratios)
        lines.append(
            f"| {t.name} | full report / -q (cost of the report) | **{med:.2f}x** | "
            f"{' '.join(f'{x:.2f}' for x in ratios)} | <= {FULL_VS_QUIET_LIMIT:.2f}x | "
            f"{verdict(med, FULL_VS_QUIET_LIMIT)} |"
        )
    return lines


def context_table(trials: list[Trial]) -> list[str]:
    lines = [
        "| input | size | contender | median s | CPU s (user+sys) | peak MB | value |",
        "| --- | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for t in trials:
        for i, c in enumerate(t.contenders):
            v = t.runs[c.key][0].value
            lines.append(
                f"| {t.name if i == 0 else ''} | {human_bytes(t.path.stat().st_size) if i == 0 else ''} | {c.label} | "
                f"{t.median_seconds(c.key):.3f} | {t.median_cpu(c.key):.2f} | {t.peak_mb(c.key):.0f} | "
                f"{'' if v is None else repr(v)} |"
            )
    return lines


# --- start-up checks --------------------------------------------------------------------------------------------


def startup_trials(tiny_csv: Path) -> list[tuple[str, Contender, Contender]]:
    click = Contender("import click", 'python -c "import click"', lambda p: [PY, "-c", "import click"], None, True)
    npa = Contender(
        "import numpy, pyarrow.csv",
        'python -c "import numpy, pyarrow.csv"',
        lambda p: [PY, "-c", "import numpy, pyarrow.csv"],
        None,
        True,
    )
    return [
        (
            "smoothl1 --version",
            Contender("--version", "smoothl1 --version", lambda p: [SMOOTHL1, "--version"], None, True),
            click,
        ),
        ("smoothl1 --help", Contender("--help", "smoothl1 --help", lambda p: [SMOOTHL1, "--help"], None, True), click),
        (f"smoothl1 eval {tiny_csv.name} -f json (100 rows, full report)", FULL, npa),
    ]


def run_startup(tiny_csv: Path, rounds: int, log: Callable[[str], None]) -> list[dict[str, object]]:
    pairs = startup_trials(tiny_csv)
    subjects: list[list[Run]] = [[] for _ in pairs]
    baselines: list[list[Run]] = [[] for _ in pairs]
    for _ in range(rounds):
        for i, (_, subject, baseline) in enumerate(pairs):
            subjects[i].append(run_once(subject.argv(str(tiny_csv)), None, True))
            baselines[i].append(run_once(baseline.argv(str(tiny_csv)), None, True))
    results = []
    for (name, subject, baseline), s, b in zip(pairs, subjects, baselines, strict=True):
        ratios = [x.seconds / y.seconds for x, y in zip(s, b, strict=True)]
        results.append(
            {
                "name": name,
                "baseline": baseline.label,
                "ratio": statistics.median(ratios),
                "ratios": ratios,
                "seconds": statistics.median(x.seconds for x in s),
                "baseline_seconds": statistics.median(y.seconds for y in b),
                "peak_mb": max(x.peak_mb for x in s),
                "command": shlex.join(subject.argv(str(tiny_csv))),
            }
        )
        log(f"  {name}: {results[-1]['ratio']:.2f}x of {baseline.label}")
    return results


def startup_table(results: list[dict[str, object]]) -> list[str]:
    lines = [
        "| command | vs | ratio (median of rounds) | target | | median s | baseline median s |",
        "| --- | --- | ---: | --- | --- | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| `{r['name']}` | `{r['baseline']}` | **{r['ratio']:.2f}x** | <= {STARTUP_LIMIT}x | "
            f"{verdict(float(r['ratio']), STARTUP_LIMIT)} | {r['seconds']:.3f} | {r['baseline_seconds']:.3f} |"  # type: ignore[arg-type]
        )
    return lines


# --- scaling ----------------------------------------------------------------------------------------------------


def run_scaling(row_counts: list[int], rounds: int, log: Callable[[str], None]) -> list[dict[str, object]]:
    results = []
    for rows in row_counts:
        paths = make_data(rows, ("csv", "parquet"), log)
        for fmt in ("csv", "parquet"):
            path = paths[fmt]
            warm_page_cache(path)
            runs = [run_once(FULL.argv(str(path)), FULL.parse) for _ in range(rounds)]
            med = statistics.median(r.seconds for r in runs)
            results.append(
                {
                    "rows": rows,
                    "format": fmt,
                    "bytes": path.stat().st_size,
                    "seconds": med,
                    "runs": [vars(r) for r in runs],
                    "peak_mb": max(r.peak_mb for r in runs),
                    "cpu_seconds": statistics.median(r.cpu_seconds for r in runs),
                }
            )
            log(f"  scaling {human_rows(rows)} {fmt}: {med:.2f}s, {results[-1]['peak_mb']:.0f} MB")
    return results


def scaling_table(results: list[dict[str, object]]) -> list[str]:
    lines = [
        "| rows | format | file size | median s | CPU s | rows/s | MB/s of file | peak MB |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        rows, secs, size = int(r["rows"]), float(r["seconds"]), int(r["bytes"])  # type: ignore[call-overload]
        cpu, peak = float(r["cpu_seconds"]), float(r["peak_mb"])  # type: ignore[arg-type]
        lines.append(
            f"| {rows:,} | {FMT_NAME[str(r['format'])]} | {human_bytes(size)} | {secs:.3f} | {cpu:.2f} | "
            f"{rows / secs / 1e6:.2f} M | {size / secs / 1e6:.0f} | {peak:.0f} |"
        )
    return lines


def memory_lines(trials: list[Trial], scaling: list[dict[str, object]]) -> list[str]:
    """Peak RSS of the full report by (format, rows), from every measurement of this run."""
    peak: dict[tuple[str, int], float] = {}
    for t in trials:
        key = (t.fmt, t.rows)
        peak[key] = max(peak.get(key, 0.0), t.peak_mb("smoothl1"))
    for r in scaling:
        key = (str(r["format"]), int(r["rows"]))  # type: ignore[arg-type]
        peak[key] = max(peak.get(key, 0.0), float(r["peak_mb"]))  # type: ignore[arg-type]
    lines = [
        f"Targets: <= {MEMORY_LIMIT_MB:.0f} MB for the 20M-row file, and <= {MEMORY_GROWTH_LIMIT_MB:.0f} MB "
        "growth from 1M to 20M rows, with the full report.",
        "",
        "| format | "
        + " | ".join(f"{human_rows(n)} rows" for n in sorted({n for _, n in peak}))
        + " | growth from 1M | verdict |",
        "| --- | " + " | ".join("---:" for _ in {n for _, n in peak}) + " | ---: | --- |",
    ]
    all_rows = sorted({n for _, n in peak})
    for fmt in ("csv", "parquet", "gz", "zst"):
        cells = [f"{peak[(fmt, n)]:.0f} MB" if (fmt, n) in peak else "" for n in all_rows]
        if not any(cells):
            continue
        largest = max(n for f, n in peak if f == fmt)
        growth, status = "", ""
        if (fmt, 1_000_000) in peak and largest > 1_000_000:
            g = peak[(fmt, largest)] - peak[(fmt, 1_000_000)]
            growth = f"{g:+.0f} MB (to {human_rows(largest)})"
            if largest >= 20_000_000:
                ok = peak[(fmt, largest)] <= MEMORY_LIMIT_MB and g <= MEMORY_GROWTH_LIMIT_MB
                status = "PASS" if ok else "**MISS**"
            else:
                ok = peak[(fmt, largest)] <= MEMORY_LIMIT_MB and g <= MEMORY_GROWTH_LIMIT_MB
                status = ("on track" if ok else "**MISS**") + " (20M not measured)"
        lines.append(f"| {FMT_NAME[fmt]} | " + " | ".join(cells) + f" | {growth} | {status} |")
    return lines


# --- the machine ------------------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    info: dict[str, str] = {}
    info["cores (nproc)"] = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
        info["CPU"] = model.group(1).strip() if model else platform.processor()
        meminfo = Path("/proc/meminfo").read_text()
        total = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.M)
        if total:
            info["RAM"] = f"{int(total.group(1)) / 1024**2:.1f} GiB"
    except OSError:
        info["CPU"] = platform.processor()
    info["OS"] = f"{platform.system()} {platform.release()} ({platform.machine()})"
    info["Python"] = platform.python_version()
    versions = []
    for mod in ("smoothl1_cli", "numpy", "pyarrow", "pandas", "click", "duckdb", "polars", "torch", "distributed"):
        out = subprocess.run([PY, "-c", f"import {mod}; print({mod}.__version__)"], capture_output=True, text=True)
        name = "smoothl1" if mod == "smoothl1_cli" else mod
        versions.append(f"{name} {out.stdout.strip() or '?'}")
    info["libraries"] = ", ".join(versions)
    tools = []
    for tool in ("gzip", "zstd"):
        if shutil.which(tool):
            text = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
            version = re.search(r"v?(\d+\.\d+(?:\.\d+)?)", text)
            tools.append(f"{tool} {version.group(1) if version else '?'}")
    info["tools"] = ", ".join(tools)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--", "smoothl1_cli"],
        capture_output=True,
        text=True,
    )
    if head.returncode == 0:
        info["smoothl1 source"] = f"git {head.stdout.strip()}" + (
            " + uncommitted changes in smoothl1_cli/" if dirty.stdout.strip() else ""
        )
    return info


# --- writing BENCHMARKS.md --------------------------------------------------------------------------------------


def render(
    command: str,
    started: dt.datetime,
    elapsed: float,
    rounds: int,
    info: dict[str, str],
    trials: list[Trial],
    startup: list[dict[str, object]],
    scaling: list[dict[str, object]],
) -> str:
    out = [BEGIN, ""]
    out += [
        "## Results",
        "",
        f"Measured {started:%Y-%m-%d %H:%M} UTC by `{command}` ({rounds} interleaved rounds; "
        f"the whole run took {elapsed / 60:.1f} min).",
        "",
        "| machine | |",
        "| --- | --- |",
    ]
    out += [f"| {k} | {v} |" for k, v in info.items()]
    out += [
        "",
        "### Ratios: smoothl1's time / the peer's time",
        "",
        "Median of the per-round ratios (below 1.00x: smoothl1 is faster). smoothl1 runs with the full JSON "
        "report unless the row says `-q`. Every peer printed the same value as smoothl1 to a relative 1e-9 "
        "(checked in every round).",
        "",
    ]
    out += ratio_table(trials)
    out += ["", "### Start-up", ""]
    out += startup_table(startup)
    out += ["", "### Peak memory of smoothl1 (full report)", ""]
    out += memory_lines(trials, scaling)
    if scaling:
        out += ["", "### Scaling: smoothl1 eval -f json (full report)", ""]
        out += scaling_table(scaling)
    out += [
        "",
        "### Absolute times and memory (context)",
        "",
        "Medians over the rounds; peak MB is the largest `ru_maxrss` seen (never below the harness's own "
        f"{harness_hwm_mb():.0f} MB, which Linux carries into a child's high-water mark); "
        "CPU above wall time means threads.",
        "",
    ]
    out += context_table(trials)
    out += ["", "Commands, exactly as run (`FILE` is the input):", "", "```text"]
    seen: set[str] = set()
    for t in trials:
        for c in t.contenders:
            cmd = shlex.join(c.argv("FILE")).replace(PY, "python").replace(SMOOTHL1, "smoothl1")
            if c.stdout_null:
                cmd += " > /dev/null"
            if cmd not in seen:
                seen.add(cmd)
                out.append(cmd)
    out += ["```", "", END]
    return "\n".join(out) + "\n"


DEFAULT_INTRO = """# Benchmarks

(Hand-written introduction: kept as is by `benchmarks/bench.py`, which only rewrites the results below.)
"""


def write_markdown(section: str, begin: str = BEGIN, end: str = END) -> None:
    """Put `section` (which starts with `begin` and ends with `end`) in place of the old one, or at the end."""
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else DEFAULT_INTRO
    if begin in text and end in text:
        before, rest = text.split(begin, 1)
        after = rest.split(end, 1)[1]
        text = before + section.rstrip("\n") + after
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS_MD.write_text(text)


# --- main -------------------------------------------------------------------------------------------------------


def parse_rows(text: str) -> list[int]:
    return [int(float(x)) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        type=parse_rows,
        default=parse_rows("1000000,5000000"),
        help="row counts for the ratio tables, comma-separated (default 1000000,5000000)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per input (default 3)")
    parser.add_argument("--formats", default="csv,parquet,gz,zst", help="inputs to compare (default all four)")
    parser.add_argument("--startup-rounds", type=int, default=15, help="rounds of the start-up checks (default 15)")
    parser.add_argument(
        "--scaling", action="store_true", help="also the scaling curve: smoothl1 alone at 1e5, 1e6, 1e7, 2e7 rows"
    )
    parser.add_argument(
        "--scaling-rows",
        type=parse_rows,
        default=parse_rows("1e5,1e6,1e7,2e7"),
        help="row counts of the scaling curve (default 1e5,1e6,1e7,2e7: 2e7 is the memory target)",
    )
    parser.add_argument("--with-1e8", action="store_true", help="add 1e8 rows to the scaling curve (~4.5 GB of CSV)")
    parser.add_argument("--no-write", action="store_true", help="print the results; leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    command = "bash benchmarks/run.sh" + (
        "" if argv is None and len(sys.argv) == 1 else " " + shlex.join(sys.argv[1:] if argv is None else argv)
    )

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    info = machine()
    check_install(log)
    load_start = os.getloadavg()
    if load_start[0] > 0.5:
        log(f"note: load average {load_start[0]:.2f} at start; other work on the machine adds noise")
    small = make_data(100, tuple(generate.FORMATS), log)
    tiny = small["csv"]

    log("warm-up: every contender once on the 100-row files (compiles and caches imports)")
    for fmt in formats:
        for c in contenders_for(fmt):
            run_once(c.argv(str(small[fmt])), c.parse, c.stdout_null)

    log(f"start-up checks ({args.startup_rounds} rounds)")
    startup = run_startup(tiny, args.startup_rounds, log)

    trials: list[Trial] = []
    try:
        for rows in args.rows:
            paths = make_data(rows, tuple(formats), log)
            for fmt in formats:
                trial = Trial(f"{human_rows(rows)} {FMT_NAME[fmt]}", paths[fmt], fmt, rows, contenders_for(fmt))
                log(f"{trial.name}: {paths[fmt].name} ({human_bytes(paths[fmt].stat().st_size)}), {args.rounds} rounds")
                trial.execute(args.rounds, log)
                trials.append(trial)
        scaling: list[dict[str, object]] = []
        if args.scaling or args.with_1e8:
            rows_list = list(args.scaling_rows) + ([10**8] if args.with_1e8 else [])
            log(f"scaling: {', '.join(human_rows(n) for n in rows_list)} rows")
            scaling = run_scaling(rows_list, args.rounds, log)
    except ContenderFailed as exc:
        log(f"BENCHMARK FAILED: {exc}")
        return 1

    elapsed = time.perf_counter() - t0
    load_end = os.getloadavg()
    info["load average (1 min) at start / end"] = f"{load_start[0]:.2f} / {load_end[0]:.2f}"
    raw = {
        "command": command,
        "started": started.isoformat(),
        "machine": info,
        "trials": [t.to_json() for t in trials],
        "startup": startup,
        "scaling": scaling,
    }
    generate.DATA_DIR.mkdir(exist_ok=True)
    (generate.DATA_DIR / "last_run.json").write_text(json.dumps(raw, indent=1))
    section = render(command, started, elapsed, args.rounds, info, trials, startup, scaling)
    print(section)
    if not args.no_write:
        write_markdown(section)
        log(f"wrote {RESULTS_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
