"""Where the pieces of an evaluation are reduced. Every engine reduces a piece the same way
(`reduce_piece`) and merges the states in the same index-ordered tree (`merge_tree`); engines
differ only in where that runs: this process, a pool of local processes (local.py), a Dask
cluster (dask.py).
"""

from __future__ import annotations

import queue
import sys
import threading
import types
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa

from smoothl1_cli import backends
from smoothl1_cli.errors import InputError
from smoothl1_cli.options import Options
from smoothl1_cli.plan import Job, Piece, check_source, cut_pieces, plan_columns
from smoothl1_cli.readers import TEXT_FORMATS, Source, beyond_exact_integers, first_unparsable, to_float64
from smoothl1_cli.report import Report
from smoothl1_cli.state import Block, RowError, RowSink, RunState, aligned

Progress = Callable[[Piece, RunState], None]  # told of each piece reduced elsewhere, with its state
MERGE_FAN_IN = 2


def evaluate_sources(
    sources: Sequence[Source],
    options: Options,
    sink: RowSink | None = None,
) -> Report:
    """Plan, reduce every piece on the chosen engine, merge in the tree, report. With --engine dask,
    --per-row names a directory where the workers write each piece's per-row losses."""
    plan = plan_columns(sources[0], options)
    for source in sources:
        check_source(source, plan)
    pieces = cut_pieces(sources)
    job = Job(
        replace(options, backend=_backend(options.backend, pieces)),
        plan,
        tuple(source.label for source in sources),
        tuple(source.format for source in sources),
        pieces,
    )
    progress = _progress_of(sources)
    if options.engine == "dask":
        from smoothl1_cli.engines.dask import per_row_parts, reduce_on_dask

        with per_row_parts(options.per_row, job) as parts:  # the part files stay only if the report is made
            return _finished(job, reduce_on_dask(job, sources, progress, parts))
    from smoothl1_cli.engines.local import reduce_locally

    return _finished(job, reduce_locally(job, sources, sink, progress))


def _backend(name: str, pieces: Sequence[Piece]) -> str:
    """'auto' decided once for the whole job, from the footers' row counts (or the inputs' bytes)."""
    counts = [piece.rows for piece in pieces]
    rows = None if None in counts else sum(count or 0 for count in counts)
    return backends.choose(name, rows, sum(piece.size or 0 for piece in pieces))


def _finished(job: Job, states: Sequence[RunState]) -> Report:
    with np.errstate(all="ignore"):  # merged sums may overflow to inf: the report's warnings say so
        return merge_tree(states).finish(list(zip(job.inputs, job.formats, strict=True)))


def merge_tree(states: Sequence[RunState]) -> RunState:
    """The states merged in a fixed tree over their index order, MERGE_FAN_IN at a time: the same
    pieces give the same bytes however many workers reduced them, in whatever order they finished."""
    level = list(states)
    while len(level) > 1:
        level = [_merge_run(level[i : i + MERGE_FAN_IN]) for i in range(0, len(level), MERGE_FAN_IN)]
    return level[0]


def _merge_run(states: Sequence[RunState]) -> RunState:
    merged = states[0]
    for state in states[1:]:
        merged = merged.merge(state)
    return merged


def reduce_piece(
    piece: Piece, job: Job, first_row: int | None, source: Source | None = None, sink: RowSink | None = None
) -> RunState:
    """One piece's state, its chunks counted from the piece's first row. Without `source` (in a worker)
    the input is opened here from the job. An error in the data names the input and its row."""
    source = source if source is not None else open_input(job, piece.input)
    state = RunState.empty(job.plan, job.options, piece.input, first_row)
    try:
        feed = backends.feed(job.options.backend)
        plan = job.plan
        batch_rows = feed.batch_rows(job.options.chunk_rows, len(plan.numeric), len(plan.pairs), job.processes)
        batches = aligned(_blocks(source, piece, job, state, batch_rows), batch_rows)
        # inf and NaN are handled (and reported) explicitly, not warned about
        with (
            np.errstate(all="ignore"),
            backends.device_memory(job.options.chunk_rows),
            feed.running(),
            closing(_read_ahead(batches, feed)) as ready,
        ):
            for block in ready:
                state.update(block, feed, sink)
                feed.done()
    except RowError as exc:
        raise InputError(exc.message(source.label, piece.input_row + exc.row)) from exc
    finally:
        source.close()
    return state


