"""Streaming readers: every input becomes Arrow record batches of only the needed columns.

Delimited text and JSON Lines are cut into record-aligned blocks here and each block is
parsed by Arrow's multi-threaded reader, so memory is bounded by the block size and a
parse error can be traced back to its exact row and line. Parquet and Arrow IPC are read
batch by batch. Every Arrow failure becomes an InputError that names the input.
"""

from __future__ import annotations

import contextlib
import csv
import fnmatch
import glob
import io
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath
from typing import IO, Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from smoothl1_cli.errors import InputError
from smoothl1_cli.readers import fs

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
TYPED_FORMATS = ("parquet", "ipc", "table")  # their schema, not a guess, says what is numeric
TEXT_FORMATS = ("csv", "tsv")  # delimited text: every value is text until parsed
COMPRESSIONS = {".gz": "gzip", ".gzip": "gzip", ".bz2": "bz2", ".zst": "zstd", ".zstd": "zstd", ".lz4": "lz4"}
MAGIC = ((b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"BZh", "bz2"), (b"\x04\x22\x4d\x18", "lz4"))
BLOCK_BYTES = 8 << 20  # text is parsed in record-aligned blocks of about this size (measured best: 4-8 MiB)
PARSE_BLOCK_BYTES = 1 << 20  # Arrow's own unit of parallel parsing within a block
FIRST_BLOCK_BYTES = 256 << 10
MAX_RECORD_BYTES = 64 << 20  # a longer line is refused rather than held in memory
SNIFF_BYTES = 1 << 20
ROW_GROUP_BYTES = 256 << 20  # a Parquet row group whose needed columns decode to more is streamed
DELIMITERS = (",", "\t", ";")
_NUMERIC = (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal)
_ProgressFn = Callable[[int], None]
_READ_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError, EOFError)


def is_numeric(type_: pa.DataType) -> bool:
    """Whether a column of this type can be read as float64 without losing its meaning."""
    return any(check(type_) for check in _NUMERIC)


_NUMPY_TYPES: dict[pa.DataType, np.dtype[Any]] = {
    pa.float64(): np.dtype(np.float64),
    pa.float32(): np.dtype(np.float32),
    **{
        getattr(pa, f"{sign}int{bits}")(): np.dtype(f"{sign}int{bits}")
        for sign in ("", "u")
        for bits in (8, 16, 32, 64)
    },
}


def _values(array: pa.Array) -> np.ndarray[Any, Any]:
    """The array's values as NumPy sees them in Arrow's buffer (nulls hold anything); no copy."""
    dtype = _NUMPY_TYPES[array.type]
    data = array.buffers()[1]
    if data is None or len(array) == 0:
        return np.zeros(0, dtype=dtype)
    return np.frombuffer(data, dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize)


def _null_mask(array: pa.Array) -> np.ndarray[Any, Any]:
    """True where the array holds a null, from its validity bitmap."""
    bits = np.unpackbits(np.frombuffer(array.buffers()[0], dtype=np.uint8), bitorder="little")
    mask: np.ndarray[Any, Any] = bits[array.offset : array.offset + len(array)] == 0
    return mask


def to_float64(array: pa.Array | pa.ChunkedArray) -> np.ndarray[Any, Any]:
    """A float64 NumPy view or copy of a numeric Arrow array, nulls as NaN.

    Plain floats and integers go straight from Arrow's buffers (no pyarrow.compute, which costs
    start-up time, and no to_numpy(), which can import pandas); other numeric types are cast, and
    so is text (a numeric column that is also --id or --group-by is read as text), trimmed first.
    """
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.type in _NUMPY_TYPES:
        values = _values(array)
        if array.type != pa.float64() or array.null_count:
            values = values.astype(np.float64)  # integers beyond 2**53 round (and are reported)
        if array.null_count:
            values[_null_mask(array)] = np.nan
        return values
    import pyarrow.compute as pc

    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        array = _trim_blanks(array)
    return to_float64(pc.cast(array, pa.float64(), safe=False))


def _trim_blanks(text: pa.Array) -> pa.Array:
    """Text without the spaces and tabs around it: ' 7' is 7, as Arrow's CSV reader reads numbers (which
    trims only those: a no-break space before a digit is no number to it, so it is none here either)."""
    import pyarrow.compute as pc

    return pc.utf8_trim(text, characters=" \t")


ROUNDED_INTEGERS = b"smoothl1:integers beyond 2**53"  # field metadata: text held such integers


def beyond_exact_integers(batch: pa.RecordBatch, name: str) -> bool:
    """Whether column `name` holds an integer that float64 cannot represent exactly (|v| > 2**53):
    in an integer column, or in text that the reader parsed to float64 (and marked so)."""
    metadata = batch.schema.field(name).metadata
    if metadata and ROUNDED_INTEGERS in metadata:
        return True
    array = batch.column(name)
    if not pa.types.is_integer(array.type) or array.type.bit_width < 54 or len(array) == 0:
        return False
    import pyarrow.compute as pc

    extremes = pc.min_max(array)
    low, high = extremes["min"].as_py(), extremes["max"].as_py()
    return low is not None and max(abs(low), abs(high)) > 2**53


def to_int64(array: pa.Array) -> np.ndarray[Any, Any]:
    """An int64 NumPy array of an integer Arrow array without nulls."""
    return _values(array).astype(np.int64, copy=False)


