"""JSON Lines: cut into record-aligned blocks as text is, each parsed by Arrow's JSON reader."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from typing import IO, Any

import numpy as np
import pyarrow as pa

from smoothl1_cli.errors import InputError
from smoothl1_cli.readers.numbers import mark_rounded_integers, numeric_of
from smoothl1_cli.readers.source import Input, Prefixed, Source, describe
from smoothl1_cli.readers.text import TextReader, in_blocks, take_sample


def open_jsonl(opened: Input) -> Source:
    import pyarrow.json as pajson

    label, open_again = opened.label, opened.open_again
    assert opened.stream is not None  # text is read as a stream
    reader = TextReader(label, opened.stream, quoted=False, count_lines=opened.count_lines)
    sample = take_sample(reader)
    if not sample.strip():
        raise InputError(f"{label}: the input is empty")
    try:
        schema = _read_json(sample).schema
        names = list(schema.names)
        numeric = numeric_of(schema)
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

            lines: list[bytes] = []  # the block's records, a row each: split once, only if a value needs them

            def numbers(name: str, rows: np.ndarray[Any, Any]) -> list[Any]:
                if not lines:
                    lines.extend(line for line in bytes(block).split(b"\n") if line.strip())
                return [json.loads(lines[row]).get(name) for row in rows]

            return mark_rounded_integers(table, numbers)

        for table in reader.parsed(parse):
            yield from table.select(columns).to_batches()

    source = Source(label, "jsonl", names, numeric, batches, opened.size, close=opened.stream.close)
    if open_again is not None and len(sample) < len(reader.stream.peek(len(sample) + 1)):  # more than the sample
        source.later_key = lambda name: late_type(name) is not None
    reader.progress, reader.rows_read = source.progress, source.rows_read
    return source


def _key_type(label: str, open_again: Callable[[], IO[bytes]], name: str) -> pa.DataType | None:
    """The type Arrow gives key `name` on the first line of the input (read again) that has it;
    None if none has. A search for the quoted key, each line it is found in parsed to make sure."""
    needle = json.dumps(name, ensure_ascii=False).encode()
    with Prefixed(open_again()) as stream:
        for block in TextReader(label, stream, quoted=False).blocks():
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

    return in_blocks(read, data)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an object" if isinstance(value, dict) else "an array" if isinstance(value, list) else "a value"


def _locate_json_error(block: bytes, numeric: list[str], reader: TextReader, exc: pa.ArrowInvalid) -> str:
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
    return describe(exc)


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