def _read_ahead(blocks: Iterator[Block], feed: backends.Feed) -> Generator[Block, None, None]:
    """`blocks`, with up to `feed.read_ahead` of them made and staged ahead in a thread (a device's
    batches: the reader parses and stages the next one while the device reduces this one); an error there
    is raised here, in its place. Closing this generator stops the thread before its source is closed."""
    if feed.read_ahead == 0:
        yield from blocks
        return
    ready: queue.Queue[tuple[Block | None, BaseException | None]] = queue.Queue(feed.read_ahead)
    stop = threading.Event()

    def read() -> None:
        try:
            with np.errstate(all="ignore"):  # (NumPy's error state is per thread)
                for block in blocks:
                    block.columns = feed.stage(block.columns)
                    ready.put((block, None))
                    if stop.is_set():
                        return
            ready.put((None, None))
        except BaseException as exc:  # (to be raised in the reducing thread)
            ready.put((None, exc))

    reader = threading.Thread(target=read, name="smoothl1-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            block, error = ready.get()
            if error is not None:
                raise error
            if block is None:
                return
            yield block
    finally:
        stop.set()
        while reader.is_alive():  # take what it made, so that a full queue lets it see `stop`
            with suppress(queue.Empty):
                ready.get(timeout=0.05)
        reader.join()


def count_rows(piece: Piece, job: Job) -> int:
    """A piece's rows, read for nothing else: where no footer says and row numbers must be global first."""
    source = open_input(job, piece.input)
    try:
        batches = source.batches(job.plan.columns[:1], set(), job.options.chunk_rows, piece.groups)
        return sum(batch.num_rows for batch in batches)
    finally:
        source.close()


def open_input(job: Job, number: int) -> Source:
    """Input `number` opened anew from its path or URI, as any process that runs a piece does."""
    from smoothl1_cli.readers import open_source

    options = job.options
    source = open_source(job.inputs[number], options.input_format)
    if options.labels is None:
        return source
    from smoothl1_cli.labels import with_labels

    (joined,) = with_labels([source], open_source(options.labels, None), options.target, options.on)
    return joined


def _blocks(source: Source, piece: Piece, job: Job, state: RunState, batch_rows: int) -> Iterator[Block]:
    """The piece's batches (of `batch_rows` rows at most) as blocks of float64 columns and label arrays;
    notes integers beyond 2**53."""
    plan = job.plan
    rows = 0
    for batch in source.batches(plan.columns, set(plan.labels), batch_rows, piece.groups):
        for name in plan.numeric:
            if f"int:{name}" not in state.notes and beyond_exact_integers(batch, name):
                state.notes[f"int:{name}"] = (
                    f"{source.label}: column '{name}' holds integers beyond 2**53, which float64 (and so "
                    "PyTorch's float64) rounds; the losses are of the rounded values"
                )
        columns = {name: _numbers(batch.column(name), name, rows) for name in plan.numeric}
        missing = {
            name: batch.column(name).is_null().to_numpy(zero_copy_only=False)
            for name in plan.numeric
            if batch.column(name).null_count
        }
        labels = {
            name: _label_column(batch.column(name), source.label, name, "--id" if name == plan.id else "--group-by")
            for name in plan.labels
        }
        for name, column in labels.items():
            state.text_labels.observe(name, column, from_text=source.format in TEXT_FORMATS)
        ids = [labels[plan.id]] if plan.id else []
        groups = [labels[plan.group_by]] if plan.group_by else []
        rows += batch.num_rows
        yield Block(columns, ids, groups, batch.num_rows, missing)


def _numbers(column: pa.Array | pa.ChunkedArray, name: str, first_row: int) -> np.ndarray[Any, Any]:
    """A numeric column as float64; one that is also --id or --group-by arrives as text, so a value that
    is not a number is found here, not by the reader."""
    try:
        return to_float64(column)
    except pa.ArrowInvalid:
        row = first_unparsable(pa.chunked_array([column]) if isinstance(column, pa.Array) else column)
        if row is None:
            raise
        raise RowError(first_row + row, name, column[row].as_py(), "is not a number") from None


def _label_column(column: pa.Array, label: str, name: str, role: str) -> pa.Array:
    """An --id or --group-by column in one type per kind, decided by its type alone so that every
    chunk of every input agrees: integers as int64, floats as float64, text as string, and a
    dictionary (a pandas categorical) by its values. Lists and structs are refused."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    kind = column.type
    if pa.types.is_nested(kind):
        raise InputError(
            f"{label}: {role} column '{name}' holds values of type {kind}; an id or group key must be a number or text"
        )
    if pa.types.is_integer(kind) and kind not in (pa.int64(), pa.uint64()):  # uint64 beyond int64 stays exact
        return column.cast(pa.int64())
    if pa.types.is_floating(kind) and kind != pa.float64():
        return column.cast(pa.float64())
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return column.cast(pa.string())
    return column


@contextmanager
def script_not_rerun() -> Iterator[None]:
    """Worker processes started inside start without the caller's script. multiprocessing (and so
    Dask's local cluster) would run a `__main__` that has a file again in each worker, where a script
    calling `evaluate` with no `if __name__ == "__main__":` guard would fail; a piece needs nothing
    from it, only smoothl1 and the pickled job."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _progress_of(sources: Sequence[Source]) -> Progress:
    """Feed the progress bar's counters of an input with a piece reduced elsewhere: its rows, or its bytes."""

    def advance(piece: Piece, state: RunState) -> None:
        source = sources[piece.input]
        for report in source.progress:
            report(state.rows if source.rows is not None else piece.size or 0)
        for report in source.rows_read:
            report(state.rows)

    return advance
