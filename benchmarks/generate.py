"""Seeded benchmark data: id (int), y (float), pred (float) in CSV, Parquet, .csv.gz and .csv.zst.

    python benchmarks/generate.py 5000000 [--out benchmarks/data] [--formats csv,parquet,gz,zst]
    python benchmarks/generate.py --files 200 50000  # a directory of 200 Parquet files of 50,000 rows

Files are cached by row count (`data/rows_5000000.csv`, ...) with a sidecar stamp; a file is made
again only when it is missing or the generator's parameters changed. The data is a pure function
of (SEED, rows): rows are drawn in fixed blocks of 2**20 from one seeded generator, so a file
never depends on how it was written.

pred is y plus Gaussian noise (sd 0.5: most |d| < 1, the quadratic branch) and, for 5% of rows,
an outlier (sd 5: mostly the linear branch), so both branches of Smooth L1 are exercised.
Floats are written at full precision (shortest round-trip), as a model's output usually is.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: bench.py imports this module and must stay a small process
    import pyarrow as pa

SEED = 20240611
BLOCK = 1 << 20  # rows per generated block; also pyarrow's default Parquet row-group size (1 Mi rows)
GENERATOR_VERSION = 1  # bump when the data changes, so cached files are remade
FORMATS = ("csv", "parquet", "gz", "zst")
SUFFIX = {"csv": ".csv", "parquet": ".parquet", "gz": ".csv.gz", "zst": ".csv.zst"}
DATA_DIR = Path(__file__).resolve().parent / "data"


def blocks(rows: int) -> Iterator[pa.Table]:
    """Yield the table in blocks of BLOCK rows: the same rows whatever the consumer does."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(SEED)
    start = 0
    while start < rows:
        n = min(BLOCK, rows - start)
        y = rng.normal(0.0, 10.0, n)
        noise = rng.normal(0.0, 0.5, n)
        outlier = rng.random(n) < 0.05
        noise[outlier] = rng.normal(0.0, 5.0, int(outlier.sum()))
        ids = np.arange(start, start + n, dtype=np.int64)
        yield pa.table({"id": ids, "y": y, "pred": y + noise})
        start += n


def path_for(rows: int, fmt: str, out: Path = DATA_DIR) -> Path:
    return out / f"rows_{rows}{SUFFIX[fmt]}"


def _stamp(rows: int, fmt: str) -> dict[str, object]:
    level = {"gz": 6, "zst": 3}.get(fmt)
    return {"generator": GENERATOR_VERSION, "seed": SEED, "rows": rows, "format": fmt, "level": level}


def _fresh(path: Path, stamp: dict[str, object]) -> bool:
    side = path.with_name(path.name + ".stamp.json")
    try:
        return path.exists() and json.loads(side.read_text()) == stamp
    except (OSError, ValueError):
        return False


def _commit(tmp: Path, path: Path, stamp: dict[str, object]) -> None:
    tmp.replace(path)
    path.with_name(path.name + ".stamp.json").write_text(json.dumps(stamp))


