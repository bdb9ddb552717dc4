"""Streaming readers: every input becomes Arrow record batches of only the needed columns.

Delimited text and JSON Lines are cut into record-aligned blocks (`text`, `jsonl`) and each block is
parsed by Arrow's multi-threaded reader, so memory is bounded by the block size and a parse error can
be traced back to its exact row and line. Parquet and Arrow IPC are read batch by batch (`arrow`).
Every Arrow failure becomes an InputError that names the input. Here: opening a path, a URI or
standard input, and READERS, which names the opener of each format; `detect` tells the format and
compression, `fs` the filesystem.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import pyarrow as pa

from smoothl1_cli.errors import InputError
from smoothl1_cli.readers import fs, text
from smoothl1_cli.readers.arrow import open_ipc, open_parquet, source_from_table
from smoothl1_cli.readers.detect import EXTENSIONS, compression, is_data_file, named_format, sniff_format
from smoothl1_cli.readers.jsonl import open_jsonl
from smoothl1_cli.readers.numbers import beyond_exact_integers, first_unparsable, to_float64, to_int64
from smoothl1_cli.readers.source import READ_ERRORS, Inferred, Input, Prefixed, Source, describe
from smoothl1_cli.readers.text import BLOCK_BYTES, PARSE_BLOCK_BYTES, newline_counter, open_delimited, pread_counter

__all__ = [
    "BLOCK_BYTES", "EXTENSIONS", "PARSE_BLOCK_BYTES", "READERS", "TEXT_FORMATS", "TYPED_FORMATS", "Source",
    "beyond_exact_integers", "expand_inputs", "first_unparsable", "open_lazily", "open_source",
    "source_from_table", "to_float64", "to_int64",
]  # fmt: skip

TYPED_FORMATS = ("parquet", "ipc", "table")  # their schema, not a guess, says what is numeric
TEXT_FORMATS = ("csv", "tsv")  # delimited text: every value is text until parsed
READERS: dict[str, Callable[[Input], Source]] = {
    "csv": open_delimited,
    "tsv": open_delimited,
    "jsonl": open_jsonl,
    "parquet": open_parquet,
    "ipc": open_ipc,
}
_RANDOM_ACCESS = ("parquet", "ipc")  # read by seeking: from a stream (compressed, or a pipe) they are read into memory


def open_source(spec: str | Path, input_format: str | None = None) -> Source:
    """Open a path, a URI (or '-' for standard input), detect compression and format, read its header.

    A local file and an object in a store are read by the same code; a file below Hive-style
    `key=value/` directories also has a text column per key. Everything comes from `spec` alone, so
    a worker given the same string opens the same source."""
    given = str(spec)
    label = fs.redact(given) if fs.is_uri(given) else given  # credentials in a URI are never shown
    try:
        if given == "-":
            return _open_unseekable(label, sys.stdin.buffer, input_format)
        if fs.is_uri(given):
            file: _File = _StoreFile.of(label, given)
        else:
            path = Path(given)
            if path.is_dir():
                raise InputError(f"{label}: is a directory; pass the files in it")
            if not path.is_file():  # a FIFO, /dev/stdin, <(process substitution): read once, as a stream
                return _open_unseekable(label, open(path, "rb", buffering=0), input_format)
            file = _LocalFile(path.as_posix(), path.stat().st_size, path)
        return _with_partitions(_open_file(label, file, input_format), fs.hive_partitions(file.name))
    except FileNotFoundError as exc:
        raise InputError(f"{label}: no such file") from exc
    except PermissionError as exc:
        raise InputError(f"{label}: permission denied") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{label}: is a directory") from exc
    except READ_ERRORS + fs.client_errors() as exc:
        raise InputError(f"{label}: {describe(exc)}") from exc


class _File(Protocol):
    """A regular file, local or in a store: opened for random access (Parquet, IPC, the first bytes)
    or as a stream of its bytes, decompressed where `codec` says. Its `name` is its path with /
    between names: the extension tells the format, the directories Hive-style partitions."""

    @property
    def name(self) -> str: ...

    @property
    def size(self) -> int | None: ...

    def random_access(self) -> pa.NativeFile: ...

    def stream(self, codec: str | None) -> Any: ...

    def line_counter(self, raw: Any, codec: str | None) -> Callable[[int], int | None]: ...


@dataclass(frozen=True)
class _LocalFile:
    name: str
    size: int
    path: Path

    def random_access(self) -> pa.NativeFile:
        return pa.OSFile(str(self.path))

    def stream(self, codec: str | None) -> Any:
        """The bytes, decompressed in C++ (no Python in between) where `codec` says so."""
        if codec is None:
            return open(self.path, "rb", buffering=0)  # unbuffered: readinto goes straight into our blocks
        return pa.CompressedInputStream(pa.OSFile(str(self.path)), codec)

    def line_counter(self, raw: Any, codec: str | None) -> Callable[[int], int | None]:
        # Line numbers are counted in the very file being read (its descriptor), not whatever the
        # path names by the time an error needs one; a compressed file is decompressed again.
        return pread_counter(raw.fileno()) if codec is None else newline_counter(lambda: self.stream(codec))


@dataclass(frozen=True)
class _StoreFile:
    name: str
    size: int | None
    filesystem: Any  # a pyarrow.fs.FileSystem

    @staticmethod
    def of(label: str, uri: str) -> _StoreFile:
        """The object `uri` names (its filesystem kept per store: a bucket's files share connections)."""
        import pyarrow.fs as pafs

        filesystem, path = fs.resolve(uri)
        info = fs.stat(filesystem, path)
        if info.type == pafs.FileType.NotFound:
            raise InputError(f"{label}: no such file")
        if info.type == pafs.FileType.Directory:
            raise InputError(f"{label}: is a directory; pass the files in it")
        return _StoreFile(path, info.size, filesystem)

    def random_access(self) -> pa.NativeFile:
        return self.filesystem.open_input_file(self.name)

    def stream(self, codec: str | None) -> Any:
        if codec is None:  # read in our blocks, a request each
            return self.filesystem.open_input_stream(self.name, compression=None)
        # A codec asks for 64 KiB at a time: read ahead in text's blocks, not a request per 64 KiB.
        raw = self.filesystem.open_input_stream(self.name, compression=None, buffer_size=text.BLOCK_BYTES)
        return pa.CompressedInputStream(raw, codec)

    def line_counter(self, raw: Any, codec: str | None) -> Callable[[int], int | None]:
        return newline_counter(lambda: self.stream(codec))


def _open_file(label: str, file: _File, input_format: str | None) -> Source:
    """A regular file: its format from the extension (or the first bytes), its compression from the first bytes."""
    if file.size == 0:
        raise InputError(f"{label}: the file is empty")
    fmt = input_format or named_format(file.name)
    with file.random_access() as probe:
        head = probe.read(8)
    if input_format is None and sniff_format(head) in _RANDOM_ACCESS:
        fmt = sniff_format(head)  # Parquet or Arrow bytes under a text name: the bytes win
    codec = compression(head)
    if fmt in _RANDOM_ACCESS and codec is None:
        return READERS[fmt](Input(label, fmt, file.size, seekable=file.random_access))
    raw = file.stream(codec)
    source = _open_stream(
        label, Prefixed(raw), fmt, file.size, file.line_counter(raw, codec), lambda: file.stream(codec)
    )
    source.compressed = codec is not None
    return source


def _open_unseekable(label: str, raw: IO[bytes], input_format: str | None) -> Source:
    """Standard input, a FIFO, a device: bytes that can be read once, and not again for line numbers."""
    stream = Prefixed(raw)
    codec = compression(stream.peek(4))
    if codec:
        stream = Prefixed(pa.CompressedInputStream(pa.PythonFile(stream, mode="r"), codec))
    return _open_stream(label, stream, input_format, None, count_lines=None)


def _open_stream(
    label: str,
    stream: Prefixed,
    fmt: str | None,
    size: int | None,
    count_lines: Callable[[int], int | None] | None,
    open_again: Callable[[], IO[bytes]] | None = None,
) -> Source:
    """Text, or anything arriving as a stream (already decompressed): sniff the format if needed."""
    try:
        head = stream.peek(8)
        if not head:
            raise InputError(f"{label}: the input is empty")
        fmt = fmt or sniff_format(head)
        opener = READERS.get(fmt, open_delimited)  # (the Python API passes input_format unchecked)
        return opener(Input(label, fmt, size, stream, count_lines, open_again))
    except BaseException:
        stream.close()
        raise


def _with_partitions(source: Source, partitions: dict[str, str | None]) -> Source:
    """`source` with a constant text column per Hive-style `key=value/` directory above it, unless the
    file has a column of that name itself (then the file's is read)."""
    extra = {key: value for key, value in partitions.items() if key not in source.columns}
    if not extra:
        return source
    read = source.stream_batches

    def batches(columns: list[str], text: set[str], chunk_rows: int, groups: range | None) -> Iterator[pa.RecordBatch]:
        for batch in read([name for name in columns if name not in extra], text, chunk_rows, groups):
            fields = [pa.field(name, pa.string()) if name in extra else batch.schema.field(name) for name in columns]
            arrays = [
                pa.repeat(pa.scalar(extra[name], pa.string()), batch.num_rows) if name in extra else batch.column(name)
                for name in columns
            ]
            yield pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))

    source.columns = [*source.columns, *extra]
    source.types = {**source.types, **dict.fromkeys(extra, "string")}
    source.stream_batches = batches
    return source


