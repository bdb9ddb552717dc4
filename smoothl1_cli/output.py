"""Writing files the user asked for: atomically (temp file beside the target, fsync, rename)."""

from __future__ import annotations

import csv
import io
import os
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


class CsvRowSink:
    """Per-row losses as CSV: `row`, the id column if any, then `loss` or `loss_<pred>` per prediction."""

    def __init__(self, out: IO[bytes], id_column: str | None, preds: list[str]) -> None:
        self._out = out
        losses = ["loss"] if len(preds) == 1 else [f"loss_{pred}" for pred in preds]
        self._names = ["row"] + ([id_column] if id_column else []) + losses
        header = io.StringIO()
        csv.writer(header, lineterminator="\n").writerow(self._names)
        out.write(header.getvalue().encode())
        self._options = pacsv.WriteOptions(include_header=False, quoting_style="needed")

    def write(
        self,
        rows: np.ndarray[Any, Any],
        ids: pa.Array | None,
        losses: list[np.ndarray[Any, Any]],
        omitted: np.ndarray[Any, Any] | None,
    ) -> None:
        """Append one chunk's rows; an omitted row keeps its line with an empty loss."""
        arrays: list[pa.Array] = [pa.array(rows, type=pa.int64())]
        if ids is not None:
            arrays.append(ids)
        arrays += [pa.array(loss, type=pa.float64(), mask=omitted) for loss in losses]
        buffer = io.BytesIO()
        pacsv.write_csv(pa.RecordBatch.from_arrays(arrays, names=self._names), buffer, self._options)
        self._out.write(buffer.getvalue())
