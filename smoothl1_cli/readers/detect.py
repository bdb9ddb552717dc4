"""What an input is: its format by extension or by its first bytes, its compression, its delimiter."""

from __future__ import annotations

from pathlib import PurePath, PurePosixPath

EXTENSIONS = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".arrow": "ipc",
    ".feather": "ipc",
    ".ipc": "ipc",
    ".arrows": "ipc",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
COMPRESSIONS = {".gz": "gzip", ".gzip": "gzip", ".bz2": "bz2", ".zst": "zstd", ".zstd": "zstd", ".lz4": "lz4"}
MAGIC = ((b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"BZh", "bz2"), (b"\x04\x22\x4d\x18", "lz4"))
DELIMITERS = (",", "\t", ";")


def named_format(name: str) -> str | None:
    """The format a file's name gives (a compression suffix aside); None for an unknown extension."""
    return EXTENSIONS.get(_strip_compression(PurePosixPath(name)).suffix.lower())


def is_data_file(name: str) -> bool:
    return named_format(name) is not None and not name.startswith(".")


def _strip_compression(path: PurePath) -> PurePath:
    return path.with_suffix("") if path.suffix.lower() in COMPRESSIONS else path


def compression(head: bytes) -> str | None:
    return next((codec for magic, codec in MAGIC if head.startswith(magic)), None)


def sniff_format(head: bytes) -> str:
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"ARROW1") or head.startswith(b"\xff\xff\xff\xff"):
        return "ipc"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return "jsonl"
    return "csv"


def sniff_delimiter(header: str, default: str) -> str:
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: (counts[d], d == default))
    return best if counts[best] else default