class _Inferred(AbstractSet[str]):
    """A set worked out on first use: a CSV's numeric columns cost a parse that --pred makes unneeded."""

    def __init__(self, compute: Callable[[], set[str]]) -> None:
        self._compute = compute
        self._value: set[str] | None = None

    def _get(self) -> set[str]:
        if self._value is None:
            self._value = self._compute()
        return self._value

    def __contains__(self, item: object) -> bool:
        return item in self._get()

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    @classmethod
    def _from_iterable(cls, items: Any) -> set[str]:  # type: ignore[override]  # what a - b and a | b build
        return set(items)


@dataclass
class Source:
    """One opened input: its columns, which of them are numeric, and a way to stream them."""

    label: str  # the path as the user gave it, or <stdin>
    format: str
    columns: list[str]
    numeric: AbstractSet[str]
    stream_batches: Callable[[list[str], set[str], int, range | None], Iterator[pa.RecordBatch]]
    size: int | None = None  # bytes on disk, for the progress bar
    rows: int | None = None  # from a Parquet or IPC footer: then progress counts rows, not bytes
    compressed: bool = False  # progress counts decompressed bytes: more than `size`
    types: dict[str, str] = field(default_factory=dict)  # Arrow type names, where the format has a schema
    progress: list[_ProgressFn] = field(default_factory=list)
    rows_read: list[_ProgressFn] = field(default_factory=list)  # text: rows parsed (progress counts bytes)
    close: Callable[[], None] = lambda: None
    later_key: Callable[[str], bool] = lambda name: False  # JSON Lines: a key first seen after the sample
    group_rows: tuple[int, ...] = ()  # Parquet: the rows of each row group, from the footer
    reopenable: bool = False  # a file, opened anew by its label wherever a piece of it is read

    def has_column(self, name: str) -> bool:
        """Whether the input has column `name`. The columns of JSON Lines are the keys of its first
        MiB; a key that first appears later is looked for in the rest of the file when a column
        is named, and joins the columns if found."""
        if name not in self.columns and self.later_key(name):
            self.columns.append(name)
        return name in self.columns

    def batches(
        self, columns: list[str], text: set[str], chunk_rows: int, groups: range | None = None
    ) -> Iterator[pa.RecordBatch]:
        """Record batches of exactly `columns`, in order; delimited text parses all but `text` as float64.
        `groups` reads only those row groups (of `group_rows`); None reads everything.

        Arrow errors become InputErrors that name the input.
        """
        try:
            yield from self.stream_batches(columns, text, chunk_rows, groups)
        except _READ_ERRORS + fs.client_errors() as exc:
            raise InputError(f"{self.label}: {_describe(exc)}") from exc


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
    except _READ_ERRORS + fs.client_errors() as exc:
        raise InputError(f"{label}: {_describe(exc)}") from exc


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
        return _pread_counter(raw.fileno()) if codec is None else _newline_counter(lambda: self.stream(codec))


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
        # A codec asks for 64 KiB at a time: read ahead in blocks, not a request per 64 KiB.
        raw = self.filesystem.open_input_stream(self.name, compression=None, buffer_size=BLOCK_BYTES)
        return pa.CompressedInputStream(raw, codec)

    def line_counter(self, raw: Any, codec: str | None) -> Callable[[int], int | None]:
        return _newline_counter(lambda: self.stream(codec))


def _open_file(label: str, file: _File, input_format: str | None) -> Source:
    """A regular file: its format from the extension (or the first bytes), its compression from the first bytes."""
    if file.size == 0:
        raise InputError(f"{label}: the file is empty")
    fmt = input_format or EXTENSIONS.get(_strip_compression(PurePosixPath(file.name)).suffix.lower())
    with file.random_access() as probe:
        head = probe.read(8)
    if input_format is None and _sniff_format(head) in ("parquet", "ipc"):
        fmt = _sniff_format(head)  # Parquet or Arrow bytes under a text name: the bytes win
    codec = _compression(head)
    if fmt in ("parquet", "ipc") and codec is None:
        return _open_random_access(label, file.random_access(), fmt, file.size)
    raw = file.stream(codec)
    source = _open_stream(
        label, _Prefixed(raw), fmt, file.size, file.line_counter(raw, codec), lambda: file.stream(codec)
    )
    source.compressed = codec is not None
    return source


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

    known = probe.numeric if probe.format in TYPED_FORMATS else _Inferred(numeric)  # text: inferred when asked
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
            expanded = fs.expand(spec, _is_data_file) if fs.is_uri(spec) else _expand_local(spec)
        except (pa.ArrowInvalid, OSError) + fs.client_errors() as exc:  # a directory or a store not to be listed
            raise InputError(f"{fs.redact(spec)}: {_describe(exc)}") from exc
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
    if spec != "-" and not path.exists() and any(char in spec for char in "*?["):
        return "pattern", sorted({p for p in _glob(spec) if Path(p).is_file()})
    return None


def _dataset_files(directory: Path) -> Iterator[str]:
    """The data files in a directory and in its `key=value` subdirectories (not links to them: no cycles)."""
    for entry in directory.iterdir():
        if fs.is_partition(entry.name) and entry.is_dir() and not entry.is_symlink():
            yield from _dataset_files(entry)
        elif entry.is_file() and _is_data_file(entry.name):
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


