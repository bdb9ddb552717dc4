"""--labels FILE [--on KEY]: targets kept in a second file, joined to the predictions.

With a key, the labels file is loaded into memory (its key and target columns only) and each
prediction row looks up its key; without one, the two files are read in lockstep, row by row.
Either way the result is a Source like any other, so the evaluation does not change.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import pyarrow as pa
import pyarrow.compute as pc

from smoothl1_cli.errors import InputError
from smoothl1_cli.readers import TYPED_FORMATS, Source

BATCH_ROWS = 65_536  # how the labels file is read; the evaluation re-cuts rows into its own chunks


@dataclass
class _Lockstep:
    """The labels file's batches, handed out in runs of exactly the rows asked for."""

    labels: Source
    targets: list[str]
    chunk_rows: int
    pending: list[pa.RecordBatch] = field(default_factory=list)
    rows_given: int = 0
    _batches: Iterator[pa.RecordBatch] | None = None

    def take(self, rows: int, label: str) -> pa.Table:
        if self._batches is None:
            self._batches = self.labels.batches(self.targets, set(), self.chunk_rows)
        have = sum(b.num_rows for b in self.pending)
        while have < rows:
            batch = next(self._batches, None)
            if batch is None:
                raise InputError(
                    f"{self.labels.label} has {self.rows_given + have} rows, fewer than the predictions "
                    f"({label} goes on past that); without --on KEY the two are matched row by row"
                )
            self.pending.append(batch)
            have += batch.num_rows
        table = pa.Table.from_batches(self.pending, schema=self.pending[0].schema if self.pending else None)
        self.pending = [b for b in table.slice(rows).to_batches() if b.num_rows]
        self.rows_given += rows
        return table.slice(0, rows)

    def finish(self, label: str) -> None:
        """After the last prediction row: the labels must have ended too."""
        rest = self._batches or self.labels.batches(self.targets, set(), self.chunk_rows)
        left = sum(b.num_rows for b in self.pending) + sum(b.num_rows for b in rest)
        if left:
            raise InputError(
                f"{self.labels.label} has {self.rows_given + left} rows but the predictions have {self.rows_given} "
                f"(up to the end of {label}); without --on KEY the two are matched row by row"
            )


def with_labels(sources: Sequence[Source], labels: Source, targets: Sequence[str], on: str | None) -> list[Source]:
    """The prediction sources with their target columns taken from `labels`."""
    if on is not None and on in targets:
        raise InputError(f"--on '{on}' is also a --target: the key joins the two files, it cannot be what is predicted")
    for name in [*targets, *([on] if on else [])]:
        if name not in labels.columns:
            raise InputError(
                f"{labels.label}: column '{name}' not found in the labels file (columns: {', '.join(labels.columns)})"
            )
    if on is not None:
        for source in sources:
            if on not in source.columns:
                raise InputError(f"{source.label}: --on column '{on}' not found (columns: {', '.join(source.columns)})")
        table = _load_keyed(labels, list(targets), on)
        return [_joined(source, labels, table, list(targets), on) for source in sources]
    lockstep = _Lockstep(labels, list(targets), BATCH_ROWS)
    return [
        _zipped(source, labels, lockstep, list(targets), last=i == len(sources) - 1) for i, source in enumerate(sources)
    ]


def _load_keyed(labels: Source, targets: list[str], on: str) -> pa.Table:
    try:
        batches = list(labels.batches([on, *targets], {on}, BATCH_ROWS))
    finally:
        labels.close()
    if not batches:
        raise InputError(f"{labels.label}: the labels file has no rows")
    table = pa.Table.from_batches(batches)
    keys = table.column(on)
    if pc.count_distinct(keys, mode="all").as_py() != table.num_rows:
        counts = pc.value_counts(keys)
        twice = next(item["values"] for item in counts.to_pylist() if item["counts"] > 1)
        raise InputError(f"{labels.label}: key {twice!r} appears more than once in --on column '{on}'")
    return table


def _with_targets(source: Source, labels: Source, targets: list[str], on: str | None) -> Source:
    columns = source.columns + [t for t in targets if t not in source.columns]
    types = {**source.types, **{t: labels.types.get(t, "double") for t in targets}}
    parsed_as_numbers = labels.format not in TYPED_FORMATS  # text: read as float64 when asked
    numeric = (set(source.numeric) - set(targets) - {on}) | {
        t for t in targets if parsed_as_numbers or t in labels.numeric
    }  # the key joins, it is no prediction
    return replace(source, columns=columns, numeric=numeric, types=types)


def _assemble(columns: list[str], batch: pa.RecordBatch, targets: pa.Table) -> pa.RecordBatch:
    """The batch's columns in order, with the target columns taken from `targets` (same rows); fields keep
    their metadata (the reader's mark on text integers beyond 2**53)."""
    taken = [(targets if name in targets.column_names else batch).schema.field(name) for name in columns]
    arrays = [
        targets.column(name).combine_chunks() if name in targets.column_names else batch.column(name)
        for name in columns
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(taken))


def _joined(source: Source, labels: Source, table: pa.Table, targets: list[str], on: str) -> Source:
    keys = table.column(on).combine_chunks()

    def stream(columns: list[str], text: set[str], chunk_rows: int, groups: range | None) -> Iterator[pa.RecordBatch]:
        wanted = list(dict.fromkeys([*(c for c in columns if c not in targets), on]))
        row = 0
        for batch in source.batches(wanted, text | {on}, chunk_rows, groups):
            batch_keys = batch.column(on)
            if batch_keys.type != keys.type:
                batch_keys, label_keys = batch_keys.cast(pa.string()), keys.cast(pa.string())
            else:
                label_keys = keys
            index = pc.index_in(batch_keys, value_set=label_keys)
            if index.null_count:
                position = index.is_null().to_pylist().index(True)
                raise InputError(
                    f"{source.label}: row {row + position}: {on} {batch_keys[position].as_py()!r} "
                    f"is not in {labels.label}"
                )
            yield _assemble(columns, batch, table.select(targets).take(index))
            row += batch.num_rows

    return replace(_with_targets(source, labels, targets, on), stream_batches=stream)


def _zipped(source: Source, labels: Source, lockstep: _Lockstep, targets: list[str], last: bool) -> Source:
    def stream(columns: list[str], text: set[str], chunk_rows: int, groups: range | None) -> Iterator[pa.RecordBatch]:
        wanted = [c for c in columns if c not in targets]
        for batch in source.batches(wanted, text, chunk_rows):
            if batch.num_rows:  # an empty batch (a table's empty chunk) takes no labels
                yield _assemble(columns, batch, lockstep.take(batch.num_rows, source.label))
        if last:
            lockstep.finish(source.label)

    def close() -> None:
        source.close()
        if last:
            labels.close()

    return replace(_with_targets(source, labels, targets, None), stream_batches=stream, close=close, group_rows=())
