"""What every format's opener shares: the Source it makes, the Input it is handed, and Arrow's errors in words."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import IO, Any

import pyarrow as pa

from smoothl1_cli.errors import InputError
from smoothl1_cli.readers import fs

ProgressFn = Callable[[int], None]
READ_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError, EOFError)


class Inferred(AbstractSet[str]):
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
    progress: list[ProgressFn] = field(default_factory=list)
    rows_read: list[ProgressFn] = field(default_factory=list)  # text: rows parsed (progress counts bytes)
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
        except READ_ERRORS + fs.client_errors() as exc:
            raise InputError(f"{self.label}: {describe(exc)}") from exc


class Prefixed(io.RawIOBase):
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

    def unread(self, data: bytes) -> None:
        """Give back bytes read: they are read again first."""
        self._head = data + self._head

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


@dataclass(frozen=True)
class Input:
    """An input as a format's opener is handed it: its bytes as a stream (decompressed, the first bytes
    peeked at), with a way to count the lines before an offset and to read it again where it can be;
    or, for a file stored uncompressed, `seekable`, which opens it for random access instead."""

    label: str
    format: str
    size: int | None  # bytes on disk
    stream: Prefixed | None = None
    count_lines: Callable[[int], int | None] | None = None
    open_again: Callable[[], IO[bytes]] | None = None
    seekable: Callable[[], pa.NativeFile] | None = None


def describe(exc: BaseException) -> str:
    """Arrow's message without its C++ source locations, on one line; a store's failure as `fs.explain`
    words it, and never a credential of a URI in it."""
    explained = fs.explain(exc)
    if explained is not None:
        return explained
    text = fs.redact_text(re.sub(r"\s*(/[^\s:]+\.(cc|h):\d+\s*)+", " ", str(exc)).strip())
    if isinstance(exc, EOFError) or "Truncated" in text:
        return f"the file is truncated or corrupt ({text})"
    return " ".join(text.split()) or type(exc).__name__
