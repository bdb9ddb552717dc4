"""Writing files the user asked for: atomically (temp file beside the target, fsync, rename)."""

from __future__ import annotations

import csv
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from smoothl1_cli.errors import InputError


@contextmanager
def atomic_output(path: str, what: str) -> Iterator[IO[bytes]]:
    """A file that appears at `path` complete or not at all; a failure leaves any old file as it was.

    The rename replaces a symlink at `path` rather than writing through it.
    """
    target = Path(path)
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise InputError(f"cannot write {what} {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fchmod(file.fileno(), 0o666 & ~_umask())
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except (BrokenPipeError, InputError):
        with suppress(OSError):
            os.unlink(temporary)
        raise
    except OSError as exc:  # ENOSPC, EIO, EACCES...: the file cannot be written
        with suppress(OSError):
            os.unlink(temporary)
        raise InputError(f"cannot write {what} {path}: {exc.strerror or exc}") from exc
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _loss_names(preds: list[str]) -> list[str]:
    return ["loss"] if len(preds) == 1 else [f"loss_{pred}" for pred in preds]


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

    def __init__(self, out: IO[bytes], id_column: str | None, preds: list[str]) -> None:
        self._out = out
        self._names = ["row"] + ([id_column] if id_column else []) + _loss_names(preds)
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

    def __init__(self, out: IO[bytes], id_column: str | None, preds: list[str]) -> None:
        self._out: IO[bytes] | None = out
        self._names = ["row"] + ([id_column] if id_column else []) + _loss_names(preds)
        header = io.StringIO()
        csv.writer(header, lineterminator="\n").writerow(self._names)
        self._send(header.getvalue().encode())
        self._options = pacsv.WriteOptions(include_header=False, quoting_style="needed")

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
        buffer = io.BytesIO()
        batch = _row_batch(self._names, rows, ids, losses, omitted)
        try:  # quotes only where needed, as the csv module writes: an id 7 read from a CSV stays 7, not "7"
            pacsv.write_csv(batch, buffer, pacsv.WriteOptions(include_header=False, quoting_style="none"))
        except pa.ArrowInvalid:  # an id holding a delimiter, a quote or a line break
            buffer = io.BytesIO()
            pacsv.write_csv(batch, buffer, self._options)
        self._send(buffer.getvalue())

    def _send(self, data: bytes) -> None:
        if self._out is None:
            return
        try:
            self._out.write(data)
        except BrokenPipeError:
            self._out = None
            silence_stdout()

    def close(self) -> None:
        if self._out is None:
            return
        try:
            self._out.flush()
        except BrokenPipeError:
            self._out = None
            silence_stdout()


def silence_stdout() -> None:
    """After `| head` closed the pipe, send what is left to /dev/null so Python's exit flush is quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
