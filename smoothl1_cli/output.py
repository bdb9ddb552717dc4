"""Writing files the user asked for: atomically (temp file beside the target, fsync, rename; on a
store, an upload once complete), and never over an input or another output."""

from __future__ import annotations

import csv
import io
import os
import stat
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from smoothl1_cli.errors import InputError
from smoothl1_cli.readers import fs

ATOMIC_STORES = ("s3", "gcs", "abfs")  # an object appears whole once its upload completes, or not at all


def refuse_overwriting(outputs: Mapping[str, str | None], inputs: Sequence[str], labels: str | None) -> None:
    """Refuse, before anything is read, an output that is an input, the labels file or another output:
    writing it would destroy the data (or keep only one of the outputs).

    Files are told apart by device and inode where they exist (so `./x.csv`, a symlink or a hard link
    to it are the same file), else by resolved path. Character devices (/dev/null, a terminal) hold no
    data to lose; a file named `-` is a file like any other.
    """
    seen: dict[tuple[Any, ...], str] = {}
    named = [(f"input {fs.redact(path)}", path) for path in inputs]
    if labels:
        named.append((f"--labels {fs.redact(labels)}", labels))
    for what, path in named:
        identity = _file_identity(path)
        if identity is not None:
            seen.setdefault(identity, what)
    for option, target in outputs.items():
        identity = None if target is None else _file_identity(target, stdin=False)
        if target is None or identity is None:
            continue
        shown = f"{option} {fs.redact(target)}"  # a URI's credentials are never shown
        if identity in seen:
            raise InputError(
                f"{shown} is the same file as {seen[identity]}: it would be overwritten; name another file"
            )
        seen[identity] = shown


def _file_identity(path: str, stdin: bool = True) -> tuple[Any, ...] | None:
    """(device, inode) of the file at `path` (standard input's for an input `-`), else its resolved path
    (a URI: without credentials and query); None for a character device."""
    if fs.is_uri(path):
        return ("uri", fs.identity(path))
    try:
        found = os.fstat(0) if stdin and path == "-" else os.stat(path)
    except ValueError:  # a NUL in the path: opening it fails later, with its own error
        return None
    except OSError:  # not there (yet)
        return ("path", os.path.realpath(path))
    return None if stat.S_ISCHR(found.st_mode) else ("inode", found.st_dev, found.st_ino)


@contextmanager
def atomic_output(path: str, what: str) -> Iterator[IO[bytes]]:
    """A file that appears at `path` complete or not at all; a failure leaves any old file as it was.

    The rename replaces a symlink at `path` rather than writing through it, and a file rewritten keeps
    its permissions (a 0600 report stays 0600). A character device or FIFO (/dev/null, /dev/stdout, a
    named pipe) is written in place instead: a rename would put a regular file in its place. A URI is
    written to a local temporary file and uploaded when complete (see `_uploaded`).
    """
    uri = fs.is_uri(path)
    try:
        found: os.stat_result | None = None if uri else os.stat(path)
    except (OSError, ValueError):
        found = None
    if found is not None and stat.S_ISBLK(found.st_mode):
        raise InputError(f"cannot write {what} {path}: it is a block device; name a file")
    in_place = found is not None and (stat.S_ISCHR(found.st_mode) or stat.S_ISFIFO(found.st_mode))
    try:
        with _uploaded(path) if uri else open(path, "wb") if in_place else _replacing(Path(path)) as file:
            yield file
    except InputError:
        raise
    except NotImplementedError as exc:  # fsspec's read-only filesystems (http://)
        raise InputError(f"cannot write {what} {fs.redact(path)}: this store cannot be written") from exc
    except (
        (OSError,) + fs.client_errors()
    ) as exc:  # ENOSPC, EIO, EACCES, a FIFO's reader gone, a store's refusal...: it cannot be written
        if isinstance(exc, BrokenPipeError) and not in_place:  # stdout's, not this file's: `| head`
            raise
        reason = fs.explain(exc) or fs.redact_text(getattr(exc, "strerror", None) or str(exc))
        raise InputError(f"cannot write {what} {fs.redact(path)}: {reason}") from exc


@contextmanager
def _uploaded(uri: str) -> Iterator[IO[bytes]]:
    """A local temporary file, copied to `uri` once complete (by pyarrow, in C++: no Ctrl-C halfway).

    Not a store's output stream written as the run goes: pyarrow's have no abort, and one dropped
    unclosed completes its upload, so an error halfway would publish half a file. On S3, GCS and
    Azure an object appears only when its upload completes, so nothing half-written is ever seen
    there. Elsewhere (HDFS, fsspec's schemes, file://) the copy goes to a hidden temporary name beside
    the target, moved over it at the end: atomic where the store renames atomically, as HDFS does."""
    import pyarrow.fs as pafs

    filesystem, path = fs.resolve(uri)
    with tempfile.NamedTemporaryFile(prefix=".smoothl1-", suffix=".tmp") as file:
        yield file
        file.flush()
        if filesystem.type_name in ATOMIC_STORES:
            pafs.copy_files(file.name, path, destination_filesystem=filesystem)
            return
        parent, slash, name = path.rpartition("/")
        temporary = f"{parent}{slash}.{name}.{os.urandom(4).hex()}.tmp"
        try:
            pafs.copy_files(file.name, temporary, destination_filesystem=filesystem)
            filesystem.move(temporary, path)
        except BaseException:
            with suppress(OSError):
                filesystem.delete_file(temporary)
            raise


