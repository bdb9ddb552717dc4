"""Parquet and Arrow IPC, read batch by batch (a row group or a record batch a piece), and in-memory tables."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from smoothl1_cli.readers.numbers import numeric_of
from smoothl1_cli.readers.source import Input, Source
from smoothl1_cli.readers.text import arrow_owned

ROW_GROUP_BYTES = 256 << 20  # a Parquet row group whose needed columns decode to more is streamed


def _seekable(opened: Input) -> pa.NativeFile:
    """The input opened for random access: the file itself, or a stream's (decompressed) bytes read into memory."""
    if opened.seekable is not None:
        return opened.seekable()
    assert opened.stream is not None
    with opened.stream as stream:
        return pa.BufferReader(arrow_owned(stream.read()))


def open_parquet(opened: Input) -> Source:
    import pyarrow.parquet as pq

    file = _seekable(opened)
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
        opened.label, "parquet", schema.names, numeric_of(schema), parquet_batches, opened.size,
        parquet.metadata.num_rows, types=_types_of(schema), close=file.close,
        group_rows=tuple(parquet.metadata.row_group(i).num_rows for i in range(parquet.metadata.num_row_groups)),
    )  # fmt: skip
    return source


def open_ipc(opened: Input) -> Source:
    """Arrow IPC: the file format (its footer lists the batches: each can be a piece) or the stream format."""
    import pyarrow.ipc as ipc

    file = _seekable(opened)
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
        opened.label, "ipc", schema.names, numeric_of(schema), ipc_batches, opened.size, rows,
        types=_types_of(schema), close=file.close,
    )  # fmt: skip
    return source


def source_from_table(table: pa.Table, label: str) -> Source:
    """A Source over an in-memory Arrow table (the Python API's DataFrame and Table inputs)."""
    numeric = numeric_of(table.schema)

    def stream(columns: list[str], text: set[str], chunk_rows: int, groups: range | None) -> Iterator[pa.RecordBatch]:
        yield from table.select(columns).to_batches(max_chunksize=chunk_rows)

    return Source(label, "table", list(table.column_names), numeric, stream, types=_types_of(table.schema))


def _types_of(schema: pa.Schema) -> dict[str, str]:
    return {f.name: str(f.type) for f in schema}
