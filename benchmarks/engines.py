"""The issue's speed targets for the statistics and the engines: one interleaved run, ratios first.

    bash benchmarks/run.sh engines [--rows 5000000] [--files 200] [--file-rows 50000] [--rounds 5]
                                   [--compare NAME=PATH/TO/OTHER/smoothl1 ...] [--no-write]

What it measures, each contender a separate process as in bench.py (same `run_once`: start-up and
imports count), the contenders of one input interleaved round by round (A B C A B C ...), each
figure the median of the per-round ratios smoothl1 / peer:

1. `smoothl1 eval FILE -t y -p pred -q` on a Parquet file of --rows rows (5 row groups at 5M) against
   DuckDB's avg(...) query and `pq.ParquetFile(FILE).read(columns=[y, pred])` plus the loss in NumPy,
   and against two floors: smoothl1's start-up alone (its imports), and that plus decoding the two
   columns row group by row group as its reader does; what is left above them is the evaluation;
2. the full report (`-f json`) against DuckDB computing the same statistics in one query: avg, sum,
   stddev_pop, min, max, approx_quantile at 0.5/0.9/0.95/0.99, the linear share, MAE, RMSE and the
   5 worst rows;
3. `smoothl1 eval DIR -t y -p pred -q` on --files Parquet files of --file-rows rows, also with
   `--workers 1` and `--workers 2`, against DuckDB over DIR/*.parquet and Polars'
   `scan_parquet(DIR/*.parquet).select(...).collect()`;
4. Dask: how long a local cluster (1 and 2 worker processes) takes to start, what one more piece
   costs (client.map of a no-op over 400 pieces against 1), and `smoothl1 eval DIR --engine dask
   --workers N` for N = 1, 2.

An option the installed smoothl1 does not take yet (`--workers`, `--engine`) is tried once on a
100-row file; if the command refuses it, that contender is skipped and the run says so. With
--compare NAME=PATH (the `smoothl1` of another install, say the commit before a change; repeatable),
that install's `-q` and full report run in the same rounds, and the tables give smoothl1 / NAME too.

Every contender prints its value and must agree with smoothl1's to a relative 1e-9 in every round.
The section between the ENGINES markers of BENCHMARKS.md is rewritten (the rest is kept); the raw
rounds go to benchmarks/data/engines_last_run.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bench
import generate
from bench import FULL, PY, QUIET, SMOOTHL1, SQL_EXPR, Contender, ContenderFailed, Trial, py

BEGIN = "<!-- BEGIN ENGINES: written by benchmarks/engines.py; everything up to END ENGINES is replaced on each run -->"
END = "<!-- END ENGINES -->"

# The full report's statistics in one DuckDB query; it prints the mean, which must equal smoothl1's.
FULL_QUERY = (
    "WITH t AS (SELECT id, y, pred, abs(pred - y) AS a, "
    "CASE WHEN abs(pred - y) < 1 THEN 0.5 * (pred - y) ^ 2 ELSE abs(pred - y) - 0.5 END AS loss "
    "FROM read_parquet($path)) "
    "SELECT avg(loss), sum(loss), stddev_pop(loss), min(loss), max(loss), "
    "approx_quantile(loss, [0.5, 0.9, 0.95, 0.99]), avg((a >= 1)::DOUBLE), avg(a), sqrt(avg(a * a)), "
    "max_by(struct_pack(id, y, pred, loss), loss, 5) FROM t"
)
GLOB = 'sys.argv[1] + "/*.parquet"'
ENGINE_CODE = {
    "duckdb_full": (
        f'import sys, duckdb; row = duckdb.sql("{FULL_QUERY}", params={{"path": sys.argv[1]}}).fetchall()[0]; '
        "print(repr(row[0]))"
    ),
    "duckdb_dir": (
        f'import sys, duckdb; q = "SELECT {SQL_EXPR} FROM read_parquet($path)"; '
        f'print(repr(duckdb.sql(q, params={{"path": {GLOB}}}).fetchall()[0][0]))'
    ),
    # Floors of `smoothl1 eval FILE -q`: its start-up (the modules a Parquet evaluation imports), then that
    # plus decoding the two columns row group by row group, as smoothl1's reader does (no statistics at all).
    "startup": "import smoothl1_cli.cli, smoothl1_cli.api, smoothl1_cli.render, pyarrow.parquet",
    "startup_read": (
        "import sys, smoothl1_cli.cli, smoothl1_cli.api, smoothl1_cli.render, pyarrow.parquet as pq; "
        "f = pq.ParquetFile(sys.argv[1]); "
        '[f.read_row_group(i, columns=["y", "pred"], use_threads=True) for i in range(f.num_row_groups)]'
    ),
    "polars_dir": (
        f"import sys, polars as pl; {bench.POLARS_EXPR}print(repr(pl.scan_parquet({GLOB}).select(e).collect().item()))"
    ),
}

# A local cluster of N worker processes: seconds to start (until every worker is up), then the cost of
# one more piece, from client.map of a no-op over 1 and over PIECES pieces (after one warm-up map).
PIECES = 400
DASK_CODE = (
    "import json, sys, time; from distributed import Client, LocalCluster; n = int(sys.argv[1]); "
    "t0 = time.perf_counter(); "
    "cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None); "
    "client = Client(cluster); client.wait_for_workers(n); start = time.perf_counter() - t0; "
    "noop = lambda i: i; client.gather(client.map(noop, range(8), pure=False)); "
    "t1 = time.perf_counter(); client.gather(client.map(noop, range(1), pure=False)); one = time.perf_counter() - t1; "
    f"t2 = time.perf_counter(); client.gather(client.map(noop, range({PIECES}), pure=False)); "
    "many = time.perf_counter() - t2; client.close(); cluster.close(); "
    f'print(json.dumps({{"start": start, "per_piece": (many - one) / ({PIECES} - 1)}}))'
)

TARGETS = {"DuckDB": 1.0, "pyarrow": 1.1, "DuckDB full": 1.0}  # peer: the limit on the median ratio


def smoothl1_argv(executable: str, *options: str) -> Callable[[str], list[str]]:
    return lambda path: [executable, "eval", path, "-t", "y", "-p", "pred", *options]


def engine(code_key: str) -> Callable[[str], list[str]]:
    return lambda path: [PY, "-c", ENGINE_CODE[code_key], path]


def other_install(spec: str) -> tuple[Contender, Contender]:
    """NAME=PATH: that smoothl1's -q and full report (keys "NAME -q" and "NAME")."""
    name, _, executable = spec.partition("=")
    if not name or not executable:
        raise SystemExit(f"--compare {spec}: write NAME=PATH/TO/smoothl1")
    return (
        Contender(f"{name} -q", f"{name}: smoothl1 eval -q", smoothl1_argv(executable, "-q")),
        Contender(name, f"{name}: smoothl1 eval -f json", smoothl1_argv(executable, "-f", "json"), FULL.parse),
    )