def _is_data_file(name: str) -> bool:
    return _strip_compression(PurePosixPath(name)).suffix.lower() in EXTENSIONS and not name.startswith(".")


def source_from_table(table: pa.Table, label: str) -> Source:
    """A Source over an in-memory Arrow table (the Python API's DataFrame and Table inputs)."""
    numeric = _numeric_of(table.schema)

    def stream(columns: list[str], text: set[str], chunk_rows: int, groups: range | None) -> Iterator[pa.RecordBatch]:
        yield from table.select(columns).to_batches(max_chunksize=chunk_rows)

    return Source(label, "table", list(table.column_names), numeric, stream, types=_types_of(table.schema))


def _strip_compression(path: PurePath) -> PurePath:
    return path.with_suffix("") if path.suffix.lower() in COMPRESSIONS else path


def _compression(head: bytes) -> str | None:
    return next((codec for magic, codec in MAGIC if head.startswith(magic)), None)


class _Prefixed(io.RawIOBase):
    """A byte stream whose first bytes can be looked at before it is read."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self._raw = raw
        self._head = b""

    def peek(self, n: int) -> bytes:
        while len(self._head) < n:
            more = self._raw.read(n - len(self._head))
            if not more:
                break
            self._head += more
        return self._head[:n]

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._head:
            out, self._head = (self._head, b"") if n < 0 or n >= len(self._head) else (self._head[:n], self._head[n:])
            if n < 0:
                out += self._raw.read()
            return out
        return self._raw.read(n)

    def readinto(self, buffer: Any) -> int:
        if not self._head and hasattr(self._raw, "readinto"):
            return int(self._raw.readinto(buffer) or 0)  # straight into the caller's buffer
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._raw is not sys.stdin.buffer:
            self._raw.close()
        super().close()


def _open_unseekable(label: str, raw: IO[bytes], input_format: str | None) -> Source:
    """Standard input, a FIFO, a device: bytes that can be read once, and not again for line numbers."""
    stream = _Prefixed(raw)
    codec = _compression(stream.peek(4))
    if codec:
        stream = _Prefixed(pa.CompressedInputStream(pa.PythonFile(stream, mode="r"), codec))
    return _open_stream(label, stream, input_format, None, count_lines=None)


def _open_stream(
    label: str,
    stream: _Prefixed,
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
        fmt = fmt or _sniff_format(head)
        if fmt in ("parquet", "ipc"):  # both need to seek: buffer the (decompressed) bytes
            with stream:
                return _open_random_access(label, pa.BufferReader(arrow_owned(stream.read())), fmt, size)
        if fmt == "jsonl":
            reader = _TextReader(label, stream, quoted=False, count_lines=count_lines)
            source = _open_jsonl(label, reader, size, open_again)
        else:
            source = _open_delimited(label, stream, fmt, size, count_lines)
    except BaseException:
        stream.close()
        raise
    source.close = stream.close
    return source


def _sniff_format(head: bytes) -> str:
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"ARROW1") or head.startswith(b"\xff\xff\xff\xff"):
        return "ipc"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return "jsonl"
    return "csv"


def arrow_owned(data: bytes | bytearray | memoryview) -> pa.Buffer:
    """A copy of `data` in memory that Arrow allocated: the only kind of memory handed to Arrow's readers.

    With use_threads, an Arrow worker thread may drop the last reference to the bytes it parsed after
    the call returned, even while the interpreter is shutting down. A buffer that wraps a Python object
    must take the GIL to release it, which aborts the process there ('terminate called without an
    active exception', exit 134). Memory of Arrow's own pool is freed without Python. The copy costs
    about 1 ms per 8 MiB block, a few per cent of parsing it.
    """
    source = memoryview(data).cast("B")
    buffer = pa.allocate_buffer(source.nbytes)
    memoryview(buffer).cast("B")[:] = source
    return buffer


def _open_random_access(label: str, file: pa.NativeFile, fmt: str, size: int | None) -> Source:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(file)
        schema = parquet.schema_arrow

        def parquet_batches(
            columns: list[str], text: set[str], chunk_rows: int, groups: range | None
        ) -> Iterator[pa.RecordBatch]:
            metadata = parquet.metadata
            leaves = [metadata.schema.column(i).path.split(".")[0] for i in range(metadata.num_columns)]
            wanted = [i for i, top in enumerate(leaves) if top in columns]  # a struct's leaves count too
            for group in range(metadata.num_row_groups) if groups is None else groups:
                row_group = metadata.row_group(group)
                encoded = sum(row_group.column(i).total_uncompressed_size for i in wanted)
                decoded = row_group.num_rows * 8 * len(wanted)  # dictionaries and RLE can hide this much
                if max(encoded, decoded) <= ROW_GROUP_BYTES:
                    # A whole row group decodes its columns in parallel: several times faster than batches.
                    batches: Iterator[pa.RecordBatch] = iter(
                        parquet.read_row_group(group, columns=columns, use_threads=True).to_batches()
                    )
                else:  # a huge row group is streamed, to bound memory
                    batches = parquet.iter_batches(batch_size=chunk_rows, row_groups=[group], columns=columns)
                for batch in batches:
                    yield batch.select(columns)
                    for report in source.progress:
                        report(batch.num_rows)

        source = Source(
            label, fmt, schema.names, _numeric_of(schema), parquet_batches, size, parquet.metadata.num_rows,
            types=_types_of(schema), close=file.close,
            group_rows=tuple(parquet.metadata.row_group(i).num_rows for i in range(parquet.metadata.num_row_groups)),
        )  # fmt: skip
        return source
    import pyarrow.ipc as ipc

    try:
        reader: Any = ipc.open_file(file)
        batch_iter: Callable[[range | None], Iterator[pa.RecordBatch]] = lambda groups: (  # noqa: E731
            reader.get_batch(i) for i in (range(reader.num_record_batches) if groups is None else groups)
        )
    except pa.ArrowInvalid:
        file.seek(0)
        reader = ipc.open_stream(file)
        batch_iter = lambda groups: iter(reader)  # noqa: E731  # a stream has no footer, so no pieces
    schema = reader.schema

    def ipc_batches(
        columns: list[str], text: set[str], chunk_rows: int, groups: range | None
    ) -> Iterator[pa.RecordBatch]:
        for batch in batch_iter(groups):
            yield from pa.Table.from_batches([batch.select(columns)]).to_batches(max_chunksize=chunk_rows)
            for report in source.progress if rows is not None else ():  # rows of a stream: no total to count to
                report(batch.num_rows)

    rows = reader.count_rows() if isinstance(reader, ipc.RecordBatchFileReader) else None  # a stream has no footer
    source = Source(
        label, fmt, schema.names, _numeric_of(schema), ipc_batches, size, rows, types=_types_of(schema),
        close=file.close,
    )  # fmt: skip
    return source


def _numeric_of(schema: pa.Schema) -> set[str]:
    return {f.name for f in schema if is_numeric(f.type)}


def _types_of(schema: pa.Schema) -> dict[str, str]:
    return {f.name: str(f.type) for f in schema}


@dataclass
class _TextReader:
    """Cuts a byte stream into record-aligned blocks; knows the rows and bytes before each.

    Line numbers are only needed for error messages, so they are counted then, by reading the
    input again up to the block (`count_lines`; None where the input cannot be read twice).
    """

    label: str
    stream: _Prefixed
    quoted: bool  # whether a quote can hide a newline (delimited text), or not (JSON Lines)
    bytes_before: int = 0  # of the (decompressed) stream, before the current block: header included
    rows_before: int = 0
    count_lines: Callable[[int], int | None] | None = None  # None: count as we go (input read once)
    newlines_before: int = 0  # counted as we go, where count_lines is None
    progress: list[_ProgressFn] = field(default_factory=list)
    rows_read: list[_ProgressFn] = field(default_factory=list)

    @property
    def lines_before(self) -> int | None:
        if self.count_lines is None:
            return self.newlines_before
        return self.count_lines(self.bytes_before)

    def where(self, row: int, line: int | None) -> str:
        """'row R (line L)' for a block's row-th record ending on its line-th line; the line if known."""
        before = None if line is None else self.lines_before
        if before is None or line is None:
            return f"row {self.rows_before + row}"
        return f"row {self.rows_before + row} (line {before + line})"

    def blocks(self) -> Iterator[memoryview]:
        """Record-aligned blocks of about BLOCK_BYTES: one read into a fresh buffer, no other copy.

        The first blocks are smaller (doubling up to BLOCK_BYTES), so a small file never pays for
        a big buffer's page faults. A record that outgrows its buffer doubles it (so each byte is
        searched for a boundary a bounded number of times), but never past MAX_RECORD_BYTES + 1:
        a record that has not ended there is refused before more of it is held.
        """
        carry = b""
        size = FIRST_BLOCK_BYTES
        while True:
            buffer = bytearray(len(carry) + min(max(size, len(carry)), MAX_RECORD_BYTES + 1 - len(carry)))
            size = min(size * 2, BLOCK_BYTES)
            buffer[: len(carry)] = carry
            view = memoryview(buffer)
            got = _read_into(self.stream, view[len(carry) :])
            for report in self.progress:
                report(got)
            end = len(carry) + got
            if got == 0:
                if carry.strip():
                    yield memoryview(carry)
                return
            cut = _last_boundary(buffer, end, self.quoted)
            if cut <= 0:
                if end > MAX_RECORD_BYTES:
                    raise InputError(self._too_long(buffer, end))
                carry = bytes(view[:end])
                continue
            carry = bytes(view[cut:end])
            yield view[:cut]

    def _too_long(self, buffer: bytes | bytearray, end: int) -> str:
        lines = self.lines_before
        unclosed = self.quoted and buffer.find(b'"', 0, end) >= 0
        return (
            f"{self.label}: {'a line' if lines is None else f'line {lines + 1}'} is longer than "
            f"{MAX_RECORD_BYTES >> 20} MiB without a line break"
            + (" outside quotes (an unclosed quote?)" if unclosed else "")
            + f"; is this really {'delimited text' if self.quoted else 'JSON Lines'}?"
        )

    def parsed(self, parse: Callable[[memoryview], pa.Table]) -> Iterator[pa.Table]:
        """Each block parsed, with the rows and bytes before it kept up to date for error messages."""
        for block in self.blocks():
            table = parse(block)
            yield table
            for report in self.rows_read:
                report(table.num_rows)
            self.rows_before += table.num_rows
            self.bytes_before += len(block)
            if self.count_lines is None:  # an input we cannot read again: one count now, a few ms a block
                owner: Any = block.obj
                self.newlines_before += owner.count(b"\n", 0, block.nbytes)


def _read_into(stream: _Prefixed, view: memoryview) -> int:
    """Fill `view` from the stream (several reads where a pipe delivers less); the bytes read."""
    filled = 0
    while filled < len(view):
        got = stream.readinto(view[filled:])
        if not got:
            break
        filled += got
    return filled


def _pread_counter(descriptor: int) -> Callable[[int], int | None]:
    """Counts the newlines in the first `size` bytes of an open file, without moving its position."""

    def count(size: int) -> int | None:
        lines, offset = 0, 0
        while offset < size:
            data = os.pread(descriptor, min(size - offset, BLOCK_BYTES), offset)
            if not data:
                break
            lines += data.count(b"\n")
            offset += len(data)
        return lines

    return count


def _newline_counter(open_again: Callable[[], IO[bytes]]) -> Callable[[int], int | None]:
    """Counts the newlines in the first `size` bytes of an input that can be opened again."""

    def count(size: int) -> int | None:
        lines = 0
        with open_again() as stream:
            while size > 0:
                data = stream.read(min(size, BLOCK_BYTES))
                if not data:
                    break
                lines += data.count(b"\n")
                size -= len(data)
        return lines

    return count


_SEPARATORS = np.isin(np.arange(256), list(b",\t;\n\r"))  # by byte value: one lookup, not five comparisons


def _field_starts(buffer: np.ndarray[Any, Any], positions: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Which positions begin a field: the block's first byte, or one after a separator or line break."""
    starts: np.ndarray[Any, Any] = _SEPARATORS[buffer[positions - 1]] | (positions == 0)  # (-1: the last byte)
    return starts


def _quoted_fields(data: bytes | bytearray | memoryview, end: int) -> bool:
    """Whether data[:end] has a quote that opens a field (at a line's or field's start): only then
    can a newline be inside quotes. A quote within a field (12" pipe) is just a character."""
    owner: Any = data.obj if isinstance(data, memoryview) else data
    if owner.find(b'"', 0, end) < 0:
        return False
    buffer = np.frombuffer(owner, dtype=np.uint8, count=end)
    return bool(_field_starts(buffer, np.flatnonzero(buffer == ord('"'))).any())


def _last_boundary(data: bytes | bytearray, end: int, quoted: bool) -> int:
    """Index just past the last newline in data[:end] that ends a record (not one inside quotes).

    Where every quoted field is well formed, quote parity tells (a "" escape keeps it): from the
    last newline back, each one inside quotes sends the search to before the quote that opened
    them. A quote inside an unquoted field (12") would throw parity off; where the quotes that
    parity takes for openings are neither at a field's start nor the second half of a "" escape,
    the fields are lexed instead, as the CSV reader does.
    """
    last = data.rfind(b"\n", 0, end)
    if not quoted or last < 0 or not _quoted_fields(data, end):
        return last + 1
    buffer = np.frombuffer(data, dtype=np.uint8, count=end)
    quotes = np.flatnonzero(buffer == ord('"'))
    openings = quotes[0::2]
    regular = _field_starts(buffer, openings)
    regular[1:] |= openings[1:] == quotes[1::2][: openings.size - 1] + 1  # "" inside quotes
    if not regular.all():
        return _lexed_boundary(data, end)
    while last >= 0:
        before = int(np.searchsorted(quotes, last))  # an odd number of quotes before it: inside quotes
        if before % 2 == 0:
            break
        last = data.rfind(b"\n", 0, int(quotes[before - 1]))  # so look before they opened
    return last + 1


# A quoted field: a quote at a field's start, to its closing quote ("" escapes included) or the end.
_QUOTED_FIELD = re.compile(rb'(?<![^,\t;\n\r])"[^"]*(?:""[^"]*)*"?')


def _lexed_boundary(data: bytes | bytearray, end: int) -> int:
    """_last_boundary where quotes also occur inside unquoted fields: one pass of a regular
    expression over the quoted fields, keeping the last newline found between them."""
    last, position = -1, 0
    for field_ in _QUOTED_FIELD.finditer(data, 0, end):
        last = max(last, data.rfind(b"\n", position, field_.start()))
        position = field_.end()
    return max(last, data.rfind(b"\n", position, end)) + 1


def _split_header(stream: _Prefixed, label: str) -> tuple[str, int, int]:
    """The header line of delimited text (BOM removed; ended by LF, CRLF or a lone CR), the bytes it
    took and the newlines among them."""
    head = bytearray()
    while True:  # search only what each read added: a header with no line break costs linear time
        searched = max(len(head) - 1, 0)
        more = stream.read(1 << 20)
        if not more:
            break
        head += more
        if head.find(b"\n", searched) >= 0 or head.find(b"\r", searched, len(head) - 1) >= 0:
            break
        if len(head) > MAX_RECORD_BYTES:
            raise InputError(
                f"{label}: the first line is longer than {MAX_RECORD_BYTES >> 20} MiB; is this delimited text?"
            )
    end = min((i for i in (head.find(b"\n"), head.find(b"\r")) if i >= 0), default=len(head))
    skip = 2 if head[end : end + 2] == b"\r\n" else 1
    line, rest = head[:end], head[end + skip :]
    stream._head = bytes(rest) + stream._head  # give back what followed the header
    line = line.removeprefix(b"\xef\xbb\xbf")
    if not line.strip():
        raise InputError(f"{label}: the first line is empty; expected a header with column names")
    if b"\x00" in line:
        raise InputError(
            f"{label}: binary data where a header line was expected; pass --input-format if this is not text"
        )
    newlines = head.count(b"\n", end, end + skip)
    try:
        return line.decode("utf-8"), end + skip, newlines
    except UnicodeDecodeError:
        return line.decode("latin-1"), end + skip, newlines


def _open_delimited(
    label: str, stream: _Prefixed, fmt: str | None, size: int | None, count_lines: Callable[[int], int | None] | None
) -> Source:
    header, header_bytes, header_newlines = _split_header(stream, label)
    delimiter = _sniff_delimiter(header, default="\t" if fmt == "tsv" else ",")
    names = next(csv.reader([header], delimiter=delimiter))
    names = [name.strip() for name in names]
    _check_names(label, names)
    reader = _TextReader(label, stream, True, header_bytes, 0, count_lines, header_newlines)
    parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    numeric = _Inferred(lambda: _infer_numeric(_sample(reader), names, parse))

    def batches(columns: list[str], text: set[str], chunk_rows: int, groups: range | None) -> Iterator[pa.RecordBatch]:
        wanted = {name: pa.string() if name in text else pa.float64() for name in columns}
        for table in reader.parsed(lambda block: _parse_csv_block(label, block, names, delimiter, wanted, reader)):
            yield from table.select(columns).to_batches()

    source = Source(label, "tsv" if delimiter == "\t" else "csv", names, numeric, batches, size)
    reader.progress, reader.rows_read = source.progress, source.rows_read
    return source


def _sniff_delimiter(header: str, default: str) -> str:
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: (counts[d], d == default))
    return best if counts[best] else default


def _check_names(label: str, names: list[str]) -> None:
    seen: set[str] = set()
    for position, name in enumerate(names):
        if not name:
            raise InputError(f"{label}: column {position + 1} of the header has no name")
        if name in seen:
            raise InputError(f"{label}: the header names column '{name}' twice")
        seen.add(name)


def _sample(reader: _TextReader) -> bytes:
    """The input's first SNIFF_BYTES (all of it if shorter) cut at a record boundary; longer where
    its first record is, up to MAX_RECORD_BYTES (a longer one is refused, as the reader would)."""
    size = SNIFF_BYTES
    while True:
        head = reader.stream.peek(size)
        if len(head) < size:
            return head  # the whole input: its last record needs no line break
        cut = _last_boundary(head, len(head), reader.quoted)
        if cut > 0:
            return head[:cut]
        if size > MAX_RECORD_BYTES:
            raise InputError(reader._too_long(head, len(head)))
        size = min(size * 2, MAX_RECORD_BYTES + 1)


def _read_csv(
    data: bytes | memoryview, names: list[str], parse: pacsv.ParseOptions, convert: pacsv.ConvertOptions | None = None
) -> pa.Table:
    """Arrow's multi-threaded CSV reader over a copy of `data` in Arrow's memory."""

    def read(buffer: pa.Buffer, block_size: int) -> pa.Table:
        options = pacsv.ReadOptions(column_names=names, use_threads=True, block_size=block_size)
        return pacsv.read_csv(pa.BufferReader(buffer), options, parse, convert)

    return _in_blocks(read, data)


def _in_blocks(read: Callable[[pa.Buffer, int], pa.Table], data: bytes | memoryview) -> pa.Table:
    """read(buffer, block_size) over a copy of `data` in Arrow's memory, in Arrow's parallel blocks.

    Arrow refuses a record that spans more than two blocks of PARSE_BLOCK_BYTES ('straddling
    object'), valid as it is: data holding such a record is parsed again as one block.
    """
    buffer = arrow_owned(data)
    try:
        return read(buffer, PARSE_BLOCK_BYTES)
    except pa.ArrowInvalid as exc:
        if "straddling object" not in str(exc):
            raise
        return read(buffer, max(buffer.size, PARSE_BLOCK_BYTES))


def _infer_numeric(sample: bytes, names: list[str], parse: pacsv.ParseOptions) -> set[str]:
    """Numeric columns, by Arrow's type inference over the first records (all-empty: not numeric)."""
    if not sample:
        return set()
    try:
        table = _read_csv(sample, names, parse)
    except pa.ArrowInvalid:
        return set()  # the full read will report the exact row
    return _numeric_of(table.schema)  # an all-empty column is no prediction (nor is an all-null Parquet one)


def _parse_csv_block(
    label: str,
    block: memoryview,
    names: list[str],
    delimiter: str,
    types: dict[str, pa.DataType],
    reader: _TextReader,
) -> pa.Table:
    convert = pacsv.ConvertOptions(include_columns=list(types), column_types=types, strings_can_be_null=True)
    # Quoted newlines need Arrow's slower chunker; a block without a quote cannot have one.
    parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=_quoted_fields(block, block.nbytes))
    try:
        table = _read_csv(block, names, parse, convert)
    except pa.ArrowInvalid as exc:
        raise InputError(f"{label}: {_locate_csv_error(bytes(block), names, parse, types, reader, exc)}") from exc

    def tokens(name: str, rows: np.ndarray[Any, Any]) -> list[Any]:  # the integer-looking ones, picked by Arrow
        import pyarrow.compute as pc

        as_text = pacsv.ConvertOptions(include_columns=[name], column_types={name: pa.string()})
        text = _read_csv(block, names, parse, as_text).column(name).take(rows)
        return list(text.filter(pc.match_substring_regex(text, f"^{_INTEGER_TEXT.pattern}$")).to_pylist())

    return _mark_rounded_integers(table, tokens)