def open_lazily(spec: str, input_format: str | None = None) -> Source:
    """open_source for one of many inputs: a file is opened for its header and closed again, and
    opened anew while its batches are read, so thousands of inputs never hold more than one
    descriptor each at a time. A stream (standard input, a FIFO) can be read once: it stays open."""
    probe = open_source(spec, input_format)
    if spec == "-" or not (fs.is_uri(spec) or Path(spec).is_file()):
        return probe
    probe.close()
    current: list[Source] = []

    def reopened() -> Source:
        close()
        current.append(open_source(spec, input_format))
        return current[-1]

    def close() -> None:
        while current:
            current.pop().close()

    def numeric() -> set[str]:
        try:
            return set(reopened().numeric)
        finally:
            close()

    def stream(columns: list[str], text: set[str], chunk_rows: int, groups: range | None) -> Iterator[pa.RecordBatch]:
        source = reopened()
        source.progress.extend(lazy.progress)
        source.rows_read.extend(lazy.rows_read)
        try:
            yield from source.stream_batches(columns, text, chunk_rows, groups)
        finally:
            close()

    known = probe.numeric if probe.format in TYPED_FORMATS else Inferred(numeric)  # text: inferred when asked
    lazy = Source(
        probe.label, probe.format, probe.columns, known, stream, probe.size, probe.rows, probe.compressed, probe.types,
        group_rows=probe.group_rows,
    )  # fmt: skip
    lazy.close, lazy.later_key = close, probe.later_key  # (probe's later_key reads the file anew)
    lazy.reopenable = True
    return lazy


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Paths and URIs as given; a directory becomes its data files and those of its Hive-style
    `key=value/` subdirectories, a glob pattern its matches (both sorted), on a store as on disk."""
    files: list[str] = []
    for spec in inputs:
        try:
            expanded = fs.expand(spec, is_data_file) if fs.is_uri(spec) else _expand_local(spec)
        except (pa.ArrowInvalid, OSError) + fs.client_errors() as exc:  # a directory or a store not to be listed
            raise InputError(f"{fs.redact(spec)}: {describe(exc)}") from exc
        if expanded is None:
            files.append(spec)
            continue
        kind, found = expanded
        if not found and kind == "directory":
            raise InputError(
                f"{fs.redact(spec)}: no data files in this directory (known endings: {', '.join(EXTENSIONS)})"
            )
        if not found:
            raise InputError(f"{fs.redact(spec)}: no files match this pattern")
        files += found
    return files


def _expand_local(spec: str) -> tuple[str, list[str]] | None:
    """fs.expand for a local path."""
    path = Path(spec)
    if spec != "-" and path.is_dir():
        return "directory", sorted(_dataset_files(path))
    if spec != "-" and any(char in spec for char in "*?[") and not path.exists():
        return "pattern", sorted({p for p in _glob(spec) if Path(p).is_file()})
    return None


def _dataset_files(directory: Path) -> Iterator[str]:
    """The data files in a directory and in its `key=value` subdirectories (not links to them: no cycles)."""
    for entry in directory.iterdir():
        if fs.is_partition(entry.name) and entry.is_dir() and not entry.is_symlink():
            yield from _dataset_files(entry)
        elif entry.is_file() and is_data_file(entry.name):
            yield str(entry)


def _glob(pattern: str) -> Iterator[str]:
    """glob.glob(pattern, recursive=True), except that `**` does not descend into symbolic links to
    directories (pathlib's default since Python 3.13): a link up the tree listed the same files
    again and again (40 times, to the kernel's limit), and two such links never ended."""
    parts = pattern.split(os.sep)
    first = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    base = os.sep.join(parts[:first]) or (os.sep if pattern.startswith(os.sep) else "")
    return _matches(base, parts[first:])


def _matches(base: str, parts: list[str]) -> Iterator[str]:
    """The paths under directory `base` (or the current one) that match the pattern's `parts`."""
    if not parts:
        yield base
        return
    part, rest = parts[0], parts[1:]
    if not glob.has_magic(part):
        path = os.path.join(base, part)
        if os.path.isdir(path) if rest else os.path.lexists(path):
            yield from _matches(path, rest)
        return
    try:
        with os.scandir(base or os.curdir) as scan:
            entries = [entry for entry in scan if part.startswith(".") or not entry.name.startswith(".")]
    except OSError:
        return
    if part == "**":  # this directory, and every one below it that is no link
        yield from _matches(base, rest)
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                yield from _matches(os.path.join(base, entry.name), parts)
            elif not rest:
                yield os.path.join(base, entry.name)
        return
    for entry in entries:
        if fnmatch.fnmatch(entry.name, part):
            yield from _matches(os.path.join(base, entry.name), rest)