def make_dir(files: int, rows: int, log: Callable[[str], None]) -> Path:
    """generate.py --files in its own process, as bench.make_data: the harness stays small (see run_once)."""
    proc = subprocess.run([PY, str(bench.HERE / "generate.py"), str(rows), "--files", str(files)], capture_output=True,
                          text=True, check=False)  # fmt: skip
    for line in proc.stderr.splitlines():
        log(f"  {line}")
    if proc.returncode != 0:
        raise ContenderFailed(f"generate.py {rows} --files {files} failed:\n{proc.stderr[-2000:]}")
    return Path(proc.stdout.strip().split("\t", 1)[1])


def refusal(options: list[str], sample: Path) -> str | None:
    """Why `smoothl1 eval SAMPLE -q OPTIONS` fails (its last line of stderr), or None if it runs."""
    proc = subprocess.run(
        [SMOOTHL1, "eval", str(sample), "-t", "y", "-p", "pred", "-q", *options], capture_output=True, text=True
    )
    if proc.returncode == 0:
        return None
    lines = proc.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit status {proc.returncode}"


def optional(label: str, options: list[str], sample: Path, notes: list[str], log: Callable[[str], None]) -> bool:
    """Whether smoothl1 takes `options`; if not, a note that the contender was skipped, and why."""
    why = refusal(options, sample)
    if why is not None:
        notes.append(f"skipped `smoothl1 eval ... {shlex.join(options)}` ({label}): the command says: {why}")
        log(f"  skipped {label}: smoothl1 eval ... {shlex.join(options)}: {why}")
    return why is None


@dataclass
class DaskRun:
    workers: int
    start: list[float]
    per_piece: list[float]


