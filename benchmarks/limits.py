"""Where the time goes: the floors smoothl1 cannot go below with pyarrow as its parser.

    benchmarks/.venv/bin/python benchmarks/limits.py benchmarks/data/rows_5000000.csv

Prints, for one CSV (and its .gz/.zst copies when present), the median of 3 runs of:
the interpreter start-up with `import numpy, pyarrow.csv`; Arrow parsing the file in smoothl1's
own 8 MiB blocks with both cores (the parse floor); Arrow decompressing the .gz/.zst copy; and
smoothl1's whole in-process evaluation (full report).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from smoothl1_cli import evaluate
from smoothl1_cli.readers import BLOCK_BYTES, PARSE_BLOCK_BYTES


def median_seconds(work: object, rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def parse_in_blocks(path: Path) -> None:
    data = path.read_bytes()
    header = data.index(b"\n") + 1
    names = data[: header - 1].decode().split(",")
    convert = pacsv.ConvertOptions(
        include_columns=["y", "pred"], column_types={"y": pa.float64(), "pred": pa.float64()}
    )
    read = pacsv.ReadOptions(column_names=names, use_threads=True, block_size=PARSE_BLOCK_BYTES)
    start = header
    while start < len(data):
        end = min(start + BLOCK_BYTES, len(data))
        end = data.rfind(b"\n", start, end) + 1 if end < len(data) else end
        pacsv.read_csv(pa.BufferReader(pa.py_buffer(data[start:end])), read_options=read, convert_options=convert)
        start = end


def decompress(path: Path, codec: str) -> None:
    stream = pa.CompressedInputStream(pa.OSFile(str(path)), codec)
    while stream.read(BLOCK_BYTES):
        pass


def main() -> None:
    csv = Path(sys.argv[1])
    startup = median_seconds(lambda: subprocess.run([sys.executable, "-c", "import numpy, pyarrow.csv"], check=True))
    print(f"start-up + import numpy, pyarrow.csv: {startup:.3f} s")
    print(f"Arrow parse of {csv.name} in 8 MiB blocks (2 cores): {median_seconds(lambda: parse_in_blocks(csv)):.3f} s")
    for suffix, codec in ((".gz", "gzip"), (".zst", "zstd")):
        compressed = csv.with_name(csv.name + suffix)
        if compressed.exists():
            seconds = median_seconds(lambda path=compressed, name=codec: decompress(path, name))
            print(f"Arrow {codec} decompression of {compressed.name} alone: {seconds:.3f} s")
    whole = median_seconds(lambda: evaluate(str(csv), "y", pred="pred"))
    print(f"smoothl1 evaluate({csv.name}) in-process, full report: {whole:.3f} s")


if __name__ == "__main__":
    main()