_INTEGER_TEXT = re.compile(r"\s*[+-]?[0-9]+\s*")


def _mark_rounded_integers(table: pa.Table, values_at: Callable[[str, np.ndarray[Any, Any]], list[Any]]) -> pa.Table:
    """`table` with ROUNDED_INTEGERS on each float64 field whose input held an integer beyond 2**53:
    the warning an int64 Parquet column gets, on every format. Only a value of magnitude 2**53 or
    more can have been one, so the input's values (`values_at(name, rows)`: text, or JSON's
    numbers) are looked at only there."""
    for index, field_ in enumerate(table.schema):
        if field_.type != pa.float64():
            continue
        chunks = [to_float64(chunk) for chunk in table.column(index).chunks]  # views, where no value is null
        if not any(c.size and (np.fmax.reduce(c) >= 2.0**53 or np.fmin.reduce(c) <= -(2.0**53)) for c in chunks):
            continue  # (fmax and fmin skip NaN)
        rows = np.flatnonzero(np.abs(np.concatenate(chunks)) >= 2.0**53)
        if any(_beyond_2_53(value) for value in values_at(field_.name, rows)):
            marked = field_.with_metadata({ROUNDED_INTEGERS: b"1"})
            table = table.set_column(index, marked, table.column(index))
    return table