def run_dask(rounds: int, log: Callable[[str], None]) -> list[DaskRun]:
    runs = [DaskRun(n, [], []) for n in (1, 2)]
    for _ in range(rounds):
        for run in runs:
            proc = subprocess.run([PY, "-c", DASK_CODE, str(run.workers)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise ContenderFailed(f"a local Dask cluster of {run.workers} failed:\n{proc.stderr[-2000:]}")
            measured = json.loads(proc.stdout.strip().splitlines()[-1])
            run.start.append(measured["start"])
            run.per_piece.append(measured["per_piece"])
    for run in runs:
        log(f"  Dask, {run.workers} worker(s): start {statistics.median(run.start):.2f}s, "
            f"{statistics.median(run.per_piece) * 1e3:.2f} ms a piece")  # fmt: skip
    return runs


# --- tables -----------------------------------------------------------------------------------------------------


def ratio_rows(trial: Trial, subjects: list[str], peers: list[str]) -> list[str]:
    keys = {c.key: c for c in trial.contenders}
    lines = []
    for subject in (s for s in subjects if s in keys):
        for peer in (p for p in peers if p in keys and p != subject):
            ratios = trial.ratios(peer, subject)
            med = statistics.median(ratios)
            limit = TARGETS.get(peer)
            target = "(context)" if limit is None else f"<= {limit:.1f}x"
            verdict = "" if limit is None else bench.verdict(med, limit)
            lines.append(
                f"| {trial.name} | {keys[subject].label} | {keys[peer].label} | **{med:.2f}x** | "
                f"{' '.join(f'{x:.2f}' for x in ratios)} | {target} | {verdict} |"
            )
    return lines


def seconds_rows(trial: Trial) -> list[str]:
    return [
        f"| {trial.name} | {c.label} | {trial.median_seconds(c.key):.3f} | {trial.median_cpu(c.key):.2f} | "
        f"{trial.peak_mb(c.key):.0f} |"
        for c in trial.contenders
    ]


def render(
    command: str, started: dt.datetime, rounds: int, info: dict[str, str], trials: list[tuple[Trial, list[str]]],
    others: list[str], dask: list[DaskRun], notes: list[str],
) -> str:  # fmt: skip
    out = [BEGIN, "", "## Statistics and engines: the issue's targets (benchmarks/engines.py)", ""]
    out += [
        f"Measured {started:%Y-%m-%d %H:%M} UTC by `{command}` ({rounds} interleaved rounds), on the machine "
        f"below ({info.get('cores (nproc)', '?')} cores, shared with other work: see the load average).",
        "",
        "| machine | |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in info.items()),
        "",
        "Median of the per-round ratios smoothl1 / peer (below 1.00x: smoothl1 is faster); a name before "
        "a colon is another install (--compare), measured in the same rounds.",
        "",
        "| input | smoothl1 | vs | ratio | per-round ratios | target | |",
        "| --- | --- | --- | ---: | --- | --- | --- |",
    ]
    for trial, subjects in trials:
        out += ratio_rows(trial, subjects, [c.key for c in trial.contenders if c.key not in subjects])
        out += ratio_rows(trial, ["smoothl1 -q", "smoothl1"], others)  # this install against the others
    out += ["", "| input | contender | median s | CPU s | peak MB |", "| --- | --- | ---: | ---: | ---: |"]
    for trial, _ in trials:
        out += seconds_rows(trial)
    if dask:
        out += [
            "",
            f"Dask local cluster (worker processes, 1 thread each): seconds until every worker is up, and the "
            f"cost of one more piece (client.map of a no-op over {PIECES} pieces against 1), medians.",
            "",
            "| workers | cluster start s | per piece ms |",
            "| ---: | ---: | ---: |",
            *(
                f"| {r.workers} | {statistics.median(r.start):.2f} | {statistics.median(r.per_piece) * 1e3:.2f} |"
                for r in dask
            ),
        ]
    if notes:
        out += ["", *(f"- {note}" for note in notes)]
    out += ["", "Commands, exactly as run (`FILE` and `DIR` are the inputs):", "", "```text"]
    seen: set[str] = set()
    for trial, _ in trials:
        for c in trial.contenders:
            cmd = shlex.join(c.argv("DIR" if trial.path.is_dir() else "FILE"))
            cmd = cmd.replace(PY, "python").replace(SMOOTHL1, "smoothl1")
            if cmd not in seen:
                seen.add(cmd)
                out.append(cmd)
    if dask:
        out.append(f"python -c {shlex.quote(DASK_CODE)} N".replace(PY, "python"))
    out += ["```", "", END]
    return "\n".join(out) + "\n"


# --- main -------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=lambda s: int(float(s)), default=5_000_000, help="rows of the file (5000000)")
    parser.add_argument("--files", type=int, default=200, help="Parquet files in the directory (200)")
    parser.add_argument("--file-rows", type=lambda s: int(float(s)), default=50_000, help="rows a file (50000)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument(
        "--compare", action="append", default=[], metavar="NAME=PATH", help="another install's smoothl1, also run"
    )
    parser.add_argument("--no-dask", action="store_true", help="leave out the Dask measurements")
    parser.add_argument("--no-write", action="store_true", help="print the results; leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    command = "bash benchmarks/run.sh engines" + (f" {shlex.join(sys.argv[1:])}" if argv is None else "")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = dt.datetime.now(dt.timezone.utc)
    info = bench.machine()
    bench.check_install(log)
    load_start = os.getloadavg()[0]
    sample = bench.make_data(100, ("parquet",), log)["parquet"]
    path = bench.make_data(args.rows, ("parquet",), log)["parquet"]
    directory = make_dir(args.files, args.file_rows, log)
    notes: list[str] = []
    installs = [other_install(spec) for spec in args.compare]
    others = [c.key for pair in installs for c in pair]

    quiet = [
        QUIET,
        *(q for q, _ in installs),
        Contender("DuckDB", "DuckDB avg(...) FROM read_parquet", py("duckdb_parquet")),
        Contender("pyarrow", "pq.ParquetFile.read(y, pred) + NumPy", py("pyarrow_parquet")),
        Contender("start-up", "floor: smoothl1's start-up (its imports)", engine("startup"), None),
        Contender("start-up + read", "floor: start-up + decoding y, pred by row group", engine("startup_read"), None),
    ]
    duckdb_full = Contender("DuckDB full", "DuckDB: same statistics, one query", engine("duckdb_full"))
    full = [FULL, *(f for _, f in installs), duckdb_full]
    many = [Contender("smoothl1 -q", "smoothl1 eval DIR -q", smoothl1_argv(SMOOTHL1, "-q"))]
    for workers in ("1", "2"):
        if optional(f"{workers} worker(s)", ["--workers", workers], sample, notes, log):
            many.append(
                Contender(f"-q --workers {workers}", f"smoothl1 eval DIR -q --workers {workers}",
                          smoothl1_argv(SMOOTHL1, "-q", "--workers", workers))
            )  # fmt: skip
    if not args.no_dask:
        for workers in ("1", "2"):
            options = ["--engine", "dask", "--workers", workers]
            if optional(f"Dask, {workers} worker(s)", options, sample, notes, log):
                many.append(
                    Contender(f"-q dask {workers}", f"smoothl1 eval DIR -q {shlex.join(options)}",
                              smoothl1_argv(SMOOTHL1, "-q", *options))
                )  # fmt: skip
    many += [Contender("DuckDB dir", "DuckDB avg(...) over DIR/*.parquet", engine("duckdb_dir")),
             Contender("Polars dir", "Polars scan_parquet(DIR/*.parquet) lazy", engine("polars_dir"))]  # fmt: skip
    name = bench.human_rows(args.rows)
    trials = [
        (Trial(f"{name} Parquet, -q", path, "parquet", args.rows, quiet), ["smoothl1 -q", *others]),
        (Trial(f"{name} Parquet, full report", path, "parquet", args.rows, full), ["smoothl1", *others]),
        (
            Trial(f"{args.files} Parquet files x {bench.human_rows(args.file_rows)}", directory, "parquet",
                  args.files * args.file_rows, many),
            [c.key for c in many if c.key.startswith(("smoothl1", "-q"))],
        ),
    ]  # fmt: skip

    log("warm-up: every contender once on the 100-row file")
    for trial, _ in trials[:2]:
        for c in trial.contenders:
            bench.run_once(c.argv(str(sample)), c.parse)
    try:
        for trial, _ in trials:
            log(f"{trial.name}: {args.rounds} rounds")
            trial.execute(args.rounds, log)
        dask = [] if args.no_dask else run_dask(args.rounds, log)
    except ContenderFailed as exc:
        log(f"BENCHMARK FAILED: {exc}")
        return 1
    info["load average (1 min) at start / end"] = f"{load_start:.2f} / {os.getloadavg()[0]:.2f}"
    raw = {
        "command": command,
        "started": started.isoformat(),
        "machine": info,
        "trials": [t.to_json() for t, _ in trials],
        "dask": [vars(r) for r in dask],
        "notes": notes,
    }
    (generate.DATA_DIR / "engines_last_run.json").write_text(json.dumps(raw, indent=1))
    section = render(command, started, args.rounds, info, trials, others, dask, notes)
    print(section)
    if not args.no_write:
        bench.write_markdown(section, BEGIN, END)
        log(f"wrote {bench.RESULTS_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
