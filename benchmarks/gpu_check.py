"""On a GPU machine: every statistic of --backend cupy against --backend numpy, then their speeds.

    PYTHONPATH=. python benchmarks/gpu_check.py [--budget-s 420] [--max-rows 1000000000] [--dir DIR]

Needs only CuPy, NumPy, pandas and pyarrow besides the checkout: it calls `smoothl1_cli.api.evaluate`,
whose imports reach neither click nor rich (only cli.py and render.py import them). No pip install.

1. Checks: random data of several sizes (one chunk, many chunks with a short last one, beyond the
   sketch's exact limit) under every option (both losses, beta 0 / 0.5 / 1 / 3, delta, the three NaN
   policies, weights with zeros, multi-output elementwise and row-sum, --group-by, --top with ids,
   --ci with a paired test, --reduction sum, values at 1e-160 and 1e155 where the sums are kept
   scaled), and chunks of 1,000 rows (hundreds per GPU batch): each report's every number must agree
   with NumPy's to a relative 1e-12 (counts, rows and keys exactly).
2. Timings, NumPy against CuPy in the same run (CuPy warmed first: the kernels' compile is paid once
   per machine and cached): the full statistics on in-memory arrays of 10^6 rows up to --max-rows
   (default chunk rows, and 2**22-row chunks on the GPU); end to end on a Parquet file and a CSV that
   it writes; `--ci 0.95 --bootstrap 1000` on 10^6 rows. A timing that its size extrapolates past
   the time left (--budget-s) is skipped and says so.

It prints a table last and exits 1 on any mismatch. `--fake` replaces CuPy with tests/gpu_support.py
(NumPy on the CPU, marked as a device), to try this script where there is no GPU: the timings are
then meaningless, the checks are not.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from smoothl1_cli import backends
from smoothl1_cli.api import evaluate

REL = 1e-12
CHECK_SIZES = (1_000, 65_536 * 3 + 17, 300_000)
CASES: dict[str, dict[str, Any]] = {
    "smooth_l1": {},
    "beta 0 (L1)": {"beta": 0.0},
    "beta 0.5, sum": {"beta": 0.5, "reduction": "sum"},
    "beta 3": {"beta": 3.0},
    "huber delta 2": {"loss": "huber", "delta": 2.0},
    "weights": {"weight": "w"},
    "nan omit": {"nan_policy": "omit", "data": {"nan": True}},
    "nan propagate": {"nan_policy": "propagate", "data": {"nan": True}},
    "multi-output": {"data": {"outputs": 2}},
    "multi-output row-sum, weights": {"multioutput": "row-sum", "weight": "w", "data": {"outputs": 2}},
    "group-by": {"group_by": "g"},
    "group-by, weights, omit": {"group_by": "g", "weight": "w", "nan_policy": "omit", "data": {"nan": True}},
    "group-by, 5,000 groups (on the host)": {"group_by": "g", "data": {"groups": 5_000}},
    "top 10 with ids": {"top": 10, "id": "id"},
    "ci, two preds": {"ci": 0.95, "bootstrap": 200, "pred": ["pred", "other"]},
    "ci, weights": {"ci": 0.9, "bootstrap": 64, "weight": "w", "seed": 7},
    "exact quantiles": {"exact_quantiles": True},
    "tiny values (sums kept scaled)": {"data": {"scale": 1e-160}},
    "huge values (sums kept scaled), weights": {"weight": "w", "data": {"scale": 1e155}},
}


SMALL_CHUNKS = ("smooth_l1", "nan omit", "tiny values (sums kept scaled)", "group-by, weights, omit")  # 300 a batch


def table_of(
    rows: int, seed: int = 0, outputs: int = 1, nan: bool = False, scale: float = 1.0, groups: int = 50
) -> pa.Table:
    """y (or y0, y1), pred (p0, p1), other, w (a tenth of them 0), g (`groups` groups), id; y and the
    predictions times `scale` (where squares and sums leave float64's range, and are kept scaled)."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for k in range(outputs):
        target = rng.normal(size=rows) * scale
        pred = target + rng.standard_t(3, size=rows) * scale  # heavy tails: both branches of the loss
        if nan:
            pred[rng.random(rows) < 0.01] = np.nan
        suffix = "" if outputs == 1 else str(k)
        columns[f"y{suffix}"], columns[f"pred{suffix}" if outputs == 1 else f"p{k}"] = target, pred
    columns["other"] = columns["y" if outputs == 1 else "y0"] + rng.normal(scale=2.0, size=rows) * scale
    weight = rng.exponential(size=rows)
    weight[rng.random(rows) < 0.1] = 0.0
    columns["w"] = weight
    columns["g"] = rng.integers(0, groups, size=rows)
    columns["id"] = np.arange(rows) * 3
    return pa.table(columns)


def mismatches(a: Any, b: Any, where: str = "") -> list[str]:
    """Where two reports differ: numbers beyond a relative REL, anything else at all."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where}: keys {sorted(a)} != {sorted(b)}"]
        return [m for key in a for m in mismatches(a[key], b[key], f"{where}.{key}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items != {len(b)}"]
        return [m for i, (x, y) in enumerate(zip(a, b, strict=True)) for m in mismatches(x, y, f"{where}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        same = a == b or (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=REL, abs_tol=0.0)
        return [] if same else [f"{where}: numpy {a!r} != cupy {b!r} (relative {abs(a - b) / abs(a):.2e})"]
    return [] if a == b else [f"{where}: numpy {a!r} != cupy {b!r}"]


def check_case(name: str, rows: int, case: dict[str, Any], chunk_rows: int = 65_536) -> list[str]:
    """Both backends' reports of one case: where they differ."""
    options = dict(case)
    data = options.pop("data", {})
    outputs = data.get("outputs", 1)
    table = table_of(rows, seed=rows, **data)
    target = "y" if outputs == 1 else ["y0", "y1"]
    pred = options.pop("pred", "pred" if outputs == 1 else ["p0", "p1"])
    reports = [
        evaluate(table, target, pred, backend=backend, chunk_rows=chunk_rows, **options).to_dict()
        for backend in ("numpy", "cupy")
    ]
    return [f"{name}, {rows} rows: {m}" for m in mismatches(*reports)]


def run_checks() -> list[str]:
    found = []
    for rows in CHECK_SIZES:
        for name, case in CASES.items():
            found += check_case(name, rows, case)
    for name in SMALL_CHUNKS:
        found += check_case(f"chunks of 1000 rows, {name}", 300_000, CASES[name], chunk_rows=1000)
    return found


class Budget:
    """Seconds left; a run whose rows extrapolate (linearly, from the last run of its kind) past them is skipped."""

    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds
        self.last: dict[str, tuple[int, float]] = {}

    def timed(self, kind: str, rows: int, source: Any, **options: Any) -> float | None:
        """Seconds to evaluate `source` (columns y and pred) with `options`; None where skipped."""
        if kind in self.last:
            before_rows, before_s = self.last[kind]
            if before_s * rows / before_rows > self.end - time.perf_counter():
                return None
        start = time.perf_counter()
        evaluate(source, "y", "pred", **options)
        seconds = time.perf_counter() - start
        self.last[kind] = (rows, seconds)
        return seconds


def run_timings(budget: Budget, max_rows: int, directory: Path) -> list[tuple[str, float | None, float | None]]:
    """(what, NumPy seconds, CuPy seconds) for each measurement."""
    out = []
    evaluate(table_of(200_000), "y", "pred", backend="cupy", ci=0.95, group_by="g")  # warm the kernel cache
    free = _device_bytes()
    rows = 1_000_000
    while rows <= max_rows and rows * 16 * 3 < _host_bytes() and (free is None or rows * 8 < free):
        rng = np.random.default_rng(1)
        target = rng.normal(size=rows)
        table = pa.table({"y": target, "pred": target + rng.standard_t(3, size=rows)})
        del target
        numpy_s = budget.timed("memory numpy", rows, table, backend="numpy")
        for chunk in (65_536, 1 << 22):
            cupy_s = budget.timed(f"memory cupy {chunk}", rows, table, backend="cupy", chunk_rows=chunk)
            out.append((f"full statistics, {rows:.0e} rows in memory (GPU chunks of {chunk} rows)", numpy_s, cupy_s))
        rows *= 10
    ci_rows = 1_000_000
    table = table_of(ci_rows).select(["y", "pred"])
    ci = [budget.timed(f"ci {b}", ci_rows, table, backend=b, ci=0.95, bootstrap=1000) for b in ("numpy", "cupy")]
    out.append(("--ci 0.95 --bootstrap 1000, 1e+06 rows", *ci))
    for fmt, file_rows in (("parquet", 50_000_000), ("csv", 10_000_000)):
        path = directory / f"large.{fmt}"
        _write(path, fmt, file_rows)
        times = [budget.timed(f"{fmt} {b}", file_rows, str(path), backend=b) for b in ("numpy", "cupy")]
        out.append((f"end to end, {fmt} of {file_rows:.0e} rows ({path.stat().st_size >> 20} MiB)", *times))
    return out


def _write(path: Path, fmt: str, rows: int) -> None:
    writer: Any = None
    rng = np.random.default_rng(2)
    for start in range(0, rows, 5_000_000):
        size = min(5_000_000, rows - start)
        target = rng.normal(size=size)
        batch = pa.table({"y": target, "pred": target + rng.standard_t(3, size=size)})
        if writer is None:
            writer = pq.ParquetWriter(path, batch.schema) if fmt == "parquet" else pacsv.CSVWriter(path, batch.schema)
        writer.write_table(batch, row_group_size=1_000_000) if fmt == "parquet" else writer.write_table(batch)
    writer.close()


def _device_bytes() -> int | None:
    cupy = backends.namespace("cupy")
    runtime = getattr(getattr(cupy, "cuda", None), "runtime", None)
    return None if runtime is None else int(runtime.memGetInfo()[0])


def _host_bytes() -> int:
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def print_table(lines: list[tuple[str, float | None, float | None]]) -> None:
    def shown(seconds: float | None) -> str:
        return "skipped" if seconds is None else f"{seconds:.3f}"

    print("| measurement | NumPy s | CuPy s | NumPy / CuPy |")
    print("| --- | ---: | ---: | ---: |")
    for what, numpy_s, cupy_s in lines:
        ratio = f"{numpy_s / cupy_s:.1f}x" if numpy_s and cupy_s else "-"
        print(f"| {what} | {shown(numpy_s)} | {shown(cupy_s)} | {ratio} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget-s", type=float, default=420.0, help="seconds for the timings (default 420)")
    parser.add_argument("--max-rows", type=int, default=1_000_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="where the large files go (default: a temporary one)")
    parser.add_argument("--checks-only", action="store_true")
    parser.add_argument("--fake", action="store_true", help="tests/gpu_support.py in place of CuPy (no GPU)")
    args = parser.parse_args()
    if args.fake:
        from tests.gpu_support import FakeDevice

        sys.modules["cupy"] = FakeDevice()  # (found as CuPy is, by `import cupy`)
    else:
        cupy = backends.namespace("cupy")
        print(f"device: {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}, CuPy {cupy.__version__}")
    start = time.perf_counter()
    found = run_checks()
    reports = len(CHECK_SIZES) * len(CASES) + len(SMALL_CHUNKS)
    seconds = time.perf_counter() - start
    print(f"checks: {reports} reports compared in {seconds:.1f} s, {len(found)} mismatches", flush=True)
    for line in found[:50]:
        print("MISMATCH", line)
    if not args.checks_only:
        with tempfile.TemporaryDirectory(dir=args.dir) as directory:
            print_table(run_timings(Budget(args.budget_s), args.max_rows, Path(directory)))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