def _beyond_2_53(value: Any) -> bool:
    if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value):
        value = int(value)
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53


def _locate_csv_error(
    block: bytes,
    names: list[str],
    parse: pacsv.ParseOptions,
    types: dict[str, pa.DataType],
    reader: _TextReader,
    exc: pa.ArrowInvalid,
) -> str:
    """Turn Arrow's row-less message into one that names the row, the line, the column and the value.

    The block is parsed again with its numeric columns as text, each is cast whole, and a
    binary search finds the first value that fails; only a ragged row needs a row-by-row scan.
    """
    numeric = [name for name, type_ in types.items() if type_ == pa.float64()]
    try:
        convert = pacsv.ConvertOptions(
            include_columns=numeric, column_types=dict.fromkeys(numeric, pa.string()), strings_can_be_null=True
        )
        table = _read_csv(block, names, parse, convert)
    except pa.ArrowInvalid:
        return _locate_ragged_row(block, names, parse, reader) or _describe(exc)
    failures = [(row, name) for name in numeric if (row := first_unparsable(table.column(name))) is not None]
    if not failures:
        return _describe(exc)
    row, name = min(failures, key=lambda failure: (failure[0], names.index(failure[1])))
    value = table.column(name)[row].as_py()
    return f"{_where(block, parse, reader, row)}, column '{name}': {value!r} is not a number"