def write_csv(rows: int, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    tmp = path.with_name(path.name + ".tmp")
    schema = pa.schema([("id", pa.int64()), ("y", pa.float64()), ("pred", pa.float64())])
    options = pacsv.WriteOptions(batch_size=65536, quoting_style="none", quoting_header="none")  # plain `id,y,pred`
    with pacsv.CSVWriter(str(tmp), schema, write_options=options) as w:
        for table in blocks(rows):
            w.write_table(table)
    _commit(tmp, path, _stamp(rows, "csv"))


def write_parquet(rows: int, path: Path) -> None:
    import pyarrow.parquet as pq

    tmp = path.with_name(path.name + ".tmp")
    writer = None
    for table in blocks(rows):
        if writer is None:
            writer = pq.ParquetWriter(str(tmp), table.schema)  # defaults: snappy, 1 Mi-row row groups
        writer.write_table(table)
    assert writer is not None
    writer.close()
    _commit(tmp, path, _stamp(rows, "parquet"))


def dir_for(files: int, rows: int, out: Path = DATA_DIR) -> Path:
    return out / f"parquet_{files}x{rows}"


def write_parquet_dir(files: int, rows: int, path: Path) -> None:
    """The first files * rows rows of the same seeded stream, cut into `files` Parquet files of `rows`
    rows each (part-00000.parquet, ...; one row group each), written into a fresh directory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    pending: list[pa.Table] = []
    buffered = written = 0
    for table in blocks(files * rows):
        pending.append(table)
        buffered += table.num_rows
        while buffered >= rows:
            joined = pa.concat_tables(pending)
            pq.write_table(joined.slice(0, rows), tmp / f"part-{written:05d}.parquet")
            written += 1
            pending, buffered = [joined.slice(rows)], buffered - rows
    shutil.rmtree(path, ignore_errors=True)
    tmp.replace(path)
    stamp = path.with_name(path.name + ".stamp.json")
    stamp.write_text(json.dumps(_stamp(files * rows, f"parquet x{files}")))


def generate_dir(files: int, rows: int, out: Path = DATA_DIR, log=print) -> Path:
    """Make (or reuse) the directory of `files` Parquet files of `rows` rows; returns its path."""
    out.mkdir(parents=True, exist_ok=True)
    path = dir_for(files, rows, out)
    if not _fresh(path, _stamp(files * rows, f"parquet x{files}")):
        log(f"generating {path.name}/")
        write_parquet_dir(files, rows, path)
    return path


def write_gz(csv_path: Path, rows: int, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(csv_path, "rb") as src, open(tmp, "wb") as dst:
        if shutil.which("gzip"):
            subprocess.run(["gzip", "-6", "-n", "-c"], stdin=src, stdout=dst, check=True)
        else:
            with gzip.GzipFile(fileobj=dst, mode="wb", compresslevel=6, mtime=0) as gz:
                shutil.copyfileobj(src, gz, 1 << 20)
    _commit(tmp, path, _stamp(rows, "gz"))


def write_zst(csv_path: Path, rows: int, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    if shutil.which("zstd"):
        subprocess.run(["zstd", "-3", "-q", "-f", str(csv_path), "-o", str(tmp)], check=True)
    else:
        import zstandard

        with open(csv_path, "rb") as src, open(tmp, "wb") as dst:
            zstandard.ZstdCompressor(level=3).copy_stream(src, dst)
    _commit(tmp, path, _stamp(rows, "zst"))


def generate(rows: int, formats: tuple[str, ...] = FORMATS, out: Path = DATA_DIR, log=print) -> dict[str, Path]:
    """Make (or reuse) the files for `rows`; returns {format: path}."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {fmt: path_for(rows, fmt, out) for fmt in formats}
    csv_path = path_for(rows, "csv", out)
    need_csv = "csv" in formats or any(not _fresh(paths[f], _stamp(rows, f)) for f in ("gz", "zst") if f in formats)
    if need_csv and not _fresh(csv_path, _stamp(rows, "csv")):
        log(f"generating {csv_path.name}")
        write_csv(rows, csv_path)
    if "parquet" in formats and not _fresh(paths["parquet"], _stamp(rows, "parquet")):
        log(f"generating {paths['parquet'].name}")
        write_parquet(rows, paths["parquet"])
    if "gz" in formats and not _fresh(paths["gz"], _stamp(rows, "gz")):
        log(f"generating {paths['gz'].name}")
        write_gz(csv_path, rows, paths["gz"])
    if "zst" in formats and not _fresh(paths["zst"], _stamp(rows, "zst")):
        log(f"generating {paths['zst'].name}")
        write_zst(csv_path, rows, paths["zst"])
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", type=lambda s: int(float(s)), nargs="+", help="row counts (1e6 or 1000000)")
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated subset of csv,parquet,gz,zst")
    parser.add_argument("--files", type=int, help="a directory of this many Parquet files of ROWS rows each instead")
    args = parser.parse_args(argv)
    if args.files is not None:
        for rows in args.rows:
            print(f"parquet-dir\t{generate_dir(args.files, rows, args.out, log=lambda m: print(m, file=sys.stderr))}")
        return 0
    formats = tuple(f for f in args.formats.split(",") if f)
    unknown = set(formats) - set(FORMATS)
    if unknown:
        parser.error(f"unknown format(s): {', '.join(sorted(unknown))}")
    for rows in args.rows:
        for fmt, path in generate(rows, formats, args.out, log=lambda m: print(m, file=sys.stderr)).items():
            print(f"{fmt}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
