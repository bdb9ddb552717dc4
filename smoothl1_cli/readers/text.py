"""Delimited text cut into record-aligned blocks, each parsed by Arrow's multi-threaded CSV reader.

Memory is bounded by the block size, and a parse error is traced back to its exact row and line.
The block cutter (`TextReader`) and `in_blocks` serve JSON Lines too.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from smoothl1_cli.errors import InputError
from smoothl1_cli.readers.detect import sniff_delimiter
from smoothl1_cli.readers.numbers import INTEGER_TEXT, first_unparsable, mark_rounded_integers, numeric_of
from smoothl1_cli.readers.source import Inferred, Input, Prefixed, ProgressFn, Source, describe

BLOCK_BYTES = 8 << 20  # text is parsed in record-aligned blocks of about this size (measured best: 4-8 MiB)
PARSE_BLOCK_BYTES = 1 << 20  # Arrow's own unit of parallel parsing within a block
FIRST_BLOCK_BYTES = 256 << 10
MAX_RECORD_BYTES = 64 << 20  # a longer line is refused rather than held in memory
SNIFF_BYTES = 1 << 20


def open_delimited(opened: Input) -> Source:
    label, stream = opened.label, opened.stream
    assert stream is not None  # text is read as a stream
    header, header_bytes, header_newlines = _split_header(stream, label)
    delimiter = sniff_delimiter(header, default="\t" if opened.format == "tsv" else ",")
    names = next(csv.reader([header], delimiter=delimiter))
    names = [name.strip() for name in names]
    _check_names(label, names)
    reader = TextReader(label, stream, True, header_bytes, 0, opened.count_lines, header_newlines)
    parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    numeric = Inferred(lambda: _infer_numeric(take_sample(reader), names, parse))

    def batches(columns: list[str], text: set[str], chunk_rows: int, groups: range | None) -> Iterator[pa.RecordBatch]:
        wanted = {name: pa.string() if name in text else pa.float64() for name in columns}
        for table in reader.parsed(lambda block: _parse_csv_block(label, block, names, delimiter, wanted, reader)):
            yield from table.select(columns).to_batches()

    source = Source(
        label, "tsv" if delimiter == "\t" else "csv", names, numeric, batches, opened.size, close=stream.close
    )
    reader.progress, reader.rows_read = source.progress, source.rows_read
    return source


def _check_names(label: str, names: list[str]) -> None:
    seen: set[str] = set()
    for position, name in enumerate(names):
        if not name:
            raise InputError(f"{label}: column {position + 1} of the header has no name")
        if name in seen:
            raise InputError(f"{label}: the header names column '{name}' twice")
        seen.add(name)


def _split_header(stream: Prefixed, label: str) -> tuple[str, int, int]:
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
    stream.unread(bytes(rest))  # give back what followed the header
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


@dataclass
class TextReader:
    """Cuts a byte stream into record-aligned blocks; knows the rows and bytes before each.

    Line numbers are only needed for error messages, so they are counted then, by reading the
    input again up to the block (`count_lines`; None where the input cannot be read twice).
    """

    label: str
    stream: Prefixed
    quoted: bool  # whether a quote can hide a newline (delimited text), or not (JSON Lines)
    bytes_before: int = 0  # of the (decompressed) stream, before the current block: header included
    rows_before: int = 0
    count_lines: Callable[[int], int | None] | None = None  # None: count as we go (input read once)
    newlines_before: int = 0  # counted as we go, where count_lines is None
    progress: list[ProgressFn] = field(default_factory=list)
    rows_read: list[ProgressFn] = field(default_factory=list)

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


def _read_into(stream: Prefixed, view: memoryview) -> int:
    """Fill `view` from the stream (several reads where a pipe delivers less); the bytes read."""
    filled = 0
    while filled < len(view):
        got = stream.readinto(view[filled:])
        if not got:
            break
        filled += got
    return filled


def pread_counter(descriptor: int) -> Callable[[int], int | None]:
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


def newline_counter(open_again: Callable[[], IO[bytes]]) -> Callable[[int], int | None]:
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


def take_sample(reader: TextReader) -> bytes:
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

    return in_blocks(read, data)


def in_blocks(read: Callable[[pa.Buffer, int], pa.Table], data: bytes | memoryview) -> pa.Table:
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
    return numeric_of(table.schema)  # an all-empty column is no prediction (nor is an all-null Parquet one)


def _parse_csv_block(
    label: str,
    block: memoryview,
    names: list[str],
    delimiter: str,
    types: dict[str, pa.DataType],
    reader: TextReader,
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
        return list(text.filter(pc.match_substring_regex(text, f"^{INTEGER_TEXT.pattern}$")).to_pylist())

    return mark_rounded_integers(table, tokens)


def _locate_csv_error(
    block: bytes,
    names: list[str],
    parse: pacsv.ParseOptions,
    types: dict[str, pa.DataType],
    reader: TextReader,
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
        return _locate_ragged_row(block, names, parse, reader) or describe(exc)
    failures = [(row, name) for name in numeric if (row := first_unparsable(table.column(name))) is not None]
    if not failures:
        return describe(exc)
    row, name = min(failures, key=lambda failure: (failure[0], names.index(failure[1])))
    value = table.column(name)[row].as_py()
    return f"{_where(block, parse, reader, row)}, column '{name}': {value!r} is not a number"


def _records(block: bytes, parse: pacsv.ParseOptions) -> Iterator[tuple[list[str], int]]:
    """The block's records (empty lines skipped, as Arrow does) with the 1-based line each ends on."""
    csv.field_size_limit(MAX_RECORD_BYTES)  # a long field is not this error's business
    reader = csv.reader(io.StringIO(block.decode("utf-8", errors="replace"), newline=""), delimiter=parse.delimiter)
    for record in reader:
        if record:
            yield record, reader.line_num


def _where(block: bytes, parse: pacsv.ParseOptions, reader: TextReader, row: int) -> str:
    """'row R (line L)' for the block's row-th record."""
    for index, (_, line) in enumerate(_records(block, parse)):
        if index == row:
            return reader.where(row, line)
    return reader.where(row, None)


def _locate_ragged_row(block: bytes, names: list[str], parse: pacsv.ParseOptions, reader: TextReader) -> str | None:
    for row, (record, line) in enumerate(_records(block, parse)):
        if len(record) != len(names):
            return f"{reader.where(row, line)}: expected {len(names)} fields, found {len(record)}"
    return None