def first_unparsable(column: pa.ChunkedArray) -> int | None:
    """The index of the first value that Arrow cannot read as float64 (spaces and tabs around a number
    allowed, as Arrow's CSV reader and `to_float64` allow them), by bisection over prefixes."""
    import pyarrow.compute as pc

    values = _trim_blanks(column.combine_chunks())

    def parses(length: int) -> bool:
        try:
            pc.cast(values.slice(0, length), pa.float64())
        except pa.ArrowInvalid:
            return False
        return True

    if parses(len(values)):
        return None
    low, high = 0, len(values)  # parses(low) holds, parses(high) does not
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if parses(middle) else (low, middle)
    return low


def _records(block: bytes, parse: pacsv.ParseOptions) -> Iterator[tuple[list[str], int]]:
    """The block's records (empty lines skipped, as Arrow does) with the 1-based line each ends on."""
    csv.field_size_limit(MAX_RECORD_BYTES)  # a long field is not this error's business
    reader = csv.reader(io.StringIO(block.decode("utf-8", errors="replace"), newline=""), delimiter=parse.delimiter)
    for record in reader:
        if record:
            yield record, reader.line_num


def _where(block: bytes, parse: pacsv.ParseOptions, reader: _TextReader, row: int) -> str:
    """'row R (line L)' for the block's row-th record."""
    for index, (_, line) in enumerate(_records(block, parse)):
        if index == row:
            return reader.where(row, line)
    return reader.where(row, None)