@contextmanager
def _replacing(target: Path) -> Iterator[IO[bytes]]:
    """A temporary file beside `target`, fsynced and renamed over it; removed on any failure."""
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fchmod(file.fileno(), _mode_for(target))
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise


def _mode_for(target: Path) -> int:
    """The permissions of the regular file being replaced, else the umask's default for a new file."""
    with suppress(OSError):
        found = os.lstat(target)
        if stat.S_ISREG(found.st_mode):
            return found.st_mode & 0o777
    return 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def column_names(id_column: str | None, pairs: Sequence[tuple[str, str]]) -> list[str]:
    """`row`, the id column, then `loss` (one result) or `loss_<pred>`, `loss_<pred>_<target>` where a pred is
    scored against several targets; an id column whose name is taken is written as `id_<name>`. Unique, so
    the file reads back (a Parquet file with two columns of one name does not)."""
    if len(pairs) == 1:
        losses = ["loss"]
    else:
        times = Counter(pred for pred, _ in pairs)
        losses = [f"loss_{pred}" if times[pred] == 1 else f"loss_{pred}_{target}" for pred, target in pairs]
    names = ["row"]
    if id_column is not None:
        id_name = id_column
        while id_name == "row" or id_name in losses:
            id_name = f"id_{id_name}"
        names.append(id_name)
    for name in losses:  # -t a,b,c -p p,p,p_b would give loss_p_b twice
        while name in names:
            name += "_"
        names.append(name)
    return names


def _row_batch(
    names: list[str],
    rows: np.ndarray[Any, Any],
    ids: pa.Array | None,
    losses: list[np.ndarray[Any, Any]],
    omitted: np.ndarray[Any, Any] | None,
) -> pa.RecordBatch:
    """`row`, the id column if any, then the losses (null where the row was omitted)."""
    arrays: list[pa.Array] = [pa.array(rows, type=pa.int64())]
    if ids is not None:
        arrays.append(ids)
    arrays += [pa.array(loss, type=pa.float64(), mask=omitted) for loss in losses]
    return pa.RecordBatch.from_arrays(arrays, names=names)


class ParquetRowSink:
    """Per-row losses as Parquet, with the same columns as the CSV."""

    def __init__(self, out: IO[bytes], id_column: str | None, pairs: Sequence[tuple[str, str]]) -> None:
        self._out = out
        self._names = column_names(id_column, pairs)
        self._writer: Any = None  # a pyarrow.parquet.ParquetWriter once the first batch is in

    def write(
        self,
        rows: np.ndarray[Any, Any],
        ids: pa.Array | None,
        losses: list[np.ndarray[Any, Any]],
        omitted: np.ndarray[Any, Any] | None,
    ) -> None:
        batch = _row_batch(self._names, rows, ids, losses, omitted)
        if self._writer is None:  # the id column's type is known only now
            import pyarrow.parquet as pq

            self._writer = pq.ParquetWriter(self._out, batch.schema)
        self._writer.write_batch(batch)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class CsvRowSink:
    """Per-row losses as CSV: `row`, the id column if any, then `loss` or `loss_<pred>` per prediction.

    When the reader of a pipe goes away (`| head`), the rows stop but the evaluation goes on, so
    the report (-o) and the gates still happen, as with `tee`.
    """

    def __init__(self, out: IO[bytes], id_column: str | None, pairs: Sequence[tuple[str, str]]) -> None:
        self._out: IO[bytes] | None = out
        self._names = column_names(id_column, pairs)
        header = io.StringIO()
        csv.writer(header, lineterminator="\n").writerow(self._names)
        self._send(header.getvalue().encode())
        # Unquoted while no value needs quotes (an id 7 read from a CSV stays 7, not "7"); from the first
        # one that does (a delimiter, a quote or a line break in an id), Arrow's quoting of all text.
        self._styles = [pacsv.WriteOptions(include_header=False, quoting_style=s) for s in ("none", "needed")]

    def write(
        self,
        rows: np.ndarray[Any, Any],
        ids: pa.Array | None,
        losses: list[np.ndarray[Any, Any]],
        omitted: np.ndarray[Any, Any] | None,
    ) -> None:
        """Append one chunk's rows; an omitted row keeps its line with an empty loss."""
        if self._out is None:
            return
        batch = _row_batch(self._names, rows, ids, losses, omitted)
        while True:
            buffer = io.BytesIO()
            try:
                pacsv.write_csv(batch, buffer, self._styles[0])
                break
            except pa.ArrowInvalid:  # only "none" can refuse a value
                self._styles.pop(0)
        self._send(buffer.getvalue())

    def _send(self, data: bytes) -> None:
        self._guarded(lambda out: out.write(data))

    def close(self) -> None:
        self._guarded(lambda out: out.flush())

    def _guarded(self, action: Callable[[IO[bytes]], object]) -> None:
        if self._out is None:
            return
        try:
            action(self._out)
        except BrokenPipeError:
            if self._out is not getattr(sys.stdout, "buffer", None):  # a FIFO named by --per-row: its reader left
                raise
            self._out = None
            silence_stdout()


def silence_stdout() -> None:
    """After `| head` closed the pipe, send what is left to /dev/null so Python's exit flush is quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