def _locate_ragged_row(block: bytes, names: list[str], parse: pacsv.ParseOptions, reader: _TextReader) -> str | None:
    for row, (record, line) in enumerate(_records(block, parse)):
        if len(record) != len(names):
            return f"{reader.where(row, line)}: expected {len(names)} fields, found {len(record)}"
    return None


def _open_jsonl(
    label: str, reader: _TextReader, size: int | None, open_again: Callable[[], IO[bytes]] | None
) -> Source:
    import pyarrow.json as pajson

    sample = _sample(reader)
    if not sample.strip():
        raise InputError(f"{label}: the input is empty")
    try:
        schema = _read_json(sample).schema
        names = list(schema.names)
        numeric = _numeric_of(schema)
    except pa.ArrowInvalid as exc:
        raise InputError(f"{label}: {_locate_json_error(sample, [], reader, exc)}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{label}: a key is not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc

    late: dict[str, pa.DataType | None] = {}  # keys first seen after the sample: one scan of the file each

    def late_type(name: str) -> pa.DataType | None:
        if name not in late:
            late[name] = _key_type(label, open_again, name) if open_again is not None else None
        return late[name]

    def as_read(name: str) -> pa.DataType:  # a label column keeps its JSON type (an id may be a number)
        if name in schema.names:
            inferred = schema.field(name).type
        else:  # a key first seen after the sample: typed by its first line
            found = late_type(name)
            inferred = pa.null() if found is None else found
        return pa.string() if pa.types.is_null(inferred) else inferred

    def batches(columns: list[str], text: set[str], chunk_rows: int, groups: range | None) -> Iterator[pa.RecordBatch]:
        wanted = pa.schema([(name, as_read(name) if name in text else pa.float64()) for name in columns])
        options = pajson.ParseOptions(explicit_schema=wanted, unexpected_field_behavior="ignore")

        def parse(block: memoryview) -> pa.Table:
            try:
                table = _read_json(block, options)
            except pa.ArrowInvalid as exc:
                numeric_columns = [name for name in columns if name not in text]
                where = _locate_json_error(bytes(block), numeric_columns, reader, exc)
                raise InputError(f"{label}: {where}") from exc

            def numbers(name: str, rows: np.ndarray[Any, Any]) -> list[Any]:
                lines = [line for line in bytes(block).split(b"\n") if line.strip()]  # a row each
                return [json.loads(lines[row]).get(name) for row in rows]

            return _mark_rounded_integers(table, numbers)

        for table in reader.parsed(parse):
            yield from table.select(columns).to_batches()

    source = Source(label, "jsonl", names, numeric, batches, size)
    if open_again is not None and len(sample) < len(reader.stream.peek(len(sample) + 1)):  # more than the sample
        source.later_key = lambda name: late_type(name) is not None
    reader.progress, reader.rows_read = source.progress, source.rows_read
    return source


def _key_type(label: str, open_again: Callable[[], IO[bytes]], name: str) -> pa.DataType | None:
    """The type Arrow gives key `name` on the first line of the input (read again) that has it;
    None if none has. A search for the quoted key, each line it is found in parsed to make sure."""
    needle = json.dumps(name, ensure_ascii=False).encode()
    with _Prefixed(open_again()) as stream:
        for block in _TextReader(label, stream, quoted=False).blocks():
            data = bytes(block)
            hit = data.find(needle)
            while hit >= 0:
                start, end = data.rfind(b"\n", 0, hit) + 1, data.find(b"\n", hit)
                end = len(data) if end < 0 else end
                with contextlib.suppress(ValueError):
                    record = json.loads(data[start:end])
                    if isinstance(record, dict) and name in record:
                        return _read_json(data[start:end]).schema.field(name).type
                hit = data.find(needle, end)
    return None


def _read_json(data: bytes | memoryview, parse: Any = None) -> pa.Table:
    """Arrow's JSON reader over a copy of `data` in Arrow's memory."""
    import pyarrow.json as pajson

    def read(buffer: pa.Buffer, block_size: int) -> pa.Table:
        return pajson.read_json(pa.BufferReader(buffer), pajson.ReadOptions(block_size=block_size), parse)

    return _in_blocks(read, data)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an object" if isinstance(value, dict) else "an array" if isinstance(value, list) else "a value"


def _locate_json_error(block: bytes, numeric: list[str], reader: _TextReader, exc: pa.ArrowInvalid) -> str:
    """The row, line, column and value of Arrow's complaint: bad JSON, a non-number in `numeric`,
    or a value of another kind than most rows have in that column."""
    records = []
    row = 0
    for line_number, line in enumerate(block.split(b"\n"), start=1):
        if not line.strip():
            continue
        where = reader.where(row, line_number)
        try:
            record = json.loads(line)
        except ValueError:
            return f"{where}: not valid JSON: {_shorten(line.decode('utf-8', errors='replace'))!r}"
        if not isinstance(record, dict):
            return f"{where}: expected a JSON object, found {_shorten(line.decode('utf-8', errors='replace'))!r}"
        try:
            json.dumps(record, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return f"{where}: a string holds an unpaired UTF-16 surrogate escape (such as \\udc00), which is not text"
        for name in numeric:
            value = record.get(name)
            if isinstance(value, bool) or not (value is None or isinstance(value, int | float)):
                return f"{where}, column '{name}': {value!r} is not a number"
        records.append((where, record))
        row += 1
    kinds: dict[str, Counter[str]] = {}
    for _, record in records:
        for name, value in record.items():
            if value is not None:
                kinds.setdefault(name, Counter())[_kind(value)] += 1
    usual = {name: counts.most_common(1)[0][0] for name, counts in kinds.items()}
    for where, record in records:
        for name, value in record.items():
            if value is not None and _kind(value) != usual[name]:
                return f"{where}, column '{name}': {value!r} is {_kind(value)} where most rows have {usual[name]}"
    return _describe(exc)


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(exc: BaseException) -> str:
    """Arrow's message without its C++ source locations, on one line; a store's failure as `fs.explain`
    words it, and never a credential of a URI in it."""
    explained = fs.explain(exc)
    if explained is not None:
        return explained
    text = fs.redact_text(re.sub(r"\s*(/[^\s:]+\.(cc|h):\d+\s*)+", " ", str(exc)).strip())
    if isinstance(exc, EOFError) or "Truncated" in text:
        return f"the file is truncated or corrupt ({text})"
    return " ".join(text.split()) or type(exc).__name__
